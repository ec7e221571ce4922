"""KenLM's binary model files (``build_binary``, binary format version 5), read in place.

The file is memory-mapped and queried where it lies (``glm._kenlm.Scorer``): loading reads the header,
works out where each table starts from the n-gram counts (as KenLM does), checks every offset against
the file's size and reads the words stored at the end of the file.  ``to_model`` turns a binary back into
a glm model (an ARPA file's n-grams and values), for ``glm convert``.  The layout is described in
docs/formats.md, "KenLM binary files".
"""
from __future__ import annotations

import mmap
import os
import struct
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .files import ModelFormatError, Parts

PREFIX = b"mmap lm http://kheafield.com/code"
_VERSIONED = PREFIX + b" format version"
_INCOMPLETE = PREFIX + b" incomplete\n"
_MAGIC = _VERSIONED + b" 5\n\0"
# the test values after the magic bytes: floats 0, 1, -0.5; uint32 1, 2^32-1, 0; uint64 1
_SANITY = _MAGIC.ljust(56, b"\0") + struct.pack("<fffIIIQ", 0.0, 1.0, -0.5, 1, 0xFFFFFFFF, 0, 1)
_FIXED = struct.Struct("<B3xfIB3xI")       # order, probing multiplier, model type, has vocabulary, version
KINDS = {0: "probing", 1: "probing with rest costs", 2: "trie", 3: "trie, quantized",
         4: "trie, compressed pointers", 5: "trie, quantized, compressed pointers"}
MAX_ORDER = 16           # glm's scorers; KenLM's own default maximum is 6


def is_kenlm_binary(head: bytes) -> bool:
    """Whether the first 64 bytes of a file are those of a KenLM binary (or of one whose first bytes
    are damaged)."""
    return head.startswith(b"mmap lm") or PREFIX[8:] in head[:56]


