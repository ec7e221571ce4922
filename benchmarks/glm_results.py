"""Perplexity of MKN and GLM (and variants, untuned and tuned on held-out text) on the shared corpora;
prints the markdown tables of docs/glm.md.

    python benchmarks/glm_results.py [--corpora ../shared/corpora] [--orders 3 4 5] [--only ptb brown]

Running text: each test line is a sentence <s> w1 .. wn </s>, every word and </s> predicted, OOVs
scored as <unk> and included (as KenLM's query).  Tuning (glm.tune) fits on the first 300 KB of the
validation split (to bound the run time).  Corpora: PTB, WikiText-2, Brown (every 10th line test, the
next one validation), ELTeC German, Gutenberg slices of 1 MB and 10 MB (test: the first 1 MB of the
test split).
Then the GLM paper's en0008t data with the paper's protocol (glm paper-eval): glm's MKN and GLM; the
same normalized models under the reference notes' conventions (--padding paper) against the notes'
figures; and the 2014 toolkit's models (glmtk2014-mkn, glmtk2014) against the paper's published figures.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import glm
from glm.paper.protocols import sequence_perplexity

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_mkn import DEFAULT_CORPORA  # noqa: E402

VARIANTS = [("MKN", "mkn", False), ("GLM", "glm", False), ("GLM-abs", "glm-abs", False),
            ("MKN tuned", "mkn", True), ("GLM tuned", "glm", True)]


PUBLISHED = {3: (1212.1, 1025.6), 4: (1120.5, 875.5), 5: (1009.6, 750.3)}   # Pickhardt et al. 2014, Table 4
# ../shared/reference/glm.md §4.4, normalized rows: (method, n) -> (all sequences, in-vocabulary ones)
NOTES = {("mkn", 3): (1311.7, 612.5), ("mkn", 4): (1162.7, 541.4), ("mkn", 5): (1021.4, 514.4),
         ("glm", 3): (1314.8, 619.9), ("glm", 4): (1175.9, 558.4), ("glm", 5): (1055.4, 543.5),
         ("glm-abs", 3): (1321.1, 619.0), ("glm-abs", 4): (1179.6, 555.3), ("glm-abs", 5): (1054.8, 537.6)}


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def head_bytes(src: Path, dst: Path, size: int) -> Path:
    """The first whole lines of a (gzip'd or plain) text, about `size` bytes."""
    with (gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb")) as f:
        lines, n = [], 0
        for line in f:
            lines.append(line)
            n += len(line)
            if n >= size:
                break
    return write(dst, lines)


def corpora(root: Path, tmp: Path) -> dict:
    """name -> (train, validation (first 300 KB), test)."""
    out = {name: [root / d / pat.format(s) for s in ("train", "valid", "test")] for name, d, pat in (
        ("PTB", "ptb", "ptb.{}.txt.gz"), ("WikiText-2", "wikitext-2", "wiki.{}.tokens.gz"),
        ("ELTeC German", "eltec-deu", "eltec-deu.{}.txt.gz"))}
    with gzip.open(root / "brown" / "brown.txt.gz", "rb") as f:
        lines = f.readlines()
    split = {"train": lambda i: i % 10 > 1, "valid": lambda i: i % 10 == 1, "test": lambda i: i % 10 == 0}
    out["Brown"] = [write(tmp / f"brown.{s}.txt", [ln for i, ln in enumerate(lines) if keep(i)])
                    for s, keep in split.items()]
    gut = root / "gutenberg-top100-en"
    test = head_bytes(gut / "test.txt.gz", tmp / "gut.test", 1 << 20)
    for mb in (1, 10):
        out[f"Gutenberg {mb} MB"] = [head_bytes(gut / "train.txt.gz", tmp / f"gut{mb}", mb << 20),
                                     gut / "valid.txt.gz", test]
    for name, (train, valid, test) in out.items():
        out[name] = [train, head_bytes(valid, tmp / f"{name}.valid".replace(" ", "_"), 300_000), test]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5])
    ap.add_argument("--only", nargs="*", default=None, help="corpus names to run (prefixes, lower case)")
    ap.add_argument("--no-paper", action="store_true", help="skip the en0008t reproduction")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = corpora(args.corpora, Path(tmp))
        print("Running-text perplexity on the test split (Δ: change against MKN; negative is better)\n")
        print("| corpus | n | " + " | ".join(v[0] for v in VARIANTS) + " | Δ GLM | Δ GLM tuned vs MKN | "
              "Δ GLM tuned vs MKN tuned |")
        print("|---|---|" + "---|" * (len(VARIANTS) + 3))
        for name, (train, valid, test) in sets.items():
            if args.only and not any(name.lower().startswith(o) for o in args.only):
                continue
            for n in args.orders:
                ppl = {}
                t0 = time.time()
                for label, method, tuned in VARIANTS:
                    model = glm.train([train], n, method=method, tune=[valid] if tuned else None, tune_split=0,
                                      discount_fallback=True)
                    ppl[label] = model.evaluate([test]).perplexity
                d = lambda a, b: f"{100 * (ppl[a] / ppl[b] - 1):+.2f}%"   # noqa: E731
                print(f"| {name} | {n} | " + " | ".join(f"{ppl[v[0]]:.2f}" for v in VARIANTS)
                      + f" | {d('GLM', 'MKN')} | {d('GLM tuned', 'MKN')} | {d('GLM tuned', 'MKN tuned')} |",
                      flush=True)
                print(f"  ({time.time() - t0:.0f} s)", file=sys.stderr)
        if args.no_paper:
            return
        paper = args.corpora / "glm-paper-en0008t"
        print("\nThe GLM paper's en0008t data, the paper's protocol (per-word chain-rule perplexity of the "
              "test sequences, OOVs included)\n")
        print("| n | MKN | GLM | Δ GLM | MKN (in-vocabulary sequences) | GLM (in-vocabulary sequences) |")
        print("|---|---|---|---|---|---|")
        for n in args.orders:
            r = {m: sequence_perplexity(glm.train([paper / "en0008t.train.txt.gz"], n, method=m, tune_split=0),
                                        [paper / "en0008t.testing.5.gz"], n) for m in ("mkn", "glm")}
            print(f"| {n} | {r['mkn']['perplexity']:.1f} | {r['glm']['perplexity']:.1f} | "
                  f"{100 * (r['glm']['perplexity'] / r['mkn']['perplexity'] - 1):+.2f}% | "
                  f"{r['mkn']['perplexity_in_vocabulary']:.1f} | {r['glm']['perplexity_in_vocabulary']:.1f} |",
                  flush=True)
        print("\nThe same normalized models with paper padding (--padding paper: n-1 <s>, each factor by the "
              "top of its own length) against the reference notes' figures (glm.md §4.4)\n")
        print("| n | method | perplexity | notes | in-vocabulary | notes |")
        print("|---|---|---|---|---|---|")
        for n in args.orders:
            for m in ("mkn", "glm", "glm-abs"):
                r = sequence_perplexity(glm.train([paper / "en0008t.train.txt.gz"], n, method=m, padding="paper"),
                                        [paper / "en0008t.testing.5.gz"], n)
                want = NOTES.get((m, n), ("-", "-"))
                print(f"| {n} | {m} | {r['perplexity']:.1f} | {want[0]} | {r['perplexity_in_vocabulary']:.1f} | "
                      f"{want[1]} |", flush=True)
        print("\nThe 2014 toolkit's models (not normalized) against the paper's Table 4 (0.008% row)\n")
        print("| n | glmtk2014-mkn | published MKN | glmtk2014 | published GLM | in-vocabulary sequences: "
              "glmtk2014-mkn | glmtk2014 |")
        print("|---|---|---|---|---|---|---|")
        for n in args.orders:
            r = {m: sequence_perplexity(glm.train([paper / "en0008t.train.txt.gz"], n, method=m),
                                        [paper / "en0008t.testing.5.gz"], n) for m in ("glmtk2014-mkn", "glmtk2014")}
            mkn, gl = r["glmtk2014-mkn"], r["glmtk2014"]
            print(f"| {n} | {mkn['perplexity']:.1f} | {PUBLISHED.get(n, ('-', '-'))[0]} | {gl['perplexity']:.1f} | "
                  f"{PUBLISHED.get(n, ('-', '-'))[1]} | {mkn['perplexity_in_vocabulary']:.1f} "
                  f"({mkn['sequences_in_vocabulary']}) | {gl['perplexity_in_vocabulary']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
