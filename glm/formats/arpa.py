"""ARPA back-off model files: writer (compiled formatting, both cores) and reader.

The writer lays out files as lmplz does: the header, unigrams in id order, higher orders in suffix order,
three tab-separated fields below the top order (backoff 0 when there is none) and two at the top.
The reader accepts files from lmplz, SRILM (``-99`` for ``<s>``) and glm.
"""
from __future__ import annotations

import bz2
import collections
import gzip
import lzma
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import _arpa, _count
from ..threads import threads
from ..progress import progress
from ..vocab import Vocabulary
from .files import ModelFormatError, Parts, atomic_output

CHUNK = 1 << 16         # n-grams formatted per task: a few MB of text each, threads + 1 in flight


def _open_out(path: str, tmp: str):
    """A binary stream writing tmp, compressed as the name ``path`` asks; the same bytes for the same
    text (gzip: no file name and time 0 in its header; zstd: with its content checksum)."""
    if path.endswith(".gz"):
        return gzip_writer(tmp, 3)
    if path.endswith(".bz2"):
        return bz2.open(tmp, "wb")
    if path.endswith(".xz"):
        return lzma.open(tmp, "wb", preset=1)
    if path.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise ValueError(f"{path}: writing zstd needs the 'zstandard' package (pip install glm[zstd])") from None
        return zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(open(tmp, "wb"), closefd=True)
    return open(tmp, "wb", buffering=1 << 20)


class _GzipWriter(gzip.GzipFile):
    """gzip.GzipFile that closes the file it opened."""

    def close(self):
        raw = self.fileobj
        try:
            super().close()
        finally:
            if raw is not None:
                raw.close()


def gzip_writer(path: str, level: int):
    """A gzip stream writing path whose header holds no file name and time 0 (byte-reproducible)."""
    raw = open(path, "wb")
    try:
        return _GzipWriter(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0)
    except BaseException:
        raw.close()
        raise


def write_arpa(model, path, quiet: bool = True) -> None:
    path = os.fspath(path)
    blob, offsets, _ = model.vocab.table.arrays()
    counts = model.counts
    N = model.order
    with atomic_output(path) as tmp, _open_out(path, tmp) as out, \
            progress(total=sum(counts), desc="writing ARPA", unit="ngram", quiet=quiet) as bar:
        out.write(b"\\data\\\n" + b"".join(b"ngram %d=%d\n" % (n, c) for n, c in enumerate(counts, 1)))
        for n in range(1, N + 1):
            out.write(b"\n\\%d-grams:\n" % n)
            # chunks formatted on all threads, written in order, one more than the threads in flight
            with ThreadPoolExecutor(threads()) as ex:
                pending = collections.deque()
                for lo in range(0, counts[n - 1], CHUNK):
                    hi = min(lo + CHUNK, counts[n - 1])
                    pending.append((hi - lo, ex.submit(_arpa.format_level, n, N, model.levels, blob,
                                                       offsets, lo, hi)))
                    while pending and (len(pending) > threads() or hi == counts[n - 1]):
                        size, text = pending.popleft()
                        out.write(text.result())
                        bar.update(size)
        out.write(b"\n\\end\\\n")


_NGRAM_LINE = re.compile(rb"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")
_SECTION = re.compile(rb"^\\(\d+)-grams:\s*$")


class _Lines:
    """Line-numbered reading of a binary stream, with bulk reads of whole sections."""

    def __init__(self, stream, path):
        self.stream, self.path, self.line, self.buf = stream, path, 0, b""

    def readline(self) -> bytes | None:
        while b"\n" not in self.buf:
            block = self.stream.read(1 << 20)
            if not block:
                if not self.buf:
                    return None
                line, self.buf = self.buf, b""
                self.line += 1
                return line
            self.buf += block
        line, self.buf = self.buf.split(b"\n", 1)
        self.line += 1
        return line

    def section(self):
        """Yields blocks of complete lines up to (not including) the next line starting with a backslash."""
        while True:
            cut = self.buf.find(b"\n\\")
            if self.buf.startswith(b"\\"):
                return
            if cut >= 0:
                block, self.buf = self.buf[:cut + 1], self.buf[cut + 1:]
                yield block
                self.line += block.count(b"\n")
                return
            more = self.stream.read(16 << 20)
            if not more:
                block, self.buf = self.buf, b""
                if block:
                    yield block
                    self.line += block.count(b"\n") + (not block.endswith(b"\n"))
                return
            end = self.buf.rfind(b"\n")
            if end >= 0 and len(self.buf) > (8 << 20):
                block, self.buf = self.buf[:end + 1], self.buf[end + 1:] + more
                yield block
                self.line += block.count(b"\n")
            else:
                self.buf += more

    def error(self, msg: str, line: int | None = None):
        return ModelFormatError(f"{self.path}:{self.line if line is None else line}: {msg}")


