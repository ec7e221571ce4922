# Shared by _query and _glm (Cython `include`): a hash over the children of trie nodes with many
# children, so that finding a child costs one probe instead of a binary search through a long range.
# Needs _search.pxi included first.

DEF SMALL = 8          # back-off tries: children ranges up to this size are searched, larger ones hashed
cdef uint32_t EMPTY = 0xFFFFFFFFu


cdef inline uint64_t child_key(int table, uint32_t parent, uint32_t w) noexcept nogil:
    cdef uint64_t h = (<uint64_t>parent << 32) ^ (<uint64_t>w * 0x9E3779B97F4A7C15ULL) ^ (<uint64_t>table << 59)
    h ^= h >> 31
    h *= 0xBF58476D1CE4E5B9ULL
    h ^= h >> 29
    return h


cdef inline int64_t find_child_hashed(const uint32_t* T, uint64_t mask, int table, const uint32_t* words,
                                      const uint32_t* starts, uint32_t p, uint32_t w,
                                      uint32_t small, uint64_t size) noexcept nogil:
    """Index of child w of node p of a table (children words[starts[p]:starts[p+1]]), or -1; ranges of
    up to ``small`` children are searched, larger ones looked up in the hash.  size: the entries of the
    table, which the range is clipped to, and the probes stop after a turn of the hash (a damaged
    file's arrays are not checked at load)."""
    cdef uint32_t lo = starts[p], hi = starts[p + 1], c
    cdef uint64_t slot, probes = 0
    if hi > size:
        hi = <uint32_t>size
    if lo > hi:
        lo = hi
    if hi - lo <= small:
        return find_child(words, lo, hi, w)
    slot = child_key(table, p, w) & mask
    c = T[slot]
    while c != EMPTY and probes <= mask:
        if lo <= c < hi and words[c] == w:
            return c
        slot = (slot + 1) & mask
        c = T[slot]
        probes += 1
    return -1


def child_hash(tables, alloc=None):
    """Open-addressing table of the children of every node with more than ``small`` children.

    tables: (number, starts, words, small) per table of children: the children of node p are
    words[starts[p]:starts[p+1]], sorted.  A slot holds a child's index in its table; a lookup of child
    w of node p probes from child_key(number, p, w) and accepts a slot whose index lies in p's children
    range and holds word w.  alloc(size, dtype): where the table is made (np.empty by default; a
    memory budget's file-backed arrays, glm.spill.Scratch.zeros).
    """
    cdef uint64_t total = 0, size, p, c, slot, mask, lo, hi, n
    cdef const uint32_t[::1] st
    cdef const uint32_t[::1] wd
    cdef int number
    cdef uint32_t small
    cdef uint64_t inserted = 0, part
    tables = [(number, np.ascontiguousarray(starts, dtype=np.uint32),     # (array-likes: glm.quantize)
               np.ascontiguousarray(words, dtype=np.uint32), small) for number, starts, words, small in tables]
    for _, st, wd, small in tables:
        # (ranges clipped to the table, as the lookups clip them, and at most the table's entries: the
        # arrays of a damaged file, not yet verified, make a hash that stays inside them and has room)
        n = wd.shape[0]
        part = 0
        with nogil:
            for p in range(st.shape[0] - 1):
                hi = min(<uint64_t>st[p + 1], n)
                lo = min(<uint64_t>st[p], hi)
                if hi - lo > small:
                    part += hi - lo
        total += min(part, n)
    size = 1024
    while size < 2 * total:
        size *= 2
    table = (alloc or np.empty)(size, np.uint32)
    table.fill(EMPTY)
    cdef uint32_t[::1] T = table
    mask = size - 1
    for number, st, wd, small in tables:
        n = wd.shape[0]
        with nogil:
            for p in range(st.shape[0] - 1):
                hi = min(<uint64_t>st[p + 1], n)
                lo = min(<uint64_t>st[p], hi)
                if hi - lo <= small:
                    continue
                for c in range(lo, hi):
                    if inserted >= size // 2:      # (only overlapping ranges of a damaged file)
                        break
                    slot = child_key(number, <uint32_t>p, wd[c]) & mask
                    while T[slot] != EMPTY:
                        slot = (slot + 1) & mask
                    T[slot] = <uint32_t>c
                    inserted += 1
    return table
