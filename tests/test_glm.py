"""The Generalized Language Model: normalization, the worked example of glm.md §2.3, agreement with an
independent pure-Python implementation, MKN as its special case, files."""
from __future__ import annotations

import math

import numpy as np
import pytest

import glm
from glm.build import count
from glm.generalized import estimate
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.patterns import is_contiguous, parse
from helpers import random_corpus
from reference_glm import ReferenceGLM

EXAMPLE = ["the cat sat", "the dog sat", "a cat ran", "the cat ran"]


def build(lines, order, method="glm", fixed=None, fallback=None):
    vocab, levels = count(lines=lines, order=order, with_raw=method == "glm-abs")
    return GeneralizedModel(vocab, estimate(levels, order, method, Options(discount_fallback=fallback),
                                            fixed_discounts=fixed))


def p(model, w, ctx):
    return 10.0 ** model.logprob(w, ctx)


def test_worked_example():
    """glm.md §2.3: P_GLM(ran | the cat) = 0.4031, P_MKN = 0.4448, unseen context a dog: 0.30625 / 0.05625
    (to the float32 rounding of the stored alphas)."""
    g = build(EXAMPLE, 3, "glm", fixed=(0.5, 1.0, 1.5))
    m = build(EXAMPLE, 3, "mkn", fixed=(0.5, 1.0, 1.5))
    assert p(g, "ran", ["the", "cat"]) == pytest.approx(0.403125, abs=1e-7)
    assert p(m, "ran", ["the", "cat"]) == pytest.approx(0.4447916666666667, abs=1e-7)
    assert p(g, "ran", ["a", "dog"]) == pytest.approx(0.30625, abs=1e-7)
    assert p(m, "ran", ["a", "dog"]) == pytest.approx(0.05625, abs=1e-7)


def contexts_of(sentences, order, extra=()):
    out = {(), ("<s>",), ("zzz-oov",), ("<s>", "zzz-oov"), ("zzz-oov", "zzz-oov2")} | set(extra)
    for s in sentences[:40]:
        toks = ["<s>"] + s
        for i in range(1, len(toks) + 1):
            out.add(tuple(toks[max(0, i - order + 1):i]))
        if len(s) >= 2:
            out.add(tuple(reversed(s[-2:])))          # mostly unseen
    return sorted(out)


@pytest.mark.parametrize("order", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("method", ["glm", "glm-abs", "mkn"])
def test_sums_to_one(order, method):
    sents = random_corpus(100 + order, vocab_size=30, n_sentences=300)
    m = build([" ".join(s) for s in sents], order, method, fallback=())
    vocab = [w for w in m.vocab if w != "<s>"]
    for ctx in contexts_of(sents, order):
        total = math.fsum(p(m, w, list(ctx)) for w in vocab)
        assert abs(total - 1.0) < 1e-9, (ctx, total)


@pytest.mark.parametrize("order", [2, 3, 5, 6, 8])
def test_stream_scores_equal_single_queries(order):
    """The stream scorer (positions in batches, the lookups of one span at all of them together) gives
    every token the probability of one query with its history (logprob), at every order up to 8."""
    sents = random_corpus(200 + order, vocab_size=20, n_sentences=150)
    lines = [" ".join(s) for s in sents]
    m = build(lines, order, "glm", fallback=())
    test = lines[::3] + ["oov1 w2 oov3", ""]
    starts, lp, _, _ = m.token_scores(test)
    assert len(lp) > 100
    for i, line in enumerate(test):
        ctx, want = ["<s>"], []
        for w in line.split() + ["</s>"]:
            want.append(m.logprob(w, ctx[-(order - 1):]))
            ctx.append(w)
        np.testing.assert_array_equal(lp[starts[i]:starts[i + 1]], np.asarray(want, dtype=lp.dtype))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["glm", "glm-abs", "mkn"])
