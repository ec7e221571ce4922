"""The tuning's lattice (glm.tune.lattice, _glm.lattice_loglik): the held-out log-likelihood and its
gradient, as functions of the child weights and discount scales, computed from one trace of the text.

Checked against the model itself: at the model's parameters and at other ones (the model rebuilt with
them: rediscounted tables, other weights) the lattice's log-likelihood is the scored one, for GLMs, tuned
MKN, glm-abs, pruned models and unigrams without interpolation; its gradient is the finite differences';
and the fit lowers the held-out cross-entropy to a point where no parameter can move it down.
"""
from __future__ import annotations

import numpy as np
import pytest

from glm import _glm
from glm.build import count
from glm.generalized import combination, estimate, rediscount
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.tune import _scale_range, cross_entropy, fit, heldout_ids, lattice, tune
from helpers import random_corpus

CASES = {          # name: (order, method, options)
    "glm3": (3, "glm", Options(discount_fallback=())),
    "glm4": (4, "glm", Options(discount_fallback=())),
    "glm4-abs": (4, "glm-abs", Options(discount_fallback=())),
    "mkn4": (4, "mkn", Options(discount_fallback=())),
    "glm4-pruned": (4, "glm", Options(discount_fallback=(), prune=(0, 1, 1, 2))),
    "glm3-no-uniform": (3, "glm", Options(discount_fallback=(), interpolate_unigrams=False)),
}


@pytest.fixture(scope="module")
def text():
    return [" ".join(s) for s in random_corpus(29, vocab_size=150, n_sentences=1300)]


def fresh(text, case):
    order, method, opts = CASES[case]
    vocab, levels = count(lines=text[:1100], order=order, with_raw=bool(any(opts.prune)) or method == "glm-abs")
    return GeneralizedModel(vocab, estimate(levels, order, method, opts, keep_stats=True))


def traced(model, ids):
    """The lattice's blocks, in one (coef, tops)."""
    parts = lattice(model, ids)
    return np.concatenate([c for c, _ in parts], axis=2), np.concatenate([t for _, t in parts])


def structure(model, weights=None):
    """(child, nchild, weight) arrays of lattice_loglik for the model's children, with ``weights``."""
    npat = 1 << (model.order - 1)
    child = np.zeros((npat, model.order), dtype=np.int32)
    nchild = np.zeros(npat, dtype=np.int32)
    w = np.zeros((npat, model.order))
    for m, ks in combination(model.order, model.method, weights).items():
        nchild[m >> 1] = len(ks)
        for j, (c, x) in enumerate(ks):
            child[m >> 1, j], w[m >> 1, j] = c >> 1, x
    return child, nchild, w


def loglik(model, coef, tops, weights=None, scales=None):
    """(log-likelihood in nats, d/d weights, d/d scales) from the lattice."""
    child, nchild, w = structure(model, weights)
    scale = np.ones(len(nchild))
    for m, c in (scales or {}).items():
        scale[m >> 1] = c
    gw, gs = np.zeros_like(w), np.zeros(len(nchild))
    return _glm.lattice_loglik(coef, tops, child, nchild, w, scale, gw, gs), gw, gs


def random_point(model, rng):
    """Random child weights (patterns with several children) and discount scales within their bounds."""
    weights = {m: tuple(rng.dirichlet(np.ones(len(ks)))) for m, ks in
               combination(model.order, model.method).items() if len(ks) > 1}
    scales = {m: rng.uniform(*_scale_range(d)) for m, d in model.tables.discounts.items()}
    return weights, scales


@pytest.mark.parametrize("case", list(CASES))
def test_lattice_is_the_scored_model_at_any_parameters(text, case):
    model = fresh(text, case)
    ids = heldout_ids(model, None, lines=text[1100:])
    coef, tops = traced(model, ids)
    assert coef.shape == (1 << (model.order - 1), 4, len(tops))
    tokens = sum(int(x.sum()) for x in (model.score_ids(p).tokens for p in ids))
    assert len(tops) == tokens
    ll, _, _ = loglik(model, coef, tops, model.weights)
    scored = -cross_entropy(model, ids) * np.log(10) * tokens
    assert ll == pytest.approx(scored, rel=1e-6)
    rng = np.random.default_rng(3)
    base = dict(model.tables.discounts)
    for _ in range(2):
        weights, scales = random_point(model, rng)
        if model.method == "mkn":
            weights = {}
        ll, _, _ = loglik(model, coef, tops, weights, scales)
        for m, c in scales.items():
            rediscount(model.tables, m, tuple(c * d for d in base[m]))
        other = GeneralizedModel(model.vocab, model.tables, model.meta, weights, model.hash)
        scored = -cross_entropy(other, ids) * np.log(10) * tokens
        assert ll == pytest.approx(scored, rel=1e-6)
        assert abs(ll - loglik(model, coef, tops)[0]) > 1e-4 * abs(ll)       # (the point moved it)
        for m in scales:
            rediscount(model.tables, m, base[m])


