"""Reading text: files, directories or stdin, plain or compressed, as chunks of complete lines.

Compression is detected from the first bytes (gzip, bzip2, xz, zstd), not from the file name.  Lines are
read in chunks of a few megabytes, so memory stays constant whatever the input size.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from .progress import progress

CHUNK_BYTES = 8 << 20

_MAGIC = [
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]


class CorpusError(ValueError):
    """Bad input text; the message names the file and the line."""


def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Files to read, in order: directories are walked recursively in sorted order; '-' is stdin."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out = []
    for item in inputs:
        item = os.fspath(item)
        if item == "-":
            out.append(item)
        elif os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise CorpusError(f"{item}: directory holds no files")
            out.extend(found)
        elif os.path.exists(item):
            out.append(item)
        else:
            raise CorpusError(f"{item}: no such file or directory")
    if not out:
        raise CorpusError("no input given")
    return out


def open_binary(path: str) -> BinaryIO:
    """A binary stream of the decompressed contents of path ('-' = stdin)."""
    return open_binary_from(sys.stdin.buffer if path == "-" else open(path, "rb"), path)


class _ZstdReader(io.RawIOBase):
    """Decompressed zstd frames, one after another; a stream cut inside a frame raises EOFError (the
    zstandard package's own reader returns what it has without a word)."""

    def __init__(self, raw: BinaryIO, zstandard):
        self.raw, self.zstd = raw, zstandard
        self.dobj = zstandard.ZstdDecompressor().decompressobj()
        self.pending = b""
        self.fed = False           # has the current frame received any input?

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = (1 << 20) if size is None or size < 0 else size
        while len(self.pending) < size:
            data = self.raw.read(1 << 20)
            if not data:
                if self.fed and not self.dobj.eof:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
                break
            while data:
                if self.dobj.eof:
                    self.dobj = self.zstd.ZstdDecompressor().decompressobj()
                    self.fed = False
                try:
                    self.pending += self.dobj.decompress(data)
                except self.zstd.ZstdError as exc:
                    raise OSError(f"zstd: {exc}") from None
                self.fed = True
                data = self.dobj.unused_data if self.dobj.eof else b""
        out, self.pending = self.pending[:size], self.pending[size:]
        return out


def _input_size(paths: list[str]) -> int | None:
    try:
        return sum(os.path.getsize(p) for p in paths)
    except OSError:
        return None


@dataclass
class Chunk:
    """Complete lines of one file: data (bytes), the file name and the number of the first line (1-based)."""
    data: bytes
    path: str
    first_line: int


def read_chunks(inputs, chunk_bytes: int = CHUNK_BYTES, quiet: bool = False,
                desc: str = "reading") -> Iterator[Chunk]:
    """Chunks of complete lines of every input, in order, with a progress bar over the input bytes."""
    paths = expand_inputs(inputs)
    stdin = "-" in paths
    with progress(total=None if stdin else _input_size(paths), desc=desc, unit="B", quiet=quiet) as bar:
        for path in paths:
            raw = sys.stdin.buffer if path == "-" else open(path, "rb")
            try:
                stream = open_binary_from(raw, path)
                line = 1
                rest = b""
                last_pos = 0
                while True:
                    try:
                        block = stream.read(chunk_bytes)
                    except (OSError, EOFError, lzma.LZMAError) as exc:
                        raise CorpusError(f"{path}: cannot decompress: {exc}") from None
                    if path != "-":
                        pos = raw.tell()
                        bar.update(pos - last_pos)
                        last_pos = pos
                    if not block:
                        break
                    cut = block.rfind(b"\n")
                    if cut < 0:
                        rest += block
                        continue
                    data = rest + block[:cut + 1]
                    rest = block[cut + 1:]
                    yield Chunk(data, path, line)
                    line += data.count(b"\n")
                if rest:
                    yield Chunk(rest, path, line)
            finally:
                if raw is not sys.stdin.buffer:
                    raw.close()


def open_binary_from(raw: BinaryIO, path: str) -> BinaryIO:
    """Wrap an open binary file in the decompressor its first bytes call for."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    head = buffered.peek(6)[:6]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            if kind == "gzip":
                return gzip.GzipFile(fileobj=buffered, mode="rb")
            if kind == "bzip2":
                return bz2.BZ2File(buffered, mode="rb")
            if kind == "xz":
                return lzma.LZMAFile(buffered, mode="rb")
            try:
                import zstandard
            except ImportError:
                raise CorpusError(f"{path}: zstd-compressed; install the 'zstandard' package "
                                  "(pip install glm[zstd])") from None
            return _ZstdReader(buffered, zstandard)
    return buffered
