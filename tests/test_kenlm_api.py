"""glm.kenlm against the kenlm module on the same ARPA files: sentence scores, full scores, perplexity,
State-chained BaseScore / BaseFullScore, State equality and hashing, `in`, Config / LoadMethod, and the
kenlm-style API over GLM models."""
from __future__ import annotations

import copy
import itertools
import pickle
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import glm
import glm.kenlm as gk
from helpers import corpus_path, random_corpus, read_corpus_lines, to_lines

kenlm = pytest.importorskip("kenlm")

TOL = 1e-4
SPACES = [" ", "\t", "\n", "\x0b", "\x0c", "\r", "  \t "]


def probe(sentences, seed, n=120):
    """Training sentences, word salad with OOVs, KenLM's whitespace, literal <s> </s> <unk>, empty
    lines, a NUL."""
    rng = random.Random(seed)
    words = sorted({w for s in sentences for w in s})
    out = [" ".join(s) for s in sentences[:60]]
    out += ["", "   ", "OOV", "<unk>", "<s>", "</s>", "a <s> b", "</s> </s>", "<s> x </s>",
            f"{words[0]} </s> {words[-1]}", f"{words[0]}\0{words[-1]} {words[0]}", "é ü 中文"]
    for _ in range(n):
        sent = [rng.choice(words + ["oov1", "oov2", "<s>", "</s>", "<unk>"]) for _ in range(rng.randint(0, 25))]
        out.append("".join(w + rng.choice(SPACES) for w in sent).strip(" ") if rng.random() < 0.3
                   else " ".join(sent))
    return out


def assert_sentences_agree(ours, theirs, lines):
    for line in lines:
        for bos, eos in itertools.product((True, False), repeat=2):
            assert ours.score(line, bos, eos) == pytest.approx(theirs.score(line, bos, eos), abs=TOL), \
                (line, bos, eos)
            mine = list(ours.full_scores(line, bos, eos))
            want = list(theirs.full_scores(line, bos, eos))
            assert [(n, bool(o)) for _, n, o in mine] == [(n, bool(o)) for _, n, o in want], (line, bos, eos)
            np.testing.assert_allclose([p for p, _, _ in mine], [p for p, _, _ in want], atol=TOL, rtol=0)
        assert ours.perplexity(line) == pytest.approx(theirs.perplexity(line), rel=1e-4), line
        assert ours.score(line.encode()) == pytest.approx(theirs.score(line.encode()), abs=TOL), line


def chains(ours, theirs, words, seed, n_chains=60, length=14):
    """Random State chains through both models; yields (word, our result, kenlm's, our state, kenlm's
    state) after each step."""
    rng = random.Random(seed)
    for c in range(n_chains):
        a, b, ka, kb = gk.State(), gk.State(), kenlm.State(), kenlm.State()
        if c % 3:
            ours.BeginSentenceWrite(a)
            theirs.BeginSentenceWrite(ka)
        else:
            ours.NullContextWrite(a)
            theirs.NullContextWrite(ka)
        for _ in range(rng.randint(1, length)):
            w = rng.choice(words)
            full = c % 2 == 0
            if full:
                got, want = ours.BaseFullScore(a, w, b), theirs.BaseFullScore(ka, w, kb)
            else:
                got, want = ours.BaseScore(a, w, b), theirs.BaseScore(ka, w, kb)
            yield w, got, want, copy.copy(b), copy.copy(kb)
            a, b, ka, kb = b, a, kb, ka


def assert_states_agree(ours, theirs, words, seed):
    states = []
    for w, got, want, s, ks in chains(ours, theirs, words, seed):
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=TOL), w
        else:
            assert (got.log_prob, got.ngram_length, got.oov) == (
                pytest.approx(want.log_prob, abs=TOL), want.ngram_length, want.oov), w
        states.append((s, ks))
    # equal exactly when KenLM's are (its right-state minimization), and equal ones hash equally
    for (s, ks), (t, kt) in itertools.combinations(states[::3], 2):
        assert (s == t) == (ks == kt)
        assert (s != t) == (ks != kt)
        if s == t:
            assert hash(s) == hash(t)
            assert not s < t and s <= t
        else:
            assert (s < t) != (t < s)


