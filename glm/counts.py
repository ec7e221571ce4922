"""Counting: padded id streams -> counted n-grams of every order, with adjusted counts, as trie levels.

The windows of the top order are counted in sorted runs of bounded size, and the runs are merged; the
lower orders and their adjusted (continuation) counts come from one pass over the merged windows
(see ext/_count.pyx).  With a memory budget (a ``glm.spill.Scratch``), runs that outgrow their share of
it go to disk and are merged from there, and the levels are memory-mapped files.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _count
from .spill import merge_runs
from .threads import threads

RUN_WINDOWS = 1 << 24
# Counting a run beside tokenizing holds one more chunk of text and its ids (some 30 MB): done
# without a budget or with one of at least this size.
BACKGROUND_BUDGET = 256 << 20


def key_layout(order: int, vocab_size: int):
    """The key layout NgramCounter uses for a vocabulary of vocab_size words: room for it to double
    before the next re-pack."""
    return _count.KeyLayout(order, max(2 * vocab_size, 1 << 16))


def _pieces(stream: np.ndarray, size: int) -> list[np.ndarray]:
    """A padded stream cut before sentence starts (<s> = 1) into pieces of about size ids (a longer
    sentence stays whole)."""
    if len(stream) <= size:
        return [stream]
    starts = np.flatnonzero(stream == 1)
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, np.arange(size, len(stream), size)),
                                       len(starts) - 1)])
    return np.split(stream, cuts[cuts > 0])


class NgramCounter:
    """Counts the top-order windows of padded id streams as they arrive, in sorted runs of bounded
    size that are merged as they accumulate; ``levels()`` then derives every order.

    The ids are packed with as many bits as the vocabulary needs so far; when it outgrows them, the
    runs already counted are re-packed wider (their order does not change).  With a ``scratch``
    (glm.spill.Scratch), runs are smaller and, once they hold more than a quarter of its budget, are
    written to its directory, to be merged from disk at the end.  With ``background`` (and no budget,
    or one of at least BACKGROUND_BUDGET), a full run is counted on a thread of its own while the next
    one arrives (the caller tokenizes meanwhile); ``close()`` then waits for it when counting stops.
    """

    def __init__(self, order: int, run_windows: int = RUN_WINDOWS, scratch=None, background: bool = False):
        background = background and (scratch is None or scratch.memory >= BACKGROUND_BUDGET)
        if scratch is not None:
            # counting a run takes about 32 bytes a window (stream, keys, counts, sort buffer):
            # a quarter of the budget
            run_windows = min(run_windows, max(4096, scratch.memory // 128))
        self.order, self.run_windows, self.scratch = order, run_windows, scratch
        self.layout = None
        self.pending, self.pending_size = [], 0
        self.runs = []                       # (keys, counts), sorted, sizes roughly halving
        self.spilled = []                    # glm.spill.Run files
        self.background = ThreadPoolExecutor(1, thread_name_prefix="glm-count") if background else None
        self.job = None                      # the run being counted in the background

    def add(self, stream: np.ndarray, vocab_size: int) -> None:
        self.pending.append(stream)
        self.pending_size += len(stream)
        if self.pending_size >= self.run_windows:
            self._count(vocab_size, self.background)

    def _count(self, vocab_size: int, background: ThreadPoolExecutor | None = None) -> None:
        """Count the pending windows into the runs (one run at a time: first wait for the last)."""
        self._wait()
        if not self.pending:
            return
        stream = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
        self.pending, self.pending_size = [], 0
        if background is not None:
            self.job = background.submit(self._count_stream, stream, vocab_size)
        else:
            self._count_stream(stream, vocab_size)

    def _wait(self) -> None:
        job, self.job = self.job, None
        if job is not None:
            job.result()

    def close(self) -> None:
        """Wait for a run still counted in the background (its error, if any, is dropped: the caller
        is leaving on an error of its own) and stop the thread."""
        try:
            self._wait()
        except Exception:
            pass
        if self.background is not None:
            self.background.shutdown()

    def _count_stream(self, stream: np.ndarray, vocab_size: int) -> None:
        if self.layout is None or vocab_size > self.layout.capacity:
            wider = key_layout(self.order, vocab_size)
            self.runs = [(_count.repack(k, self.layout, wider), c) for k, c in self.runs] if self.layout else []
            self.layout = wider
        for piece in _pieces(stream, self.run_windows):
            self.runs.append(_count.count_windows(piece, self.layout, threads()))
            if self.scratch is not None and sum(k.nbytes + c.nbytes for k, c in self.runs) > self.scratch.memory // 4:
                self._spill()            # (before merging: a merge needs room for its output)
            while len(self.runs) > 1 and len(self.runs[-1][0]) * 2 >= len(self.runs[-2][0]):
                self._merge_last()

    def _spill(self) -> None:
        self.spilled += [self.scratch.save_run([run], self.layout) for run in self.runs]
        self.runs = []

    def _merge_last(self) -> None:
        (kb, cb), (ka, ca) = self.runs.pop(), self.runs.pop()
        self.runs.append(_count.merge_counts(ka, ca, kb, cb, threads()))

    def merged(self, vocab_size: int):
        """All windows counted as one sorted run: (keys, counts, layout).  The counter is emptied.
        After spilling, the run is merged from disk into a file that is mapped read-only."""
        self._count(vocab_size)
        layout = self.layout or key_layout(self.order, vocab_size)
        if self.spilled:
            return (*self.scratch.load_run(self.merged_run(vocab_size)), layout)
        while len(self.runs) > 1:
            self._merge_last()
        keys, counts = self.runs.pop() if self.runs else (np.zeros((0, layout.words), np.uint64),
                                                          np.zeros(0, np.uint32))
        return keys, counts, layout

    def merged_run(self, vocab_size: int):
        """All windows counted as one sorted run file in the scratch directory (a glm.spill.Run; the
        counter needs a scratch).  The counter is emptied."""
        self._count(vocab_size)
        layout = self.layout or key_layout(self.order, vocab_size)
        if not self.spilled:
            keys, counts, layout = self.merged(vocab_size)
            return self.scratch.save_run([(keys, counts)], layout)
        self._spill()
        runs, self.spilled = self.spilled, []
        merged = self.scratch.save_run(merge_runs(runs, layout, self.scratch.memory // 4, threads()),
                                        layout)
        for run in runs:
            run.remove()
        return merged

    def levels(self, vocab_size: int, with_raw: bool = False) -> list[dict]:
        """Levels 1..order of the suffix trie with adjusted counts ('count') and, when with_raw (pruning
        needs them), occurrences ('raw').  The counter is emptied."""
        keys, counts, layout = self.merged(vocab_size)
        return _count.build_levels(keys, counts, layout, vocab_size, with_raw,
                                   np.zeros if self.scratch is None else self.scratch.zeros, threads())
