# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Back-off queries over the suffix trie of a model.

Level 1 is indexed by word id; the children of an n-gram g (in level n+1) are the n-grams x g, sorted
by x, at starts[g] .. starts[g+1].  The longest stored n-gram ending in w is found by walking from w back
through the context; its log10 probability plus the log10 backoffs of the context suffixes longer than
the match is log10 p(w | context), as in an ARPA file.  The backoffs of the context come from the walk
made for the previous word, so a sentence costs one walk per word.

The arrays may come from a damaged file whose large arrays are not checked at load (glm.formats.binary):
every children range read from ``starts`` is clipped to the level's size, hash probes stop after a full
turn of the table, word ids are checked against the vocabulary, and every score is checked
(_results.pxi), so that no lookup reads outside an array and no damaged value is returned as a score.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t

cnp.import_array()

include "_search.pxi"
include "_childhash.pxi"
include "_results.pxi"
include "_protocol.pxi"

DEF MAXORDER = 16
DEF LANES = 32         # walks advanced together, so that their memory accesses overlap


def trie_hash(levels, alloc=None):
    """The child hash of a back-off trie: the children of level n are table n (see child_hash)."""
    return child_hash([(n, levels[n - 1]["starts"], levels[n]["word"], SMALL) for n in range(1, len(levels))],
                      alloc)


