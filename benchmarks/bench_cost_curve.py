"""The cost curve: build time, memory and disk of order-5 models on synthetic corpora of growing size.

    PATH=/path/to/kenlm/bin:$PATH python benchmarks/bench_cost_curve.py --sizes 0.05 0.1 0.2 0.5 1 2 \\
        [--corpora ../shared/corpora] [--workdir DIR] [--tmpdir DIR] [--plot docs/img/cost-curve.png]

Corpora: paragraphs sampled from the trigram model of the 200 MB Gutenberg training text
(`trigram_sampler.py`; seeded, so every size is the same text as the one before it, continued), one
file of SIZE GB (10^9 bytes, whole paragraphs) at a time in --workdir (default: a temporary directory
removed at the end).  Before the builds, the distinct 3-, 4- and 5-grams per million words of the
synthetic text are compared with the real text's at the same number of words (at each of --stats-gb).

For each size, one ARPA file per build (written to --workdir, then deleted):

* `glm build --order N` (everything in memory);
* `glm build --memory B --tmpdir T`;
* `lmplz -o N -S B -T T` (when lmplz is on PATH);
* `glm build --dask --memory B` on a 2-worker LocalCluster (when `distributed` is installed): B bounds
  the client's estimation and writing and each worker (benchmarks/bench_dask_budget.py gives the peak
  of each process).

Wall time and peak RSS per process (/usr/bin/time; for Dask, that of the largest process of the tree:
ru_maxrss is a maximum, not a sum), the peak disk use of a fresh --tmpdir subdirectory (polled every
0.2 s, Linux only for files already deleted but still open or mapped; every build also gets it as
$TMPDIR), and the n-grams of the model (its ARPA header).  One run each
(--repeat for medians).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mkn import DEFAULT_CORPORA, median_run, table  # noqa: E402
from trigram_sampler import TrigramSampler, distinct_ngrams  # noqa: E402


def descendants(root: int) -> list[int]:
    """The processes below root (from the parent ids in /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def disk_use(path: Path) -> int:
    """Bytes allocated to the files under path, counting those already deleted but still open or mapped
    by a process below this one (lmplz unlinks its temporary files as soon as it creates them)."""
    files: dict[tuple[int, int], int] = {}
    for root, _, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
                files[st.st_dev, st.st_ino] = st.st_blocks * 512
            except OSError:
                pass
    prefix = str(path) + "/"
    for pid in descendants(os.getpid()):
        for kind in ("fd", "map_files"):
            try:
                entries = os.listdir(f"/proc/{pid}/{kind}")
            except OSError:
                continue
            for e in entries:
                link = f"/proc/{pid}/{kind}/{e}"
                try:
                    if os.readlink(link).startswith(prefix):
                        st = os.stat(link)
                        files[st.st_dev, st.st_ino] = st.st_blocks * 512
                except OSError:
                    pass
    return sum(files.values())


class DiskPeak:
    """Polls the disk use of a directory in a thread while a `with` block runs; .peak in bytes."""

    def __init__(self, path: Path, every: float = 0.2):
        self.path, self.every, self.peak = path, every, 0
        self._stop = threading.Event()

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, disk_use(self.path))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def arpa_counts(path: Path) -> list[int]:
    """The n-gram counts of an ARPA file's \\data\\ header."""
    counts = []
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line.startswith(b"ngram "):
                counts.append(int(line.split(b"=")[1]))
            elif counts and not line:
                break
    return counts


