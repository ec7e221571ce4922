# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: language = c++
"""Counting: padded id streams -> sorted, counted order-N windows -> suffix-trie levels with adjusted counts.

A window is the N ids ending at a token (every token but <s>), with positions before the sentence's
<s> filled with <s>.  Windows are packed into keys of W uint64 words, last word first, so that sorting
keys sorts windows in *suffix order* (by w_N, then w_{N-1}, ...).  In that order every n-suffix is a
contiguous group, which is all the adjusted counts need:

* an n-gram starting with <s> keeps its raw count (sum of the group's counts);
* any other lower-order n-gram counts the distinct (n+1)-suffixes of its group (its left extensions);
* a suffix starting with two <s> is padding, not an n-gram.

The levels come out as a suffix trie: level n holds, in suffix order, the first word of each n-gram and
the index of its (n-1)-suffix ("parent") in level n-1.  Level 1 is indexed by word id.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy

cnp.import_array()

include "_search.pxi"

cdef extern from *:
    """
    #include <algorithm>
    #include <array>
    #include <cstdint>
    #include <cstring>
    #include <thread>
    template <int W> static void glm_sort_keys_w(uint64_t* p, size_t n, int threads) {
        typedef std::array<uint64_t, W> K;
        K* a = reinterpret_cast<K*>(p);
        if (threads < 2 || n < (1u << 16)) { std::sort(a, a + n); return; }
        size_t mid = n / 2;
        std::thread t([a, mid] { std::sort(a, a + mid); });
        std::sort(a + mid, a + n);
        t.join();
        std::inplace_merge(a, a + mid, a + n);
    }
    static void glm_sort_keys(uint64_t* p, size_t n, int w, int threads) {
        switch (w) {
            case 1: glm_sort_keys_w<1>(p, n, threads); break;
            case 2: glm_sort_keys_w<2>(p, n, threads); break;
            case 3: glm_sort_keys_w<3>(p, n, threads); break;
            case 4: glm_sort_keys_w<4>(p, n, threads); break;
        }
    }
    """
    void glm_sort_keys(uint64_t* p, size_t n, int w, int threads) nogil


class KeyLayout:
    """How N word ids of `bits` bits each are packed into `words` uint64 (last word first)."""
    def __init__(self, order, vocab_size):
        self.order = order
        self.bits = max(1, int(vocab_size - 1).bit_length())
        self.capacity = 1 << self.bits
        self.per_word = 64 // self.bits
        self.words = -(-order // self.per_word)
        if self.words > 4:
            raise ValueError(f"order {order} with a vocabulary of {vocab_size} words needs "
                             f"{order * self.bits} bits per n-gram; at most 256 are supported")


cdef inline int common_words(const uint64_t* a, const uint64_t* b, int W, int k, int bits, int N) noexcept nogil:
    """Number of leading words (from the last word of the window backwards) that a and b share."""
    cdef int q
    cdef uint64_t x
    for q in range(W):
        x = a[q] ^ b[q]
        if x:
            return min(N, q * k + (__builtin_clzll(x) - (64 - k * bits)) // bits)
    return N


cdef extern from "glm_builtins.h":
    int __builtin_clzll(unsigned long long) nogil


cdef inline uint32_t key_word(const uint64_t* key, int j, int k, int bits, uint64_t wmask) noexcept nogil:
    return <uint32_t>((key[j // k] >> ((k - 1 - j % k) * bits)) & wmask)


def count_windows(const uint32_t[::1] stream, layout, int threads=1):
    """Sorted unique windows of a padded stream and their counts: (keys[U, W] uint64, counts[U] uint32)."""
    cdef int N = layout.order, W = layout.words, k = layout.per_word, bits = layout.bits
    cdef size_t n = stream.shape[0], i, m = 0, u, start = 0
    cdef int j, q
    cdef uint32_t w
    for i in range(n):
        if stream[i] != 1:
            m += 1
    keys = np.zeros((m, W), dtype=np.uint64)
    counts = np.empty(m, dtype=np.uint32)
    if m == 0:
        return keys, counts
    cdef uint64_t[:, ::1] K = keys
    cdef uint32_t[::1] C = counts
    cdef uint64_t* key
    with nogil:
        m = 0
        for i in range(n):
            w = stream[i]
            if w == 1:
                start = i
                continue
            key = &K[m, 0]
            for j in range(N):
                w = stream[i - j] if i >= start + j else 1
                key[j // k] |= (<uint64_t>w) << ((k - 1 - j % k) * bits)
            m += 1
        glm_sort_keys(&K[0, 0], m, W, threads)
        # run-length count in place
        u = 0
        C[0] = 1
        for i in range(1, m):
            for q in range(W):
                if K[i, q] != K[u, q]:
                    break
            else:
                C[u] += 1
                continue
            u += 1
            if u != i:
                memcpy(&K[u, 0], &K[i, 0], W * sizeof(uint64_t))
            C[u] = 1
        u += 1
    return keys[:u], counts[:u]


def merge_counts(keys_a, counts_a, keys_b, counts_b):
    """Merge two sorted unique (keys, counts) runs into one, adding the counts of equal keys."""
    cdef const uint64_t[:, ::1] A = keys_a
    cdef const uint64_t[:, ::1] B = keys_b
    cdef const uint32_t[::1] CA = counts_a
    cdef const uint32_t[::1] CB = counts_b
    cdef size_t na = A.shape[0], nb = B.shape[0], i = 0, j = 0, o = 0
    cdef int W = A.shape[1], q, cmp
    keys = np.empty((na + nb, W), dtype=np.uint64)
    counts = np.empty(na + nb, dtype=np.uint32)
    cdef uint64_t[:, ::1] K = keys
    cdef uint32_t[::1] C = counts
    with nogil:
        while i < na and j < nb:
            cmp = 0
            for q in range(W):
                if A[i, q] != B[j, q]:
                    cmp = -1 if A[i, q] < B[j, q] else 1
                    break
            if cmp <= 0:
                memcpy(&K[o, 0], &A[i, 0], W * sizeof(uint64_t))
                C[o] = CA[i]
                if cmp == 0:
                    C[o] += CB[j]
                    j += 1
                i += 1
            else:
                memcpy(&K[o, 0], &B[j, 0], W * sizeof(uint64_t))
                C[o] = CB[j]
                j += 1
            o += 1
        while i < na:
            memcpy(&K[o, 0], &A[i, 0], W * sizeof(uint64_t))
            C[o] = CA[i]
            i += 1
            o += 1
        while j < nb:
            memcpy(&K[o, 0], &B[j, 0], W * sizeof(uint64_t))
            C[o] = CB[j]
            j += 1
            o += 1
    return keys[:o], counts[:o]


def upper_bound(const uint64_t[:, ::1] keys, const uint64_t[::1] bound):
    """Number of rows of sorted keys that are <= bound (a key of the same width)."""
    cdef size_t lo = 0, hi = keys.shape[0], mid
    cdef int W = keys.shape[1], q, cmp
    with nogil:
        while lo < hi:
            mid = lo + (hi - lo) // 2
            cmp = 0
            for q in range(W):
                if keys[mid, q] != bound[q]:
                    cmp = -1 if keys[mid, q] < bound[q] else 1
                    break
            if cmp <= 0:
                lo = mid + 1
            else:
                hi = mid
    return lo


def build_levels(keys, counts, layout, uint64_t vocab_size, bint with_raw=True, alloc=np.zeros):
    """Suffix-trie levels with adjusted and raw counts from sorted unique windows.

    alloc(size, dtype) makes the (zeroed) level arrays: np.zeros, or memory-mapped files (glm.spill).

    Returns a list of dicts, one per order n = 1..N: level 1 has 'count' (and 'raw') indexed by word id;
    level n >= 2 has 'word' (first word), 'parent' (index of the (n-1)-suffix in level n-1), 'count'
    (adjusted count) and, when with_raw, 'raw' (occurrences), all in suffix order.  Below the top order,
    'last_open' is (index, occurrences) of the n-gram still open at the end of the pass, or None.
    """
    cdef const uint64_t[:, ::1] K = keys
    cdef const uint32_t[::1] C = counts
    cdef int N = layout.order, W = layout.words, k = layout.per_word, bits = layout.bits
    cdef uint64_t wmask = (1ULL << bits) - 1
    cdef size_t U = K.shape[0], i
    cdef int n, d
    cdef uint32_t fw
    sizes_np = np.zeros(N + 1, dtype=np.uint64)
    cdef uint64_t[::1] sizes = sizes_np
    # pass 1: sizes of the levels
    with nogil:
        for i in range(U):
            d = 0 if i == 0 else common_words(&K[i, 0], &K[i - 1, 0], W, k, bits, N)
            for n in range(max(d + 1, 2), N + 1):
                if not (key_word(&K[i, 0], n - 1, k, bits, wmask) == 1
                        and key_word(&K[i, 0], n - 2, k, bits, wmask) == 1):
                    sizes[n] += 1
    levels = [dict(count=alloc(vocab_size, np.uint32))]
    for n in range(2, N + 1):
        levels.append(dict(word=alloc(sizes[n], np.uint32), parent=alloc(sizes[n], np.uint32),
                           count=alloc(sizes[n], np.uint32)))
    if with_raw:
        for n in range(1, N + 1):
            levels[n - 1]["raw"] = alloc(len(levels[n - 1]["count"]), np.uint32)
    # pass 2: fill.  cur[n] is the index of the open group of order n in its level (-1: padding).
    cdef int64_t cur[17]
    cdef uint64_t raw[17]
    cdef uint64_t ext[17]
    cdef bint bos_start[17]
    cdef uint32_t* word_p[17]
    cdef uint32_t* parent_p[17]
    cdef uint32_t* count_p[17]
    cdef uint32_t* raw_p[17]
    cdef uint32_t[::1] view
    cdef uint64_t fill[17]
    cdef uint64_t last_raw[17]
    for n in range(1, N + 1):
        lv = levels[n - 1]
        view = lv["count"]
        count_p[n] = &view[0] if view.shape[0] else NULL
        raw_p[n] = NULL
        if with_raw and lv["raw"].shape[0]:
            view = lv["raw"]
            raw_p[n] = &view[0]
        if n >= 2:
            view = lv["word"]
            word_p[n] = &view[0] if view.shape[0] else NULL
            view = lv["parent"]
            parent_p[n] = &view[0] if view.shape[0] else NULL
        cur[n] = -1
        raw[n] = 0
        ext[n] = 0
        fill[n] = 0
        bos_start[n] = False
    cdef uint32_t c
    with nogil:
        for i in range(U + 1):
            d = 0 if (i == 0 or i == U) else common_words(&K[i, 0], &K[i - 1, 0], W, k, bits, N)
            if i > 0:
                for n in range(d + 1, N + 1):        # close groups
                    if cur[n] >= 0:
                        count_p[n][cur[n]] = <uint32_t>(raw[n] if (n == N or bos_start[n]) else ext[n])
                        if raw_p[n] != NULL:
                            raw_p[n][cur[n]] = <uint32_t>raw[n]
                    last_raw[n] = raw[n]
                    raw[n] = 0
                    ext[n] = 0
            if i == U:
                break
            for n in range(d + 1, N + 1):            # open groups
                fw = key_word(&K[i, 0], n - 1, k, bits, wmask)
                if n == 1:
                    cur[1] = fw
                    bos_start[1] = False
                elif fw == 1 and key_word(&K[i, 0], n - 2, k, bits, wmask) == 1:
                    cur[n] = -1
                else:
                    cur[n] = fill[n]
                    fill[n] += 1
                    word_p[n][cur[n]] = fw
                    parent_p[n][cur[n]] = <uint32_t>cur[n - 1]
                    bos_start[n] = fw == 1
            c = C[i]
            for n in range(1, N + 1):
                raw[n] += c
            for n in range(max(d, 1), N):
                ext[n] += 1
    # The n-grams still open at the end (the suffixes of the last window): lmplz counts their raw
    # count, not their adjusted count, in the count-of-counts behind the discounts.
    for n in range(1, N):
        levels[n - 1]["last_open"] = (cur[n], last_raw[n]) if U and cur[n] >= 0 else None
    return levels


def child_starts(const uint32_t[::1] parent, uint64_t parent_size, alloc=np.zeros):
    """Start of each parent's children: starts[p] .. starts[p+1] index the children of p (parent sorted)."""
    starts = alloc(parent_size + 1, np.uint32)
    cdef uint32_t[::1] S = starts
    cdef size_t i, n = parent.shape[0]
    cdef uint64_t p
    with nogil:
        for i in range(n):
            S[parent[i] + 1] += 1
        for p in range(parent_size):
            S[p + 1] += S[p]
    return starts


