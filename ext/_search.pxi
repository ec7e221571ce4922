# Shared by the compiled modules (Cython `include`): search in the sorted children of a trie node, and
# the compiler's prefetch hint (ext/glm_builtins.h).
from libc.stdint cimport uint32_t, int64_t

cdef extern from "glm_builtins.h":          # (with fallbacks for compilers other than GCC and clang)
    void __builtin_prefetch(const void*) nogil


cdef inline int64_t find_child(const uint32_t* words, uint32_t lo, uint32_t hi, uint32_t w) noexcept nogil:
    """Index of w in the sorted words[lo:hi], or -1."""
    cdef uint32_t mid, end = hi
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if words[mid] < w:
            lo = mid + 1
        else:
            hi = mid
    if lo < end and words[lo] == w:
        return lo
    return -1