def test_matches_reference(seed, method):
    """Every probability of the compiled model equals the pure-Python GLM's (fixed discounts), to the
    float32 rounding of the stored alphas."""
    order = 3 + seed % 3
    sents = random_corpus(seed, vocab_size=12 + seed, n_sentences=60)
    fixed = (0.4, 0.9, 1.3)
    m = build([" ".join(s) for s in sents], order, method, fixed=fixed)
    ref = ReferenceGLM(sents, order, method, discounts=fixed)
    vocab = [w for w in m.vocab if w != "<s>"] + ["oov-word"]
    for ctx in contexts_of(sents, order)[:60]:
        for w in vocab:
            assert p(m, w, list(ctx)) == pytest.approx(ref.prob(w, ctx), rel=1e-6, abs=1e-12), (ctx, w)


def test_estimated_discounts_of_gapped_patterns():
    """Gapped patterns: discounts from the count-of-counts of the distinct-filler statistic."""
    sents = random_corpus(7, vocab_size=400, n_sentences=1500)
    vocab, levels = count(lines=[" ".join(s) for s in sents], order=4)
    t = estimate(levels, 4, "glm")
    ref = ReferenceGLM(sents, 4, "glm")
    for mask, d in t.discounts.items():
        if not is_contiguous(mask):
            assert d == pytest.approx(ref.D[format(mask, "b")], rel=1e-6)   # float32, as lmplz


def test_mkn_special_case_equals_mkn_model():
    """The lattice with only the farthest-word child is our (lmplz-exact) MKN model."""
    sents = random_corpus(3, vocab_size=500, n_sentences=3000)
    lines = [" ".join(s) for s in sents]
    for order in (2, 3, 5):
        mkn = glm.train(lines=lines, order=order, discount_fallback=True)
        lat = glm.train(lines=lines, order=order, method="glm", discount_fallback=True, tune_split=0)
        lat_mkn = build(lines, order, "mkn", fallback=())
        test = lines[::7] + ["w1 w2 never-seen w3", ""]
        np.testing.assert_allclose(lat_mkn.score_many(test), mkn.score_many(test), rtol=0, atol=2e-5)
        # and the full GLM's tables give the same when all weight goes to the farthest-word child
        weights = {m: 1.0 for m in lat.tables.tables if m > 1}
        np.testing.assert_allclose(lat.with_weights(weights).score_many(test), mkn.score_many(test),
                                   rtol=0, atol=2e-5)


@pytest.mark.parametrize("suffix", [".glm", ".glm.gz", ".glmb"])
def test_file_round_trip(tmp_path, suffix):
    sents = random_corpus(5, vocab_size=25, n_sentences=200)
    lines = [" ".join(s) for s in sents]
    m = glm.train(lines=lines, order=4, method="glm", discount_fallback=True, tune_split=0)
    m = m.with_weights({parse("111"): 0.7, parse("1111"): (0.5, 0.3, 0.2), parse("1011"): (0.1, 0.9)})
    path = tmp_path / f"model{suffix}"
    m.save(path)
    back = glm.load(path)
    assert isinstance(back, GeneralizedModel) and back.method == "glm" and back.weights == m.weights
    assert back.counts == m.counts
    np.testing.assert_array_equal(back.score_many(lines[:50] + ["x y z"]), m.score_many(lines[:50] + ["x y z"]))
    if suffix == ".glmb":        # the scorer reads the hash at random: from memory, not from the file's pages
        from glm.spill import _mapping
        assert _mapping(back.hash[0]) is None and _mapping(glm.load(path).hash[0]) is not None
        np.testing.assert_array_equal(back.hash[0], m.hash[0])