@pytest.fixture(params=[(2, 301), (3, 302), (4, 303), (5, 304)], ids=lambda p: f"order{p[0]}")
def pair(request, tmp_path):
    order, seed = request.param
    sentences = random_corpus(seed, unk_prob=0.02)
    model = glm.train(lines=to_lines(sentences), order=order, discount_fallback=True,
                      prune=(0, 1) if seed == 303 else ())
    model.save(tmp_path / "m.arpa")
    model.save(tmp_path / "m.glmb")
    return sentences, tmp_path, kenlm.Model(str(tmp_path / "m.arpa"))


@pytest.mark.parametrize("fmt", ["arpa", "glmb"])
def test_sentences_like_kenlm(pair, fmt):
    sentences, tmp, theirs = pair
    ours = gk.Model(tmp / f"m.{fmt}")
    assert ours.order == theirs.order
    assert_sentences_agree(ours, theirs, probe(sentences, 7))


@pytest.mark.parametrize("fmt", ["arpa", "glmb"])
def test_states_like_kenlm(pair, fmt):
    sentences, tmp, theirs = pair
    ours = gk.Model(str(tmp / f"m.{fmt}"))
    words = sorted({w for s in sentences for w in s}) + ["oov", "<s>", "</s>", "<unk>"]
    assert_states_agree(ours, theirs, words, 11)


def test_state_chain_is_sentence_score(pair):
    """full_scores == BaseFullScore chained from BeginSentenceWrite, then </s>."""
    sentences, tmp, _ = pair
    ours = gk.Model(tmp / "m.glmb")
    for line in to_lines(sentences[:40]):
        s, t = gk.State(), gk.State()
        ours.BeginSentenceWrite(s)
        got = []
        for w in line.split() + ["</s>"]:
            r = ours.BaseFullScore(s, w, t)
            got.append((r.log_prob, r.ngram_length, r.oov))
            s, t = t, s
        assert got == [(pytest.approx(p, abs=1e-6), n, o) for p, n, o in ours.full_scores(line)]


def test_contains_like_kenlm(pair):
    sentences, tmp, theirs = pair
    ours = gk.Model(tmp / "m.glmb")
    words = sorted({w for s in sentences for w in s}) + ["<s>", "</s>", "<unk>", "nope", "", "a b"]
    assert [w in ours for w in words] == [w in theirs for w in words]
    assert [w.encode() in ours for w in words] == [w in theirs for w in words]
    glm_model = glm.load(tmp / "m.glmb")
    assert [w in glm_model for w in words] == [w in theirs for w in words]


@pytest.fixture(scope="module")
def ptb_pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ptb")
    model = glm.train(str(corpus_path("ptb/ptb.train.txt.gz")), 4)
    model.save(tmp / "ptb4.arpa")
    model.save(tmp / "ptb4.glmb")
    return tmp, kenlm.Model(str(tmp / "ptb4.arpa"))


def test_ptb_like_kenlm(ptb_pair):
    tmp, theirs = ptb_pair
    ours = gk.Model(tmp / "ptb4.glmb")
    lines = read_corpus_lines("ptb/ptb.test.txt.gz", 300)
    assert_sentences_agree(ours, theirs, lines[:150] + ["the <s> company </s> said", "glorb flarp"])
    words = sorted({w for line in lines for w in line.split()}) + ["zzz", "</s>"]
    assert_states_agree(ours, theirs, words, 5)


LMPLZ = shutil.which("lmplz")


