"""The compact form of a GLM binary file (``model.save(path, quantize=BITS)``, ``--quantize BITS``): each
pattern table's alphas and gammas stored as 8- or 16-bit codes into a codebook of centers, its word ids
and children offsets packed in as many bits as the vocabulary and the table need (``pack``,
``Unpacked``), and the children hash left out
(made again when the file is loaded: it is a function of the tables).  The scorer reads the values and
words from its node records (glm.records), which are made from the tables in any case: it meets
``centers[codes]`` and the unpacked ids and offsets there, and scores as fast as from an unquantized file.

The codebook of an array is made as KenLM's quantization makes its bins: the values sorted and cut into
bins of equal population, each bin's center the mean of its values, so that a value is off by at most
the width of its bin (its largest minus its smallest value).  Values that carry a meaning of their own
keep a code of their own and are stored exactly: NaN (a gamma of a history without continuations: the
scorer skips the pattern), 0 (an alpha of a pruned or fully discounted n-gram) and infinities.  An array
with no more distinct values than codes is stored exactly, so that quantizing a quantized model again
changes nothing.

Leaf module: imports numpy only.  (docs/glm.md, "Quantized files")
"""
from __future__ import annotations

import numpy as np

BITS = (8, 16)
CODE_DTYPES = {8: np.uint8, 16: np.uint16}


def check_bits(bits) -> int:
    """bits as an int, or a ValueError naming the accepted widths."""
    if isinstance(bits, bool) or bits not in BITS:
        raise ValueError(f"quantize: {bits!r} bits; use one of {', '.join(map(str, BITS))}")
    return int(bits)


