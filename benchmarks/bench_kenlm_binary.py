"""KenLM binaries read by glm against the kenlm module on the same files, measured side by side in one run.

    python benchmarks/bench_kenlm_binary.py                      # Shakespeare, order 5 (data/)
    python benchmarks/bench_kenlm_binary.py --gutenberg 50000    # the first 50,000 Gutenberg paragraphs
    python benchmarks/bench_kenlm_binary.py --binaries a.probing b.trie --test test.txt

An ARPA file is built with `glm build` and turned into binaries by `build_binary` (probing, trie, trie
-q 8 -a 22; it must be on PATH unless --binaries are given).  For each binary: the load time of
`glm.load` and of `kenlm.Model`, and the scoring speed of the test lines (Shakespeare's held-out lines,
or the Gutenberg test split): `Model.score_many` (tokenization included, all cores), the same on one
thread (`score_ids` of a tokenized stream: tokenization and scoring), and a Python loop over
`kenlm.Model.score`.  Runs alternate between glm and kenlm; figures are medians of --repeat runs.
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CORPORA = REPO.parent / "shared" / "corpora"
KINDS = {"probing": [], "trie": ["trie"], "trie -q 8 -a 22": ["-q", "8", "-a", "22", "trie"]}


def read_lines(path: Path, limit: int | None = None) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            out.append(line.rstrip("\n"))
    return out


def make_binaries(args, tmp: Path) -> tuple[list[tuple[str, Path]], Path]:
    if args.gutenberg:
        train = tmp / "train.txt"
        train.write_text("\n".join(read_lines(args.corpora / "gutenberg-top100-en" / "train.txt.gz",
                                              args.gutenberg)) + "\n", encoding="utf-8")
        test = args.corpora / "gutenberg-top100-en" / "test.txt.gz"
    else:
        train, test = REPO / "data" / "shakespeare-train.txt.gz", REPO / "data" / "shakespeare-test.txt.gz"
    arpa = tmp / "model.arpa"
    subprocess.run([sys.executable, "-m", "glm.cli", "build", "--order", str(args.order), str(train), "-o",
                    str(arpa), "-q"], check=True)
    build_binary = shutil.which("build_binary")
    if build_binary is None:
        sys.exit("build_binary is not on PATH (or pass --binaries)")
    out = []
    for kind, opts in KINDS.items():
        path = tmp / f"model.{kind.replace(' ', '')}"
        subprocess.run([build_binary, *opts, str(arpa), str(path)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        out.append((kind, path))
    return out, test


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(kind: str, path: Path, lines: list[str], repeat: int) -> dict:
    import kenlm

    import glm
    loads = {"glm": [], "kenlm": []}
    for _ in range(repeat):
        loads["glm"].append(timed(lambda: glm.load(path)))
        loads["kenlm"].append(timed(lambda: kenlm.Model(str(path))))
    model, klm = glm.load(path), kenlm.Model(str(path))
    ours, theirs = model.score_many(lines), np.array([klm.score(line) for line in lines])
    runs = {"score_many": [], "one thread": [], "kenlm": []}
    for _ in range(repeat):
        runs["score_many"].append(timed(lambda: model.score_many(lines)))
        runs["one thread"].append(timed(lambda: model.score_ids(model.vocab.tokenize_text("\n".join(lines) + "\n"))))
        runs["kenlm"].append(timed(lambda: [klm.score(line) for line in lines]))
    med = {k: statistics.median(v) for k, v in {**{"load " + k: v for k, v in loads.items()}, **runs}.items()}
    med.update(kind=kind, size=path.stat().st_size, diff=float(np.abs(ours - theirs).max()))
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--gutenberg", type=int, default=0, metavar="PARAGRAPHS",
                    help="train on this many Gutenberg paragraphs and score its test split")
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--binaries", type=Path, nargs="*", help="KenLM binaries to measure instead")
    ap.add_argument("--test", type=Path, help="test lines (with --binaries)")
    ap.add_argument("--lines", type=int, default=None, help="score only the first LINES test lines")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.binaries:
            binaries = [(p.name, p) for p in args.binaries]
            test = args.test or REPO / "data" / "shakespeare-test.txt.gz"
        else:
            binaries, test = make_binaries(args, Path(tmp))
        lines = read_lines(test, args.lines)
        tokens = sum(len(line.split()) + 1 for line in lines)
        print(f"test: {test.name}, {len(lines)} lines, {tokens} tokens (words + </s>); medians of {args.repeat} runs\n")
        print("| binary | MB | load glm | load kenlm | glm score_many | glm 1 thread | kenlm loop | "
              "glm/kenlm (1 thread) | max diff |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind, path in binaries:
            r = measure(kind, path, lines, args.repeat)
            rate = lambda s: f"{tokens / s / 1e6:.2f} M tok/s"  # noqa: E731
            print(f"| {r['kind']} | {r['size'] / 1e6:.1f} | {r['load glm'] * 1e3:.1f} ms | "
                  f"{r['load kenlm'] * 1e3:.1f} ms | {rate(r['score_many'])} | {rate(r['one thread'])} | "
                  f"{rate(r['kenlm'])} | {r['kenlm'] / r['one thread']:.2f}x | {r['diff']:.1e} |")


if __name__ == "__main__":
    main()
