"""Fuzzing of the model readers: random mutations of each model format, each loaded and scored in a
child process with a timeout (tests/model_fuzz.py); prints the table of outcomes.

    python benchmarks/fuzz_models.py [--per-format 1000] [--seed 1] [--timeout 20] [--show 5]

Formats: ARPA, .glm text, MKN .glmb, GLM .glmb, built from the first lines of data/shakespeare-train.
The target: no crash, no hang, no insane scores (NaN, +inf, positive), no unclean error (a traceback
that is not a glm error).  "zero prob" counts sane loads with a score of -inf (a probability of 0, which
a model may hold); "verify flags" the sane loads that `Model.verify` finds damaged.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from model_fuzz import FORMATS, OUTCOMES, campaign, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-format", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds without an answer: a hang")
    ap.add_argument("--train-lines", type=int, default=1500)
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    ap.add_argument("--show", type=int, default=5, help="examples to print per outcome that is not clean")
    args = ap.parse_args()
    with gzip.open(HERE.parent / "data" / "shakespeare-train.txt.gz", "rt", encoding="utf-8") as f:
        train = f.read().split("\n")[:args.train_lines]
    with gzip.open(HERE.parent / "data" / "shakespeare-test.txt.gz", "rt", encoding="utf-8") as f:
        test = f.read().split("\n")[:40] + ["", "qwertyuiop asdfgh", "the the the the"]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="glm-fuzz-") as work:
        res = campaign(work, train, test, args.per_format, args.seed, args.formats, args.timeout)
    header = ["format", "mutations", *OUTCOMES]
    rows = table(res)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"model fuzzing: seed {args.seed}, {args.per_format} mutations per format, {time.time() - t0:.0f} s")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))
    print("\nmutations per kind (all formats):",
          dict(Counter(w.split()[0] for items in res.values() for w, _, _ in items).most_common()))
    for fmt, items in res.items():
        for outcome in ("insane scores", "unclean error", "crash", "hang"):
            bad = [(w, d) for w, o, d in items if o == outcome]
            for w, d in bad[:args.show]:
                print(f"{fmt}: {outcome}: {w}: {d}")
    if args.show:
        for fmt, items in res.items():
            flagged = [(w, d) for w, o, d in items if o == "sane load" and "verify:" in d]
            missed = [w for w, o, d in items if o == "sane load" and "verify:" not in d]
            print(f"{fmt}: sane loads flagged by verify: {len(flagged)}; not flagged, by kind: "
                  f"{dict(Counter(w.split()[0] for w in missed))}")


if __name__ == "__main__":
    main()
