"""The 2014 toolkit's models (GLMTK, paper-era ``master``), kept as compatibility modes: ``glmtk2014``
(its GLM, "kneserNeyComplex") and ``glmtk2014-mkn`` (its MKN, "kneserNeySimple").  They reproduce the
published perplexities of Pickhardt et al. (2014) and are **not normalized** (docs/glm.md §3.3).

They use the tables of the normalized model (glm.generalized) with the toolkit's formulas:

* Boundaries: the toolkit pads a line as ``<fs> <s> w1 .. wm </s>``; its ``<s>`` is glm's <s> and its
  ``<fs>`` the position before it, which never counts.  So its statistics are glm's: occurrences at
  the top, distinct left extensions (occurrences for n-grams starting with <s>) for contiguous lower
  patterns, distinct windows for gapped ones.  ``<s>`` is an ordinary unigram (one per line) of the
  top level, and the N of the unseen-word probability 1/(N+1) counts it.
* Discounts per pattern from its count-of-counts, in double, never clamped; unigrams are not discounted.
* alpha = max(s - D(s), 0) / den, den = the history's occurrences at the top, else sum_w s(hw).
* gamma = D1 N1+(h.) / den for contiguous patterns, N1+(h.) the words that follow h (the toolkit's
  continuation tables hold N1+ in place of N1 and nothing for N2, N3+); for gapped patterns
  (D1 N1 + D2 2 N2 + D3+ sum of the s >= 3) / den (the toolkit sums values where it means to count).
* The lower unigram is N1+(.w) / N1+(..), the top unigram c(w) / N, and an unseen word gets 1/(N+1):
  no uniform distribution.
* Each query is answered by the top of its own length (absolute counts), so the tops of shorter lengths
  are tables of their own (``Tops``).
* The GLM's average of its children also takes the child that drops the predicted word; that child is
  worth 1/(N+1) for every word (the extra term ``extra``: P = alpha + gamma (mean of children + extra)).
* A probability of 0 (or below) becomes 1e-12 (``floor``).
"""
from __future__ import annotations

import numpy as np

from .. import _mkn
from ..discount import DiscountError
from ..vocab import BOS, EOS
from .compat import Compat

FLOOR = 1e-12


def discounts(t: list[int], label: str, fallback=None) -> tuple[float, float, float]:
    """(D1, D2, D3+) in double with the toolkit's formula; an undefined triple (a count of counts of 0)
    is an error, or ``fallback``."""
    n = np.array(t, dtype=np.float64)                # n[k - 1]: the keys whose statistic is k
    with np.errstate(divide="ignore", invalid="ignore"):
        y = n[0] / (n[0] + 2 * n[1])
        d = tuple(float(k - (k + 1) * y * n[k] / n[k - 1]) for k in (1, 2, 3))
    if all(np.isfinite(d)):
        return d
    if fallback is not None:
        return tuple(float(x) for x in fallback)
    raise DiscountError(f"{label}: the 2014 toolkit's discounts are undefined (count of counts t1..t4 = "
                        f"{' '.join(str(int(x)) for x in t)}); the text is too small for this order. Use "
                        "--discount-fallback for fixed discounts, or a lower order.")


def terms(stat, hist, D: tuple, n_hist: int, contiguous: bool, occurrences=None):
    """(alpha per n-gram, float32; gamma per history, float64, NaN where den = 0) of one pattern.
    occurrences: the histories' occurrences (the top of a length: den = c(h)); else den = sum_w s(hw)."""
    stat = np.ascontiguousarray(stat, dtype=np.uint32)
    hist = np.ascontiguousarray(hist, dtype=np.uint32)
    Dt = np.array((0.0,) + tuple(D))
    if occurrences is None:
        den, _ = _mkn.context_sums(hist, stat, None, D, n_hist)
    else:
        den = np.asarray(occurrences, dtype=np.float64)
    rows = np.minimum(stat, 3)
    if contiguous:
        num = D[0] * np.bincount(hist, minlength=n_hist)         # every row is a follower seen
    else:
        num = np.bincount(hist, weights=np.where(stat >= 3, stat * Dt[3], rows * Dt[rows]), minlength=n_hist)
    alpha = np.maximum(stat - Dt[rows], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = (alpha / den[hist]).astype(np.float32)
        gamma = num / den
    gamma[den == 0] = np.nan
    return alpha, gamma


class Tops:
    """The toolkit's top level of every length below the order: the unigram c(w) / N and, for
    L = 2 .. order-1, alpha and gamma of the contiguous L-grams from their occurrences."""

    def __init__(self, levels: list[dict]):
        raw = np.asarray(levels[0]["raw"], dtype=np.float64).copy()
        raw[BOS] = raw[EOS]                          # one <s> per line, as one </s>
        self.N = float(raw.sum())
        self.unseen = 1.0 / (self.N + 1.0)
        self.top1 = np.where(raw > 0, raw / self.N, self.unseen)
        self.prev = raw                              # occurrences of the last level added
        self.tables, self.D = {}, {}

    def unigrams(self, count) -> np.ndarray:
        """The lower unigram N1+(.w) / N1+(..), 1/(N+1) for unseen words."""
        s = np.asarray(count, dtype=np.float64)
        return np.where(s > 0, s / s.sum(), self.unseen)

    def add(self, L: int, raw, hist, D: tuple, park=None) -> None:
        """The top of length L from the level's occurrences and its n-grams' histories."""
        alpha, gamma = terms(raw, hist, D, len(self.prev), True, self.prev)
        self.tables[(1 << L) - 1] = {k: (park(v) if park else v) for k, v in (("alpha", alpha), ("gamma", gamma))}
        self.D[(1 << L) - 1] = D
        self.prev = raw

    def compat(self, method: str) -> Compat:
        """What the scorer needs beside the pattern tables: the tops, the extra term of the GLM's
        average (0 for MKN) and the floor."""
        return Compat(extra=self.unseen if method == "glmtk2014" else 0.0, floor=FLOOR,
                      top={1: dict(prob=self.top1), **self.tables}, discounts=self.D)
