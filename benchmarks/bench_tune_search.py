"""Tuning time and held-out perplexity of the two searches of glm.tune (docs/glm.md §3).

    python benchmarks/bench_tune_search.py CORPUS.txt.gz ORDER [linear:3 golden:2 ...]

The model of the lines not held out (every 10th line held out, as tune_split=0.1) is tuned on the
held-out lines with each search:rounds given (default linear:3 golden:2), each on a fresh model.
"""
from __future__ import annotations

import gzip
import sys
import time
from fractions import Fraction

import numpy as np

from glm.build import count
from glm.generalized import estimate
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.split import held_out
from glm.tune import tune


def main() -> None:
    path, order = sys.argv[1], int(sys.argv[2])
    runs = sys.argv[3:] or ["linear:3", "golden:2"]
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    h = held_out(np.arange(len(lines)), Fraction(1, 10)).tolist()
    rest = [ln for ln, x in zip(lines, h) if not x]
    held = [ln for ln, x in zip(lines, h) if x]
    print("| search | rounds | tuning s | held-out perplexity |\n|---|---|---|---|")
    for run in runs:
        search, rounds = run.split(":")
        vocab, levels = count(lines=rest, order=order)
        model = GeneralizedModel(vocab, estimate(levels, order, "glm", Options(discount_fallback=()),
                                                 keep_stats=True))
        t0 = time.perf_counter()
        tuned = tune(model, lines=held, label="held out", search=search, rounds=int(rounds))
        print(f"| {search} | {rounds} | {time.perf_counter() - t0:.1f} | "
              f"{10 ** tuned.meta['heldout_cross_entropy']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
