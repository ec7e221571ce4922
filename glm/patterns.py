"""Skip patterns of the Generalized Language Model and their lattice.

A pattern is the set of kept positions of an n-gram window, written as a bit mask over offsets counted
back from the predicted word: bit 0 is the predicted word (always kept), bit d the word d positions
before it.  ``0b101`` keeps the word and the word two back ("x _ w"); ``(1 << L) - 1`` is the contiguous
L-gram, MKN's order-L level.  Only context positions are ever dropped, and dropping the farthest kept
word deletes it (the pattern just gets shorter), so order n has 2^(n-1) patterns: the odd masks below
2^n.  In mask order every pattern comes after its children.
"""
from __future__ import annotations


def patterns(order: int) -> list[int]:
    """All patterns of an order-n model, children before parents."""
    return list(range(1, 1 << order, 2))


def span(mask: int) -> int:
    """Window length L: the farthest kept offset + 1."""
    return mask.bit_length()


def is_contiguous(mask: int) -> bool:
    return mask & (mask + 1) == 0


def parent(mask: int) -> int:
    """The pattern without its farthest word (MKN's back-off; the trie parent of its n-grams)."""
    return mask & ~(1 << (span(mask) - 1))


def children(mask: int) -> list[int]:
    """GLM children: one kept context word dropped, the farthest (= ``parent``) first."""
    return [mask & ~(1 << d) for d in range(span(mask) - 1, 0, -1) if mask >> d & 1]


def history(mask: int) -> tuple[int, int]:
    """(gap, pattern) of the context: the kept context words form ``pattern`` anchored ``gap`` words
    before the predicted word."""
    gap = (mask & ~1 & -(mask & ~1)).bit_length() - 1
    return gap, mask >> gap


def name(mask: int) -> str:
    """Reading-order notation of the paper: '1101' = w1 w2 _ w4."""
    return format(mask, "b")


def parse(text: str) -> int:
    if not text or set(text) - {"0", "1"} or text[0] != "1" or text[-1] != "1":
        raise ValueError(f"not a skip pattern: {text!r}")
    return int(text, 2)
