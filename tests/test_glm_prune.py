"""Pruned GLM models (count cutoffs per number of kept words, docs/glm.md §2 "Pruning"): every
distribution still sums to 1, every probability equals the pure-Python reference with the same cutoffs,
the pruned n-grams are absent, zero thresholds change nothing, tuning (by default and on a file), files
and the command line."""
from __future__ import annotations

import math

import numpy as np
import pytest

import glm
from glm.build import count
from glm.cli import main
from glm.generalized import estimate
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.patterns import name
from helpers import random_corpus
from reference_glm import ReferenceGLM, lattice
from test_glm import contexts_of, p

PRUNES = [(0, 0, 1), (0, 1, 2), (1, 2, 3)]


def build(lines, order, method="glm", prune=(), fixed=None, fallback=()):
    vocab, levels = count(lines=lines, order=order, with_raw=True)
    tables = estimate(levels, order, method, Options(tuple(prune), discount_fallback=fallback),
                      fixed_discounts=fixed)
    if tables.unigram_keep is not None:
        from glm.build import _kept_words
        vocab = _kept_words(vocab, tables.unigram_keep)
    return GeneralizedModel(vocab, tables)


def corpus(seed, vocab_size=60, n_sentences=120):
    """Zipf-like random sentences with a vocabulary large enough for words seen once or twice."""
    return random_corpus(seed, vocab_size=vocab_size, n_sentences=n_sentences)


@pytest.mark.parametrize("order", [3, 4, 5])
@pytest.mark.parametrize("prune", PRUNES)
def test_pruned_sums_to_one(order, prune):
    """Brute force: each distribution sums to 1 over the vocabulary, seen, pruned and unseen histories."""
    sents = corpus(300 + order)
    for method in ("glm", "glm-abs"):
        m = build([" ".join(s) for s in sents], order, method, prune)
        vocab = [w for w in m.vocab if w != "<s>"]
        for ctx in contexts_of(sents, order):
            total = math.fsum(p(m, w, list(ctx)) for w in vocab)
            assert abs(total - 1.0) < 1e-9, (method, ctx, total)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("prune", [(0, 1), (1, 1, 2), (0, 2, 3)])
def test_pruned_matches_reference(seed, prune):
    """Every probability equals the reference GLM's with the same cutoffs (fixed discounts), and every
    pattern stores exactly the reference's unpruned n-grams (unigrams: the words kept)."""
    order = 3 + seed
    sents = corpus(seed, vocab_size=40, n_sentences=50)
    fixed = (0.4, 0.9, 1.3)
    lines = [" ".join(s) for s in sents]
    for method in ("glm", "mkn"):
        m = build(lines, order, method, prune, fixed=fixed)
        ref = ReferenceGLM(sents, order, method, discounts=fixed, prune=prune)
        sizes = {name(k): v for k, v in m.tables.sizes.items()}
        if method == "glm":
            assert sizes["1"] == len(ref.vocab) + 1                      # and <s>
            for pat in lattice(order)[1:]:
                assert sizes[pat] == len(ref.kept(pat)), pat
        assert len(m.vocab) == len(ref.vocab) + 1
        vocab = sorted(ref.vocab) + ["oov-word", sents[0][0]]
        for ctx in contexts_of(sents, order)[:40]:
            for w in vocab:
                assert p(m, w, list(ctx)) == pytest.approx(ref.prob(w, ctx), rel=1e-6, abs=1e-12), (ctx, w)


def test_pruning_drops_ngrams_and_words():
    """The cutoffs really drop n-grams (fewer with higher thresholds), unigram cutoffs drop words (which
    become OOVs), and a pruned n-gram's probability is its history's back-off."""
    sents = corpus(5, vocab_size=80, n_sentences=150)
    lines = [" ".join(s) for s in sents]
    full = build(lines, 4)
    sizes = [sum(full.tables.sizes.values())]
    for prune in [(0, 0, 1), (0, 1, 1), (0, 1, 2), (1, 2, 3)]:
        sizes.append(sum(build(lines, 4, prune=prune).tables.sizes.values()))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes), sizes
    ref = ReferenceGLM(sents, 4, prune=(1,))
    dropped = {w for s in sents for w in s} - set(ref.vocab)
    assert dropped                                         # words seen once
    m = build(lines, 4, prune=(1,))
    assert not dropped & set(m.vocab) and len(m.vocab) == len(full.vocab) - len(dropped)
    w = sorted(dropped)[0]
    assert m.logprob(w, ["<s>"]) == m.logprob("<unk>", ["<s>"])


@pytest.mark.parametrize("prune", [(0,), (0, 0, 0, 0)])
def test_zero_thresholds_change_nothing(prune):
    lines = [" ".join(s) for s in corpus(9)]
    a, b = build(lines, 4), build(lines, 4, prune=prune)
    assert a.tables.sizes == b.tables.sizes and list(a.vocab) == list(b.vocab)
    for mask, t in a.tables.tables.items():
        for key, arr in t.items():
            np.testing.assert_array_equal(arr, b.tables.tables[mask][key], err_msg=f"{mask} {key}")
    assert glm.train(lines=lines, order=3, method="glm", prune=prune, discount_fallback=True).meta == \
        glm.train(lines=lines, order=3, method="glm", discount_fallback=True).meta


