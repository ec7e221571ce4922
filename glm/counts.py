"""Counting: padded id streams -> counted n-grams of every order, with adjusted counts, as trie levels.

The windows of the top order are counted in sorted runs of bounded size, and the runs are merged; the
lower orders and their adjusted (continuation) counts come from one pass over the merged windows
(see ext/_count.pyx).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _count

RUN_WINDOWS = 1 << 24


def threads() -> int:
    """Threads for compiled kernels: $GLM_THREADS if set, else the cores this process may use."""
    if os.environ.get("GLM_THREADS", "").strip():
        return max(1, int(os.environ["GLM_THREADS"]))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def parallel(kernel, n: int, *args) -> None:
    """Run kernel(*args, lo, hi) over [0, n) cut into one range per thread (kernels release the GIL)."""
    k = threads() if n >= 1 << 16 else 1
    bounds = [n * i // k for i in range(k + 1)]
    if k == 1:
        kernel(*args, 0, n)
        return
    with ThreadPoolExecutor(k) as ex:
        for f in [ex.submit(kernel, *args, lo, hi) for lo, hi in zip(bounds, bounds[1:])]:
            f.result()


class NgramCounter:
    """Counts the top-order windows of padded id streams as they arrive, in sorted runs of bounded
    size that are merged as they accumulate; ``levels()`` then derives every order.

    The ids are packed with as many bits as the vocabulary needs so far; when it outgrows them, the
    runs already counted are re-packed wider (their order does not change).
    """

    def __init__(self, order: int, run_windows: int = RUN_WINDOWS):
        self.order, self.run_windows = order, run_windows
        self.layout = None
        self.pending, self.pending_size = [], 0
        self.runs = []                       # (keys, counts), sorted, sizes roughly halving

    def add(self, stream: np.ndarray, vocab_size: int) -> None:
        self.pending.append(stream)
        self.pending_size += len(stream)
        if self.pending_size >= self.run_windows:
            self._count(vocab_size)

    def _count(self, vocab_size: int) -> None:
        if not self.pending:
            return
        if self.layout is None or vocab_size > self.layout.capacity:
            # room for the vocabulary to double before the next re-pack
            wider = _count.KeyLayout(self.order, max(2 * vocab_size, 1 << 16))
            self.runs = [(_count.repack(k, self.layout, wider), c) for k, c in self.runs] if self.layout else []
            self.layout = wider
        stream = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
        self.pending, self.pending_size = [], 0
        self.runs.append(_count.count_windows(stream, self.layout, threads()))
        del stream
        while len(self.runs) > 1 and len(self.runs[-1][0]) * 2 >= len(self.runs[-2][0]):
            self._merge_last()

    def _merge_last(self) -> None:
        (kb, cb), (ka, ca) = self.runs.pop(), self.runs.pop()
        self.runs.append(_count.merge_counts(ka, ca, kb, cb))

    def levels(self, vocab_size: int, with_raw: bool = False) -> list[dict]:
        """Levels 1..order of the suffix trie with adjusted counts ('count') and, when with_raw (pruning
        needs them), occurrences ('raw').  The counter is emptied."""
        self._count(vocab_size)
        while len(self.runs) > 1:
            self._merge_last()
        layout = self.layout or _count.KeyLayout(self.order, vocab_size)
        keys, counts = self.runs.pop() if self.runs else (np.zeros((0, layout.words), np.uint64),
                                                          np.zeros(0, np.uint32))
        return _count.build_levels(keys, counts, layout, vocab_size, with_raw)
