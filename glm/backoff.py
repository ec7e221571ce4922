"""A tuned MKN as a back-off model: ARPA output that KenLM reads (issue 16, item 5).

A tuned MKN (``glm.train(..., method="mkn", tune=...)`` or ``tune_split=``) is a ``GeneralizedModel``
whose lattice holds only the contiguous patterns, each with its parent as only child: an interpolated
MKN with other discounts.  In back-off form, as lmplz writes MKN:

    log10 p(w1..wL) = log10(alpha_L(w1..wL) + gamma_L(w1..wL-1) p(w2..wL))   (p of order 1: the unigrams)
    backoff(w1..wL-1) = log10 gamma_L(w1..wL-1)        (0 for an n-gram never followed: gamma undefined)

which a back-off scorer (KenLM's, glm's ``BackoffModel``) turns back into the same probabilities: the
probability of the longest n-gram found plus the backoffs of the longer contexts found.  The tables'
n-grams are already a suffix trie sorted as a back-off model's (``starts`` over the parent = suffix);
the context (first L-1 words) of each n-gram is found with the counter's ``_count.contexts``.
"""
from __future__ import annotations

import numpy as np

from . import _count
from .threads import parallel


def to_backoff(model) -> tuple[list[dict], list[tuple], dict]:
    """(levels, discounts, meta) of the back-off form of a GeneralizedModel of method 'mkn' (tuned or
    not), as ``glm.model.BackoffModel`` takes them: the same probabilities (float32 log10 values, as an
    ARPA file holds them).  ``GeneralizedModel.as_backoff`` makes the model of them."""
    if model.method != "mkn":
        raise ValueError(f"a {model.method} model has no back-off form (its patterns mix several children); "
                         "only MKN (tuned or not) is written as ARPA: save it as .glm or .glmb")
    tables = model.tables.tables
    prob = np.asarray(tables[1]["prob"], dtype=np.float64)
    levels = [dict(logprob=_log10(prob))]
    ctx_prev = None
    for L in range(2, model.order + 1):
        t = tables[(1 << L) - 1]
        below = tables[(1 << (L - 1)) - 1]
        word = np.ascontiguousarray(t["word"], dtype=np.uint32)
        starts = np.asarray(t["starts"])
        parent = np.repeat(np.arange(len(starts) - 1, dtype=np.uint32), np.diff(starts).astype(np.int64))
        ctx = np.empty(len(word), dtype=np.uint32)
        parallel(_count.contexts, len(ctx), word, parent, ctx_prev,
                 levels[L - 2]["word"] if L > 2 else None,
                 np.ascontiguousarray(below["starts"], dtype=np.uint32) if L > 2 else None, ctx)
        gamma = np.asarray(t["gamma"], dtype=np.float64)
        p = np.asarray(t["alpha"], dtype=np.float64) + gamma[ctx] * prob[parent]
        backoff = np.zeros(len(gamma), dtype=np.float32)
        seen = ~np.isnan(gamma)
        with np.errstate(divide="ignore"):
            backoff[seen] = np.log10(gamma[seen])
        levels[L - 2]["backoff"] = backoff
        levels[L - 2]["starts"] = np.ascontiguousarray(starts, dtype=np.uint32)
        levels.append(dict(word=word, logprob=_log10(p)))
        prob, ctx_prev = p, ctx
    D = model.tables.discounts
    discounts = [tuple(D[(1 << n) - 1]) for n in range(1, model.order + 1)]
    meta = {k: v for k, v in model.meta.items() if k not in ("method",)}
    meta["smoothing"] = "modified Kneser-Ney" + (", tuned discounts" if "tuned_on" in meta else "")
    return levels, discounts, meta


def _log10(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log10(p).astype(np.float32)
