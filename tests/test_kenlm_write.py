"""glm's compact layout: back-off models written as KenLM trie binaries (glm/formats/kenlm_write.py).

The files are compared with what KenLM makes of the same ARPA files: byte for byte against the binaries
build_binary made (tests/data/kenlm, and build_binary itself when it is on PATH), and token by token as
the kenlm module scores them against the ARPA file; glm.load reads them as kenlm does; a dump (glm
convert) gives the source's n-grams back."""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import glm
from glm.cli import main as cli
from helpers import parse_arpa

kenlm = pytest.importorskip("kenlm")

DATA = Path(__file__).resolve().parent / "data" / "kenlm"
BUILD_BINARY = shutil.which("build_binary")
# (source ARPA, quantization bits, pointer bits, build_binary's file of that ARPA with those options)
STORED = [("sh3", None, None, "sh3.trie"), ("mk2", None, None, "mk2.trie"), ("mk4", None, None, "mk4.trie"),
          ("mk6", None, None, "mk6.trie"), ("mk3srilm", None, None, "mk3srilm.trie"),
          ("sh3", 8, None, "sh3.q8.trie"), ("mk2", 8, None, "mk2.q8.trie"), ("mk3", (4, 3), None, "mk3.q4b3.trie"),
          ("sh3", None, 22, "sh3.a22.trie"), ("mk2", None, 22, "mk2.a22.trie"), ("mk3", None, 255, "mk3.a255.trie"),
          ("sh3", 8, 22, "sh3.q8a22.trie"), ("mk4", 8, 22, "mk4.q8a22.trie"), ("mk6", 8, 22, "mk6.q8a22.trie")]


