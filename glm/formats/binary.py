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
from . import ModelFormatError, atomic_output

MAGIC = b"GLMBIN01"
ALIGN = 64
CHUNK = 64 << 20


def _arrays(model) -> list[tuple[str, np.ndarray]]:
    blob, offsets, table = model.vocab.table.arrays()
    return [("vocab.blob", blob), ("vocab.offsets", offsets), ("vocab.table", table)] + model.binary_arrays()


def _header(model, entries: list) -> bytes:
    header = dict(format=1, order=model.order, arrays=entries, meta=model.meta, **model.binary_header())
    return json.dumps(header).encode("utf-8")


def _write_array(f, arr: np.ndarray) -> None:
    data = memoryview(np.ascontiguousarray(arr)).cast("B")
    for i in range(0, len(data), CHUNK):        # file-backed arrays give their pages back
        f.write(data[i:i + CHUNK])
        release(arr, i, i + CHUNK)


def write_binary(model, path) -> None:
    arrays = _arrays(model)
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
        for name, arr in _arrays(model):
            offset = self.parked.get((arr.__array_interface__["data"][0], arr.nbytes)) if arr.nbytes else None
            if offset is None:
                offset = self._append(arr, ALIGN)
            entries.append(dict(name=name, dtype=arr.dtype.str, shape=list(arr.shape), offset=offset))
        text = _header(model, entries)
        if len(text) > self.RESERVE:
            raise ValueError(f"{self.path}: model header of {len(text)} bytes does not fit the reserved space")
        self._f.seek(0)
        self._f.write(MAGIC + self.RESERVE.to_bytes(8, "little") + text + b" " * (self.RESERVE - len(text)))


def read_binary(path):
    from .._vocab import VocabTable
    from ..model import GeneralizedModel, Model
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
    cls = GeneralizedModel if header.get("kind") == "glm" else Model
    try:
        return cls.from_binary(vocab, arrays, header)
    except (KeyError, ValueError) as exc:
        raise ModelFormatError(f"{path}: a glm binary of another format version ({exc}); rebuild it or "
                               "convert it from the ARPA file") from None
