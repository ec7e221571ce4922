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
from libc.string cimport memcpy, memmove

cnp.import_array()

include "_search.pxi"

cdef extern from *:
    """
    #include <algorithm>
    #include <array>
    #include <cstdint>
    #include <cstring>
    #include <thread>
    #include <vector>
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
    /* Sort each bucket [starts[b], starts[b + 1]) of keys; with two threads, the buckets are cut in two
       groups of about the same number of keys, one per thread (no merge: the buckets are in order). */
    template <int W> static void glm_sort_buckets_w(uint64_t* p, const uint64_t* starts, size_t nb, int threads) {
        typedef std::array<uint64_t, W> K;
        K* a = reinterpret_cast<K*>(p);
        auto sort_range = [a, starts](size_t b0, size_t b1) {
            for (size_t b = b0; b < b1; b++)
                if (starts[b + 1] - starts[b] > 1) std::sort(a + starts[b], a + starts[b + 1]);
        };
        size_t cut = 0;
        if (threads >= 2 && starts[nb] >= (1u << 16))
            cut = std::upper_bound(starts, starts + nb + 1, starts[nb] / 2) - starts - 1;
        if (cut == 0) { sort_range(0, nb); return; }
        std::thread t(sort_range, (size_t)0, cut);
        sort_range(cut, nb);
        t.join();
    }
    static void glm_sort_buckets(uint64_t* p, const uint64_t* starts, size_t nb, int w, int threads) {
        switch (w) {
            case 1: glm_sort_buckets_w<1>(p, starts, nb, threads); break;
            case 2: glm_sort_buckets_w<2>(p, starts, nb, threads); break;
            case 3: glm_sort_buckets_w<3>(p, starts, nb, threads); break;
            case 4: glm_sort_buckets_w<4>(p, starts, nb, threads); break;
        }
    }
    /* f(arg, 0) .. f(arg, k - 1), each on a thread of its own (task 0 on the caller's). */
    static void glm_run_tasks(void (*f)(void*, int), void* arg, int k) {
        std::vector<std::thread> ts;
        for (int t = 1; t < k; t++) ts.emplace_back(f, arg, t);
        f(arg, 0);
        for (auto& t : ts) t.join();
    }
    """
    ctypedef void (*task_fn)(void*, int) noexcept nogil
    void glm_run_tasks(task_fn f, void* arg, int k) nogil
    void glm_sort_keys(uint64_t* p, size_t n, int w, int threads) nogil
    void glm_sort_buckets(uint64_t* p, const uint64_t* starts, size_t nb, int w, int threads) nogil


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


cdef enum:
    BUCKET_BITS = 16           # windows are sorted in 2^16 buckets by their top bits
    MAX_TASKS = 16             # parts of the work of count_windows and build_levels (one a thread)


