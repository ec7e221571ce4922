"""Fitting a GLM (or MKN) on held-out text, keeping it normalized (the paper's future work, §7.2).

Two kinds of parameters:

* per pattern with several children (GLM only), every child's weight (>= 0, summing to 1).  All weight
  on the farthest-word-deletion child (MKN's back-off) everywhere is MKN.  (Weights start from the
  model's, uniform for an untuned GLM.)
* per pattern (both methods), a scale c of its discounts: D_k -> c D_k, with c in [0.25, 2] and
  c D_k <= k.

Any such choice keeps every distribution normalized (a convex combination of normalized children, and
discounts within [0, k]).  They are fitted by maximizing the held-out log-likelihood with its gradient:
the held-out text is traced through the model once (``lattice``: what each token's probability is made
of, as a function of the parameters), after which the log-likelihood and its derivatives in all the
parameters cost one pass over those terms (``_glm.lattice_loglik``), and scipy's L-BFGS-B does the rest.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import _mkn
from .threads import threads
from .generalized import combination, rediscount
from .mkn import unigram_probs
from .model import GeneralizedModel
from .patterns import history, name
from .progress import progress

# L-BFGS-B stops when an iteration lowers the held-out cross-entropy (nats per token, about 5) by less
# than FTOL of it, or after MAXFUN evaluations.  1e-6 against 1e-7: held-out perplexity +0.02-0.04%
# (PTB, WikiText-2, Brown, order 5); on PTB 35 evaluations against 108 (docs/glm.md §3).
FTOL, MAXFUN = 1e-6, 200
BLOCK = 1 << 15          # held-out ids per block of the lattice (its sums do not depend on the threads)


@dataclass
class Fit:
    """Parameters fitted on held-out text (``fit``)."""
    weights: dict            # {mask: every child's weight}, patterns with several children
    scales: dict             # {mask: c}: the discounts D_k -> c D_k, relative to the model's discounts
    cross_entropy: float     # the held-out text's average -log10 probability per token with them
    evaluations: int = 0     # passes over the lattice (objective and gradient)


def heldout_ids(model: GeneralizedModel, inputs, bad_utf8: str = "error", lines=None,
                label: str | None = None) -> list[np.ndarray]:
    """The held-out text (paths ``inputs``, or ``lines``: an iterable of lines) as padded id streams,
    cut at line ends into blocks of about BLOCK ids (the same blocks for any number of threads, so that
    sums over them are too).  label: what the held-out text is, named in errors."""
    from .corpus import CorpusError, line_chunks, read_chunks
    chunks = read_chunks(inputs) if lines is None else line_chunks(lines)
    parts = [model.vocab.tokenize(c, symbols="unk", bad_utf8=bad_utf8) for c in chunks]
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)
    ends = np.flatnonzero(ids == 2) + 1
    if not len(ends):
        names = label or (", ".join(map(str, inputs)) if isinstance(inputs, (list, tuple)) else str(inputs))
        raise CorpusError(f"no text in {names}: nothing to tune on (the held-out text is empty)")
    cuts = np.unique(np.append(ends[np.searchsorted(ends, np.arange(BLOCK, len(ids), BLOCK))
                                    .clip(max=len(ends) - 1)], len(ids)))
    return np.split(ids, cuts[:-1])


def cross_entropy(model: GeneralizedModel, ids: list[np.ndarray]) -> float:
    """Average -log10 probability per token, scored."""
    with ThreadPoolExecutor(threads()) as ex:
        res = list(ex.map(model.score_ids, ids))
    return -sum(float(r.log10_prob.sum()) for r in res) / max(1, sum(int(r.tokens.sum()) for r in res))


def lattice(model: GeneralizedModel, ids: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """What the held-out tokens' probabilities are made of, as functions of the parameters: per block of
    ``ids``, (coef, tops) for ``_glm.lattice_loglik``.  Per pattern q (index (mask - 1) / 2) and token t,
    coef[q, :, t] = (A0, A1, G0, G1): the n-gram's alpha is A0 - c A1 and its history's gamma G0 + c G1
    at discount scale c of the pattern (1: its discounts now), exactly (alpha = max(s - c D_k, 0) / den
    never clips, c D_k <= k <= s, and gamma = 1 - the sum of the kept alphas); an unseen history has
    (0, 0, 1, 0), which gives the average of the children as the scorer does; for q = 0 the unigram
    probability is A0 - c A1.  tops[t]: the pattern that answers t.  Needs the statistics (keep_stats).
    coef is float32, as the model's alphas."""
    scorer = model._trie              # (made here once, not by the threads)

    def trace(block):
        """(nodes, histories, tops) of a block; the indices as int32 when they fit (half the memory)."""
        nodes, hists, tops = scorer.trace(block)
        if max(model.tables.sizes.values()) < 1 << 31:
            nodes, hists = nodes.astype(np.int32), hists.astype(np.int32)
        return nodes, hists, tops

    with ThreadPoolExecutor(threads()) as pool:
        traced = list(pool.map(trace, ids))
        if model._consume:           # (a model made only to be traced: only its statistics are read now)
            del scorer
            model._drop_scorer()
        coef = [np.zeros((1 << (model.order - 1), 4, len(tops)), dtype=np.float32) for _, _, tops in traced]
        counts, opts, keep1 = model.tables.stats[1]
        u1, u0 = (unigram_probs(counts, D, opts, keep1) for D in (model.tables.discounts[1], (0.0,) * 3))
        if keep1 is not None:
            u1, u0 = u1[keep1], u0[keep1]
        for (nodes, _, _), c in zip(traced, coef):
            c[:, 2] = 1.0                                   # (an unseen history: the children's average)
            c[0, 0], c[0, 1] = u0[nodes[:, 0]], (u0 - u1)[nodes[:, 0]]
        masks = sorted(model.tables.stats)[1:]              # (one pattern's sums at a time per thread)
        list(pool.map(lambda m: _pattern_terms(model.tables, m, traced, coef), masks))
    return [(c, tops) for c, (_, _, tops) in zip(coef, traced)]


