# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-call queries of one sentence or one word, in compiled code: the ``kenlm`` module's ``State``,
``FullScoreReturn`` and the queries of ``Queries`` (the base of ``glm.kenlm.Model``; ``glm.Model``'s
``score``, ``full_scores`` and ``perplexity`` go through it too).

A sentence is split straight from its UTF-8 buffer, its words looked up in the vocabulary and scored by
the model's compiled scorer through the C functions of the scorer protocol (ext/_protocol.pxi): the
whole sentence at once (``score_fn``) or word by word (``step_fn``, KenLM's ``BaseFullScore``), with no
Python objects made in between.

Two ways of reading a sentence (``Queries(kenlm=...)``):

* glm's (``glm.Model``): words are separated by space, TAB, CR, LF and NUL (as ``glm build`` splits
  them); a literal <s> or </s> is scored as <unk>; bytes that are not UTF-8 are replaced (U+FFFD).
* kenlm's (``glm.kenlm.Model``): words are separated by ASCII whitespace (space, TAB, LF, VT, FF, CR, as
  KenLM and ``bytes.split()``); <s> and </s> are the model's own words, as the kenlm module looks them
  up; in ``score`` and ``perplexity`` with bos and eos a NUL ends the sentence (KenLM reads it as
  a C string there), and a word is looked up up to its first NUL.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcmp, memcpy, memchr
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

import numpy as np
cimport numpy as cnp

cnp.import_array()

include "_results.pxi"
include "_protocol.pxi"
include "_utf8.pxi"

DEF MAXCTX = 15          # context words a State holds (order up to 16)
DEF STACK_IDS = 512      # sentences of up to this many ids need no allocation

ctypedef uint32_t (*lookup_fn)(void* table, const uint8_t* p, size_t n) noexcept nogil
ctypedef void (*lookup_many_fn)(void* table, const uint8_t* p, const Py_ssize_t* start, const uint32_t* length,
                                Py_ssize_t n, uint32_t* out) noexcept nogil

MAX_ORDER = MAXCTX + 1


cdef class State:
    """The context of a query, as ``kenlm.State``: up to order - 1 words (newest first) with the log10
    backoffs of the n-grams they end, filled by ``BeginSentenceWrite``, ``NullContextWrite`` or as the
    out_state of ``BaseScore`` / ``BaseFullScore``.  A new State is the empty (null) context.

    States compare as KenLM's: equal when they hold the same words (the backoffs follow from them);
    ``<`` orders by length, then by the words' bytes; hashable, copyable (``copy.copy``) and picklable.
    A State holds word ids of the model that filled it: use it with that model only.
    """
    cdef uint32_t word[MAXCTX]
    cdef float back[MAXCTX]
    cdef int size

    def __init__(self):
        self.size = 0

    cdef int compare(self, State other) noexcept:
        if self.size != other.size:
            return -1 if self.size < other.size else 1
        return memcmp(self.word, other.word, self.size * sizeof(uint32_t))

    def __richcmp__(self, other, int op):
        if not isinstance(other, State):
            return NotImplemented
        cdef int r = self.compare(<State>other)
        if op == 0:
            return r < 0
        if op == 1:
            return r <= 0
        if op == 2:
            return r == 0
        if op == 3:
            return r != 0
        if op == 4:
            return r > 0
        return r >= 0

    def __hash__(self):
        cdef uint64_t h = 14695981039346656037ULL ^ <uint64_t>self.size
        cdef int i
        for i in range(self.size):
            h = (h ^ self.word[i]) * 1099511628211ULL
        h ^= h >> 31
        return <Py_hash_t>(h >> 2)          # (never -1)

    def __copy__(self):
        cdef State out = State.__new__(State)
        out.word = self.word
        out.back = self.back
        out.size = self.size
        return out

    def __deepcopy__(self, memo=None):
        return self.__copy__()

    def __reduce__(self):
        return _state_from, (self.words, self.backoffs)

    @property
    def length(self):
        """The number of context words held (KenLM's ``State::length``)."""
        return self.size

    @property
    def words(self):
        """The context's word ids, newest first."""
        return tuple(self.word[i] for i in range(self.size))

    @property
    def backoffs(self):
        """log10 backoff of the n-gram ending each context word (0 for a GLM)."""
        return tuple(self.back[i] for i in range(self.size))

    def __repr__(self):
        return f"<glm.kenlm.State words={self.words}>"


