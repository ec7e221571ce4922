# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""KenLM's binary models (build_binary, format version 5) queried in place, from the mapped file.

The layout of the file is worked out and checked against the file's size by glm.formats.kenlm, which
hands this module the offsets.  Everything read from the file that could lead a lookup astray is checked
where it is read: probe loops stop after as many probes as the table has buckets, a trie's child ranges
must lie inside the next table, and a searched range is searched with a bounded number of steps.  A
lookup that meets a bad value records it (``Scorer.corrupt``) and the Python methods raise
glm.ModelFormatError; a token score that is not a finite log10 probability <= 0 counts as one.

Scoring follows KenLM's ``FullScore``: the state after a word is the longest matched n-gram ending in it
that can be extended, with the backoffs of its suffixes; a word's log10 probability is that of the longest
stored n-gram ending in it, plus the backoffs of the context suffixes longer than the match.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from libc.math cimport INFINITY
from cpython.pycapsule cimport PyCapsule_New

cnp.import_array()

include "_results.pxi"

DEF MAXORDER = 16

cdef extern from *:
    void __builtin_prefetch(const void*) nogil

cdef enum:                 # what Scorer.corrupt holds once a lookup met a bad value
    CORRUPT_RANGE = 1      # a trie's child range outside the next table
    CORRUPT_SCORE = 2      # a log10 probability that is NaN, infinite or positive


# --------------------------------------------------------------------------------------------- hashes
cdef inline uint64_t load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline float loadf(const uint8_t* p) noexcept nogil:
    cdef float v
    memcpy(&v, p, 4)
    return v


cdef inline uint64_t combine(uint64_t current, uint64_t word) noexcept nogil:
    """The key of an n-gram extended by one older word (KenLM's n-gram hash, lm/search_hashed.hh)."""
    return (current * 8978948897894561157ULL) ^ ((1 + word) * 17894857484156487943ULL)


cdef uint64_t murmur64a(const uint8_t* data, size_t n, uint64_t seed) noexcept nogil:
    """MurmurHash2, 64-bit version (Austin Appleby's MurmurHash64A), as KenLM hashes words."""
    cdef uint64_t m = 0xc6a4a7935bd1e995ULL, h = seed ^ (n * m), k
    cdef size_t i, blocks = n // 8, rest = n & 7
    for i in range(blocks):
        k = load64(data + 8 * i)
        k *= m
        k ^= k >> 47
        k *= m
        h ^= k
        h *= m
    data += 8 * blocks
    if rest:
        for i in range(rest - 1, -1, -1):
            h ^= (<uint64_t>data[i]) << (8 * i)
        h *= m
    h ^= h >> 47
    h *= m
    h ^= h >> 47
    return h


def word_hash(bytes word):
    """KenLM's hash of a word (MurmurHash64A, seed 0)."""
    return murmur64a(word, len(word), 0)


# ------------------------------------------------------------------------------------------ bit reads
cdef inline uint64_t read_bits(const uint8_t* base, uint64_t bit, uint64_t mask) noexcept nogil:
    """An unsigned field of up to 57 bits starting at bit offset `bit` (little-endian packing)."""
    return (load64(base + (bit >> 3)) >> (bit & 7)) & mask


cdef inline float read_f32(const uint8_t* base, uint64_t bit) noexcept nogil:
    cdef uint32_t u = <uint32_t>(load64(base + (bit >> 3)) >> (bit & 7))
    cdef float f
    memcpy(&f, &u, 4)
    return f


cdef inline float read_nonpositive31(const uint8_t* base, uint64_t bit) noexcept nogil:
    """A float stored without its sign bit (always negative or zero)."""
    cdef uint32_t u = (<uint32_t>(load64(base + (bit >> 3)) >> (bit & 7)) & 0x7FFFFFFFu) | 0x80000000u
    cdef float f
    memcpy(&f, &u, 4)
    return f


cdef inline bint sign_bit(float f) noexcept nogil:
    cdef uint32_t u
    memcpy(&u, &f, 4)
    return (u >> 31) != 0


cdef inline float with_sign(float f) noexcept nogil:
    cdef uint32_t u
    memcpy(&u, &f, 4)
    u |= 0x80000000u
    memcpy(&f, &u, 4)
    return f


cdef inline bint has_extension(float backoff) noexcept nogil:
    """KenLM marks an n-gram that is no context of a longer one by a backoff of exactly -0.0."""
    cdef uint32_t u
    memcpy(&u, &backoff, 4)
    return u != 0x80000000u


# ------------------------------------------------------------------------------------------ structures
cdef struct Node:
    uint64_t a             # probing: the hash of the n-gram; trie: first child
    uint64_t b             # trie: one past the last child


