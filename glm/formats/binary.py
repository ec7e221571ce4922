"""glm's binary model format: the query arrays as they are in memory, mapped back without parsing.

Layout: 8 magic bytes ``GLMBIN01``, a little-endian uint64 header length, a UTF-8 JSON header, then
the arrays, each starting at a multiple of 64 bytes.  The header lists every array (name, dtype, shape,
offset) and the model's metadata (order, discounts, counts).  Loading maps the file read-only: the
operating system pages arrays in on first use and shares them between processes.
"""
from __future__ import annotations

import json
import mmap

import numpy as np

from ..spill import release
from . import ModelFormatError, Parts, atomic_output

MAGIC = b"GLMBIN01"
ALIGN = 64
CHUNK = 64 << 20


LEVEL_ARRAYS = ("word", "logprob", "backoff", "starts")      # a back-off model's, per order
TABLE_ARRAYS = ("word", "starts", "alpha", "gamma")          # a GLM pattern table's (masks > 1)


# -- the schema: which arrays and header fields each kind of model stores ----------------------------
def _backoff_arrays(model) -> list[tuple[str, np.ndarray]]:
    out = [("children.hash", model.child_index)]
    for n, lv in enumerate(model.levels, 1):
        out += [(f"{n}.{name}", np.ascontiguousarray(lv[name])) for name in LEVEL_ARRAYS if name in lv]
    return out


def _backoff_header(model) -> dict:
    return dict(discounts=[list(d) for d in (model.discounts or [])],
                unpruned_counts=list(model.unpruned_counts or []))


def _backoff_parts(vocab, arrays: dict, header: dict) -> Parts:
    if "children.hash" not in arrays:
        raise ValueError("children.hash missing")
    levels = [{name: arrays[f"{n}.{name}"] for name in LEVEL_ARRAYS if f"{n}.{name}" in arrays}
              for n in range(1, header["order"] + 1)]
    return Parts("backoff", dict(vocab=vocab, levels=levels,
                                 discounts=[tuple(d) for d in header["discounts"]] or None,
                                 counts=header["unpruned_counts"] or None, meta=header["meta"],
                                 child_index=arrays["children.hash"]))


def _glm_arrays(model) -> list[tuple[str, np.ndarray]]:
    tables = model.tables.tables
    out = [("patterns.hash", model.hash[0]), ("1.prob", tables[1]["prob"])]
    for mask, t in sorted(tables.items()):
        if mask > 1:
            out += [(f"{mask}.{k}", np.ascontiguousarray(t[k])) for k in TABLE_ARRAYS]
    for mask, t in sorted((model.tables.compat or {}).get("top", {}).items()):
        out += [(f"top.{mask}.{k}", v) for k, v in sorted(t.items())]
    return out


def _glm_header(model) -> dict:
    t = model.tables
    out = dict(kind="glm", method=model.method, weights={str(k): v for k, v in model.weights.items()},
               discounts={str(k): list(v) for k, v in t.discounts.items()},
               sizes={str(k): v for k, v in t.sizes.items()},
               searched={str(k): v for k, v in model.hash[1].items()})
    c = t.compat
    if c is not None:
        out["compat"] = dict(extra=c["extra"], floor=c["floor"],
                             discounts={str(k): list(v) for k, v in c["discounts"].items()})
    return out


def _glm_parts(vocab, arrays: dict, header: dict) -> Parts:
    from ..generalized import Tables
    masks = sorted(int(k) for k in header["sizes"])
    tables = {1: dict(prob=arrays["1.prob"])}
    for mask in masks[1:]:
        tables[mask] = {k: arrays[f"{mask}.{k}"] for k in TABLE_ARRAYS}
    compat = header.get("compat")
    if compat is not None:
        top = {}
        for key, arr in arrays.items():
            if key.startswith("top."):
                _, mask, k = key.split(".")
                top.setdefault(int(mask), {})[k] = arr
        compat = dict(compat, top=top, discounts={int(k): tuple(v) for k, v in compat["discounts"].items()})
    t = Tables(header["order"], header["method"], tables,
               {int(k): tuple(v) for k, v in header["discounts"].items()},
               {int(k): v for k, v in header["sizes"].items()}, compat=compat)
    # (files written before the header had "searched": ranges of up to 32 searched in every pattern)
    small = {int(k): v for k, v in header.get("searched", {str(m): 32 for m in masks[1:]}).items()}
    return Parts("generalized", dict(vocab=vocab, tables=t, meta=header["meta"],
                                     weights={int(k): v for k, v in header["weights"].items()},
                                     hash_table=(arrays["patterns.hash"], small)))


def arrays_of(model) -> list[tuple[str, np.ndarray]]:
    """(name, array) of everything ``model`` stores, in file order."""
    blob, offsets, table = model.vocab.table.arrays()
    own = _glm_arrays(model) if model.kind == "generalized" else _backoff_arrays(model)
    return [("vocab.blob", blob), ("vocab.offsets", offsets), ("vocab.table", table)] + own


def header_of(model) -> dict:
    """The header fields of ``model``'s kind (besides format, order, arrays and meta)."""
    return _glm_header(model) if model.kind == "generalized" else _backoff_header(model)


