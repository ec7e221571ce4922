"""Fitting a GLM (or MKN) on held-out text, keeping it normalized (the paper's future work, §7.2).

Two kinds of parameters, fitted by coordinate descent (an exact search along one parameter at a time,
minimizing the held-out perplexity; see ``tune``):

* per child of a pattern with several children (GLM only), its weight: the search moves one child's
  weight, and the others keep their proportions and sum to 1 - it.  All weight on the farthest-word-
  deletion child (MKN's back-off) everywhere is MKN.  (Weights start from the model's, uniform for an
  untuned GLM.)
* per pattern (both methods), a scale c of its discounts: D_k -> c D_k, with c D_k kept in [0, k].

Any such choice keeps every distribution normalized (a convex combination of normalized children, and
discounts within [0, k]).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .threads import threads
from .generalized import combination, rediscount
from .model import GeneralizedModel
from .patterns import name
from .progress import progress

GOLDEN = (math.sqrt(5) - 1) / 2


def heldout_ids(model: GeneralizedModel, inputs, bad_utf8: str = "error", lines=None,
                label: str | None = None) -> list[np.ndarray]:
    """The held-out text (paths ``inputs``, or ``lines``: an iterable of lines) as padded id streams,
    cut at line ends into one part per thread.  label: what the held-out text is, named in errors."""
    from .corpus import CorpusError, line_chunks, read_chunks
    chunks = read_chunks(inputs) if lines is None else line_chunks(lines)
    parts = [model.vocab.tokenize(c, symbols="unk", bad_utf8=bad_utf8) for c in chunks]
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)
    ends = np.flatnonzero(ids == 2) + 1
    if not len(ends):
        names = label or (", ".join(map(str, inputs)) if isinstance(inputs, (list, tuple)) else str(inputs))
        raise CorpusError(f"no text in {names}: nothing to tune on (the held-out text is empty)")
    k = threads()
    cuts = [0] + [int(ends[min(len(ends) - 1, len(ends) * i // k)]) for i in range(1, k)] + [len(ids)]
    return [ids[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def cross_entropy(model: GeneralizedModel, ids: list[np.ndarray]) -> float:
    """Average -log10 probability per token."""
    with ThreadPoolExecutor(len(ids)) as ex:
        res = list(ex.map(model.score_ids, ids))
    return -sum(float(r.log10_prob.sum()) for r in res) / max(1, sum(int(r.tokens.sum()) for r in res))


def _golden(f, lo: float, hi: float, x0: float, iters: int) -> tuple[float, float]:
    """Minimize f on [lo, hi]; returns (x, f(x)), never worse than x0."""
    best = (x0, f(x0))
    a, b = lo, hi
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = f(d)
    for x, fx in ((c, fc), (d, fd)):
        if fx < best[1]:
            best = (x, fx)
    return best


def token_scores(model: GeneralizedModel, ids: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """(average -log10 probability per token; every token's probability, float64).  Both are sums over
    the tokens in their order, so they do not depend on how the text was cut into parts."""
    with ThreadPoolExecutor(len(ids)) as ex:
        res = list(ex.map(lambda part: model._trie.score_stream(part, True, True, True), ids))
    lp = np.concatenate([tok[0] for _, tok in res]).astype(np.float64)
    return -float(lp.sum()) / max(1, len(lp)), 10.0 ** lp


def _best_on_line(p0: np.ndarray, slope: np.ndarray, x0: float, lo: float, hi: float) -> float:
    """The x in [lo, hi] that maximizes sum(log(p0 + slope (x - x0))): a concave function, so the zero
    of its decreasing derivative, by bisection."""
    def grad(x):
        return float(np.sum(slope / np.maximum(p0 + slope * (x - x0), 1e-300)))
    if grad(lo) <= 0:
        return lo
    if grad(hi) >= 0:
        return hi
    a, b = lo, hi
    for _ in range(50):
        mid = (a + b) / 2
        if grad(mid) > 0:
            a = mid
        else:
            b = mid
    return (a + b) / 2


def tune(model: GeneralizedModel, heldout=None, rounds: int = 3, iters: int = 10, weights: bool = True,
         discounts: bool = True, quiet: bool = True, bad_utf8: str = "error", lines=None,
         label: str | None = None, search: str = "linear") -> GeneralizedModel:
    """A model with weights and discount scales fitted on ``heldout`` (paths) or ``lines`` (an iterable
    of lines; label: what they are, for errors and meta["tuned_on"]).  Discounts can be fitted only on
    a model fresh from training (its statistics are kept: glm.train(..., tune=...)).  The fitted
    scales c of the discounts (D_k -> c D_k) are in the result's meta["discount_scales"] ({pattern
    name: c}), so that they can be applied to a model of more text (``discount_scales`` of
    glm.generalized.estimate).

    search: how each parameter is fitted.  'linear' (default): every token's probability is linear in
    any one parameter (a child weight, or a discount scale: alpha and gamma are linear in it and the
    model is linear in each pattern's distribution), so one scoring at the far end of the parameter's
    range gives each token's line, the best value on it is found exactly (the log-likelihood is then
    concave) and taken if its cross-entropy on the line is below both ends': one scoring per
    parameter, and one per round (so that float32 rounding cannot add up over the steps).  'golden':
    golden-section search on the held-out
    cross-entropy, ``iters`` steps (12 to 14 scorings per parameter; the method before).
    """
    if search not in ("linear", "golden"):
        raise ValueError(f"search must be 'linear' or 'golden', not {search!r}")
    ids = heldout_ids(model, heldout, bad_utf8, lines, label)
    tables = model.tables
    if discounts and tables.stats is None:
        raise ValueError("discounts can be tuned only while training (the statistics are not stored)")
    kids = combination(model.order, model.method, model.weights)
    wts = {m: tuple(w for _, w in kids[m]) for m in model.weights}
    masks = list(kids)
    params = []
    if weights and model.method != "mkn":
        params += [("weight", (m, i)) for m in masks if len(kids[m]) > 1 for i in range(len(kids[m]))]
    if discounts:
        params += [("discount", m) for m in [1] + masks]
    base = dict(tables.discounts)
    scales = {m: 1.0 for m in base}
    current = [model]

    def rebuild():
        current[0] = GeneralizedModel(model.vocab, tables, model.meta, wts, model.hash)

    def setter(kind, m):
        """(set(x): the model with this parameter at x, lo, hi, current x)"""
        if kind == "weight":
            m, i = m
            old = wts.get(m, tuple(w for _, w in kids[m]))
            rest = sum(old) - old[i]

            def set_weight(x):
                wts[m] = tuple(x if j == i else (w * (1 - x) / rest if rest > 0 else (1 - x) / (len(old) - 1))
                               for j, w in enumerate(old))
                rebuild()
            return set_weight, 0.0, 1.0, old[i]

        def set_scale(c):
            rediscount(tables, m, tuple(c * d for d in base[m]))
            scales[m] = c
            rebuild()
        top = min(2.0, *(k / d for k, d in zip((1, 2, 3), base[m]) if d > 0))
        return set_scale, 0.25, top, scales[m]

    bar = progress(total=rounds * len(params), desc="tuning", quiet=quiet)
    ce, probs = token_scores(model, ids) if search == "linear" else (None, None)
    for round_ in range(rounds):
        if search == "linear" and round_:       # each round from a scoring, so that rounding cannot add up
            ce, probs = token_scores(current[0], ids)
        for kind, m in params:
            put, lo, hi, x0 = setter(kind, m)
            if hi - lo < 1e-9:
                pass
            elif search == "golden":
                def f(x):
                    put(x)
                    return cross_entropy(current[0], ids)
                x, _ = _golden(f, lo, hi, x0, iters)
                put(x)
            else:
                x1 = hi if hi - x0 >= x0 - lo else lo
                put(x1)
                ce1, p1 = token_scores(current[0], ids)
                tried = [(ce, x0, probs), (ce1, x1, p1)]
                slope = (p1 - probs) / (x1 - x0)
                x = _best_on_line(probs, slope, x0, lo, hi)
                if x != x0 and x != x1:        # on the line: no scoring (float32 rounding aside, exact)
                    p_x = np.maximum(probs + slope * (x - x0), 1e-300)
                    tried.append((-float(np.log10(p_x).sum()) / max(1, len(p_x)), x, p_x))
                ce, x, probs = min(tried, key=lambda t: t[0])
                if x != x1:                    # (the model is at x1)
                    put(x)
            bar.update(1)
    bar.close()
    tuned_on = (label if lines is not None else
                [str(h) for h in heldout] if isinstance(heldout, (list, tuple)) else str(heldout))
    final = token_scores(current[0], ids)[0] if search == "linear" else cross_entropy(current[0], ids)
    meta = dict(model.meta, tuned_on=tuned_on, heldout_cross_entropy=final)
    if discounts:
        meta["discount_scales"] = {name(m): scales[m] for m in sorted(scales)}
    return GeneralizedModel(model.vocab, tables, meta, wts, model.hash)
