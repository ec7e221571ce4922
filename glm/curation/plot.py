"""Histogram of per-document perplexity (or commonness) with the thresholds marked; needs matplotlib."""
from __future__ import annotations

import numpy as np

from ..formats import atomic_output


def check_matplotlib() -> None:
    """Fail before the work when a plot is asked for and matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install matplotlib (or glm[plot])") from None


def plot_distribution(path, values, thresholds: dict | None = None, xlabel: str = "perplexity",
                      title: str = "", log: bool = True) -> None:
    """Write to path a histogram of values (log-spaced bins when log), a vertical line per named threshold."""
    check_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(values):
        lo, hi = values.min(), values.max()
        if log and hi > lo:
            bins = np.logspace(np.log10(lo), np.log10(hi), 80)
        else:
            bins = 80
        ax.hist(values, bins=bins, color="#4c72b0")
    if log:
        ax.set_xscale("log")
    for i, (name, x) in enumerate((thresholds or {}).items()):
        ax.axvline(x, color=f"C{(i % 8) + 1}", linestyle="--", label=f"{name} = {x:.4g}")
    if thresholds:
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1] if "." in str(path) else "png")
    plt.close(fig)
