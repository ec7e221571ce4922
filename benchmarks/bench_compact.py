"""Model sizes, perplexities and scoring speeds of glm's layouts against KenLM's tries, in one run.

    python benchmarks/bench_compact.py                 # the first 75 MB of the Gutenberg training text
    python benchmarks/bench_compact.py --bytes 5M      # a smaller slice
    python benchmarks/bench_compact.py --speed-only --repeat 5     # glm's files and the speeds only

An order-5 MKN model is built from the first --bytes of the decompressed Gutenberg training text
(`head -c`), then saved as glm's fast binary (.glmb), in the compact layout (a KenLM trie), quantized
(--quantize 8), both with compressed pointers (--pointer-bits 22) and as ARPA, from which KenLM's
`build_binary` (on PATH) makes its `trie`, `trie -q 8 -b 8` and `-q 8 -b 8 -a 22`.  For each file: bytes, bytes per n-gram, whether it is byte-identical to
build_binary's file, the test perplexity (Gutenberg's test split, scored by glm; KenLM's files scored by
the kenlm module too) and its cost against the unquantized model; then scoring speeds in tokens/s
(medians of --repeat rounds, each running every scorer once, as the shared machine's load changes): glm on the .glmb and on the compact file (`score_many`, all cores, and
tokenizing the text; `score_ids` of the tokenized ids on one thread), and the kenlm module on the compact file (a Python
loop over `kenlm.Model.score`).
"""
from __future__ import annotations

import argparse
import filecmp
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
REPO = HERE.parent
DEFAULT_CORPORA = next((p for p in (REPO.parent / "shared" / "corpora", REPO.parents[1] / "shared" / "corpora")
                        if p.is_dir()), REPO.parent / "shared" / "corpora")     # (also from a worktree)


def size_arg(text: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * mult[text[-1].upper()]) if text[-1].upper() in mult else int(text)


def head_bytes(src: Path, dst: Path, n: int) -> None:
    with gzip.open(src, "rb") as f, open(dst, "wb") as out:
        out.write(f.read(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bytes", type=size_arg, default=75 * 10 ** 6, help="training text (default 75 MB)")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="keep the files in this directory")
    ap.add_argument("--speed-only", action="store_true",
                    help="only glm's files and the speed table (no build_binary, no perplexities)")
    args = ap.parse_args()

    import glm
    import kenlm
    build_binary = shutil.which("build_binary")
    if build_binary is None:
        sys.exit("build_binary is not on PATH: build KenLM and put its bin directory on PATH")
    gut = args.corpora / "gutenberg-top100-en"
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="bench_compact."))
    tmp.mkdir(parents=True, exist_ok=True)
    train = tmp / "train.txt"
    head_bytes(gut / "train.txt.gz", train, args.bytes)
    with gzip.open(gut / "test.txt.gz", "rt", encoding="utf-8") as f:
        test = f.read().splitlines()
    print(f"training text: first {args.bytes:,} bytes of {gut / 'train.txt.gz'} (head -c); order {args.order}; "
          f"test: {len(test):,} lines of test.txt.gz")

    t0 = time.perf_counter()
    model = glm.train([str(train)], args.order, quiet=True)
    print(f"glm build: {time.perf_counter() - t0:.1f} s; n-grams {model.counts}")
    total = sum(model.counts)
    files = {}
    saves = (("glm .glmb (fast)", dict(path="model.glmb")),
                     ("glm compact", dict(path="model.compact", layout="compact")),
                     ("glm --quantize 8", dict(path="model.q8", quantize=8)),
                     ("glm compact --pointer-bits 22", dict(path="model.a22", pointer_bits=22)),
                     ("glm --quantize 8 --pointer-bits 22", dict(path="model.q8a22", quantize=8, pointer_bits=22)),
                     ("ARPA", dict(path="model.arpa")))
    for name, kw in saves[:-1] if args.speed_only else saves:
        path = tmp / kw.pop("path")
        t0 = time.perf_counter()
        model.save(path, **kw)
        print(f"write {name}: {time.perf_counter() - t0:.1f} s")
        files[name] = path
    arpa = files.pop("ARPA", None)
    for name, opts, ours in () if args.speed_only else (("KenLM trie", ["trie"], "glm compact"),
                             ("KenLM trie -q 8 -b 8", ["-q", "8", "-b", "8", "trie"], "glm --quantize 8"),
                             ("KenLM trie -q 8 -b 8 -a 22", ["-q", "8", "-b", "8", "-a", "22", "trie"],
                              "glm --quantize 8 --pointer-bits 22")):
        path = tmp / ("kenlm." + "_".join(o.strip("-") for o in opts))
        t0 = time.perf_counter()
        subprocess.run([build_binary, *opts, str(arpa), str(path)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        print(f"build_binary {' '.join(opts)}: {time.perf_counter() - t0:.1f} s; "
              f"{ours} byte-identical: {filecmp.cmp(path, files[ours], shallow=False)}")
        files[name] = path
    del model

    tokens = sum(len(line.split()) + 1 for line in test)
    rows, ppl = [], {}
    for name, path in () if args.speed_only else files.items():
        m = glm.load(path)
        ev = m.evaluate(lines=test)
        ppl[name] = ev.perplexity
        kl = ""
        if name != "glm .glmb (fast)":
            km = kenlm.Model(str(path))
            kl = f"{10 ** (-sum(km.score(line) for line in test) / tokens):.3f}"
        size = os.path.getsize(path)
        rows.append((name, size, size / total, ev.perplexity, kl))
    base = ppl.get("glm .glmb (fast)")
    print(f"\nn-grams: {total:,}; test tokens (with </s>): {tokens:,}")
    if not args.speed_only:
        print()
        print("| file | bytes | bytes/n-gram | test perplexity (glm) | (kenlm module) | cost vs unquantized |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, size, per, p, kl in rows:
            print(f"| {name} | {size:,} | {per:.2f} | {p:.3f} | {kl or '—'} | {100 * (p / base - 1):+.2f}% |")

    # speeds: every scorer once per round, rounds repeated (the machine's load changes over a run)
    from glm.threads import workers
    glm_names = ("glm .glmb (fast)", "glm compact", "glm --quantize 8", "glm compact --pointer-bits 22",
                 "glm --quantize 8 --pointer-bits 22")
    runs = {}
    for name in glm_names:
        m = glm.load(files[name])
        m.score_many(test[:100])
        ids = m._stream(test)

        def one(m=m, ids=ids):
            with workers(1):
                m.score_ids(ids)
        runs[("glm", name, "text")] = lambda m=m: m.score_many(test)
        runs[("glm", name, "ids")] = one
    for name in glm_names[1:]:
        km = kenlm.Model(str(files[name]))
        runs[("kenlm", name, "text")] = lambda km=km: sum(km.score(line) for line in test)
    times = {key: [] for key in runs}
    for _ in range(args.repeat):
        for key, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    speed = {key: tokens / statistics.median(t) for key, t in times.items()}
    print(f"\nspeeds: medians of {args.repeat} interleaved rounds\n")
    print("| scorer | file | tokens/s: text, all cores | tokens/s: ids, one thread |")
    print("|---|---|---:|---:|")
    for name in glm_names:
        print(f"| glm | {name} | {speed[('glm', name, 'text')]:,.0f} | {speed[('glm', name, 'ids')]:,.0f} |")
    for name in glm_names[1:]:
        print(f"| kenlm module (Python loop over score) | {name} | {speed[('kenlm', name, 'text')]:,.0f} "
              "(one thread) | — |")
    if args.keep is None:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