cdef struct Table:         # probing: a hash table of (uint64 key, values) entries
    const uint8_t* base
    uint64_t buckets
    uint32_t stride


cdef struct Packed:        # trie: a bit-packed table of n-grams (orders 2..N)
    const uint8_t* base
    uint64_t entries
    uint64_t next_count    # entries of the next order (the range of child pointers)
    uint64_t max_vocab
    uint32_t word_bits, quant_bits, next_bits, total_bits
    uint64_t word_mask, next_mask
    const uint8_t* offsets # bhiksha: the high bits of child pointers as an array of entry indices
    uint64_t n_offsets
    const float* prob_bins # quantized: the centers of the probability and backoff bins
    const float* bo_bins
    uint32_t prob_bits, bo_bits
    uint64_t prob_mask, bo_mask


cdef inline uint64_t upper_bound64(const uint8_t* arr, uint64_t n, uint64_t value) noexcept nogil:
    """The first index of the uint64 array arr[:n] whose value exceeds value (n when none)."""
    cdef uint64_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if load64(arr + 8 * mid) <= value:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline uint64_t next_pointer(const Packed* L, uint64_t index) noexcept nogil:
    """The first child of entry `index` of a trie table (entry `entries` holds the end of the last)."""
    cdef uint64_t low = read_bits(L.base, index * L.total_bits + L.word_bits + L.quant_bits, L.next_mask)
    cdef uint64_t high
    if L.offsets == NULL:
        return low
    # bhiksha: the high bits are the number of the last array slot whose entry index is <= index
    high = upper_bound64(L.offsets, L.n_offsets, index)
    high = high - 1 if high else 0
    return (high << L.next_bits) | low


cdef inline int64_t find_word(const Packed* L, uint64_t lo, uint64_t hi, uint64_t key) noexcept nogil:
    """Index of `key` among the sorted words of entries lo..hi-1, or -1: interpolation search as KenLM's,
    turning to bisection after a few steps so that any contents take O(log n) steps."""
    cdef uint64_t before_v = 0, after_v = L.max_vocab, v, width, pivot
    cdef int64_t before = <int64_t>lo - 1, after = <int64_t>hi
    cdef int steps = 0
    while after - before > 1:
        if key < before_v or key > after_v:
            return -1
        width = <uint64_t>(after - before - 1)
        if steps < 8 and after_v > before_v:
            pivot = <uint64_t>(<double>(key - before_v) / (<double>(after_v - before_v) + 1.0) * width)
            if pivot >= width:
                pivot = width - 1
        else:
            pivot = width // 2
        steps += 1
        pivot += <uint64_t>(before + 1)
        v = read_bits(L.base, pivot * L.total_bits, L.word_mask)
        if v < key:
            before = <int64_t>pivot
            before_v = v
        elif v > key:
            after = <int64_t>pivot
            after_v = v
        else:
            return <int64_t>pivot
    return -1


cdef inline int64_t probe(const Table* T, uint64_t key) noexcept nogil:
    """Bucket of `key` in a probing table, or -1 (linear probing from key mod buckets; an empty
    bucket has key 0; at most `buckets` probes)."""
    cdef uint64_t i = key % T.buckets, n, k
    for n in range(T.buckets):
        k = load64(T.base + i * T.stride)
        if k == key:
            return <int64_t>i
        if k == 0:
            return -1
        i += 1
        if i == T.buckets:
            i = 0
    return -1