def _align8(x: int) -> int:
    return -(-x // 8) * 8


def _buckets(entries: int, multiplier: float) -> int:
    """Buckets of a probing table for `entries` entries (KenLM multiplies in float32 and truncates)."""
    scaled = float(np.float32(multiplier) * np.float32(entries))
    return max(entries + 1, int(scaled))


def _chop_bits(max_offset: int, max_next: int, max_bits: int) -> int:
    """Pointer compression: how many high bits of the child pointers go to the offsets array (the
    number minimizing the array's size minus the bits saved, as KenLM computes it in int64)."""
    required = max_next.bit_length()
    best, lowest = 0, (1 << 63) - 1
    for chop in range(min(required, max_bits) + 1):
        change = (max_next >> (required - chop)) * 64 - max_offset * chop
        change = (change + (1 << 63)) % (1 << 64) - (1 << 63)
        if change < lowest:
            best, lowest = chop, change
    return best


class _File:
    """Reads of the mapped file that fail with a ModelFormatError naming the file."""

    def __init__(self, path: str, mm):
        self.path, self.mm, self.size = path, mm, len(mm)

    def error(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path}: {what}")

    def need(self, end: int, what: str) -> None:
        if end > self.size:
            raise self.error(f"truncated KenLM binary: {what} ends at byte {end}, the file has {self.size} "
                             "bytes")

    def u64(self, at: int) -> int:
        self.need(at + 8, "the header")
        return int.from_bytes(self.mm[at:at + 8], "little")

    def u32(self, at: int) -> int:
        self.need(at + 4, "the header")
        return int.from_bytes(self.mm[at:at + 4], "little")


def _header(f: _File) -> dict:
    mm = f.mm
    if mm[:len(_INCOMPLETE)] == _INCOMPLETE:
        raise f.error("a KenLM binary that did not finish building (build_binary failed); rebuild it")
    if mm[:len(_SANITY)] != _SANITY:
        if mm[:len(_VERSIONED)] == _VERSIONED:
            version = mm[len(_VERSIONED):len(_VERSIONED) + 8].split(b"\n")[0].strip()
            if version != b"5":
                raise f.error(f"KenLM binary format version {version.decode('latin-1')!r}; glm reads version "
                              "5 (kpu/kenlm since 2012): rebuild it with build_binary from the ARPA file")
        if len(mm) < len(_SANITY):
            raise f.error("truncated KenLM binary: the header is incomplete")
        raise f.error("a KenLM binary whose test values do not match (an old 32-bit file, another byte "
                      "order, or a damaged header): rebuild it with build_binary from the ARPA file")
    f.need(len(_SANITY) + _FIXED.size, "the header")
    order, multiplier, model_type, has_vocab, version = _FIXED.unpack_from(mm, len(_SANITY))
    if model_type not in KINDS:
        raise f.error(f"KenLM model type {model_type} is unknown (0-5 are probing, rest probing and tries)")
    if not 2 <= order <= MAX_ORDER:
        raise f.error(f"KenLM binary of order {order}; glm reads orders 2 to {MAX_ORDER}")
    trie = model_type >= 2
    if version != (1 if trie else 0):
        raise f.error(f"KenLM binary with {KINDS[model_type]} version {version}; glm reads version "
                      f"{1 if trie else 0}")
    if not trie and not (1.0 <= multiplier < 1e6):
        raise f.error(f"KenLM binary with probing multiplier {multiplier} (it must be >= 1)")
    if has_vocab > 1:
        raise f.error("damaged KenLM header (the vocabulary flag is not 0 or 1)")
    start = len(_SANITY) + _FIXED.size
    counts = [f.u64(start + 8 * i) for i in range(order)]
    if counts[0] < 1 or any(c >= 1 << 56 for c in counts):
        raise f.error(f"damaged KenLM header: n-gram counts {counts}")
    return dict(order=order, multiplier=float(multiplier), model_type=model_type, has_vocab=bool(has_vocab),
                counts=counts, header_size=_align8(start + 8 * order))


def _probing_layout(f: _File, h: dict) -> dict:
    counts, N, m = h["counts"], h["order"], h["multiplier"]
    rest = h["model_type"] == 1
    pos = h["header_size"]
    vocab_buckets = _buckets(counts[0], m)
    vocab = dict(offset=pos, table_offset=pos + 8, buckets=vocab_buckets)
    pos += 8 + 12 * vocab_buckets
    f.need(pos, "the vocabulary")
    if f.u32(vocab["offset"]) != 0:
        raise f.error(f"KenLM probing vocabulary of version {f.u32(vocab['offset'])}; glm reads version 0")
    bound = f.u32(vocab["offset"] + 4)
    if not 1 <= bound <= counts[0] + 1:
        raise f.error(f"damaged KenLM vocabulary: {bound} words for {counts[0]} unigrams")
    stride = 12 if rest else 8
    layout = dict(kind="probing", unigram_offset=pos, unigram_stride=stride, vocab_size=bound, tables=[])
    pos += (counts[0] + 1) * stride
    for n in range(2, N + 1):
        buckets = _buckets(counts[n - 1], m)
        stride = 12 if n == N else (20 if rest else 16)
        layout["tables"].append(dict(offset=pos, buckets=buckets, stride=stride))
        pos += buckets * stride
        f.need(pos, f"the {n}-gram table")
    layout.update(vocab=vocab, end=pos)
    return layout


def _trie_layout(f: _File, h: dict) -> dict:
    counts, N, kind = h["counts"], h["order"], h["model_type"]
    quantized, bhiksha = kind in (3, 5), kind in (4, 5)
    pos = h["header_size"]
    vocab = dict(offset=pos, table_offset=pos + 8, buckets=0)
    pos += 8 + 8 * counts[0]
    f.need(pos, "the vocabulary")
    bound = f.u64(vocab["offset"]) + 1
    if not 1 <= bound <= counts[0] + 1:
        raise f.error(f"damaged KenLM vocabulary: {bound} words for {counts[0]} unigrams")
    layout = dict(kind="trie", vocab=vocab, vocab_size=bound, tables=[], quantized=quantized, bhiksha=bhiksha)
    prob_bits = backoff_bits = 0
    if quantized:
        f.need(pos + 3, "the quantization header")
        qversion, prob_bits, backoff_bits = f.mm[pos], f.mm[pos + 1], f.mm[pos + 2]
        if qversion != 2:
            raise f.error(f"KenLM quantization of version {qversion}; glm reads version 2")
        if not (1 <= prob_bits <= 25 and 1 <= backoff_bits <= 25):
            raise f.error(f"damaged KenLM quantization header: {prob_bits} probability bits, {backoff_bits} "
                          "backoff bits (1 to 25)")
        bins, at = [], pos + 8
        for n in range(2, N + 1):
            pair = [(at, 1 << prob_bits)]
            at += 4 << prob_bits
            if n < N:
                pair.append((at, 1 << backoff_bits))
                at += 4 << backoff_bits
            bins.append(pair)
        layout.update(bin_offsets=bins, prob_bits=prob_bits, backoff_bits=backoff_bits)
        pos += (N - 2) * ((4 << prob_bits) + (4 << backoff_bits)) + (4 << prob_bits) + 8
        f.need(pos, "the quantization tables")
    layout.update(unigram_offset=pos, unigram_stride=16)
    pos += (counts[0] + 2) * 16
    f.need(pos, "the unigrams")
    word_bits = counts[0].bit_length()
    pointer_bits = None
    for n in range(2, N + 1):
        entries = counts[n - 1]
        lv = dict(entries=entries, max_vocab=counts[0], word_bits=word_bits, offsets_offset=0,
                  offsets_count=0, prob_bits=prob_bits, backoff_bits=backoff_bits)
        if n < N:
            max_next = counts[n]
            lv["next_count"] = max_next
            lv["quant_bits"] = prob_bits + backoff_bits if quantized else 63
            if bhiksha:
                f.need(pos + 2, f"the {n}-gram table")
                bversion, bits = f.mm[pos], f.mm[pos + 1]
                if bversion != 0:
                    raise f.error(f"KenLM pointer compression of version {bversion}; glm reads version 0")
                if pointer_bits is None:
                    pointer_bits = bits
                elif bits != pointer_bits:
                    raise f.error("damaged KenLM pointer compression headers (they differ)")
                required = max_next.bit_length()
                chop = _chop_bits(entries + 1, max_next, pointer_bits)
                lv["next_bits"] = required - chop
                lv["offsets_count"] = (max_next >> (required - chop)) + 1
                lv["offsets_offset"] = _align8(pos) + 8
                pos += 8 * (1 + lv["offsets_count"]) + 7
            else:
                lv["next_bits"] = max_next.bit_length()
        else:
            lv.update(next_count=0, next_bits=0, quant_bits=prob_bits if quantized else 31)
        lv["total_bits"] = word_bits + lv["quant_bits"] + lv["next_bits"]
        lv["offset"] = pos
        pos += ((1 + entries) * lv["total_bits"] + 7) // 8 + 8
        f.need(pos, f"the {n}-gram table")
        layout["tables"].append(lv)
    layout.update(end=pos, pointer_bits=pointer_bits)
    return layout


def _bins(f: _File, layout: dict) -> list | None:
    """The quantization bins of a quantized trie, checked and copied; bins that build_binary leaves
    empty (-inf, when a table has more bins than values) are never referenced by a sound file: they get
    the nearest finite center, so that a damaged index cannot give an infinite score."""
    if not layout.get("quantized"):
        return None
    out = []
    for n, pair in enumerate(layout["bin_offsets"], 2):
        arrays = []
        for k, (offset, count) in enumerate(pair):
            a = np.frombuffer(f.mm, np.float32, count, offset).copy()
            what = "probability" if k == 0 else "backoff"
            if np.isnan(a).any() or np.isposinf(a).any() or (k == 0 and (a > 0).any()):
                raise f.error(f"damaged KenLM quantization: a {what} bin of order {n} is NaN or out of range")
            finite = np.isfinite(a)
            if not finite.all():
                idx = np.flatnonzero(finite)
                if len(idx) == 0:
                    a[:] = 0.0
                else:
                    nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(a))), 0, len(idx) - 1)]
                    a[~finite] = a[nearest[~finite]]
            arrays.append(a)
        out.append((arrays[0], arrays[1] if len(arrays) > 1 else None))
    return out