def contexts(const uint32_t[::1] word, const uint32_t[::1] parent, parent_ctx,
             const uint32_t[::1] ctx_level_word, const uint32_t[::1] ctx_level_starts,
             uint32_t[::1] out, size_t lo, size_t hi):
    """Write into out[lo:hi] the index in level n-1 of the context (first n-1 words) of n-grams lo..hi.

    The context of w1..wn is the child with first word w1 of the context of its suffix w2..wn, so it is
    found among the children of ``parent_ctx[parent]`` (``parent_ctx`` None for n = 2: the context is
    then the unigram w1 itself).  The n-grams sharing a parent come in increasing w1, so one forward
    galloping search through those children serves the whole group.
    """
    cdef size_t i, b0, b1
    cdef const uint32_t[::1] pctx
    cdef const uint32_t* W
    cdef const uint32_t* S
    cdef uint32_t p, prev = 0xFFFFFFFFu, j = 0, end = 0, step, w
    cdef uint32_t g[64]
    if parent_ctx is None:
        out[lo:hi] = word[lo:hi]
        return
    pctx = parent_ctx
    W = &ctx_level_word[0]
    S = &ctx_level_starts[0]
    with nogil:
        # in batches of 64: find the parents' contexts and prefetch their children ranges, then search
        # (the searches of a batch then mostly hit the cache instead of waiting one by one)
        b0 = lo
        while b0 < hi:
            b1 = min(b0 + 64, hi)
            for i in range(b0, b1):
                g[i - b0] = pctx[parent[i]]
                __builtin_prefetch(&S[g[i - b0]])
            for i in range(b0, b1):
                __builtin_prefetch(&W[S[g[i - b0]]])
            for i in range(b0, b1):
                p = parent[i]
                if p != prev:
                    prev = p
                    j = S[g[i - b0]]
                    end = S[g[i - b0] + 1]
                w = word[i]
                step = 1
                while j + step < end and W[j + step] <= w:
                    j += step
                    step *= 2
                j = <uint32_t>find_child(W, j, min(j + step, end), w)
                out[i] = j
                j += 1
            b0 = b1


