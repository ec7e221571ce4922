"""glm's binary model format: the query arrays as they are in memory, mapped back without parsing.

Layout: 8 magic bytes ``GLMBIN01``, a little-endian uint64 header length, a UTF-8 JSON header, then
the arrays, each starting at a multiple of 64 bytes.  The header lists every array (name, dtype, shape,
offset, XXH64 checksum) and the model's metadata (order, discounts, counts).  Loading maps the file
read-only: the operating system pages arrays in on first use and shares them between processes.

The schema of each kind of model is one entry of ``KINDS``: the arrays and header fields it writes,
the arrays it expects (name, dtype and shape, from the header and the other arrays' shapes), the cheap
checks made at every load and the full checks of ``verify``.  Loading checks the header in full (its
checksum, every field, every array's dtype, shape and place in the file) and the arrays of one entry per
word (O(vocabulary)); the large arrays are checked by ``verify`` (``glm verify``), and until then the
compiled lookups stay inside them whatever they hold (ext/_query.pyx, ext/_glm.pyx).
"""
from __future__ import annotations

import json
import math
import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._check import XXH64, first_decrease, first_outside, first_unsorted_child
from ..spill import release
from .files import ModelFormatError, Parts, atomic_output

MAGIC = b"GLMBIN01"
FORMAT = 1
ALIGN = 64
CHUNK = 64 << 20
EMPTY = 0xFFFFFFFF

LEVEL_ARRAYS = ("word", "logprob", "backoff", "starts")      # a back-off model's, per order
TABLE_ARRAYS = ("word", "starts", "alpha", "gamma")          # a GLM pattern table's (masks > 1)
QUANTIZED = {"alpha": np.float32, "gamma": np.float64}       # its values, and their dtype unquantized

# The header's checksum is its first field, so that its 16 digits sit at a fixed place: the XXH64 of the
# H header bytes with those digits replaced by '0'.
_SEAL = b'{"header_xxh64": "'
_ZEROS = "0" * 16
POW2 = "a power of two"         # a shape rule: a power of two (>= 1) of entries
ANY = "any"                     # a shape rule: any number of entries