def test_searched_or_hashed_ranges_score_the_same(tmp_path):
    """Whichever children ranges the scorer searches and which it finds through the hash, the
    probabilities are the same; a .glmb file whose header predates "searched" (ranges of up to 32
    searched in every pattern) loads with that rule."""
    from glm._glm import pattern_hash
    sents = random_corpus(11, vocab_size=60, n_sentences=600)
    lines = [" ".join(s) for s in sents]
    m = glm.train(lines=lines, order=5, method="glm", discount_fallback=True, tune_split=0)
    sizes = [np.diff(np.asarray(t["starts"])).max() for k, t in m.tables.tables.items() if k > 1]
    assert max(sizes) > 32                      # (some ranges are hashed under every rule)
    test = lines[:60] + ["w1 w2 w3 w4", "never seen words here"]
    want = m.score_many(test)
    for small in (0, 1, 5, 32, 10 ** 6):
        rule = {k: small for k in m.hash[1]}
        other = GeneralizedModel(m.vocab, m.tables, m.meta, m.weights, (pattern_hash(m.tables.tables, rule), rule))
        np.testing.assert_array_equal(other.score_many(test), want)
    rule = {k: 32 for k in m.hash[1]}
    old = GeneralizedModel(m.vocab, m.tables, m.meta, m.weights, (pattern_hash(m.tables.tables, rule), rule))
    old.save(tmp_path / "old.glmb")
    data = bytearray((tmp_path / "old.glmb").read_bytes())
    key = b', "searched": {' + b", ".join(b'"%d": 32' % k for k in sorted(rule)) + b"}"
    at = data.index(key)
    data[at:at + len(key)] = b" " * len(key)
    seal = data.index(b'"header_xxh64": ')             # (nor had it checksums)
    data[seal:seal + 36] = b" " * 36
    (tmp_path / "old.glmb").write_bytes(bytes(data))
    back = glm.load(tmp_path / "old.glmb")
    assert back.hash[1] == rule
    np.testing.assert_array_equal(back.score_many(test), want)


@pytest.mark.parametrize("method", ["mkn", "glm"])
def test_score_ids_refuses_a_stream_cut_inside_a_line(method):
    """score_ids takes whole lines (a padded stream ends with </s>); a cut stream is an error, not a
    write past the per-line results."""
    m = glm.train(lines=EXAMPLE, order=3, method=method, discount_fallback=True, tune_split=0)
    ids = m.vocab.tokenize_text("\n".join(EXAMPLE))
    assert m.score_ids(ids).tokens.sum() > 0
    with pytest.raises(ValueError, match="must end with </s>"):
        m.score_ids(ids[:-1])


def test_child_weights(tmp_path):
    """A pattern's weights: the parent's (the others share the rest) or every child's, checked; a .glm
    file with weights that do not fit its patterns is an error naming the line."""
    m = glm.train(lines=EXAMPLE * 3, order=3, method="glm", discount_fallback=True, tune_split=0)
    ctx = ["the", "cat"]
    same = m.with_weights({parse("111"): 0.6}), m.with_weights({parse("111"): (0.6, 0.4)})
    assert p(same[0], "sat", ctx) == p(same[1], "sat", ctx)
    assert p(same[1], "sat", ctx) != p(m.with_weights({parse("111"): (0.4, 0.6)}), "sat", ctx)
    for bad in ((0.5, 0.2), (1.2, -0.2), (0.2, 0.3, 0.5)):
        with pytest.raises(ValueError, match="pattern 111: 2 child weights"):
            m.with_weights({parse("111"): bad})
    m.with_weights({parse("111"): (0.6, 0.4)}).save(tmp_path / "m.glm")
    text = (tmp_path / "m.glm").read_text()
    assert "weights=111=0.6,0.4\n" in text
    (tmp_path / "m.glm").write_text(text.replace("111=0.6,0.4", "111=0.6,0.5"))
    with pytest.raises(glm.ModelFormatError, match=r"m\.glm:4: pattern 111: 2 child weights"):
        glm.load(tmp_path / "m.glm")
    (tmp_path / "m.glm").write_text(text.replace("111=0.6,0.4", "111=0.6,x"))
    with pytest.raises(glm.ModelFormatError, match=r"m\.glm:4: bad weights line"):
        glm.load(tmp_path / "m.glm")


