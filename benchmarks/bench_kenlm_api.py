"""Per-call speed of glm against the kenlm module, measured side by side in one run; prints tables.

    python benchmarks/bench_kenlm_api.py [--corpora ../shared/corpora] [--gutenberg-mb 20] [--repeat 5]

What a data pipeline or a decoder does: a Python loop calling, once per line, ``score(line)``,
``list(full_scores(line))``, or per word ``BaseScore(state, word, out)`` from ``BeginSentenceWrite``.
Models: order 5, built by ``glm build`` on PTB train and on the first --gutenberg-mb MB of Gutenberg
train, scored on the PTB test split and the Gutenberg test split (paragraphs).  Pairs, each timed
alternately (glm, kenlm, kenlm, glm, ...) --repeat times on the same lines, medians:

* glm.kenlm.Model on glm's binary (.glmb) against kenlm.Model on KenLM's probing binary (build_binary);
* glm.kenlm.Model on the ARPA file against kenlm.Model on the same ARPA file;
* glm.Model (glm's own API, .glmb) against kenlm on the probing binary.

ratio: the median over the pairs of kenlm's time / glm's time (above 1: glm is faster).  Needs the kenlm module; build_binary is
looked up on PATH (without it the probing rows are left out).
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

from bench_mkn import table

HERE = Path(__file__).resolve().parent
DEFAULT_CORPORA = HERE.parent.parent / "shared" / "corpora"


def prefix(src: Path, dst: Path, max_bytes: int | None = None) -> int:
    """Write the first lines of a gzip file (up to max_bytes); returns the bytes written."""
    n = 0
    with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
        for line in fin:
            if max_bytes is not None and n + len(line) > max_bytes:
                break
            fout.write(line)
            n += len(line)
    return n


# -- the loops timed (the same code for both modules) ----------------------------------------------
def loop_score(model, lines, _state):
    t = time.perf_counter()
    total = 0.0
    for line in lines:
        total += model.score(line)
    return time.perf_counter() - t, total


def loop_full(model, lines, _state):
    t = time.perf_counter()
    total = 0.0
    for line in lines:
        for p, _, _ in model.full_scores(line):
            total += p
    return time.perf_counter() - t, total


def loop_state(model, lines, state):
    words = [line.split() for line in lines]
    t = time.perf_counter()
    total = 0.0
    a, b = state(), state()
    for sentence in words:
        model.BeginSentenceWrite(a)
        for w in sentence:
            total += model.BaseScore(a, w, b)
            a, b = b, a
    return time.perf_counter() - t, total


LOOPS = [("score(line)", loop_score), ("full_scores(line)", loop_full), ("BaseScore per word", loop_state)]


def race(ours, theirs, lines, loop, repeat, ours_state, theirs_state):
    """Median seconds of glm and of kenlm, run alternately, the median of the ratios of the pairs
    (kenlm / glm: robust to the machine's speed drifting) and the largest difference of the totals."""
    loop(ours, lines[:200], ours_state)
    loop(theirs, lines[:200], theirs_state)
    a, b, diff = [], [], 0.0
    for i in range(repeat):
        first, second = (ours, theirs) if i % 2 == 0 else (theirs, ours)     # (who goes first alternates)
        t1, x = loop(first, lines, ours_state if first is ours else theirs_state)
        t2, y = loop(second, lines, ours_state if second is ours else theirs_state)
        (ta, tb) = (t1, t2) if first is ours else (t2, t1)
        a.append(ta)
        b.append(tb)
        diff = max(diff, abs(x - y))
    return statistics.median(a), statistics.median(b), statistics.median(y / x for x, y in zip(a, b)), diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--gutenberg-mb", type=int, default=20, help="MB of Gutenberg train for its model")
    ap.add_argument("--gutenberg-lines", type=int, default=5000, help="test paragraphs timed (0: all)")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    import kenlm
    import glm
    import glm.kenlm as gk
    build_binary = shutil.which("build_binary")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="glm-bench-api-"))
    work.mkdir(parents=True, exist_ok=True)
    corpora = [("PTB", args.corpora / "ptb" / "ptb.train.txt.gz", None, args.corpora / "ptb" / "ptb.test.txt.gz", 0),
               ("Gutenberg", args.corpora / "gutenberg-top100-en" / "train.txt.gz", args.gutenberg_mb << 20,
                args.corpora / "gutenberg-top100-en" / "test.txt.gz", args.gutenberg_lines)]
    print(f"machine: {os.cpu_count()} cores; order {args.order}; median of {args.repeat} alternating runs; "
          f"build_binary: {build_binary or 'not on PATH'}")
    rows = []
    for name, train_src, max_bytes, test_src, max_lines in corpora:
        if not train_src.exists():
            print(f"{name}: {train_src} missing, skipped")
            continue
        train = work / f"{name}.train.txt"
        nbytes = prefix(train_src, train, max_bytes)
        with gzip.open(test_src, "rt", encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f]
        if max_lines:
            lines = lines[:max_lines]
        words = sum(len(ln.split()) for ln in lines)
        arpa, binary = work / f"{name}.arpa", work / f"{name}.glmb"
        subprocess.run([sys.executable, "-m", "glm.cli", "build", "-q", "--order", str(args.order), str(train),
                        "-o", str(arpa)], check=True)
        glm.load(arpa).save(binary)
        print(f"{name}: model from {nbytes / 1e6:.1f} MB of text, {binary.stat().st_size / 1e6:.0f} MB as .glmb; "
              f"{len(lines)} test lines, {words} words")
        pairs = []
        if build_binary:
            probing = work / f"{name}.probing.bin"
            subprocess.run([build_binary, "probing", str(arpa), str(probing)], check=True, capture_output=True)
            pairs.append(("glm.kenlm .glmb", gk.Model(binary), "kenlm probing", kenlm.Model(str(probing))))
            pairs.append(("glm.Model .glmb", glm.load(binary), "kenlm probing", pairs[0][3]))
        pairs.append(("glm.kenlm ARPA", gk.Model(arpa), "kenlm ARPA", kenlm.Model(str(arpa))))
        for ours_name, ours, theirs_name, theirs in pairs:
            for what, loop in LOOPS:
                if what.startswith("BaseScore") and not hasattr(ours, "BaseScore"):
                    continue
                a, b, ratio, diff = race(ours, theirs, lines, loop, args.repeat, gk.State, kenlm.State)
                rows.append([name, what, f"{ours_name} / {theirs_name}", f"{a * 1e3:.1f}", f"{b * 1e3:.1f}",
                             f"{ratio:.2f}", f"{diff:.1e}"])
        del pairs
    table("Per-call speed: a Python loop over the test lines (ms per pass, median; ratio: the median over the "
          "pairs of kenlm's time / glm's, above 1 is glm faster; |diff|: the largest difference of the summed "
          "log10 probabilities)",
          ["corpus", "call", "glm / kenlm", "glm ms", "kenlm ms", "ratio", "|diff|"], rows)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
