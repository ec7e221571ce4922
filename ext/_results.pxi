# Shared by _query and _glm (Cython `include`): the result arrays of score_stream and adding one scored
# token to them.  Needs numpy (np, cnp) imported first.

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


def result_arrays(const uint32_t[::1] ids, bint eos, bint per_token):
    """Zeroed (per-line arrays, per-token arrays) for scoring the padded stream ids."""
    cdef size_t n = ids.shape[0], i, lines = 0
    if n and ids[n - 1] != 2:
        raise ValueError("a padded id stream must end with </s> (id 2): cut it at line ends")
    for i in range(n):
        if ids[i] == 2:
            lines += 1
    ntok = n - lines - (0 if eos else lines) if per_token else 0
    return ((np.zeros(lines, dtype=np.float64), np.zeros(lines, dtype=np.int64),
             np.zeros(lines, dtype=np.int64), np.zeros(lines, dtype=np.float64)),
            (np.zeros(ntok, dtype=np.float32), np.zeros(ntok, dtype=np.uint8), np.zeros(ntok, dtype=np.bool_)))


cdef Results results_of(arrays, bint per_token):
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
    return r


cdef inline void add_token(Results* r, size_t line, double sc, int matched, bint oov) noexcept nogil:
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
