"""Modified Kneser-Ney discounts D1, D2, D3+ of one order from the count-of-counts of its adjusted counts."""
from __future__ import annotations

import numpy as np

BLOCK = 1 << 20


class DiscountError(ValueError):
    """Discounts are undefined for an order (too little data); the message names the order."""


def count_of_counts(counts: np.ndarray, last_open: tuple | None = None) -> list[int]:
    """[t1, t2, t3, t4]: how many n-grams have adjusted count 1, 2, 3 and 4.

    lmplz counts the n-gram of a lower order that is still open when its pass ends (the suffix of the
    last window in suffix order) by its raw count instead; ``last_open`` = (its index, its raw count)
    reproduces that.
    """
    t = np.zeros(6, np.int64)
    for start in range(0, len(counts), BLOCK):        # in blocks: no temporary copy of a whole level
        t += np.bincount(np.minimum(counts[start:start + BLOCK], 5), minlength=6)
    if last_open is not None:
        index, raw = last_open
        t[min(int(counts[index]), 5)] -= 1
        t[min(int(raw), 5)] += 1
    return [int(x) for x in t[1:5]]


def discounts(t: list[int], order: int, fallback=None) -> tuple[float, float, float]:
    """(D1, D2, D3+) as lmplz computes them: Y = t1/(t1 + 2 t2), D(k) = k - (k+1) Y t_{k+1} / t_k.

    They are undefined when t1, t2 or t3 is 0 or when some D(k) falls outside [0, k]; then ``fallback``
    (a triple) replaces the whole triple, or DiscountError is raised.
    """
    t1, t2, t3, t4 = t
    if t1 and t2 and t3:
        # float32 arithmetic, as lmplz
        f = np.float32
        y = f(t1) / f(t1 + 2.0 * t2)
        d = tuple(float(f(k) - f(k + 1) * y * f(t[k]) / f(t[k - 1])) for k in (1, 2, 3))
        if all(0.0 <= d[k - 1] <= k for k in (1, 2, 3)):
            return d
        why = "D1={:g} D2={:g} D3+={:g} out of range".format(*d)
    else:
        why = "a count of counts is zero"
    if fallback is not None:
        return tuple(float(x) for x in fallback)
    raise DiscountError(
        f"{order if isinstance(order, str) else f'order {order}'}: modified Kneser-Ney discounts are undefined ({why}; count of counts "
        f"t1..t4 = {t1} {t2} {t3} {t4}); the text is too small or too repetitive for this order. "
        "Use --discount-fallback (or discount_fallback=...) to use fixed discounts, or a lower order.")


def fallback_triple(values) -> tuple[float, float, float]:
    """lmplz's --discount_fallback: default 0.5 1 1.5; fewer values repeat the last one, values after
    the third are ignored; rounded to float32, as lmplz stores them.  Each must be a number with
    0 <= Dk <= k (D1 <= 1, D2 <= 2, D3+ <= 3), the range in which the formulas give probabilities: else a
    DiscountError naming it."""
    try:
        values = [float(np.float32(float(v))) for v in (values or (0.5, 1.0, 1.5))]
    except (TypeError, ValueError):
        raise DiscountError(f"discount fallback: expected up to three numbers, not {values!r}") from None
    while len(values) < 3:
        values.append(values[-1])
    for k, d in enumerate(values[:3], 1):
        if not 0.0 <= d <= k:
            raise DiscountError(f"discount fallback: D{k if k < 3 else '3+'}={d!r} is outside [0, {k}] "
                                "(a discount is a number between 0 and its count: D1 <= 1, D2 <= 2, "
                                "D3+ <= 3)")
    return tuple(values[:3])