@pytest.mark.parametrize("case", ["glm4", "mkn4", "glm4-pruned"])
def test_gradient_is_the_finite_differences(text, case):
    model = fresh(text, case)
    coef, tops = traced(model, heldout_ids(model, None, lines=text[1100:]))
    rng = np.random.default_rng(5)
    weights, scales = random_point(model, rng)
    if model.method == "mkn":
        weights = {}
    _, gw, gs = loglik(model, coef, tops, weights, scales)
    h = 1e-6
    for m, c in scales.items():
        up = loglik(model, coef, tops, weights, {**scales, m: c + h})[0]
        down = loglik(model, coef, tops, weights, {**scales, m: c - h})[0]
        assert gs[m >> 1] == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-3)
    child, nchild, w = structure(model, weights)
    scale = np.ones(len(nchild))
    for m, c in scales.items():
        scale[m >> 1] = c
    spare = np.zeros_like(w), np.zeros(len(nchild))
    for q, j in zip(*np.nonzero(w)):     # (moved alone, the weights leave the simplex: a partial derivative)
        moved = [w.copy(), w.copy()]
        moved[0][q, j] += h
        moved[1][q, j] -= h
        up, down = (_glm.lattice_loglik(coef, tops, child, nchild, x, scale, *spare) for x in moved)
        assert gw[q, j] == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-3)
    assert np.abs(gs).max() > 1.0


@pytest.mark.parametrize("case", ["glm4", "mkn4"])
def test_fit_lowers_the_entropy_to_a_stationary_point(text, case):
    model = fresh(text, case)
    ids = heldout_ids(model, None, lines=text[1100:])
    before = cross_entropy(model, ids)
    f = fit(model, lines=text[1100:], label="held")
    assert f.cross_entropy < before - 1e-3 and f.evaluations > 1
    assert cross_entropy(model, ids) == before                            # (fit leaves the model)
    coef, tops = traced(model, ids)
    ll, gw, gs = loglik(model, coef, tops, f.weights, f.scales)
    assert -ll / len(tops) / np.log(10) == pytest.approx(f.cross_entropy, rel=1e-12)
    for m, c in f.scales.items():        # no scale can move it down: zero slope, or at a bound that holds
        lo, hi = _scale_range(model.tables.discounts[m])
        slope = gs[m >> 1] / len(tops)
        assert abs(slope) < 2e-3 or (c <= lo + 1e-9 and slope < 0) or (c >= hi - 1e-9 and slope > 0)
    for m, w in f.weights.items():       # nor weight moved between two children (within the simplex)
        g = gw[m >> 1, :len(w)] / len(tops)
        assert max(g[j] - g[i] for i in range(len(w)) for j in range(len(w)) if w[i] > 1e-3) < 2e-3
    if model.method == "mkn":
        assert f.weights == {}
    tuned = tune(model, lines=text[1100:], label="held")
    assert cross_entropy(tuned, ids) == pytest.approx(f.cross_entropy, rel=1e-6)
    assert tuned.meta["heldout_cross_entropy"] == pytest.approx(f.cross_entropy, rel=1e-6)


def test_lattice_loglik_rejects_inconsistent_arrays():
    coef = np.zeros((4, 4, 3), dtype=np.float32)
    tops = np.zeros(3, dtype=np.uint8)
    child, nchild, w = np.zeros((4, 3), np.int32), np.zeros(4, np.int32), np.zeros((4, 3))
    gw, gs = np.zeros((4, 3)), np.zeros(4)
    with pytest.raises(ValueError, match="inconsistent"):
        _glm.lattice_loglik(coef, tops[:2], child, nchild, w, np.ones(4), gw, gs)
    nchild[2], child[2, 0] = 1, 3
    with pytest.raises(ValueError, match="below its parent"):
        _glm.lattice_loglik(coef, tops, child, nchild, w, np.ones(4), gw, gs)


@pytest.mark.parametrize("case", ["glm4", "mkn4", "glm4-pruned", "glm3-no-uniform"])
def test_a_model_without_terms_traces_as_the_model(text, case):
    """The split build fits with a model estimated without its alphas and gammas (terms=False), traced
    through node records of words and children ranges only, and freed once traced: its lattice is the
    full model's, bit for bit, and it cannot be scored."""
    order, method, opts = CASES[case]
    full = fresh(text, case)
    vocab, levels = count(lines=text[:1100], order=order, with_raw=bool(any(opts.prune)))
    bare = GeneralizedModel(vocab, estimate(levels, order, method, opts, keep_stats=True, terms=False))
    assert all("alpha" not in t and "gamma" not in t for m, t in bare.tables.tables.items() if m > 1)
    with pytest.raises(ValueError, match="only traced"):
        bare.score_many(text[1100:1102])
    bare._scorer_only()
    ids = heldout_ids(full, None, "error", text[1100:], "held out")
    for (c1, t1), (c2, t2) in zip(lattice(full, ids), lattice(bare, ids)):
        assert np.array_equal(c1, c2) and np.array_equal(t1, t2)
    assert bare._scorer is None and bare.tables.records is None     # (freed once traced)
    with pytest.raises(ValueError, match="terms=False"):
        estimate(count(lines=text[:1100], order=order)[1], order, method, opts, terms=False)