def _pattern_terms(tables, mask: int, traced: list, coef: list) -> None:
    """Fills coef[q] (q = mask >> 1) of every block from the pattern's statistics (see lattice)."""
    stat, hist, keep, hist_keep = tables.stats[mask]
    D, q = tables.discounts[mask], mask >> 1
    n_hist = tables.sizes[history(mask)[1]] if hist_keep is None else len(hist_keep)
    k8 = None if keep is None else keep.view(np.uint8)
    den, num1 = _mkn.context_sums(hist, stat, k8, D, n_hist)          # num: gamma's numerator
    num0 = None if keep is None else _mkn.context_sums(hist, stat, k8, (0.0,) * 3, n_hist)[1]  # pruned's
    kept, hist_kept = _kept_index(keep), _kept_index(hist_keep)
    Dt = np.array((0.0,) + tuple(D))
    for (nodes, hists, _), c in zip(traced, coef):
        g = nodes[:, q]
        old = _old(g, kept)
        st = stat[old]
        dn = den[hist[old]].astype(np.float64)
        c[q, 0] = np.where(g >= 0, st / dn, 0.0)
        c[q, 1] = np.where(g >= 0, Dt[np.minimum(st, 3)] / dn, 0.0)
        h = hists[:, q]
        old = _old(h, hist_kept)
        dn = den[old].astype(np.float64)
        seen = (h >= 0) & (dn > 0)
        dn[~seen] = 1.0
        n0 = 0.0 if num0 is None else num0[old]
        c[q, 2] = np.where(seen, n0 / dn, 1.0)
        c[q, 3] = np.where(seen, (num1[old] - n0) / dn, 0.0)


def _kept_index(keep: np.ndarray | None) -> np.ndarray | None:
    """The indices before pruning of the kept n-grams (None: all kept)."""
    return None if keep is None else np.flatnonzero(keep)


def _old(nodes: np.ndarray, kept: np.ndarray | None) -> np.ndarray:
    """The indices before pruning of a pattern's n-grams ``nodes`` (-1: read as 0)."""
    x = np.maximum(nodes, 0)
    return x if kept is None else kept[x]


