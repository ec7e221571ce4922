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


def count_ngrams(streams: list[np.ndarray], order: int, vocab_size: int, with_raw: bool = False,
                 run_windows: int = RUN_WINDOWS) -> list[dict]:
    """Levels 1..order of the suffix trie with adjusted counts ('count') and, when with_raw (pruning
    needs them), occurrences ('raw').

    ``streams`` (padded id streams, ``1 w1 .. wn 2`` per line) is emptied as it is consumed.
    """
    layout = _count.KeyLayout(order, vocab_size)
    runs = []
    while streams:
        batch = [streams.pop(0)]
        size = len(batch[0])
        while streams and size + len(streams[0]) <= run_windows:
            size += len(streams[0])
            batch.append(streams.pop(0))
        stream = batch[0] if len(batch) == 1 else np.concatenate(batch)
        del batch
        runs.append(_count.count_windows(stream, layout, threads()))
        del stream
        # merge equal-sized neighbours as we go, so that at most log2(runs) stay alive
        while len(runs) > 1 and len(runs[-1][0]) * 2 >= len(runs[-2][0]):
            (kb, cb), (ka, ca) = runs.pop(), runs.pop()
            runs.append(_count.merge_counts(ka, ca, kb, cb))
    while len(runs) > 1:
        (kb, cb), (ka, ca) = runs.pop(), runs.pop()
        runs.append(_count.merge_counts(ka, ca, kb, cb))
    if runs:
        keys, counts = runs.pop()
    else:
        keys = np.zeros((0, layout.words), dtype=np.uint64)
        counts = np.zeros(0, dtype=np.uint32)
    return _count.build_levels(keys, counts, layout, vocab_size, with_raw)