_WHY = {1: "bad number", 2: "wrong number of fields", 3: "word not among the unigrams",
        4: "bad log10 probability (it must be a number <= 0)",
        5: "bad backoff (it must be a number below +inf)"}


def read_arpa(stream, path: str, quiet: bool = True):
    """Read an ARPA file: the parts of a back-off model."""
    src = _Lines(stream, path)
    while True:
        line = src.readline()
        if line is None:
            raise src.error("no \\data\\ header: not an ARPA file")
        if line.strip() == b"\\data\\":
            break
    expected = []
    while True:
        line = src.readline()
        if line is None:
            raise src.error("unexpected end of file in the header")
        if not line.strip():
            if expected:
                break
            continue
        m = _NGRAM_LINE.match(line.strip())
        if not m:
            raise src.error(f"expected 'ngram N=count' in the header, got {line[:60]!r}")
        if int(m.group(1)) != len(expected) + 1:
            raise src.error("header orders are not 1, 2, 3, ...")
        expected.append(int(m.group(2)))
    order = len(expected)
    vocab = Vocabulary()
    table = vocab.table
    sections = []
    with progress(total=sum(expected), desc="reading ARPA", unit="ngram", quiet=quiet) as bar:
        for n in range(1, order + 1):
            while True:
                line = src.readline()
                if line is None:
                    raise src.error(f"missing \\{n}-grams: section")
                if line.strip():
                    break
            m = _SECTION.match(line.strip())
            if not m or int(m.group(1)) != n:
                raise src.error(f"expected \\{n}-grams:, got {line[:60]!r}")
            parts = ([], [], [])
            for block in src.section():
                status, ids, prob, bo, nlines = table.read_arpa_ngrams(block, n, n == 1, n < order)
                if status:
                    why = _WHY[status]
                    if status == 2:
                        why += (f" (a {n}-gram line is a log10 probability and {n} word{'s' if n > 1 else ''}"
                                + (", then an optional backoff)" if n < order else
                                   f"; {n} is the highest order, whose lines carry no backoff)"))
                    raise src.error(why, src.line + nlines + 1)
                for acc, arr in zip(parts, (ids, prob, bo)):
                    acc.append(arr)
                bar.update(len(prob))
            ids, prob, bo = (np.concatenate(p) if p else None for p in parts)
            if ids is None:
                ids, prob, bo = np.zeros((0, n), np.uint32), np.zeros(0, np.float32), np.zeros(0, np.float32)
            if len(prob) != expected[n - 1]:
                raise src.error(f"the header announces {expected[n - 1]} {n}-grams, the section holds "
                                f"{len(prob)}")
            sections.append((ids, prob, bo))
        tail = src.readline()
        while tail is not None and not tail.strip():
            tail = src.readline()
        if tail is None or tail.strip() != b"\\end\\":
            raise src.error("missing \\end\\")
    return Parts("backoff", dict(vocab=vocab, levels=_levels_from_sections(sections, len(vocab), path),
                                 meta={"source": "arpa"}))


