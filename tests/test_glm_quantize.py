"""Quantized GLM binary files (glm.quantize; ``model.save(path, quantize=BITS)``, ``--quantize``).

The bounds tested are derived from the stored values, not taken from a run.  Write e = v' - v for the
error of a stored value v (alpha of an n-gram, gamma of a history) read back as v'.

* Per value: the center of a bin is the mean of its values, so |e| <= the bin's width (its largest minus
  its smallest value); NaN, 0 and infinities are exact.
* Scores: P_S(w|h) = alpha + gamma * avg, avg = sum_c lambda_c P_c(w|h_c) with sum_c lambda_c = 1 (P = avg
  for an unseen history).  With 0 <= gamma <= 1 and avg' <= 1 + D_c,
      |P'_S - P_S| <= D_S = eps_alpha(S) + eps_gamma(S) (1 + D_c) + D_c,   D_c = max over S's children,
  eps_*(S) the largest error of the table, D_1 = 0 (the unigrams are not quantized).
* Sums: for a seen history sum_w alpha + gamma = 1 (the model is normalized), so
      sum_w P'_S - 1 = sum_w e_alpha(hw) + e_gamma(h) + gamma' (sum_w avg' - 1),
  |sum_w P'_S - 1| <= B_S = max_h sum_w |e_alpha(hw)| + eps_gamma(S) + (1 + eps_gamma(S)) B_c, B_1 = 0,
  where h runs over the histories of S (n-grams of S grouped by their words but the predicted one).
* The scorer caps a quantized model's probabilities at 1 (errors can add up past it): since P <= 1, a
  capped P' is no farther from P (|P'' - P| <= D), and the cap lowers a sum by at most the excess of the
  one word above 1 (the others then sum to less than 0 + B), at most D: sums within B + D.
"""
from __future__ import annotations

import gzip
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import glm
from glm.formats.binary import open_binary_model, verify_binary
from glm.generalized import combination
from glm.patterns import parent, span
from glm.quantize import Unpacked, offset_bits, pack, quantize
from helpers import context_sets, to_lines

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def corpus():
    """Real text: its small counts give alphas and gammas of more distinct values than 8 bits hold."""
    with gzip.open(DATA / "shakespeare-train.txt.gz", "rt", encoding="utf-8") as f:
        return [line.split() for line in f.read().split("\n")[:3000]]


@pytest.fixture(scope="module")
def files(tmp_path_factory, corpus):
    """{bits: path} of one order-3 GLM written unquantized (None) and with 8 and 16 bits."""
    d = tmp_path_factory.mktemp("q")
    model = glm.train(lines=to_lines(corpus), order=3, method="glm", tune_split=0, discount_fallback=True)
    out = {}
    for bits in (None, 8, 16):
        out[bits] = d / f"m{bits}.glmb"
        model.save(out[bits], quantize=bits)
    return out


def _values(path) -> dict:
    """{mask: {"alpha": array, "gamma": array}} of a file, dequantized."""
    tables = glm.load(path).tables.tables
    return {m: {k: np.asarray(t[k], dtype=np.float64) for k in ("alpha", "gamma")}
            for m, t in tables.items() if m > 1}


def _history_groups(path) -> dict:
    """{mask: group of each n-gram by its history}: n-grams with the same words but the predicted one."""
    tables = glm.load(path).tables.tables
    words = {1: np.arange(len(tables[1]["prob"]))[:, None]}
    groups = {}
    for m in sorted(tables)[1:]:
        t, p = tables[m], parent(m)
        rows = np.repeat(np.arange(len(t["starts"]) - 1), np.diff(np.asarray(t["starts"], dtype=np.int64)))
        w = np.full((len(t["word"]), span(m)), -1, dtype=np.int64)
        w[:, -span(p):] = words[p][rows]
        w[:, 0] = t["word"]
        words[m] = w
        groups[m] = np.unique(w[:, :-1], axis=0, return_inverse=True)[1].ravel()
    return groups


