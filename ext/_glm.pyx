# distutils: language = c++
"""Generalized Language Model kernels: grouping window projections into a skip pattern's table, and
scoring streams over the pattern lattice.

A pattern's table is a trie level: its n-grams sorted by (parent, word), where the parent is the same
n-gram without its farthest word (an n-gram of the parent pattern) and ``word`` is that farthest word;
``starts[p] .. starts[p+1]`` index the children of parent p.  The unigram pattern is indexed by word id.

The scorer's arrays may come from a damaged file whose large arrays are not checked at load: children
ranges are clipped to the child pattern's rows, hash probes stop after a full turn of the table, word ids
are checked against the vocabulary and every score is checked (_results.pxi).
"""
import numpy as np
cimport cython
cimport numpy as cnp
from libc.stdint cimport uint8_t, int32_t, uint32_t, uint64_t, int64_t
from libc.math cimport isnan, log, log10, NAN, INFINITY
from libcpp.algorithm cimport sort
from libc.stdlib cimport malloc, free
from libc.string cimport memset

cnp.import_array()

include "_search.pxi"
include "_childhash.pxi"
include "_results.pxi"
include "_protocol.pxi"

DEF MAXORDER = 8
DEF MAXPAT = 128          # 2^(MAXORDER-1)
DEF LANES = 32            # positions searched together
DEF RING = 64             # positions whose n-grams are kept (>= LANES + MAXORDER)
DEF SPANPAT = 64          # patterns of one span: at most 2^(MAXORDER-2)
DEF TILE = 64             # tokens of lattice_loglik's tiles (its work arrays: 32 KB at order 5)

MAX_ORDER = MAXORDER
cdef double NO_GAMMA = NAN
cdef float NO_ALPHA = 0.0


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


@cython.cdivision(True)
def terms(const uint32_t[::1] stat, const uint32_t[::1] hist, D, size_t n_hist, keep=None,
          bint zero_stats=False):
    """(alpha per n-gram, float32; gamma per history, float64) of one pattern (glm.terms.
    interpolation_terms, which says what they are), in three passes without temporaries: the totals
    per history, the alphas (float32 arithmetic, divided in float64 and rounded to float32, as numpy
    does it) with their sums per history in n-gram order, and the gammas."""
    cdef size_t n = stat.shape[0], i
    cdef uint32_t h, a
    if hist.shape[0] != n or (keep is not None and len(keep) != n):
        raise ValueError("terms: stat, hist and keep of different lengths")
    cdef float Df[4]
    Df[0] = 0.0
    Df[1], Df[2], Df[3] = D
    cdef const uint8_t[::1] K
    cdef bint pruning = keep is not None
    if pruning:
        K = np.ascontiguousarray(keep).view(np.uint8)
    den_np = np.zeros(n_hist, dtype=np.uint32)
    gamma_np = np.zeros(n_hist, dtype=np.float64)
    alpha_np = np.empty(n, dtype=np.float32)
    cdef uint32_t[::1] den = den_np
    cdef double[::1] G = gamma_np
    cdef float[::1] A = alpha_np
    cdef float x
    cdef double d
    cdef bint bad = False
    with nogil:
        for i in range(n):
            if hist[i] >= n_hist:
                bad = True
                break
            den[hist[i]] += stat[i]
        if not bad:
            for i in range(n):
                a, h = stat[i], hist[i]
                x = <float>a - Df[a if a < 3 else 3]
                if x < 0:
                    x = 0
                d = den[h]
                if zero_stats and d == 0:
                    d = 1
                x = <float>(<double>x / d)
                if pruning and not K[i]:
                    x = 0
                A[i] = x
                G[h] += <double>x
            for i in range(n_hist):
                if den[i] == 0:
                    G[i] = NAN
                else:
                    d = 1.0 - G[i]
                    G[i] = d if d > 0 else 0.0
    if bad:
        raise ValueError(f"terms: a history index is not below {n_hist}")
    return alpha_np, gamma_np


