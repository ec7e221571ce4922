"""KenLM binaries (build_binary: probing, trie, quantized, pointer-compressed) read by glm: scores equal
the kenlm module's on the same file, token by token; dumps carry the n-grams and values of the ARPA file
they were built from; damaged files fail cleanly.  The binaries are in tests/data/kenlm (see its README)."""
from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import numpy as np
import pytest

import glm
from glm import _kenlm
from glm.cli import main as cli
from helpers import parse_arpa

kenlm = pytest.importorskip("kenlm")

DATA = Path(__file__).resolve().parent / "data" / "kenlm"
REPO = Path(__file__).resolve().parents[1]
BINARIES = sorted(p.name for p in DATA.iterdir() if p.suffix in (".probing", ".trie"))
QUANTIZED = {name for name in BINARIES if ".q" in name}
ULP = 2.0 ** -23                   # float32's relative precision


def source_arpa(name: str) -> Path:
    return DATA / (name.split(".")[0] + ".arpa.gz")


def corpus_lines(name: str) -> list[str]:
    if name.startswith("sh"):
        with gzip.open(REPO / "data" / "shakespeare-train.txt.gz", "rt", encoding="utf-8") as f:
            return [next(f).rstrip("\n") for _ in range(300)]
    with gzip.open(DATA / "markov.txt.gz", "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def probe_lines(name: str, n_random: int = 120) -> list[str]:
    """Training lines, word salad with OOVs, empty and odd lines."""
    lines = corpus_lines(name)
    rng = random.Random(len(name))
    words = sorted({w for line in lines for w in line.split()})
    out = lines[:150] + ["", "   ", "OOV", "OOV OOV", "<unk>", "<unk> x " + words[0], words[0] + " " + words[-1]]
    for _ in range(n_random):
        sent = [rng.choice(words) if rng.random() > 0.07 else f"oov{rng.randint(0, 3)}"
                for _ in range(rng.randint(0, 20))]
        out.append(" ".join(sent))
    return out


@pytest.fixture(scope="module", params=BINARIES)
def pair(request):
    path = DATA / request.param
    return request.param, glm.load(path), kenlm.Model(str(path))


def test_layout_and_vocabulary(pair):
    name, model, klm = pair
    assert model.order == klm.order
    assert isinstance(model, glm.KenLMModel)
    arpa = parse_arpa(source_arpa(name))
    assert model.counts[0] == arpa.counts[0]
    if "srilm" not in name:
        assert model.counts == arpa.counts
    words = {g[0] for g in arpa.ngrams[0]}
    assert set(model.vocab) == words
    for w in list(words)[:50]:
        assert (model.vocab.id(w) != 0) == (w in klm), w
    assert repr(model).startswith("<glm.KenLMModel")


def test_scores_equal_kenlm(pair):
    """Per token (full_scores) to float32 ulps with matched lengths and OOV flags; per line (score,
    score_many, perplexity) to the ulps of a float32 sum; all four bos/eos settings."""
    name, model, klm = pair
    lines = probe_lines(name)
    for bos in (True, False):
        for eos in (True, False):
            many = model.score_many(lines, bos, eos)
            for i, line in enumerate(lines):
                theirs = list(klm.full_scores(line, bos=bos, eos=eos))
                mine = list(model.full_scores(line, bos=bos, eos=eos))
                assert [(n, bool(o)) for _, n, o in mine] == [(n, bool(o)) for _, n, o in theirs], line
                np.testing.assert_allclose([p for p, _, _ in mine], [p for p, _, _ in theirs], rtol=4 * ULP,
                                           atol=0, err_msg=line)
                want = klm.score(line, bos=bos, eos=eos)
                tol = 4 * ULP * (len(theirs) + 1) * max(1.0, sum(abs(p) for p, _, _ in theirs))
                assert abs(model.score(line, bos=bos, eos=eos) - want) <= tol, line
                assert abs(many[i] - want) <= tol, line
    for line in lines[:50]:
        assert model.perplexity(line) == pytest.approx(klm.perplexity(line), rel=1e-5)
    starts, lp, matched, oov = model.token_scores(lines)
    for i, line in enumerate(lines[:60]):
        theirs = list(klm.full_scores(line))
        np.testing.assert_allclose(lp[starts[i]:starts[i + 1]], [t[0] for t in theirs], rtol=4 * ULP, atol=0)
        assert list(matched[starts[i]:starts[i + 1]]) == [t[1] for t in theirs]


def kenlm_chain(klm, words, bos=True):
    state, out = kenlm.State(), kenlm.State()
    (klm.BeginSentenceWrite if bos else klm.NullContextWrite)(state)
    total = 0.0
    for w in words:
        total = klm.BaseScore(state, w, out)
        state, out = out, state
    return total


def test_logprob_equals_chained_state(pair):
    """logprob(w, context), KenLM's FullScoreForgotState, equals the kenlm module's state chained over
    the context."""
    name, model, klm = pair
    rng = random.Random(3)
    words = [w for w in model.vocab if w not in ("<s>", "</s>")]
    for line in probe_lines(name, 30)[:80]:
        toks = line.split()
        for k in range(len(toks)):
            ctx = toks[max(0, k - model.order):k]
            want = kenlm_chain(klm, [*ctx, toks[k]], bos=False)
            assert model.logprob(toks[k], ctx) == pytest.approx(want, rel=4 * ULP, abs=0), (ctx, toks[k])
            full = toks[:k]
            want = kenlm_chain(klm, [*full[-(model.order - 1):], toks[k]] if len(full) >= model.order - 1
                               else [*full, toks[k]], bos=len(full) < model.order - 1)
            ctx = (["<s>"] + full)[-(model.order - 1):] if model.order > 1 else []
            assert model.logprob(toks[k], ctx) == pytest.approx(want, rel=4 * ULP, abs=0), (ctx, toks[k])
    for _ in range(200):
        ctx = [rng.choice(words) for _ in range(rng.randint(0, model.order))]
        w = rng.choice(words + ["oov"])
        assert model.logprob(w, ctx) == pytest.approx(kenlm_chain(klm, [*ctx, w], bos=False), rel=4 * ULP, abs=0)


def test_step_chains_like_kenlm_state(pair):
    """The scorer's KenLM state transition (the C step function behind step_capsule), chained over
    sentences: the same log10 p and n-gram length as BaseFullScore, the same state (compared through
    KenLM's state hash, MurmurHash64A of the state's word ids)."""
    name, model, klm = pair
    scorer = model._trie
    perm = model.perm
    assert type(scorer.step_capsule()).__name__ == "PyCapsule"
    for line in probe_lines(name, 40)[:120]:
        for bos in (True, False):
            kstate, kout = kenlm.State(), kenlm.State()
            if bos:
                klm.BeginSentenceWrite(kstate)
                words, backoffs = scorer.begin_sentence()
            else:
                klm.NullContextWrite(kstate)
                words, backoffs = (), ()
            for w in line.split() + ["</s>"]:
                ret = klm.BaseFullScore(kstate, w, kout)
                g = model.vocab.id(w)
                p, words, backoffs, n = scorer.step(list(words), np.array(backoffs, dtype=np.float32), g)
                assert p == pytest.approx(ret.log_prob, rel=4 * ULP, abs=0), (line, w)
                assert n == ret.ngram_length, (line, w)
                h = _kenlm.word_hash(np.array([perm[x] for x in words], dtype=np.uint32).tobytes())
                h = h - (1 << 64) if h >= 1 << 63 else h        # kenlm.State.__hash__: the hash as int64
                assert hash(kout) == (-2 if h == -1 else h), (line, w, words)
                kstate, kout = kout, kstate


def test_step_capsule_callable_from_c():
    """The capsule's function, called through ctypes as a C caller would, chains like BaseScore."""
    import ctypes
    model = glm.load(DATA / "mk4.q8a22.trie")
    klm = kenlm.Model(str(DATA / "mk4.q8a22.trie"))
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    Step = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                            ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_uint32,
                            ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_float),
                            ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
    step = Step(get(model._trie.step_capsule(), b"glm.step"))
    U, F = ctypes.c_uint32 * 16, ctypes.c_float * 16
    for line in probe_lines("mk4.trie", 10)[:40]:
        words, bos = U(1), F(*model._trie.begin_sentence()[1])
        length = ctypes.c_int(1)
        kstate, kout = kenlm.State(), kenlm.State()
        klm.BeginSentenceWrite(kstate)
        for w in line.split() + ["</s>"]:
            out_words, out_bo, out_len, matched = U(), F(), ctypes.c_int(), ctypes.c_int()
            p = step(id(model._trie), words, bos, length, model.vocab.id(w), out_words, out_bo,
                     ctypes.byref(out_len), ctypes.byref(matched))
            ret = klm.BaseFullScore(kstate, w, kout)
            assert p == pytest.approx(ret.log_prob, rel=4 * ULP, abs=0) and matched.value == ret.ngram_length
            words, bos, length = out_words, out_bo, out_len
            kstate, kout = kout, kstate