def test_glm_refuses_arpa(tmp_path):
    m = build(EXAMPLE, 3, fixed=(0.5, 1.0, 1.5))
    with pytest.raises(ValueError, match="GLM model"):
        m.save(tmp_path / "m.arpa")


def test_bad_glm_file(tmp_path):
    m = build(EXAMPLE, 3, fixed=(0.5, 1.0, 1.5))
    path = tmp_path / "m.glm"
    m.save(path)
    text = path.read_text().replace("a _ ran", "a ran _")
    path.write_text(text)
    with pytest.raises(glm.ModelFormatError, match=r"m\.glm:\d+: .*does not fit pattern 101"):
        glm.load(path)


def test_mkn_special_case_on_real_text():
    """Shakespeare (shipped in data/), order 4, estimated discounts: the lattice's MKN is our MKN."""
    from pathlib import Path
    data = Path(__file__).resolve().parents[1] / "data"
    mkn = glm.train([data / "shakespeare-train.txt.gz"], 4)
    vocab, levels = count([data / "shakespeare-train.txt.gz"], 4)
    lat = GeneralizedModel(vocab, estimate(levels, 4, "mkn"))
    test = (data / "shakespeare-test.txt.gz")
    assert lat.evaluate([test]).log10_prob == pytest.approx(mkn.evaluate([test]).log10_prob, rel=1e-6)
    lines = [" ".join(s) for s in random_corpus(9, n_sentences=50)] + ["ROMEO: what light", "the king is dead"]
    np.testing.assert_allclose(lat.score_many(lines), mkn.score_many(lines), rtol=0, atol=2e-5)


@pytest.mark.parametrize("method", ["glm", "glmtk2014"])
def test_glm_build_same_under_memory_budget_workers_and_parking(tmp_path, monkeypatch, method):
    """A GLM file is byte-identical whatever the memory budget (spilled counting) and thread count; with
    finished tables parked in files (under a budget) or written into the model file as they are built
    (train(output=...glmb)) -- here all of them -- the model holds the same arrays."""
    from pathlib import Path
    from glm import spill
    from glm.formats.binary import arrays_of, header_of
    train = Path(__file__).resolve().parents[1] / "data" / "shakespeare-train.txt.gz"
    outs = []
    for i, kw in enumerate([{}, dict(memory="50M", tmpdir=tmp_path), dict(workers=1)]):
        glm.train([train], 4, method=method, tune_split=0, **kw).save(tmp_path / f"m{i}.glmb")
        outs.append((tmp_path / f"m{i}.glmb").read_bytes())
    assert outs[0] == outs[1] == outs[2]
    monkeypatch.setattr(spill, "PARK_BYTES", 0)
    want = glm.load(tmp_path / "m0.glmb")
    for kw in (dict(memory="1G", tmpdir=tmp_path), dict(output=tmp_path / "s.glmb"),
               dict(memory="1G", tmpdir=tmp_path, output=tmp_path / "t.glmb")):
        model = glm.train([train], 4, method=method, tune_split=0, **kw)
        assert all(not t["alpha"].flags.writeable for m, t in model.tables.tables.items() if m > 1)
        got = [model] + ([glm.load(kw["output"])] if "output" in kw else [])
        for m in got:
            assert dict(arrays_of(m)).keys() == dict(arrays_of(want)).keys()
            for (name, a), (_, b) in zip(sorted(arrays_of(m), key=lambda x: x[0]),
                                         sorted(arrays_of(want), key=lambda x: x[0])):
                assert np.array_equal(a, b, equal_nan=True), name
            assert header_of(m) == header_of(want)
    assert not list(tmp_path.glob("glm-*")) and not list(tmp_path.glob(".*.tmp"))


