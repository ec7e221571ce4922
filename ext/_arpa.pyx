# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""ARPA text: fast formatting of trie levels and parsing of n-gram sections.

Numbers are written as the shortest decimal string that reads back as the same float32 (as lmplz does).
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from libc.stdlib cimport strtod, malloc, calloc, free
from libc.stdio cimport snprintf
from libc.math cimport fabs, log10, isnan, isinf
from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING, PyByteArray_Resize

cnp.import_array()

include "_search.pxi"

cdef double POW10[80]
cdef int _i
for _i in range(80):
    POW10[_i] = float(f"1e{_i - 40}")


cdef inline double pow10(int e) noexcept nogil:
    return POW10[e + 40]


cdef int write_uint(uint64_t m, char* out) noexcept nogil:
    cdef char tmp[24]
    cdef int n = 0, i
    if m == 0:
        out[0] = 48
        return 1
    while m:
        tmp[n] = 48 + <char>(m % 10)
        m //= 10
        n += 1
    for i in range(n):
        out[i] = tmp[n - 1 - i]
    return n


cdef inline int decimal_exponent(double a) noexcept nogil:
    """floor(log10(a)) for a > 0, from the binary exponent and a table of powers of ten."""
    cdef uint64_t bits
    memcpy(&bits, &a, 8)
    cdef int e2 = <int>((bits >> 52) & 0x7FF) - 1023
    cdef double x = e2 * 0.30102999566398120
    cdef int e10 = <int>x                  # floor(x), without a call
    if x < e10:
        e10 -= 1
    if e10 < -39:
        e10 = -39
    while e10 < 38 and a >= POW10[e10 + 41]:
        e10 += 1
    while e10 > -39 and a < POW10[e10 + 40]:
        e10 -= 1
    return e10


cdef inline uint64_t digits_at(double a, int scale) noexcept nogil:
    """a * 10^scale rounded to an integer (below 2^63: converted as signed, which is faster)."""
    if scale >= 0:
        return <uint64_t><int64_t>(a * pow10(scale) + 0.5)
    return <uint64_t><int64_t>(a / pow10(-scale) + 0.5)


cdef inline bint round_trips(double a, int p, int e10) noexcept nogil:
    cdef int scale = p - 1 - e10
    cdef int64_t m = <int64_t>digits_at(a, scale)
    cdef double back = m / pow10(scale) if scale >= 0 else m * pow10(-scale)
    return <float>back == <float>a


cdef int format_float(float f, char* out) noexcept nogil:
    """Shortest decimal that reads back as f; returns the number of chars written (at most 24)."""
    cdef double a = fabs(<double>f), back
    cdef int n = 0, e10, p, scale, nd, i, pos, lo_p, hi_p, k = 0
    cdef uint64_t m = 0
    cdef char digits[24]
    if isnan(f):
        memcpy(out, b"nan", 3)
        return 3
    if f < 0:
        out[0] = 45
        n = 1
    if isinf(f):
        memcpy(out + n, b"inf", 3)
        return n + 3
    if a == 0:
        out[n] = 48
        return n + 1
    if a < 1e-30 or a > 1e30:        # outside the table of powers of ten (never a log10 probability)
        for p in range(1, 10):
            k = snprintf(out + n, 24, "%.*g", p, a)
            if <float>strtod(out + n, NULL) == <float>a:
                break
        return n + k
    e10 = decimal_exponent(a)
    # the fewest significant digits p (1..9) that read back as f (round trip is monotone in p); most
    # float32 values need 8 or 9, so start at 8
    if round_trips(a, 8, e10):
        p = 8
        while p > 1 and round_trips(a, p - 1, e10):
            p -= 1
    else:
        p = 9
    scale = p - 1 - e10
    m = digits_at(a, scale)
    nd = write_uint(m, digits)
    # strip trailing zeros of the mantissa
    while nd > 1 and digits[nd - 1] == 48:
        nd -= 1
        scale -= 1
    # value = digits * 10^-scale; exponent of the leading digit:
    pos = nd - scale       # digits before the decimal point
    if -5 < pos <= 10:
        if pos <= 0:
            out[n] = 48
            out[n + 1] = 46
            n += 2
            for i in range(-pos):
                out[n] = 48
                n += 1
            memcpy(out + n, digits, nd)
            n += nd
        elif pos >= nd:
            memcpy(out + n, digits, nd)
            n += nd
            for i in range(pos - nd):
                out[n] = 48
                n += 1
        else:
            memcpy(out + n, digits, pos)
            n += pos
            out[n] = 46
            n += 1
            memcpy(out + n, digits + pos, nd - pos)
            n += nd - pos
    else:
        out[n] = digits[0]
        n += 1
        if nd > 1:
            out[n] = 46
            n += 1
            memcpy(out + n, digits + 1, nd - 1)
            n += nd - 1
        out[n] = 101
        n += 1
        e10 = pos - 1
        if e10 < 0:
            out[n] = 45
            n += 1
            e10 = -e10
        n += write_uint(e10, out + n)
    return n


cdef enum:
    CACHE_BITS = 12          # a direct-mapped cache of 4096 numbers' texts per call of format_level


cdef struct Cached:
    uint32_t bits            # the float's bit pattern
    uint32_t size            # 0: empty
    char text[24]


