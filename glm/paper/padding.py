"""The conventions behind the reference notes' normalized en0008t figures (docs/glm.md §4.2), for
``glm paper-eval --padding paper`` (``glm.train(..., padding="paper")``).

Training pads each sentence with n-1 <s> and counts every window, with continuation counts also for
the n-grams that start with those <s>; an n-gram ending in <s> is never predicted.  glm keeps its own
<s> (id 1, where windows start) and inserts n-1 copies of a pad word after it (``pad_stream``).  That
pad word is the notes' <s>: an ordinary word for counting, except that every n-gram ending in it gets
the statistic 0 (glm.generalized.estimate, ``pad``).  Every window holding glm's own <s> ends in the
pad word, so the statistics are the notes' exactly.  The uniform distribution leaves out <s> and the
pad word.

Scoring (glm.paper.protocols) answers each factor of the chain rule by the normalized top of its own length,
from occurrence counts (``Tops``: (c - D(c)) / sum + gamma * average of the children); a literal <s>
opening a test sequence is the pad word, as a context, and where it is predicted it scores as <unk>
(both have the statistic 0 everywhere).
"""
from __future__ import annotations

import numpy as np

from ..terms import interpolation_terms
from ..vocab import BOS
from .compat import Compat

WORD = b"<s> (pad)"      # a word the tokenizer never produces: it holds a space


def pad_stream(stream: np.ndarray, pad: int, k: int) -> np.ndarray:
    """The id stream with k pad ids after every <s>."""
    at = np.repeat(np.flatnonzero(stream == BOS) + 1, k)
    return np.insert(stream, at, np.uint32(pad))


class Tops:
    """The normalized top level of every length below the order, from occurrences: the unigram
    (c(w) - D(c)) / N + gamma / |V'| and, for L = 2 .. order-1, alpha and gamma of the contiguous
    L-grams (glm.terms.interpolation_terms)."""

    def __init__(self, raw: np.ndarray, pad: int, D: tuple):
        c = np.asarray(raw, dtype=np.float64)        # occurrences, 0 for <s> and the pad word
        Dt = np.array((0.0,) + tuple(D))[np.minimum(raw, 3)]
        total = c.sum()
        self.top1 = (c - Dt) / total + Dt.sum() / total / (len(c) - 2)
        self.tables, self.D = {}, {1: tuple(D)}
        self.n_hist = len(c)                         # n-grams of the last length added
        self.pad = pad

    def add(self, L: int, raw, hist, D: tuple, park=None) -> None:
        """The top of length L from the level's occurrences and its n-grams' histories."""
        alpha, gamma = interpolation_terms(raw, hist, D, self.n_hist, zero_stats=True)
        self.n_hist = len(raw)
        self.tables[(1 << L) - 1] = {k: (park(v) if park else v) for k, v in (("alpha", alpha), ("gamma", gamma))}
        self.D[(1 << L) - 1] = tuple(D)

    def compat(self, method: str) -> Compat:
        """What the scorer needs beside the pattern tables (no extra term, no floor), and the pad word."""
        return Compat(extra=0.0, floor=0.0, top={1: dict(prob=self.top1), **self.tables}, discounts=self.D,
                      pad=self.pad)