# ------------------------------------------------------------------------------------------- scorer
cdef class Scorer:
    """Queries of a KenLM binary, in glm's word ids (mapped to KenLM's by ``perm``).

    Made by glm.formats.kenlm from a checked layout; ``buf`` is the mapped file."""
    cdef public int order
    cdef public bint probing
    cdef public int corrupt              # 0, or CORRUPT_* once a lookup met a bad value
    cdef public int corrupt_order        # the order of the table where it was met
    cdef public double corrupt_value     # the bad score (CORRUPT_SCORE)
    cdef const uint8_t* base
    cdef uint64_t size
    cdef const uint32_t* perm            # glm id -> KenLM id
    cdef uint64_t n_glm
    cdef public uint32_t bos, eos        # KenLM ids of <s> and </s> (0 when the model lacks them)
    cdef const uint8_t* uni              # unigram records: probing (prob, backoff[, rest]);
    cdef uint32_t uni_stride             # trie (prob, backoff, uint64 first child)
    cdef public uint64_t n_uni           # unigram records that may be looked up (the vocabulary)
    cdef uint64_t bigram_count           # trie: entries of order 2
    cdef uint64_t uni_records            # trie: unigram records with children (the header's count)
    cdef Table table[MAXORDER + 1]       # probing, orders 2..N
    cdef Packed packed[MAXORDER + 1]     # trie, orders 2..N
    cdef object _keep
    cdef public str path

    def __init__(self, buf, dict layout, perm, bins=None, str path="<KenLM binary>"):
        """buf: the mapped file (bytes-like); layout: from glm.formats.kenlm (offsets checked against the
        file size); perm: uint32 array, glm id -> KenLM id; bins: quantized tries, per order 2..N a pair
        (probability centers, backoff centers or None) of float32 arrays; path: for error messages."""
        cdef const uint8_t[::1] b = buf
        cdef const uint32_t[::1] p = perm
        cdef const float[::1] f
        cdef int n
        self.order = layout["order"]
        if not 2 <= self.order <= MAXORDER:
            raise ValueError(f"order {self.order} outside 2..{MAXORDER}")
        self.probing = layout["kind"] == "probing"
        self.path = path
        self._keep = (buf, perm, bins)
        self.base = &b[0]
        self.size = b.shape[0]
        self.perm = &p[0]
        self.n_glm = p.shape[0]
        self.n_uni = layout["vocab_size"]
        self.bos, self.eos = layout["bos"], layout["eos"]
        self.uni = self.base + <uint64_t>layout["unigram_offset"]
        self.uni_stride = layout["unigram_stride"]
        self.corrupt = 0
        for n in range(2, self.order + 1):
            lv = layout["tables"][n - 2]
            if self.probing:
                self.table[n].base = self.base + <uint64_t>lv["offset"]
                self.table[n].buckets = lv["buckets"]
                self.table[n].stride = lv["stride"]
            else:
                self.packed[n].base = self.base + <uint64_t>lv["offset"]
                self.packed[n].entries = lv["entries"]
                self.packed[n].next_count = lv["next_count"]
                self.packed[n].max_vocab = lv["max_vocab"]
                self.packed[n].word_bits = lv["word_bits"]
                self.packed[n].quant_bits = lv["quant_bits"]
                self.packed[n].next_bits = lv["next_bits"]
                self.packed[n].total_bits = lv["total_bits"]
                self.packed[n].word_mask = (1 << lv["word_bits"]) - 1
                self.packed[n].next_mask = (1 << lv["next_bits"]) - 1
                self.packed[n].offsets = (self.base + <uint64_t>lv["offsets_offset"]) if lv["offsets_count"] else NULL
                self.packed[n].n_offsets = lv["offsets_count"]
                self.packed[n].prob_bins = NULL
                self.packed[n].bo_bins = NULL
                if bins is not None:
                    f = bins[n - 2][0]
                    self.packed[n].prob_bins = &f[0]
                    self.packed[n].prob_bits = lv["prob_bits"]
                    self.packed[n].prob_mask = (1 << lv["prob_bits"]) - 1
                    if n < self.order:
                        f = bins[n - 2][1]
                        self.packed[n].bo_bins = &f[0]
                        self.packed[n].bo_bits = lv["backoff_bits"]
                        self.packed[n].bo_mask = (1 << lv["backoff_bits"]) - 1
        if not self.probing:
            self.bigram_count = layout["tables"][0]["entries"]
            self.uni_records = layout["counts"][0]

    # -- lookups (KenLM's LookupUnigram / LookupMiddle / LookupLongest) ---------------------------------
    cdef inline float unigram(self, uint32_t w, float* backoff, Node* node, bint* independent) noexcept nogil:
        cdef const uint8_t* rec = self.uni + <uint64_t>w * self.uni_stride
        cdef float prob = loadf(rec)
        backoff[0] = loadf(rec + 4)
        if self.probing:
            node.a = w
            independent[0] = sign_bit(prob)       # the sign bit of a stored prob: nothing extends it left
            return with_sign(prob)
        node.a = load64(rec + 8)
        node.b = load64(rec + 8 + self.uni_stride)
        if node.a > node.b or node.b > self.bigram_count:
            self.bad_range(2)
            node.a = node.b = 0
        independent[0] = node.a == node.b
        return prob

    cdef inline bint middle(self, int n, uint32_t w, Node* node, float* prob, float* backoff,
                            bint* independent) noexcept nogil:
        """Extend the n-1-gram `node` by the older word w to an n-gram (1 < n < order)."""
        cdef const Table* T
        cdef const Packed* L
        cdef int64_t i
        cdef uint64_t bit, begin, end
        cdef const uint8_t* rec
        if self.probing:
            T = &self.table[n]
            node.a = combine(node.a, w)
            i = probe(T, node.a)
            if i < 0:
                independent[0] = True
                return False
            rec = T.base + <uint64_t>i * T.stride
            prob[0] = loadf(rec + 8)
            backoff[0] = loadf(rec + 12)
            independent[0] = sign_bit(prob[0])
            prob[0] = with_sign(prob[0])
            return True
        L = &self.packed[n]
        i = find_word(L, node.a, node.b, w)
        if i < 0:
            independent[0] = True
            return False
        bit = <uint64_t>i * L.total_bits + L.word_bits
        if L.prob_bins == NULL:
            prob[0] = read_nonpositive31(L.base, bit)
            backoff[0] = read_f32(L.base, bit + 31)
        else:
            backoff[0] = L.bo_bins[read_bits(L.base, bit, L.bo_mask)]
            prob[0] = L.prob_bins[read_bits(L.base, bit + L.bo_bits, L.prob_mask)]
        begin = next_pointer(L, <uint64_t>i)
        end = next_pointer(L, <uint64_t>i + 1)
        if begin > end or end > L.next_count:
            self.bad_range(n + 1)
            begin = end = 0
        node.a, node.b = begin, end
        independent[0] = begin == end
        return True

    cdef inline bint longest(self, uint32_t w, const Node* node, float* prob) noexcept nogil:
        cdef const Table* T
        cdef const Packed* L
        cdef int64_t i
        cdef uint64_t bit
        if self.probing:
            T = &self.table[self.order]
            i = probe(T, combine(node.a, w))
            if i < 0:
                return False
            prob[0] = loadf(T.base + <uint64_t>i * T.stride + 8)
            return True
        L = &self.packed[self.order]
        i = find_word(L, node.a, node.b, w)
        if i < 0:
            return False
        bit = <uint64_t>i * L.total_bits + L.word_bits
        if L.prob_bins == NULL:
            prob[0] = read_nonpositive31(L.base, bit)
        else:
            prob[0] = L.prob_bins[read_bits(L.base, bit, L.prob_mask)]
        return True

    cdef void bad_range(self, int n) noexcept nogil:
        if not self.corrupt:
            self.corrupt_order = n
            self.corrupt = CORRUPT_RANGE

    cdef inline float checked(self, float p) noexcept nogil:
        if not (p <= 0 and p > -INFINITY):
            if not self.corrupt:
                self.corrupt_value = p
                self.corrupt = CORRUPT_SCORE
        return p

    # -- KenLM's FullScore and FullScoreForgotState, in KenLM ids -----------------------------------------
    cdef float match(self, const uint32_t* ctx, int ctx_len, uint32_t w, float* out_bo, int* out_len,
                     int* ngram_length) noexcept nogil:
        """log10 p of the longest stored n-gram ending in w whose context is a prefix of ctx (newest
        first), without backoffs (KenLM's ScoreExceptBackoff); writes the backoffs of the matched
        n-grams and the length of the state after w."""
        cdef Node node
        cdef bint independent
        cdef float prob, p, bo
        cdef int i = 0, N = self.order, matched = 1
        prob = self.unigram(w, &out_bo[0], &node, &independent)
        out_len[0] = 1 if has_extension(out_bo[0]) else 0
        while i < ctx_len and not independent:
            if i == N - 2:
                if self.longest(ctx[i], &node, &p):
                    prob = p
                    matched = N
                break
            if not self.middle(i + 2, ctx[i], &node, &p, &bo, &independent):
                break
            out_bo[i + 1] = bo
            prob = p
            matched = i + 2
            if has_extension(bo):
                out_len[0] = matched
            i += 1
        ngram_length[0] = matched
        return prob

    cdef float full_score(self, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                          float* out_bo, int* out_len, int* ngram_length) noexcept nogil:
        """log10 p(w | state): the state's words ctx (newest first) and backoffs ctx_bo (ctx_bo[i] of the
        n-gram ctx[i]..ctx[0]); writes the backoffs of the state after w (its words: w, ctx[0], ..., out_len
        of them)."""
        cdef float prob = self.match(ctx, ctx_len, w, out_bo, out_len, ngram_length)
        cdef int i
        for i in range(ngram_length[0] - 1, ctx_len):
            prob += ctx_bo[i]
        return self.checked(prob)

    cdef float forgot_score(self, const uint32_t* ctx, int ctx_len, uint32_t w, int* ngram_length) noexcept nogil:
        """log10 p(w | ctx) without a state (ctx newest first): the match, then the backoffs of the
        context n-grams longer than its context, looked up."""
        cdef float out_bo[MAXORDER]
        cdef float p, bo
        cdef int out_len, i, start
        cdef Node node
        cdef bint independent
        if ctx_len > self.order - 1:
            ctx_len = self.order - 1
        cdef float prob = self.match(ctx, ctx_len, w, out_bo, &out_len, ngram_length)
        start = ngram_length[0]
        if ctx_len < start:
            return self.checked(prob)
        bo = 0
        self.unigram(ctx[0], &bo, &node, &independent)
        if start <= 1:
            prob += bo
            start = 2
        elif self.probing:          # the node of ctx[start-2]..ctx[0], hashed without looking it up
            for i in range(1, start - 1):
                node.a = combine(node.a, ctx[i])
        else:
            for i in range(1, start - 1):
                if independent or not self.middle(i + 1, ctx[i], &node, &p, &bo, &independent):
                    return self.checked(prob)
        for i in range(start - 1, ctx_len):
            if not self.middle(i + 1, ctx[i], &node, &p, &bo, &independent):
                break
            prob += bo
        return self.checked(prob)

    cdef inline uint32_t kenlm_id(self, uint32_t g) noexcept nogil:
        return self.perm[g] if g < self.n_glm else 0

    cdef float c_step(self, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                    uint32_t* out_ctx, float* out_bo, int* out_len, int* ngram_length) noexcept nogil:
        cdef uint32_t kctx[MAXORDER]
        cdef int j
        if ctx_len > self.order - 1:
            ctx_len = self.order - 1
        if ctx_len < 0:
            ctx_len = 0
        for j in range(ctx_len):
            kctx[j] = self.kenlm_id(ctx[j])
        cdef float p = self.full_score(kctx, ctx_bo, ctx_len, self.kenlm_id(w), out_bo, out_len, ngram_length)
        for j in range(out_len[0] - 1, 0, -1):
            out_ctx[j] = ctx[j - 1]
        out_ctx[0] = w
        return p

    # -- Python interface --------------------------------------------------------------------------------
    def check(self):
        """Raise glm.ModelFormatError if a lookup has met a bad value (then the model is damaged)."""
        if not self.corrupt:
            return
        from .formats import ModelFormatError
        if self.corrupt == CORRUPT_RANGE:
            what = f"a child range of the {self.corrupt_order}-gram table lies outside it"
        else:
            what = f"a word scored log10 p = {self.corrupt_value!r} (NaN, infinite or above 0)"
        raise ModelFormatError(f"{self.path}: damaged KenLM binary: {what}")

    def logprob(self, uint32_t w, context):
        """log10 p(w | context) (glm ids, context oldest first); returns (log10 p, matched length)."""
        cdef uint32_t ctx[MAXORDER]
        cdef int L = min(len(context), self.order - 1), j, matched
        for j in range(L):
            ctx[j] = self.kenlm_id(context[len(context) - 1 - j])
        cdef float p = self.forgot_score(ctx, L, self.kenlm_id(w), &matched)
        self.check()
        return p, matched

    def step(self, context, float[:] backoffs, uint32_t w):
        """One KenLM state transition (for tests): context glm ids newest first with their backoffs;
        returns (log10 p, (state words newest first), (state backoffs), matched length)."""
        cdef uint32_t ctx[MAXORDER]
        cdef float bo[MAXORDER]
        cdef uint32_t out[MAXORDER]
        cdef float out_bo[MAXORDER]
        cdef int L = min(len(context), self.order - 1), j, out_len, matched
        for j in range(L):
            ctx[j] = context[j]
            bo[j] = backoffs[j]
        cdef float p = self.c_step(ctx, bo, L, w, out, out_bo, &out_len, &matched)
        return p, tuple(out[j] for j in range(out_len)), tuple(out_bo[j] for j in range(out_len)), matched

    def begin_sentence(self):
        """KenLM's BeginSentenceWrite state: (words, backoffs) in glm ids."""
        cdef Node node
        cdef bint independent
        cdef float bo
        self.unigram(self.bos, &bo, &node, &independent)
        return (1,), (bo,)

    def step_capsule(self):
        """The C step function (see step_fn) for the kenlm-style State API, as a PyCapsule "glm.step"."""
        return PyCapsule_New(<void*>step_fn, b"glm.step", NULL)

    def score_stream(self, const uint32_t[::1] ids, bint bos=True, bint eos=True, bint per_token=False):
        """Score a padded stream (1 w1 .. wn 2 per line, glm ids), as the kenlm module scores each line.

        Returns (line_logprob float64, line_tokens int64, line_oovs int64, line_oov_logprob float64) and,
        when per_token, (token_logprob float32, token_matched uint8, token_oov bool) over the scored
        tokens (words, then </s> when eos).
        """
        cdef size_t n = ids.shape[0], q, line = 0
        arrays = result_arrays(ids, eos, per_token)
        cdef Results R = results_of(arrays, per_token)
        cdef uint32_t words_a[MAXORDER]
        cdef uint32_t words_b[MAXORDER]
        cdef float bo_a[MAXORDER]
        cdef float bo_b[MAXORDER]
        cdef uint32_t* words = words_a
        cdef uint32_t* nwords = words_b
        cdef uint32_t* tw
        cdef float* bo = bo_a
        cdef float* nbo = bo_b
        cdef float* tb
        cdef int length = 0, nlength, matched, j
        cdef uint32_t g, w
        cdef float sc
        cdef Node node
        cdef bint independent
        cdef float bos_backoff
        self.unigram(self.bos, &bos_backoff, &node, &independent)
        with nogil:
            for q in range(n):
                g = ids[q]
                if g == 1:
                    if bos:
                        words[0] = self.bos
                        bo[0] = bos_backoff
                        length = 1
                    else:
                        length = 0
                    continue
                if g == 2 and not eos:
                    line += 1
                    continue
                w = self.kenlm_id(g)
                sc = self.full_score(words, bo, length, w, nbo, &nlength, &matched)
                add_token(&R, line, sc, matched, g == 0)
                if g == 2:
                    line += 1
                    continue
                nwords[0] = w
                for j in range(1, nlength):
                    nwords[j] = words[j - 1]
                length = nlength
                tw = words
                words = nwords
                nwords = tw
                tb = bo
                bo = nbo
                nbo = tb
        self.check()
        return arrays if per_token else arrays[0]

    # -- dumps -----------------------------------------------------------------------------------------
    def unigrams(self):
        """(log10 p, backoff) of KenLM ids 0 .. vocabulary size - 1, as KenLM reads them."""
        cdef uint64_t i, n = self.n_uni
        prob = np.empty(n, dtype=np.float32)
        backoff = np.empty(n, dtype=np.float32)
        left = np.empty(n, dtype=np.bool_)
        cdef float[::1] P = prob, B = backoff
        cdef cnp.npy_bool[::1] X = left
        cdef Node node
        cdef bint independent
        for i in range(n):
            P[i] = self.unigram(<uint32_t>i, &B[i], &node, &independent)
            X[i] = not independent
        return prob, backoff, left

    def trie_level(self, int n):
        """Trie table of order n (2..N): (word KenLM ids, parent index in order n-1 (a KenLM id at
        n = 2), log10 p, backoff (zeros at N)); entries in file order.  Raises ValueError when the
        child ranges of order n-1 do not tile the table."""
        if self.probing or not 2 <= n <= self.order:
            raise ValueError("a trie table of order 2..N")
        cdef Packed* L = &self.packed[n]
        cdef uint64_t count = L.entries, i, e, begin, end, parents, bit
        word = np.empty(count, dtype=np.uint32)
        parent = np.empty(count, dtype=np.uint64)
        prob = np.empty(count, dtype=np.float32)
        backoff = np.zeros(count, dtype=np.float32)
        cdef uint32_t[::1] W = word
        cdef uint64_t[::1] Pa = parent
        cdef float[::1] P = prob, B = backoff
        cdef const Packed* up
        parents = self.uni_records if n == 2 else self.packed[n - 1].entries
        e = 0
        for i in range(parents):
            if n == 2:
                begin = load64(self.uni + i * self.uni_stride + 8)
                end = load64(self.uni + (i + 1) * self.uni_stride + 8)
            else:
                up = &self.packed[n - 1]
                begin = next_pointer(up, i)
                end = next_pointer(up, i + 1)
            if begin != e or end < begin or end > count:
                raise ValueError(f"the children of the order-{n - 1} entries do not tile the order-{n} table")
            while e < end:
                Pa[e] = i
                e += 1
        if e != count:
            raise ValueError(f"the children of the order-{n - 1} entries do not tile the order-{n} table")
        for i in range(count):
            bit = i * L.total_bits
            W[i] = <uint32_t>read_bits(L.base, bit, L.word_mask)
            bit += L.word_bits
            if L.prob_bins == NULL:
                P[i] = read_nonpositive31(L.base, bit)
                if n < self.order:
                    B[i] = read_f32(L.base, bit + 31)
            elif n < self.order:
                B[i] = L.bo_bins[read_bits(L.base, bit, L.bo_mask)]
                P[i] = L.prob_bins[read_bits(L.base, bit + L.bo_bits, L.prob_mask)]
            else:
                P[i] = L.prob_bins[read_bits(L.base, bit, L.prob_mask)]
        return word, parent, prob, backoff

    def occupied(self, int n):
        """Probing: the number of filled buckets of the order-n table."""
        cdef const Table* T = &self.table[n]
        cdef uint64_t i, c = 0
        with nogil:
            for i in range(T.buckets):
                if load64(T.base + i * T.stride) != 0:
                    c += 1
        return c

    def key_filter(self, int n, int bits):
        """Probing: a bitmap of 2^bits bits with the bits of the order-n table's keys set (bit: the key's
        top bits), which rules out most candidates without reading the table."""
        cdef const Table* T = &self.table[n]
        cdef uint64_t i, k
        cdef int shift = 64 - bits
        out = np.zeros(max(1, (1 << bits) // 64), dtype=np.uint64)
        cdef uint64_t[::1] F = out
        with nogil:
            for i in range(T.buckets):
                k = load64(T.base + i * T.stride)
                if k != 0:
                    k >>= shift
                    F[k >> 6] |= 1ULL << (k & 63)
        return out

    def probing_join(self, int n, const uint64_t[::1] suffix_key, const uint32_t[::1] prefix_first,
                     const int64_t[::1] prefix_group, const int64_t[::1] group_start,
                     const int64_t[::1] group_suffix, const uint64_t[::1] key_filter, int bits,
                     int64_t lo, int64_t hi, int64_t capacity=1 << 20):
        """Probing: the n-grams x m y among the candidates made of a prefix x m and a suffix m y (both of
        order n-1) sharing the middle m, looked up by the key of m y extended by x.  Prefixes lo..hi-1;
        prefix p's first word is prefix_first[p] and its middle is group prefix_group[p] (-1: none),
        whose suffixes are group_suffix[group_start[g]:group_start[g+1]] (indices into suffix_key).
        key_filter: key_filter(n, bits); only candidates that pass it are looked up.
        Returns (prefix, suffix, bucket) int64 arrays of the n-grams found and the number of lookups."""
        cdef const Table* T = &self.table[n]
        cdef int64_t p, g, j, s, b, found = 0, j0
        cdef uint64_t probes = 0, key, top
        cdef int shift = 64 - bits
        parts = []
        out = np.empty((3, capacity), dtype=np.int64)
        cdef int64_t[:, ::1] O = out
        p, j0 = lo, -1
        while p < hi:
            with nogil:
                while p < hi:
                    g = prefix_group[p]
                    if g >= 0:
                        j = group_start[g] if j0 < 0 else j0
                        j0 = -1
                        while j < group_start[g + 1]:
                            if found == capacity:
                                j0 = j
                                break
                            s = group_suffix[j]
                            key = combine(suffix_key[s], prefix_first[p])
                            top = key >> shift
                            j += 1
                            if not (key_filter[top >> 6] >> (top & 63)) & 1:
                                continue
                            b = probe(T, key)
                            probes += 1
                            if b >= 0:
                                O[0, found] = p
                                O[1, found] = s
                                O[2, found] = b
                                found += 1
                        if j0 >= 0:
                            break
                    p += 1
            if found == capacity:
                parts.append(out)
                out = np.empty((3, capacity), dtype=np.int64)
                O = out
                found = 0
        parts.append(out[:, :found])
        res = np.concatenate(parts, axis=1)
        return res[0], res[1], res[2], probes

    def probing_entries(self, int n, const int64_t[::1] buckets):
        """Probing: (key, log10 p, backoff, extends left) of the given buckets of the order-n table."""
        cdef const Table* T = &self.table[n]
        cdef int64_t i, m = buckets.shape[0]
        key = np.empty(m, dtype=np.uint64)
        prob = np.empty(m, dtype=np.float32)
        backoff = np.zeros(m, dtype=np.float32)
        left = np.zeros(m, dtype=np.bool_)
        cdef uint64_t[::1] K = key
        cdef float[::1] P = prob, B = backoff
        cdef cnp.npy_bool[::1] X = left
        cdef const uint8_t* rec
        for i in range(m):
            rec = T.base + <uint64_t>buckets[i] * T.stride
            K[i] = load64(rec)
            P[i] = loadf(rec + 8)
            if n < self.order:
                B[i] = loadf(rec + 12)
                X[i] = not sign_bit(P[i])
            P[i] = with_sign(P[i])
        return key, prob, backoff, left


cdef float step_fn(void* scorer, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                   uint32_t* out_ctx, float* out_bo, int* out_len, int* ngram_length) noexcept nogil:
    """KenLM's FullScore in glm ids: ctx newest first (ctx[0] the previous word), ctx_bo[i] the log10
    backoff of ctx[i]..ctx[0], ctx_len of them valid; returns log10 p(w | context) and writes the state
    after w (words newest first, backoffs, length) and the length of the matched n-gram.  scorer: a
    Scorer (its corrupt flag tells when a bad value was met)."""
    return (<Scorer>scorer).c_step(ctx, ctx_bo, ctx_len, w, out_ctx, out_bo, out_len, ngram_length)


def check_words(const uint8_t[::1] words, const uint64_t[::1] offsets, buf, bint probing,
                uint64_t table_offset, uint64_t buckets):
    """Check the word strings against KenLM's vocabulary in the mapped file buf: word i (bytes
    offsets[i] .. offsets[i+1]-2 of words, each followed by a NUL) must hash to id i: probing, found in
    the table of 12-byte (hash, id) buckets at table_offset; trie, the i-th of the sorted hashes there.
    Returns the first word that does not, or -1."""
    cdef const uint8_t[::1] b = buf
    cdef const uint8_t* T = &b[0] + table_offset
    cdef uint64_t i, n = offsets.shape[0] - 1, h, slot, k, probes
    cdef uint32_t value
    cdef int64_t bad = -1
    cdef bint ok
    with nogil:
        for i in range(1, n):
            h = murmur64a(&words[0] + offsets[i], offsets[i + 1] - offsets[i] - 1, 0)
            if probing:
                slot = h % buckets
                ok = False
                for probes in range(buckets):
                    k = load64(T + slot * 12)
                    if k == h:
                        memcpy(&value, T + slot * 12 + 8, 4)
                        ok = value == i
                        break
                    if k == 0:
                        break
                    slot += 1
                    if slot == buckets:
                        slot = 0
            else:
                ok = load64(T + 8 * (i - 1)) == h
            if not ok:
                bad = <int64_t>i
                break
    return bad


# ------------------------------------------------------------------------------------------- writing
def hash_words(const uint8_t[::1] words, const uint64_t[::1] offsets):
    """KenLM's hashes of words: word i is bytes offsets[i] .. offsets[i+1]-1 of words (no separator)."""
    cdef size_t i, n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    cdef uint64_t[::1] H = out
    cdef const uint8_t* base = &words[0] if words.shape[0] else NULL
    with nogil:
        for i in range(n):
            H[i] = murmur64a(base + offsets[i], offsets[i + 1] - offsets[i], 0)
    return out


def make_bins(const float[::1] values, uint64_t bins):
    """KenLM's quantization centers of sorted values: bin i holds values[len*i/bins : len*(i+1)/bins],
    its center the mean summed in float64 from the first value on, divided by the count as float32,
    then rounded to float32; an empty bin repeats the center before it (-inf for the first)."""
    cdef uint64_t n = values.shape[0], i, start = 0, finish, j
    cdef double total
    out = np.empty(bins, dtype=np.float32)
    cdef float[::1] C = out
    with nogil:
        for i in range(bins):
            finish = (n * (i + 1)) // bins
            if finish == start:
                C[i] = C[i - 1] if i else -INFINITY
            else:
                total = 0.0
                for j in range(start, finish):
                    total += values[j]
                C[i] = <float>(total / <double>(<float>(finish - start)))
            start = finish
    return out


def pack_bits(uint8_t[::1] out, uint64_t total_bits, uint64_t first, fields):
    """OR entries first, first+1, ... into the bit-packed table out (entry i at bit i*total_bits): fields
    is a list of (uint64 array, width in bits <= 57) written one after another from the entry's first
    bit, little-endian (KenLM's bit packing).  out must have 8 spare bytes after the last entry."""
    cdef int k, nf = len(fields)
    cdef const uint64_t[::1] a
    cdef const uint64_t* arrays[8]
    cdef uint64_t widths[8]
    cdef uint64_t n = 0, i, bit, v, cur
    if nf > 8:
        raise ValueError("at most 8 fields")
    keep = []
    for k in range(nf):
        a = fields[k][0]
        keep.append(a)
        if k == 0:
            n = a.shape[0]
        elif <uint64_t>a.shape[0] != n:
            raise ValueError("fields of different lengths")
        arrays[k] = &a[0] if n else NULL
        widths[k] = fields[k][1]
        if widths[k] > 57:
            raise ValueError("a field of more than 57 bits")
    if n and ((first + n) * total_bits + 7) // 8 + 8 > <uint64_t>out.shape[0]:
        raise ValueError("the table is too small for the entries")
    cdef uint8_t* base = &out[0]
    with nogil:
        for i in range(n):
            bit = (first + i) * total_bits
            for k in range(nf):
                v = arrays[k][i] & ((1ULL << widths[k]) - 1)
                cur = load64(base + (bit >> 3))
                cur |= v << (bit & 7)
                memcpy(base + (bit >> 3), &cur, 8)
                bit += widths[k]
