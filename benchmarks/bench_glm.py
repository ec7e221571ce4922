"""GLM against our MKN on the same text, measured in one run; prints a table.

    python benchmarks/bench_glm.py [--corpora ../shared/corpora] [--tokens 20] [--orders 4 5]

Build: `glm build --method glm --tune-split 0` (the untuned GLM: bench_glm_default.py times the tuned default; and under `--memory --glm-memory`; finished pattern tables
go to the output file as they are built) and `--method mkn` on the first --tokens million tokens of the
Gutenberg training text (decompressed first), all writing the binary format: wall time and peak RSS of
each process (median of --repeat runs).  Scoring: tokens/s of one thread over the Gutenberg test split
(tokenized first), GLM and MKN, median of 3; "ready": seconds from glm.load to the first score (a GLM
copies its tables into the scorer's node records then, glm/records.py).
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mkn import DEFAULT_CORPORA, run  # noqa: E402


def head_tokens(src: Path, dst: Path, millions: float) -> int:
    """Copy whole lines of a gzip'd text until `millions` M tokens (words + one </s> per line)."""
    limit, n = int(millions * 1e6), 0
    with gzip.open(src, "rb") as f, open(dst, "wb") as out:
        for line in f:
            out.write(line)
            n += len(line.split()) + 1
            if n >= limit:
                break
    return n


def scoring_speed(model_path: str, ids_text: bytes) -> tuple[float, float]:
    """(tokens/s of one thread, seconds from loading to the first score: a GLM copies its tables into
    its scorer's records then)."""
    import glm
    t = time.perf_counter()
    model = glm.load(model_path)
    model.score("the")
    ready = time.perf_counter() - t
    ids = model.vocab.tokenize_text(ids_text)
    times, tokens = [], 0
    for _ in range(3):
        t = time.perf_counter()
        res = model.score_ids(ids)
        times.append(time.perf_counter() - t)
        tokens = int(res.tokens.sum())
    return tokens / statistics.median(times), ready


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--tokens", type=float, default=20.0, help="million training tokens")
    ap.add_argument("--orders", type=int, nargs="+", default=[4, 5])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--glm-memory", default="3G", help="budget of the second GLM build (--memory)")
    args = ap.parse_args()
    gut = args.corpora / "gutenberg-top100-en"
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.txt"
        n = head_tokens(gut / "train.txt.gz", train, args.tokens)
        with gzip.open(gut / "test.txt.gz", "rb") as f:
            test = f.read()
        print(f"training text: {n / 1e6:.1f} M tokens of Gutenberg train; scoring: Gutenberg test\n")
        print("| order | GLM build | GLM s | GLM GB | MKN s | MKN GB | time ratio | memory ratio "
              "| GLM Mtok/s (1 thread) | MKN Mtok/s (1 thread) | GLM ready s | MKN ready s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for order in args.orders:
            res = {}
            for key, method, extra in (("glm", "glm", []), ("budget", "glm", ["--memory", args.glm_memory]),
                                       ("mkn", "mkn", [])):
                out = str(Path(tmp) / f"{key}{order}.glmb")
                runs = [run([sys.executable, "-m", "glm.cli", "build", "--order", str(order), "--method",
                             method, str(train), "-o", out, "-q", "--tmpdir", tmp, "--tune-split", "0"] + extra)
                        for _ in range(args.repeat)]
                res[key] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                            *(scoring_speed(out, test) if key != "budget" else res["glm"][2:]))   # same model
                os.unlink(out)
            m = res["mkn"]
            for key, label in (("glm", "default"), ("budget", f"--memory {args.glm_memory}")):
                g = res[key]
                print(f"| {order} | {label} | {g[0]:.1f} | {g[1]:.2f} | {m[0]:.1f} | {m[1]:.2f} | {g[0] / m[0]:.2f} "
                      f"| {g[1] / m[1]:.2f} | {g[2] / 1e6:.2f} | {m[2] / 1e6:.2f} | {g[3]:.2f} | {m[3]:.2f} |",
                      flush=True)

if __name__ == "__main__":
    main()