@pytest.mark.skipif(LMPLZ is None, reason="KenLM's lmplz is not on PATH")
@pytest.mark.parametrize("prune", [(), ("--prune", "0", "1", "1")])
def test_lmplz_arpa_like_kenlm(tmp_path, prune):
    """lmplz's own ARPA files (pruned ones keep n-grams with zero backoff that other n-grams extend)."""
    sentences = random_corpus(321, n_sentences=400)
    (tmp_path / "in.txt").write_text("".join(s + "\n" for s in to_lines(sentences)))
    subprocess.run([LMPLZ, "-o", "4", "--discount_fallback", *prune, "--text", str(tmp_path / "in.txt"),
                    "--arpa", str(tmp_path / "l.arpa")], check=True, capture_output=True)
    ours, theirs = gk.Model(tmp_path / "l.arpa"), kenlm.Model(str(tmp_path / "l.arpa"))
    assert_sentences_agree(ours, theirs, probe(sentences, 3, 60))
    assert_states_agree(ours, theirs, sorted({w for s in sentences for w in s}) + ["oov"], 3)


# -- the API's details -----------------------------------------------------------------------------
def test_api_surface(pair):
    _, tmp, theirs = pair
    for name in ("LAZY", "POPULATE_OR_LAZY", "POPULATE_OR_READ", "READ", "PARALLEL_READ"):
        assert getattr(gk.LoadMethod, name) == getattr(kenlm.LoadMethod, name)
    for name in ("ALL", "EXPENSIVE", "NONE"):
        assert getattr(gk.ARPALoadComplain, name) == getattr(kenlm.ARPALoadComplain, name)
    kc, c = kenlm.Config(), gk.Config()
    assert (c.load_method, c.show_progress, c.arpa_complain) == (kc.load_method, kc.show_progress, kc.arpa_complain)
    c.load_method, c.show_progress = gk.LoadMethod.LAZY, False
    ours = gk.LanguageModel(str(tmp / "m.arpa"), c)
    assert isinstance(ours, gk.Model)
    assert ours.path == theirs.path and isinstance(ours.path, bytes)
    assert repr(ours) == repr(theirs)
    assert all(hasattr(ours, n) for n in dir(kenlm.Model) if not n.startswith("_"))
    assert ours.model.order == ours.order


def test_load_errors(tmp_path):
    with pytest.raises(OSError, match="Cannot read model"):
        gk.Model(tmp_path / "missing.arpa")
    (tmp_path / "bad.arpa").write_text("not a model\n")
    with pytest.raises(OSError, match="bad.arpa"):
        gk.Model(tmp_path / "bad.arpa")
    with pytest.raises(TypeError):
        gk.Model(3)