def link_parents(const uint32_t[:, ::1] rows, const uint32_t[:, ::1] lower):
    """Index in ``lower`` (order n-1, suffix order) of the suffix w2..wn of each row (order n, suffix
    order).  Returns (parents, first_missing): first_missing is -1, or the index of the first row whose
    suffix is not in ``lower`` or that repeats the row before it."""
    cdef size_t n = rows.shape[0], m = lower.shape[0], i, j = 0
    cdef int order = rows.shape[1], q
    cdef int cmp
    parents = np.empty(n, dtype=np.uint32)
    cdef uint32_t[::1] P = parents
    cdef int64_t missing = -1
    with nogil:
        for i in range(n):
            if i > 0:
                cmp = 0
                for q in range(order - 1, -1, -1):
                    if rows[i, q] != rows[i - 1, q]:
                        cmp = 1
                        break
                if cmp == 0:
                    missing = i
                    break
            while True:
                if j >= m:
                    cmp = -1
                    break
                cmp = 0
                # compare suffix rows[i, 1:] with lower[j, :], last word first
                for q in range(order - 1, 0, -1):
                    if rows[i, q] != lower[j, q - 1]:
                        cmp = 1 if rows[i, q] > lower[j, q - 1] else -1
                        break
                if cmp <= 0:
                    break
                j += 1
            if cmp != 0:
                missing = i
                break
            P[i] = <uint32_t>j
    return parents, missing