def test_tuned_default_and_file_with_pruning(tmp_path):
    """The default (tuned on every 10th line, rebuilt on all) and --tune HELDOUT work pruned: the pruned
    model is tuned and rebuilt pruned, stays normalized, and is smaller than the unpruned one."""
    sents = random_corpus(21, vocab_size=120, n_sentences=700)
    lines = [" ".join(s) for s in sents]
    (tmp_path / "valid.txt").write_text("\n".join(lines[600:]) + "\n")
    prune = (0, 1, 1)
    full = glm.train(lines=lines[:600], order=3, method="glm", discount_fallback=True)
    for kwargs in ({}, {"tune": tmp_path / "valid.txt"}):
        m = glm.train(lines=lines[:600], order=3, method="glm", prune=prune, discount_fallback=True, **kwargs)
        assert m.meta["prune"] == list(prune) and m.weights and m.meta["discount_scales"]
        assert sum(m.tables.sizes.values()) < 0.8 * sum(full.tables.sizes.values())
        vocab = [w for w in m.vocab if w != "<s>"]
        for ctx in contexts_of(sents, 3)[:25]:
            assert abs(math.fsum(p(m, w, list(ctx)) for w in vocab) - 1.0) < 1e-9, (kwargs, ctx)
    # the pruned tuned model is the pruned model of all the text with the fitted parameters
    m = glm.train(lines=lines[:600], order=3, method="glm", prune=prune, discount_fallback=True)
    ref = ReferenceGLM(sents[:600], 3, prune=prune)
    assert {name(k): v for k, v in m.tables.sizes.items() if k > 1} == \
        {pat: len(ref.kept(pat)) for pat in lattice(3)[1:]}


def test_cli_and_files(tmp_path, capsys):
    """glm build --method glm --prune; the setting is in the .glmb's and the .glm's meta; the models
    read back score as the one built in memory."""
    sents = random_corpus(4, vocab_size=80, n_sentences=200)
    train = tmp_path / "train.txt"
    train.write_text("\n".join(" ".join(s) for s in sents) + "\n")
    out = tmp_path / "m.glmb"
    main(["build", "--order", "3", "--method", "glm", "--tune-split", "0", "--prune", "0", "1",
          "--discount-fallback", str(train), "-o", str(out)])
    m = glm.train([train], order=3, method="glm", tune_split=0, prune=(0, 1), discount_fallback=True)
    loaded = glm.load(out)
    assert loaded.meta["prune"] == [0, 1]
    m.save(tmp_path / "m.glm")
    text = glm.load(tmp_path / "m.glm")
    assert text.meta["prune"] == [0, 1]
    test = [" ".join(s) for s in sents[::7]] + ["unseen words here"]
    want = m.token_scores(test)[1]
    for other in (loaded, text):
        np.testing.assert_allclose(other.token_scores(test)[1], want, rtol=1e-6)
    # unigram cutoffs, the .glmb written while the (default, tuned) model is built
    built = glm.train([train], order=3, method="glm", prune=(1, 1, 2), discount_fallback=True,
                      output=tmp_path / "u.glmb")
    loaded = glm.load(tmp_path / "u.glmb")
    assert list(loaded.vocab) == list(built.vocab) and len(built.vocab) < len(m.vocab)
    np.testing.assert_array_equal(loaded.token_scores(test)[1], built.token_scores(test)[1])


def test_refused_where_not_supported():
    lines = ["a b c", "a b d"]
    for kwargs in (dict(method="glmtk2014", tune_split=0), dict(method="glm", padding="paper", tune_split=0)):
        with pytest.raises(ValueError, match="pruning is not supported"):
            glm.train(lines=lines, order=3, prune=(0, 1), **kwargs)
    with pytest.raises(ValueError, match="non-decreasing"):
        glm.train(lines=lines, order=3, method="glm", prune=(0, 2, 1))


@pytest.mark.parametrize("prune", [(0, 1), (1, 1, 2)])
def test_pruned_mkn_lattice_equals_pruned_mkn_model(prune):
    """The MKN lattice pruned here scores as our lmplz-exact pruned MKN (another code path: ext/_mkn.pyx and
    glm.mkn._prune), unigram cutoffs included."""
    sents = random_corpus(8, vocab_size=400, n_sentences=1500)
    lines = [" ".join(s) for s in sents]
    for order in (3, 4):
        mkn = glm.train(lines=lines, order=order, prune=prune, discount_fallback=True)
        lat = build(lines, order, "mkn", prune)
        assert list(lat.vocab) == list(mkn.vocab)
        assert lat.counts == mkn.counts
        test = lines[::9] + ["w1 w2 never-seen w3", ""]
        np.testing.assert_allclose(lat.score_many(test), mkn.score_many(test), rtol=0, atol=2e-5)