def growth(sampler: TrigramSampler, work: Path, sizes: list[float], seed: int) -> list[list]:
    """Rows: distinct n-grams per M words of the synthetic text of each size against the real text's at
    the same number of words (all of it when it is shorter)."""
    rows = []
    real_words = int((sampler.corpus != 1).sum())
    for gb in sizes:
        t, c = time.perf_counter(), time.process_time()
        path = work / "stats.txt"
        _, words, ids = sampler.write(path, int(gb * 1e9), seed, keep=1 << 62)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        path.unlink()
        print(f"generated {gb:g} GB, {words / 1e6:.1f} M words in {wall:.1f} s "
              f"({words / wall / 1e6:.2f} M words/s wall, {words / cpu / 1e6:.2f} M words/s of CPU time)",
              flush=True)
        n = min(words, real_words)
        ours, real = distinct_ngrams(ids, n), distinct_ngrams(sampler.corpus, n)
        del ids
        rows += [[f"{gb:g}", f"{n / 1e6:.1f}", k, f"{real[k] / n * 1e6:,.0f}", f"{ours[k] / n * 1e6:,.0f}",
                  f"{ours[k] / real[k]:.2f}"] for k in sorted(ours)]
    table("Distinct n-grams per M words: the first words of the synthetic text of each size and as many "
          "of Gutenberg train (lines padded <s> .. </s>)",
          ["synthetic GB", "M words", "n", "Gutenberg", "synthetic", "synthetic / real"], rows)
    return rows


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["build"] for r in results):
        rs = [r for r in results if r["build"] == name]
        x = [r["gb"] for r in rs]
        a.plot(x, [r["wall"] / r["words"] * 1e6 for r in rs], "o-", label=name)
        b.plot(x, [r["rss"] for r in rs], "o-", label=name)
    sizes = sorted({r["gb"] for r in results})
    for ax, label in ((a, "seconds per M words"), (b, "peak RSS (GB)")):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{g:g}" for g in sizes])
        ax.minorticks_off()
        ax.set_xlabel("synthetic text (GB)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle("Order-5 builds, ARPA output (2 shared cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--sizes", type=float, nargs="*", default=[0.05, 0.1, 0.2, 0.5, 1, 2], help="GB of text")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--memory", default="2G", help="the budget of glm --memory, lmplz -S and the Dask client")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model-mb", type=float, default=None, help="sample from the first MB of the text only (smoke test)")
    ap.add_argument("--stats-gb", type=float, nargs="*", default=[0.1],
                    help="sizes of the n-gram growth comparison (none: skip it)")
    ap.add_argument("--workdir", type=Path, default=None, help="corpora and outputs (default: a temp dir)")
    ap.add_argument("--tmpdir", type=Path, default=None, help="where the builds spill (default: --workdir)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--plot", type=Path, default=None, help="save a plot (matplotlib) to this PNG")
    ap.add_argument("--json", type=Path, default=None, help="save the measurements to this file")
    args = ap.parse_args()

    train = args.corpora / "gutenberg-top100-en" / "train.txt.gz"
    if not train.exists():
        sys.exit(f"missing {train}: give --corpora DIR holding gutenberg-top100-en/train.txt.gz")
    lmplz = shutil.which("lmplz")
    try:
        import distributed  # noqa: F401
        dask = not args.no_dask
    except ImportError:
        dask = False
    work = Path(args.workdir or tempfile.mkdtemp(prefix="glm-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    tmproot = args.tmpdir or work
    try:
        t = time.perf_counter()
        sampler = TrigramSampler.from_file(train, None if args.model_mb is None else int(args.model_mb * 1e6))
        print(f"{os.cpu_count()} cores; trigram model of {train.name}: {len(sampler.words):,} words, "
              f"{len(sampler.count):,} contexts, {time.perf_counter() - t:.0f} s; lmplz: {lmplz or 'not on PATH'}; "
              f"dask: {'yes' if dask else 'no'}", flush=True)
        if args.stats_gb:
            growth(sampler, work, args.stats_gb, args.seed)

        glm = [sys.executable, "-m", "glm.cli", "build", "--order", str(args.order), "-q"]
        results = []
        for gb in args.sizes:
            text = work / f"synthetic-{gb:g}GB.txt"
            t = time.perf_counter()
            nbytes, words, _ = sampler.write(text, int(gb * 1e9), args.seed)
            print(f"{gb:g} GB: {words / 1e6:.1f} M words, generated in {time.perf_counter() - t:.0f} s", flush=True)
            out = work / "model.arpa"
            builds = [("glm in memory", glm + [str(text), "-o", str(out)]),
                      (f"glm --memory {args.memory}", glm + [str(text), "-o", str(out), "--memory", args.memory,
                                                             "--tmpdir", "{tmp}"])]
            if lmplz:
                builds.append((f"lmplz -S {args.memory}", [lmplz, "-o", str(args.order), "-S", args.memory,
                                                          "-T", "{tmp}", "--text", str(text), "--arpa", str(out)]))
            if dask:
                builds.append((f"glm --dask --memory {args.memory}",
                               glm + [str(text), "-o", str(out), "--dask", "--memory", args.memory,
                                      "--tmpdir", "{tmp}"]))
            for name, cmd in builds:
                tmp = Path(tempfile.mkdtemp(prefix="build-", dir=tmproot))
                cmd = ["env", f"TMPDIR={tmp}"] + [c.replace("{tmp}", str(tmp)) for c in cmd]
                with DiskPeak(tmp) as disk:
                    wall, rss = median_run(cmd, args.repeat)
                shutil.rmtree(tmp, ignore_errors=True)
                counts = arpa_counts(out)
                r = dict(gb=gb, bytes=nbytes, words=words, build=name, wall=wall, rss=rss, disk=disk.peak / 1e9,
                         arpa=out.stat().st_size / 1e9, ngrams=counts)
                out.unlink()
                results.append(r)
                print(f"  {name}: {wall:.1f} s, {rss:.2f} GB RSS, {r['disk']:.2f} GB tmp, "
                      f"{sum(counts):,} n-grams", file=sys.stderr, flush=True)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
            text.unlink()
            if args.plot:
                plot(results, args.plot)

        if not results:
            return
        rows = []
        for r in results:
            lm = [x for x in results if x["gb"] == r["gb"] and x["build"].startswith("lmplz")]
            ratio = f"{r['wall'] / lm[0]['wall']:.2f}" if lm and r["build"].startswith("glm") else ""
            rows.append([f"{r['gb']:g}", f"{r['words'] / 1e6:.1f}", r["build"], f"{r['wall']:.1f}",
                         f"{r['wall'] / r['words'] * 1e6:.2f}", f"{r['rss']:.2f}", f"{r['disk']:.2f}",
                         f"{sum(r['ngrams']) / 1e6:.1f}", ratio])
        table(f"Order {args.order}, ARPA output, one build at a time ({os.cpu_count()} cores)",
              ["GB", "M words", "build", "wall s", "s / M words", "peak RSS GB", "tmp disk GB", "M n-grams",
               "wall / lmplz"], rows)
        rows = []
        for name in dict.fromkeys(r["build"] for r in results):
            per = [r["wall"] / r["words"] * 1e6 for r in results if r["build"] == name]
            rows.append([name] + [f"{p:.2f}" for p in per] + [f"{max(per) / min(per):.2f}"])
        table("Seconds per M words by size (max / min: 1.0 is a flat cost per token)",
              ["build"] + [f"{gb:g} GB" for gb in args.sizes] + ["max / min"], rows)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