cdef class Trie:
    cdef public int order
    cdef public object source              # the model file, named in errors
    cdef uint64_t vocab_size
    cdef uint64_t size[MAXORDER + 2]        # entries of each level (size[N + 1] = 0)
    cdef const uint32_t* word[MAXORDER + 1]
    cdef const float* prob[MAXORDER + 1]
    cdef const float* bo[MAXORDER + 1]
    cdef const uint32_t* starts[MAXORDER + 1]
    cdef const uint32_t* hash
    cdef uint64_t hash_mask
    cdef object _keep
    cdef const uint8_t* ext[MAXORDER + 1]      # KenLM's "extends" bit per n-gram (made by step_capsule)
    cdef object _ext
    cdef const uint32_t* fwd_starts[MAXORDER + 1]    # the continuations of each n-gram (next_logprobs)
    cdef const uint32_t* fwd_index[MAXORDER + 1]
    cdef const uint32_t* fwd_word[MAXORDER + 1]
    cdef object _fwd

    def __init__(self, levels, hash_table):
        """levels: list of dicts per order with 'logprob', 'backoff' (n < N), 'starts' (n < N), 'word' (n > 1);
        hash_table: child_hash(levels)."""
        cdef int n
        cdef const uint32_t[::1] u
        cdef const float[::1] f
        self.order = len(levels)
        if not 1 <= self.order <= MAXORDER:
            raise ValueError(f"order {self.order} is not between 1 and the supported maximum {MAXORDER}")
        self._keep = (levels, hash_table)
        self.source = None
        u = hash_table
        if u.shape[0] == 0 or u.shape[0] & (u.shape[0] - 1):
            raise ValueError(f"the child hash has {u.shape[0]} slots, not a power of two")
        self.hash = &u[0]
        self.hash_mask = u.shape[0] - 1
        self.vocab_size = len(levels[0]["logprob"])
        if self.vocab_size < 3:
            raise ValueError("a vocabulary holds at least <unk>, <s> and </s>")
        for n in range(1, self.order + 1):      # shapes (the walks rely on them)
            self.size[n] = self.vocab_size if n == 1 else len(levels[n - 1]["word"])
            want = {"logprob": self.size[n], "word": self.size[n] if n > 1 else None,
                    "backoff": self.size[n] if n < self.order else None,
                    "starts": self.size[n] + 1 if n < self.order else None}
            for name, length in want.items():
                if length is not None and len(levels[n - 1][name]) != length:
                    raise ValueError(f"level {n}: {name} has {len(levels[n - 1][name])} entries, not {length}")
        self.size[self.order + 1] = 0
        for n in range(1, self.order + 1):
            lv = levels[n - 1]
            f = lv["logprob"]
            self.prob[n] = &f[0] if f.shape[0] else NULL
            if n > 1:
                u = lv["word"]
                self.word[n] = &u[0] if u.shape[0] else NULL
            if n < self.order:
                f = lv["backoff"]
                self.bo[n] = &f[0] if f.shape[0] else NULL
                u = lv["starts"]
                self.starts[n] = &u[0]

    cdef void walk_batch(self, const uint32_t* ids, const size_t* pos, const int* hlen, int B,
                         int* M, float* LP, float* NBO) noexcept nogil:
        """Longest stored n-grams ending in B tokens at once: token j is ids[pos[j]], its context
        ids[pos[j]-1], ... (hlen[j] words).  M[j] gets the length of the match and LP[j] its log10 prob;
        NBO[j * MAXORDER + L-1] the backoff of the n-gram of length L ending in token j (L < order,
        L <= M[j]).  The walks advance one level at a time in lock step, each pass prefetching what the
        next pass reads, so that the cache misses of different walks overlap."""
        cdef uint32_t node[LANES][MAXORDER]
        cdef uint32_t lo[LANES]
        cdef uint32_t hi[LANES]
        cdef uint32_t cand[LANES]
        cdef uint64_t slot[LANES]
        cdef bint active[LANES]
        cdef int j, d, N = self.order, k
        cdef uint32_t w, c, target
        cdef uint64_t probes
        cdef int64_t r
        cdef const uint32_t* words
        for j in range(B):
            w = ids[pos[j]]
            node[j][0] = w
            M[j] = 1
            active[j] = hlen[j] > 0 and N > 1
            if active[j]:
                __builtin_prefetch(&self.starts[1][w])
        for d in range(N - 1):
            words = self.word[d + 2]
            for j in range(B):          # children ranges; start the search
                if not active[j]:
                    continue
                if d >= hlen[j]:
                    active[j] = False
                    continue
                lo[j] = self.starts[d + 1][node[j][d]]
                hi[j] = self.starts[d + 1][node[j][d] + 1]
                if hi[j] > self.size[d + 2]:         # (a damaged file: stay inside the next level)
                    hi[j] = <uint32_t>self.size[d + 2]
                if lo[j] > hi[j]:
                    lo[j] = hi[j]
                if hi[j] - lo[j] > SMALL:
                    slot[j] = child_key(d + 1, node[j][d], ids[pos[j] - 1 - d]) & self.hash_mask
                    __builtin_prefetch(&self.hash[slot[j]])
                elif hi[j] > lo[j]:
                    __builtin_prefetch(&words[lo[j]])
                else:
                    active[j] = False
            for j in range(B):          # first hash probe
                if active[j] and hi[j] - lo[j] > SMALL:
                    cand[j] = self.hash[slot[j]]
                    if cand[j] != EMPTY:
                        __builtin_prefetch(&words[cand[j]])
            for j in range(B):          # resolve
                if not active[j]:
                    continue
                target = ids[pos[j] - 1 - d]
                if hi[j] - lo[j] <= SMALL:
                    r = find_child(words, lo[j], hi[j], target)
                else:
                    r = -1
                    c = cand[j]
                    probes = 0
                    while c != EMPTY and probes <= self.hash_mask:     # (a full table: one turn)
                        if lo[j] <= c < hi[j] and words[c] == target:
                            r = c
                            break
                        slot[j] = (slot[j] + 1) & self.hash_mask
                        c = self.hash[slot[j]]
                        probes += 1
                if r < 0:
                    active[j] = False
                    continue
                node[j][d + 1] = <uint32_t>r
                M[j] = d + 2
                __builtin_prefetch(&self.prob[d + 2][r])
                if d + 2 < N:
                    __builtin_prefetch(&self.starts[d + 2][r])
                    __builtin_prefetch(&self.bo[d + 2][r])
        for j in range(B):
            LP[j] = self.prob[M[j]][node[j][M[j] - 1]]
            for k in range(min(M[j], N - 1)):
                NBO[j * MAXORDER + k] = self.bo[k + 1][node[j][k]]

    def logprob(self, uint32_t w, context):
        """log10 p(w | context), context a sequence of ids, oldest first; returns (log10p, matched)."""
        cdef uint32_t seq[MAXORDER]
        cdef size_t pos[2]
        cdef int hlen[2]
        cdef int M[2]
        cdef float LP[2]
        cdef float NBO[2 * MAXORDER]
        cdef int L = min(len(context), self.order - 1), j
        for j in range(L):
            seq[j] = context[len(context) - L + j]
        seq[L] = w
        for j in range(L + 1):
            if seq[j] >= self.vocab_size:
                raise ValueError(f"word id {seq[j]} is not below the vocabulary size {self.vocab_size}")
        # lane 0 walks from w, lane 1 from the last context word (for the context's backoffs)
        pos[0], hlen[0] = L, L
        pos[1], hlen[1] = (L - 1 if L else 0), (L - 1 if L else 0)
        self.walk_batch(seq, pos, hlen, 2 if L else 1, M, LP, NBO)
        cdef double total = LP[0]
        if L > 0:
            for j in range(M[0], min(M[1], self.order - 1) + 1):
                total += NBO[MAXORDER + j - 1]
        if insane(total):
            raise_insane(self.source, total)
        return total, M[0]

    def score_stream(self, const uint32_t[::1] ids, bint bos=True, bint eos=True, bint per_token=False):
        """Score a padded stream (1 w1 .. wn 2 per line).

        Returns (line_logprob float64, line_tokens int64, line_oovs int64, line_oov_logprob float64) and,
        when per_token, (token_logprob float32, token_matched uint8, token_oov bool) over the scored
        tokens (words, then </s> when eos).
        """
        cdef size_t n = ids.shape[0]
        arrays = result_arrays(ids, eos, per_token, self.vocab_size)
        cdef Results R = results_of(arrays, per_token)
        if n:
            with nogil:
                self.score_core(&ids[0], n, bos, eos, &R)
        check_results(&R, self.source)
        return arrays if per_token else arrays[0]

    cdef void score_core(self, const uint32_t* ids, size_t n, bint bos, bint eos, Results* R) noexcept nogil:
        """score_stream's work: the padded stream ids[0 .. n) into R."""
        cdef size_t i
        cdef float ctx_bo[MAXORDER]
        cdef size_t bpos[LANES]
        cdef int bh[LANES]
        cdef int bm[LANES]
        cdef float blp[LANES]
        cdef float bnbo[LANES * MAXORDER]
        cdef int N = self.order, m, j, B, b
        cdef uint32_t w
        cdef size_t line = 0, k, q, sent = 0
        cdef double sc
        i = 0
        while i < n:
            # a batch of scored tokens; their walks run together
            B = 0
            k = i
            while k < n and B < LANES:
                w = ids[k]
                if w == 1:
                    sent = k
                elif w != 2 or eos:
                    bpos[B] = k
                    bh[B] = <int>min(k - sent - (0 if bos else 1), <size_t>(N - 1))
                    B += 1
                k += 1
            self.walk_batch(ids, bpos, bh, B, bm, blp, bnbo)
            # combine in order: each word adds the backoffs of the context its walk did not reach
            b = 0
            for q in range(i, k):
                w = ids[q]
                if w == 1:
                    for j in range(N):
                        ctx_bo[j] = 0
                    if bos and N > 1:
                        ctx_bo[0] = self.bo[1][1]
                    continue
                if w == 2 and not eos:
                    line += 1
                    continue
                m = bm[b]
                sc = blp[b]
                for j in range(m, bh[b] + 1):
                    sc += ctx_bo[j - 1]
                add_token(R, line, sc, m, w == 0)
                if w == 2:
                    line += 1
                else:
                    for j in range(N - 1):
                        ctx_bo[j] = bnbo[b * MAXORDER + j] if j < m else 0
                b += 1
            i = k

    # -- KenLM's State API (the scorer protocol, ext/_protocol.pxi) -------------------------------------
    cdef float c_step(self, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                      uint32_t* out_ctx, float* out_bo, int* out_len, int* ngram_length) noexcept nogil:
        """KenLM's FullScore: one walk from w back through the context (newest first), the backoffs of
        the context n-grams longer than the match added.  The state after w is the longest matched
        n-gram that KenLM keeps: one that some longer n-gram extends to the right, or with a non-zero
        backoff (KenLM's right-state minimization), at most order - 1 words."""
        cdef int N = self.order, m = 1, d, keep, j
        cdef int64_t r
        cdef uint32_t node = w
        cdef double lp
        if ctx_len > N - 1:
            ctx_len = N - 1
        if ctx_len < 0:
            ctx_len = 0
        keep = 1 if N > 1 and self.extends(1, w) else 0
        if N > 1:
            out_bo[0] = self.bo[1][w]
        for d in range(ctx_len):
            r = find_child_hashed(self.hash, self.hash_mask, d + 1, self.word[d + 2], self.starts[d + 1],
                                  node, ctx[d], SMALL, self.size[d + 2])
            if r < 0:
                break
            node = <uint32_t>r
            m = d + 2
            if m < N:
                out_bo[m - 1] = self.bo[m][node]
                if self.extends(m, node):
                    keep = m
        lp = self.prob[m][node]
        for j in range(m - 1, ctx_len):
            lp += ctx_bo[j]
        out_ctx[0] = w
        for j in range(1, keep):
            out_ctx[j] = ctx[j - 1]
        out_len[0] = keep
        ngram_length[0] = m
        return <float>lp

    cdef inline bint extends(self, int n, uint32_t g) noexcept nogil:
        return (self.ext[n][g >> 3] >> (g & 7)) & 1

    def step_capsule(self):
        """The step function of the scorer protocol (KenLM's BaseFullScore), as a PyCapsule "glm.step".
        The first call works out which n-grams KenLM's states keep (one pass over the model)."""
        if self._ext is None:
            self._ext = trie_extensions(self._keep[0], self._keep[1])
            for n, arr in enumerate(self._ext, 1):
                self.ext[n] = <const uint8_t*>cnp.PyArray_DATA(arr)
        return PyCapsule_New(<void*>trie_step, b"glm.step", NULL)

    def score_capsule(self):
        """score_stream into C buffers (the scorer protocol's score_fn), as a PyCapsule "glm.score"."""
        return PyCapsule_New(<void*>trie_score, b"glm.score", NULL)

    # -- the next-word distribution -----------------------------------------------------------------------
    def next_logprobs(self, context):
        """log10 p(w | context) of every word id w (float64 array, the vocabulary's size); context: ids,
        oldest first.  Every word gets the unigram probability and the backoffs of the context; the
        continuations of each context suffix, shortest first, then overwrite theirs with the longer
        n-gram's probability and the backoffs above it."""
        cdef int N = self.order, L = min(len(context), N - 1), Lc = 0, l, j
        cdef uint32_t node[MAXORDER + 1]
        cdef double bsum[MAXORDER + 2]
        cdef int64_t r
        cdef uint64_t w, V = self.vocab_size, c
        if self._fwd is None:
            self._fwd = trie_continuations(self._keep[0], self._keep[1])
            for n, (st, idx, wd) in enumerate(self._fwd, 1):
                self.fwd_starts[n] = <const uint32_t*>cnp.PyArray_DATA(st)
                self.fwd_index[n + 1] = <const uint32_t*>cnp.PyArray_DATA(idx)
                self.fwd_word[n + 1] = <const uint32_t*>cnp.PyArray_DATA(wd)
        ctx = [int(x) for x in context][len(context) - L:]
        for x in ctx:
            if not 0 <= x < V:
                raise ValueError(f"word id {x} is not in the vocabulary (0 .. {V - 1})")
        out = np.empty(V, dtype=np.float64)
        cdef double[::1] O = out
        if L:
            node[1] = ctx[L - 1]
            Lc = 1
            for l in range(1, L):
                r = find_child_hashed(self.hash, self.hash_mask, l, self.word[l + 1], self.starts[l],
                                      node[l], ctx[L - 1 - l], SMALL, self.size[l + 1])
                if r < 0:
                    break
                node[l + 1] = <uint32_t>r
                Lc = l + 1
        bsum[Lc + 1] = 0
        for l in range(Lc, 0, -1):
            bsum[l] = bsum[l + 1] + self.bo[l][node[l]]
        with nogil:
            for w in range(V):
                O[w] = self.prob[1][w] + bsum[1]
            for l in range(1, Lc + 1):
                for c in range(self.fwd_starts[l][node[l]], self.fwd_starts[l][node[l] + 1]):
                    O[self.fwd_word[l + 1][c]] = self.prob[l + 1][self.fwd_index[l + 1][c]] + bsum[l + 1]
        return out