def test_state_object(pair):
    sentences, tmp, _ = pair
    ours = gk.Model(tmp / "m.glmb")
    s, t = gk.State(), gk.State()
    assert s == t and hash(s) == hash(t) and s.length == 0 and bool(s)
    assert s != "x" and not (s == None)        # noqa: E711  (other types are never equal)
    with pytest.raises(TypeError):
        _ = s < 3
    ours.BeginSentenceWrite(s)
    assert s.words == (ours.index("<s>"),) and s != t
    w = sentences[0][0] if sentences[0] else "oov"
    p = ours.BaseScore(s, w, t)
    for clone in (copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert clone == t and hash(clone) == hash(t)
        assert (clone.words, clone.backoffs) == (t.words, t.backoffs)
    # the same State as input and output
    u = copy.copy(s)
    assert ours.BaseScore(u, w, u) == p and u == t
    with pytest.raises(TypeError):
        ours.BaseScore(s, 5, t)
    with pytest.raises(TypeError):
        ours.BaseScore(None, w, t)
    r = ours.BaseFullScore(s, "surely-oov", t)
    assert r.oov and r.ngram_length >= 1 and repr(r) == f"FullScoreReturn({r.log_prob!r}, {r.ngram_length}, True)"


def test_state_of_another_model(tmp_path):
    big = glm.train(lines=[" ".join(f"w{i}" for i in range(50))], order=3, discount_fallback=True)
    small = glm.train(lines=["a b"], order=3, discount_fallback=True)
    b, s = gk.Model.from_model(big), gk.Model.from_model(small)
    st, out = gk.State(), gk.State()
    b.BeginSentenceWrite(st)
    b.BaseScore(st, "w49", out)
    with pytest.raises(ValueError, match="another model"):
        s.BaseScore(out, "a", st)


def test_glm_model_through_kenlm_api(tmp_path):
    """A GLM: its State keeps the last order-1 words; chains give Model.full_scores and logprob."""
    sentences = random_corpus(331)
    model = glm.train(lines=to_lines(sentences), order=4, method="glm", discount_fallback=True, tune_split=0)
    model.save(tmp_path / "g.glmb")
    ours = gk.Model(tmp_path / "g.glmb")
    for line in to_lines(sentences[:30]) + ["oov " + " ".join(sentences[1])]:
        for bos, eos in itertools.product((True, False), repeat=2):
            assert ours.score(line, bos, eos) == pytest.approx(model.score(line, bos, eos), abs=1e-5)
        s, t = gk.State(), gk.State()
        ours.BeginSentenceWrite(s)
        ctx = ["<s>"]
        for (p, n, oov), w in zip(model.full_scores(line), line.split() + ["</s>"]):
            r = ours.BaseFullScore(s, w, t)
            assert (r.log_prob, r.ngram_length, r.oov) == (pytest.approx(p, abs=1e-5), n, oov)
            assert r.log_prob == pytest.approx(model.logprob(w, ctx), abs=1e-5)
            ctx.append(w)
            assert t.length == min(len(ctx), 3) and t.backoffs == (0.0,) * t.length
            s, t = t, s


def test_glm_model_reads_as_glm(tmp_path):
    """glm.Model's own reading (as `glm score`): literal <s> </s> are <unk>; a VT is part of a word."""
    model = glm.train(lines=["a b c", "b c a"], order=3, discount_fallback=True)
    k = gk.Model.from_model(model)
    assert model.score("a <s> b") == pytest.approx(model.score("a <unk> b"))
    assert model.score("a\x0bb") == pytest.approx(model.score("ab"))
    assert k.score("a\x0bb") == pytest.approx(k.score("a b"))
    assert model.score(b"a \xff b") == pytest.approx(model.score("a \ufffd b"))
    assert model.score("a\ud800 b") == pytest.approx(model.score("a? b"))
    with pytest.raises(TypeError):
        model.score(None)


def test_long_sentence(pair):
    """Sentences longer than the stack buffers (heap path) score as the sum of their words."""
    sentences, tmp, theirs = pair
    ours = gk.Model(tmp / "m.glmb")
    words = [w for s in sentences for w in s] * 3
    line = " ".join(words[:3000])
    assert ours.score(line) == pytest.approx(theirs.score(line), abs=1e-2)
    assert len(list(ours.full_scores(line))) == len(line.split()) + 1


KENLM_DATA = Path(__file__).resolve().parent / "data" / "kenlm"
BINARIES = sorted(p.name for p in KENLM_DATA.glob("*") if p.suffix not in (".gz", ".md", ".txt", ".novocab")) \
    if KENLM_DATA.is_dir() else []


@pytest.mark.skipif(not BINARIES, reason="no KenLM binaries in tests/data/kenlm (glm reads them from issue 15 item 1 on)")
@pytest.mark.parametrize("name", BINARIES)
def test_kenlm_binaries_like_kenlm(name):
    """KenLM's own binaries (probing, trie, quantized, pointer-compressed), read by glm."""
    path = KENLM_DATA / name
    ours, theirs = gk.Model(path), kenlm.Model(str(path))
    words = list(ours.model.vocab)[:300]
    sentences = [words[i:i + 7] for i in range(0, 280, 7)]
    assert_sentences_agree(ours, theirs, probe(sentences, 1, 40))
    assert_states_agree(ours, theirs, words + ["oov", "<s>", "</s>"], 2)
