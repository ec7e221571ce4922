# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Vocabulary hash table and tokenizer: bytes of text -> padded streams of word ids.

Words are byte strings kept in one blob; an open-addressing table (linear probing, load <= 1/2)
maps them to ids.  Ids: <unk>=0, <s>=1, </s>=2, then first occurrence.  The table is made of plain
arrays so that a model file can store it and map it back without rebuilding.

Tokenizing a buffer of complete lines yields the padded stream ``1 w1 .. wn 2`` per line.  Tokens are
separated by space, TAB, CR and NUL (as lmplz splits them); lines by LF.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcmp, memcpy
from libc.stdlib cimport malloc, realloc, free, strtod
from libc.math cimport INFINITY
from cpython.pycapsule cimport PyCapsule_New

cnp.import_array()

cdef uint32_t EMPTY = 0xFFFFFFFFu
DEF BATCH = 64

include "_search.pxi"
UNK, BOS, EOS = 0, 1, 2

# Status codes returned by tokenize(); the Python wrapper turns them into messages.
cdef enum:
    S_OK = 0
    S_BAD_UTF8 = 1
    S_LITERAL_BOUNDARY = 2
OK, BAD_UTF8, LITERAL_BOUNDARY = S_OK, S_BAD_UTF8, S_LITERAL_BOUNDARY


cdef inline uint64_t hash_bytes(const uint8_t* p, size_t n) noexcept nogil:
    # FNV-1a, then a final avalanche so that the low bits used for the slot are well mixed.
    cdef uint64_t h = 14695981039346656037ULL
    cdef size_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    return h


cdef double POW10[23]
cdef int _k
POW10[0] = 1.0
for _k in range(1, 23):
    POW10[_k] = POW10[_k - 1] * 10.0


cdef inline bint parse_number(const uint8_t* p, size_t n, double* out) noexcept nogil:
    """Decimal number p[:n], as strtod reads it.  Plain decimals of up to 15 significant digits (all that
    ARPA files hold but exponents) are m / 10^k with both exact, which is strtod's correctly rounded
    result; anything else goes to strtod."""
    cdef size_t i = 0
    cdef uint64_t m = 0
    cdef int digits = 0, frac = 0
    cdef bint neg = False, seen_dot = False, seen_digit = False
    cdef char buf[64]
    cdef char* endp
    if n and (p[0] == 45 or p[0] == 43):
        neg = p[0] == 45
        i = 1
    while i < n:
        if 48 <= p[i] <= 57:
            seen_digit = True
            m = m * 10 + (p[i] - 48)
            if m:
                digits += 1
            if seen_dot:
                frac += 1
            if digits > 15 or frac > 22:
                break
        elif p[i] == 46 and not seen_dot:
            seen_dot = True
        else:
            break
        i += 1
    if i == n and seen_digit:
        out[0] = -(<double>m / POW10[frac]) if neg else <double>m / POW10[frac]
        return True
    if n >= 63:
        return False
    memcpy(buf, p, n)
    buf[n] = 0
    out[0] = strtod(buf, &endp)
    return n > 0 and endp == buf + n


cdef inline bint is_sep(uint8_t c) noexcept nogil:
    return c == 32 or c == 9 or c == 13 or c == 0


include "_utf8.pxi"