def _words(f: _File, h: dict, layout: dict) -> tuple[bytes, np.ndarray]:
    """The words stored after the tables (NUL-terminated, in KenLM id order) and their offsets,
    checked against KenLM's vocabulary."""
    from .. import _kenlm
    if not h["has_vocab"]:
        raise f.error("a KenLM binary without its words (built with build_binary -v); glm needs them to map "
                      "text to ids: rebuild it without -v")
    data = bytes(f.mm[layout["end"]:])
    bound = layout["vocab_size"]
    if not data.startswith(b"<unk>\0"):
        raise f.error("damaged or truncated KenLM binary: the word list after the tables does not start "
                      "with <unk>")
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 0)
    if len(ends) != bound or ends[-1] != len(data) - 1:
        raise f.error(f"damaged or truncated KenLM binary: the word list after the tables holds "
                      f"{len(ends)} words, the vocabulary {bound}")
    offsets = np.zeros(bound + 1, dtype=np.uint64)
    offsets[1:] = ends + 1
    bad = _kenlm.check_words(data, offsets, f.mm, layout["kind"] == "probing",
                             layout["vocab"]["table_offset"], layout["vocab"]["buckets"])
    if bad >= 0:
        word = data[offsets[bad]:offsets[bad + 1] - 1]
        raise f.error(f"damaged KenLM binary: word {bad} ({word[:40]!r}) is not where KenLM's vocabulary puts it")
    return data, offsets


