# Shared by the compiled modules (Cython `include`): UTF-8 validation.

cdef inline size_t utf8_valid_prefix(const uint8_t* p, size_t n) noexcept nogil:
    """Length of the longest valid UTF-8 prefix of p[:n] (n when all of it is valid)."""
    cdef size_t i = 0, need, k
    cdef uint8_t c
    cdef uint32_t cp
    while i < n:
        c = p[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need = 1; cp = c & 0x1F
        elif 0xE0 <= c <= 0xEF:
            need = 2; cp = c & 0x0F
        elif 0xF0 <= c <= 0xF4:
            need = 3; cp = c & 0x07
        else:
            return i
        if i + need >= n:
            return i
        for k in range(1, need + 1):
            if (p[i + k] & 0xC0) != 0x80:
                return i
            cp = (cp << 6) | (p[i + k] & 0x3F)
        if (need == 2 and (cp < 0x800 or 0xD800 <= cp <= 0xDFFF)) or (need == 3 and (cp < 0x10000 or cp > 0x10FFFF)):
            return i
        i += need + 1
    return n