def load_arpa_scores(klm, lines):
    return np.array([klm.score(line) for line in lines])


@pytest.mark.parametrize("name", BINARIES)
def test_dump_carries_the_source_arpa(tmp_path, name):
    """glm convert x.bin x.arpa: an unquantized binary gives the n-grams and values (float32) of its
    ARPA file (plus, for an ARPA lacking n-grams' suffixes, the blanks KenLM added); a quantized one its
    dequantized values.  Either way the kenlm module scores the dump as it scores the binary."""
    path = DATA / name
    out = tmp_path / "dump.arpa"
    assert cli(["convert", str(path), str(out), "-q"]) == 0
    got, want = parse_arpa(out), parse_arpa(source_arpa(name))
    assert len(got.counts) == len(want.counts)
    for n, (g, w) in enumerate(zip(got.ngrams, want.ngrams), 1):
        assert set(w) <= set(g), n
        extra = set(g) - set(w)
        assert not extra or ("srilm" in name and n == 2), (n, sorted(extra)[:5])
        if name in QUANTIZED and n > 1:
            continue
        for gram, (p, bo) in w.items():
            q, bo2 = g[gram]
            assert np.float32(q) == np.float32(p), (gram, p, q)
            assert np.float32(bo2 or 0) == np.float32(bo or 0), (gram, bo, bo2)
    lines = probe_lines(name, 40)
    np.testing.assert_allclose(load_arpa_scores(kenlm.Model(str(out)), lines),
                               load_arpa_scores(kenlm.Model(str(path)), lines), rtol=1e-6, atol=1e-5)


