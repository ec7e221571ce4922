"""Progress bars: shown on a terminal, silent when output is piped or when asked to be quiet."""
from __future__ import annotations

import sys

from tqdm import tqdm


def progress(total=None, desc: str = "", unit: str = "it", quiet: bool = False) -> tqdm:
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=disable, leave=False,
                dynamic_ncols=True)
