"""glm.train against the pure-Python lmplz oracle (tests/reference_mkn.py).

Every comparison checks: the same n-grams (read from the ARPA file glm writes, with an independent
parser), the ARPA header counts, every log10 probability and backoff within 1e-5, the vocabulary in id
order, the discounts, and in-memory queries (stored n-grams and backed-off ones).
"""
from __future__ import annotations

import math
import random

import pytest

import glm
from helpers import (TOL, assert_matches_reference, context_sets, parse_arpa, random_corpus,
                     read_corpus_lines, split_line, to_lines)
from reference_mkn import DiscountError as RefDiscountError
from reference_mkn import build_mkn

DEFAULT_FALLBACK = (0.5, 1.0, 1.5)


def reference_and_glm_options(sentences, order, **kw):
    """The reference model and the options to give glm.train for the same model.

    When the reference cannot compute the discounts of some order without a fallback, glm must
    refuse too (DiscountError naming that order); both then use lmplz's default fallback.
    """
    prune = tuple(kw.pop("prune", ()))[:order]
    ref_kw = dict(kw, prune=prune)
    glm_kw = dict(kw, prune=prune)
    if "discount_fallback" in kw:
        return build_mkn(sentences, order, **ref_kw), glm_kw
    try:
        return build_mkn(sentences, order, **ref_kw), glm_kw
    except RefDiscountError as exc:
        with pytest.raises(glm.DiscountError, match=rf"\border {exc.order}\b"):
            glm.train(lines=to_lines(sentences), order=order, **glm_kw)
        ref_kw["discount_fallback"] = DEFAULT_FALLBACK
        glm_kw["discount_fallback"] = True
        return build_mkn(sentences, order, **ref_kw), glm_kw


def check_model(model, ref, tmp_path, sentences, query_sample=2000, seed=0, name="m.arpa"):
    what = f"order {ref.order}"
    assert model.order == ref.order
    # the vocabulary of the model: the words with a unigram (all of them unless unigrams are pruned)
    if not ref.prune_thresholds[0]:
        assert ref.unigram_vocab == list(ref.vocab)
    assert list(model.vocab) == ref.unigram_vocab
    assert len(model.vocab) == len(ref.unigram_vocab)
    assert list(model.counts) == list(ref.arpa_header_counts)
    # discounts, as computed in float32 by lmplz
    assert len(model.discounts) == ref.order
    for n, (got, want) in enumerate(zip(model.discounts, ref.discounts), 1):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6), f"discounts of order {n}"
    # the ARPA file glm writes, parsed independently
    path = tmp_path / name
    model.save(path)
    arpa = parse_arpa(path)
    assert_matches_reference(arpa, ref, TOL, what)
    # in-memory queries of stored n-grams return their stored probability
    rng = random.Random(seed)
    grams = [g for entries in ref.ngrams for g in entries]
    if len(grams) > query_sample:
        grams = rng.sample(grams, query_sample)
    for g in grams:
        n = len(g)
        want = ref.ngrams[n - 1][g][0]
        got = model.logprob(g[-1], g[:-1])
        assert math.isclose(got, want, abs_tol=TOL), (g, got, want)
    # backed-off queries, unseen and OOV contexts, longer contexts
    for ctx in context_sets(ref.order, sentences, rng, list(ref.vocab), per_length=3, max_seen=30):
        for w in rng.sample(list(ref.vocab), min(8, len(ref.vocab))) + ["NOT-A-WORD"]:
            got = model.logprob(w, ctx)
            want = ref.log10prob(w, ctx)
            assert math.isclose(got, want, abs_tol=TOL), (w, ctx, got, want)


def run(tmp_path, sentences, order, query_sample=2000, **kw):
    ref, glm_kw = reference_and_glm_options(sentences, order, **kw)
    # a generator of lines: (a list of lines is also accepted, see test_corpus.py)
    model = glm.train(lines=iter(to_lines(sentences)), order=order, **glm_kw)
    check_model(model, ref, tmp_path, sentences, query_sample)
    return model, ref


# ------------------------------------------------------------------------------------ random text
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_unpruned(tmp_path, seed, order):
    run(tmp_path, random_corpus(seed), order)


