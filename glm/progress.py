"""Progress bars (shown on a terminal, silent when output is piped or when asked to be quiet) and stage
times (printed when $GLM_TIMES is set)."""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from tqdm import tqdm


def progress(total=None, desc: str = "", unit: str = "it", quiet: bool = False) -> tqdm:
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=disable, leave=False,
                dynamic_ncols=True)


@contextmanager
def stage(name: str):
    """Times a stage of a build: with $GLM_TIMES set (to anything but 0 or empty), its wall seconds and
    the process's CPU seconds (all threads, user + system) are printed to stderr as ``glm: NAME: S s
    (CPU C s)`` when it ends."""
    if os.environ.get("GLM_TIMES", "0") in ("", "0"):
        yield
        return
    start, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        print(f"glm: {name}: {time.perf_counter() - start:.2f} s (CPU {time.process_time() - cpu:.2f} s)",
              file=sys.stderr, flush=True)