cdef class VocabTable:
    """Growable (or frozen, when built over stored arrays) word <-> id table."""
    cdef uint8_t* blob
    cdef uint64_t* offsets      # offsets[i] .. offsets[i+1] is word i in blob
    cdef uint32_t* table
    cdef public uint64_t size   # number of words
    cdef uint64_t blob_len, blob_cap, off_cap, mask
    cdef bint owned
    cdef object _keep           # arrays kept alive when the table views stored data

    def __cinit__(self):
        self.blob = NULL
        self.offsets = NULL
        self.table = NULL
        self.owned = True

    def __dealloc__(self):
        if self.owned:
            free(self.blob)
            free(self.offsets)
            free(self.table)

    @staticmethod
    def new(words=(b"<unk>", b"<s>", b"</s>")):
        cdef VocabTable v = VocabTable()
        v.blob_cap = 1 << 16
        v.blob = <uint8_t*>malloc(v.blob_cap)
        v.off_cap = 1 << 12
        v.offsets = <uint64_t*>malloc(v.off_cap * sizeof(uint64_t))
        v.offsets[0] = 0
        v.mask = (1 << 13) - 1
        v.table = <uint32_t*>malloc((v.mask + 1) * sizeof(uint32_t))
        cdef uint64_t i
        for i in range(v.mask + 1):
            v.table[i] = EMPTY
        v.size = 0
        v.blob_len = 0
        for w in words:
            v.add_word(w)
        return v

    @staticmethod
    def from_arrays(blob, offsets, table):
        """A frozen table over stored arrays (e.g. memory-mapped from a model file)."""
        cdef VocabTable v = VocabTable()
        cdef const uint8_t[::1] b = blob
        cdef const uint64_t[::1] o = offsets
        cdef const uint32_t[::1] t = table
        cdef uint64_t i, bad = 0
        # checked here (O(words)), as every lookup relies on them: the words' offsets rise from 0 to the
        # end of the blob, and the table has a power of two of slots
        if o.shape[0] < 4 or o.shape[0] - 1 >= EMPTY:
            raise ValueError(f"vocab.offsets: {o.shape[0]} entries for at least <unk>, <s>, </s> and "
                             "below 2^32 words")
        if t.shape[0] == 0 or t.shape[0] & (t.shape[0] - 1) or t.shape[0] < <size_t>o.shape[0]:
            raise ValueError(f"vocab.table: {t.shape[0]} slots, not a power of two above the words")
        with nogil:
            for i in range(1, <uint64_t>o.shape[0]):
                if o[i] < o[i - 1]:
                    bad = i
                    break
        if o[0] != 0 or bad or o[o.shape[0] - 1] != <uint64_t>b.shape[0]:
            raise ValueError(f"vocab.offsets: the offsets do not rise from 0 to the blob's "
                             f"{b.shape[0]} bytes" + (f" (at entry {bad})" if bad else ""))
        v.owned = False
        v._keep = (blob, offsets, table)
        v.blob = <uint8_t*>&b[0] if b.shape[0] else NULL
        v.offsets = <uint64_t*>&o[0]
        v.table = <uint32_t*>&t[0]
        v.size = o.shape[0] - 1
        v.blob_len = v.offsets[v.size]
        v.mask = t.shape[0] - 1
        return v

    def arrays(self):
        """(blob, offsets, table) as numpy arrays (copies), for storing in a model file."""
        blob = np.frombuffer(self.blob[:self.blob_len] if self.blob_len else b"", dtype=np.uint8).copy()
        offsets = np.empty(self.size + 1, dtype=np.uint64)
        table = np.empty(self.mask + 1, dtype=np.uint32)
        cdef uint64_t[::1] o = offsets
        cdef uint32_t[::1] t = table
        memcpy(&o[0], self.offsets, (self.size + 1) * sizeof(uint64_t))
        memcpy(&t[0], self.table, (self.mask + 1) * sizeof(uint32_t))
        return blob, offsets, table

    cdef inline uint32_t find(self, const uint8_t* p, size_t n, uint64_t h) noexcept nogil:
        # (a table from a damaged file may hold ids beyond the words, or no EMPTY slot: such slots are
        # skipped, and the search stops after one turn; the offsets are checked when it is loaded)
        cdef uint64_t slot = h & self.mask, probes = 0
        cdef uint32_t i
        while probes <= self.mask:
            i = self.table[slot]
            if i == EMPTY:
                return EMPTY
            if (i < self.size and self.offsets[i + 1] - self.offsets[i] == n
                    and memcmp(self.blob + self.offsets[i], p, n) == 0):
                return i
            slot = (slot + 1) & self.mask
            probes += 1
        return EMPTY

    cdef void grow_table(self) noexcept nogil:
        cdef uint64_t newmask = self.mask * 2 + 1, i, slot
        free(self.table)
        self.table = <uint32_t*>malloc((newmask + 1) * sizeof(uint32_t))
        for i in range(newmask + 1):
            self.table[i] = EMPTY
        self.mask = newmask
        for i in range(self.size):
            slot = hash_bytes(self.blob + self.offsets[i], self.offsets[i + 1] - self.offsets[i]) & self.mask
            while self.table[slot] != EMPTY:
                slot = (slot + 1) & self.mask
            self.table[slot] = <uint32_t>i

    cdef uint32_t insert(self, const uint8_t* p, size_t n, uint64_t h) noexcept nogil:
        cdef uint64_t slot
        cdef uint32_t i = <uint32_t>self.size
        while self.blob_len + n > self.blob_cap:
            self.blob_cap *= 2
            self.blob = <uint8_t*>realloc(self.blob, self.blob_cap)
        if self.size + 2 > self.off_cap:
            self.off_cap *= 2
            self.offsets = <uint64_t*>realloc(self.offsets, self.off_cap * sizeof(uint64_t))
        memcpy(self.blob + self.blob_len, p, n)
        self.blob_len += n
        self.size += 1
        self.offsets[self.size] = self.blob_len
        if 2 * self.size > self.mask:
            self.grow_table()
        else:
            slot = h & self.mask
            while self.table[slot] != EMPTY:
                slot = (slot + 1) & self.mask
            self.table[slot] = i
        return i

    def add_word(self, bytes w):
        cdef const uint8_t* p = w
        cdef uint64_t h = hash_bytes(p, len(w))
        cdef uint32_t i = self.find(p, len(w), h)
        if i == EMPTY:
            if not self.owned:
                raise ValueError("this vocabulary is read-only")
            i = self.insert(p, len(w), h)
        return i

    def add_words(self, const uint8_t[::1] blob, const uint64_t[::1] offsets):
        """Add many words at once: word i is blob[offsets[i]:offsets[i+1]-1] (each followed by one
        separator byte, e.g. NUL).  Returns the id of each word (uint32 array)."""
        cdef uint64_t n = offsets.shape[0] - 1 if offsets.shape[0] else 0, i, length
        cdef const uint8_t* p
        cdef uint64_t h
        cdef uint32_t w
        ids = np.empty(n, dtype=np.uint32)
        cdef uint32_t[::1] out = ids
        if n and not self.owned:
            raise ValueError("this vocabulary is read-only")
        for i in range(n):
            p = &blob[0] + offsets[i]
            length = offsets[i + 1] - offsets[i] - 1
            h = hash_bytes(p, length)
            w = self.find(p, length, h)
            if w == EMPTY:
                w = self.insert(p, length, h)
            out[i] = w
        return ids

    def lookup(self, bytes w):
        """Id of w, or 0 (<unk>) when absent."""
        cdef const uint8_t* p = w
        cdef uint32_t i = self.find(p, len(w), hash_bytes(p, len(w)))
        return 0 if i == EMPTY else i

    def lookup_capsule(self):
        """``lookup`` for other compiled modules: a PyCapsule "glm.lookup" holding
        ``uint32_t fn(void* table, const uint8_t* p, size_t n) noexcept nogil``, the id of the word
        p[0 .. n) in ``table`` (this object; the caller keeps a reference), 0 (<unk>) when absent."""
        return PyCapsule_New(<void*>vocab_lookup, b"glm.lookup", NULL)

    def lookup_many_capsule(self):
        """A PyCapsule "glm.lookup_many" holding ``void fn(void* table, const uint8_t* p, const Py_ssize_t*
        start, const uint32_t* length, Py_ssize_t n, uint32_t* out) noexcept nogil``: the ids of the n
        words p[start[i] .. start[i] + length[i]) into out (0 when absent), looked up in batches whose
        memory accesses overlap (as tokenize)."""
        return PyCapsule_New(<void*>vocab_lookup_many, b"glm.lookup_many", NULL)

    cdef void find_many(self, const uint8_t* p, const Py_ssize_t* start, const uint32_t* length, Py_ssize_t n,
                        uint32_t* out) noexcept nogil:
        cdef uint64_t h[BATCH]
        cdef uint32_t cand[BATCH]
        cdef Py_ssize_t b0 = 0
        cdef int b, B
        cdef uint32_t w
        while b0 < n:
            B = <int>min(<Py_ssize_t>BATCH, n - b0)
            for b in range(B):
                h[b] = hash_bytes(p + start[b0 + b], length[b0 + b])
                __builtin_prefetch(&self.table[h[b] & self.mask])
            for b in range(B):
                cand[b] = self.table[h[b] & self.mask]
                if cand[b] < self.size:        # (a damaged table may hold ids beyond the words)
                    __builtin_prefetch(&self.offsets[cand[b]])
            for b in range(B):
                if cand[b] < self.size:
                    __builtin_prefetch(self.blob + self.offsets[cand[b]])
            for b in range(B):
                w = self.find(p + start[b0 + b], length[b0 + b], h[b])
                out[b0 + b] = 0 if w == EMPTY else w
            b0 += B

    def word(self, uint64_t i):
        if i >= self.size:
            raise IndexError(i)
        return self.blob[self.offsets[i]:self.offsets[i + 1]]

    def words(self):
        return [self.blob[self.offsets[i]:self.offsets[i + 1]] for i in range(self.size)]

    def tokenize(self, const uint8_t[::1] buf, bint add, int symbols=0, bint check_utf8=True):
        """Padded id stream of the complete lines in buf.

        Returns (status, ids, lines): status OK with the stream and the number of lines, or an error
        status with, in ``lines``, the 0-based index of the offending line in buf (ids then hold the lines
        before it).  A final line without LF counts as a line.  Literal <s> / </s> are an error
        (symbols=0), dropped (1) or read as <unk> (2).  Words not in the table become new ids when add, <unk> otherwise.
        """
        cdef size_t n = buf.shape[0], i = 0, k = 0, line_start_k = 0, newlines = 0
        cdef uint64_t lines = 0
        cdef int status = S_OK, B, b
        cdef const uint8_t* p = &buf[0] if n else NULL
        with nogil:
            for i in range(n):
                newlines += p[i] == 10
        i = 0
        # a word takes a byte and the separator or LF after it: at most n/2 + 1 words, and two
        # boundaries a line (the last one may lack its LF)
        ids = np.empty(n // 2 + 2 * newlines + 8, dtype=np.uint32)
        cdef uint32_t[::1] out = ids
        cdef uint32_t w
        cdef bint frozen = not add, line_open = False
        # A batch of up to BATCH events (a token: start/length/hash, or an end of line: length -1) is
        # first scanned, prefetching each token's table slot, then resolved in order.
        cdef size_t tstart[BATCH]
        cdef int64_t tlen[BATCH]
        cdef uint64_t thash[BATCH]
        cdef uint32_t tcand[BATCH]
        with nogil:
            while i < n and status == S_OK:
                B = 0
                while i < n and B < BATCH:
                    if p[i] == 10:
                        tlen[B] = -1
                        B += 1
                        i += 1
                    elif is_sep(p[i]):
                        i += 1
                    else:
                        tstart[B] = i
                        while i < n and p[i] != 10 and not is_sep(p[i]):
                            i += 1
                        tlen[B] = i - tstart[B]
                        thash[B] = hash_bytes(p + tstart[B], tlen[B])
                        __builtin_prefetch(&self.table[thash[B] & self.mask])
                        B += 1
                # then the spelling of each token's first candidate, so that the comparisons below
                # find it in the cache
                for b in range(B):
                    if tlen[b] >= 0:
                        w = self.table[thash[b] & self.mask]
                        if w < self.size:
                            __builtin_prefetch(&self.offsets[w])
                            tcand[b] = w
                        else:
                            tcand[b] = EMPTY
                for b in range(B):
                    if tlen[b] >= 0 and tcand[b] != EMPTY:
                        __builtin_prefetch(self.blob + self.offsets[tcand[b]])
                for b in range(B):
                    if not line_open:
                        out[k] = 1
                        k += 1
                        line_open = True
                    if tlen[b] < 0:
                        out[k] = 2
                        k += 1
                        line_start_k = k
                        lines += 1
                        line_open = False
                        continue
                    if check_utf8 and utf8_valid_prefix(p + tstart[b], tlen[b]) != <size_t>tlen[b]:
                        status = S_BAD_UTF8
                        break
                    w = self.find(p + tstart[b], tlen[b], thash[b])
                    if w == EMPTY:
                        w = 0 if frozen else self.insert(p + tstart[b], tlen[b], thash[b])
                    elif w == 1 or w == 2:
                        if symbols == 0:
                            status = S_LITERAL_BOUNDARY
                            break
                        if symbols == 1:
                            continue
                        w = 0
                    out[k] = w
                    k += 1
            if status != S_OK:
                k = line_start_k
            elif line_open or (n > 0 and p[n - 1] != 10):
                # a final line without LF
                if not line_open:
                    out[k] = 1
                    k += 1
                out[k] = 2
                k += 1
                lines += 1
        return status, ids[:k].copy(), lines

    def read_arpa_ngrams(self, const uint8_t[::1] buf, int n, bint add, bint with_backoff):
        """Parse the lines of an ARPA section of order n: ``log10p w1 .. wn [log10backoff]``.

        Fields are separated by spaces or TABs; blank lines are skipped.  Returns (status, ids[count, n],
        logprob float32, backoff float32, lines) where status is 0 on success, else the 0-based index of the
        bad line is in ``lines`` and status tells why: 1 bad number, 2 wrong field count, 3 unknown word,
        4 a log10 probability that is not a number <= 0 (NaN, positive; -inf, a probability of 0, is
        one), 5 a backoff that is NaN or +inf (values as float32: 1e39 is +inf).
        """
        cdef size_t size = buf.shape[0], i = 0, start, rows = 0, line = 0, cap
        cdef const uint8_t* p = &buf[0] if size else NULL
        cdef int status = 0, j, nf
        cdef uint32_t w
        cdef double val
        # rows <= lines
        cap = 1
        for i in range(size):
            if p[i] == 10:
                cap += 1
        ids = np.zeros((cap, n), dtype=np.uint32)
        prob = np.zeros(cap, dtype=np.float32)
        bo = np.zeros(cap, dtype=np.float32)
        cdef uint32_t[:, ::1] I = ids
        cdef float[::1] P = prob
        cdef float[::1] B = bo
        i = 0
        with nogil:
            while i < size:
                # skip blank line
                start = i
                while i < size and (p[i] == 32 or p[i] == 9 or p[i] == 13):
                    i += 1
                if i >= size or p[i] == 10:
                    i += 1
                    line += 1
                    continue
                nf = 0
                B[rows] = 0
                while i < size and p[i] != 10:
                    if p[i] == 32 or p[i] == 9 or p[i] == 13:
                        i += 1
                        continue
                    start = i
                    while i < size and p[i] != 10 and p[i] != 32 and p[i] != 9 and p[i] != 13:
                        i += 1
                    if nf == 0 or nf == n + 1:
                        if not parse_number(p + start, i - start, &val):
                            status = 1
                            break
                        if nf == 0:
                            P[rows] = <float>val
                            if not P[rows] <= 0:
                                status = 4
                                break
                        else:
                            B[rows] = <float>val
                            if B[rows] != B[rows] or B[rows] == INFINITY:
                                status = 5
                                break
                    elif nf <= n:
                        w = self.find(p + start, i - start, hash_bytes(p + start, i - start))
                        if w == EMPTY:
                            if not add:
                                status = 3
                                break
                            w = self.insert(p + start, i - start, hash_bytes(p + start, i - start))
                        I[rows, nf - 1] = w
                    else:
                        status = 2
                        break
                    nf += 1
                if status == 0 and (nf < n + 1 or (nf == n + 2 and not with_backoff)):
                    status = 2
                if status != 0:
                    break
                rows += 1
                line += 1
                i += 1
        return status, ids[:rows], prob[:rows], bo[:rows], line


cdef uint32_t vocab_lookup(void* table, const uint8_t* p, size_t n) noexcept nogil:
    cdef uint32_t i = (<VocabTable>table).find(p, n, hash_bytes(p, n))
    return 0 if i == EMPTY else i


cdef void vocab_lookup_many(void* table, const uint8_t* p, const Py_ssize_t* start, const uint32_t* length,
                            Py_ssize_t n, uint32_t* out) noexcept nogil:
    (<VocabTable>table).find_many(p, start, length, n, out)
