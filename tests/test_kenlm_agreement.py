"""glm's models, written as ARPA and read by KenLM, score like glm; lmplz's ARPA files read by glm equal
glm's own estimates.

Tolerances are what float32 allows (helpers.float32_unit): both sides read the same float32 numbers, so
a token's log10 p agrees within 2 float32 units, and a sentence within what KenLM's float32
accumulation of the tokens loses (helpers.float32_sum_tol).  The tests that use the ``kenlm`` module ask
for it through the ``kenlm`` fixture (skipped without it); the lmplz ones run without it.  The lmplz
cases are also stored with lmplz's output (tests/test_lmplz_stored.py), so they are checked where lmplz
is not installed."""
from __future__ import annotations

import math
import random
import shutil
import subprocess

import pytest

import glm
from helpers import (assert_ngrams_float32, corpus_path, float32_sum_tol, float32_unit, parse_arpa,
                     random_corpus, read_corpus_lines, to_lines)

TOKEN_UNITS = 2      # a token's log10 p, glm vs KenLM reading glm's file (measured: 0.9)
GLM_UNITS = 2        # glm's n-gram values vs lmplz's (measured: 1.4, tests/test_lmplz_stored.py)


@pytest.fixture(scope="module")
def kenlm():
    return pytest.importorskip("kenlm")


def token_close(got: float, want: float) -> bool:
    return abs(got - want) <= TOKEN_UNITS * float32_unit(want)


def sentence_close(got: float, want: float, tokens: int) -> bool:
    return abs(got - want) <= float32_sum_tol(want, tokens)


def probe_sentences(sentences, seed, n_random=150):
    """Training sentences, random word salad, OOV words, empty and whitespace-only lines."""
    rng = random.Random(seed)
    words = sorted({w for s in sentences for w in s if w != "<unk>"})
    out = [" ".join(s) for s in sentences[:150]]
    out += ["", "   ", "OOV", "OOV OOV", "<unk>", "<unk> <unk> x"]
    for _ in range(n_random):
        sent = [rng.choice(words) for _ in range(rng.randint(0, 20))]
        for i in range(len(sent)):
            if rng.random() < 0.07:
                sent[i] = f"oov{rng.randint(0, 3)}"
        out.append(" ".join(sent))
    return out


def assert_agree(model, klm, lines, order):
    assert klm.order == order
    ours = {(bos, eos): model.score_many(lines, bos, eos) for bos in (True, False) for eos in (True, False)}
    for i, line in enumerate(lines):
        for (bos, eos), many in ours.items():
            want = klm.score(line, bos=bos, eos=eos)
            tokens = len(line.split()) + eos
            got = model.score(line, bos=bos, eos=eos)
            assert sentence_close(got, want, tokens), (line, bos, eos, got, want)
            assert sentence_close(many[i], want, tokens), (line, bos, eos, many[i], want)
        for bos, eos in ((True, True), (False, False)):
            theirs = list(klm.full_scores(line, bos=bos, eos=eos))
            mine = list(model.full_scores(line, bos=bos, eos=eos))
            assert len(mine) == len(theirs), line
            for (p, n, oov), (kp, kn, koov) in zip(mine, theirs):
                assert token_close(p, kp), (line, p, kp)
                assert (n, bool(oov)) == (kn, bool(koov)), (line, mine, theirs)
        # perplexity = 10^(-score / tokens): its relative error is ln 10 * (score error) / tokens
        tokens = len(line.split()) + 1
        rel = math.log(10) * float32_sum_tol(klm.score(line), tokens) / tokens
        assert model.perplexity(line) == pytest.approx(klm.perplexity(line), rel=rel, abs=0), line
    # the batch per-token and per-line paths
    starts, lp, matched, oov = model.token_scores(lines)
    per_line = model.score_lines(lines)
    assert len(starts) == len(lines) + 1
    for i, line in enumerate(lines):
        theirs = list(klm.full_scores(line))
        assert starts[i + 1] - starts[i] == len(theirs), line
        sl = slice(starts[i], starts[i + 1])
        assert all(token_close(a, t[0]) for a, t in zip(lp[sl], theirs)), line
        assert list(matched[sl]) == [t[1] for t in theirs], line
        assert [bool(x) for x in oov[sl]] == [bool(t[2]) for t in theirs], line
        assert per_line.tokens[i] == len(theirs)
        assert per_line.oovs[i] == sum(1 for t in theirs if t[2])
        # sums of the tokens' values (in float64 on both sides): within the tokens' tolerances
        bound = math.fsum(TOKEN_UNITS * float32_unit(t[0]) for t in theirs)
        assert abs(per_line.oov_log10_prob[i] - math.fsum(t[0] for t in theirs if t[2])) <= bound, line
        assert abs(per_line.log10_prob[i] - math.fsum(t[0] for t in theirs)) <= bound, line


