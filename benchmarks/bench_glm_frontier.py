"""Size against perplexity: MKN and the default GLM at several pruning levels (issue 16, item 3).

    python benchmarks/bench_glm_frontier.py [--order 4] [--corpora-dir ../shared/corpora]
        [--corpora ptb wikitext2 brown tiny eltec gutenberg10] [--prunes none "0 0 1" "0 1 1" ...]
        [--plot docs/img/glm-frontier.png] [--rows rows.jsonl]
    python benchmarks/bench_glm_frontier.py --from rows.jsonl [more.jsonl] [--plot FILE]

Per corpus and pruning level (`--prune`, raw-count cutoffs per order; for a GLM per number of kept words
of a pattern): MKN (`glm build`, lmplz's model) and the default GLM (`glm build --method glm`: tuned on
every 10th training line, rebuilt on all of it, pruned both times), each saved as `.glmb`.  Printed:
n-grams stored (a GLM: over all its patterns), `.glmb` bytes, bytes per n-gram, test perplexity of running
text (OOVs included), scoring tokens/s of one thread (bench_glm.scoring_speed: median of 3, after the
first score), build seconds.  Then per corpus the answer to "at equal model bytes, is the GLM better?":
each GLM point against MKN's frontier interpolated at its size (perplexity linear in log bytes between the
two MKN points around it; a GLM larger than the unpruned MKN has no MKN of its size), and the pairs of
points within 10% of each other's bytes.

Corpora (the loaders of bench_glm_default.py and glm_results.py): PTB, WikiText-2, ELTeC German (their
train / test splits), Brown and Tiny Shakespeare (every 10th line test, the rest training), Gutenberg
10 MB (the first 10 MB of its training text, the first 1 MB of its test text).  `--eltec-mb N` trains on
the first N MB of ELTeC's training text (0: all of it).  `--rows FILE` appends each measured row to FILE
(JSON lines) as it is measured; `--from FILE...` prints the tables and draws the plot from such files
without building anything (runs of different corpora put together).
"""
from __future__ import annotations

import argparse
import bisect
import gzip
import json
import math
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_glm import scoring_speed  # noqa: E402
from bench_glm_default import DEFAULT_CORPORA, corpora as split_corpora  # noqa: E402
from glm_results import head_bytes  # noqa: E402

import glm  # noqa: E402

NAMES = {"ptb": "PTB", "wikitext2": "WikiText-2", "brown": "Brown", "tiny": "Tiny Shakespeare",
         "eltec": "ELTeC German", "gutenberg10": "Gutenberg 10 MB"}
PRUNES = ["none", "0 0 1", "0 1 1", "0 1 2", "0 2 3"]


def load_corpora(root: Path, tmp: Path, wanted: list[str], eltec_mb: float) -> dict:
    """name -> (train, test) of the corpora asked for, in the order asked."""
    out = dict(split_corpora(root, tmp))
    if eltec_mb and "ELTeC German" in out:
        train, test = out["ELTeC German"]
        out["ELTeC German"] = (head_bytes(train, tmp / "eltec.train.txt", int(eltec_mb * (1 << 20))), test)
    if "gutenberg10" in wanted:
        gut = root / "gutenberg-top100-en"
        out["Gutenberg 10 MB"] = (head_bytes(gut / "train.txt.gz", tmp / "gut10.train.txt", 10 << 20),
                                  head_bytes(gut / "test.txt.gz", tmp / "gut.test.txt", 1 << 20))
    return {NAMES[k]: out[NAMES[k]] for k in wanted if NAMES[k] in out}


def text_of(path: Path) -> bytes:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        return f.read()


def measure(train: Path, test: Path, order: int, method: str, prune: tuple, tmp: Path) -> dict:
    """Build, save as .glmb, and measure one model."""
    t = time.perf_counter()
    model = glm.train([train], order, method=method, prune=prune, discount_fallback=True)
    build = time.perf_counter() - t
    path = tmp / f"model-{method}.glmb"
    model.save(path)
    ngrams = sum(model.tables.sizes.values()) if method == "glm" else sum(model.counts)
    ppl = model.evaluate([test]).perplexity
    del model
    speed, _ = scoring_speed(str(path), text_of(test))
    row = dict(ngrams=ngrams, bytes=path.stat().st_size, ppl=ppl, speed=speed, build=build)
    path.unlink()
    return row


def mkn_at(points: list[tuple[int, float]], size: int) -> float | None:
    """MKN's perplexity at ``size`` bytes, linear in log bytes between its points (None outside them)."""
    points = sorted(points)
    sizes = [b for b, _ in points]
    i = bisect.bisect_left(sizes, size)
    if i < len(points) and sizes[i] == size:
        return points[i][1]
    if i == 0 or i == len(points):
        return None
    (b0, p0), (b1, p1) = points[i - 1], points[i]
    f = (math.log(size) - math.log(b0)) / (math.log(b1) - math.log(b0))
    return p0 + f * (p1 - p0)