def pattern_hash(tables, small):
    """The child hash of the pattern tables (table number: mask >> 1); small: {mask: the largest
    children range of the pattern that is searched rather than hashed}, for the patterns used."""
    return child_hash([(mask >> 1, t["starts"], t["word"], small[mask])
                       for mask, t in sorted(tables.items()) if mask in small])


cdef inline int64_t find_row(const uint32_t* rows, int W, uint32_t lo, uint32_t hi, uint32_t w) noexcept nogil:
    """Index of the row holding word w (column 0) among the rows lo .. hi-1, sorted by word, or -1."""
    cdef uint32_t mid, end = hi
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if rows[<size_t>mid * W] < w:
            lo = mid + 1
        else:
            hi = mid
    if lo < end and rows[<size_t>lo * W] == w:
        return lo
    return -1


cdef inline int64_t probe_rows(const uint32_t* T, uint64_t tmask, uint64_t slot, const uint32_t* rows, int W,
                               uint32_t lo, uint32_t hi, uint32_t w) noexcept nogil:
    """The child hash from ``slot`` on: the row among lo .. hi-1 holding word w, or -1."""
    cdef uint32_t c = T[slot]
    cdef uint64_t probes = 0
    while c != EMPTY and probes <= tmask:          # (a full table: one turn)
        if lo <= c < hi and rows[<size_t>c * W] == w:
            return c
        slot = (slot + 1) & tmask
        c = T[slot]
        probes += 1
    return -1