def kenlm_totals(klm, lines):
    """Corpus totals of KenLM's per-token values (summed in float64, as query does) and the bound of
    their distance from glm's: the tokens' tolerances summed."""
    total = oov_total = bound = 0.0
    tokens = oovs = 0
    for line in lines:
        for p, _, oov in klm.full_scores(line):
            total += p
            bound += TOKEN_UNITS * float32_unit(p)
            tokens += 1
            if oov:
                oovs += 1
                oov_total += p
    return total, tokens, oovs, oov_total, bound


def assert_evaluation_agrees(model, klm, lines, path):
    ev = model.evaluate(str(path))
    total, tokens, oovs, oov_total, bound = kenlm_totals(klm, lines)
    assert ev.tokens == tokens
    assert ev.oovs == oovs
    assert ev.lines == len(lines)
    assert abs(ev.log10_prob - total) <= bound
    assert abs(ev.oov_log10_prob - oov_total) <= bound
    rel = math.log(10) * bound / tokens
    assert ev.perplexity == pytest.approx(10 ** (-total / tokens), rel=rel, abs=0)
    if tokens > oovs:
        assert ev.perplexity_excluding_oov == pytest.approx(
            10 ** (-(total - oov_total) / (tokens - oovs)), rel=math.log(10) * bound / (tokens - oovs), abs=0)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [201, 202, 203])
def test_random_corpora(tmp_path, seed, order, kenlm):
    sentences = random_corpus(seed, unk_prob=0.02 if seed == 203 else 0.0)
    model = glm.train(lines=to_lines(sentences), order=order, discount_fallback=True)
    path = tmp_path / "m.arpa"
    model.save(path)
    klm = kenlm.Model(str(path))
    lines = probe_sentences(sentences, seed)
    assert_agree(model, klm, lines, order)
    text = tmp_path / "probe.txt"
    text.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    assert_evaluation_agrees(model, klm, lines, text)


@pytest.mark.parametrize("order,prune", [(3, (0, 1, 1)), (4, (0, 1, 2))])
def test_random_pruned(tmp_path, order, prune, kenlm):
    sentences = random_corpus(211, n_sentences=400)
    model = glm.train(lines=to_lines(sentences), order=order, discount_fallback=True, prune=prune)
    model.save(tmp_path / "m.arpa.gz")            # KenLM reads gzip'd ARPA too
    klm = kenlm.Model(str(tmp_path / "m.arpa.gz"))
    assert_agree(model, klm, probe_sentences(sentences, 211), order)


def test_binary_model_scores_like_kenlm(tmp_path, kenlm):
    sentences = random_corpus(221)
    model = glm.train(lines=to_lines(sentences), order=4, discount_fallback=True)
    model.save(tmp_path / "m.arpa")
    model.save(tmp_path / "m.glmb")
    assert_agree(glm.load(tmp_path / "m.glmb"), kenlm.Model(str(tmp_path / "m.arpa")),
                 probe_sentences(sentences, 221, 50), 4)


@pytest.fixture(scope="module")
def ptb_model(tmp_path_factory, kenlm):
    model = glm.train(str(corpus_path("ptb/ptb.train.txt.gz")), 3)
    path = tmp_path_factory.mktemp("ptb") / "ptb3.arpa"
    model.save(path)
    return model, kenlm.Model(str(path))


def test_ptb_order3(ptb_model):
    model, klm = ptb_model
    test_path = corpus_path("ptb/ptb.test.txt.gz")
    lines = read_corpus_lines("ptb/ptb.test.txt.gz")
    probe = lines[:300] + ["", "this is a sentence with glorbs and flarps", "<unk> <unk>",
                           "the the the the the"]
    assert_agree(model, klm, probe, 3)
    scores = model.score_many(lines)
    for line, got in zip(lines, scores):
        assert sentence_close(got, klm.score(line), len(line.split()) + 1), line
    assert_evaluation_agrees(model, klm, lines, test_path)


# ---------------------------------------------------------------------------------------- lmplz
LMPLZ = shutil.which("lmplz")
needs_lmplz = pytest.mark.skipif(LMPLZ is None, reason="KenLM's lmplz is not on PATH")