def test_dump_to_glmb(tmp_path):
    for name in ("mk4.trie", "mk3.probing", "sh3.q8a22.trie"):
        out = tmp_path / (name + ".glmb")
        glm.load(DATA / name).save(out)
        lines = probe_lines(name, 30)
        np.testing.assert_allclose(glm.load(out).score_many(lines), glm.load(DATA / name).score_many(lines),
                                   rtol=1e-6, atol=1e-5)


def test_probing_dump_cost_is_reported():
    model = glm.load(DATA / "mk3.probing").to_model()
    cost = model.meta["dump_candidates"]           # {order: [candidates, table lookups]}
    assert set(cost) == {"2", "3"}
    assert all(candidates >= lookups >= count for (candidates, lookups), count in zip(cost.values(), model.counts[1:]))


def test_workers_map_the_binary_itself():
    """Scoring in worker processes that are not forked maps the KenLM file itself (no .glmb copy)."""
    from glm.curation.scoring import binary_model
    model = glm.load(DATA / "mk3.probing")
    for m in (model, DATA / "mk3.probing"):
        with binary_model(m) as path:
            assert Path(path) == DATA / "mk3.probing"


def test_info_and_evaluate(tmp_path, capsys):
    assert cli(["info", str(DATA / "mk4.q8a22.trie"), "--json"]) == 0
    assert '"kenlm_type": "trie, quantized, compressed pointers"' in capsys.readouterr().out
    lines = probe_lines("mk4.trie", 20)
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    klm = kenlm.Model(str(DATA / "mk4.trie"))
    ev = glm.load(DATA / "mk4.trie").evaluate(str(tmp_path / "t.txt"))
    assert ev.tokens == sum(len(line.split()) + 1 for line in lines)
    assert ev.log10_prob == pytest.approx(sum(klm.score(line) for line in lines), rel=1e-6)