cdef class Scorer:
    """Probabilities of the GLM over a stream: per position, the n-gram of every pattern is found by
    extending its parent pattern's n-gram by one word (a child search), and the probabilities are
    combined bottom-up over the lattice:

        P_S(w|h) = alpha_S(g) + gamma_S(h) * sum_c weight_S,c P_c(w|h_c)   if the history h was seen
        P_S(w|h) =                           sum_c weight_S,c P_c(w|h_c)   otherwise

    where g is S's n-gram (alpha 0 when unseen) and h its history, itself an n-gram of the pattern
    ``hist[S]`` found ``gap[S]`` positions earlier.  Everything is read from the node records
    (glm.records): the row of an n-gram holds its word and alpha, the gammas of the patterns whose
    history it is and the ranges of its children.
    """
    cdef public int order
    cdef int npat
    cdef public object source             # the model file, named in errors
    cdef uint64_t nrows[MAXPAT]           # n-grams of pattern q (its rows)
    cdef object keep                      # the arrays behind the pointers
    cdef public object hash               # child_hash of the pattern tables
    cdef const uint32_t* T
    cdef uint64_t tmask
    cdef uint32_t small[MAXPAT]           # children ranges of pattern q up to this size are searched
    cdef const double* uni
    cdef uint64_t vocab_size
    cdef const uint32_t* rows[MAXPAT]     # rows of pattern q (glm.records)
    cdef int W[MAXPAT]                    # their width
    cdef int goff[MAXPAT]                 # column of gamma_q in the rows of hist[q]
    cdef int roff[MAXPAT]                 # column of q's children range in the rows of par[q]
    cdef bint present[MAXPAT]
    cdef int par[MAXPAT]
    cdef int hist[MAXPAT]
    cdef int gap[MAXPAT]
    cdef int nchild[MAXPAT]
    cdef int child[MAXPAT * MAXORDER]
    cdef double weight[MAXPAT * MAXORDER]
    # the tops of every length (glm.paper.glmtk2014, glm.paper.padding), an extra term, a floor
    cdef bint tops
    cdef double extra, floor
    cdef const double* top1
    cdef const float* talpha[MAXORDER]
    cdef const double* tgamma[MAXORDER]
    cdef bint cap                         # probabilities above 1 read as 1 (quantized values, glm.quantize)

    def __init__(self, int order, tables, children, records, hash_table, small, compat=None, bint cap=False):
        """tables: {mask: table} (glm.generalized.Tables.tables; only the unigram probabilities
        tables[1]['prob'] are read here, the rest through ``records``, their glm.records.Records);
        children: {mask: [(child mask, weight), ...]} for every mask to combine (patterns absent from it
        are not used); hash_table: pattern_hash(tables, small).
        compat: dict(top={1: dict(prob), mask 1^L: dict(alpha, gamma) for L = 2 .. order-1}, extra,
        floor) answers a query with L-1 history words by the top of length L, adds ``extra`` to every
        average of children and raises probabilities <= 0 to ``floor`` (glm.paper.glmtk2014).
        cap: probabilities above 1 are 1 (a model of quantized values, whose errors can add up past 1:
        glm.quantize)."""
        cdef int q, j
        cdef const uint32_t[:, ::1] R
        if not 1 <= order <= MAXORDER:
            raise ValueError(f"order must be between 1 and {MAXORDER}")
        self.order, self.npat = order, 1 << (order - 1)
        self.source = None
        keep = [records]
        uni = np.ascontiguousarray(tables[1]["prob"], dtype=np.float64)
        keep.append(uni)
        self.uni = <const double*>cnp.PyArray_DATA(uni)
        self.vocab_size = uni.shape[0]
        if self.vocab_size < 3:
            raise ValueError("a vocabulary holds at least <unk>, <s> and </s>")
        for q in range(self.npat):
            mask = 2 * q + 1
            self.present[q] = q == 0 or mask in children
            self.nchild[q] = 0
            if not self.present[q]:
                continue
            R = records.rows[mask]
            self.rows[q] = &R[0, 0] if R.shape[0] else NULL
            self.W[q] = records.width[mask]
            self.nrows[q] = R.shape[0]
            if R.shape[1] != self.W[q] or (q == 0 and R.shape[0] != self.vocab_size):
                raise ValueError(f"pattern {mask:b}: records of shape {R.shape}")
            if q == 0:
                continue
            self.goff[q], self.roff[q] = records.goff[mask], records.roff[mask]
            self.small[q] = small[mask]
            self.par[q] = (mask & ~(1 << (mask.bit_length() - 1))) >> 1
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
        self.cap = cap
        self.tops = compat is not None
        self.extra = compat["extra"] if self.tops else 0.0
        self.floor = compat["floor"] if self.tops else 0.0
        if self.tops:
            top1 = np.ascontiguousarray(compat["top"][1]["prob"], dtype=np.float64)
            keep.append(top1)
            self.top1 = <const double*>cnp.PyArray_DATA(top1)
            if len(top1) != self.vocab_size:
                raise ValueError(f"the top unigrams have {len(top1)} entries, not {self.vocab_size}")
            for j in range(2, order):
                t = compat["top"][(1 << j) - 1]
                arrs = [np.ascontiguousarray(t["alpha"], dtype=np.float32),
                        np.ascontiguousarray(t["gamma"], dtype=np.float64)]
                if (len(arrs[0]) != self.nrows[(1 << (j - 1)) - 1]
                        or len(arrs[1]) != self.nrows[(1 << (j - 2)) - 1]):
                    raise ValueError(f"the top of length {j}: alpha and gamma do not fit the patterns")
                keep.extend(arrs)
                self.talpha[j - 1] = <const float*>cnp.PyArray_DATA(arrs[0])
                self.tgamma[j - 1] = <const double*>cnp.PyArray_DATA(arrs[1])
        self.keep = keep
        self.hash = hash_table
        cdef const uint32_t[::1] H = self.hash
        if H.shape[0] == 0 or H.shape[0] & (H.shape[0] - 1):
            raise ValueError(f"the children hash has {H.shape[0]} slots, not a power of two")
        self.T = &H[0]
        self.tmask = H.shape[0] - 1

    cdef void find_nodes(self, const uint32_t* ids, const size_t* pos, const int* hl, int B,
                         int64_t* ring) noexcept nogil:
        """For B positions at once: ring[pos % RING][q] = index of the n-gram of pattern q ending at
        ids[pos] (history length hl), or -1.

        The patterns q of one span, 2^(L-1) <= q < 2^L (span L + 1), depend only on shorter ones (their
        parents and histories), so all their lookups at the B positions go together, in passes that
        each prefetch what the next reads: their cache misses overlap."""
        cdef int q, j, k, L, P, W, first
        cdef size_t a
        cdef int64_t p
        cdef uint32_t c
        cdef int64_t* node
        cdef const uint32_t* r
        cdef const uint32_t* rows
        cdef uint64_t probes
        cdef uint32_t lo[SPANPAT * LANES]       # per lookup k: (pattern - first of the span) * LANES + lane
        cdef uint32_t hi[SPANPAT * LANES]
        cdef uint32_t w[SPANPAT * LANES]
        cdef uint64_t slot[SPANPAT * LANES]
        for j in range(B):
            ring[(pos[j] % RING) * self.npat] = ids[pos[j]]
            __builtin_prefetch(&self.rows[0][<size_t>ids[pos[j]] * self.W[0]])
        for L in range(1, self.order):
            first = 1 << (L - 1)
            for q in range(first, 2 * first):       # the children ranges, from the parents' rows
                P = self.par[q]
                for j in range(B):
                    k = (q - first) * LANES + j
                    node = &ring[(pos[j] % RING) * self.npat]
                    p = node[P] if self.present[q] and L <= hl[j] else -1
                    if p >= 0 and ring[((pos[j] - self.gap[q]) % RING) * self.npat + self.hist[q]] < 0:
                        p = -1               # an unseen history has no n-grams: no lookup
                    lo[k] = hi[k] = 0
                    if p >= 0:
                        r = &self.rows[P][<size_t>p * self.W[P] + self.roff[q]]
                        lo[k], hi[k] = r[0], r[1]
                        if hi[k] > self.nrows[q]:     # (a damaged file: stay inside q's rows)
                            hi[k] = <uint32_t>self.nrows[q]
                        if lo[k] > hi[k]:
                            lo[k] = hi[k]
                        w[k] = ids[pos[j] - L]
                        if hi[k] - lo[k] > self.small[q]:
                            slot[k] = child_key(q, <uint32_t>p, w[k]) & self.tmask
            for q in range(first, 2 * first):       # prefetch: the hash slot, or every line of the range
                W, rows = self.W[q], self.rows[q]
                for j in range(B):
                    k = (q - first) * LANES + j
                    if hi[k] - lo[k] > self.small[q]:
                        __builtin_prefetch(&self.T[slot[k]])
                    elif hi[k] > lo[k]:
                        a = <size_t>&rows[<size_t>lo[k] * W] & ~(<size_t>63)
                        while a < <size_t>&rows[<size_t>hi[k] * W]:
                            __builtin_prefetch(<const void*>a)
                            a += 64
            for q in range(first, 2 * first):       # hashed: prefetch the row in range the probe meets first
                W, rows = self.W[q], self.rows[q]
                for j in range(B):
                    k = (q - first) * LANES + j
                    if hi[k] - lo[k] > self.small[q]:
                        c = self.T[slot[k]]
                        probes = 0
                        while c != EMPTY and not (lo[k] <= c < hi[k]) and probes <= self.tmask:
                            slot[k] = (slot[k] + 1) & self.tmask
                            c = self.T[slot[k]]
                            probes += 1
                        if c != EMPTY:
                            __builtin_prefetch(&rows[<size_t>c * W])
                            __builtin_prefetch(&rows[<size_t>c * W + W - 1])
            for q in range(first, 2 * first):       # the rows found (their lines all prefetched)
                W, rows = self.W[q], self.rows[q]
                for j in range(B):
                    k = (q - first) * LANES + j
                    node = &ring[(pos[j] % RING) * self.npat]
                    if hi[k] == lo[k]:
                        node[q] = -1
                    elif hi[k] - lo[k] > self.small[q]:
                        node[q] = probe_rows(self.T, self.tmask, slot[k], rows, W, lo[k], hi[k], w[k])
                    else:
                        node[q] = find_row(rows, W, lo[k], hi[k], w[k])

    cdef double prob(self, int64_t* ring, size_t i, int h, int* matched) noexcept nogil:
        """P(ids[i] | its h history words), given the nodes of positions i-h .. i in ``ring``."""
        cdef double P[MAXPAT]
        cdef double avg, gm, p
        cdef float a
        cdef int q, j, H, top = (1 << h) - 1, m = 1
        cdef int64_t hn, g
        cdef int64_t* node = &ring[(i % RING) * self.npat]
        cdef bint own_top = self.tops and h < self.order - 1      # a top of a shorter length answers
        P[0] = self.uni[node[0]]
        for q in range(1, top + 1):
            if not self.present[q]:          # (q <= top: its span is at most h + 1)
                continue
            hn = ring[((i - self.gap[q]) % RING) * self.npat + self.hist[q]]
            avg = self.extra
            for j in range(self.nchild[q]):
                avg += self.weight[q * MAXORDER + j] * P[self.child[q * MAXORDER + j]]
            if own_top and q == top:
                gm = self.tgamma[h][hn] if hn >= 0 else NAN
                P[q] = avg if isnan(gm) else (self.talpha[h][node[q]] if node[q] >= 0 else 0.0) + gm * avg
                break
            H, g = self.hist[q], node[q]
            # (without branches: an unseen history or n-gram reads a NaN gamma or a zero alpha)
            gm = (<const double*>(&self.rows[H][<size_t>hn * self.W[H] + self.goff[q]] if hn >= 0
                                  else <const uint32_t*>&NO_GAMMA))[0]
            a = (<const float*>(&self.rows[q][<size_t>g * self.W[q] + 1] if g >= 0
                                else <const uint32_t*>&NO_ALPHA))[0]
            P[q] = avg if isnan(gm) else a + gm * avg
        while m <= h and self.present[(1 << m) - 1] and node[(1 << m) - 1] >= 0:
            m += 1
        matched[0] = m
        p = self.top1[node[0]] if own_top and h == 0 else P[top]
        if self.cap and p > 1.0:
            p = 1.0
        return self.floor if p <= 0 and self.floor > 0 else p

    def logprob(self, uint32_t w, context):
        """log10 p(w | context), context a sequence of ids, oldest first; returns (log10p, matched)."""
        cdef int L = min(len(context), self.order - 1), j, m
        ids = np.array(list(context)[len(context) - L:] + [w], dtype=np.uint32)
        if ids.max() >= self.vocab_size:
            raise ValueError(f"word id {ids.max()} is not below the vocabulary size {self.vocab_size}")
        cdef const uint32_t[::1] I = ids
        cdef int64_t ring[RING * MAXPAT]
        cdef size_t pos[MAXORDER]
        cdef int hl[MAXORDER]
        for j in range(L + 1):
            pos[j], hl[j] = j, j
        self.find_nodes(&I[0], pos, hl, L + 1, ring)
        p = log10(self.prob(ring, L, L, &m))
        if insane(p, INFINITY if self.tops else MAX_LOGPROB):
            raise_insane(self.source, p)
        return p, m

    def score_stream(self, const uint32_t[::1] ids, bint bos=True, bint eos=True, bint per_token=False):
        """Score a padded stream (1 w1 .. wn 2 per line), with the same results as the back-off
        model's ``Trie.score_stream``."""
        cdef size_t n = ids.shape[0]
        cdef int status = 0
        arrays = result_arrays(ids, eos, per_token, self.vocab_size)
        cdef Results R = results_of(arrays, per_token, self.score_limit())
        if n:
            with nogil:
                status = self.score_core(&ids[0], n, bos, eos, &R)
        if status:
            raise MemoryError()
        check_results(&R, self.source)
        return arrays if per_token else arrays[0]

    def score_limit(self):
        """The largest score accepted as a log10 probability (the 2014 toolkit's models are not
        normalized: any finite score)."""
        return INFINITY if self.tops else MAX_LOGPROB

    cdef int score_core(self, const uint32_t* ids, size_t n, bint bos, bint eos, Results* R) noexcept nogil:
        """score_stream's work: the padded stream ids[0 .. n) into R; -1 when memory ran out."""
        cdef size_t i, sent = 0, line = 0
        cdef int64_t* ring = <int64_t*>malloc(RING * MAXPAT * sizeof(int64_t))
        cdef size_t pos[LANES]
        cdef int hl[LANES]
        cdef int B, b, m
        cdef size_t k, q
        cdef uint32_t w
        cdef double sc
        if ring == NULL:
            return -1
        i = 0
        while i < n:
            # a batch of positions (each line's <s> included, so histories stay in the ring)
            B = 0
            k = i
            while k < n and B < LANES and k - i < RING - MAXORDER:
                w = ids[k]
                if w == 1:
                    sent = k
                    ring[(k % RING) * self.npat] = 1
                elif w != 2 or eos:
                    pos[B] = k
                    hl[B] = <int>min(k - sent - (0 if bos else 1), <size_t>(self.order - 1))
                    B += 1
                k += 1
            self.find_nodes(ids, pos, hl, B, ring)
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
                add_token(R, line, sc, m, w == 0)
                if w == 2:
                    line += 1
            i = k
        free(ring)
        return 0

    def trace(self, const uint32_t[::1] ids):
        """The lattice of every token of the padded stream ``ids`` (1 w1 .. wn 2 per line; each line's
        words and </s>, as score_stream scores them), for glm.tune: (nodes, histories, tops), with
        nodes[t, q] the n-gram of pattern q at token t (for q = 0 its word id), histories[t, q] the
        n-gram of q's history (pattern hist[q], gap[q] positions back), both -1 when unseen, for the
        patterns q <= tops[t] = 2^h - 1 of its h history words (-1 above, and for patterns not in the
        model).  int64 arrays (T, 2^(order - 1)) and uint8 (T,)."""
        result_arrays(ids, True, False, self.vocab_size)      # (checks the stream and its ids)
        cdef size_t n = ids.shape[0], T = 0, i, k, t = 0, sent = 0, x
        cdef int B, b, q, top
        for i in range(n):
            T += ids[i] != 1
        nodes_np = np.full((T, self.npat), -1, dtype=np.int64)
        hists_np = np.full((T, self.npat), -1, dtype=np.int64)
        tops_np = np.zeros(T, dtype=np.uint8)
        cdef int64_t[:, ::1] N = nodes_np
        cdef int64_t[:, ::1] H = hists_np
        cdef uint8_t[::1] TOP = tops_np
        cdef int64_t* ring = <int64_t*>malloc(RING * MAXPAT * sizeof(int64_t))
        cdef int64_t* node
        cdef size_t pos[LANES]
        cdef int hl[LANES]
        if ring == NULL:
            raise MemoryError()
        with nogil:
            i = 0
            while i < n:                 # batches of positions as in score_core
                B = 0
                k = i
                while k < n and B < LANES and k - i < RING - MAXORDER:
                    if ids[k] == 1:
                        sent = k
                        ring[(k % RING) * self.npat] = 1
                    else:
                        pos[B] = k
                        hl[B] = <int>min(k - sent, <size_t>(self.order - 1))
                        B += 1
                    k += 1
                self.find_nodes(&ids[0], pos, hl, B, ring)
                for b in range(B):
                    x = pos[b]
                    node = &ring[(x % RING) * self.npat]
                    top = (1 << hl[b]) - 1
                    TOP[t] = top
                    N[t, 0] = node[0]
                    for q in range(1, top + 1):
                        if self.present[q]:
                            N[t, q] = node[q]
                            H[t, q] = ring[((x - self.gap[q]) % RING) * self.npat + self.hist[q]]
                    t += 1
                i = k
        free(ring)
        return nodes_np, hists_np, tops_np

    # -- KenLM's State API (the scorer protocol, ext/_protocol.pxi) -------------------------------------
    cdef float c_step(self, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                      uint32_t* out_ctx, float* out_bo, int* out_len, int* ngram_length) noexcept nogil:
        """log10 p(w | context) from the nodes of every pattern at the context's positions and at w's;
        the state after w is its last order - 1 words (no backoffs)."""
        cdef uint32_t ids[MAXORDER]
        cdef size_t pos[MAXORDER]
        cdef int hl[MAXORDER]
        cdef int64_t ring[MAXORDER * MAXPAT]       # positions 0 .. ctx_len < MAXORDER of the ring
        cdef int L = min(max(ctx_len, 0), self.order - 1), j
        for j in range(L):
            ids[j] = ctx[L - 1 - j]
        ids[L] = w
        for j in range(L + 1):
            pos[j], hl[j] = j, j
        self.find_nodes(ids, pos, hl, L + 1, ring)
        cdef double p = self.prob(ring, L, L, ngram_length)
        out_len[0] = min(L + 1, self.order - 1)
        out_ctx[0] = w
        for j in range(1, out_len[0]):
            out_ctx[j] = ctx[j - 1]
        for j in range(out_len[0]):
            out_bo[j] = 0
        return <float>log10(p)

    def step_capsule(self):
        """The step function of the scorer protocol (KenLM's BaseFullScore), as a PyCapsule "glm.step"."""
        return PyCapsule_New(<void*>glm_step, b"glm.step", NULL)

    def score_capsule(self):
        """score_stream into C buffers (the scorer protocol's score_fn), as a PyCapsule "glm.score"."""
        return PyCapsule_New(<void*>glm_score, b"glm.score", NULL)

    def next_logprobs(self, context):
        """log10 p(w | context) of every word id w (float64 array, the vocabulary's size); context: ids,
        oldest first.  The nodes of the context's positions are found once, those of w's position for
        each w."""
        cdef int L = min(len(context), self.order - 1), j, m
        cdef uint64_t V = self.vocab_size, w
        ctx = [int(x) for x in context][len(context) - L:]
        for x in ctx:
            if not 0 <= x < V:
                raise ValueError(f"word id {x} is not in the vocabulary (0 .. {V - 1})")
        cdef uint32_t ids[MAXORDER]
        cdef size_t pos[MAXORDER]
        cdef int hl[MAXORDER]
        cdef int64_t ring[MAXORDER * MAXPAT]
        for j in range(L):
            ids[j] = ctx[j]
            pos[j], hl[j] = j, j
        out = np.empty(V, dtype=np.float64)
        cdef double[::1] O = out
        with nogil:
            if L:
                self.find_nodes(ids, pos, hl, L, ring)
            pos[0], hl[0] = L, L
            for w in range(V):
                ids[L] = <uint32_t>w
                self.find_nodes(ids, pos, hl, 1, ring)
                O[w] = log10(self.prob(ring, L, L, &m))
        return out