def run_lmplz(tmp_path, lines, order, args=()):
    text = tmp_path / "lmplz-input.txt"
    text.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "lmplz.arpa"
    cmd = [LMPLZ, "-o", str(order), "-S", "256M", "-T", str(tmp_path), "--text", str(text),
           "--arpa", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def compare_with_lmplz(tmp_path, lines, order, lmplz_args=(), **glm_kw):
    arpa_path = run_lmplz(tmp_path, lines, order, lmplz_args)
    theirs = glm.load(arpa_path)
    mine = glm.train(lines=iter(lines), order=order, **glm_kw)
    mine.save(tmp_path / "glm.arpa")
    a, b = parse_arpa(tmp_path / "glm.arpa"), parse_arpa(arpa_path)
    assert a.counts == b.counts
    assert_ngrams_float32(a.ngrams, b.ngrams, GLM_UNITS, "glm vs lmplz")
    assert list(theirs.counts) == list(mine.counts)
    assert list(theirs.vocab) == list(mine.vocab)
    # the model glm loaded from lmplz's file answers as glm's own model: a stored n-gram's value is
    # the stored number
    grams = [g for entries in b.ngrams for g in entries]
    for g in random.Random(0).sample(grams, min(len(grams), 20000)):
        want = b.ngrams[len(g) - 1][g][0]
        assert abs(theirs.logprob(g[-1], g[:-1]) - want) <= float32_unit(want) / 2, g
        assert abs(mine.logprob(g[-1], g[:-1]) - want) <= GLM_UNITS * float32_unit(want), g
    # sentences: each token is a value plus at most order - 1 backoffs (all <= 0, so no larger than
    # the sentence's total), each within GLM_UNITS of lmplz's
    probe = lines[:200] + ["", "unseen words here", lines[0] + " " + lines[-1]]
    for line, x, y in zip(probe, theirs.score_many(probe), mine.score_many(probe)):
        assert abs(x - y) <= (len(line.split()) + 1) * order * GLM_UNITS * float32_unit(x), line


@needs_lmplz
@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [231, 232])
def test_lmplz_random(tmp_path, seed, order):
    lines = to_lines(random_corpus(seed))
    compare_with_lmplz(tmp_path, lines, order, ["--discount_fallback"], discount_fallback=True)


@needs_lmplz
@pytest.mark.parametrize("order,prune", [(3, (0, 1)), (4, (0, 1, 2)), (5, (0, 0, 1))])
def test_lmplz_random_pruned(tmp_path, order, prune):
    lines = to_lines(random_corpus(233, n_sentences=400))
    compare_with_lmplz(tmp_path, lines, order,
                       ["--discount_fallback", "--prune", *map(str, prune)],
                       discount_fallback=True, prune=prune)


@needs_lmplz
def test_lmplz_options(tmp_path):
    lines = to_lines(random_corpus(234))
    compare_with_lmplz(tmp_path, lines, 3, ["--discount_fallback", "--interpolate_unigrams", "0"],
                       discount_fallback=True, interpolate_unigrams=False)
    compare_with_lmplz(tmp_path, lines, 3, ["--discount_fallback", "--vocab_pad", "500"],
                       discount_fallback=True, vocab_pad=500)
    compare_with_lmplz(tmp_path, lines, 2, ["--discount_fallback", "0.3", "0.9", "1.4"],
                       discount_fallback=(0.3, 0.9, 1.4))


@needs_lmplz
@pytest.mark.parametrize("order", [3, 5])
def test_lmplz_brown(tmp_path, order):
    compare_with_lmplz(tmp_path, read_corpus_lines("brown/brown.txt.gz", 2000), order)


@needs_lmplz
def test_lmplz_verbose_header_and_compressed(tmp_path):
    """lmplz --verbose_header puts text before \\data\\; glm reads it, compressed too."""
    import gzip
    lines = to_lines(random_corpus(235))
    arpa = run_lmplz(tmp_path, lines, 3, ["--discount_fallback", "--verbose_header"])
    assert not arpa.read_text().startswith("\\data\\")
    gz = tmp_path / "lmplz.arpa.gz"
    gz.write_bytes(gzip.compress(arpa.read_bytes()))
    a, b = glm.load(arpa), glm.load(gz)
    mine = glm.train(lines=lines, order=3, discount_fallback=True)
    for line, x, y in zip(lines, a.score_many(lines), mine.score_many(lines)):
        assert abs(x - y) <= (len(line.split()) + 1) * 3 * GLM_UNITS * float32_unit(x), line
    assert a.score_many(lines).tobytes() == b.score_many(lines).tobytes()


@pytest.mark.skipif(shutil.which("build_binary") is None, reason="KenLM's build_binary is not on PATH")
@pytest.mark.parametrize("kind", ["probing", "trie"])
def test_kenlm_binary_of_our_arpa_scores_as_kenlm(tmp_path, kind):
    """A binary that build_binary makes from glm's ARPA file: glm reads it and scores every token as the
    kenlm module does on the same binary (the committed binaries of tests/data/kenlm cover the rest)."""
    import kenlm
    lines = to_lines(random_corpus(236))
    model = glm.train(lines=lines, order=3, discount_fallback=True)
    model.save(tmp_path / "m.arpa")
    proc = subprocess.run([shutil.which("build_binary"), kind, str(tmp_path / "m.arpa"), str(tmp_path / "m.klm")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours, theirs = glm.load(tmp_path / "m.klm"), kenlm.Model(str(tmp_path / "m.klm"))
    for line in lines[:50] + ["w1 never-seen w2"]:
        assert [t[:2] for t in ours.full_scores(line)] == [t[:2] for t in theirs.full_scores(line)], line