cdef float trie_step(void* scorer, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                     uint32_t* out_ctx, float* out_bo, int* out_len, int* ngram_length) noexcept nogil:
    return (<Trie>scorer).c_step(ctx, ctx_bo, ctx_len, w, out_ctx, out_bo, out_len, ngram_length)


cdef int trie_score(void* scorer, const uint32_t* ids, size_t n, bint bos, bint eos, Results* R) noexcept nogil:
    (<Trie>scorer).score_core(ids, n, bos, eos, R)
    return 0


def _prefixes(levels, hash_table):
    """For n = 1 .. order-1, the index in level n of the first n words of each (n+1)-gram (uint32 array
    over level n+1; EMPTY when absent), one level after the other.  The (n+1)-gram x g (g in level n at
    p) starts with x g', g' = the first n-1 words of g: the child x of g' in level n."""
    cdef const uint32_t[::1] T = hash_table
    cdef const uint32_t[::1] st
    cdef const uint32_t[::1] st_lower
    cdef const uint32_t[::1] words
    cdef const uint32_t[::1] words_lower
    cdef const uint32_t[::1] prev
    cdef uint32_t[::1] P
    cdef uint64_t mask = T.shape[0] - 1, p, c, np_
    cdef int64_t r
    cdef int n
    prev_arr = None
    for n in range(1, len(levels)):
        st = levels[n - 1]["starts"]
        words = levels[n]["word"]
        pre = np.full(words.shape[0], EMPTY, dtype=np.uint32)
        P = pre
        np_ = st.shape[0] - 1
        if n == 1:
            with nogil:
                for c in range(words.shape[0]):
                    P[c] = words[c]
        else:
            prev = prev_arr
            st_lower = levels[n - 2]["starts"]
            words_lower = levels[n - 1]["word"]
            with nogil:
                for p in range(np_):
                    if prev[p] == EMPTY:
                        continue
                    for c in range(st[p], min(st[p + 1], <uint64_t>words.shape[0])):
                        r = find_child_hashed(&T[0], mask, n - 1, &words_lower[0], &st_lower[0], prev[p],
                                              words[c], SMALL, words_lower.shape[0])
                        if r >= 0:
                            P[c] = <uint32_t>r
        yield n, pre
        prev_arr = pre


