# Shared by the compiled scorers and glm._state (Cython `include`, after _results.pxi): the C functions
# of the scorer protocol, which a scorer hands out in PyCapsules so that code in another compiled module
# calls it without Python in between.
#
# step_capsule() -> PyCapsule b"glm.step" holding a step_fn: KenLM's BaseFullScore.  `scorer` is the
#   scorer object itself (the PyObject* whose step_capsule() gave the function; the caller keeps a
#   reference).  ctx: the context, newest word first, ctx_len of them (at most order - 1 are read);
#   ctx_bo[i]: log10 backoff of the n-gram ctx[i] .. ctx[0] (0 where the scorer has none).  Returns
#   log10 p(w | context) and writes the state after w (out_ctx newest first, out_bo, out_len; room for
#   order - 1 words) and the length of the n-gram matched.  The outputs may not alias the inputs.
# score_capsule() -> PyCapsule b"glm.score" holding a score_fn: what score_stream does, into the C
#   buffers of R (one line per sentence), over the padded stream ids[0 .. n) (1 w1 .. wn 2 per line).
#   Returns 0, or -1 when memory ran out.
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer, PyCapsule_IsValid

ctypedef float (*step_fn)(void* scorer, const uint32_t* ctx, const float* ctx_bo, int ctx_len, uint32_t w,
                          uint32_t* out_ctx, float* out_bo, int* out_len, int* ngram_length) noexcept nogil
ctypedef int (*score_fn)(void* scorer, const uint32_t* ids, size_t n, bint bos, bint eos,
                         Results* R) noexcept nogil
