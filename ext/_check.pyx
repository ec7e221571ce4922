# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Checks of model arrays, in compiled code because they read whole multi-GB arrays (glm verify).

* ``XXH64``: xxHash's 64-bit hash (XXH64, seed 0; https://github.com/Cyan4973/xxHash, doc/xxhash_spec.md),
  written from the specification, streaming: the checksum of every array of a binary model file.
* ``first_decrease``, ``first_unsorted_child``, ``first_outside``: the index of the first entry that
  breaks a structural or value rule, or -1.

Every function releases the GIL, so that several arrays are checked at once.
"""
import numpy as np
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from libc.math cimport isnan

cdef uint64_t P1 = 0x9E3779B185EBCA87ULL
cdef uint64_t P2 = 0xC2B2AE3D27D4EB4FULL
cdef uint64_t P3 = 0x165667B19E3779F9ULL
cdef uint64_t P4 = 0x85EBCA77C2B2AE63ULL
cdef uint64_t P5 = 0x27D4EB2F165667C5ULL


cdef inline uint64_t rotl(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t read64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)             # (little-endian hosts: x86-64, ARM64)
    return v


cdef inline uint64_t read32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint64_t xround(uint64_t acc, uint64_t lane) noexcept nogil:
    acc += lane * P2
    acc = rotl(acc, 31)
    return acc * P1


cdef inline uint64_t merge(uint64_t acc, uint64_t v) noexcept nogil:
    acc ^= xround(0, v)
    return acc * P1 + P4


cdef class XXH64:
    """Streaming XXH64 (seed 0): ``update(bytes-like)`` any number of times, then ``hexdigest()``."""
    cdef uint64_t v[4]
    cdef uint64_t total
    cdef uint8_t buf[32]
    cdef size_t nbuf

    def __init__(self, data=None):
        self.v[0] = P1 + P2
        self.v[1] = P2
        self.v[2] = 0
        self.v[3] = 0 - P1
        self.total = 0
        self.nbuf = 0
        if data is not None:
            self.update(data)

    cdef void stripes(self, const uint8_t* p, size_t n) noexcept nogil:
        """Consume n bytes, n a multiple of 32."""
        cdef size_t i
        cdef uint64_t a = self.v[0], b = self.v[1], c = self.v[2], d = self.v[3]
        for i in range(0, n, 32):
            a = xround(a, read64(p + i))
            b = xround(b, read64(p + i + 8))
            c = xround(c, read64(p + i + 16))
            d = xround(d, read64(p + i + 24))
        self.v[0], self.v[1], self.v[2], self.v[3] = a, b, c, d

    def update(self, data):
        """Add the bytes of a bytes-like object (any contiguous buffer)."""
        cdef const uint8_t[::1] m = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        cdef const uint8_t* p = &m[0] if m.shape[0] else NULL
        cdef size_t n = m.shape[0], take, whole
        with nogil:
            self.total += n
            if self.nbuf:
                take = min(32 - self.nbuf, n)
                memcpy(self.buf + self.nbuf, p, take)
                self.nbuf += take
                p += take
                n -= take
                if self.nbuf == 32:
                    self.stripes(self.buf, 32)
                    self.nbuf = 0
            if n:                        # (then nbuf is 0)
                whole = n - n % 32
                self.stripes(p, whole)
                if n > whole:
                    memcpy(self.buf, p + whole, n - whole)
                    self.nbuf = n - whole

    def intdigest(self):
        cdef uint64_t h
        cdef size_t i = 0
        if self.total >= 32:
            h = rotl(self.v[0], 1) + rotl(self.v[1], 7) + rotl(self.v[2], 12) + rotl(self.v[3], 18)
            h = merge(h, self.v[0])
            h = merge(h, self.v[1])
            h = merge(h, self.v[2])
            h = merge(h, self.v[3])
        else:
            h = P5
        h += self.total
        while i + 8 <= self.nbuf:
            h ^= xround(0, read64(self.buf + i))
            h = rotl(h, 27) * P1 + P4
            i += 8
        if i + 4 <= self.nbuf:
            h ^= read32(self.buf + i) * P1
            h = rotl(h, 23) * P2 + P3
            i += 4
        while i < self.nbuf:
            h ^= self.buf[i] * P5
            h = rotl(h, 11) * P1
            i += 1
        h ^= h >> 33
        h *= P2
        h ^= h >> 29
        h *= P3
        h ^= h >> 32
        return h

    def hexdigest(self):
        """The hash as 16 hexadecimal digits (as xxhash's ``hexdigest``)."""
        return format(self.intdigest(), "016x")


def first_decrease(const uint32_t[::1] a):
    """Index of the first entry below its predecessor, or -1."""
    cdef size_t i
    cdef int64_t bad = -1
    with nogil:
        for i in range(1, a.shape[0]):
            if a[i] < a[i - 1]:
                bad = i
                break
    return bad


def first_unsorted_child(const uint32_t[::1] starts, const uint32_t[::1] words):
    """Index (in words) of the first child whose word is not above the previous child of the same
    parent (the children of parent p are words[starts[p]:starts[p+1]]), or -1; starts must rise and end
    within words."""
    cdef size_t p, c
    cdef int64_t bad = -1
    with nogil:
        for p in range(starts.shape[0] - 1):
            for c in range(starts[p] + 1, starts[p + 1]):
                if words[c] <= words[c - 1]:
                    bad = c
                    break
            if bad >= 0:
                break
    return bad


ctypedef fused number:
    float
    double
    uint32_t


def first_outside(const number[::1] a, double lo, double hi, bint nan_ok=False, int64_t except_value=-1):
    """Index of the first entry that is not in [lo, hi] (NaN is outside unless nan_ok; an entry equal to
    except_value, when >= 0, is inside), or -1."""
    cdef size_t i
    cdef int64_t bad = -1
    cdef double x
    with nogil:
        for i in range(a.shape[0]):
            x = a[i]
            if isnan(x):
                if nan_ok:
                    continue
            elif lo <= x <= hi or (except_value >= 0 and x == except_value):
                continue
            bad = i
            break
    return bad