def _bounds(exact: dict, got: dict, groups: dict, order: int) -> tuple[float, float]:
    """(max over patterns of D_S, max of B_S), the module docstring's bounds, from the stored errors."""
    kids = combination(order, "glm")
    D, B = {1: 0.0}, {1: 0.0}
    for m in sorted(kids):
        ea = np.abs(got[m]["alpha"] - exact[m]["alpha"])
        g0, g1 = exact[m]["gamma"], got[m]["gamma"]
        assert np.array_equal(np.isnan(g0), np.isnan(g1)), "NaN gammas are kept exactly"
        eg = float(np.nanmax(np.abs(g1 - g0), initial=0.0))
        Dc = max(D[c] for c, _ in kids[m])
        Bc = max(B[c] for c, _ in kids[m])
        D[m] = float(ea.max(initial=0.0)) + eg * (1 + Dc) + Dc
        B[m] = float(np.bincount(groups[m], weights=ea).max(initial=0.0)) + eg + (1 + eg) * Bc
    return max(D.values()), max(B.values())


@pytest.mark.parametrize("bits", [8, 16])
def test_values_within_their_bin(files, bits):
    exact, got = _values(files[None]), _values(files[bits])
    arrays = open_binary_model(files[bits]).arrays
    lossy = 0
    for m in exact:
        for k in ("alpha", "gamma"):
            v, q, codes = exact[m][k], got[m][k], arrays[f"{m}.{k}"]
            assert codes.dtype == (np.uint8 if bits == 8 else np.uint16)
            assert len(arrays[f"{m}.{k}_book"]) <= 1 << bits
            for special in (0.0, np.inf):
                assert np.array_equal(v == special, q == special), f"{m}.{k}: {special} kept exactly"
            assert np.array_equal(np.isnan(v), np.isnan(q))
            ok = ~np.isnan(v)
            lo = np.full(codes.max(initial=0) + 1, np.inf)
            hi = np.full_like(lo, -np.inf)
            np.minimum.at(lo, codes[ok], v[ok])
            np.maximum.at(hi, codes[ok], v[ok])
            width = (hi - lo)[codes[ok]]
            # (the center is rounded to the stored dtype: float32 for alphas)
            slack = np.spacing(np.abs(v[ok]).astype(np.float32)).astype(np.float64) if k == "alpha" else 0
            assert (np.abs(q[ok] - v[ok]) <= width + slack).all(), f"{m}.{k}: a value outside its bin"
            lossy += int((q[ok] != v[ok]).any())
    if bits == 8:
        assert lossy, "the 8-bit model is exact: the test model is too small to test the bounds"


@pytest.mark.parametrize("bits", [8, 16])
def test_scores_and_sums_within_the_derived_bounds(files, corpus, bits):
    exact_model, model = glm.load(files[None]), glm.load(files[bits])
    D, B = _bounds(_values(files[None]), _values(files[bits]), _history_groups(files[None]), 3)
    if bits == 8:
        assert 0 < D and 0 < B < 0.5, f"bounds {D}, {B}: the test would test nothing"
    vocab = list(model.vocab)
    ids = [i for i, w in enumerate(vocab) if w != "<s>"]
    ctxs = context_sets(3, corpus, random.Random(3), vocab, 8, 60)
    for ctx in ctxs:
        p = 10.0 ** model.next_logprobs(ctx)[ids]
        p0 = 10.0 ** exact_model.next_logprobs(ctx)[ids]
        assert np.abs(p - p0).max() <= D * (1 + 1e-9) + 1e-12, ctx
        assert abs(math.fsum(p) - 1.0) <= (B + D) * (1 + 1e-9) + 1e-6, ctx       # (1e-6: float32 alphas)


def test_round_trip_and_requantizing_changes_nothing(files, tmp_path):
    model = glm.load(files[8])
    again = tmp_path / "again.glmb"
    model.save(again, quantize=8)
    assert again.read_bytes() == files[8].read_bytes()
    plain = tmp_path / "plain.glmb"
    model.save(plain)             # dequantized: float32 alphas, float64 gammas
    assert open_binary_model(plain).arrays["3.alpha"].dtype == np.float32
    lines = ["the king is dead", "long live the king", "qwerty the"]
    assert np.array_equal(glm.load(plain).score_lines(lines).log10_prob, model.score_lines(lines).log10_prob)
    text = tmp_path / "m.glm"
    model.save(text)
    want = model.score_lines(lines).log10_prob
    assert glm.load(text).score_lines(lines).log10_prob == pytest.approx(want, abs=1e-4)


