# distutils: language = c++
"""Generalized Language Model kernels: grouping window projections into a skip pattern's table, and
scoring streams over the pattern lattice.

A pattern's table is a trie level: its n-grams sorted by (parent, word), where the parent is the same
n-gram without its farthest word (an n-gram of the parent pattern) and ``word`` is that farthest word;
``starts[p] .. starts[p+1]`` index the children of parent p.  The unigram pattern is indexed by word id.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.math cimport isnan, log10, NAN
from libcpp.algorithm cimport sort
from cpython.mem cimport PyMem_Malloc, PyMem_Free

cnp.import_array()

include "_search.pxi"
include "_childhash.pxi"
include "_results.pxi"

DEF MAXORDER = 8
DEF MAXPAT = 128          # 2^(MAXORDER-1)
DEF LANES = 32            # positions searched together
DEF RING = 64             # positions whose n-grams are kept (>= LANES + MAXORDER)
DEF GLM_SMALL = 32        # children ranges up to this size are searched, larger ones hashed

MAX_ORDER = MAXORDER


def group(const uint32_t[::1] parent, const uint32_t[::1] word, uint64_t n_parents, weights=None):
    """Distinct (parent, word) pairs of n items, as a pattern table.

    Returns (starts uint32[n_parents + 1], words uint32[m], stat uint32[m], inverse uint32[n]): the
    distinct pairs sorted by (parent, word), the children range of each parent, and per pair the number
    of items (distinct fillers, when the items are distinct windows) or, given ``weights``, the sum of
    their weights; inverse maps each item to its pair.
    """
    cdef size_t n = parent.shape[0], i, a, b, j, m = 0
    cdef uint64_t p
    starts_np = np.zeros(n_parents + 1, dtype=np.uint32)
    inverse_np = np.empty(n, dtype=np.uint32)
    pairs_np = np.empty(n, dtype=np.uint64)
    words_np = np.empty(n, dtype=np.uint32)
    stat_np = np.zeros(n, dtype=np.uint32)
    cdef uint32_t[::1] S = starts_np
    cdef uint32_t[::1] INV = inverse_np
    cdef uint64_t[::1] PR = pairs_np
    cdef uint32_t[::1] WO = words_np
    cdef uint32_t[::1] ST = stat_np
    cdef const uint32_t[::1] WT
    cdef bint weighted = weights is not None
    if weighted:
        WT = weights
    pos_np = np.zeros(n_parents + 1, dtype=np.uint64)
    cdef uint64_t[::1] pos = pos_np
    cdef uint32_t w, prev
    with nogil:
        # counting sort by parent, then sort each parent's items by word
        for i in range(n):
            pos[parent[i] + 1] += 1
        for p in range(n_parents):
            pos[p + 1] += pos[p]
        for i in range(n):
            PR[pos[parent[i]]] = (<uint64_t>word[i] << 32) | i
            pos[parent[i]] += 1
        a = 0
        for p in range(n_parents):
            b = pos[p]
            S[p] = <uint32_t>m
            if b - a > 1:
                sort(&PR[a], &PR[b])
            for j in range(a, b):
                w = <uint32_t>(PR[j] >> 32)
                if j == a or w != prev:
                    WO[m] = w
                    m += 1
                    prev = w
                i = <uint32_t>(PR[j] & 0xFFFFFFFFu)
                INV[i] = <uint32_t>(m - 1)
                if weighted:
                    ST[m - 1] += WT[i]
                else:
                    ST[m - 1] += 1
            a = b
        S[n_parents] = <uint32_t>m
    del pairs_np, pos_np
    words_np.resize(m, refcheck=False)                     # shrinks in place (no copy of large arrays)
    stat_np.resize(m, refcheck=False)
    return starts_np, words_np, stat_np, inverse_np


def pattern_hash(tables):
    """The child hash of the pattern tables (table number: mask >> 1)."""
    return child_hash([(mask >> 1, t["starts"], t["word"]) for mask, t in sorted(tables.items()) if mask > 1],
                      GLM_SMALL)


cdef class Scorer:
    """Probabilities of the GLM over a stream: per position, the n-gram of every pattern is found by
    extending its parent pattern's n-gram by one word (a child search), and the probabilities are
    combined bottom-up over the lattice:

        P_S(w|h) = alpha_S(g) + gamma_S(h) * sum_c weight_S,c P_c(w|h_c)   if the history h was seen
        P_S(w|h) =                           sum_c weight_S,c P_c(w|h_c)   otherwise

    where g is S's n-gram (alpha 0 when unseen) and h its history, itself an n-gram of the pattern
    ``hist[S]`` found ``gap[S]`` positions earlier.
    """
    cdef int order, npat
    cdef object keep                      # the arrays behind the pointers
    cdef public object hash               # child_hash of the pattern tables
    cdef const uint32_t* T
    cdef uint64_t tmask
    cdef const double* uni
    cdef const uint32_t* words[MAXPAT]
    cdef const uint32_t* starts[MAXPAT]
    cdef const float* alpha[MAXPAT]
    cdef const double* gamma[MAXPAT]
    cdef bint present[MAXPAT]
    cdef int par[MAXPAT]
    cdef int hist[MAXPAT]
    cdef int gap[MAXPAT]
    cdef int far[MAXPAT]
    cdef int nchild[MAXPAT]
    cdef int child[MAXPAT * MAXORDER]
    cdef double weight[MAXPAT * MAXORDER]
    # the 2014 toolkit's models (glm.glmtk2014): tops of every length, an extra term, a floor
    cdef bint tops
    cdef double extra, floor
    cdef const double* top1
    cdef const float* talpha[MAXORDER]
    cdef const double* tgamma[MAXORDER]

    def __init__(self, int order, tables, children, hash_table=None, compat=None):
        """tables: {mask: dict(word, starts, alpha, gamma)} (mask 1: dict(prob)); children: {mask:
        [(child mask, weight), ...]} for every mask to combine (patterns absent from it are not used);
        hash_table: pattern_hash(tables) (computed when not given).  compat: dict(top={1: dict(prob),
        mask 1^L: dict(alpha, gamma) for L = 2 .. order-1}, extra, floor) answers a query with L-1
        history words by the top of length L, adds ``extra`` to every average of children and raises
        probabilities <= 0 to ``floor`` (glm.glmtk2014)."""
        cdef int q, j
        if not 1 <= order <= MAXORDER:
            raise ValueError(f"order must be between 1 and {MAXORDER}")
        self.order, self.npat = order, 1 << (order - 1)
        keep = []
        uni = np.ascontiguousarray(tables[1]["prob"], dtype=np.float64)
        keep.append(uni)
        self.uni = <const double*>cnp.PyArray_DATA(uni)
        for q in range(self.npat):
            mask = 2 * q + 1
            self.present[q] = q == 0 or mask in children
            self.nchild[q] = 0
            if q == 0 or not self.present[q]:
                continue
            t = tables[mask]
            arrs = [np.ascontiguousarray(t[k], dtype=dt) for k, dt in
                    (("word", np.uint32), ("starts", np.uint32), ("alpha", np.float32), ("gamma", np.float64))]
            keep.extend(arrs)
            self.words[q] = <const uint32_t*>cnp.PyArray_DATA(arrs[0])
            self.starts[q] = <const uint32_t*>cnp.PyArray_DATA(arrs[1])
            self.alpha[q] = <const float*>cnp.PyArray_DATA(arrs[2])
            self.gamma[q] = <const double*>cnp.PyArray_DATA(arrs[3])
            far = mask.bit_length() - 1
            self.far[q] = far
            self.par[q] = (mask & ~(1 << far)) >> 1
            low = mask & ~1
            g = (low & -low).bit_length() - 1
            self.gap[q], self.hist[q] = g, (mask >> g) >> 1
            for j, (c, wt) in enumerate(children[mask]):
                self.child[q * MAXORDER + j] = c >> 1
                self.weight[q * MAXORDER + j] = wt
            self.nchild[q] = len(children[mask])
        for q in range(1, self.npat):
            if self.present[q] and not (self.present[self.par[q]] and self.present[self.hist[q]]):
                raise ValueError("a pattern's parent or history pattern is missing")
        self.tops = compat is not None
        self.extra = compat["extra"] if self.tops else 0.0
        self.floor = compat["floor"] if self.tops else 0.0
        if self.tops:
            top1 = np.ascontiguousarray(compat["top"][1]["prob"], dtype=np.float64)
            keep.append(top1)
            self.top1 = <const double*>cnp.PyArray_DATA(top1)
            for j in range(2, order):
                t = compat["top"][(1 << j) - 1]
                arrs = [np.ascontiguousarray(t["alpha"], dtype=np.float32),
                        np.ascontiguousarray(t["gamma"], dtype=np.float64)]
                keep.extend(arrs)
                self.talpha[j - 1] = <const float*>cnp.PyArray_DATA(arrs[0])
                self.tgamma[j - 1] = <const double*>cnp.PyArray_DATA(arrs[1])
        self.keep = keep
        self.hash = pattern_hash(tables) if hash_table is None else hash_table
        cdef const uint32_t[::1] H = self.hash
        self.T = &H[0]
        self.tmask = H.shape[0] - 1

    cdef void find_nodes(self, const uint32_t* ids, const size_t* pos, const int* hl, int B,
                         int64_t* ring) noexcept nogil:
        """For B positions at once: ring[pos % RING][q] = index of the n-gram of pattern q ending at
        ids[pos] (history length hl), or -1.  The positions advance through the patterns in lock step,
        each pass prefetching what the next reads, so that their cache misses overlap."""
        cdef int q, j
        cdef int64_t p
        cdef int64_t* node
        cdef uint32_t lo[LANES]
        cdef uint32_t hi[LANES]
        cdef uint64_t slot[LANES]
        cdef int64_t par[LANES]
        for j in range(B):
            ring[(pos[j] % RING) * MAXPAT] = ids[pos[j]]
        for q in range(1, self.npat):
            if not self.present[q]:
                for j in range(B):
                    ring[(pos[j] % RING) * MAXPAT + q] = -1
                continue
            for j in range(B):
                node = &ring[(pos[j] % RING) * MAXPAT]
                par[j] = node[self.par[q]] if self.far[q] <= hl[j] else -1
                if par[j] >= 0 and ring[((pos[j] - self.gap[q]) % RING) * MAXPAT + self.hist[q]] < 0:
                    par[j] = -1          # an unseen history has no n-grams: no lookup
                if par[j] >= 0:
                    __builtin_prefetch(&self.starts[q][par[j]])
            for j in range(B):
                if par[j] >= 0:
                    lo[j], hi[j] = self.starts[q][par[j]], self.starts[q][par[j] + 1]
                    if hi[j] - lo[j] > GLM_SMALL:
                        slot[j] = child_key(q, <uint32_t>par[j], ids[pos[j] - self.far[q]]) & self.tmask
                        __builtin_prefetch(&self.T[slot[j]])
                    else:
                        __builtin_prefetch(&self.words[q][lo[j]])
            for j in range(B):
                if par[j] >= 0 and hi[j] - lo[j] > GLM_SMALL and self.T[slot[j]] != EMPTY:
                    __builtin_prefetch(&self.words[q][self.T[slot[j]]])
            for j in range(B):
                node = &ring[(pos[j] % RING) * MAXPAT]
                if par[j] < 0:
                    node[q] = -1
                else:
                    node[q] = find_child_hashed(self.T, self.tmask, q, self.words[q], self.starts[q],
                                                <uint32_t>par[j], ids[pos[j] - self.far[q]], GLM_SMALL)
        # what prob() reads next
        for j in range(B):
            node = &ring[(pos[j] % RING) * MAXPAT]
            for q in range(1, self.npat):
                if self.present[q] and self.far[q] <= hl[j]:
                    if node[q] >= 0:
                        __builtin_prefetch(&self.alpha[q][node[q]])
                    p = ring[((pos[j] - self.gap[q]) % RING) * MAXPAT + self.hist[q]]
                    if p >= 0:
                        __builtin_prefetch(&self.gamma[q][p])

    cdef double prob(self, int64_t* ring, size_t i, int h, int* matched) noexcept nogil:
        """P(ids[i] | its h history words), given the nodes of positions i-h .. i in ``ring``."""
        cdef double P[MAXPAT]
        cdef double avg, gm, p
        cdef int q, j, top = (1 << h) - 1, m = 1
        cdef int64_t hn, g
        cdef int64_t* node = &ring[(i % RING) * MAXPAT]
        cdef bint own_top = self.tops and h < self.order - 1      # a top of a shorter length answers
        P[0] = self.uni[node[0]]
        for q in range(1, top + 1):
            if not self.present[q] or self.far[q] > h:
                continue
            hn = ring[((i - self.gap[q]) % RING) * MAXPAT + self.hist[q]]
            avg = self.extra
            for j in range(self.nchild[q]):
                avg += self.weight[q * MAXORDER + j] * P[self.child[q * MAXORDER + j]]
            if own_top and q == top:
                gm = self.tgamma[h][hn] if hn >= 0 else NAN
                P[q] = avg if isnan(gm) else (self.talpha[h][node[q]] if node[q] >= 0 else 0.0) + gm * avg
                break
            gm = self.gamma[q][hn] if hn >= 0 else NAN
            if isnan(gm):
                P[q] = avg
            else:
                g = node[q]
                P[q] = (self.alpha[q][g] if g >= 0 else 0.0) + gm * avg
        while m <= h and self.present[(1 << m) - 1] and node[(1 << m) - 1] >= 0:
            m += 1
        matched[0] = m
        p = self.top1[node[0]] if own_top and h == 0 else P[top]
        return self.floor if p <= 0 and self.floor > 0 else p

    def logprob(self, uint32_t w, context):
        """log10 p(w | context), context a sequence of ids, oldest first; returns (log10p, matched)."""
        cdef int L = min(len(context), self.order - 1), j, m
        ids = np.array(list(context)[len(context) - L:] + [w], dtype=np.uint32)
        cdef const uint32_t[::1] I = ids
        cdef int64_t ring[RING * MAXPAT]
        cdef size_t pos[MAXORDER]
        cdef int hl[MAXORDER]
        for j in range(L + 1):
            pos[j], hl[j] = j, j
        self.find_nodes(&I[0], pos, hl, L + 1, ring)
        p = self.prob(ring, L, L, &m)
        return log10(p), m

    def score_stream(self, const uint32_t[::1] ids, bint bos=True, bint eos=True, bint per_token=False):
        """Score a padded stream (1 w1 .. wn 2 per line), with the same results as the back-off
        model's ``Trie.score_stream``."""
        cdef size_t n = ids.shape[0], i, sent = 0, line = 0
        arrays = result_arrays(ids, eos, per_token)
        cdef Results R = results_of(arrays, per_token)
        cdef int64_t* ring = <int64_t*>PyMem_Malloc(RING * MAXPAT * sizeof(int64_t))
        cdef size_t pos[LANES]
        cdef int hl[LANES]
        cdef int B, b, m
        cdef size_t k, q
        cdef uint32_t w
        cdef double sc
        if ring == NULL:
            raise MemoryError()
        with nogil:
            i = 0
            while i < n:
                # a batch of positions (each line's <s> included, so histories stay in the ring)
                B = 0
                k = i
                while k < n and B < LANES and k - i < RING - MAXORDER:
                    w = ids[k]
                    if w == 1:
                        sent = k
                        ring[(k % RING) * MAXPAT] = 1
                    elif w != 2 or eos:
                        pos[B] = k
                        hl[B] = <int>min(k - sent - (0 if bos else 1), <size_t>(self.order - 1))
                        B += 1
                    k += 1
                self.find_nodes(&ids[0], pos, hl, B, ring)
                b = 0
                for q in range(i, k):
                    w = ids[q]
                    if w == 1:
                        continue
                    if w == 2 and not eos:
                        line += 1
                        continue
                    sc = log10(self.prob(ring, q, hl[b], &m))
                    b += 1
                    add_token(&R, line, sc, m, w == 0)
                    if w == 2:
                        line += 1
                i = k
        PyMem_Free(ring)
        return arrays if per_token else arrays[0]