def markov_lines() -> list[str]:
    with gzip.open(DATA / "markov.txt.gz", "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def probe_lines(seed: int = 0, n: int = 80) -> list[str]:
    """Training lines, shuffled words with OOVs, empty lines, Shakespeare's words."""
    lines = markov_lines()
    with gzip.open(Path(__file__).resolve().parents[1] / "data" / "shakespeare-train.txt.gz", "rt",
                   encoding="utf-8") as f:
        lines += [next(f).rstrip("\n") for _ in range(300)][::5]
    rng = np.random.default_rng(seed)
    words = sorted({w for line in lines for w in line.split()})
    out = lines[:60] + lines[-60:] + ["", "OOV", "<unk> w1"]
    for _ in range(n):
        out.append(" ".join(words[i] if i < len(words) else "oov" for i in rng.integers(0, len(words) + 20, 12)))
    return out


def kenlm_tokens(klm, lines, bos=True, eos=True) -> list:
    return [list(klm.full_scores(line, bos=bos, eos=eos)) for line in lines]


def assert_same_scores(mine, theirs, lines) -> None:
    """Token by token: the same float32 log10 p (exactly), matched lengths and OOV flags."""
    for bos in (True, False):
        a, b = kenlm_tokens(mine, lines, bos), kenlm_tokens(theirs, lines, bos)
        for line, x, y in zip(lines, a, b):
            assert x == y, line


def source(name: str) -> Path:
    return DATA / f"{name}.arpa.gz"


@pytest.fixture(scope="module")
def arpa_dir(tmp_path_factory):
    """The test ARPA files decompressed (the kenlm module reads plain ARPA)."""
    d = tmp_path_factory.mktemp("arpa")
    for name in ("sh3", "mk2", "mk3", "mk4", "mk6", "mk3srilm"):
        (d / f"{name}.arpa").write_bytes(gzip.decompress(source(name).read_bytes()))
    return d


@pytest.mark.parametrize("name,bits,pointers,stored", STORED)
def test_byte_identical_to_build_binary(tmp_path, name, bits, pointers, stored):
    out = tmp_path / "out.trie"
    glm.load(source(name)).save(out, layout="compact", quantize=bits, pointer_bits=pointers)
    assert out.read_bytes() == (DATA / stored).read_bytes()


@pytest.mark.parametrize("step", [8, 24])
def test_written_a_step_at_a_time(tmp_path, monkeypatch, step):
    """The writer makes each table STEP entries at a time, its order-wide arrays from the allocator it
    is given: with steps of a few entries (every table cut many times, the extra entry alone in a
    step) and the arrays in a memory budget's files, every file is still build_binary's."""
    from glm.formats import kenlm_write
    from glm.spill import Scratch
    monkeypatch.setattr(kenlm_write, "STEP", step)
    with Scratch("64K", tmpdir=str(tmp_path)) as scratch:
        for name, bits, pointers, stored in STORED:
            out = tmp_path / "out.trie"
            bits = kenlm_write.layout_options("compact", bits, pointers)[1]
            kenlm_write.write_trie(glm.load(source(name)), out, bits, pointers, alloc=scratch.zeros)
            assert out.read_bytes() == (DATA / stored).read_bytes(), (name, bits, pointers)
        assert any(f.endswith(".array") for f in os.listdir(scratch.path))


@pytest.mark.parametrize("name,bits,pointers,stored", STORED)
def test_kenlm_scores_our_file_as_the_arpa(tmp_path, arpa_dir, name, bits, pointers, stored):
    """The kenlm module scores our file exactly as the ARPA file (unquantized) or as build_binary's
    quantized file of it; glm.load scores it as kenlm does."""
    out = tmp_path / "out.klm"
    glm.load(source(name)).save(out, layout="compact", quantize=bits, pointer_bits=pointers)
    mine = kenlm.Model(str(out))
    lines = probe_lines(len(name))
    assert_same_scores(mine, kenlm.Model(str(arpa_dir / f"{name}.arpa" if bits is None else DATA / stored)), lines)
    model = glm.load(out)
    assert isinstance(model, glm.KenLMModel)
    assert model.meta["kenlm_type"] == "trie" + (", quantized" if bits else "") + (
        ", compressed pointers" if pointers is not None else "")
    starts, lp, matched, oov = model.token_scores(lines)
    want = kenlm_tokens(mine, lines)
    for i, line in enumerate(lines):
        assert list(lp[starts[i]:starts[i + 1]]) == [np.float32(t[0]) for t in want[i]], line
        assert list(matched[starts[i]:starts[i + 1]]) == [t[1] for t in want[i]], line


@pytest.mark.parametrize("order", [2, 3, 5])
def test_fresh_mkn_models(tmp_path, order):
    """A model built by glm, written compact: kenlm scores it as the model's ARPA file; with
    build_binary on PATH, the file is the one it makes of that ARPA file."""
    lines = markov_lines()
    model = glm.train(lines=lines, order=order, prune=(0, 1) if order == 5 else ())
    arpa, out = tmp_path / "m.arpa", tmp_path / "m.trie"
    model.save(arpa)
    model.save(out, layout="compact")
    probe = probe_lines(order)
    assert_same_scores(kenlm.Model(str(out)), kenlm.Model(str(arpa)), probe)
    np.testing.assert_array_equal(glm.load(out).score_many(probe), kenlm_scores(out, probe))
    if BUILD_BINARY:
        for opts, bits, a in (([], None, None), (["-q", "8", "-b", "8"], 8, None), (["-q", "5", "-b", "3"], (5, 3), None),
                              (["-a", "22"], None, 22), (["-q", "8", "-b", "8", "-a", "9"], 8, 9)):
            ref = tmp_path / "ref.trie"
            subprocess.run([BUILD_BINARY, *opts, "trie", str(arpa), str(ref)], check=True, capture_output=True)
            model.save(out, layout="compact", quantize=bits, pointer_bits=a)
            assert out.read_bytes() == ref.read_bytes(), opts


def kenlm_scores(path, lines) -> np.ndarray:
    klm = kenlm.Model(str(path))
    return np.array([sum(np.float64(np.float32(t[0])) for t in klm.full_scores(line)) for line in lines])


def test_tuned_mkn_and_kenlm_models(tmp_path):
    """A tuned MKN (a GeneralizedModel) is written in its back-off form; a KenLM binary is written again
    (a quantized one from its dequantized values)."""
    lines = markov_lines()
    tuned = glm.train(lines=lines, order=3, tune_split=0.1)
    assert tuned.kind == "generalized"
    tuned.save(tmp_path / "t.arpa")
    tuned.save(tmp_path / "t.klm", layout="compact")
    probe = probe_lines(3)
    assert_same_scores(kenlm.Model(str(tmp_path / "t.klm")), kenlm.Model(str(tmp_path / "t.arpa")), probe)
    glm.load(DATA / "mk4.p12.probing").save(tmp_path / "p.klm", layout="compact")
    assert (tmp_path / "p.klm").read_bytes() == (DATA / "mk4.trie").read_bytes()
    assert cli(["convert", str(DATA / "mk3.q4b3.trie"), str(tmp_path / "q.klm"), "--layout", "compact", "-q"]) == 0
    assert_same_scores(kenlm.Model(str(tmp_path / "q.klm")), kenlm.Model(str(DATA / "mk3.q4b3.trie")), probe)


@pytest.mark.parametrize("name", ["mk4", "mk3srilm", "sh3"])
def test_convert_round_trip(tmp_path, name):
    """glm convert ARPA -> compact -> ARPA gives the source's n-grams and values (and, for an ARPA file
    lacking n-grams' suffixes, the blanks KenLM adds: the dump of build_binary's trie)."""
    trie, back = tmp_path / "m.trie", tmp_path / "back.arpa"
    assert cli(["convert", str(source(name)), str(trie), "--layout", "compact", "-q"]) == 0
    assert cli(["convert", str(trie), str(back), "-q"]) == 0
    got, want = parse_arpa(back), parse_arpa(source(name))
    assert got.counts[0] == want.counts[0]
    for n, (g, w) in enumerate(zip(got.ngrams, want.ngrams), 1):
        assert set(w) <= set(g)
        assert len(g) == len(w) or ("srilm" in name and n == 2)
        for gram, (p, bo) in w.items():
            assert np.float32(g[gram][0]) == np.float32(p), gram
            assert np.float32(g[gram][1] or 0) == np.float32(bo or 0), gram
    if "srilm" in name:
        ref = tmp_path / "ref.arpa"
        assert cli(["convert", str(DATA / "mk3srilm.trie"), str(ref), "-q"]) == 0
        assert back.read_bytes() == ref.read_bytes()


def test_quantized_values_are_bin_centers(tmp_path):
    """Every dequantized value of order >= 2 is one of 2^bits centers per order, and quantizing with
    more bits brings the scores closer to the unquantized ones."""
    model = glm.load(source("mk4"))
    probe = probe_lines(4)
    exact = model.score_many(probe)
    errors = []
    for bits in (3, 6, 12):
        out = tmp_path / f"q{bits}.klm"
        model.save(out, quantize=bits)
        dump = glm.load(out).to_model()
        for n in range(2, 5):
            assert len(np.unique(dump.levels[n - 1]["logprob"])) <= 1 << bits
        errors.append(np.abs(glm.load(out).score_many(probe) - exact).mean())
    assert errors[0] > errors[1] > errors[2] > 0


def test_errors(tmp_path):
    lines = markov_lines()
    gl = glm.train(lines=lines, order=3, method="glm", tune_split=0)
    with pytest.raises(ValueError, match="no compact layout"):
        gl.save(tmp_path / "g.klm", layout="compact")
    with pytest.raises(ValueError, match="no compact layout"):
        glm.train(lines=lines[:300], order=3, method="glm", output=tmp_path / "g.klm", layout="compact")
    model = glm.load(source("mk3"))
    for name in ("m.arpa", "m.arpa.gz", "m.glm", "m.glmb"):
        with pytest.raises(ValueError, match="KenLM's trie binary format"):
            model.save(tmp_path / name, layout="compact")
        assert not (tmp_path / name).exists()
    for bad in (1, 26, 0, True, 8.0, "8", (8,), (8, 8, 8), (8, 1)):
        with pytest.raises(ValueError, match="quantize"):
            model.save(tmp_path / "m.klm", quantize=bad)
    with pytest.raises(ValueError, match="layout"):
        model.save(tmp_path / "m.klm", layout="small")
    with pytest.raises(ValueError, match="compact layout only"):
        model.save(tmp_path / "m.klm", layout="fast", quantize=8)
    for bad in (-1, 256, 2.0, True):
        with pytest.raises(ValueError, match="pointer_bits"):
            model.save(tmp_path / "m.klm", pointer_bits=bad)
    with pytest.raises(ValueError, match="compact layout only"):
        model.save(tmp_path / "m.klm", layout="fast", pointer_bits=22)
    with pytest.raises(ValueError, match="order 1"):
        glm.load(source("mk1")).save(tmp_path / "m.klm", layout="compact")
    with pytest.raises(ValueError, match="give output"):
        glm.train(lines=lines[:300], order=3, layout="compact")
    assert not (tmp_path / "m.klm").exists()
    # the CLI: bad bits, a GLM name, the output over the input
    for argv in (["--quantize", "1"], ["--quantize", "8,26"], ["--quantize", "x"], ["--pointer-bits", "256"]):
        with pytest.raises(SystemExit):
            cli(["convert", str(source("mk3")), str(tmp_path / "c.klm"), *argv])
    assert cli(["convert", str(source("mk3")), str(tmp_path / "c.glmb"), "--layout", "compact", "-q"]) == 1
    copy = tmp_path / "mk4.trie"
    copy.write_bytes((DATA / "mk4.trie").read_bytes())
    assert cli(["convert", str(copy), str(copy), "--quantize", "8", "-q"]) == 1
    assert copy.read_bytes() == (DATA / "mk4.trie").read_bytes()
    assert cli(["build", "--order", "3", str(DATA / "markov.txt.gz"), "-o", str(tmp_path / "b.klm"),
                "--method", "glm", "--layout", "compact", "-q"]) == 1
    assert not (tmp_path / "b.klm").exists()


def test_zero_backoffs_of_contexts(tmp_path):
    """An ARPA file whose contexts have backoff 0 (every third one, orders 1 to 3): KenLM keeps them as
    +0.0 (the state may extend them), the n-grams no longer one extends as -0.0; kenlm then scores our
    file exactly as the ARPA file, and the signs read back are those of the contexts found in the text."""
    text = gzip.decompress(source("mk4").read_bytes()).decode()
    arpa = parse_arpa(source("mk4"))
    contexts = {g[:-1] for n in range(1, 4) for g in arpa.ngrams[n]}
    out_lines, k = [], 0
    for line in text.split("\n"):
        fields = line.split("\t")
        if len(fields) == 3 and tuple(fields[1].split(" ")) in contexts:
            k += 1
            if k % 3 == 0:
                line = "\t".join([fields[0], fields[1], "0"])
        out_lines.append(line)
    src = tmp_path / "zeros.arpa"
    src.write_text("\n".join(out_lines))
    out = tmp_path / "zeros.klm"
    model = glm.load(src)
    model.save(out, layout="compact")
    assert_same_scores(kenlm.Model(str(out)), kenlm.Model(str(src)), probe_lines(9))
    # the signs of the zero backoffs as stored, against the contexts of the ARPA file
    kmodel = glm.load(out)
    inv = {int(kmodel.perm[i]): w for i, w in enumerate(kmodel.vocab)}
    prob, backoff, _ = kmodel._scorer.unigrams()
    words = [(inv[i],) for i in range(len(prob))]
    checked = 0
    for n in range(1, 4):
        if n > 1:
            w, parent, _, backoff = kmodel._scorer.trie_level(n)
            words = [(inv[int(x)],) + words[int(p)] for x, p in zip(w, parent)]
        for gram, b in zip(words, backoff):
            if b == 0:
                assert bool(np.signbit(b)) == (gram not in contexts), gram
                checked += gram in contexts
    assert checked >= 20
    if BUILD_BINARY:
        for opts, bits in (([], None), (["-q", "6", "-b", "6"], 6)):
            ref = tmp_path / "ref.trie"
            subprocess.run([BUILD_BINARY, *opts, "trie", str(src), str(ref)], check=True, capture_output=True)
            model.save(out, layout="compact", quantize=bits)
            assert out.read_bytes() == ref.read_bytes(), opts


def test_nearest_center_rule():
    """KenLM's Bins::Encode: the first center >= the value or the one before it, whichever is closer in
    float32, the upper one on a tie; outside the centers, the end ones; reserved centers skipped."""
    from glm.formats.kenlm_write import _encode
    centers = np.array([-3.0, -2.0, -1.0, 0.0], dtype=np.float32)
    values = np.array([-5.0, -2.6, -2.5, -2.4, -1.0, 0.5, -0.5], dtype=np.float32)
    want = []
    for v in values:
        above = int(np.searchsorted(centers, v))
        want.append(0 if above == 0 else 3 if above == 4 else
                    above - int((v - centers[above - 1]) < (centers[above] - v)))
    assert list(_encode(values, centers, 0)) == want
    assert want[1:4] == [0, 1, 1]     # -2.5: as far from -3 as from -2, coded as the upper center
    assert list(_encode(values, centers, 2)) == [2, 2, 2, 2, 2, 3, 3]


@pytest.mark.parametrize("opts", [[], ["--quantize", "8"], ["--quantize", "8", "--pointer-bits", "22"]])
def test_written_to_a_pipe_as_to_a_file(tmp_path, opts):
    """The tables go to the file as they are made and the quantizer's header is filled in last; on an
    output that cannot seek (a pipe) the parts after that header wait, and the bytes are the same."""
    import sys
    model = tmp_path / "m.glmb"
    glm.train(lines=markov_lines(), order=4).save(model)
    out = tmp_path / "m.klm"
    assert cli(["convert", str(model), str(out), "--layout", "compact", *opts, "-q"]) == 0
    piped = subprocess.run([sys.executable, "-m", "glm", "convert", str(model), "/dev/stdout", "--layout", "compact",
                            *opts, "-q"], check=True, stdout=subprocess.PIPE).stdout
    assert piped == out.read_bytes() and len(piped) > 1000
