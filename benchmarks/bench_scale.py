"""Building within a memory budget, and on Dask, against lmplz with the same budget; prints a table.

    python benchmarks/bench_scale.py [--corpora ../shared/corpora] [--budgets 1G 4G] [--order 5]

The whole Gutenberg training text (decompressed first, 200 MB, 35.7 M words), one ARPA file per build:

* `glm build --memory B` for each budget B against `lmplz -o N -S B` (when lmplz is on PATH);
* `glm build` without a budget (everything in memory), for reference;
* `glm build --dask` on a 2-worker LocalCluster, against that in-memory build (its overhead).  Its peak
  RSS is the client's only (the workers are other processes).

Wall time and peak RSS per process (/usr/bin/time), one run each (--repeat for medians); the glm files
are compared byte for byte.  Every build writes to --tmpdir (default: the system's temp directory).
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mkn import DEFAULT_CORPORA, median_run, prefix, table  # noqa: E402

from glm.spill import parse_size  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--budgets", nargs="+", default=["1G", "4G"])
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--max-mb", type=float, default=None, help="only the first MB of the text (smoke test)")
    args = ap.parse_args()
    glm = [sys.executable, "-m", "glm.cli", "build", "--order", str(args.order), "-q"]
    lmplz = shutil.which("lmplz")
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        tmp = Path(tmp)
        text = tmp / "train.txt"
        nbytes, ntok = prefix(args.corpora / "gutenberg-top100-en" / "train.txt.gz", text,
                              None if args.max_mb is None else int(args.max_mb * 1e6))
        print(f"corpus: {nbytes / 1e6:.1f} MB, {ntok / 1e6:.1f} M words; order {args.order}; "
              f"{os.cpu_count()} cores")
        rows, outputs = [], {}

        def measure(name, cmd, out, budget=None):
            wall, gb = median_run(cmd, args.repeat)
            # /usr/bin/time reports KiB, which run() divides by 1e6
            ratio = "" if budget is None else f"{gb * 1.024e9 / parse_size(budget):.2f}"
            rows.append([name, f"{wall:.1f}", f"{gb:.2f}", ratio, ""])
            outputs[name] = out
            print(f"  {name}: {wall:.1f} s, {gb:.2f} GB", file=sys.stderr)
            return wall

        ref = tmp / "memory.arpa"
        base = measure("glm (in memory)", glm + [str(text), "-o", str(ref)], ref)
        for budget in args.budgets:
            out = tmp / f"glm-{budget}.arpa"
            measure(f"glm --memory {budget}", glm + [str(text), "-o", str(out), "--memory", budget]
                    + (["--tmpdir", args.tmpdir] if args.tmpdir else []), out, budget)
            if lmplz:
                lm_out = tmp / f"lmplz-{budget}.arpa"
                measure(f"lmplz -S {budget}", [lmplz, "-o", str(args.order), "-S", budget, "-T", str(tmp),
                                               "--text", str(text), "--arpa", str(lm_out)], None, budget)
                lm_out.unlink()
            if out != ref:
                assert filecmp.cmp(ref, out, shallow=False), f"{out.name} differs from the in-memory build"
                out.unlink()
        if not args.no_dask:
            out = tmp / "dask.arpa"
            wall = measure("glm --dask (LocalCluster, 2 workers)", glm + [str(text), "-o", str(out), "--dask"], out)
            assert filecmp.cmp(ref, out, shallow=False), "the Dask build differs from the in-memory build"
            rows[-1][-1] = f"{wall / base:.2f}x the in-memory time; client RSS only"
        table(f"Build, order {args.order}, ARPA output (every glm file identical to the in-memory one)",
              ["build", "wall s", "peak RSS GB", "RSS / budget", "note"], rows)


if __name__ == "__main__":
    main()