# ------------------------------------------------------------------------------------------- errors
def damaged(tmp_path, name, edit) -> Path:
    data = bytearray((DATA / name).read_bytes())
    data = edit(data) or data
    out = tmp_path / ("damaged-" + name)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("edit,message", [
    (lambda d: d[:40], "truncated"),
    (lambda d: d[:len(d) // 2], "truncated"),
    (lambda d: d[:-3], "word list"),
    (lambda d: d.__setitem__(slice(0, 51), b"mmap lm http://kheafield.com/code format version 4\n"), "version '4'"),
    (lambda d: d.__setitem__(slice(0, 46), b"mmap lm http://kheafield.com/code incomplete\n\0"), "did not finish"),
    (lambda d: d.__setitem__(slice(56, 60), struct.pack("<f", 2.0)), "test values"),
    (lambda d: d.__setitem__(slice(96, 100), struct.pack("<I", 9)), "model type 9"),
    (lambda d: d.__setitem__(88, 1), "order 1"),
    (lambda d: d.__setitem__(slice(108, 116), struct.pack("<Q", 1 << 40)), "truncated"),
])
def test_damaged_header_fails_cleanly(tmp_path, edit, message):
    for name in ("mk3.probing", "mk4.q8a22.trie"):
        with pytest.raises(glm.ModelFormatError, match=message) as err:
            glm.load(damaged(tmp_path, name, edit))
        assert "damaged-" + name in str(err.value)


def test_binary_without_words(tmp_path):
    with pytest.raises(glm.ModelFormatError, match="build_binary -v"):
        glm.load(DATA / "mk2.trie.novocab")


def test_misplaced_word_fails_cleanly(tmp_path):
    def swap(d):
        at = d.rfind(b"\0w1\0") + 1
        d[at:at + 2] = b"x1"
    for name in ("mk3.probing", "mk3.q4b3.trie"):
        with pytest.raises(glm.ModelFormatError, match="not where KenLM's vocabulary puts it"):
            glm.load(damaged(tmp_path, name, swap))


def test_bad_child_range_is_reported(tmp_path):
    """A trie child pointer beyond the next table: a clean error when a lookup meets it."""
    model = glm.load(DATA / "mk3.q4b3.trie")
    k = int(model.perm[model.vocab.id("w1")])
    at = model.layout["unigram_offset"] + 16 * (k + 1) + 8     # the end of w1's children
    out = damaged(tmp_path, "mk3.q4b3.trie", lambda d: d.__setitem__(slice(at, at + 8), struct.pack("<Q", 1 << 40)))
    bad = glm.load(out)
    with pytest.raises(glm.ModelFormatError, match="child range of the 2-gram table"):
        bad.score_many(["w0 w1 w2 w3"] * 10)


def test_fuzz(tmp_path):
    """Damaged copies of every binary (fixed seed): zero crashes, hangs, other exceptions, and no load
    that then scores NaN, infinity or a positive log10 probability."""
    import kenlm_fuzz
    table, failures = kenlm_fuzz.fuzz([DATA / name for name in BINARIES], 30, seed=15, workdir=str(tmp_path))
    assert not failures, kenlm_fuzz.format_table(table) + "\n" + "\n".join(map(str, failures[:5]))
    assert sum(c["sane"] for c in table.values()) > 0 and sum(c["error"] for c in table.values()) > 0
