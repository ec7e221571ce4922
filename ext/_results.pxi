# Shared by _query and _glm (Cython `include`): the result arrays of score_stream and adding one scored
# token to them.  Needs numpy (np, cnp) imported first.
#
# Every score is checked as it is added: a log10 probability must be a number <= 0 (up to rounding,
# MAX_LOGPROB; below +inf for the 2014 toolkit's models, which are not normalized).  -inf, a probability
# of 0, is one: zero discounts give it (lmplz writes such models too).  A model file whose values were
# damaged (glm verify finds where) can make a score NaN, +inf or positive; ``insane`` catches that at the
# cost of a compare per token, and score_stream then raises (``raise_insane``) instead of returning it.
from libc.math cimport INFINITY

cdef double MAX_LOGPROB = 1e-6     # log10 p above this is not a probability (float32 rounding is far below)

cdef struct Results:
    double* lp              # per line: log10 probability, tokens, OOVs, log10 probability of the OOVs
    int64_t* tokens
    int64_t* oovs
    double* oov_lp
    bint per_token          # per scored token: log10 probability, matched length, OOV flag
    float* tok_lp
    uint8_t* tok_matched
    uint8_t* tok_oov
    size_t t
    double limit            # the largest score accepted (MAX_LOGPROB, or infinity: only finite)
    size_t bad              # tokens whose score is not a log10 probability, and the first such score
    double bad_score


cdef inline bint insane(double sc, double limit=MAX_LOGPROB) noexcept nogil:
    """Whether a score is not a log10 probability (NaN, +inf, or above 0 beyond rounding)."""
    return not (sc <= limit) or sc == INFINITY


def raise_insane(source, double score, where=""):
    """The error for a score that is not a log10 probability: the model's values are damaged."""
    from glm.formats import ModelFormatError
    raise ModelFormatError(f"{source or 'model'}: damaged model: a score of {score!r} (a log10 probability "
                           f"is a number <= 0){where}; `glm verify` checks the file")


def result_arrays(const uint32_t[::1] ids, bint eos, bint per_token, uint64_t vocab_size=0x100000000):
    """Zeroed (per-line arrays, per-token arrays) for scoring the padded stream ids; a ValueError for a
    stream that does not end a line or holds an id of vocab_size or more."""
    cdef size_t n = ids.shape[0], i, lines = 0
    cdef uint32_t top = 0
    if n and ids[n - 1] != 2:
        raise ValueError("a padded id stream must end with </s> (id 2): cut it at line ends")
    for i in range(n):
        if ids[i] == 2:
            lines += 1
        if ids[i] > top:
            top = ids[i]
    if n and top >= vocab_size:
        raise ValueError(f"word id {top} in the stream is not below the vocabulary size {vocab_size}")
    ntok = n - lines - (0 if eos else lines) if per_token else 0
    return ((np.zeros(lines, dtype=np.float64), np.zeros(lines, dtype=np.int64),
             np.zeros(lines, dtype=np.int64), np.zeros(lines, dtype=np.float64)),
            (np.zeros(ntok, dtype=np.float32), np.zeros(ntok, dtype=np.uint8), np.zeros(ntok, dtype=np.bool_)))


cdef Results results_of(arrays, bint per_token, double limit=MAX_LOGPROB):
    cdef Results r
    r.lp = <double*>cnp.PyArray_DATA(arrays[0][0])
    r.tokens = <int64_t*>cnp.PyArray_DATA(arrays[0][1])
    r.oovs = <int64_t*>cnp.PyArray_DATA(arrays[0][2])
    r.oov_lp = <double*>cnp.PyArray_DATA(arrays[0][3])
    r.per_token = per_token
    r.tok_lp = <float*>cnp.PyArray_DATA(arrays[1][0])
    r.tok_matched = <uint8_t*>cnp.PyArray_DATA(arrays[1][1])
    r.tok_oov = <uint8_t*>cnp.PyArray_DATA(arrays[1][2])
    r.t = 0
    r.limit = limit
    r.bad = 0
    return r


cdef check_results(Results* r, source):
    """Raise when a token's score was not a log10 probability (after the scoring loop)."""
    if r.bad:
        raise_insane(source, r.bad_score, f" ({r.bad} such token{'s' if r.bad > 1 else ''} in the batch)")


cdef inline void add_token(Results* r, size_t line, double sc, int matched, bint oov) noexcept nogil:
    if insane(sc, r.limit):
        if not r.bad:
            r.bad_score = sc
        r.bad += 1
    r.lp[line] += sc
    r.tokens[line] += 1
    if oov:
        r.oovs[line] += 1
        r.oov_lp[line] += sc
    if r.per_token:
        r.tok_lp[r.t] = <float>sc
        r.tok_matched[r.t] = matched
        r.tok_oov[r.t] = oov
        r.t += 1