def trie_extensions(levels, hash_table):
    """KenLM's "extends" flag of the n-grams of levels 1 .. order-1 (bit g of array n-1): a non-zero
    backoff, or the start of a longer n-gram (as KenLM marks n-grams when it loads an ARPA file)."""
    cdef const float[::1] bo
    cdef const uint32_t[::1] P
    cdef uint8_t[::1] E
    cdef uint64_t g, c
    out = []
    for n, pre in _prefixes(levels, hash_table):
        bo = levels[n - 1]["backoff"]
        ext = np.zeros((bo.shape[0] + 8) // 8, dtype=np.uint8)
        E = ext
        P = pre
        with nogil:
            for g in range(bo.shape[0]):
                if bo[g] != 0:
                    E[g >> 3] |= 1 << (g & 7)
            for c in range(P.shape[0]):
                if P[c] != EMPTY:
                    E[P[c] >> 3] |= 1 << (P[c] & 7)
        out.append(ext)
    return out


def trie_continuations(levels, hash_table):
    """For n = 1 .. order-1: (starts, index, word) such that the (n+1)-grams starting with the n-gram g
    of level n are index[starts[g] .. starts[g+1]] in level n+1, and word[] their last words."""
    cdef const uint32_t[::1] st
    cdef uint32_t[::1] last
    cdef uint32_t[::1] nxt
    cdef uint64_t p, c
    out = []
    last_arr = np.arange(len(levels[0]["logprob"]), dtype=np.uint32)      # level 1: the word itself
    for n, pre in _prefixes(levels, hash_table):
        st = levels[n - 1]["starts"]
        nxt_arr = np.empty(len(pre), dtype=np.uint32)                     # last words of level n+1
        nxt = nxt_arr
        last = last_arr
        with nogil:
            for p in range(st.shape[0] - 1):
                for c in range(st[p], min(st[p + 1], <uint64_t>nxt.shape[0])):
                    nxt[c] = last[p]
        order = np.argsort(pre, kind="stable").astype(np.uint32)
        counts = np.bincount(pre[pre != EMPTY], minlength=len(levels[n - 1]["logprob"]))
        starts = np.zeros(len(counts) + 1, dtype=np.uint32)
        np.cumsum(counts, out=starts[1:])
        order = order[:starts[len(counts)]]
        out.append((starts, order, nxt_arr[order]))
        last_arr = nxt_arr
    return out