def _header(model, entries: list) -> bytes:
    header = dict(format=1, order=model.order, arrays=entries, meta=model.meta, **header_of(model))
    return json.dumps(header).encode("utf-8")


def _write_array(f, arr: np.ndarray) -> None:
    data = memoryview(np.ascontiguousarray(arr)).cast("B")
    for i in range(0, len(data), CHUNK):        # file-backed arrays give their pages back
        f.write(data[i:i + CHUNK])
        release(arr, i, i + CHUNK)


def write_binary(model, path) -> None:
    arrays = arrays_of(model)
    entries, offset = [], 0
    for name, arr in arrays:
        entries.append(dict(name=name, dtype=arr.dtype.str, shape=list(arr.shape), offset=offset))
        offset += -(-arr.nbytes // ALIGN) * ALIGN
    text = _header(model, entries)
    start = -(-(len(MAGIC) + 8 + len(text)) // ALIGN) * ALIGN
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + len(text).to_bytes(8, "little") + text)
        f.write(b"\0" * (start - f.tell()))
        for (name, arr), entry in zip(arrays, entries):
            f.write(b"\0" * (start + entry["offset"] - f.tell()))
            _write_array(f, arr)


class StreamingBinary:
    """A binary model file written while the model is built (a context manager): ``park`` writes a
    finished array into the file at once and returns a read-only map of it, so that it leaves the
    process's memory; ``finish(model)`` writes the arrays not parked and the header, which goes into
    space reserved at the start (JSON padded with blanks: the format is unchanged).  The file is
    renamed into place when the block ends without error, as every model file."""

    RESERVE = (256 << 10) - len(MAGIC) - 8        # header bytes (order 8: under 100 KB); data at 256 KiB

    def __init__(self, path, scratch=None):
        self.path, self.scratch = path, scratch
        self.parked = {}                               # (data address, bytes) -> offset

    def __enter__(self) -> "StreamingBinary":
        self._out = atomic_output(self.path)
        self._f = open(self._out.__enter__(), "w+b")
        self.start = len(MAGIC) + 8 + self.RESERVE
        self._f.seek(self.start)
        return self

    def __exit__(self, *exc):
        self._f.close()
        return self._out.__exit__(*exc)

    def _append(self, arr: np.ndarray, align: int) -> int:
        pos = -(-self._f.tell() // align) * align
        self._f.write(b"\0" * (pos - self._f.tell()))
        _write_array(self._f, arr)
        return pos - self.start

    def park(self, arr: np.ndarray) -> np.ndarray:
        from ..spill import PAGE, PARK_BYTES
        if arr.nbytes < max(PARK_BYTES, 1):
            return arr
        offset = self._append(arr, PAGE)
        self._f.flush()
        mm = mmap.mmap(self._f.fileno(), arr.nbytes, access=mmap.ACCESS_READ, offset=self.start + offset)
        out = (self.scratch._track(mm, arr.dtype, arr.size, arr.shape) if self.scratch is not None else
               np.frombuffer(mm, dtype=arr.dtype, count=arr.size).reshape(arr.shape))
        self.parked[(out.__array_interface__["data"][0], out.nbytes)] = offset
        return out

    def finish(self, model) -> None:
        entries = []
        for name, arr in arrays_of(model):
            offset = self.parked.get((arr.__array_interface__["data"][0], arr.nbytes)) if arr.nbytes else None
            if offset is None:
                offset = self._append(arr, ALIGN)
            entries.append(dict(name=name, dtype=arr.dtype.str, shape=list(arr.shape), offset=offset))
        text = _header(model, entries)
        if len(text) > self.RESERVE:
            raise ValueError(f"{self.path}: model header of {len(text)} bytes does not fit the reserved space")
        self._f.seek(0)
        self._f.write(MAGIC + self.RESERVE.to_bytes(8, "little") + text + b" " * (self.RESERVE - len(text)))


def read_binary(path) -> Parts:
    """The parts of the model in a glm binary file, its arrays mapped read-only."""
    from .._vocab import VocabTable
    from ..vocab import Vocabulary
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ModelFormatError(f"{path}: not a glm binary model")
        size = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise ModelFormatError(f"{path}: corrupt header") from None
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if header.get("format") != 1:
        raise ModelFormatError(f"{path}: a glm binary of another format version; rebuild it or convert "
                               "it from the ARPA file")
    start = -(-(len(MAGIC) + 8 + size) // ALIGN) * ALIGN
    arrays = {}
    for e in header["arrays"]:
        dtype = np.dtype(e["dtype"])
        count = int(np.prod(e["shape"]))
        if start + e["offset"] + count * dtype.itemsize > len(mm):
            raise ModelFormatError(f"{path}: truncated file")
        arrays[e["name"]] = np.frombuffer(mm, dtype=dtype, count=count,
                                          offset=start + e["offset"]).reshape(e["shape"])
    vocab = Vocabulary(VocabTable.from_arrays(arrays["vocab.blob"], arrays["vocab.offsets"],
                                              arrays["vocab.table"]))
    parts = _glm_parts if header.get("kind") == "glm" else _backoff_parts
    try:
        return parts(vocab, arrays, header)
    except (KeyError, ValueError) as exc:
        raise ModelFormatError(f"{path}: a glm binary of another format version ({exc}); rebuild it or "
                               "convert it from the ARPA file") from None