def _vocabulary(f: _File, data: bytes, offsets: np.ndarray):
    """glm's vocabulary (<unk>, <s>, </s>, then KenLM's other words in KenLM's order), the map from its
    ids to KenLM's and KenLM's ids of <s> and </s> (0 when the model lacks them)."""
    from .._vocab import VocabTable
    from ..vocab import Vocabulary
    table = VocabTable.new()
    ids = table.add_words(data, offsets)
    if np.bincount(ids).max(initial=0) > 1:
        raise f.error("damaged KenLM binary: a word is listed twice in the word list")
    perm = np.zeros(table.size, dtype=np.uint32)
    perm[ids] = np.arange(len(ids), dtype=np.uint32)
    return Vocabulary(table), perm, int(perm[1]), int(perm[2])


def read_kenlm(path) -> Parts:
    """Map a KenLM binary and check its layout; the model (``glm.model.KenLMModel``) scores from the
    mapped file."""
    from .. import _kenlm
    path = os.fspath(path)
    if sys.byteorder != "little":
        raise ModelFormatError(f"{path}: KenLM binaries are read on little-endian machines only")
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < len(_SANITY) + _FIXED.size:
            raise ModelFormatError(f"{path}: truncated KenLM binary: {size} bytes, less than its header")
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    f = _File(path, mm)
    h = _header(f)
    layout = _trie_layout(f, h) if h["model_type"] >= 2 else _probing_layout(f, h)
    bins = _bins(f, layout)
    vocab, perm, bos, eos = _vocabulary(f, *_words(f, h, layout))
    layout.update(order=h["order"], counts=h["counts"], bos=bos, eos=eos)
    scorer = _kenlm.Scorer(mm, layout, perm, bins, path)
    meta = dict(source="kenlm", kenlm_type=KINDS[h["model_type"]])
    if layout["kind"] == "probing":
        meta["probing_multiplier"] = h["multiplier"]
    if layout.get("quantized"):
        meta["quantization_bits"] = [layout["prob_bits"], layout["backoff_bits"]]
    if layout.get("bhiksha"):
        meta["pointer_bits"] = layout["pointer_bits"]
    return Parts("kenlm", dict(path=path, vocab=vocab, scorer=scorer, counts=h["counts"], meta=meta,
                               layout=layout, perm=perm))