def test_unquantized_files_are_unchanged(files, tmp_path):
    """A model read from a quantized file and saved unquantized gives the unquantized file's bytes back
    where nothing was lost: the words, the hash (made again at load) and the layout are the same."""
    model = glm.load(files[None])
    again = tmp_path / "again.glmb"
    model.save(again)
    assert again.read_bytes() == files[None].read_bytes()
    layout = open_binary_model(files[None])
    assert "quantize" not in layout.header and "word_bits" not in layout.header
    assert layout.arrays["3.word"].dtype == np.uint32 and "patterns.hash" in layout.arrays
    back = glm.load(files[16])
    plain = open_binary_model(files[None]).arrays
    for m, t in back.tables.tables.items():
        if m > 1:
            assert np.array_equal(np.asarray(t["word"]), plain[f"{m}.word"])
    assert np.array_equal(back.hash[0], plain["patterns.hash"])


def test_compact_layout(files):
    """Word ids in ceil(log2 V) bits each, offsets in the bits of their table's size, no hash."""
    layout = open_binary_model(files[8])
    V = len(layout.arrays["1.prob"])
    bits = (V - 1).bit_length()
    assert layout.header["word_bits"] == bits < 32
    assert "patterns.hash" not in layout.arrays
    n = layout.header["sizes"]["7"]
    assert layout.arrays["7.word"].dtype == np.uint8 and len(layout.arrays["7.word"]) == -(-n * bits // 8)
    starts = layout.arrays["7.starts"]         # offsets into 7's n-grams, over pattern 3's + 1
    assert starts.dtype == np.uint8
    assert len(starts) == -(-(layout.header["sizes"]["3"] + 1) * n.bit_length() // 8)
    plain = open_binary_model(files[None]).arrays
    assert np.array_equal(np.asarray(Unpacked(starts, n.bit_length(), layout.header["sizes"]["3"] + 1)),
                          plain["7.starts"])


def test_damaged_starts_of_a_compact_file(files, tmp_path):
    """The hash made at load reads the starts before they are verified: ranges beyond the table and
    ranges that overlap make a hash that stays inside the table and has room (no crash, no hang)."""
    layout = open_binary_model(files[8])
    start = -(-(16 + int.from_bytes(files[8].read_bytes()[8:16], "little")) // 64) * 64
    data = bytearray(files[8].read_bytes())
    entry = next(e for e in layout.header["arrays"] if e["name"] == "3.starts")
    n, bits = layout.header["sizes"]["3"], offset_bits(layout.header["sizes"]["3"])
    starts = np.asarray(Unpacked(layout.arrays["3.starts"], bits, len(layout.arrays["1.prob"]) + 1))
    starts[1:-1:2] = np.where(np.arange(len(starts))[1:-1:2] % 4 == 1, 0, (1 << bits) - 1)
    assert starts.max() > n             # every other range from 0 to past the end: all overlap
    packed = pack(starts, bits)
    data[start + entry["offset"]:start + entry["offset"] + len(packed)] = packed.tobytes()
    bad = tmp_path / "starts.glmb"
    bad.write_bytes(bytes(data))
    model = glm.load(bad)
    assert len(model.hash[0]) <= 4 * max(1024, sum(layout.header["sizes"].values()))
    r = model.score_lines(["the king is dead", "long live the king"])
    assert (r.log10_prob <= 0).all()
    assert any("3.starts" in p for p in verify_binary(bad)["problems"])


def test_quantized_files_are_smaller_and_verify(files):
    size = {b: p.stat().st_size for b, p in files.items()}
    assert size[8] < size[16] < size[None]
    for bits in (8, 16):
        assert verify_binary(files[bits])["problems"] == []


def test_bad_codes_are_found_and_never_crash(files, tmp_path):
    layout = open_binary_model(files[8])
    entry = next(e for e in layout.header["arrays"] if e["name"] == "3.alpha")
    start = -(-(16 + int.from_bytes(files[8].read_bytes()[8:16], "little")) // 64) * 64
    data = bytearray(files[8].read_bytes())
    data[start + entry["offset"]] = 255                  # a code beyond the codebook (< 256 centers)
    assert len(layout.arrays["3.alpha_book"]) < 256
    bad = tmp_path / "bad.glmb"
    bad.write_bytes(bytes(data))
    problems = verify_binary(bad)["problems"]
    assert any("3.alpha[0] = 255: not a code of 3.alpha_book" in p for p in problems), problems
    model = glm.load(bad)                                 # (loads: the large arrays are not checked)
    r = model.score_lines(["the king is dead", "long live the king"])           # stays inside the codebook
    assert np.isfinite(r.log10_prob).all()
    with pytest.raises(glm.ModelFormatError, match="damaged"):
        model.save(tmp_path / "copy.glmb")


def test_quantize_refused_where_it_does_not_apply(files, tmp_path, corpus):
    model = glm.load(files[None])
    for bits in (4, 32, True):
        with pytest.raises(ValueError, match="8, 16"):
            model.save(tmp_path / "x.glmb", quantize=bits)
    with pytest.raises(ValueError, match="GLM model has no back-off form"):   # (other names: KenLM's trie)
        model.save(tmp_path / "x.glm", quantize=8)
    mkn = glm.train(lines=to_lines(corpus), order=3, discount_fallback=True)
    with pytest.raises(ValueError, match="quantized .glmb files hold GLM models"):
        mkn.save(tmp_path / "x.glmb", quantize=8)
    toolkit = glm.train(lines=to_lines(corpus[:500]), order=3, method="glmtk2014", discount_fallback=True)
    with pytest.raises(ValueError, match="not to the 2014 toolkit's glmtk2014"):
        toolkit.save(tmp_path / "x.glmb", quantize=8)
    assert not list(tmp_path.iterdir())


def test_quantize_sorted_runs_and_specials():
    v = np.array([0.5, 0.5, 0.5, np.nan, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], dtype=np.float64)
    codes, book = quantize(np.tile(v, 50), 8)
    assert np.array_equal(book[codes], np.tile(v, 50), equal_nan=True)      # few distinct: exact
    rng = np.random.default_rng(0)
    x = rng.random(10000).astype(np.float32)
    codes, book = quantize(x, 8)
    assert book.dtype == np.float32 and len(book) <= 256
    counts = np.bincount(codes)
    assert counts.max() <= 2 * len(x) / 256          # equal populations (up to rounding)
    assert (np.diff(book) > 0).all()                 # bins in order: codes rise with values


def test_cli_quantize(tmp_path, corpus):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(to_lines(corpus)) + "\n")
    out = tmp_path / "q.glmb"
    run = [sys.executable, "-m", "glm"]
    subprocess.run(run + ["build", str(text), "-o", str(out), "--order", "3", "--method", "glm",
                          "--tune-split", "0", "--quantize", "8", "-q", "--discount-fallback", "0.5", "1", "1.5"], check=True)
    assert open_binary_model(out).header["quantize"] == 8
    conv = tmp_path / "q16.glmb"
    subprocess.run(run + ["convert", str(out), str(conv), "--quantize", "16", "-q"], check=True)
    assert open_binary_model(conv).header["quantize"] == 16
    r = subprocess.run(run + ["verify", str(conv)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    bad = subprocess.run(run + ["build", str(text), "-o", str(tmp_path / "m.glmb"), "--order", "3",
                                "--quantize", "8", "-q"], capture_output=True, text=True)
    assert bad.returncode != 0 and "quantize" in bad.stderr


def test_probabilities_capped_at_one(files, tmp_path):
    """Quantization errors can add up past a probability of 1 (seen on a tuned PTB model at 8 bits): a
    model of quantized values is scored with probabilities capped at 1, and keeps that through every
    format (meta "quantized"), while an unquantized model with the same values is a damaged one."""
    layout = open_binary_model(files[8])
    start = -(-(16 + int.from_bytes(files[8].read_bytes()[8:16], "little")) // 64) * 64
    data = bytearray(files[8].read_bytes())
    for e in layout.header["arrays"]:        # every alpha center but 0 made 2: scores above 0
        if e["name"].endswith("alpha_book"):
            book = np.where(layout.arrays[e["name"]] > 0, np.float32(2), np.float32(0))
            data[start + e["offset"]:start + e["offset"] + book.nbytes] = book.tobytes()
    high = tmp_path / "high.glmb"
    high.write_bytes(bytes(data))
    lines = ["the king is dead", "long live the king", "my lord", "i will"]
    model = glm.load(high)
    assert model.meta["quantized"] == 8
    scores = model.token_scores(lines)[1]
    assert (scores <= 0).all() and (scores == 0).any(), "no probability reached 1: the test tests nothing"
    text = tmp_path / "q.glm"
    quantized = glm.load(files[8])
    quantized.save(text)              # (the damaged file above is not saved: verified first)
    assert glm.load(text).meta["quantized"] == 8
    again = glm.load(text).score_lines(lines).log10_prob
    assert np.allclose(again, quantized.score_lines(lines).log10_prob, atol=1e-4)
    assert "quantized" not in glm.load(files[None]).meta