@pytest.mark.parametrize("prune", [(0, 1, 1), (0, 1, 2), (0, 0, 1), (0, 2)])
@pytest.mark.parametrize("order", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [11, 12])
def test_random_pruned(tmp_path, seed, order, prune):
    model, ref = run(tmp_path, random_corpus(seed, n_sentences=300), order, prune=prune)
    unpruned = glm.train(lines=to_lines(random_corpus(seed, n_sentences=300)), order=order, discount_fallback=True)
    # pruning happens after counting: discounts and unpruned counts do not depend on it
    assert model.discounts == unpruned.discounts


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_random_without_unigram_interpolation(tmp_path, seed, order):
    run(tmp_path, random_corpus(seed), order, interpolate_unigrams=False)


@pytest.mark.parametrize("order", [2, 3, 5])
def test_random_pruned_without_unigram_interpolation(tmp_path, order):
    run(tmp_path, random_corpus(24, n_sentences=300), order, prune=(0, 1, 1),
        interpolate_unigrams=False)


@pytest.mark.parametrize("extra", [0, 1, 37, 1000])
@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("seed", [31, 32])
def test_random_vocab_pad(tmp_path, seed, order, extra):
    sentences = random_corpus(seed)
    words = {w for s in sentences for w in s}
    V = len(words) + 2                      # + <unk> and </s>
    run(tmp_path, sentences, order, vocab_pad=V + extra)
    # a pad below the vocabulary size changes nothing
    if extra == 0:
        run(tmp_path, sentences, order, vocab_pad=max(V - 3, 0))


@pytest.mark.parametrize("fallback", [(0.3, 0.8, 1.2), (0.7,), (0.4, 1.1), (1.0, 2.0, 3.0), (0.0, 0.0, 0.0)])
@pytest.mark.parametrize("order", [1, 3, 5])
def test_random_discount_fallback_values(tmp_path, order, fallback):
    sentences = random_corpus(41)
    model, ref = run(tmp_path, sentences, order, discount_fallback=fallback)
    # the fallback replaces the whole triple of the orders whose closed form fails, and only those
    assert any(ref.discount_fallback_used)
    for n, used in enumerate(ref.discount_fallback_used, 1):
        if used:
            full = tuple(fallback) + (fallback[-1],) * (3 - len(fallback))
            assert model.discounts[n - 1] == pytest.approx(full)


def test_fallback_only_where_needed(tmp_path):
    """discount_fallback=True must not replace discounts that the closed form defines."""
    sentences = [split_line(line) for line in read_corpus_lines("brown/brown.txt.gz", 20)]
    ref = build_mkn(sentences, 4, discount_fallback=DEFAULT_FALLBACK)
    assert ref.discount_fallback_used == [False, False, False, True]
    model = glm.train(lines=to_lines(sentences), order=4, discount_fallback=True)
    check_model(model, ref, tmp_path, sentences)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed", [51, 52, 53])
def test_literal_unk_in_training_text(tmp_path, seed, order):
    sentences = random_corpus(seed, unk_prob=0.06)
    assert any("<unk>" in s for s in sentences)
    model, ref = run(tmp_path, sentences, order)
    assert ref.adjusted_counts[0][("<unk>",)] > 0
    if order > 1:
        assert any("<unk>" in g for g in ref.ngrams[1])


@pytest.mark.parametrize("order", [2, 3, 4])
def test_literal_unk_pruned(tmp_path, order):
    run(tmp_path, random_corpus(54, n_sentences=300, unk_prob=0.05), order, prune=(0, 1, 2))


def test_only_empty_sentences_and_one_word(tmp_path):
    sentences = [[], [], ["a"], [], ["a", "a"], ["b"], [], ["a", "b", "a"]] * 3
    for order in (1, 2, 3):
        run(tmp_path, sentences, order, discount_fallback=DEFAULT_FALLBACK)