# ------------------------------------------------------------------------------------------- dumps
def _inverse(perm: np.ndarray, vocab_size: int) -> np.ndarray:
    """KenLM id -> glm id."""
    inv = np.zeros(vocab_size, dtype=np.uint32)
    inv[perm[3:]] = np.arange(3, len(perm), dtype=np.uint32)
    if perm[1]:
        inv[perm[1]] = 1
    if perm[2]:
        inv[perm[2]] = 2
    return inv


def _no_extension(backoff: np.ndarray) -> np.ndarray:
    """KenLM's mark of an n-gram that is no context: a backoff of exactly -0.0."""
    return (backoff == 0) & np.signbit(backoff)


def _trie_sections(scorer, order: int, path: str) -> list:
    """(rows of KenLM ids, oldest first; log10 p; backoff) per order of a trie."""
    prob, backoff, _ = scorer.unigrams()
    sections = [(np.arange(len(prob), dtype=np.uint32).reshape(-1, 1), prob, backoff)]
    rows = sections[0][0]
    for n in range(2, order + 1):
        try:
            word, parent, prob, backoff = scorer.trie_level(n)
        except ValueError as exc:
            raise ModelFormatError(f"{path}: damaged KenLM binary: {exc}") from None
        if n == 2 and len(parent) and parent.max() >= len(rows):
            raise ModelFormatError(f"{path}: damaged KenLM binary: a bigram of a word outside the vocabulary")
        if len(word) and word.max() >= len(sections[0][1]):
            raise ModelFormatError(f"{path}: damaged KenLM binary: an {n}-gram of a word outside the vocabulary")
        rows = np.concatenate([word.reshape(-1, 1), rows[parent.astype(np.int64)]], axis=1)
        sections.append((rows, prob, backoff))
    return sections


