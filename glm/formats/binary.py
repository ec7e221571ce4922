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


def write_binary(model, path) -> None:
    arrays = _arrays(model)
    entries, offset = [], 0
    for name, arr in arrays:
        entries.append(dict(name=name, dtype=arr.dtype.str, shape=list(arr.shape), offset=offset))
        offset += -(-arr.nbytes // ALIGN) * ALIGN
    header = dict(format=1, order=model.order, arrays=entries, meta=model.meta, **model.binary_header())
    text = json.dumps(header).encode("utf-8")
    start = -(-(len(MAGIC) + 8 + len(text)) // ALIGN) * ALIGN
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + len(text).to_bytes(8, "little") + text)
        f.write(b"\0" * (start - f.tell()))
        for (name, arr), entry in zip(arrays, entries):
            f.write(b"\0" * (start + entry["offset"] - f.tell()))
            data = memoryview(np.ascontiguousarray(arr)).cast("B")
            for i in range(0, len(data), CHUNK):        # file-backed arrays give their pages back
                f.write(data[i:i + CHUNK])
                release(arr, i, i + CHUNK)


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