def suffix_order(const uint32_t[:, ::1] rows, layout):
    """Permutation putting n-gram rows (one word id per column, oldest first) in suffix order, or None
    when they already are in it (as lmplz and glm write them)."""
    cdef size_t m = rows.shape[0], i
    cdef int n = rows.shape[1], q, W = layout.words, k = layout.per_word, bits = layout.bits, j
    cdef bint ordered = True
    with nogil:
        for i in range(1, m):
            for q in range(n - 1, -1, -1):
                if rows[i, q] != rows[i - 1, q]:
                    if rows[i, q] < rows[i - 1, q]:
                        ordered = False
                    break
            if not ordered:
                break
    if ordered:
        return None
    if W + 1 > 4:
        return np.lexsort(np.asarray(rows).T)
    keys = np.zeros((m, W + 1), dtype=np.uint64)
    cdef uint64_t[:, ::1] K = keys
    with nogil:
        for i in range(m):
            for j in range(n):
                K[i, j // k] |= (<uint64_t>rows[i, n - 1 - j]) << ((k - 1 - j % k) * bits)
            K[i, W] = i
        glm_sort_keys(&K[0, 0], m, W + 1, 2)
    return keys[:, W].astype(np.intp)


def repack(const uint64_t[:, ::1] keys, old, new):
    """The same windows in a wider layout (more bits per word); their order does not change."""
    cdef size_t m = keys.shape[0], i
    cdef int N = old.order, j
    cdef int ko = old.per_word, bo = old.bits, kn = new.per_word, bn = new.bits, Wn = new.words
    cdef uint64_t omask = (1ULL << bo) - 1
    out = np.zeros((m, Wn), dtype=np.uint64)
    cdef uint64_t[:, ::1] O = out
    with nogil:
        for i in range(m):
            for j in range(N):
                O[i, j // kn] |= (<uint64_t>key_word(&keys[i, 0], j, ko, bo, omask)) << ((kn - 1 - j % kn) * bn)
    return out



def child_index(const uint32_t[::1] node, const uint32_t[::1] word, const uint32_t[::1] starts,
                const uint32_t[::1] level_words):
    """Index in a level of the child with first word word[i] of each node[i] of the level below (its
    children are level_words[starts[node] .. starts[node + 1]], sorted).  Returns (indices uint32,
    first_missing): first_missing is -1, or the first i whose child is not there.

    As ``contexts``: in batches of 64, the nodes' children ranges are prefetched first; a run of the
    same node with increasing words (the n-grams of one parent) gallops forward through its children."""
    cdef size_t m = node.shape[0], i, b0 = 0, b1
    indices = np.empty(m, dtype=np.uint32)
    cdef uint32_t[::1] out = indices
    cdef int64_t f, missing = -1
    cdef const uint32_t* W = &level_words[0] if level_words.shape[0] else NULL
    cdef const uint32_t* S = &starts[0]
    cdef uint32_t p, prev = 0xFFFFFFFFu, last = 0, j = 0, end = 0, step, w
    if W == NULL:
        return indices, (0 if m else -1)
    with nogil:
        while b0 < m and missing < 0:
            b1 = min(b0 + 64, m)
            for i in range(b0, b1):
                __builtin_prefetch(&S[node[i]])
            for i in range(b0, b1):
                __builtin_prefetch(&W[S[node[i]]])
            for i in range(b0, b1):
                p = node[i]
                w = word[i]
                if p != prev or w <= last:
                    prev = p
                    j = S[p]
                    end = S[p + 1]
                last = w
                step = 1
                while j + step < end and W[j + step] <= w:
                    j += step
                    step *= 2
                f = find_child(W, j, min(j + step, end), w)
                if f < 0:
                    missing = i
                    break
                out[i] = <uint32_t>f
                j = <uint32_t>f + 1
            b0 = b1
    return indices, missing


def group_by_owner(const int32_t[::1] owner, size_t ranges):
    """(perm uint32, cuts int64): the indices 0..m-1 grouped by owner[i] (a range number below
    ``ranges``), in increasing i within a group (a stable counting sort), and where each group starts
    (ranges + 1 cuts)."""
    cdef size_t m = owner.shape[0], i, k
    cuts = np.zeros(ranges + 1, dtype=np.int64)
    perm = np.empty(m, dtype=np.uint32)
    cdef int64_t[::1] C = cuts
    cdef uint32_t[::1] P = perm
    cdef int64_t[::1] at = np.zeros(ranges + 1, dtype=np.int64)
    with nogil:
        for i in range(m):
            C[owner[i] + 1] += 1
        for k in range(ranges):
            C[k + 1] += C[k]
            at[k] = C[k]
        for i in range(m):
            k = owner[i]
            P[at[k]] = <uint32_t>i
            at[k] += 1
    return perm, cuts
