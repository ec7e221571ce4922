"""Threads of the compiled kernels: how many (``threads``), set for a block (``workers``), and a range
cut among them (``parallel``).  Every kernel that runs on several threads releases the GIL."""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

_workers = None


def threads() -> int:
    """Threads for compiled kernels: the ``workers`` setting, else $GLM_THREADS, else the cores this
    process may use."""
    if _workers:
        return _workers
    env = os.environ.get("GLM_THREADS", "").strip()
    if env:
        return count("GLM_THREADS", env)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@contextlib.contextmanager
def workers(n: int | None):
    """Within the block, compiled kernels use n threads (None: as ``threads()`` says)."""
    global _workers
    saved, _workers = _workers, None if n is None else count("workers", n)
    try:
        yield
    finally:
        _workers = saved


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


def count(name: str, value) -> int:
    """A number of threads or processes given as `name` (an option or environment variable), checked:
    a whole number of at least 1, else a ValueError that names it."""
    try:
        n = int(value)
        ok = n >= 1 and (not isinstance(value, float) or n == value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected a whole number of at least 1, not {value!r}")
    return n