cdef inline int format_cached(float f, Cached* cache, char* out) noexcept nogil:
    """format_float through the cache: backoffs repeat a lot (few distinct values per level), and so do
    the probabilities of neighbouring n-grams in suffix order (siblings that share a count).  Writes
    24 bytes at out (the text, then bytes the caller overwrites)."""
    cdef uint32_t bits
    memcpy(&bits, &f, 4)
    cdef Cached* c = &cache[(bits * 2654435761u) >> (32 - CACHE_BITS)]
    if c.size == 0 or c.bits != bits:
        c.bits = bits
        c.size = format_float(f, c.text)
    memcpy(out, c.text, 24)                # (a fixed size: a few moves instead of a call)
    return c.size


cdef inline void copy_word(char* out, const char* src, uint64_t size, const char* src_end) noexcept nogil:
    """memcpy(out, src, size), as one 16-byte move when the word is that short (most are) and the 16
    bytes are inside the source; out must have 16 bytes of room."""
    if size <= 16 and src + 16 <= src_end:
        memcpy(out, src, 16)
    else:
        memcpy(out, src, size)


def format_floats(const float[::1] x):
    """The strings format_float writes, for tests."""
    cdef char buf[32]
    cdef int k
    res = []
    for i in range(x.shape[0]):
        k = format_float(x[i], buf)
        res.append(buf[:k].decode())
    return res


cdef inline int64_t upper_bound(const uint32_t* a, uint64_t n, uint64_t v) noexcept nogil:
    """First index i with a[i] > v (n if none)."""
    cdef uint64_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


def format_level(int n, int order, levels, const uint8_t[::1] blob, const uint64_t[::1] offsets,
                 uint64_t lo, uint64_t hi):
    """ARPA lines of the n-grams lo..hi (suffix order) of level n, as a bytearray."""
    cdef const float* prob
    cdef const float* bo = NULL
    cdef const uint32_t* word[17]
    cdef const uint32_t* starts[17]
    cdef const float[::1] f
    cdef const uint32_t[::1] u
    cdef uint64_t sizes[17]
    cdef int k
    f = levels[n - 1]["logprob"]
    prob = &f[0] if f.shape[0] else NULL
    if n < order:
        f = levels[n - 1]["backoff"]
        bo = &f[0] if f.shape[0] else NULL
    for k in range(1, n + 1):
        if k > 1:
            u = levels[k - 1]["word"]
            word[k] = &u[0] if u.shape[0] else NULL
        if k < n:
            u = levels[k - 1]["starts"]
            starts[k] = &u[0]
            sizes[k] = u.shape[0] - 1
    cdef uint64_t count = hi - lo, pos = 0, e, w, r
    cdef int64_t anc[17]
    cdef const char* b = <const char*>&blob[0] if blob.shape[0] else NULL
    cdef const char* b_end = b + blob.shape[0]
    cdef uint32_t* ids = <uint32_t*>malloc(max(count, 1) * n * sizeof(uint32_t))
    cdef Cached* cache = <Cached*>calloc(1 << CACHE_BITS, sizeof(Cached))
    if ids == NULL or cache == NULL:
        free(ids)
        free(cache)
        raise MemoryError()
    with nogil:
        # pass 1: the word ids of every line (ancestors only move forward) and the text size
        if lo < hi and n > 1:
            anc[n] = lo
            for k in range(n - 1, 0, -1):
                anc[k] = upper_bound(starts[k], sizes[k] + 1, anc[k + 1]) - 1
        for e in range(lo, hi):
            r = (e - lo) * n
            if n == 1:
                ids[r] = <uint32_t>e
            else:
                anc[n] = e
                for k in range(n - 1, 0, -1):
                    while starts[k][anc[k] + 1] <= <uint64_t>anc[k + 1]:
                        anc[k] += 1
                for k in range(n, 0, -1):
                    ids[r + n - k] = word[k][anc[k]] if k > 1 else <uint32_t>anc[1]
    cdef uint64_t cap = count * (n * 12 + 40) + 4096, need
    out = PyByteArray_FromStringAndSize(NULL, cap)     # uninitialized; grown when needed
    cdef char* o = PyByteArray_AS_STRING(out)
    with nogil:
        # pass 2: the text, fetching the spellings of later lines ahead of time (they are random words)
        for e in range(count):
            r = e * n
            need = 64           # (two numbers of at most 24 chars, and the room copy_word's moves need)
            for k in range(n):
                need += offsets[ids[r + k] + 1] - offsets[ids[r + k]] + 1
            if pos + need > cap:
                with gil:
                    cap = 2 * cap + need
                    PyByteArray_Resize(out, cap)
                    o = PyByteArray_AS_STRING(out)
            if e + 16 < count:
                for k in range(n):
                    __builtin_prefetch(&offsets[ids[r + 16 * n + k]])
            if e + 8 < count:
                for k in range(n):
                    __builtin_prefetch(b + offsets[ids[r + 8 * n + k]])
            pos += format_cached(prob[lo + e], cache, o + pos)
            o[pos] = 9
            pos += 1
            for k in range(n):
                w = ids[r + k]
                copy_word(o + pos, b + offsets[w], offsets[w + 1] - offsets[w], b_end)
                pos += offsets[w + 1] - offsets[w]
                o[pos] = 32
                pos += 1
            pos -= 1
            if n < order:
                o[pos] = 9
                pos += 1
                pos += format_cached(bo[lo + e], cache, o + pos)
            o[pos] = 10
            pos += 1
    free(ids)
    free(cache)
    PyByteArray_Resize(out, pos)
    return out