@pytest.mark.parametrize("prune", [(1,), (1, 1, 2), (2, 2, 2), (1, 2), (3, 3)])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_random_unigram_pruning(tmp_path, order, prune):
    sentences = random_corpus(61, vocab_size=150, n_sentences=200)
    model, ref = run(tmp_path, sentences, order, prune=prune)
    # (lmplz's quirk when </s> itself is pruned -- #sentences <= t1 -- is not exercised here)
    assert ref.raw_counts[0][("</s>",)] > prune[0]
    assert len(ref.unigram_vocab) < len(ref.vocab), "no unigram was pruned"


@pytest.mark.parametrize("order,prune", [(2, (1,)), (3, (1, 1, 2))])
def test_real_text_unigram_pruning(tmp_path, order, prune):
    sentences = [split_line(line) for line in read_corpus_lines("brown/brown.txt.gz", 300)]
    run(tmp_path, sentences, order, prune=prune)


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("t1", [30, 45])
def test_eos_kept_when_t1_reaches_the_sentence_count(tmp_path, order, t1):
    """30 sentences, a unigram threshold t1 >= 30: lmplz marks </s> pruned (it gives its count to
    gamma(), leaves it out of the uniform distribution and the header, writes it with log10 p = 0, and
    its model does not sum to 1; tests/test_lmplz_stored.py checks this against lmplz's files).  glm
    keeps </s> like <s> and <unk>: its model is the reference's with prune_eos=False, the header
    counts </s>, and every distribution sums to 1."""
    sentences = random_corpus(71, vocab_size=8, n_sentences=30, empty_prob=0.0)
    assert len(sentences) <= t1
    prune = (t1,)
    ref = build_mkn(sentences, order, prune=prune, discount_fallback=DEFAULT_FALLBACK, prune_eos=False)
    lmplz = build_mkn(sentences, order, prune=prune, discount_fallback=DEFAULT_FALLBACK)
    assert lmplz.ngrams[0][("</s>",)][0] == 0.0 and ref.ngrams[0][("</s>",)][0] < 0.0
    assert list(ref.arpa_header_counts) == [lmplz.arpa_header_counts[0] + 1] + lmplz.arpa_header_counts[1:]
    assert set(ref.ngrams[0]) == set(lmplz.ngrams[0])
    model = glm.train(lines=to_lines(sentences), order=order, prune=prune, discount_fallback=True)
    check_model(model, ref, tmp_path, sentences)
    assert ("</s>",) in parse_arpa(tmp_path / "m.arpa").ngrams[0]
    words = [w for w in model.vocab if w != "<s>"]
    for ctx in context_sets(order, sentences, random.Random(t1), list(model.vocab)):
        assert abs(math.fsum(10.0 ** model.logprob(w, ctx) for w in words) - 1.0) < 1e-5, ctx


@pytest.mark.parametrize("prune", [(0, 2, 1), (1, 0), (0, -1), (2, 1, 1)])
def test_bad_thresholds_are_refused(prune):
    with pytest.raises(ValueError):
        glm.train(lines=["a b c", "a b"], order=3, prune=prune, discount_fallback=True)


# -------------------------------------------------------------------------------------- real text
BROWN_LINES = 1500


@pytest.fixture(scope="module")
def brown():
    lines = read_corpus_lines("brown/brown.txt.gz", BROWN_LINES)
    return [split_line(line) for line in lines]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_brown_unpruned(tmp_path, brown, order):
    run(tmp_path, brown, order, query_sample=3000)


@pytest.mark.parametrize("order,prune", [(3, (0, 1, 1)), (5, (0, 1, 2)), (4, (0, 0, 1))])
def test_brown_pruned(tmp_path, brown, order, prune):
    run(tmp_path, brown, order, query_sample=3000, prune=prune)


def test_brown_without_unigram_interpolation(tmp_path, brown):
    run(tmp_path, brown, 3, query_sample=3000, interpolate_unigrams=False)


def test_brown_vocab_pad(tmp_path, brown):
    run(tmp_path, brown, 3, query_sample=3000, vocab_pad=20000)


def test_brown_from_file(tmp_path, brown):
    """Training from a gzip'd file equals the reference too (file reading path)."""
    import gzip
    path = tmp_path / "brown.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in to_lines(brown)))
    ref = build_mkn(brown, 3)
    model = glm.train(str(path), 3)
    check_model(model, ref, tmp_path, brown)
