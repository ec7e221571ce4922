"""The held-out part of the training text that a GLM is tuned on by default (``tune_split``).

An *interleaved* part: of the lines of all inputs, in order and numbered from 0 across files, line i is
held out when floor((i + 1) f) > floor(i f), with f the fraction as an exact fraction: every k-th line
when f = 1/k (for 0.1 the lines 9, 19, 29, ...: every 10th line), evenly spread otherwise.  It is
deterministic and depends on nothing but the line numbers.  A part cut from the end of the text is often
another distribution than the test text (docs/glm.md §3.1); an interleaved one is not.

Leaf module: it imports nothing of glm but the corpus reader.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Iterator

import numpy as np

from .corpus import Chunk

MAX_SPLIT = 0.5
# The parameters are fitted on at most about this many held-out tokens: on ELTeC German (830,000 held-out
# tokens, order 5) every 4th held-out line fitted a model 0.01% worse on the test text in a third of
# the time (docs/glm.md §3.1); fewer than 100,000 cost 0.26% on WikiText-2.
TUNE_TOKENS = 250_000


def check_fraction(fraction) -> Fraction:
    """The fraction as an exact Fraction; a ValueError naming tune_split when it is not in [0, 0.5]."""
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"tune_split: expected a number in [0, {MAX_SPLIT}], not {fraction!r}") from None
    if not 0.0 <= f <= MAX_SPLIT:
        raise ValueError(f"tune_split must be in [0, {MAX_SPLIT}] (a fraction of the training lines, "
                         f"e.g. 0.1), not {fraction!r}")
    return Fraction(str(f)).limit_denominator(1 << 20)


def held_out(index: np.ndarray, fraction: Fraction) -> np.ndarray:
    """Which of the line numbers ``index`` (0-based, across all inputs) are held out."""
    i = index.astype(np.int64)
    p, q = fraction.numerator, fraction.denominator
    return (i + 1) * p // q > i * p // q


class Interleave:
    """Splits chunks of lines (glm.corpus.Chunk) into the training part (``train(chunks)`` yields it)
    and the held-out lines (``heldout``, bytes without line ends, in order)."""

    def __init__(self, fraction):
        self.fraction = check_fraction(fraction)
        self.heldout: list[bytes] = []
        self.lines = 0             # lines seen so far

    def train(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        self.heldout, self.lines = [], 0
        for chunk in chunks:
            lines = chunk.data.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            held = held_out(np.arange(self.lines, self.lines + len(lines)), self.fraction)
            self.lines += len(lines)
            kept = [ln for ln, h in zip(lines, held.tolist()) if not h]
            self.heldout.extend(ln for ln, h in zip(lines, held.tolist()) if h)
            if kept:
                # (line numbers of errors are those of the chunk's first line onwards: approximate here;
                # glm.build re-reads the whole text to name the exact line of an error: vocab.check_text)
                yield Chunk(b"\n".join(kept) + b"\n", chunk.path, chunk.first_line)


def tuning_lines(heldout: list[bytes], max_tokens: int | None = None) -> list[bytes]:
    """The held-out lines the parameters are fitted on: all of them, or every k-th of them (the smallest
    k) when they hold more than ``max_tokens`` (default TUNE_TOKENS) tokens (words split at whitespace,
    and one </s> a line)."""
    max_tokens = TUNE_TOKENS if max_tokens is None else max_tokens
    tokens = sum(len(ln.split()) + 1 for ln in heldout)
    k = -(-tokens // max_tokens)
    return heldout if k <= 1 else heldout[::k]


def label(fraction: float) -> str:
    """The held-out part, as the model's meta and the messages name it."""
    k = round(1 / fraction)
    if abs(k * fraction - 1) < 1e-12:
        return f"every {k}th line of the training text (tune_split {fraction:g})"
    return f"{fraction:g} of the training lines, interleaved (tune_split {fraction:g})"