def _state_from(words, backoffs):
    cdef State s = State.__new__(State)
    cdef int i
    if len(words) > MAXCTX or len(backoffs) != len(words):
        raise ValueError("a State holds at most 15 words, each with a backoff")
    for i in range(len(words)):
        s.word[i] = words[i]
        s.back[i] = backoffs[i]
    s.size = len(words)
    return s


cdef class FullScoreReturn:
    """What ``BaseFullScore`` returns, as ``kenlm.FullScoreReturn``: ``log_prob`` (log10 p), the length of
    the n-gram matched (``ngram_length``) and whether the word is out of the vocabulary (``oov``)."""
    cdef readonly float log_prob
    cdef readonly int ngram_length
    cdef readonly bint oov

    def __init__(self, float log_prob, int ngram_length, bint oov):
        self.log_prob = log_prob
        self.ngram_length = ngram_length
        self.oov = oov

    def __repr__(self):
        return f"FullScoreReturn({self.log_prob!r}, {self.ngram_length!r}, {self.oov!r})"

    def __reduce__(self):
        return FullScoreReturn, (self.log_prob, self.ngram_length, self.oov)


cdef inline bint glm_space(uint8_t c) noexcept nogil:
    return c == 32 or c == 9 or c == 13 or c == 10 or c == 0


cdef inline bint kenlm_space(uint8_t c) noexcept nogil:
    return c == 32 or 9 <= c <= 13


