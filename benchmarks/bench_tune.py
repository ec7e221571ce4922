"""Tuning cost against building (issue 16, "tuning an order-5 model costs at most as much as building
it"): per corpus, the model of the lines not held out (every 10th line held out, as tune_split=0.1) is
built (counted and estimated with its statistics), then fitted on the held-out lines (glm.tune.fit:
trace, then L-BFGS-B over the lattice), at each stopping tolerance given.

    python benchmarks/bench_tune.py CORPUS.txt.gz [CORPUS ...] [--order 5] [--ftol 1e-6 1e-7] [--repeat 3]

Prints a markdown table: build seconds, fit seconds (medians of --repeat runs, alternating), fit/build,
evaluations, held-out perplexity.  scipy's import (about 0.35 s) is done before the timings: a build
pays it once, as part of the fit.
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import time
from fractions import Fraction

import numpy as np
import scipy.optimize  # noqa: F401  (imported once, outside the timings)

import glm.tune as tuning
from glm.build import count
from glm.generalized import estimate
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.split import held_out, tuning_lines


def split(path: str):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    h = held_out(np.arange(len(lines)), Fraction(1, 10)).tolist()
    held = [ln for ln, x in zip(lines, h) if x]
    return [ln for ln, x in zip(lines, h) if not x], tuning_lines(held)     # (at most TUNE_TOKENS, as a build)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpora", nargs="+")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--ftol", type=float, nargs="+", default=[tuning.FTOL])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| corpus | held-out tokens | ftol | build s | fit s | fit / build | evaluations | held-out ppl |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.corpora:
        rest, held = split(path)
        for ftol in args.ftol:
            tuning.FTOL = ftol
            builds, fits = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                vocab, levels = count(lines=rest, order=args.order)
                model = GeneralizedModel(vocab, estimate(levels, args.order, "glm", Options(discount_fallback=()),
                                                         keep_stats=True))
                t1 = time.perf_counter()
                f = tuning.fit(model, lines=held, label="held out")
                t2 = time.perf_counter()
                builds.append(t1 - t0)
                fits.append(t2 - t1)
                del model, levels
            tokens = sum(len(ln.split()) + 1 for ln in held)
            b, s = statistics.median(builds), statistics.median(fits)
            print(f"| {path.rsplit('/', 1)[-1]} | {tokens:,} | {ftol:g} | {b:.2f} | {s:.2f} | {s / b:.2f} | "
                  f"{f.evaluations} | {10 ** f.cross_entropy:.3f} |", flush=True)


if __name__ == "__main__":
    main()
