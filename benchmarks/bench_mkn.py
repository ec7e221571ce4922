"""Build and scoring speed of glm against KenLM, measured side by side in one run; prints tables.

    python benchmarks/bench_mkn.py [--corpora ../shared/corpora] [--orders 5 3] [--sizes 10 20 40]

Build: the first 75 MB of the Gutenberg training text (decompressed first), `glm build` against
`lmplz -o N -S 2G` (when lmplz is on PATH), wall time and peak RSS of each process, both writing ARPA.
Scoring: the Gutenberg test split with that model: tokens/s of `Model.score_many` (tokenization
included) against a loop over `kenlm.Model.score()` (when the kenlm module is installed; on a KenLM
binary when build_binary is on PATH, else on the ARPA file), and the load time of glm's binary format.
Scaling: `glm build` time and memory on the first 10, 20, 40 M tokens of the training text.
Every figure is the median of --repeat runs.
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CORPORA = HERE.parent.parent / "shared" / "corpora"


TIME = shutil.which("time", path="/usr/bin:/bin")


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of a command.

    The peak comes from /usr/bin/time when it exists: a child's ru_maxrss also counts the memory of
    the process it was forked from, here the benchmark itself.
    """
    rss_file = None
    if TIME:
        fd, rss_file = tempfile.mkstemp()
        os.close(fd)
        cmd = [TIME, "-f", "%M", "-o", rss_file] + cmd
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    if rss_file:
        with open(rss_file) as f:
            kb = int(f.read().split()[-1])
        os.unlink(rss_file)
        return wall, kb / 1e6
    return wall, usage.ru_maxrss / 1e6