def verdict(rows: list[dict]) -> list[str]:
    """Per GLM point: MKN's perplexity at its size and the pairs within 10% of bytes."""
    mkn = [(r["bytes"], r["ppl"]) for r in rows if r["method"] == "mkn"]
    out = []
    for g in (r for r in rows if r["method"] == "glm"):
        at = mkn_at(mkn, g["bytes"])
        near = [(m["prune"], m["ppl"]) for m in rows if m["method"] == "mkn"
                and abs(g["bytes"] / m["bytes"] - 1) <= 0.10]
        out.append(f"| {g['corpus']} | {g['prune']} | {g['bytes'] / 1e6:.1f} | {g['ppl']:.2f} | "
                   + (f"{at:.2f} | {100 * (g['ppl'] / at - 1):+.2f}%" if at else "larger than any MKN | -")
                   + " | " + ("; ".join(f"MKN {p}: {x:.2f}" for p, x in near) or "-") + " |")
    return out


def plot(rows: list[dict], path: Path, order: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["corpus"] for r in rows))
    cols = min(3, len(names))
    fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.4 * ((len(names) + cols - 1) // cols)),
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        for method, style in (("mkn", "o-"), ("glm", "s-")):
            pts = sorted((r["bytes"] / 1e6, r["ppl"], r["prune"]) for r in rows
                         if r["corpus"] == name and r["method"] == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label="MKN" if method == "mkn" else "GLM (default)")
            for x, y, label in pts:
                ax.annotate(label, (x, y), fontsize=6, textcoords="offset points", xytext=(3, 3))
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(".glmb MB")
        ax.set_ylabel("test perplexity")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    from matplotlib.ticker import FuncFormatter
    for ax in axes.flat:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.tick_params(axis="x", which="both", labelsize=6)
    fig.suptitle(f"order {order}: test perplexity against .glmb size", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def row_text(r: dict) -> str:
    return (f"| {r['corpus']} | {'MKN' if r['method'] == 'mkn' else 'GLM'} | {r['prune']} | {r['ngrams']:,} | "
            f"{r['bytes']:,} | {r['bytes'] / r['ngrams']:.1f} | {r['ppl']:.2f} | {r['speed'] / 1e6:.2f} M | "
            f"{r['build']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora-dir", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--corpora", nargs="+", default=["ptb", "brown", "wikitext2"], choices=list(NAMES))
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--prunes", nargs="+", default=PRUNES, help='levels: "none" or thresholds "0 1 2"')
    ap.add_argument("--eltec-mb", type=float, default=0, help="train on the first N MB of ELTeC (0: all)")
    ap.add_argument("--plot", type=Path, default=None, help="draw perplexity against bytes (PNG)")
    ap.add_argument("--rows", type=Path, default=None, help="append each measured row to this JSON-lines file")
    ap.add_argument("--from", dest="sources", type=Path, nargs="+", default=None,
                    help="print and plot the rows of these JSON-lines files (nothing is built)")
    args = ap.parse_args()
    if args.plot is not None and args.plot.suffix != ".png":
        ap.error(f"--plot {args.plot}: give a .png file")
    if args.rows is not None and args.sources and args.rows in args.sources:
        ap.error(f"--rows {args.rows} is also an input (--from)")
    prunes = [() if p == "none" else tuple(int(x) for x in p.split()) for p in args.prunes]
    rows = []
    if args.sources:
        for src in args.sources:
            rows += [json.loads(ln) for ln in src.read_text().splitlines() if ln.strip()]
        args.order = rows[0]["order"] if rows else args.order
    print(f"Order {args.order}. GLM: the default (tuned on every 10th training line, rebuilt on all), "
          "pruned with the same cutoffs as MKN. Scoring: one thread, median of 3.\n")
    print("| corpus | method | prune | n-grams | .glmb bytes | bytes/n-gram | test ppl | scoring tok/s | build s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(row_text(r))
    if not args.sources:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for name, (train, test) in load_corpora(args.corpora_dir, tmp, args.corpora, args.eltec_mb).items():
                for prune in prunes:
                    for method in ("mkn", "glm"):
                        r = measure(train, test, args.order, method, prune, tmp)
                        r.update(corpus=name, method=method, prune=" ".join(map(str, prune)) or "none",
                                 order=args.order)
                        rows.append(r)
                        print(row_text(r), flush=True)
                        if args.rows is not None:
                            with open(args.rows, "a") as f:
                                f.write(json.dumps(r) + "\n")
    print("\nAt equal bytes: each GLM against MKN's frontier at its size (Δ negative: the GLM is better), and "
          "the MKN models within 10% of its bytes.\n")
    print("| corpus | GLM prune | GLM MB | GLM ppl | MKN ppl at that size | Δ | MKN within 10% of bytes |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(verdict(rows)))
    if args.plot is not None:
        plot(rows, args.plot, args.order)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