def _rows(a: np.ndarray) -> np.ndarray:
    """n-gram rows as one opaque value each, for set operations."""
    a = np.ascontiguousarray(a)
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def _add_missing_suffixes(sections) -> list[int]:
    """Add, as placeholders (log10 p NaN, backoff 0), the (n-1)-word suffixes of n-grams that a file
    lacks (SRILM's pruning can drop them); returns how many were added per order."""
    added = [0] * len(sections)
    for n in range(len(sections), 2, -1):
        ids = sections[n - 1][0]
        low_ids, low_prob, low_bo = sections[n - 2]
        need = np.unique(_rows(ids[:, 1:]))
        missing = need[~np.isin(need, _rows(low_ids))]
        if len(missing):
            rows = np.frombuffer(missing.tobytes(), dtype=np.uint32).reshape(-1, n - 1)
            sections[n - 2] = (np.concatenate([low_ids, rows]),
                               np.concatenate([low_prob, np.full(len(rows), np.nan, np.float32)]),
                               np.concatenate([low_bo, np.zeros(len(rows), np.float32)]))
            added[n - 2] = len(rows)
    return added


def _fill_placeholders(levels: list[dict]) -> None:
    """log10 p of each placeholder n-gram w1..wn: what backing off gives it in the original file,
    log10 p(w2..wn) + backoff(w1..w(n-1)), so that no score changes."""
    for n in range(2, len(levels) + 1):
        prob = levels[n - 1]["logprob"]
        for e in np.nonzero(np.isnan(prob))[0]:
            words, parent = _words_of(levels, n, int(e))
            ctx = _find(levels, words[:-1])
            prob[e] = levels[n - 2]["logprob"][parent] + (0.0 if ctx is None else levels[n - 2]["backoff"][ctx])


def _words_of(levels: list[dict], n: int, e: int) -> tuple[list[int], int]:
    """The word ids (oldest first) of entry e of level n and the index of its parent."""
    words, parent = [int(levels[n - 1]["word"][e])], None
    for k in range(n - 1, 0, -1):
        e = int(np.searchsorted(levels[k - 1]["starts"], e, side="right") - 1)
        parent = e if parent is None else parent
        words.append(int(levels[k - 1]["word"][e]) if k > 1 else e)
    return words, parent


def _find(levels: list[dict], words: list[int]) -> int | None:
    """Index of the n-gram ``words`` in its level, or None."""
    node = words[-1]
    for k, w in enumerate(reversed(words[:-1]), 1):
        starts, level_words = levels[k - 1]["starts"], levels[k]["word"]
        lo, hi = int(starts[node]), int(starts[node + 1])
        i = lo + int(np.searchsorted(level_words[lo:hi], w))
        if i >= hi or level_words[i] != w:
            return None
        node = i
    return node


def _levels_from_sections(sections, V: int, path: str) -> list[dict]:
    order = len(sections)
    placeholders = _add_missing_suffixes(sections)
    ids, prob, bo = sections[0]
    uni_prob = np.full(V, -99.0, dtype=np.float32)
    uni_prob[0] = -100.0            # a model without <unk>: KenLM's convention
    uni_bo = np.zeros(V, dtype=np.float32)
    uni = ids[:, 0]
    if len(np.unique(uni)) != len(uni):
        raise ModelFormatError(f"{path}: a unigram is listed twice")
    uni_prob[uni] = prob
    uni_bo[uni] = bo
    levels = [dict(logprob=uni_prob, backoff=uni_bo)]
    lower_rows = np.arange(V, dtype=np.uint32).reshape(-1, 1)     # level 1 is indexed by word id
    for n in range(2, order + 1):
        ids, prob, bo = sections[n - 1]
        perm = _count.suffix_order(ids, _count.KeyLayout(n, V))
        if perm is not None:
            ids, prob, bo = np.ascontiguousarray(ids[perm]), prob[perm], bo[perm]
        parents, missing = _count.link_parents(ids, lower_rows)
        if missing >= 0:
            words = " ".join(str(w) for w in ids[missing])
            raise ModelFormatError(f"{path}: the {n}-gram with word ids [{words}] is listed twice")
        levels[n - 2]["starts"] = _count.child_starts(parents, len(levels[n - 2]["logprob"]))
        lv = dict(word=np.ascontiguousarray(ids[:, 0]), logprob=prob)
        if n < order:
            lv["backoff"] = bo
        levels.append(lv)
        lower_rows = ids
    if order > 1 and "backoff" not in levels[0]:
        levels[0]["backoff"] = uni_bo
    if order == 1:
        levels[0].pop("backoff")
    if any(placeholders):
        _fill_placeholders(levels)
    return levels