def _probing_sections(scorer, order: int, path: str, quiet: bool) -> tuple[list, dict]:
    """The n-grams of a probing binary, which stores 64-bit hashes of n-grams, not their words: the
    n-grams of order n are found among the candidates x m y made of an (n-1)-gram x m that is a context
    (its backoff is not KenLM's -0.0 "no extension" mark) and an (n-1)-gram m y that extends to the left
    (the sign bit of its stored probability is clear), looked up by hash.  Every n-gram's context and
    suffix are stored (KenLM adds missing suffixes as blanks), so this finds every n-gram; the filled
    buckets of each table are counted to prove it.  Returns the sections and {order: probes}."""
    from ..threads import threads
    from ..progress import progress
    prob, backoff, left = scorer.unigrams()
    V = len(prob)
    sections = [(np.arange(V, dtype=np.uint32).reshape(-1, 1), prob, backoff)]
    keys = np.arange(V, dtype=np.uint64)
    context = ~_no_extension(backoff)
    # per order: the index of each n-gram's context and suffix in the order below (order 2: word ids)
    pre = suf = None
    cost = {}
    for n in range(2, order + 1):
        rows = sections[-1][0]
        count = len(rows)
        if n == 2:
            p_middle = np.zeros(count, dtype=np.int64)
            s_middle = np.zeros(count, dtype=np.int64)
            groups = 1
        else:
            p_middle, s_middle = suf.astype(np.int64), pre.astype(np.int64)
            groups = len(sections[-2][0])
        suffixes = np.flatnonzero(left).astype(np.int64)
        suffixes = suffixes[np.argsort(s_middle[suffixes], kind="stable")]
        group_start = np.zeros(groups + 1, dtype=np.int64)
        np.cumsum(np.bincount(s_middle[suffixes], minlength=groups), out=group_start[1:])
        sizes = np.diff(group_start)
        prefix_group = np.where(context, p_middle, -1).astype(np.int64)
        prefix_group[prefix_group >= 0] = np.where(sizes[prefix_group[prefix_group >= 0]] > 0,
                                                   prefix_group[prefix_group >= 0], -1)
        candidates = np.where(prefix_group >= 0, sizes[np.maximum(prefix_group, 0)], 0)
        total = int(candidates.sum())
        # prefix ranges of about equal work, joined on all threads
        bounds = np.searchsorted(np.cumsum(candidates), np.arange(1, 64 * threads()) * (total / (64 * threads())))
        bounds = np.unique(np.concatenate([[0], bounds, [count]]))
        first = np.ascontiguousarray(rows[:, 0])
        suffix_keys = np.ascontiguousarray(keys)
        filled = scorer.occupied(n)
        bits = int(min(33, max(16, (16 * filled).bit_length())))      # about 16 bits per key, at most 1 GB
        key_filter = scorer.key_filter(n, bits)
        with progress(total=total, desc=f"finding {n}-grams", unit="probe", quiet=quiet) as bar, \
                ThreadPoolExecutor(threads()) as ex:
            def work(lo_hi):
                res = scorer.probing_join(n, suffix_keys, first, prefix_group, group_start, suffixes,
                                          key_filter, bits, int(lo_hi[0]), int(lo_hi[1]))
                bar.update(int(candidates[lo_hi[0]:lo_hi[1]].sum()))
                return res
            parts = list(ex.map(work, zip(bounds[:-1], bounds[1:])))
        p = np.concatenate([r[0] for r in parts])
        s = np.concatenate([r[1] for r in parts])
        b = np.concatenate([r[2] for r in parts])
        cost[n] = (total, sum(int(r[3]) for r in parts))
        if len(b) > 1 and not np.diff(np.sort(b)).all():
            raise ModelFormatError(f"{path}: two different {n}-grams have the same hash in this KenLM binary; "
                                   "it cannot be dumped (score it instead)")
        if filled != len(b):
            raise ModelFormatError(f"{path}: damaged KenLM binary: {filled} filled buckets in the {n}-gram "
                                   f"table, {len(b)} found as n-grams of the stored words")
        keys, prob, backoff, left = scorer.probing_entries(n, b)
        context = ~_no_extension(backoff)
        sections.append((np.concatenate([first[p].reshape(-1, 1), sections[-1][0][s]], axis=1), prob, backoff))
        pre, suf = p, s
    return sections, cost


def dump(kmodel, quiet: bool = True) -> Parts:
    """The parts of a back-off model holding a KenLM binary's n-grams and values (dequantized), as in
    its ARPA file (``kmodel``: a ``glm.model.KenLMModel``)."""
    from .arpa import _levels_from_sections
    scorer, order, path = kmodel._scorer, kmodel.order, kmodel.path
    if kmodel.layout["kind"] == "trie":
        sections = _trie_sections(scorer, order, path)
        cost = None
    else:
        sections, cost = _probing_sections(scorer, order, path, quiet)
    inv = _inverse(kmodel.perm, len(sections[0][1]))
    glm_sections = []
    for n, (rows, prob, backoff) in enumerate(sections, 1):
        bad = ~(np.isfinite(prob) & (prob <= 0)) | ~np.isfinite(backoff)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelFormatError(f"{path}: damaged KenLM binary: an {n}-gram with log10 p {prob[i]} and "
                                   f"backoff {backoff[i]}")
        ids = inv[rows]
        glm_sections.append((np.ascontiguousarray(ids), np.ascontiguousarray(prob, dtype=np.float32),
                             (np.asarray(backoff, dtype=np.float32) + np.float32(0.0))))
    meta = dict(kmodel.meta, source="kenlm binary", kenlm_path=path)
    if cost:
        meta["dump_candidates"] = {str(k): list(v) for k, v in cost.items()}
    try:
        levels = _levels_from_sections(glm_sections, len(kmodel.vocab), path)
    except ModelFormatError as exc:
        raise ModelFormatError(str(exc).replace(f"{path}: ", f"{path}: damaged KenLM binary: ", 1)) from None
    return Parts("backoff", dict(vocab=kmodel.vocab, levels=levels, meta=meta))
