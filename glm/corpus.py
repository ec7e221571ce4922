"""Reading text: files, directories or stdin, plain or compressed, as chunks of complete lines.

Compression is detected from the first bytes (gzip, bzip2, xz, zstd), not from the file name.  Lines are
read in chunks of a few megabytes, so memory stays constant whatever the input size.  An iterable of
lines is cut into the same chunks (``text_chunks``), and a text that is read twice keeps a copy of
stdin (``rereadable``).
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import sys
import tempfile
import zlib
from contextlib import contextmanager
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


# what reading damaged or truncated compressed data raises (gzip: zlib.error, bz2 / zstd: OSError,
# xz: LZMAError, any of them cut short: EOFError)
DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


def _path_list(inputs, what: str) -> list:
    """inputs as a list of paths; a TypeError for anything that is not a path or a list of them."""
    if isinstance(inputs, (str, os.PathLike)):
        return [inputs]
    if isinstance(inputs, (list, tuple)) and all(isinstance(x, (str, os.PathLike)) for x in inputs):
        return list(inputs)
    raise TypeError(f"{what}: expected a path (str or os.PathLike), '-' for stdin, or a list of paths, "
                    f"not {_kind(inputs)}; to use lines of text, pass them as lines=...")


def _kind(value) -> str:
    if isinstance(value, (list, tuple)):
        bad = next((x for x in value if not isinstance(x, (str, os.PathLike))), None)
        return f"a {type(value).__name__} holding {type(bad).__name__}" if value else "an empty list"
    return type(value).__name__


def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike], what: str = "inputs") -> list[str]:
    """Files to read, in order: directories are walked recursively in sorted order; '-' is stdin.
    Every input is checked before any is read: a missing one is a CorpusError naming it."""
    inputs = _path_list(inputs, what)
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
        elif os.path.isfile(item) or (os.path.exists(item) and not os.path.isdir(item)):
            if not os.access(item, os.R_OK):
                raise CorpusError(f"{item}: permission denied (not readable)")
            out.append(item)
        else:
            raise CorpusError(f"{item}: no such file or directory")
    if not out:
        raise CorpusError(f"{what}: no input given")
    return out


def line_chunks(lines: Iterable[str | bytes], chunk_bytes: int = 4 << 20) -> Iterator[Chunk]:
    """Chunks of an iterable of lines of text (str or bytes; a line feed inside a line is a blank)."""
    if isinstance(lines, (str, bytes, bytearray, os.PathLike)):
        raise TypeError(f"lines: expected an iterable of lines (str or bytes), not one {type(lines).__name__}; "
                        "to read files, pass their paths as inputs")
    buf, size, first, count = [], 0, 1, 0
    for line in lines:
        if isinstance(line, str):
            b = line.encode("utf-8", errors="surrogateescape")
        elif isinstance(line, (bytes, bytearray, memoryview)):
            b = bytes(line)
        else:
            raise TypeError(f"lines: line {count + 1} is a {type(line).__name__}, not str or bytes")
        b = b.rstrip(b"\n").replace(b"\n", b" ") + b"\n"
        buf.append(b)
        size += len(b)
        count += 1
        if size >= chunk_bytes:
            yield Chunk(b"".join(buf), "<lines>", first)
            buf, size, first = [], 0, count + 1
    if buf:
        yield Chunk(b"".join(buf), "<lines>", first)


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

    def readinto(self, buffer) -> int:         # (so that io.BufferedReader can wrap it)
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


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
                seekable = path != "-" and raw.seekable()     # (not a pipe: /dev/stdin, <(...), a FIFO)
                line = 1
                rest = b""
                last_pos = 0
                while True:
                    try:
                        block = stream.read(chunk_bytes)
                    except DECOMPRESS_ERRORS as exc:
                        raise CorpusError(f"{path}: cannot decompress: {exc}") from None
                    if seekable:
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


def text_chunks(inputs=None, lines=None, quiet: bool = True, desc: str = "reading") -> Iterator[Chunk]:
    """Chunks of lines of files (paths, directories, '-') or of an iterable of lines (``lines``)."""
    if lines is not None:
        return line_chunks(lines)
    return read_chunks(inputs, quiet=quiet, desc=desc)


def input_names(paths) -> str:
    """The inputs, named in an error (the first few); None: lines given, not files."""
    if paths is None:
        return "the lines given"
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more files" if len(paths) > 3 else "")


def read_once(path: str) -> bool:
    """Whether an input can be read only once: stdin ('-') or a path that is no regular file or
    directory (/dev/stdin, bash's <(...), a FIFO)."""
    if path == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextmanager
def rereadable(paths: list[str] | None, lines=None, tmpdir=None):
    """(paths, lines) that can be read twice (once split, once whole): stdin ('-') and the other inputs
    that can be read only once (``read_once``) among the paths copied to temporary files in ``tmpdir``
    (decompressed), removed when the block ends; an iterator of lines kept in a list."""
    if lines is not None and not isinstance(lines, (list, tuple)):
        lines = list(lines)
    if paths is None or not any(read_once(p) for p in paths):
        yield paths, lines
        return
    directory = tempfile.mkdtemp(prefix="glm-stdin-", dir=tmpdir)
    try:
        out = []
        for i, path in enumerate(paths):
            if read_once(path):
                copy = os.path.join(directory, "stdin" if path == "-" else f"input-{i}")
                with open_binary(path) as src, open(copy, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                path = copy
            out.append(path)
        yield out, lines
    finally:
        shutil.rmtree(directory, ignore_errors=True)