def quantize(values, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes uint8/uint16, centers of values' dtype): values ~ centers[codes].

    The finite nonzero values are cut into bins of equal population (a run of equal values stays in one
    bin), each bin's center the mean of its values (computed in float64); NaN, 0 and infinities, when
    present, get a code each and are exact.  A Dequantized array is re-coded only when its codebook has
    more entries than ``bits`` allow."""
    bits = check_bits(bits)
    if isinstance(values, Dequantized) and len(values.centers) <= 1 << bits:
        return values.codes.astype(CODE_DTYPES[bits]), values.centers
    v = np.asarray(values)
    dtype = v.dtype if v.dtype.kind == "f" else np.dtype(np.float64)
    flat = v.astype(np.float64, copy=False).ravel()
    specials = [x for x, present in ((np.nan, np.isnan(flat).any()), (0.0, (flat == 0).any()),
                                     (np.inf, (flat == np.inf).any()), (-np.inf, (flat == -np.inf).any()))
                if present]
    regular = np.isfinite(flat) & (flat != 0)
    rest = np.sort(flat[regular])
    room = (1 << bits) - len(specials)
    if len(rest) == 0:
        edges, centers = np.empty(0), np.empty(0)
    else:
        distinct = np.concatenate(([True], rest[1:] != rest[:-1]))
        if distinct.sum() <= room:            # few distinct values: each its own code, exact
            centers = rest[distinct]
            edges = centers[1:]
        else:
            # equal populations: the first value of every room-th part starts a bin (a run of equal
            # values at a cut starts its bin, so that it stays whole); empty bins are dropped
            edges = np.unique(rest[(np.arange(1, room) * len(rest)) // room])
            edges = edges[edges > rest[0]]
            bin_of = np.searchsorted(edges, rest, side="right")
            centers = np.bincount(bin_of, weights=rest) / np.bincount(bin_of)
    codes = np.empty(len(flat), dtype=CODE_DTYPES[bits])
    codes[regular] = len(specials) + np.searchsorted(edges, flat[regular], side="right")
    for k, x in enumerate(specials):
        codes[np.isnan(flat) if np.isnan(x) else flat == x] = k
    book = np.concatenate((np.array(specials, dtype=np.float64), centers)).astype(dtype)
    return codes.reshape(v.shape), book


class Dequantized:
    """An array read as codes and their codebook (a quantized GLM file's alpha or gamma): behaves as the
    array ``centers[codes]`` for numpy (``np.asarray``), ``len`` and iteration, made when asked, so that
    loading a quantized model costs no more memory than its file.  Codes beyond the codebook (a damaged
    file, before ``glm verify`` finds them) read its last center."""

    def __init__(self, codes: np.ndarray, centers: np.ndarray):
        if len(centers) == 0 and len(codes):
            raise ValueError("quantized values without a codebook")
        self.codes, self.centers = codes, centers

    @property
    def dtype(self) -> np.dtype:
        return self.centers.dtype

    @property
    def shape(self) -> tuple:
        return self.codes.shape

    def __len__(self) -> int:
        return len(self.codes)

    def __array__(self, dtype=None, copy=None):
        out = np.take(self.centers, self.codes, mode="clip") if len(self.codes) else \
            np.empty(self.codes.shape, self.centers.dtype)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        return iter(np.asarray(self))

    def __getitem__(self, index):
        return np.asarray(self)[index] if isinstance(index, slice) else \
            self.centers[min(int(self.codes[index]), len(self.centers) - 1)]


# -- word ids in as many bits as the vocabulary needs ----------------------------------------------------
CHUNK = 1 << 23            # entries packed or unpacked at once (a multiple of 8: whole bytes per chunk)


def word_bits(vocab_size: int) -> int:
    """Bits of a word id below vocab_size."""
    return max(1, (vocab_size - 1).bit_length())


def offset_bits(size: int) -> int:
    """Bits of a children offset into a table of ``size`` entries (0 to size, both included)."""
    return max(1, int(size).bit_length())


def packed_size(n: int, bits: int) -> int:
    """Bytes of n values of ``bits`` bits, packed."""
    return -(-n * bits // 8)


def pack(values, bits: int) -> np.ndarray:
    """uint8 array of the values' low ``bits`` bits (1 to 32), one after the other (little-endian bit
    order): each 8 values fill ``bits`` bytes."""
    v = np.asarray(values, dtype=np.uint32)
    out = np.empty(packed_size(len(v), bits), dtype=np.uint8)
    for i in range(0, len(v), CHUNK):
        part = v[i:i + CHUNK]
        rows = -(-len(part) // 8)
        eights = np.zeros(rows * 8, dtype=np.uint64)
        eights[:len(part)] = part
        words = _spread(eights.reshape(rows, 8), bits)
        data = words.view(np.uint8).reshape(rows, -1)[:, :bits].ravel()
        out[i * bits // 8:i * bits // 8 + packed_size(len(part), bits)] = data[:packed_size(len(part), bits)]
    return out


def _spread(eights: np.ndarray, bits: int) -> np.ndarray:
    """(rows, ceil(bits / 8)) uint64: the 8 values of each row side by side, ``bits`` bits each."""
    words = np.zeros((len(eights), -(-bits // 8)), dtype=np.uint64)
    for j in range(8):
        w, s = divmod(j * bits, 64)
        words[:, w] |= eights[:, j] << np.uint64(s)
        if s + bits > 64:
            words[:, w + 1] |= eights[:, j] >> np.uint64(64 - s)
    return words


def _gather(words: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of _spread: (rows, 8) uint32."""
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((len(words), 8), dtype=np.uint32)
    for j in range(8):
        w, s = divmod(j * bits, 64)
        x = words[:, w] >> np.uint64(s)
        if s + bits > 64:
            x |= words[:, w + 1] << np.uint64(64 - s)
        out[:, j] = x & mask
    return out


class Unpacked:
    """Word ids or children offsets read from their packed bits (glm.quantize.pack): behaves as the
    uint32 array for numpy (``np.asarray``, ``astype``), ``len`` and iteration, unpacked when asked.  A packed array shorter than its n
    values (a damaged file) reads zeros past its end."""

    dtype = np.dtype(np.uint32)

    def __init__(self, data: np.ndarray, bits: int, n: int):
        self.data, self.bits, self.n = data, bits, n

    @property
    def shape(self) -> tuple:
        return (self.n,)

    def __len__(self) -> int:
        return self.n

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.n, dtype=np.uint32)
        b = self.bits
        for i in range(0, self.n, CHUNK):
            k = min(CHUNK, self.n - i)
            rows = -(-k // 8)
            raw = np.zeros((rows, 8 * -(-b // 8)), dtype=np.uint8)
            part = self.data[i * b // 8:i * b // 8 + rows * b]
            flat = np.zeros(rows * b, dtype=np.uint8)
            flat[:len(part)] = part
            raw[:, :b] = flat.reshape(rows, b)
            out[i:i + k] = _gather(raw.view(np.uint64), b).ravel()[:k]
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self, dtype=dtype)

    def __iter__(self):
        return iter(np.asarray(self))

    def __getitem__(self, index):
        return np.asarray(self)[index]