def test_glm_order_limits_fail_before_counting():
    with pytest.raises(ValueError, match="orders 1 to 8"):
        glm.train(lines=iter(()), order=9, method="glm")          # an empty iterator: it fails before reading
    with pytest.raises(ValueError, match="unknown method"):
        glm.train(lines=EXAMPLE, order=3, method="kn")


def test_failed_streaming_build_leaves_no_file(tmp_path):
    """A GLM written while it is built (train(output=...glmb)) that fails leaves no file behind."""
    from glm.discount import DiscountError
    with pytest.raises(DiscountError):
        glm.train(lines=["a b c", "a b d"], order=4, method="glm", output=tmp_path / "m.glmb", tune_split=0)
    assert not list(tmp_path.iterdir())


def numpy_terms(stat, hist, D, n_hist, zero_stats=False, keep=None):
    """The interpolation terms as numpy computes them (the formula of glm.terms, array by array)."""
    den = np.bincount(hist, weights=stat, minlength=n_hist).astype(np.uint32)
    alpha = stat.astype(np.float32)
    alpha -= np.array((0.0,) + tuple(D), dtype=np.float32)[np.minimum(stat, 3)]
    np.maximum(alpha, 0.0, out=alpha)
    d = den[hist]
    if zero_stats:
        d[d == 0] = 1
    alpha /= d
    if keep is not None:
        alpha[~keep] = 0.0
    gamma = np.maximum(1.0 - np.bincount(hist, weights=alpha, minlength=n_hist), 0.0)
    gamma[den == 0] = np.nan
    return alpha, gamma


def test_terms_kernel_is_the_numpy_formula_bit_for_bit():
    """_glm.terms (one pass per array, no temporaries) gives numpy's float32 alphas and float64 gammas
    exactly: statistics up to 10^5 and 0 (paper padding), pruned n-grams, histories never followed."""
    from glm.terms import interpolation_terms
    rng = np.random.default_rng(1)
    for trial in range(120):
        n_hist, n = int(rng.integers(1, 300)), int(rng.integers(0, 3000))
        stat = (rng.zipf(1.5, n) % 100000).astype(np.uint32)
        zero_stats = trial % 3 == 0
        if zero_stats:
            stat[rng.random(n) < 0.2] = 0
        hist = rng.integers(0, n_hist, n).astype(np.uint32)
        D = tuple(np.sort(rng.uniform(0, 1, 3)) * (1, 2, 3))
        keep = None if trial % 2 else rng.random(n) < 0.7
        want = numpy_terms(stat, hist, D, n_hist, zero_stats, keep)
        got = interpolation_terms(stat, hist, D, n_hist, zero_stats, keep)
        assert got[0].dtype == np.float32 and got[0].tobytes() == want[0].tobytes()
        assert got[1].dtype == np.float64 and got[1].tobytes() == want[1].tobytes()
    with pytest.raises(ValueError, match="not below 3"):
        interpolation_terms(np.ones(2, np.uint32), np.array([0, 3], np.uint32), (0.5, 1, 1.5), 3)


def test_records_can_take_the_tables_arrays():
    """Records(consume=True) (GeneralizedModel._scorer_only: the model fitted on part of the text) gives
    the same rows and leaves no array but the unigrams' in the tables; the model still scores the same."""
    from glm.records import Records
    lines = [" ".join(s) for s in random_corpus(8, vocab_size=40, n_sentences=300)]
    a, b = build(lines, 4, fallback=()), build(lines, 4, fallback=())
    want = a.score_many(lines[:50])
    b._scorer_only()
    assert all(set(t) == ({"prob"} if m == 1 else set()) for m, t in b.tables.tables.items())
    np.testing.assert_array_equal(b.score_many(lines[:50]), want)
    masks = list(a.tables.records.rows)
    fresh = Records(build(lines, 4, fallback=()).tables.tables, masks)
    for m in masks:
        np.testing.assert_array_equal(b.tables.records.rows[m], fresh.rows[m])
