"""Bounded memory: sorted runs on disk, their streaming merge, and memory-mapped work arrays.

With a memory budget (``glm build --memory 2G``, ``train(memory=...)``) a build works in a private
temporary directory (``Scratch``): counted runs that outgrow their share of the budget are written there
as raw binary files (keys, then counts) and merged block by block (``merge_runs``); the large arrays of
the following stages (merged windows, trie levels, sums, probabilities) are memory-mapped files there.
A watcher thread drops the pages of those maps from the process (``madvise(MADV_DONTNEED)``; the data
stays in the files and the page cache) whenever the resident set nears the budget, so peak RSS follows
the budget as long as the arrays each stage touches at random fit in it.  The directory is removed on
success, on error and on Ctrl-C.
"""
from __future__ import annotations

import mmap
import os
import re
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from . import _count

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
PAGE = mmap.ALLOCATIONGRANULARITY      # (the page size; 64 KiB on Windows, where maps start at its multiples)
_STATM = "/proc/self/statm"


def parse_size(text) -> int:
    """Bytes in '2G', '500M', '64K', '1.5G' or a plain number (as lmplz's -S; binary units)."""
    if isinstance(text, (int, np.integer)):
        size = int(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([BKMGT]?)i?B?\s*", str(text), re.IGNORECASE)
        if not m:
            raise ValueError(f"memory size {text!r}: expected a number with an optional unit K, M, G or T")
        size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size <= 0:
        raise ValueError(f"memory size {text!r} must be positive")
    return size


def resident_bytes() -> tuple[int, int]:
    """(resident, of which file-backed or shared) bytes of this process: from /proc/self/statm (Linux),
    else from psutil (where it has no shared figure, all of the resident set counts)."""
    try:
        with open(_STATM) as f:
            fields = f.read().split()
        return int(fields[1]) * mmap.PAGESIZE, int(fields[2]) * mmap.PAGESIZE
    except OSError:
        import psutil
        info = psutil.Process().memory_info()
        return info.rss, getattr(info, "shared", info.rss)


def check_memory_budget_support() -> None:
    """A ValueError saying why a memory budget cannot work here: it needs madvise (not on Windows) and
    the process's resident size (/proc on Linux, or the psutil package elsewhere)."""
    if not hasattr(mmap.mmap, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        raise ValueError("--memory / memory= needs madvise(MADV_DONTNEED), which this system lacks "
                         "(Windows); build without a memory budget")
    if not os.path.exists(_STATM):
        try:
            import psutil  # noqa: F401
        except ImportError:
            raise ValueError("--memory / memory= watches this process's memory through /proc (Linux) or "
                             "the psutil package elsewhere: pip install psutil") from None


@dataclass
class Run:
    """A sorted, counted run on disk: ``path``.keys (rows x layout.words uint64), ``path``.counts (uint32)."""
    path: str
    rows: int
    layout: object

    def remove(self) -> None:
        for ext in (".keys", ".counts"):
            os.unlink(self.path + ext)


class Scratch:
    """A private temporary directory for one build (a context manager), with a memory budget.

    ``zeros`` makes arrays backed by files there; ``save_run`` writes a sorted run; a watcher thread
    trims the pages of the file-backed arrays whenever the resident set exceeds ``trim_at`` of the budget.
    """

    def __init__(self, memory, tmpdir=None, trim_at: float = 0.85):
        self.memory = parse_size(memory)
        check_memory_budget_support()
        if tmpdir is not None and not os.path.isdir(tmpdir):
            raise ValueError(f"--tmpdir {tmpdir}: no such directory")
        self.tmpdir, self.limit = tmpdir, int(self.memory * trim_at)
        self._maps = weakref.WeakSet()
        self._lock = threading.Lock()          # the watcher walks the maps while new ones are added
        self._files = 0
        self._closed = False

    def __enter__(self) -> "Scratch":
        self._dir = tempfile.TemporaryDirectory(prefix="glm-", dir=self.tmpdir)
        self.path = self._dir.name
        self._watcher = threading.Thread(target=self._watch, name="glm-trim", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        # Arrays still mapped (a model returned to the caller) stay valid: unlinking a mapped file only
        # frees its disk space once the last map is gone.  The watcher keeps trimming them until then
        # (writing the model stays within the budget too).
        self._closed = True
        self._dir.cleanup()

    def _name(self, what: str) -> str:
        self._files += 1
        return os.path.join(self.path, f"{self._files:05d}.{what}")

    def remove_arrays(self) -> None:
        """Remove the files of the arrays made so far (``zeros``): their disk and page cache are freed
        as soon as their maps are gone, not at the end (maps still alive stay valid)."""
        for name in os.listdir(self.path):
            if name.endswith(".array"):
                os.unlink(os.path.join(self.path, name))

    # -- memory-mapped arrays ------------------------------------------------------------------------
    def zeros(self, shape, dtype) -> np.ndarray:
        """A zeroed array backed by a file in the scratch directory (small ones stay in memory)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        if count == 0 or count * dtype.itemsize < min(1 << 20, self.memory // 64):
            return np.zeros(shape, dtype)
        with open(self._name("array"), "w+b") as f:
            f.truncate(count * dtype.itemsize)
            mm = mmap.mmap(f.fileno(), count * dtype.itemsize)
        return self._track(mm, dtype, count, shape)

    def load(self, path: str, dtype, shape) -> np.ndarray:
        """A read-only map of an array written to a file in the scratch directory."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        if count == 0:
            return np.zeros(shape, dtype)
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), count * dtype.itemsize, access=mmap.ACCESS_READ)
        return self._track(mm, dtype, count, shape)

    def _track(self, mm, dtype, count, shape) -> np.ndarray:
        with self._lock:
            self._maps.add(mm)
        return np.frombuffer(mm, dtype=dtype, count=count).reshape(shape)

    def trim(self) -> None:
        """Drop the pages of every live map from this process (they stay in the files)."""
        with self._lock:
            maps = list(self._maps)
        for mm in maps:
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (ValueError, OSError):        # closed meanwhile
                pass

    def _watch(self) -> None:
        while not (self._closed and not self._maps):
            time.sleep(0.02)
            rss, shared = resident_bytes()
            if rss > self.limit and shared > (16 << 20):
                self.trim()

    # -- sorted runs ---------------------------------------------------------------------------------
    def save_run(self, blocks, layout) -> Run:
        """Write the (keys, counts) blocks of a sorted run, in order, as one run file."""
        path, rows = self._name("run"), 0
        with open(path + ".keys", "wb") as fk, open(path + ".counts", "wb") as fc:
            for keys, counts in blocks:     # (not ndarray.tofile: Ctrl-C in it surfaces as a TypeError)
                fk.write(memoryview(np.ascontiguousarray(keys)).cast("B"))
                fc.write(memoryview(np.ascontiguousarray(counts)).cast("B"))
                rows += len(counts)
        return Run(path, rows, layout)

    def load_run(self, run: Run) -> tuple[np.ndarray, np.ndarray]:
        """The keys and counts of a run, mapped read-only."""
        return (self.load(run.path + ".keys", np.uint64, (run.rows, run.layout.words)),
                self.load(run.path + ".counts", np.uint32, (run.rows,)))


# -- finished arrays parked in files ---------------------------------------------------------------
PARK_BYTES = 8 << 20     # smaller arrays stay in memory


def park(arr: np.ndarray, scratch: Scratch) -> np.ndarray:
    """``arr`` written to a file in the scratch directory and returned as a read-only map of it, which
    the watcher trims like the other maps; the file is unlinked at once, so its disk space goes with
    the last reference to the map.  The data then lives in the page cache, which the kernel can write
    out and reclaim, instead of the process's anonymous memory.  Arrays under PARK_BYTES are returned
    as they are."""
    if not worth_parking(arr):
        return arr
    arr = np.ascontiguousarray(arr)
    fd, path = tempfile.mkstemp(prefix="park-", dir=scratch.path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(arr).cast("B"))
        with open(path, "rb") as f:
            return map_array(f.fileno(), 0, arr, scratch)
    finally:
        os.unlink(path)


def worth_parking(arr: np.ndarray) -> bool:
    """Whether park() moves arr out of memory (arrays under PARK_BYTES stay)."""
    return arr.nbytes >= max(PARK_BYTES, 1)


def map_array(fileno: int, offset: int, like: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """A read-only map of the bytes at ``offset`` of an open file as an array of ``like``'s dtype and
    shape (its data written there already); the scratch's watcher trims it like the other maps when
    given.  ``offset`` is a multiple of PAGE."""
    mm = mmap.mmap(fileno, like.nbytes, access=mmap.ACCESS_READ, offset=offset)
    if scratch is not None:
        return scratch._track(mm, like.dtype, like.size, like.shape)
    return np.frombuffer(mm, dtype=like.dtype, count=like.size).reshape(like.shape)


def _mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The open file mapping that holds arr's data, or None for an array in memory."""
    base = arr
    while isinstance(base, (np.ndarray, memoryview)):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    return base if isinstance(base, mmap.mmap) and not base.closed else None


def in_memory(arr: np.ndarray) -> np.ndarray:
    """arr if it is in memory; if it is file-mapped, a copy in memory, and the file's pages dropped.
    For tables read at random: numpy asks the kernel for transparent huge pages for large arrays, and
    on 4 KB pages of a file each random read also misses the TLB (docs/glm.md §6)."""
    if _mapping(arr) is None:
        return arr
    out = np.array(arr)
    release(arr)
    return out


def release(arr: np.ndarray, start: int = 0, stop: int | None = None) -> None:
    """Drop the pages of bytes [start, stop) of a file-mapped array from this process (they stay in the
    file and the page cache); a no-op for arrays in memory."""
    base = _mapping(arr)
    if base is None or not arr.nbytes:
        return
    at = arr.__array_interface__["data"][0] - np.frombuffer(base, np.uint8, 1).__array_interface__["data"][0]
    stop = min(at + (arr.nbytes if stop is None else stop), len(base))
    start = at + start
    start -= start % PAGE
    if stop > start:
        try:
            base.madvise(mmap.MADV_DONTNEED, start, stop - start)
        except (ValueError, OSError):
            pass


class _RunReader:
    """Blocks of a run file, re-packed to the merge's layout."""

    def __init__(self, run: Run, layout, block: int):
        self.run, self.layout, self.block = run, layout, block
        self.files = open(run.path + ".keys", "rb"), open(run.path + ".counts", "rb")
        self.done = 0
        self.keys = self.counts = None

    def refill(self) -> None:
        n = min(self.block, self.run.rows - self.done)
        w = self.run.layout.words
        keys = np.fromfile(self.files[0], np.uint64, n * w).reshape(n, w)
        self.counts = np.fromfile(self.files[1], np.uint32, n)
        self.keys = keys if self.run.layout.bits == self.layout.bits else _count.repack(keys, self.run.layout,
                                                                                        self.layout)
        self.done += n

    @property
    def more(self) -> bool:
        """Rows left in the file beyond the buffer."""
        return self.done < self.run.rows

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        out = self.keys[:n], self.counts[:n]
        self.keys, self.counts = self.keys[n:], self.counts[n:]
        return out


def merge_many(parts: list[tuple[np.ndarray, np.ndarray]], threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique (keys, counts) runs merged into one, equal keys adding their counts (each merge of
    two on ``threads`` threads)."""
    parts = [p for p in parts if len(p[1])] or parts[:1]
    while len(parts) > 1:
        parts = [_count.merge_counts(*parts[i], *parts[i + 1], threads) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def merge_runs(runs: list[Run], layout, block_bytes: int, threads: int = 1):
    """Yields the merged (keys, counts) of sorted runs on disk, in order, a block at a time (each merge
    of two blocks on ``threads`` threads).

    Each run is read ``block_bytes / len(runs)`` at a time.  Every step merges, from each buffer, the
    keys up to the smallest last key among the buffers of runs not fully read: no later block can hold
    a smaller key, so equal keys of different runs always meet in the same step.
    """
    rows = max(1024, block_bytes // max(1, len(runs)) // (8 * layout.words + 4))
    readers = opened = [_RunReader(r, layout, rows) for r in runs if r.rows]
    try:
        for r in readers:
            r.refill()
        while readers:
            open_ = [r for r in readers if r.more]
            bound = min((r.keys[-1] for r in open_), key=tuple) if open_ else None
            parts = [r.take(len(r.counts) if bound is None else _count.upper_bound(r.keys, bound))
                     for r in readers]
            yield merge_many(parts, threads)
            for r in readers:
                if not len(r.counts) and r.more:
                    r.refill()
            readers = [r for r in readers if len(r.counts) or r.more]
    finally:
        for r in opened:
            for f in r.files:
                f.close()