cdef inline void window_key(const uint32_t* stream, size_t i, size_t start, int N, int k, int bits,
                            uint64_t* key) noexcept nogil:
    """The packed key of the window ending at stream[i] (its sentence starts at ``start``); key has
    room for the layout's words and is zeroed here."""
    cdef int j
    cdef uint32_t w
    for j in range((N + k - 1) // k):
        key[j] = 0
    for j in range(N):
        w = stream[i - j] if i >= start + j else 1
        key[j // k] |= (<uint64_t>w) << ((k - 1 - j % k) * bits)


cdef struct WindowsJob:
    const uint32_t* stream
    uint64_t* K
    int N, W, k, bits, shift
    bint scatter                # False: count the windows of each bucket; True: write the keys
    size_t lo[MAX_TASKS]        # per task: its part of the stream (starting at a sentence start) ...
    size_t hi[MAX_TASKS]
    uint64_t* place[MAX_TASKS]  # ... and per bucket: its windows (pass 1), then their next place (pass 2)


cdef void windows_task(void* arg, int t) noexcept nogil:
    cdef WindowsJob* job = <WindowsJob*>arg
    cdef const uint32_t* stream = job.stream
    cdef uint64_t* place = job.place[t]
    cdef uint64_t* dst
    cdef size_t i, start = job.lo[t], b
    cdef int q
    cdef uint64_t key[4]
    for i in range(job.lo[t], job.hi[t]):
        if stream[i] == 1:
            start = i
            continue
        window_key(stream, i, start, job.N, job.k, job.bits, key)
        b = key[0] >> job.shift
        if job.scatter:
            dst = job.K + place[b] * job.W
            for q in range(job.W):
                dst[q] = key[q]
        place[b] += 1


def count_windows(const uint32_t[::1] stream, layout, int threads=1):
    """Sorted unique windows of a padded stream and their counts: (keys[U, W] uint64, counts[U] uint32).

    The windows are sorted by buckets (the top BUCKET_BITS bits of a key, mostly its last word): each
    key is written straight into its bucket's place, then the buckets are sorted.  Fewer comparisons
    than one sort of the whole, the buckets fit in the cache, and every step but the final count runs
    on the threads: the stream is cut at sentence starts into parts that find their keys' places (each
    part's keys after those of the parts before it in every bucket), and the buckets are shared out."""
    cdef WindowsJob job
    cdef int t, q
    cdef size_t n = stream.shape[0], i, m, u, c = 0
    job.N, job.W, job.k, job.bits = layout.order, layout.words, layout.per_word, layout.bits
    cdef int W = job.W
    cdef int used = job.k * job.bits                # bits of a key's first word that hold words
    job.shift = used - BUCKET_BITS if used > BUCKET_BITS else 0
    cdef size_t nb = (<size_t>1) << (used - job.shift)
    job.stream = &stream[0] if n else NULL
    cdef int parts = max(1, min(threads, MAX_TASKS, n // (1 << 16)))
    cuts = [0]
    for t in range(1, parts):
        c = max(c, n * t // parts)
        while c < n and stream[c] != 1:
            c += 1
        cuts.append(c)
    cuts.append(n)
    place_np = np.zeros((parts, nb), dtype=np.uint64)
    cdef uint64_t[:, ::1] place = place_np
    for t in range(parts):
        job.lo[t], job.hi[t] = cuts[t], cuts[t + 1]
        job.place[t] = &place[t, 0]
    job.scatter = False
    with nogil:
        glm_run_tasks(windows_task, &job, parts)
    starts_np = np.zeros(nb + 1, dtype=np.uint64)             # where each bucket starts
    np.cumsum(place_np.sum(0), out=starts_np[1:])
    place_np[:] = starts_np[:nb] + np.cumsum(place_np, 0) - place_np     # each part's first places
    m = starts_np[nb]
    keys = np.empty((m, W), dtype=np.uint64)
    counts = np.empty(m, dtype=np.uint32)
    if m == 0:
        return keys, counts
    cdef uint64_t[::1] S = starts_np
    cdef uint64_t[:, ::1] K = keys
    cdef uint32_t[::1] C = counts
    job.K = &K[0, 0]
    job.scatter = True
    with nogil:
        glm_run_tasks(windows_task, &job, parts)
        glm_sort_buckets(&K[0, 0], &S[0], nb, W, threads)
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
                for q in range(W):
                    K[u, q] = K[i, q]
            C[u] = 1
        u += 1
    return keys[:u], counts[:u]


cdef struct MergeJob:
    const uint64_t* A
    const uint32_t* CA
    const uint64_t* B
    const uint32_t* CB
    uint64_t* K
    uint32_t* C
    int W
    size_t a[3]                 # part t merges A[a[t]:a[t + 1]] with B[b[t]:b[t + 1]] ...
    size_t b[3]
    size_t done[2]              # ... into K, C from a[t] + b[t] on: done[t] rows


cdef inline int compare_keys(const uint64_t* x, const uint64_t* y, int W) noexcept nogil:
    cdef int q
    for q in range(W):
        if x[q] != y[q]:
            return -1 if x[q] < y[q] else 1
    return 0


cdef void merge_task(void* arg, int t) noexcept nogil:
    cdef MergeJob* job = <MergeJob*>arg
    cdef int W = job.W, q, cmp
    cdef size_t i = job.a[t], j = job.b[t], na = job.a[t + 1], nb = job.b[t + 1]
    cdef size_t o = job.a[t] + job.b[t], o0 = o
    cdef const uint64_t* src
    while i < na or j < nb:
        if i < na and j < nb:
            cmp = compare_keys(job.A + i * W, job.B + j * W, W)
        else:
            cmp = -1 if i < na else 1
        if cmp <= 0:
            src = job.A + i * W
            job.C[o] = job.CA[i]
            if cmp == 0:
                job.C[o] += job.CB[j]
                j += 1
            i += 1
        else:
            src = job.B + j * W
            job.C[o] = job.CB[j]
            j += 1
        for q in range(W):
            job.K[o * W + q] = src[q]
        o += 1
    job.done[t] = o - o0


def merge_counts(keys_a, counts_a, keys_b, counts_b, int threads=1):
    """Merge two sorted unique (keys, counts) runs into one, adding the counts of equal keys.  With two
    threads, the runs are cut at the middle key of the first (equal keys stay on one side) and the two
    halves merged at once, the second moved down behind the first."""
    cdef const uint64_t[:, ::1] A = keys_a
    cdef const uint64_t[:, ::1] B = keys_b
    cdef const uint32_t[::1] CA = counts_a
    cdef const uint32_t[::1] CB = counts_b
    cdef size_t na = A.shape[0], nb = B.shape[0], lo, hi, mid
    cdef MergeJob job
    job.W = A.shape[1]
    keys = np.empty((na + nb, job.W), dtype=np.uint64)
    counts = np.empty(na + nb, dtype=np.uint32)
    if na + nb == 0:
        return keys, counts
    cdef uint64_t[:, ::1] K = keys
    cdef uint32_t[::1] C = counts
    job.A = &A[0, 0] if na else NULL
    job.B = &B[0, 0] if nb else NULL
    job.CA = &CA[0] if na else NULL
    job.CB = &CB[0] if nb else NULL
    job.K, job.C = &K[0, 0], &C[0]
    cdef int parts = 2 if threads >= 2 and na >= (1 << 16) and nb >= (1 << 16) else 1
    job.a[0] = job.b[0] = 0
    job.a[parts], job.b[parts] = na, nb
    if parts == 2:
        job.a[1] = na // 2
        lo, hi = 0, nb                       # the first key of B not below A's middle key
        while lo < hi:
            mid = lo + (hi - lo) // 2
            if compare_keys(job.B + mid * job.W, job.A + job.a[1] * job.W, job.W) < 0:
                lo = mid + 1
            else:
                hi = mid
        job.b[1] = lo
    with nogil:
        glm_run_tasks(merge_task, &job, parts)
        if parts == 2 and job.done[0] < job.a[1] + job.b[1]:
            memmove(&K[job.done[0], 0], &K[job.a[1] + job.b[1], 0], job.done[1] * job.W * sizeof(uint64_t))
            memmove(&C[job.done[0]], &C[job.a[1] + job.b[1]], job.done[1] * sizeof(uint32_t))
    cdef size_t o = job.done[0] + (job.done[1] if parts == 2 else 0)
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


cdef struct LevelsJob:
    # the merged windows, their layout
    const uint64_t* K
    const uint32_t* C
    int N, W, k, bits
    uint64_t wmask
    bint fill                            # False: pass 1 (sizes), True: pass 2 (fill the levels)
    # per task: its windows lo..hi, the n-grams it opens per order (pass 1) and where they go (pass 2),
    # and the n-grams still open at its end (index, occurrences; pass 2)
    size_t lo[MAX_TASKS]
    size_t hi[MAX_TASKS]
    uint64_t sizes[MAX_TASKS][17]
    uint64_t first[MAX_TASKS][17]
    int64_t open_index[MAX_TASKS][17]
    uint64_t open_raw[MAX_TASKS][17]
    uint32_t* word_p[17]
    uint32_t* parent_p[17]
    uint32_t* count_p[17]
    uint32_t* raw_p[17]


cdef inline bint padding(const uint64_t* key, int n, int k, int bits, uint64_t wmask) noexcept nogil:
    """Whether the n-suffix of the window starts with two <s> (padding, not an n-gram)."""
    return key_word(key, n - 1, k, bits, wmask) == 1 and key_word(key, n - 2, k, bits, wmask) == 1


cdef void level_sizes(LevelsJob* job, int t) noexcept nogil:
    """Pass 1 over the task's windows: the n-grams of each order n >= 2 that it opens."""
    cdef const uint64_t* K = job.K
    cdef int N = job.N, W = job.W, n, d
    cdef size_t i
    for n in range(N + 1):
        job.sizes[t][n] = 0
    for i in range(job.lo[t], job.hi[t]):
        d = 0 if i == job.lo[t] else common_words(&K[i * W], &K[(i - 1) * W], W, job.k, job.bits, N)
        for n in range(max(d + 1, 2), N + 1):
            if not padding(&K[i * W], n, job.k, job.bits, job.wmask):
                job.sizes[t][n] += 1


cdef void fill_levels(LevelsJob* job, int t) noexcept nogil:
    """Pass 2 over the task's windows: word, parent, counts of the n-grams it opens, from
    job.first[t][n] on in each level.  cur[n] is the index of the open group of order n (-1: padding)."""
    cdef const uint64_t* K = job.K
    cdef int N = job.N, W = job.W, k = job.k, bits = job.bits, n, d
    cdef uint64_t wmask = job.wmask
    cdef size_t i, lo = job.lo[t], hi = job.hi[t]
    cdef int64_t cur[17]
    cdef uint64_t raw[17]
    cdef uint64_t ext[17]
    cdef uint64_t fill[17]
    cdef uint64_t last_raw[17]
    cdef bint bos_start[17]
    cdef uint32_t c, fw
    for n in range(N + 1):
        cur[n] = -1
        raw[n] = ext[n] = last_raw[n] = 0
        fill[n] = job.first[t][n]
        bos_start[n] = False
    for i in range(lo, hi + 1):
        d = 0 if (i == lo or i == hi) else common_words(&K[i * W], &K[(i - 1) * W], W, k, bits, N)
        if i > lo:
            for n in range(d + 1, N + 1):        # close groups
                if cur[n] >= 0:
                    job.count_p[n][cur[n]] = <uint32_t>(raw[n] if (n == N or bos_start[n]) else ext[n])
                    if job.raw_p[n] != NULL:
                        job.raw_p[n][cur[n]] = <uint32_t>raw[n]
                last_raw[n] = raw[n]
                raw[n] = 0
                ext[n] = 0
        if i == hi:
            break
        for n in range(d + 1, N + 1):            # open groups
            fw = key_word(&K[i * W], n - 1, k, bits, wmask)
            if n == 1:
                cur[1] = fw
                bos_start[1] = False
            elif padding(&K[i * W], n, k, bits, wmask):
                cur[n] = -1
            else:
                cur[n] = fill[n]
                fill[n] += 1
                job.word_p[n][cur[n]] = fw
                job.parent_p[n][cur[n]] = <uint32_t>cur[n - 1]
                bos_start[n] = fw == 1
        c = job.C[i]
        for n in range(1, N + 1):
            raw[n] += c
        for n in range(max(d, 1), N):
            ext[n] += 1
    for n in range(N + 1):
        job.open_index[t][n] = cur[n]
        job.open_raw[t][n] = last_raw[n]


cdef void levels_task(void* arg, int t) noexcept nogil:
    cdef LevelsJob* job = <LevelsJob*>arg
    if job.fill:
        fill_levels(job, t)
    else:
        level_sizes(job, t)


cdef list last_word_cuts(const uint64_t[:, ::1] K, int parts, int k, int bits, uint64_t wmask):
    """parts + 1 bounds cutting the windows into parts of about equal size, each cut moved forward to
    where the last word changes: a part then holds whole groups of every order (they share the last
    word), and parts can be passed through independently."""
    cdef size_t U = K.shape[0], c = 0
    cuts = [0]
    for t in range(1, parts):
        c = max(c, U * t // parts)
        while 0 < c < U and key_word(&K[c, 0], 0, k, bits, wmask) == key_word(&K[c - 1, 0], 0, k, bits, wmask):
            c += 1
        cuts.append(c)
    cuts.append(U)
    return cuts


def build_levels(keys, counts, layout, uint64_t vocab_size, bint with_raw=True, alloc=np.zeros,
                 int threads=1):
    """Suffix-trie levels with adjusted and raw counts from sorted unique windows.

    alloc(size, dtype) makes the (zeroed) level arrays: np.zeros, or memory-mapped files (glm.spill).
    threads: the windows are cut where their last word changes into that many parts, passed through
    on threads of their own (each part opens whole groups: the levels are the same).

    Returns a list of dicts, one per order n = 1..N: level 1 has 'count' (and 'raw') indexed by word id;
    level n >= 2 has 'word' (first word), 'parent' (index of the (n-1)-suffix in level n-1), 'count'
    (adjusted count) and, when with_raw, 'raw' (occurrences), all in suffix order.  Below the top order,
    'last_open' is (index, occurrences) of the n-gram still open at the end of the pass, or None.
    """
    cdef const uint64_t[:, ::1] K = keys
    cdef const uint32_t[::1] C = counts
    cdef LevelsJob job
    cdef int N = layout.order, n, t
    cdef size_t U = K.shape[0]
    job.N, job.W, job.k, job.bits = N, layout.words, layout.per_word, layout.bits
    job.wmask = (1ULL << job.bits) - 1
    job.K = &K[0, 0] if U else NULL
    job.C = &C[0] if U else NULL
    cdef int parts = max(1, min(threads, MAX_TASKS, U // (1 << 16)))
    cuts = last_word_cuts(K, parts, job.k, job.bits, job.wmask)
    for t in range(parts):
        job.lo[t], job.hi[t] = cuts[t], cuts[t + 1]
    job.fill = False
    with nogil:
        glm_run_tasks(levels_task, &job, parts)
    levels = [dict(count=alloc(vocab_size, np.uint32))]
    for n in range(2, N + 1):
        size = sum(job.sizes[t][n] for t in range(parts))
        levels.append(dict(word=alloc(size, np.uint32), parent=alloc(size, np.uint32),
                           count=alloc(size, np.uint32)))
    if with_raw:
        for n in range(1, N + 1):
            levels[n - 1]["raw"] = alloc(len(levels[n - 1]["count"]), np.uint32)
    cdef uint32_t[::1] view
    for n in range(1, N + 1):
        lv = levels[n - 1]
        view = lv["count"]
        job.count_p[n] = &view[0] if view.shape[0] else NULL
        job.raw_p[n] = NULL
        if with_raw and lv["raw"].shape[0]:
            view = lv["raw"]
            job.raw_p[n] = &view[0]
        if n >= 2:
            view = lv["word"]
            job.word_p[n] = &view[0] if view.shape[0] else NULL
            view = lv["parent"]
            job.parent_p[n] = &view[0] if view.shape[0] else NULL
        at = 0
        for t in range(parts):
            job.first[t][n] = at
            at += job.sizes[t][n]
    job.fill = True
    with nogil:
        glm_run_tasks(levels_task, &job, parts)
    # The n-grams still open at the end (the suffixes of the last window): lmplz counts their raw
    # count, not their adjusted count, in the count-of-counts behind the discounts.
    t = parts - 1
    while t > 0 and job.lo[t] == job.hi[t]:         # (the last part that holds windows)
        t -= 1
    for n in range(1, N):
        levels[n - 1]["last_open"] = ((job.open_index[t][n], job.open_raw[t][n])
                                      if U and job.open_index[t][n] >= 0 else None)
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
