"""Per-document scoring and SoftDedup speed of glm, with KenLM's Python loop measured in the same run.

    python benchmarks/bench_curation.py [--corpora ../shared/corpora] [--megabytes 40] [--score-megabytes 30]
                                        [--repeat 3] [--no-softdedup]

Scoring: a 5-gram model is built by `glm build` on the first --megabytes of the Gutenberg training text
(one paragraph per line) and written as ARPA; the next --score-megabytes of paragraphs are the
documents.  `glm score MODEL.glmb TEXT --per-doc -o OUT.jsonl` (a whole process: reading, scoring,
writing the rows) with 1 and 2 workers, on the text and on the same paragraphs as JSONL, against a loop
over `kenlm.Model.score(line)` in one process on the same ARPA file (the lines already in memory; model
load time excluded).  glm scores the binary file converted from that ARPA; the conversion is timed
apart.  SoftDedup: `glm softdedup` (order-4 model trained on the corpus, scoring, weights) on the whole
200 MB Gutenberg training text, wall time and peak RSS from /usr/bin/time.  Every figure is the median
of --repeat runs.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mkn import DEFAULT_CORPORA, median_run, table  # noqa: E402


def timed(cmd: list[str], repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system, its worker processes included)."""
    walls, cpus = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - t)
        if status != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
        cpus.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def split_text(src: Path, train: Path, docs: Path, train_bytes: int, doc_bytes: int) -> None:
    """The first train_bytes of src into train, the next doc_bytes into docs (whole lines)."""
    n = 0
    with gzip.open(src, "rb") as fin, open(train, "wb") as ft, open(docs, "wb") as fd:
        for line in fin:
            if n < train_bytes:
                ft.write(line)
            elif n < train_bytes + doc_bytes:
                fd.write(line)
            else:
                break
            n += len(line)


def glm_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "glm.cli", *map(str, args)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--megabytes", type=int, default=40, help="training text of the 5-gram model")
    ap.add_argument("--score-megabytes", type=int, default=30, help="documents to score")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-softdedup", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    import kenlm

    gut = args.corpora / "gutenberg-top100-en" / "train.txt.gz"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="glm-bench-cur-"))
    work.mkdir(parents=True, exist_ok=True)
    train, docs, jsonl = work / "train.txt", work / "docs.txt", work / "docs.jsonl"
    split_text(gut, train, docs, args.megabytes << 20, args.score_megabytes << 20)
    lines = docs.read_text(encoding="utf-8").split("\n")[:-1]
    with open(jsonl, "w", encoding="utf-8") as f:
        for i, ln in enumerate(lines):
            f.write(json.dumps({"id": f"g{i}", "text": ln, "source": "gutenberg"}) + "\n")
    n_docs = len(lines)
    n_tok = sum(len(ln.split()) + 1 for ln in lines)
    print(f"machine: {os.cpu_count()} cores (shared with other work; load average now "
          f"{os.getloadavg()[0]:.1f}); model text {args.megabytes} MiB; "
          f"documents: {n_docs} paragraphs, {n_tok} tokens incl. </s>, {docs.stat().st_size / 1e6:.1f} MB")

    arpa, binary = work / "m.arpa", work / "m.glmb"
    subprocess.run(glm_cmd("build", "-q", "--order", 5, train, "-o", arpa), check=True)
    t = time.perf_counter()
    subprocess.run(glm_cmd("convert", "-q", arpa, binary), check=True)
    convert_s = time.perf_counter() - t

    rows = []
    km = kenlm.Model(str(arpa))
    walls, cpus, ktotal = [], [], 0.0
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        ktotal = 0.0
        for ln in lines:
            ktotal += km.score(ln)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    del km
    k_s, k_cpu = statistics.median(walls), statistics.median(cpus)
    rows.append(["kenlm Model.score() loop, 1 process", "text", 1, f"{k_s:.2f}", f"{k_cpu:.2f}",
                 f"{n_docs / k_s:,.0f}", f"{n_tok / k_s / 1e6:.2f}", "1.00"])

    out = work / "scores.jsonl"
    gtotal = None
    for fmt, src, workers in (("text", docs, 1), ("text", docs, 2), ("jsonl", jsonl, 1), ("jsonl", jsonl, 2)):
        cmd = glm_cmd("score", binary, src, "--per-doc", "-o", out, "-q", "--format", fmt, "-j", workers)
        wall, cpu = timed(cmd, args.repeat)
        rows.append([f"glm score --per-doc -j {workers}", fmt, workers, f"{wall:.2f}", f"{cpu:.2f}",
                     f"{n_docs / wall:,.0f}", f"{n_tok / wall / 1e6:.2f}", f"{k_s / wall:.2f}"])
        if gtotal is None:
            with open(out, encoding="utf-8") as f:
                gtotal = sum(json.loads(r)["log10_prob"] for r in f)
    table(f"Per-document scoring, Gutenberg paragraphs, 5-gram (median of {args.repeat}; glm: whole process "
          f"incl. start-up and writing the rows; kenlm: loop only, ARPA model)",
          ["scorer", "input", "workers", "wall s", "CPU s", "docs/s", "Mtok/s", "x kenlm (wall)"], rows)
    print(f"sum of log10 probabilities: glm {gtotal:.3f}, kenlm {ktotal:.3f}; "
          f"ARPA -> binary conversion (once per model): {convert_s:.1f} s")

    if not args.no_softdedup:
        wall, rss = median_run(glm_cmd("softdedup", gut, "-o", work / "weights.jsonl", "-q"), args.repeat)
        table(f"glm softdedup (order 4, trained on the input) on {gut.parent.name}/{gut.name}, "
              f"{gut.stat().st_size / 1e6:.0f} MB gzip'd (median of {args.repeat})",
              ["wall s", "peak RSS GB"], [[f"{wall:.1f}", f"{rss:.2f}"]])

    for p in work.iterdir():
        p.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