# -- the schema of each kind ----------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """What the binary format stores for one kind of model (``glm.model.Model.kind``).

    arrays(model) -> [(name, array)] in file order; header(model) -> the kind's header fields;
    check_header(header) -> None or a ModelFormatError (every field the kind reads);
    expected(header, shapes) -> {name: (dtype, shape rule)}, every array the file must hold and nothing
    else (a shape rule is a tuple of ints, POW2 or ANY); check_small(arrays, header): value checks of
    the arrays of one entry per word (made at every load); parts(vocab, arrays, header) -> Parts;
    verify(arrays, header) -> [problem]: the full value checks (glm verify).
    """
    max_order: int
    arrays: Callable
    header: Callable
    check_header: Callable
    expected: Callable
    check_small: Callable
    parts: Callable
    verify: Callable


def _native(code: str) -> str:
    return np.dtype(code).str


def _vocab_expected(shapes) -> tuple[int, dict]:
    V = _dim(shapes, "vocab.offsets") - 1
    if V < 3:
        raise ModelFormatError("vocab.offsets: fewer than 3 words (<unk>, <s>, </s>)")
    return V, {"vocab.blob": (_native("u1"), (ANY,)), "vocab.offsets": (_native("u8"), (V + 1,)),
               "vocab.table": (_native("u4"), (POW2,))}


def _dim(shapes: dict, name: str) -> int:
    """The length of a one-dimensional array of the file (the schema derives sizes from them)."""
    if name not in shapes:
        raise ModelFormatError(f"array {name} missing")
    if len(shapes[name]) != 1:
        raise ModelFormatError(f"array {name}: shape {list(shapes[name])}, not one-dimensional")
    return shapes[name][0]


def _triples(value, what: str, count: int | None, normalized: bool) -> None:
    """Discount triples (D1, D2, D3+): finite numbers, and for normalized models 0 <= Dk <= k."""
    if not isinstance(value, (dict, list)) or (count is not None and len(value) not in (0, count)):
        raise ModelFormatError(f"{what}: expected {'a list' if count else 'a dict'} of discount triples")
    for key, d in value.items() if isinstance(value, dict) else enumerate(value, 1):
        if (not isinstance(d, list) or len(d) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in d)
                or (normalized and not all(0 <= x <= k for k, x in enumerate(d, 1)))):
            raise ModelFormatError(f"{what} of {key}: {d!r} is not D1 D2 D3+ with 0 <= Dk <= k")


# back-off models (MKN, ARPA): the levels of a suffix trie
def _backoff_arrays(model) -> list[tuple[str, np.ndarray]]:
    out = [("children.hash", model.child_index)]
    for n, lv in enumerate(model.levels, 1):
        out += [(f"{n}.{name}", np.ascontiguousarray(lv[name])) for name in LEVEL_ARRAYS if name in lv]
    return out


def _backoff_header(model) -> dict:
    return dict(discounts=[list(d) for d in (model.discounts or [])],
                unpruned_counts=list(model.unpruned_counts or []))


def _backoff_check_header(h: dict) -> None:
    N = h["order"]
    _triples(h.get("discounts"), "discounts", N, True)
    counts = h.get("unpruned_counts")
    if not isinstance(counts, list) or len(counts) not in (0, N) or not all(_count_like(c) for c in counts):
        raise ModelFormatError("unpruned_counts: expected [] or a count per order")


def _backoff_expected(h: dict, shapes: dict) -> dict:
    N = h["order"]
    V, out = _vocab_expected(shapes)
    out["children.hash"] = (_native("u4"), (POW2,))
    size = [V] + [_dim(shapes, f"{n}.word") for n in range(2, N + 1)]
    for n, c in enumerate(size, 1):
        if c >= EMPTY:
            raise ModelFormatError(f"level {n}: {c} n-grams, above the format's 2^32 - 1")
        if n > 1:
            out[f"{n}.word"] = (_native("u4"), (c,))
        out[f"{n}.logprob"] = (_native("f4"), (c,))
        if n < N:
            out[f"{n}.backoff"] = (_native("f4"), (c,))
            out[f"{n}.starts"] = (_native("u4"), (c + 1,))
    return out


def _backoff_check_small(arrays: dict, h: dict) -> None:
    _check_logprob(arrays, "1.logprob")
    if "1.backoff" in arrays:
        _check_backoff(arrays, "1.backoff")


def _check_logprob(arrays: dict, name: str) -> None:
    """log10 probabilities: numbers <= 0 (-inf, a probability of 0, included; lmplz writes it for
    zero discounts)."""
    bad = first_outside(arrays[name], -np.inf, 0.0)
    if bad >= 0:
        raise ModelFormatError(f"{name}[{bad}] = {float(arrays[name][bad])!r}: a log10 probability is a "
                               "number <= 0")


def _check_backoff(arrays: dict, name: str) -> None:
    bad = first_outside(arrays[name], -np.inf, float(np.finfo(np.float32).max))
    if bad >= 0:
        raise ModelFormatError(f"{name}[{bad}] = {float(arrays[name][bad])!r}: a log10 backoff is a number "
                               "below +inf")


def _backoff_parts(vocab, arrays: dict, header: dict) -> Parts:
    levels = [{name: arrays[f"{n}.{name}"] for name in LEVEL_ARRAYS if f"{n}.{name}" in arrays}
              for n in range(1, header["order"] + 1)]
    return Parts("backoff", dict(vocab=vocab, levels=levels,
                                 discounts=[tuple(d) for d in header["discounts"]] or None,
                                 counts=header["unpruned_counts"] or None, meta=header["meta"],
                                 child_index=arrays["children.hash"]))


def _trie_problems(arrays: dict, sizes: list[int], V: int, words, starts) -> list[str]:
    """The problems of a trie's structure: word ids below V; each starts array rising from 0 to the
    size of the next level, with the children of each entry sorted by word.  words(n) / starts(n):
    the array names of level n (None where there is none)."""
    out = []
    for n in range(1, len(sizes) + 1):
        w = words(n)
        if w is not None and (bad := first_outside(arrays[w], 0, V - 1)) >= 0:
            out.append(f"{w}[{bad}] = {arrays[w][bad]}: not a word id (below {V})")
        s = starts(n)
        if s is None:
            continue
        st = arrays[s]
        if st[0] != 0 or st[-1] != sizes[n] or (bad := first_decrease(st)) >= 0:
            out.append(f"{s}: does not rise from 0 to {sizes[n]}" + ("" if st[0] != 0 or st[-1] != sizes[n]
                                                                       else f" (at entry {bad})"))
        elif (bad := first_unsorted_child(st, arrays[words(n + 1)])) >= 0:
            out.append(f"{words(n + 1)}[{bad}]: the children of an entry are not sorted by word")
    return out


def _backoff_verify(arrays: dict, h: dict) -> list[str]:
    from .._query import trie_hash
    N = h["order"]
    sizes = [len(arrays["1.logprob"])] + [len(arrays[f"{n}.word"]) for n in range(2, N + 1)]
    out = _trie_problems(arrays, sizes, sizes[0], lambda n: f"{n}.word" if n > 1 else None,
                         lambda n: f"{n}.starts" if n < N else None)
    for n in range(1, N + 1):
        for name, check in ((f"{n}.logprob", _check_logprob), (f"{n}.backoff", _check_backoff)):
            if name in arrays:
                try:
                    check(arrays, name)
                except ModelFormatError as exc:
                    out.append(str(exc))
    if not out:
        levels = _backoff_parts(None, arrays, dict(h, discounts=[], unpruned_counts=[])).args["levels"]
        if not np.array_equal(trie_hash(levels), arrays["children.hash"]):
            out.append("children.hash: differs from the hash of the trie's children")
    return out


# Generalized Language Models: a table per skip pattern
def _glm_arrays(model, quantize: int | None = None) -> list[tuple[str, np.ndarray]]:
    """quantize: 8 or 16, the compact form (glm.quantize): each table's alpha and gamma stored as codes
    (uint8, uint16) into a codebook, ``{mask}.alpha_book`` and ``{mask}.gamma_book``, the word ids
    bit-packed (``word_bits`` each), the children offsets too (the bits of the table's size) and the
    children hash left out (made when the file is loaded);
    None: words as uint32, values as float32 and float64, and the hash."""
    from ..quantize import offset_bits, pack, quantize as quantized, word_bits
    tables = model.tables.tables
    out = [] if quantize else [("patterns.hash", model.hash[0])]
    out.append(("1.prob", tables[1]["prob"]))
    bits = word_bits(len(tables[1]["prob"]))
    for mask, t in sorted(tables.items()):
        if mask > 1:
            for k in TABLE_ARRAYS:
                if quantize and k in QUANTIZED:
                    codes, book = quantized(t[k], quantize)
                    out += [(f"{mask}.{k}", codes), (f"{mask}.{k}_book", book.astype(QUANTIZED[k]))]
                elif quantize and k == "word":
                    out.append((f"{mask}.word", pack(t[k], bits)))
                elif quantize and k == "starts":
                    out.append((f"{mask}.starts", pack(t[k], offset_bits(len(t["word"])))))
                else:
                    out.append((f"{mask}.{k}", np.ascontiguousarray(t[k], dtype=QUANTIZED.get(k))))
    for mask, t in sorted(model.tables.compat.top.items() if model.tables.compat is not None else ()):
        out += [(f"top.{mask}.{k}", v) for k, v in sorted(t.items())]
    return out


def _glm_header(model, quantize: int | None = None) -> dict:
    t = model.tables
    out = dict(kind="glm", method=model.method, weights={str(k): v for k, v in model.weights.items()},
               discounts={str(k): list(v) for k, v in t.discounts.items()},
               sizes={str(k): v for k, v in t.sizes.items()},
               searched={str(k): v for k, v in model.hash[1].items()})
    if quantize:               # (absent from unquantized files: they are as before)
        from ..quantize import word_bits
        out["quantize"] = quantize
        out["word_bits"] = word_bits(t.sizes[1])
    c = t.compat
    if c is not None:
        out["compat"] = dict(extra=c.extra, floor=c.floor, discounts={str(k): list(v) for k, v in c.discounts.items()})
    return out


def _masks(h: dict, field: str) -> dict:
    """{mask: value} of a header field keyed by pattern masks (decimal strings)."""
    value = h.get(field)
    if not isinstance(value, dict):
        raise ModelFormatError(f"{field}: expected an object keyed by pattern")
    out = {}
    for k, v in value.items():
        if not (isinstance(k, str) and k.isdigit() and int(k) % 2 == 1 and int(k) < 1 << h["order"]):
            raise ModelFormatError(f"{field}: {k!r} is not a pattern of an order-{h['order']} model")
        out[int(k)] = v
    return out


def _glm_check_header(h: dict) -> None:
    from ..generalized import COMPAT, METHODS, combination
    from ..patterns import history, parent
    if h.get("method") not in METHODS:
        raise ModelFormatError(f"method {h.get('method')!r} is not one of {', '.join(METHODS)}")
    sizes = _masks(h, "sizes")
    if 1 not in sizes or not all(_count_like(v) and v < EMPTY for v in sizes.values()):
        raise ModelFormatError("sizes: expected the number of n-grams of every pattern, 1 included")
    weights = _masks(h, "weights")
    for m, w in weights.items():
        if not (_number(w) or (isinstance(w, list) and all(_number(x) for x in w))):
            raise ModelFormatError(f"weights of {m:b}: {w!r} is not a weight or a list of them")
    try:
        kids = combination(h["order"], h["method"], weights)
    except ValueError as exc:
        raise ModelFormatError(f"weights: {exc}") from None
    for m in [*kids, *(c for ks in kids.values() for c, _ in ks)]:
        if m not in sizes:
            raise ModelFormatError(f"sizes: pattern {m:b}, which the model combines, is missing")
    for m in sizes:
        if m > 1 and not (parent(m) in sizes and history(m)[1] in sizes):
            raise ModelFormatError(f"sizes: pattern {m:b} without its parent or history pattern")
    if "quantize" in h and not (_count_like(h["quantize"]) and h["quantize"] in (8, 16)):
        raise ModelFormatError(f"quantize: {h['quantize']!r} bits, not 8 or 16")
    if "quantize" in h and h.get("compat") is not None:
        raise ModelFormatError("quantize: the 2014 toolkit's models are not quantized")
    if "quantize" in h and not (_count_like(h.get("word_bits")) and 1 <= h["word_bits"] <= 32
                                and sizes[1] <= 1 << h["word_bits"]):
        raise ModelFormatError(f"word_bits: {h.get('word_bits')!r}, not the bits of a word id of "
                               f"{sizes[1]} words (1 to 32)")
    normalized = h["method"] not in COMPAT
    _triples(h.get("discounts"), "discounts", None, normalized)
    if "searched" in h:
        small = _masks(h, "searched")
        if set(small) != set(sizes) - {1} or not all(_count_like(v) and v < EMPTY for v in small.values()):
            raise ModelFormatError("searched: expected a children range size per pattern but 1")
    compat = h.get("compat")
    if compat is not None:
        if (not isinstance(compat, dict) or not all(_number(compat.get(k)) and math.isfinite(compat[k])
                                                    and compat[k] >= 0 for k in ("extra", "floor"))):
            raise ModelFormatError("compat: expected extra and floor, numbers >= 0")
        _triples(compat.get("discounts"), "compat discounts", None, False)
        if h["order"] < 2 or any((1 << L) - 1 not in sizes for L in range(2, h["order"])):
            raise ModelFormatError("compat: the tops need every contiguous pattern")


def _glm_expected(h: dict, shapes: dict) -> dict:
    from ..patterns import history, parent
    sizes = {int(k): v for k, v in h["sizes"].items()}
    V, out = _vocab_expected(shapes)
    if sizes[1] != V:
        raise ModelFormatError(f"sizes: pattern 1 has {sizes[1]} entries, the vocabulary {V} words")
    if "quantize" not in h:            # (a compact file has no hash: it is made when the file is loaded)
        out["patterns.hash"] = (_native("u4"), (POW2,))
    out["1.prob"] = (_native("f8"), (V,))
    for m in sorted(sizes)[1:]:
        out[f"{m}.word"] = (_native("u4"), (sizes[m],))
        out[f"{m}.starts"] = (_native("u4"), (sizes[parent(m)] + 1,))
        out[f"{m}.alpha"] = (_native("f4"), (sizes[m],))
        out[f"{m}.gamma"] = (_native("f8"), (sizes[history(m)[1]],))
        if "quantize" in h:          # codes, and their codebooks (at least one center, at most 2^bits)
            from ..quantize import offset_bits, packed_size
            out[f"{m}.word"] = (_native("u1"), (packed_size(sizes[m], h["word_bits"]),))
            out[f"{m}.starts"] = (_native("u1"), (packed_size(sizes[parent(m)] + 1, offset_bits(sizes[m])),))
            code = _native("u1" if h["quantize"] == 8 else "u2")
            for k in QUANTIZED:
                dtype, shape = out[f"{m}.{k}"]
                out[f"{m}.{k}"] = (code, shape)
                out[f"{m}.{k}_book"] = (dtype, (ANY,))
                book = _dim(shapes, f"{m}.{k}_book")
                if not 1 <= book <= 1 << h["quantize"]:
                    raise ModelFormatError(f"array {m}.{k}_book: {book} centers, not 1 to {1 << h['quantize']}")
    if h.get("compat") is not None:
        out["top.1.prob"] = (_native("f8"), (V,))
        for L in range(2, h["order"]):
            m = (1 << L) - 1
            out[f"top.{m}.alpha"] = (_native("f4"), (sizes[m],))
            out[f"top.{m}.gamma"] = (_native("f8"), (sizes[history(m)[1]],))
    return out


def _glm_check_small(arrays: dict, h: dict) -> None:
    for name in ("1.prob", "top.1.prob"):
        if name in arrays and (bad := first_outside(arrays[name], 0.0, 1.0)) >= 0:
            raise ModelFormatError(f"{name}[{bad}] = {float(arrays[name][bad])!r}: a probability is in "
                                   "[0, 1]")


def _glm_parts(vocab, arrays: dict, header: dict) -> Parts:
    from ..generalized import Tables
    masks = sorted(int(k) for k in header["sizes"])
    tables = {1: dict(prob=arrays["1.prob"])}
    for mask in masks[1:]:
        tables[mask] = {k: arrays[f"{mask}.{k}"] for k in TABLE_ARRAYS}
        if "quantize" in header:
            from ..patterns import parent
            from ..quantize import Dequantized, Unpacked, offset_bits
            for k in QUANTIZED:
                tables[mask][k] = Dequantized(arrays[f"{mask}.{k}"], arrays[f"{mask}.{k}_book"])
            n = header["sizes"][str(mask)]
            tables[mask]["word"] = Unpacked(arrays[f"{mask}.word"], header["word_bits"], n)
            tables[mask]["starts"] = Unpacked(arrays[f"{mask}.starts"], offset_bits(n),
                                              header["sizes"][str(parent(mask))] + 1)
    compat = header.get("compat")
    if compat is not None:                      # a model of the 2014 toolkit
        from ..paper.compat import Compat
        top = {}
        for key, arr in arrays.items():
            if key.startswith("top."):
                _, mask, k = key.split(".")
                top.setdefault(int(mask), {})[k] = arr
        compat = Compat(compat["extra"], compat["floor"], top,
                        {int(k): tuple(v) for k, v in compat["discounts"].items()})
    t = Tables(header["order"], header["method"], tables,
               {int(k): tuple(v) for k, v in header["discounts"].items()},
               {int(k): v for k, v in header["sizes"].items()}, compat=compat)
    # (files written before the header had "searched": ranges of up to 32 searched in every pattern)
    small = {int(k): v for k, v in header.get("searched", {str(m): 32 for m in masks[1:]}).items()}
    return Parts("generalized", dict(vocab=vocab, tables=t, meta=header["meta"],
                                     weights={int(k): v for k, v in header["weights"].items()},
                                     hash_table=(arrays["patterns.hash"], small) if "patterns.hash" in arrays
                                     else None))


def _glm_verify(arrays: dict, h: dict) -> list[str]:
    from .._glm import pattern_hash
    from ..patterns import parent
    sizes = {int(k): v for k, v in h["sizes"].items()}
    masks = sorted(sizes)[1:]
    out = []
    V = sizes[1]
    if "quantize" in h:        # (a compact file: its word ids and offsets unpacked)
        from ..quantize import Unpacked, offset_bits
        arrays = dict(arrays, **{f"{m}.word": np.asarray(Unpacked(arrays[f"{m}.word"], h["word_bits"], sizes[m]))
                                 for m in masks})
        arrays.update({f"{m}.starts": np.asarray(Unpacked(arrays[f"{m}.starts"], offset_bits(sizes[m]),
                                                          sizes[parent(m)] + 1)) for m in masks})
    for m in masks:            # each pattern's table: the children of the parent pattern's n-grams
        out += _trie_problems(arrays, [sizes[parent(m)], sizes[m]], V, lambda n: f"{m}.word" if n == 2 else None,
                              lambda n: f"{m}.starts" if n == 1 else None)
    f32, f64 = float(np.finfo(np.float32).max), float(np.finfo(np.float64).max)
    for name, arr in arrays.items():
        kind = name.rsplit(".", 1)[1]
        if "quantize" in h and kind in QUANTIZED:       # codes: below the size of their codebook
            book = len(arrays[f"{name}_book"])
            if len(arr) and (bad := int(np.argmax(arr >= book)) if arr.max() >= book else -1) >= 0:
                out.append(f"{name}[{bad}] = {arr[bad]}: not a code of {name}_book ({book} centers)")
            continue
        kind = kind.removesuffix("_book")
        rule = {"alpha": (0.0, f32, False), "gamma": (0.0, f64, True), "prob": (0.0, 1.0, False)}.get(kind)
        if rule is not None and (bad := first_outside(arr, *rule)) >= 0:
            out.append(f"{name}[{bad}] = {float(arr[bad])!r}: not in [{rule[0]}, {rule[1]:.4g}]"
                       + (" (nor NaN, an unseen history)" if rule[2] else ""))
    if not out and "patterns.hash" in arrays:
        parts = _glm_parts(None, arrays, h)
        hash_table, small = parts.args["hash_table"]
        if not np.array_equal(pattern_hash(parts.args["tables"].tables, small), hash_table):
            out.append("patterns.hash: differs from the hash of the pattern tables")
    return out


KINDS = {
    "backoff": Kind(16, _backoff_arrays, _backoff_header, _backoff_check_header, _backoff_expected,
                    _backoff_check_small, _backoff_parts, _backoff_verify),
    "generalized": Kind(8, _glm_arrays, _glm_header, _glm_check_header, _glm_expected, _glm_check_small,
                        _glm_parts, _glm_verify),
}
_HEADER_KIND = {None: "backoff", "glm": "generalized"}      # the header's "kind" -> KINDS


def _kind_of(header: dict) -> str:
    kind = header.get("kind")
    if kind not in _HEADER_KIND:
        raise ModelFormatError(f"unknown kind of model {kind!r}")
    return _HEADER_KIND[kind]


def _count_like(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# -- writing --------------------------------------------------------------------------------------
def arrays_of(model, quantize: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, array) of everything ``model`` stores, in file order (quantize: a GLM's values as 8- or
    16-bit codes, glm.quantize)."""
    blob, offsets, table = model.vocab.table.arrays()
    own = KINDS[model.kind].arrays(model, **_quantized(model, quantize))
    return [("vocab.blob", blob), ("vocab.offsets", offsets), ("vocab.table", table)] + own


def header_of(model, quantize: int | None = None) -> dict:
    """The header fields of ``model``'s kind (besides format, order, arrays and meta)."""
    return KINDS[model.kind].header(model, **_quantized(model, quantize))


def _quantized(model, quantize: int | None) -> dict:
    """The keyword of the kind's writers: quantize, for a GLM only (a ValueError for other kinds)."""
    if not quantize:
        return {}
    if model.kind != "generalized":
        raise ValueError("quantize: glm's binary format quantizes GLM models only")
    from ..quantize import check_bits
    return dict(quantize=check_bits(quantize))


def _header(model, entries: list, pad_to: int = 0, quantize: int | None = None) -> bytes:
    """The header bytes (blank-padded to pad_to), sealed with their checksum."""
    meta = dict(model.meta, quantized=quantize) if quantize else model.meta     # (glm.quantize: capped)
    header = dict(header_xxh64=_ZEROS, format=FORMAT, order=model.order, arrays=entries, meta=meta,
                  **header_of(model, quantize))
    text = json.dumps(header).encode("utf-8")
    return _seal(text + b" " * max(0, pad_to - len(text)))


def _seal(text: bytes) -> bytes:
    """text with its checksum written in place of the zeros after _SEAL."""
    digits = XXH64(text).hexdigest().encode()
    return text[:len(_SEAL)] + digits + text[len(_SEAL) + 16:]


def _write_array(f, arr: np.ndarray) -> str:
    """Write arr's bytes; returns their XXH64 (hex)."""
    data = memoryview(np.ascontiguousarray(arr)).cast("B")
    h = XXH64()
    for i in range(0, len(data), CHUNK):        # file-backed arrays give their pages back
        h.update(data[i:i + CHUNK])
        f.write(data[i:i + CHUNK])
        release(arr, i, i + CHUNK)
    return h.hexdigest()


def _entry(name: str, arr: np.ndarray, offset: int, digest: str = _ZEROS) -> dict:
    return dict(name=name, dtype=arr.dtype.str, shape=list(arr.shape), offset=offset, xxh64=digest)


def write_binary(model, path, quantize: int | None = None) -> None:
    """Write ``model`` as a binary file; quantize: 8 or 16, a GLM's values as codes (glm.quantize)."""
    arrays = arrays_of(model, quantize)
    entries, offset = [], 0
    for name, arr in arrays:
        entries.append(_entry(name, arr, offset))
        offset += -(-arr.nbytes // ALIGN) * ALIGN
    size = len(_header(model, entries, quantize=quantize))       # (the checksums have a fixed width)
    start = -(-(len(MAGIC) + 8 + size) // ALIGN) * ALIGN
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + size.to_bytes(8, "little"))
        f.seek(start)
        for (name, arr), entry in zip(arrays, entries):
            f.write(b"\0" * (start + entry["offset"] - f.tell()))
            entry["xxh64"] = _write_array(f, arr)
        text = _header(model, entries, quantize=quantize)
        assert len(text) == size
        f.seek(len(MAGIC) + 8)
        f.write(text)
        f.write(b"\0" * (start - f.tell()))


class StreamingBinary:
    """A binary model file written while the model is built (a context manager): ``park`` writes a
    finished array into the file at once and returns a read-only map of it, so that it leaves the
    process's memory; ``finish(model)`` writes the arrays not parked and the header, which goes into
    space reserved at the start (JSON padded with blanks: the format is unchanged).  The file is
    renamed into place when the block ends without error, as every model file."""

    RESERVE = (256 << 10) - len(MAGIC) - 8        # header bytes (order 8: under 100 KB); data at 256 KiB

    def __init__(self, path, scratch=None):
        self.path, self.scratch = path, scratch
        self.parked = {}                               # (data address, bytes) -> (offset, checksum)

    def __enter__(self) -> "StreamingBinary":
        self._out = atomic_output(self.path)
        self._f = open(self._out.__enter__(), "w+b")
        self.start = len(MAGIC) + 8 + self.RESERVE
        self._f.seek(self.start)
        return self

    def __exit__(self, *exc):
        self._f.close()
        return self._out.__exit__(*exc)

    def _append(self, arr: np.ndarray, align: int) -> tuple[int, str]:
        pos = -(-self._f.tell() // align) * align
        self._f.write(b"\0" * (pos - self._f.tell()))
        digest = _write_array(self._f, arr)
        return pos - self.start, digest

    def park(self, arr: np.ndarray) -> np.ndarray:
        """As ``spill.park``, into the model file itself (where the array is written anyway)."""
        from ..spill import PAGE, map_array, worth_parking
        if not worth_parking(arr):
            return arr
        offset, digest = self._append(arr, PAGE)
        self._f.flush()
        out = map_array(self._f.fileno(), self.start + offset, arr, self.scratch)
        self.parked[(out.__array_interface__["data"][0], out.nbytes)] = offset, digest
        return out

    def finish(self, model) -> None:
        entries = []
        for name, arr in arrays_of(model):
            placed = self.parked.get((arr.__array_interface__["data"][0], arr.nbytes)) if arr.nbytes else None
            offset, digest = placed if placed is not None else self._append(arr, ALIGN)
            entries.append(_entry(name, arr, offset, digest))
        text = _header(model, entries, pad_to=self.RESERVE)
        if len(text) > self.RESERVE:
            raise ValueError(f"{self.path}: model header of {len(text)} bytes does not fit the reserved space")
        self._f.seek(0)
        self._f.write(MAGIC + self.RESERVE.to_bytes(8, "little") + text)


# -- reading --------------------------------------------------------------------------------------
@dataclass
class Layout:
    """A binary model file's header, checked, and its arrays mapped read-only (by name)."""
    path: str
    header: dict
    kind: str
    arrays: dict
    size: int


def _check_entries(header: dict, data_start: int, file_size: int) -> None:
    """Every array entry well-formed, inside the file, 64-byte aligned, without overlaps."""
    arrays = header.get("arrays")
    if not isinstance(arrays, list):
        raise ModelFormatError("the header has no list of arrays")
    spans, names = [], set()
    for e in arrays:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or e["name"] in names:
            raise ModelFormatError(f"array entry {str(e)[:80]}: no name, or a name listed twice")
        name = e["name"]
        names.add(name)
        shape, offset = e.get("shape"), e.get("offset")
        if (not isinstance(shape, list) or not all(_count_like(d) and d < 1 << 48 for d in shape)
                or not _count_like(offset) or offset % ALIGN):
            raise ModelFormatError(f"array {name}: bad shape {shape!r} or offset {offset!r}")
        try:
            itemsize = np.dtype(e.get("dtype")).itemsize
        except (TypeError, ValueError):
            raise ModelFormatError(f"array {name}: bad dtype {e.get('dtype')!r}") from None
        if "xxh64" in e and not (isinstance(e["xxh64"], str) and len(e["xxh64"]) == 16):
            raise ModelFormatError(f"array {name}: bad checksum field")
        nbytes = math.prod(shape) * itemsize
        if data_start + offset + nbytes > file_size:
            raise ModelFormatError(f"array {name} ends beyond the end of the file (truncated file?)")
        spans.append((offset, offset + nbytes, name))
    spans.sort()
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise ModelFormatError(f"arrays {a} and {b} overlap")


def _check_header(header, file_size: int, data_start: int) -> str:
    """The kind of a binary file's header after checking every field; ModelFormatError otherwise."""
    if not isinstance(header, dict):
        raise ModelFormatError("corrupt header (not a JSON object)")
    if header.get("format") != FORMAT:
        raise ModelFormatError(f"a glm binary of format {header.get('format')!r}, not {FORMAT}; rebuild it "
                               "or convert it from the ARPA file")
    kind = _kind_of(header)
    order = header.get("order")
    top = KINDS[kind].max_order
    if not (_count_like(order) and 1 <= order <= top):
        raise ModelFormatError(f"order {order!r} is not between 1 and {top}")
    meta = header.get("meta")
    if not isinstance(meta, dict):
        raise ModelFormatError("meta: expected a JSON object")
    if "order" in meta and meta["order"] != order:
        raise ModelFormatError(f"the header's order {order} differs from meta's {meta['order']!r}")
    _check_entries(header, data_start, file_size)
    KINDS[kind].check_header(header)
    return kind


def _expect(kind: str, header: dict) -> None:
    """Every array the kind expects present with its dtype and shape, and no other."""
    shapes = {e["name"]: tuple(e["shape"]) for e in header["arrays"]}
    expected = KINDS[kind].expected(header, shapes)
    for e in header["arrays"]:
        name = e["name"]
        if name not in expected:
            raise ModelFormatError(f"array {name} is not part of a {kind} model of order {header['order']}")
        dtype, rule = expected[name]
        if e["dtype"] != dtype:
            raise ModelFormatError(f"array {name}: dtype {e['dtype']}, expected {dtype}")
        shape = tuple(e["shape"])
        if len(shape) != len(rule) or not all(r == ANY or (r == POW2 and d >= 1 and d & (d - 1) == 0) or d == r
                                              for d, r in zip(shape, rule)):
            raise ModelFormatError(f"array {name}: shape {list(shape)}, expected "
                                   f"{[r if isinstance(r, int) else r for r in rule]}")
    missing = sorted(set(expected) - set(shapes))
    if missing:
        raise ModelFormatError(f"array {missing[0]} missing")


def open_binary_model(path) -> Layout:
    """The checked header and the mapped arrays of a binary model file (every check of a load)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ModelFormatError(f"{path}: not a glm binary model")
        file_size = os.fstat(f.fileno()).st_size
        size = int.from_bytes(f.read(8), "little")
        if not 2 <= size <= file_size - len(MAGIC) - 8:
            raise ModelFormatError(f"{path}: corrupt header (length {size} in a file of {file_size} bytes)")
        text = f.read(size)
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        if text.startswith(_SEAL) and _seal(text[:len(_SEAL)] + _ZEROS.encode() + text[len(_SEAL) + 16:]) != text:
            raise ModelFormatError("the header's checksum does not match: the header is damaged")
        try:
            header = json.loads(text)
        except (ValueError, RecursionError):
            raise ModelFormatError("corrupt header (not JSON)") from None
        start = -(-(len(MAGIC) + 8 + size) // ALIGN) * ALIGN
        kind = _check_header(header, file_size, start)
        _expect(kind, header)
        arrays = {}
        for e in header["arrays"]:
            dtype = np.dtype(e["dtype"])
            arrays[e["name"]] = np.frombuffer(mm, dtype=dtype, count=math.prod(e["shape"]),
                                              offset=start + e["offset"]).reshape(e["shape"])
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from None
    except (KeyError, ValueError, TypeError, OverflowError) as exc:   # (a check missing above: still clean)
        raise ModelFormatError(f"{path}: damaged header ({type(exc).__name__}: {exc})") from None
    return Layout(path, header, kind, arrays, file_size)


def read_binary(path) -> Parts:
    """The parts of the model in a glm binary file, its arrays mapped read-only: the header is checked
    in full, and the arrays of one entry per word; ``verify`` checks the rest."""
    from .._vocab import VocabTable
    from ..vocab import Vocabulary
    layout = open_binary_model(path)
    arrays, header = layout.arrays, layout.header
    try:
        try:
            table = VocabTable.from_arrays(arrays["vocab.blob"], arrays["vocab.offsets"], arrays["vocab.table"])
        except ValueError as exc:
            raise ModelFormatError(str(exc)) from None
        KINDS[layout.kind].check_small(arrays, header)
        return KINDS[layout.kind].parts(Vocabulary(table), arrays, header)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{layout.path}: {exc}") from None
    except (KeyError, ValueError, TypeError) as exc:     # (a check missing above: still a clean error)
        raise ModelFormatError(f"{layout.path}: damaged header ({type(exc).__name__}: {exc})") from None


def _digest(arr: np.ndarray) -> str:
    h = XXH64()
    data = memoryview(arr).cast("B") if arr.nbytes else b""
    for i in range(0, len(data), CHUNK):
        h.update(data[i:i + CHUNK])
        release(arr, i, i + CHUNK)
    return h.hexdigest()


def verify_binary(path, threads: int | None = None) -> dict:
    """Check a binary model file in full: every array's checksum (files written before checksums
    existed have none) and every value (word ids, trie structure, probabilities, the hashes).

    Returns
    -------
    dict
        ``problems`` (a list of messages; empty when the file is sound), ``arrays``, ``bytes``,
        ``checksums`` (whether the file has them) and ``seconds``.

    Raises
    ------
    ModelFormatError
        A file that does not even load (its header or layout is damaged).
    """
    from ..threads import count, threads as default_threads
    t0 = time.perf_counter()
    layout = open_binary_model(path)
    entries = {e["name"]: e for e in layout.header["arrays"]}
    checksums = all("xxh64" in e for e in entries.values())
    problems = []
    if checksums:
        # the largest first, spread over the threads (XXH64 releases the GIL)
        names = sorted(entries, key=lambda n: -layout.arrays[n].nbytes)
        with ThreadPoolExecutor(default_threads() if threads is None else count("threads", threads)) as ex:
            for name, got in zip(names, ex.map(lambda n: _digest(layout.arrays[n]), names)):
                if got != entries[name]["xxh64"]:
                    problems.append(f"{name}: checksum {got} differs from the stored {entries[name]['xxh64']}: "
                                    "the array is damaged")
    try:
        read_binary(path)
        problems += KINDS[layout.kind].verify(layout.arrays, layout.header)
    except ModelFormatError as exc:
        problems.append(str(exc).removeprefix(f"{layout.path}: "))
    return dict(problems=problems, arrays=len(entries), bytes=layout.size, checksums=checksums,
                seconds=time.perf_counter() - t0)
