"""The interpolation terms of one pattern of a normalized GLM (or MKN) from its statistics (docs/glm.md
§2), and scaled discounts.  Leaf module (numpy and the compiled ``_glm`` only): glm.generalized builds
the tables with it, glm.paper.padding the normalized tops of every length.
"""
from __future__ import annotations

import numpy as np

from . import _glm


def scaled(D: tuple, c: float) -> tuple:
    """Discounts (D1, D2, D3+) scaled by c, each kept within [0, k] (which keeps the model normalized)."""
    return tuple(min(max(c * d, 0.0), float(k)) for k, d in zip((1, 2, 3), D))


def interpolation_terms(stat: np.ndarray, hist: np.ndarray, D: tuple, n_hist: int, zero_stats: bool = False,
                        keep: np.ndarray | None = None):
    """(alpha per n-gram, float32; gamma per history, float64: NaN for histories never followed) of one
    pattern, from the n-grams' statistic s, their histories' indices and the pattern's discounts:
    alpha = max(s - D(s), 0) / den(h), den(h) the sum of the statistics of h's n-grams (the compiled
    ``_glm.terms``).

    alpha is stored in float32 (as ARPA files store probabilities); gamma is then 1 - the sum of the
    stored alphas of its history, which equals (D1 N1 + D2 N2 + D3+ N3+) / den up to that rounding and
    keeps every distribution summing to 1 exactly.  zero_stats: some n-grams have the statistic 0
    (glm.paper.padding), and some histories none above it (den 0).  keep: the n-grams kept when pruning
    (bool per n-gram): the others get alpha 0, so that their whole statistic goes into their history's
    gamma (MKN's pruning; den still counts them).
    """
    stat = np.ascontiguousarray(stat, dtype=np.uint32)
    hist = np.ascontiguousarray(hist, dtype=np.uint32)
    return _glm.terms(stat, hist, tuple(D), n_hist, keep, zero_stats)


def pruned_terms(stat: np.ndarray, hist: np.ndarray, D: tuple, keep: np.ndarray | None,
                 hist_keep: np.ndarray | None, n_hist: int):
    """interpolation_terms of a pruned pattern: (alpha of the kept n-grams, gamma of the kept histories).
    keep: the pattern's n-grams kept (None: all); hist_keep: its history pattern's n-grams kept (None:
    all), of n_hist before pruning; hist indexes the histories before pruning."""
    alpha, gamma = interpolation_terms(stat, hist, D, n_hist, keep=keep)
    return (alpha if keep is None else alpha[keep]), (gamma if hist_keep is None else gamma[hist_keep])
