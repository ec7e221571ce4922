/* The GCC / clang builtins the compiled modules call (__builtin_prefetch, __builtin_clzll), for every
 * compiler: GCC and clang have them; MSVC gets them from its intrinsics; any other compiler (or any
 * compiler with GLM_PORTABLE_BUILTINS defined, which the tests use to check this branch) gets plain C:
 * a prefetch that does nothing and a count of leading zero bits by halving. */
#ifndef GLM_BUILTINS_H
#define GLM_BUILTINS_H

#if (defined(__GNUC__) || defined(__clang__)) && !defined(GLM_PORTABLE_BUILTINS)
/* the compiler's own */

#elif defined(_MSC_VER) && !defined(GLM_PORTABLE_BUILTINS)
#include <intrin.h>
#if defined(_M_X64) || defined(_M_IX86)
#include <xmmintrin.h>
#define __builtin_prefetch(p) _mm_prefetch((const char*)(p), _MM_HINT_T0)
#else
#define __builtin_prefetch(p) __prefetch((const void*)(p))
#endif
static __inline int glm_clzll(unsigned long long x) {
    unsigned long i;
#if defined(_M_X64) || defined(_M_ARM64)
    _BitScanReverse64(&i, x);
    return 63 - (int)i;
#else
    if (x >> 32) {
        _BitScanReverse(&i, (unsigned long)(x >> 32));
        return 31 - (int)i;
    }
    _BitScanReverse(&i, (unsigned long)x);
    return 63 - (int)i;
#endif
}
#define __builtin_clzll(x) glm_clzll(x)

#else
#define __builtin_prefetch(p) ((void)(p))
static int glm_clzll(unsigned long long x) {
    /* leading zero bits of a non-zero x (as __builtin_clzll, undefined for 0: here 64) */
    int n = 0, s;
    if (!x) return 64;
    for (s = 32; s; s >>= 1) {
        if (!(x >> (64 - s))) {
            n += s;
            x <<= s;
        }
    }
    return n;
}
#define __builtin_clzll(x) glm_clzll(x)
#endif

#endif