cdef float glm_step(void* scorer, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                    uint32_t* out_ctx, float* out_bo, int* out_len, int* ngram_length) noexcept nogil:
    return (<Scorer>scorer).c_step(ctx, ctx_bo, ctx_len, w, out_ctx, out_bo, out_len, ngram_length)


cdef int glm_score(void* scorer, const uint32_t* ids, size_t n, bint bos, bint eos, Results* R) noexcept nogil:
    return (<Scorer>scorer).score_core(ids, n, bos, eos, R)


cdef inline double dot(const double* x, const double* y, size_t n) noexcept nogil:
    """sum x[i] y[i], in four running sums (not one chain of dependent additions)."""
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef size_t i = 0
    while i + 4 <= n:
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
        i += 4
    while i < n:
        s0 += x[i] * y[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


def lattice_loglik(const float[:, :, ::1] coef, const uint8_t[::1] tops, const int32_t[:, ::1] child,
                   const int32_t[::1] nchild, const double[:, ::1] weight, const double[::1] scale,
                   double[:, ::1] grad_weight, double[::1] grad_scale):
    """Sum over tokens t of ln P_t, P_t the probability at pattern tops[t] of the lattice

        P[0] = A0 - s_0 A1,   P[q] = (A0 - s_q A1) + (G0 + s_q G1) avg_q,
        avg_q = sum_j weight[q, j] P[child[q, j]],

    with (A0, A1, G0, G1) = coef[q, :, t] and s = scale: the model of glm.tune at child weights
    ``weight`` and discount scales ``scale`` (alpha and gamma are linear in the scale; an unseen history
    has A = 0, G0 = 1, G1 = 0).  Adds the derivatives of the sum to grad_weight and grad_scale (reverse
    mode over the lattice).  Patterns with nchild 0 (other than 0) are not in the model.  The tokens go
    in tiles of TILE, pattern by pattern, so that the loops over a tile's tokens vectorize.
    Probabilities are floored at 1e-300."""
    cdef size_t T = coef.shape[2], t0, i, n
    cdef int npat = coef.shape[0], q, j, c, top
    if npat == 0 or coef.shape[1] != 4 or tops.shape[0] != T or child.shape[0] != npat or nchild.shape[0] != npat \
            or weight.shape[0] != npat or scale.shape[0] != npat or grad_weight.shape[0] != npat \
            or grad_scale.shape[0] != npat or weight.shape[1] < child.shape[1] \
            or grad_weight.shape[1] < child.shape[1]:
        raise ValueError("lattice_loglik: arrays of inconsistent shapes")
    for q in range(npat):
        if not 0 <= nchild[q] <= child.shape[1]:
            raise ValueError("lattice_loglik: a pattern with more children than the child array holds")
        for j in range(nchild[q]):
            if not 0 <= child[q, j] < q:
                raise ValueError("lattice_loglik: a child must be a pattern below its parent")
    if T == 0:
        return 0.0
    cdef double* work = <double*>malloc(4 * npat * TILE * sizeof(double))
    if work == NULL:
        raise MemoryError()
    cdef double* P = work                   # P[q * TILE + i]: the probability of pattern q at token t0 + i
    cdef double* avg = work + npat * TILE   # the average of its children
    cdef double* slope = work + 2 * npat * TILE   # its gamma (dP / d avg), then bar * gamma
    cdef double* bar = work + 3 * npat * TILE     # d ln P_t / d P[q]
    cdef double total = 0.0, s, w, p
    cdef const float* a0
    cdef const float* a1
    cdef const float* g0
    cdef const float* g1
    cdef double* x
    cdef double* y
    cdef double* z
    with nogil:
        for t0 in range(0, T, TILE):
            n = min(<size_t>TILE, T - t0)
            a0, a1, s = &coef[0, 0, t0], &coef[0, 1, t0], scale[0]
            for i in range(n):
                P[i] = a0[i] - s * a1[i]
            for q in range(1, npat):
                x = &P[q * TILE]
                if nchild[q] == 0:
                    memset(x, 0, n * sizeof(double))
                    continue
                y = &avg[q * TILE]
                memset(y, 0, n * sizeof(double))
                for j in range(nchild[q]):
                    w, z = weight[q, j], &P[child[q, j] * TILE]
                    for i in range(n):
                        y[i] += w * z[i]
                a0, a1, g0, g1, s = &coef[q, 0, t0], &coef[q, 1, t0], &coef[q, 2, t0], &coef[q, 3, t0], scale[q]
                z = &slope[q * TILE]
                for i in range(n):
                    z[i] = g0[i] + s * g1[i]
                    x[i] = a0[i] - s * a1[i] + z[i] * y[i]
            memset(bar, 0, npat * TILE * sizeof(double))
            for i in range(n):
                top = tops[t0 + i] if tops[t0 + i] < npat else npat - 1
                p = P[top * TILE + i]
                if not p > 1e-300:
                    p = 1e-300
                total += log(p)
                bar[top * TILE + i] = 1.0 / p
            for q in range(npat - 1, 0, -1):
                if nchild[q] == 0:
                    continue
                x, y = &bar[q * TILE], &avg[q * TILE]
                a1, g1 = &coef[q, 1, t0], &coef[q, 3, t0]
                z = &P[q * TILE]                    # (free now: d P / d s_q = G1 avg - A1, here)
                for i in range(n):
                    z[i] = g1[i] * y[i] - a1[i]
                grad_scale[q] += dot(x, z, n)
                y = &slope[q * TILE]
                for i in range(n):
                    y[i] *= x[i]                    # bar * gamma: d ln P_t / d avg_q
                for j in range(nchild[q]):
                    c, w = child[q, j], weight[q, j]
                    grad_weight[q, j] += dot(y, &P[c * TILE], n)
                    z = &bar[c * TILE]
                    for i in range(n):
                        z[i] += y[i] * w
            a1, z = &coef[0, 1, t0], P
            for i in range(n):
                z[i] = a1[i]
            grad_scale[0] -= dot(bar, z, n)
    free(work)
    return total