def median_run(cmd, repeat) -> tuple[float, float]:
    runs = [run(cmd) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def prefix(src: Path, dst: Path, max_bytes: int | None = None, max_tokens: int | None = None) -> tuple[int, int]:
    """Write the first lines of a gzip file (up to a byte or token budget); returns (bytes, tokens)."""
    nbytes = ntok = 0
    with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
        for line in fin:
            if max_bytes is not None and nbytes + len(line) > max_bytes:
                break
            if max_tokens is not None and ntok >= max_tokens:
                break
            fout.write(line)
            nbytes += len(line)
            ntok += len(line.split())
    return nbytes, ntok


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--orders", type=int, nargs="+", default=[5, 3])
    ap.add_argument("--megabytes", type=int, default=75)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10, 20, 40], help="M tokens for the scaling table")
    ap.add_argument("--repeat", type=int, default=1, help="runs per build measurement (median)")
    ap.add_argument("--score-repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    gut = args.corpora / "gutenberg-top100-en"
    if not (gut / "train.txt.gz").exists():
        sys.exit(f"missing {gut}/train.txt.gz")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="glm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    lmplz = shutil.which("lmplz")
    build_binary = shutil.which("build_binary")
    try:
        import kenlm
    except ImportError:
        kenlm = None
    import glm

    train = work / "train.txt"
    nbytes, ntok = prefix(gut / "train.txt.gz", train, max_bytes=args.megabytes * 2**20)
    test = work / "test.txt"
    prefix(gut / "test.txt.gz", test)
    lines = test.read_text(encoding="utf-8").split("\n")[:-1]
    test_tokens = sum(len(ln.split()) + 1 for ln in lines)
    print(f"machine: {os.cpu_count()} cores; training text {nbytes / 1e6:.1f} MB, {ntok / 1e6:.2f} M words; "
          f"test {len(lines)} lines, {test_tokens} tokens; lmplz: {lmplz or 'not on PATH'}; "
          f"kenlm module: {'yes' if kenlm else 'no'}")

    # 1. builds (before this process loads any model, so that it stays small)
    build_rows = []
    for order in args.orders:
        arpa = work / f"glm.o{order}.arpa"
        g_wall, g_rss = median_run([sys.executable, "-m", "glm.cli", "build", "-q", "--order", str(order),
                                    str(train), "-o", str(arpa)], args.repeat)
        row = [order, f"{g_wall:.1f}", f"{g_rss:.2f}"]
        if lmplz:
            k_arpa = work / f"lmplz.o{order}.arpa"
            k_wall, k_rss = median_run([lmplz, "-o", str(order), "-S", "2G", "-T", str(work), "--text", str(train),
                                        "--arpa", str(k_arpa)], args.repeat)
            row += [f"{k_wall:.1f}", f"{k_rss:.2f}", f"{g_wall / k_wall:.2f}", f"{g_rss / k_rss:.2f}"]
            k_arpa.unlink()
        else:
            row += ["-", "-", "-", "-"]
        build_rows.append(row)
    table(f"Build, first {args.megabytes} MB of Gutenberg train (ARPA output; median of {args.repeat})",
          ["order", "glm s", "glm GB", "lmplz s", "lmplz GB", "time ratio", "RSS ratio"], build_rows)

    if args.sizes:
        rows = []
        for size in args.sizes:
            part = work / f"train.{size}M.txt"
            _, got = prefix(gut / "train.txt.gz", part, max_tokens=size * 10**6)
            wall, rss = median_run([sys.executable, "-m", "glm.cli", "build", "-q", "--order", "5", str(part),
                                    "-o", str(work / "scale.glmb")], args.repeat)
            rows.append([f"{got / 1e6:.1f}", f"{wall:.1f}", f"{rss:.2f}", f"{wall / got * 1e6:.2f}"])
            part.unlink()
        table("Scaling: glm build --order 5 to the binary format on the first N M words of Gutenberg train "
              "(the whole file has 35.7 M)", ["M words", "wall s", "peak GB", "s per M words"], rows)

    # 2. scoring
    score_rows = []
    for order in args.orders:
        arpa = work / f"glm.o{order}.arpa"
        binary = work / f"glm.o{order}.glmb"
        glm.load(arpa).save(binary)
        loads = []
        for _ in range(args.score_repeat):
            t = time.perf_counter()
            model = glm.load(binary)
            loads.append(time.perf_counter() - t)
        model.score_many(lines[:1000])
        speeds = []
        for nthreads in ("1", ""):
            os.environ["GLM_THREADS"] = nthreads
            runs = []
            for _ in range(args.score_repeat):
                t = time.perf_counter()
                total = float(model.score_many(lines).sum())
                runs.append(time.perf_counter() - t)
            speeds.append(test_tokens / statistics.median(runs))
        os.environ.pop("GLM_THREADS")
        row = [order, f"{speeds[0] / 1e6:.2f}", f"{speeds[1] / 1e6:.2f}", f"{statistics.median(loads) * 1e3:.1f}"]
        if kenlm:
            kpath = arpa
            if build_binary:
                kpath = work / f"kenlm.o{order}.bin"
                subprocess.run([build_binary, str(arpa), str(kpath)], check=True, capture_output=True)
            km = kenlm.Model(str(kpath))
            theirs = []
            for _ in range(args.score_repeat):
                t = time.perf_counter()
                ktotal = 0.0
                for ln in lines:
                    ktotal += km.score(ln)
                theirs.append(time.perf_counter() - t)
            k_tps = test_tokens / statistics.median(theirs)
            row += [f"{k_tps / 1e6:.2f}", f"{speeds[0] / k_tps:.2f}", f"{speeds[1] / k_tps:.2f}",
                    f"{abs(total - ktotal):.2g}"]
            del km
            if kpath != arpa:
                kpath.unlink()
        else:
            row += ["-", "-", "-", "-"]
        score_rows.append(row)
        del model
        binary.unlink()
        arpa.unlink()
    table(f"Scoring the Gutenberg test split ({test_tokens} tokens incl. </s>; median of {args.score_repeat}; "
          f"kenlm on a {'probing binary' if build_binary else 'ARPA'} model)",
          ["order", "glm score_many 1 thread Mtok/s", "glm score_many all cores Mtok/s", "glm binary load ms",
           "kenlm score() loop Mtok/s", "ratio 1 thread", "ratio all cores", "|sum diff| log10"], score_rows)

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
