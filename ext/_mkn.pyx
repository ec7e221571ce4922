# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Modified Kneser-Ney arithmetic over one level of the suffix trie (see docs/formulas.md).

For the n-grams g = h w of one order, with adjusted counts a and discounts D(1), D(2), D(3+):

    total(h) = sum_w a(hw)
    gamma(h) = [sum_{kept w} D(a(hw)) + sum_{pruned w} a(hw)] / total(h)
    p(w|h)   = (a(hw) - D(a(hw))) / total(h) + gamma(h) * p(w | h without its first word)
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t
from libc.math cimport log10

cnp.import_array()

include "_search.pxi"


cdef inline double discount(const double* D, uint32_t a) noexcept nogil:
    return D[a] if a < 3 else D[3]


def context_sums(const uint32_t[::1] ctx, const uint32_t[::1] count, keep, D, size_t nctx, alloc=np.zeros):
    """(total uint32, numerator of gamma float64) per context, arrays of length nctx made by alloc."""
    total = alloc(nctx, np.uint32)
    num = alloc(nctx, np.float64)
    add_context_sums(ctx, count, keep, D, total, num, 0, nctx)
    return total, num


def add_context_sums(const uint32_t[::1] ctx, const uint32_t[::1] count, keep, D, uint32_t[::1] total,
                     double[::1] num, size_t lo, size_t hi):
    """Add to total[h] and num[h] the n-grams whose context h is in lo..hi, in n-gram order (so the
    float sums of a context are those of one pass, whatever the cut of the contexts among threads)."""
    cdef double Dt[4]
    Dt[0] = 0.0
    Dt[1], Dt[2], Dt[3] = D
    cdef const uint8_t[::1] K
    cdef bint pruning = keep is not None
    if pruning:
        K = keep
    cdef size_t i, n = ctx.shape[0]
    cdef uint32_t a, h
    cdef bint whole = lo == 0 and hi >= total.shape[0]
    with nogil:
        for i in range(n):
            if i + 16 < n and (whole or lo <= ctx[i + 16] < hi):
                __builtin_prefetch(&total[ctx[i + 16]])
                __builtin_prefetch(&num[ctx[i + 16]])
            h = ctx[i]
            if not whole and not lo <= h < hi:
                continue
            a = count[i]
            total[h] += a
            if pruning and not K[i]:
                num[h] += a
            else:
                num[h] += discount(Dt, a)


def interpolate(uint32_t[::1] count, const uint32_t[::1] ctx, const uint32_t[::1] parent,
                const uint32_t[::1] total, const double[::1] num, const float[::1] lower, D,
                size_t lo, size_t hi):
    """p(w|h) of n-grams lo..hi, written as float32 over ``count`` (in place: view count as float32)."""
    cdef double Dt[4]
    Dt[0] = 0.0
    Dt[1], Dt[2], Dt[3] = D
    arr = np.asarray(count)
    cdef float[::1] P = arr.view(np.float32)
    cdef size_t i
    cdef uint32_t a, h
    cdef double t
    with nogil:
        for i in range(lo, hi):
            if i + 16 < hi:
                __builtin_prefetch(&total[ctx[i + 16]])
                __builtin_prefetch(&num[ctx[i + 16]])
            a = count[i]
            h = ctx[i]
            t = total[h]
            P[i] = <float>((a - discount(Dt, a)) / t + num[h] / t * lower[parent[i]])


def interpolate_at(uint32_t[::1] count, const uint32_t[::1] at, const uint32_t[::1] parent,
                   const uint32_t[::1] total, const double[::1] num, const float[::1] lower, D):
    """``interpolate`` for the n-grams at[j], whose context has total[j] and numerator num[j] (the sums
    of each n-gram's context in the order of ``at``, as a Dask range receives them): the same
    arithmetic, so the same float32 values, written over ``count`` (in place)."""
    cdef double Dt[4]
    Dt[0] = 0.0
    Dt[1], Dt[2], Dt[3] = D
    arr = np.asarray(count)
    cdef float[::1] P = arr.view(np.float32)
    cdef size_t j, i, m = at.shape[0]
    cdef uint32_t a
    cdef double t
    with nogil:
        for j in range(m):
            i = at[j]
            a = count[i]
            t = total[j]
            P[i] = <float>((a - discount(Dt, a)) / t + num[j] / t * lower[parent[i]])


def log10_inplace(float[::1] x, size_t lo, size_t hi):
    """x[lo:hi] <- min(log10 x, 0), in place."""
    cdef size_t i
    cdef float v
    with nogil:
        for i in range(lo, hi):
            v = <float>log10(x[i])
            x[i] = v if v < 0 else 0.0


def backoffs(const uint32_t[::1] total, const double[::1] num, alloc=np.zeros):
    """log10 gamma(h) for contexts with extensions, 0 for the others (float32)."""
    out = alloc(total.shape[0], np.float32)
    backoffs_into(total, num, out, 0, total.shape[0])
    return out


def backoffs_into(const uint32_t[::1] total, const double[::1] num, float[::1] out, size_t lo, size_t hi):
    """out[lo:hi] <- the backoffs of contexts lo..hi (as ``backoffs``; out zeroed before)."""
    cdef size_t i
    with nogil:
        for i in range(lo, hi):
            if total[i] > 0:
                out[i] = <float>log10(num[i] / total[i])
