"""ARPA formatting kernels (compiled: ext/_arpa.pyx)."""
from typing import Any

import numpy as np


def format_floats(x: np.ndarray) -> Any: ...
def format_level(n: int, order: int, levels: list[dict[str, Any]], blob: np.ndarray, offsets: np.ndarray,
                 lo: int, hi: int) -> bytearray: ...