cdef inline Py_ssize_t cstr_len(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """n, or the offset of the first NUL in p[0 .. n): kenlm looks words up as C strings."""
    cdef const void* q = memchr(p, 0, n)
    return n if q == NULL else <const uint8_t*>q - p


cdef class Queries:
    """The per-call queries of a model: a vocabulary (``glm._vocab.VocabTable``) and a compiled scorer
    that implements the scorer protocol.  kenlm: read sentences and words as the kenlm module does (see
    the module's docstring)."""
    cdef object _table
    cdef object _scorer
    cdef void* tbl
    cdef void* sc
    cdef lookup_fn lookup
    cdef lookup_many_fn lookup_many
    cdef step_fn step
    cdef score_fn score_all
    cdef int N
    cdef uint64_t vocab_size
    cdef bint kenlm
    cdef float bos_backoff
    cdef double limit            # the largest score that is a log10 probability (_results.pxi)
    cdef object check            # the scorer's check() of damage met in a lookup, or None

    def __init__(self, table, scorer, bint kenlm=False):
        order = int(scorer.order)
        if not 1 <= order <= MAXCTX + 1:
            raise ValueError(f"order {order} is outside 1 .. {MAXCTX + 1}")
        lookup = <lookup_fn>PyCapsule_GetPointer(table.lookup_capsule(), b"glm.lookup")
        lookup_many = <lookup_many_fn>PyCapsule_GetPointer(table.lookup_many_capsule(), b"glm.lookup_many")
        score_all = (<score_fn>PyCapsule_GetPointer(scorer.score_capsule(), b"glm.score")
                     if hasattr(scorer, "score_capsule") else NULL)
        self._table, self._scorer = table, scorer
        self.tbl, self.sc = <void*>table, <void*>scorer
        self.lookup, self.lookup_many, self.score_all = lookup, lookup_many, score_all
        self.step = NULL         # (made on first use: a back-off trie then marks the n-grams that
        self.N = order           # KenLM's states keep, one pass over the model)
        self.vocab_size = table.size
        self.kenlm = kenlm
        self.limit = scorer.score_limit() if hasattr(scorer, "score_limit") else MAX_LOGPROB
        self.check = getattr(scorer, "check", None)

    @property
    def order(self):
        """The n-gram order of the model."""
        return self.N

    cdef int need_step(self) except -1:
        cdef uint32_t ctx[MAXCTX]
        cdef float bo[MAXCTX]
        cdef uint32_t out[MAXCTX]
        cdef float out_bo[MAXCTX]
        cdef int n, m
        if self._scorer is None:
            raise ValueError("this model was not initialized")
        if self.step == NULL:
            fn = <step_fn>PyCapsule_GetPointer(self._scorer.step_capsule(), b"glm.step")
            out_bo[0] = 0
            fn(self.sc, ctx, bo, 0, 1, out, out_bo, &n, &m)      # <s>: its backoff, for KenLM's
            self.bos_backoff = out_bo[0] if self.N > 1 else 0    # begin-of-sentence state
            self.step = fn
        return 0

    # -- words ---------------------------------------------------------------------------------------
    cdef const uint8_t* utf8(self, text, Py_ssize_t* n) except? NULL:
        """The UTF-8 bytes of a str (its cached UTF-8 form: no copy for ASCII) or of bytes."""
        if self.lookup == NULL:
            raise ValueError("this model was not initialized")
        if isinstance(text, str):
            return <const uint8_t*>PyUnicode_AsUTF8AndSize(text, n)
        if isinstance(text, bytes):
            n[0] = PyBytes_GET_SIZE(text)
            return <const uint8_t*>PyBytes_AS_STRING(text)
        raise TypeError(f"expected a str or bytes, not {type(text).__name__}")

    cdef uint32_t word_id(self, word) except? 0xFFFFFFFF:
        cdef Py_ssize_t n
        cdef const uint8_t* p = self.utf8(word, &n)
        return self.lookup(self.tbl, p, cstr_len(p, n) if self.kenlm else n)

    def __contains__(self, word):
        """Whether the word is in the vocabulary (not <unk>), as ``word in kenlm.Model``."""
        return self.word_id(word) != 0

    def index(self, word):
        """The word's id in the model's vocabulary, 0 (<unk>) when absent."""
        return self.word_id(word)

    # -- sentences -----------------------------------------------------------------------------------
    cdef object text(self, sentence):
        """sentence as utf8() reads it: glm's reading replaces bad UTF-8 and lone surrogates."""
        cdef Py_ssize_t n
        cdef const uint8_t* p
        if self.kenlm:
            return sentence
        if isinstance(sentence, str):
            try:
                PyUnicode_AsUTF8AndSize(sentence, &n)
                return sentence
            except UnicodeEncodeError:
                return sentence.encode("utf-8", errors="replace")
        if isinstance(sentence, bytes):
            p = <const uint8_t*>PyBytes_AS_STRING(sentence)
            n = PyBytes_GET_SIZE(sentence)
            if utf8_valid_prefix(p, n) == <size_t>n:
                return sentence
            return (<bytes>sentence).decode("utf-8", errors="replace").encode("utf-8")
        raise TypeError(f"expected a sentence (str or bytes), not {type(sentence).__name__}")

    cdef Py_ssize_t split(self, const uint8_t* p, Py_ssize_t n, uint32_t* ids, Py_ssize_t* start,
                          uint32_t* length, bint* literal) noexcept nogil:
        """The ids of the words of p[0 .. n) into ids[0 ..] (start, length: room for as many words);
        returns their number.  literal: a word was <s> or </s> (kept as such when reading as kenlm,
        else read as <unk>)."""
        cdef Py_ssize_t i = 0, k = 0, j
        cdef bint kenlm = self.kenlm
        while i < n:
            if kenlm_space(p[i]) if kenlm else glm_space(p[i]):
                i += 1
                continue
            start[k] = i
            while i < n and not (kenlm_space(p[i]) if kenlm else glm_space(p[i])):
                i += 1
            length[k] = <uint32_t>(cstr_len(p + start[k], i - start[k]) if kenlm else i - start[k])
            k += 1
        self.lookup_many(self.tbl, p, start, length, k, ids)
        literal[0] = False
        for j in range(k):
            if ids[j] == 1 or ids[j] == 2:
                if kenlm:
                    literal[0] = True
                else:
                    ids[j] = 0
        return k

    cdef object run(self, sentence, bint bos, bint eos, bint per_token, double* total, int64_t* tokens,
                    bint c_string=False):
        """Score one sentence: its total and token count, and when per_token the list of
        (log10 p, matched length, OOV) of its tokens.  c_string: as kenlm's score(), reading as kenlm
        with bos and eos, a NUL ends the sentence."""
        cdef Py_ssize_t n, words, cap, i
        cdef bint literal
        cdef uint32_t stack_ids[STACK_IDS]
        cdef float stack_lp[STACK_IDS]
        cdef uint8_t stack_m[STACK_IDS]
        cdef uint8_t stack_oov[STACK_IDS]
        cdef Py_ssize_t stack_start[STACK_IDS]
        cdef uint32_t stack_len[STACK_IDS]
        cdef uint32_t* ids = stack_ids
        cdef Py_ssize_t* start = stack_start
        cdef uint32_t* length = stack_len
        cdef void* heap = NULL
        cdef int status = 0
        cdef double oov_lp = 0
        cdef int64_t oovs = 0
        cdef Results R
        text = self.text(sentence)
        cdef const uint8_t* p = self.utf8(text, &n)
        if c_string and self.kenlm and bos and eos:
            q = memchr(p, 0, n)
            if q != NULL:
                n = <const uint8_t*>q - p
        cap = n // 2 + 3           # ids: <s>, the words, </s>
        R.lp, R.tokens, R.oovs, R.oov_lp, R.per_token, R.t = total, tokens, &oovs, &oov_lp, per_token, 0
        R.limit, R.bad, R.bad_score = self.limit, 0, 0
        R.tok_lp, R.tok_matched, R.tok_oov = stack_lp, stack_m, stack_oov
        total[0] = 0
        tokens[0] = 0
        if cap > STACK_IDS:
            heap = malloc(cap * (sizeof(Py_ssize_t) + 2 * sizeof(uint32_t) + sizeof(float) + 2))
            if heap == NULL:
                raise MemoryError()
            start = <Py_ssize_t*>heap
            ids = <uint32_t*>(start + cap)
            length = ids + cap
            R.tok_lp = <float*>(length + cap)
            R.tok_matched = <uint8_t*>(R.tok_lp + cap)
            R.tok_oov = R.tok_matched + cap
        try:
            words = self.split(p, n, ids + 1, start, length, &literal)
            ids[0] = 1
            ids[words + 1] = 2
            if self.score_all != NULL and not literal:
                if words > 256:
                    with nogil:
                        status = self.score_all(self.sc, ids, words + 2, bos, eos, &R)
                else:
                    status = self.score_all(self.sc, ids, words + 2, bos, eos, &R)
                if status:
                    raise MemoryError()
            else:
                self.walk(ids + 1, words, bos, eos, &R)
            self.sane(&R)
            if per_token:
                return [(R.tok_lp[i], R.tok_matched[i], R.tok_oov[i] != 0) for i in range(<Py_ssize_t>R.t)]
            return None
        finally:
            free(heap)

    cdef int walk(self, const uint32_t* ids, Py_ssize_t words, bint bos, bint eos, Results* R) except -1:
        """Score words ids[0 .. words) one after the other with the step function (as KenLM does)."""
        cdef uint32_t ca[MAXCTX]
        cdef uint32_t cb[MAXCTX]
        cdef float ba[MAXCTX]
        cdef float bb[MAXCTX]
        cdef uint32_t* ctx = ca
        cdef uint32_t* nctx = cb
        cdef float* bo = ba
        cdef float* nbo = bb
        cdef void* t
        cdef int L = 0, m
        cdef Py_ssize_t i
        cdef float lp
        cdef uint32_t w
        self.need_step()
        if bos and self.N > 1:
            ctx[0], bo[0], L = 1, self.bos_backoff, 1
        for i in range(words + (1 if eos else 0)):
            w = ids[i] if i < words else 2
            lp = self.step(self.sc, ctx, bo, L, w, nctx, nbo, &L, &m)
            add_token(R, 0, lp, m, w == 0 and i < words)
            t = ctx
            ctx = nctx
            nctx = <uint32_t*>t
            t = bo
            bo = nbo
            nbo = <float*>t
        return 0

    def score(self, sentence, bint bos=True, bint eos=True):
        """log10 p(sentence), as ``kenlm.Model.score``: the words, then </s> when eos, each given the
        words before it (and <s> when bos)."""
        cdef double total
        cdef int64_t tokens
        self.run(sentence, bos, eos, False, &total, &tokens, True)
        return total

    def full_scores(self, sentence, bint bos=True, bint eos=True):
        """(log10 p, n-gram length matched, OOV) of each word, then of </s> when eos, as
        ``kenlm.Model.full_scores`` (an iterator)."""
        cdef double total
        cdef int64_t tokens
        return iter(self.run(sentence, bos, eos, True, &total, &tokens))

    def perplexity(self, sentence):
        """10^(-score / (words + 1)), as ``kenlm.Model.perplexity``."""
        cdef double total
        cdef int64_t tokens
        self.run(sentence, True, True, False, &total, &tokens, True)
        if self.kenlm:        # KenLM counts the words of the whole string (a NUL does not end it)
            text = sentence.encode("utf-8") if isinstance(sentence, str) else sentence
            tokens = len(text.split()) + 1
        return 10.0 ** (-total / tokens)

    # -- KenLM's State API -----------------------------------------------------------------------------
    def BeginSentenceWrite(self, State state not None):
        """Make ``state`` the beginning of a sentence (<s>)."""
        self.need_step()
        if self.N > 1:
            state.word[0], state.back[0], state.size = 1, self.bos_backoff, 1
        else:
            state.size = 0

    def NullContextWrite(self, State state not None):
        """Make ``state`` the empty context."""
        state.size = 0

    cdef float c_score(self, State in_state, uint32_t w, State out_state, int* m) except? 1:
        cdef uint32_t ctx[MAXCTX]
        cdef float bo[MAXCTX]
        cdef int L = in_state.size, j, out_len
        if self.step == NULL:
            self.need_step()
        if L > self.N - 1:
            L = self.N - 1
        for j in range(L):
            ctx[j] = in_state.word[j]
            if ctx[j] >= self.vocab_size:
                raise ValueError("this State holds words of another model")
            bo[j] = in_state.back[j]
        cdef float lp = self.step(self.sc, ctx, bo, L, w, out_state.word, out_state.back, &out_len, m)
        out_state.size = out_len
        if insane(lp, self.limit):
            raise_insane(getattr(self._scorer, "source", None), lp)
        if self.check is not None:
            self.check()
        return lp

    cdef int sane(self, Results* R) except -1:
        """Raise when the scorer met damage or a score was not a log10 probability (_results.pxi)."""
        if self.check is not None:
            self.check()
        check_results(R, getattr(self._scorer, "source", None))
        return 0

    def BaseScore(self, State in_state not None, word, State out_state not None):
        """log10 p(word | in_state); writes the state after the word into ``out_state`` (which may be
        ``in_state`` itself)."""
        cdef int m
        return self.c_score(in_state, self.word_id(word), out_state, &m)

    def BaseFullScore(self, State in_state not None, word, State out_state not None):
        """As BaseScore, returning a FullScoreReturn (log_prob, ngram_length, oov)."""
        cdef int m
        cdef uint32_t w = self.word_id(word)
        cdef float lp = self.c_score(in_state, w, out_state, &m)
        return FullScoreReturn(lp, m, w == 0)