def fit(model: GeneralizedModel, heldout=None, *, weights: bool = True, discounts: bool = True,
        quiet: bool = True, bad_utf8: str = "error", lines=None, label: str | None = None) -> Fit:
    """Child weights (GLM) and discount scales that maximize the likelihood of ``heldout`` (paths) or
    ``lines`` (an iterable of lines; label: what they are, named in errors); the model is not changed.

    The held-out text is traced through the model once (``lattice``); L-BFGS-B (scipy) then maximizes
    the log-likelihood, each evaluation one pass over the traced terms giving it and its derivatives in
    every parameter (``_glm.lattice_loglik``): child weights through a softmax per pattern, discount
    scales within their bounds.  The cross-entropy is the lattice's, which is the scored one up to the
    float32 rounding of the model's values.  Discounts can be fitted only on a model fresh from training
    (its statistics are kept: glm.train(..., tune=...))."""
    from . import _glm
    ids = heldout_ids(model, heldout, bad_utf8, lines, label)
    if model.tables.stats is None:
        raise ValueError("a model can be tuned only while training (its statistics are not stored)")
    base = dict(model.tables.discounts)
    kids = combination(model.order, model.method, model.weights)
    npat = 1 << (model.order - 1)
    child = np.zeros((npat, model.order), dtype=np.int32)
    nchild = np.zeros(npat, dtype=np.int32)
    w0 = np.zeros((npat, model.order))
    for m, ks in kids.items():
        nchild[m >> 1] = len(ks)
        for j, (c, w) in enumerate(ks):
            child[m >> 1, j], w0[m >> 1, j] = c >> 1, w
    free = [m for m in kids if weights and len(kids[m]) > 1]        # (MKN: one child each)
    bounds = {m: _scale_range(base[m]) for m in base}
    fitted = [m for m in base if discounts and bounds[m][1] - bounds[m][0] >= 1e-9]
    parts = lattice(model, ids)
    from scipy.optimize import minimize           # (imported once the model traced is freed: 25 MB)
    from threadpoolctl import threadpool_limits
    tokens = sum(len(tops) for _, tops in parts)
    bar = progress(desc="tuning", unit=" passes", quiet=quiet)

    def unpack(x):
        """(child weights, scales) of the point x: softmax logits of the free weights, then scales."""
        w, scale = w0.copy(), np.ones(npat)
        i = 0
        for m in free:
            n = len(kids[m])
            e = np.exp(x[i:i + n] - x[i:i + n].max())
            w[m >> 1, :n] = e / e.sum()
            i += n
        scale[[m >> 1 for m in fitted]] = x[i:]
        return w, scale

    def objective(x):
        """(cross-entropy in nats per token, its gradient) at x."""
        w, scale = unpack(x)

        def one(part):
            gw, gs = np.zeros_like(w), np.zeros(npat)
            return _glm.lattice_loglik(*part, child, nchild, w, scale, gw, gs), gw, gs
        res = list(pool.map(one, parts))
        ll, gw, gs = (sum(r[i] for r in res) for i in range(3))     # (in block order: any thread count)
        grad = [wm * (gm - wm @ gm) for wm, gm in          # through the softmax
                ((w[m >> 1, :len(kids[m])], gw[m >> 1, :len(kids[m])]) for m in free)]
        grad.append(gs[[m >> 1 for m in fitted]])
        bar.update(1)
        return -ll / tokens, -np.concatenate(grad) / tokens

    x0 = np.concatenate([np.log(np.maximum(w0[m >> 1, :len(kids[m])], 1e-12)) for m in free]
                        + [np.ones(len(fitted))])
    # (scipy's OpenBLAS threads would spin between its tiny calls, as long as the passes themselves)
    with ThreadPoolExecutor(min(threads(), len(parts))) as pool, threadpool_limits(1, user_api="blas"):
        if len(x0):
            res = minimize(objective, x0, jac=True, method="L-BFGS-B", options=dict(ftol=FTOL, maxfun=MAXFUN),
                           bounds=[(None, None)] * (len(x0) - len(fitted)) + [bounds[m] for m in fitted])
            x, ce, passes = res.x, float(res.fun), int(res.nfev)
        else:                              # (nothing to fit: the model's own cross-entropy)
            x, ce, passes = x0, objective(x0)[0], 1
    bar.close()
    w, scale = unpack(x)
    return Fit({m: tuple(float(v) for v in w[m >> 1, :len(kids[m])]) for m in free},
               {m: float(scale[m >> 1]) for m in base}, float(ce / np.log(10)), passes)


def _scale_range(D: tuple) -> tuple[float, float]:
    """The range of a pattern's discount scale: [0.25, 2], and c D_k <= k."""
    return 0.25, min([2.0] + [k / d for k, d in zip((1, 2, 3), D) if d > 0])


def tune(model: GeneralizedModel, heldout=None, *, weights: bool = True, discounts: bool = True,
         quiet: bool = True, bad_utf8: str = "error", lines=None, label: str | None = None) -> GeneralizedModel:
    """The model with the weights and discount scales ``fit`` finds on ``heldout`` (paths) or ``lines``
    (an iterable of lines; label: what they are, for errors and meta["tuned_on"]); its tables are
    changed in place.  The fitted scales c of the discounts (D_k -> c D_k) are in the result's
    meta["discount_scales"] ({pattern name: c}), so that they can be applied to a model of more text
    (``discount_scales`` of glm.generalized.estimate)."""
    f = fit(model, heldout, weights=weights, discounts=discounts, quiet=quiet, bad_utf8=bad_utf8, lines=lines,
            label=label)
    base = dict(model.tables.discounts)
    for m, c in f.scales.items():
        if c != 1.0:
            rediscount(model.tables, m, tuple(c * d for d in base[m]))
    tuned_on = (label if lines is not None else
                [str(h) for h in heldout] if isinstance(heldout, (list, tuple)) else str(heldout))
    meta = dict(model.meta, tuned_on=tuned_on, heldout_cross_entropy=f.cross_entropy)
    if discounts:
        meta["discount_scales"] = {name(m): f.scales[m] for m in sorted(f.scales)}
    return GeneralizedModel(model.vocab, model.tables, meta, {**model.weights, **f.weights}, model.hash)
