"""Back-off models written as KenLM trie binaries (``build_binary trie``, format version 5): glm's
compact layout (``--layout compact``) and its quantized form (``--quantize BITS``, ``-q``/``-b``).

The file is the one ``glm.formats.kenlm`` reads (layout in docs/formats.md, "KenLM binary files"):
a header, the words' hashes sorted (KenLM's trie vocabulary: word id i >= 1 has the i-th smallest hash,
``<unk>`` is 0), the quantization centers, the unigram records, one bit-packed table per order (the
trie kept by the newest word, children sorted by KenLM id) and the words.  Values follow KenLM's
conventions: a zero backoff is +0.0 on an n-gram that is the context of a longer one and -0.0 on one
that is not; quantized orders have KenLM's bins (equal-count slices of the sorted values, their means
as centers, backoff bins 0 and 1 reserved for -0.0 and +0.0) and each value the nearest center.
So the file is byte for byte what ``build_binary`` makes of the model's ARPA file (the tests compare
them), and KenLM's tools and ``glm.load`` read it.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from .files import ModelFormatError, atomic_output
from .kenlm import _FIXED, _SANITY, _align8

MAX_BITS = 25          # KenLM's limit for quantized values
_PROBING_MULTIPLIER = 1.5   # KenLM's default, written in every header (tries do not use it)


def _fail(path: str, what: str) -> ModelFormatError:
    return ModelFormatError(f"{path}: cannot write a KenLM trie: {what}")


LAYOUTS = ("fast", "compact")


def layout_options(layout=None, quantize=None, pointer_bits=None) -> tuple[bool, tuple[int, int] | None, int | None]:
    """(compact, (probability bits, backoff bits) or None, pointer bits or None) of ``save``'s
    options, checked.

    layout: None or ``'fast'`` (the format the name asks for: ARPA, .glm, .glmb) or ``'compact'``
    (KenLM's trie); quantize: None, BITS (probabilities and backoffs) or (PROB_BITS, BACKOFF_BITS),
    2 to 25 bits each as KenLM allows (``-q``, ``-b``); pointer_bits: None or 0 to 255, KenLM's ``-a``
    (child pointers compressed with an array of at most that many high bits).  Both imply the compact
    layout."""
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(LAYOUTS)}, not {layout!r}")
    if pointer_bits is not None:
        if layout == "fast":
            raise ValueError("pointer_bits: compressed pointers are in the compact layout only (KenLM's trie); "
                             "give layout='compact' (--layout compact) or no layout")
        if isinstance(pointer_bits, bool) or not isinstance(pointer_bits, (int, np.integer)) \
                or not 0 <= pointer_bits <= 255:
            raise ValueError(f"pointer_bits: expected a whole number from 0 to 255 (KenLM's -a), not {pointer_bits!r}")
        pointer_bits = int(pointer_bits)
    if quantize is None:
        return layout == "compact" or pointer_bits is not None, None, pointer_bits
    if layout == "fast":
        raise ValueError("quantize: quantized values are stored in the compact layout only (KenLM's trie); "
                         "give layout='compact' (--layout compact) or no layout")
    bits = tuple(quantize) if isinstance(quantize, (tuple, list)) else (quantize, quantize)
    if len(bits) != 2:
        raise ValueError(f"quantize: expected BITS or (PROB_BITS, BACKOFF_BITS), not {quantize!r}")
    for v in bits:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 2 <= v <= MAX_BITS:
            raise ValueError(f"quantize: expected whole numbers of bits from 2 to {MAX_BITS} (KenLM's -q/-b), "
                             f"not {quantize!r}")
    return True, (int(bits[0]), int(bits[1])), pointer_bits


# ------------------------------------------------------------------------------------------ vocabulary
def _vocabulary(vocab, path: str):
    """(perm glm id -> KenLM id, sorted hashes of ids 1.., words in KenLM id order with NULs)."""
    from .._kenlm import hash_words, word_hash
    blob, offsets, _ = vocab.table.arrays()
    V = len(offsets) - 1
    if V < 1 or bytes(blob[offsets[0]:offsets[1]]) != b"<unk>":
        raise _fail(path, "the vocabulary does not start with <unk>")
    hashes = hash_words(blob, offsets)
    unk = {word_hash(b"<unk>"), word_hash(b"<UNK>")}
    clash = np.flatnonzero(np.isin(hashes[1:], list(unk)))
    if len(clash):
        w = bytes(blob[offsets[clash[0] + 1]:offsets[clash[0] + 2]])
        raise _fail(path, f"the word {w!r} is KenLM's <unk> (KenLM merges <UNK> and <unk>); rename it")
    order = np.argsort(hashes[1:], kind="stable") + 1
    sorted_hashes = hashes[order]
    same = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
    if len(same):
        a, b = (bytes(blob[offsets[i]:offsets[i + 1]]) for i in order[same[0]:same[0] + 2])
        raise _fail(path, f"the words {a!r} and {b!r} have the same 64-bit hash; KenLM cannot tell them apart")
    ken2glm = np.concatenate([[0], order]).astype(np.int64)
    perm = np.empty(V, dtype=np.uint32)
    perm[ken2glm] = np.arange(V, dtype=np.uint32)
    # the words, NUL-terminated, in KenLM id order
    lens = np.diff(offsets).astype(np.int64)[ken2glm]
    out_starts = np.concatenate([[0], np.cumsum(lens + 1)])
    words = np.zeros(int(out_starts[-1]), dtype=np.uint8)
    owner = np.repeat(np.arange(V), lens + 1)
    within = np.arange(len(words)) - out_starts[owner]
    char = within < lens[owner]
    words[char] = blob[offsets[ken2glm].astype(np.int64)[owner[char]] + within[char]]
    return perm, sorted_hashes, words


# ------------------------------------------------------------------------------------------ values
def _with_extension(backoff: np.ndarray, is_context: np.ndarray) -> np.ndarray:
    """KenLM's flags: a zero backoff is +0.0 on a context, -0.0 on an n-gram no longer one extends."""
    bo = np.asarray(backoff, dtype=np.float32).copy()
    zero = bo == 0
    bo[zero & is_context] = 0.0
    bo[zero & ~is_context] = -0.0
    return bo


def _encode(values: np.ndarray, centers: np.ndarray, reserved: int) -> np.ndarray:
    """KenLM's Bins::Encode: the nearest of centers[reserved:] (lower_bound, then the closer of the two
    neighbours, compared in float32; ties to the upper one)."""
    m = len(centers)
    above = np.searchsorted(centers[reserved:], values, side="left").astype(np.int64) + reserved
    hi = np.minimum(above, m - 1)
    lo = np.maximum(above - 1, 0)
    closer_below = (values - centers[lo]) < (centers[hi] - values)
    code = np.where(above == reserved, reserved, np.where(above == m, m - 1, above - closer_below))
    return code.astype(np.uint32)


class _Quantizer:
    def __init__(self, q_bits: int, b_bits: int):
        self.q_bits, self.b_bits = q_bits, b_bits
        self.tables: list[np.ndarray] = []

    def prob_centers(self, prob: np.ndarray, alloc) -> np.ndarray:
        from .._kenlm import make_bins
        centers = make_bins(_sorted(prob, alloc), 1 << self.q_bits)
        self.tables.append(centers)
        return centers

    def backoff_centers(self, raw: np.ndarray, alloc) -> np.ndarray:
        """raw: the backoffs the bins are made of (the nonzero ones); bins 0 and 1 are -0.0 and +0.0."""
        from .._kenlm import make_bins
        bins = make_bins(_sorted(raw, alloc, nonzero=True), (1 << self.b_bits) - 2)
        centers = np.concatenate([np.array([-0.0, 0.0], dtype=np.float32), bins])
        self.tables.append(centers)
        return centers

    def header(self) -> bytes:
        return bytes([2, self.q_bits, self.b_bits]).ljust(8, b"\0") + b"".join(t.tobytes() for t in self.tables)


def _backoff_codes(backoff: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """backoff: with KenLM's flags (-0.0 and +0.0 have codes 0 and 1)."""
    code = _encode(backoff, centers, 2)
    zero = backoff == 0
    code[zero] = np.where(np.signbit(backoff[zero]), 0, 1)
    return code


def _sorted(values: np.ndarray, alloc, nonzero: bool = False) -> np.ndarray:
    """values (or their nonzero ones) sorted, in an array from alloc."""
    blocks = [(lo, lo + STEP) for lo in range(0, len(values), STEP)]
    size = sum(int(np.count_nonzero(values[lo:hi])) for lo, hi in blocks) if nonzero else len(values)
    out, at = alloc(size, np.float32), 0
    for lo, hi in blocks:
        v = np.asarray(values[lo:hi], dtype=np.float32)
        if nonzero:
            v = v[v != 0]
        out[at:at + len(v)] = v
        at += len(v)
    out.sort()
    return out


# ------------------------------------------------------------------------------------------ trie
STEP = 1 << 17     # entries a step: the writer's arrays of a step take about 60 bytes an entry


def _spans(starts: np.ndarray):
    """(a, b): consecutive ranges of parents whose children (starts[a]..starts[b]) number about STEP,
    at least one parent each."""
    a, parents = 0, len(starts) - 1
    while a < parents:
        b = int(np.searchsorted(starts, int(starts[a]) + STEP, side="right")) - 1
        b = min(max(b, a + 1), parents)
        yield a, b
        a = b


def _parents(starts: np.ndarray, alloc) -> np.ndarray:
    """The parent of each child (children of parent p: starts[p]..starts[p+1])."""
    out = alloc(int(starts[-1]), np.uint32)
    for a, b in _spans(starts):
        out[int(starts[a]):int(starts[b])] = np.repeat(np.arange(a, b, dtype=np.uint32),
                                                      np.diff(starts[a:b + 1]).astype(np.int64))
    return out


def _contexts(levels: list[dict], n: int, ctx_prev, path: str, alloc) -> np.ndarray:
    """Index in order n-1 of the context (first n-1 words) of each n-gram of order n (glm order)."""
    from .. import _count
    from ..threads import parallel
    word = np.ascontiguousarray(levels[n - 1]["word"], dtype=np.uint32)
    if n == 2:
        return word
    parent = _parents(np.asarray(levels[n - 2]["starts"]), alloc)
    below = np.ascontiguousarray(levels[n - 3]["starts"], dtype=np.uint32)
    ctx_words = np.ascontiguousarray(levels[n - 2]["word"], dtype=np.uint32)
    ctx = alloc(len(word), np.uint32)
    parallel(_count.contexts, len(ctx), word, parent, ctx_prev, ctx_words, below, ctx)
    last = max(len(ctx_words) - 1, 0)
    for lo in range(0, len(ctx), STEP):
        c, w = ctx[lo:lo + STEP], word[lo:lo + STEP]
        g = ctx_prev[parent[lo:lo + STEP]].astype(np.int64)
        ok = (c < len(ctx_words)) & (c >= below[g]) & (c < below[g + 1]) & (ctx_words[np.minimum(c, last)] == w)
        if not ok.all():
            raise _fail(path, f"a {n}-gram has no {n - 1}-gram for its first {n - 1} words (its context), "
                              "which KenLM requires (an ARPA file pruned that way cannot be read by KenLM either)")
    return ctx


def _marked(size: int, index: np.ndarray, alloc) -> np.ndarray:
    """A boolean array of ``size``, True at ``index``."""
    out = alloc(size, bool)
    for lo in range(0, len(index), STEP):
        out[index[lo:lo + STEP]] = True
    return out


def _next(starts: np.ndarray, order: np.ndarray, alloc) -> np.ndarray:
    """Where the children of each entry begin in the next order's table, entries in KenLM order
    (``order``: KenLM position -> glm index; glm's children of entry i: starts[i]..starts[i+1]), and
    their end after the last."""
    out = alloc(len(order) + 1, np.uint64)
    end = np.uint64(0)
    for lo in range(0, len(order), STEP):
        idx = np.asarray(order[lo:lo + STEP], dtype=np.int64)
        sums = np.cumsum((starts[idx + 1] - starts[idx]).astype(np.uint64)) + end
        out[lo + 1:lo + 1 + len(sums)] = sums
        end = sums[-1]
    return out


def _kenlm_order(order_prev: np.ndarray, nxt_prev: np.ndarray, starts: np.ndarray, perm: np.ndarray,
                 word: np.ndarray, alloc) -> np.ndarray:
    """KenLM's order of an order's entries (the parent's KenLM position, then the word's KenLM id) as
    KenLM position -> glm index, from the order below's (order_prev, with its children's offsets
    nxt_prev): each parent's children, taken in KenLM order of the parents, sorted by KenLM id."""
    out = alloc(int(nxt_prev[-1]), np.uint32)
    for a, b in _spans(nxt_prev):
        lo, hi = int(nxt_prev[a]), int(nxt_prev[b])
        if hi == lo:
            continue
        offsets = nxt_prev[a:b + 1].astype(np.int64)
        sizes = np.diff(offsets)
        first = starts[np.asarray(order_prev[a:b], dtype=np.int64)].astype(np.int64)
        idx = np.arange(hi - lo, dtype=np.int64) + np.repeat(first - (offsets[:-1] - lo), sizes)
        key = (np.repeat(np.arange(b - a, dtype=np.uint64), sizes) << np.uint64(32)) | perm[word[idx]]
        out[lo:hi] = idx[np.argsort(key)]
    return out


def _table_bytes(entries: int, total_bits: int) -> int:
    return ((1 + entries) * total_bits + 7) // 8 + 8


def _bits31(prob: np.ndarray) -> np.ndarray:
    return np.asarray(prob, dtype=np.float32).view(np.uint32) & np.uint32(0x7FFFFFFF)


def _put_table(out, entries: int, total_bits: int, fields_of, last_next=None) -> int:
    """Write a bit-packed table of ``entries`` entries of ``total_bits`` bits, STEP entries at a time:
    fields_of(lo, hi) gives the fields of entries lo..hi, (array, width) one after another in each
    entry; below the top order, ``last_next`` = (the end of the last child range, its width) in the
    next-pointer field (the last) of the extra entry.  Returns the table's bytes."""
    from .._kenlm import pack_bits
    size, done, lo = _table_bytes(entries, total_bits), 0, 0
    while True:                   # (a step of STEP entries, a multiple of 8, ends on a byte)
        hi = min(entries, lo + STEP)
        end = size if hi == entries else hi * total_bits // 8
        buf = np.zeros(end - done + 8, dtype=np.uint8)
        if hi > lo:
            pack_bits(buf, total_bits, 0, [(np.ascontiguousarray(a, dtype=np.uint64), w) for a, w in fields_of(lo, hi)])
        if hi == entries and last_next is not None:
            value, width = last_next
            bit = (entries + 1) * total_bits - width - 8 * done
            at = bit >> 3
            cur = int.from_bytes(buf[at:at + 8].tobytes(), "little") | (int(value) << (bit & 7))
            buf[at:at + 8] = np.frombuffer(cur.to_bytes(8, "little"), dtype=np.uint8)
        out.put(buf[:end - done])
        if hi == entries:
            return size
        done, lo = end, hi


def _bhiksha(pos: int, entries: int, nxt: np.ndarray, pointer_bits: int) -> tuple[np.ndarray, int]:
    """Compressed child pointers of a table of order n starting at file offset pos (KenLM's -a): (the
    part before its entries: version 0, the bits, then from the first 8-aligned offset + 8 the array
    whose slot k is the first entry whose pointer has high bits >= k; the low bits' width).  nxt: the
    pointers, entries + 1 of them."""
    from .kenlm import _chop_bits
    max_next = int(nxt[-1])
    inline = max_next.bit_length() - _chop_bits(entries + 1, max_next, pointer_bits)
    slots = (max_next >> inline) + 1
    part = np.zeros(8 * (1 + slots) + 7, dtype=np.uint8)
    part[:2] = (0, pointer_bits)
    array = np.zeros(slots, dtype=np.uint64)
    array[1:] = np.searchsorted(nxt, np.arange(1, slots, dtype=np.uint64) << np.uint64(inline), side="left")
    at = _align8(pos) + 8 - pos
    part[at:at + 8 * slots] = array.view(np.uint8)
    return part, inline


def _check_values(path: str, n: int, prob: np.ndarray, backoff) -> None:
    bad = ~(prob <= 0)          # (NaN too)
    if bad.any():
        raise _fail(path, f"an {n}-gram has log10 p = {prob[np.flatnonzero(bad)[0]]} (KenLM stores values <= 0)")
    if backoff is not None and not np.isfinite(backoff).all():
        raise _fail(path, f"an {n}-gram has backoff {backoff[np.flatnonzero(~np.isfinite(backoff))[0]]}")


def write_trie(model, path, quantize: tuple[int, int] | None = None, pointer_bits: int | None = None,
               alloc=None) -> None:
    """Write a back-off model (``glm.BackoffModel``) as a KenLM trie binary, quantized with
    ``quantize`` = (probability bits, backoff bits) or not, its child pointers compressed with
    ``pointer_bits`` (KenLM's -a) or not.  The tables are made and written STEP entries at a time; the
    arrays that span an order (its KenLM order, child offsets, contexts; about 17 bytes an n-gram, and
    a sorted copy of its values when quantized) come from ``alloc(shape, dtype)`` (zeroed; a memory
    budget's ``Scratch.zeros`` keeps them in files; default ``np.zeros``)."""
    alloc = alloc or np.zeros
    path = os.fspath(path)
    levels, N = model.levels, model.order
    if N < 2:
        raise _fail(path, "a model of order 1 (KenLM's binaries have order 2 or more)")
    perm, hashes, words = _vocabulary(model.vocab, path)
    V = len(perm)
    counts = [V] + [len(lv["word"]) for lv in levels[1:]]
    word_bits = V.bit_length()
    quant = _Quantizer(*quantize) if quantize else None

    # unigrams (KenLM id order)
    order = np.empty(V, dtype=np.uint32)             # KenLM position -> glm index, order by order
    order[perm] = np.arange(V, dtype=np.uint32)
    # (-0.0 as +0.0: ARPA text, as glm writes it, has no -0)
    uni_prob = np.asarray(levels[0]["logprob"], dtype=np.float32)[order] + np.float32(0.0)
    _check_values(path, 1, uni_prob, levels[0]["backoff"])
    ctx = _contexts(levels, 2, None, path, alloc)
    uni_bo = _with_extension(levels[0]["backoff"], _marked(V, ctx, np.zeros))[order]

    header = bytearray(_SANITY)
    header += _FIXED.pack(N, _PROBING_MULTIPLIER, 2 + bool(quant) + 2 * (pointer_bits is not None), 1, 1)
    header += struct.pack(f"<{N}Q", *counts)
    header = bytes(header).ljust(_align8(len(header)), b"\0")
    vocab = struct.pack("<Q", V - 1) + hashes.tobytes() + b"\0" * 8
    quant_bytes = 8 + 4 * ((N - 2) * ((1 << quant.q_bits) + (1 << quant.b_bits)) + (1 << quant.q_bits)) if quant else 0
    pos = len(header) + len(vocab) + quant_bytes + 16 * (V + 2)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        out = _Sink(f, header + vocab, quant_bytes)
        nxt = _next(np.asarray(levels[0]["starts"]), order, alloc)
        uni = np.zeros(V + 2, dtype=[("p", "<f4"), ("b", "<f4"), ("n", "<u8")])
        uni["p"][:V], uni["b"][:V] = uni_prob, uni_bo
        uni["n"][:V + 1] = nxt
        out.put(uni.tobytes())
        for n in range(2, N + 1):
            lv = levels[n - 1]
            word, prob = np.asarray(lv["word"]), np.asarray(lv["logprob"])
            order = _kenlm_order(order, nxt, np.asarray(levels[n - 2]["starts"]), perm, word, alloc)
            if n == N:
                centers = quant.prob_centers(prob, alloc) if quant else None

                def top_fields(lo, hi):
                    idx = order[lo:hi]
                    p = prob[idx]
                    _check_values(path, n, p, None)
                    return [(perm[word[idx]], word_bits),
                            (_encode(p, centers, 0), quant.q_bits) if quant else (_bits31(p), 31)]
                _put_table(out, counts[n - 1], word_bits + (quant.q_bits if quant else 31), top_fields)
                break
            raw_bo = np.asarray(lv["backoff"])
            ctx = _contexts(levels, n + 1, ctx, path, alloc)
            is_ctx = _marked(counts[n - 1], ctx, alloc)
            nxt = _next(np.asarray(lv["starts"]), order, alloc)
            if pointer_bits is None:
                part, inline = b"", counts[n].bit_length()
            else:
                part, inline = _bhiksha(pos, counts[n - 1], nxt, pointer_bits)
            mask = np.uint64((1 << inline) - 1)
            if quant:
                centers = quant.prob_centers(prob, alloc), quant.backoff_centers(raw_bo, alloc)

            def fields(lo, hi):
                idx = order[lo:hi]
                p, b = prob[idx], raw_bo[idx]
                _check_values(path, n, p, b)
                bo = _with_extension(b, is_ctx[idx])
                if quant:
                    values = [(_backoff_codes(bo, centers[1]), quant.b_bits), (_encode(p, centers[0], 0), quant.q_bits)]
                else:
                    values = [(_bits31(p), 31), (bo.view(np.uint32), 32)]
                return [(perm[word[idx]], word_bits), *values, (nxt[lo:hi] & mask, inline)]
            value_bits = quant.q_bits + quant.b_bits if quant else 63
            out.put(part)
            pos += len(part) + _put_table(out, counts[n - 1], word_bits + value_bits + inline, fields,
                                          (int(nxt[-1]) & int(mask), inline))
        out.put(words)
        out.close(quant.header() if quant else b"")


class _Sink:
    """The file's parts, written as they are made: the quantizer's header (known at the end) is a
    placeholder filled in last; on an output that cannot seek (a pipe) with one, the parts after it wait
    in memory."""

    def __init__(self, f, head: bytes, quant_bytes: int):
        self.f, self.at, self.quant_bytes = f, len(head), quant_bytes
        self.held = [] if quant_bytes and not f.seekable() else None
        f.write(head)
        if self.held is None:
            f.write(b"\0" * quant_bytes)

    def put(self, part) -> None:
        if self.held is not None:
            self.held.append(part)
        else:
            self.f.write(part if isinstance(part, bytes) else memoryview(part).cast("B"))

    def close(self, quant_header: bytes) -> None:
        if len(quant_header) != self.quant_bytes:
            raise AssertionError("the quantizer's header is not the size reserved for it")
        if self.held is None:
            if quant_header:
                self.f.seek(self.at)
                self.f.write(quant_header)
        else:
            self.f.write(quant_header)
            for part in self.held:
                self.f.write(part if isinstance(part, bytes) else memoryview(part).cast("B"))
