"""Size against perplexity: MKN and the default GLM at several pruning levels (issue 16, item 3).

    python benchmarks/bench_glm_frontier.py [--orders 4] [--corpora-dir ../shared/corpora]
        [--corpora ptb wikitext2 brown tiny eltec gutenberg10] [--prunes none "0 0 1" "0 1 1" ...]
        [--plot docs/img/glm-frontier.png] [--rows rows.jsonl]
    python benchmarks/bench_glm_frontier.py --from rows.jsonl [more.jsonl] [--plot FILE]

Per corpus, order (`--orders 3 4 5`: each one) and pruning level (`--prune`, raw-count cutoffs per order; for a GLM per number of kept words
of a pattern): MKN (`glm build`, lmplz's model) and the default GLM (`glm build --method glm`: tuned on
every 10th training line, rebuilt on all of it, pruned both times), each saved as `.glmb`.  Printed:
n-grams stored (a GLM: over all its patterns), `.glmb` bytes, bytes per n-gram, test perplexity of running
text (OOVs included), scoring tokens/s of one thread (bench_glm.scoring_speed: median of 3, after the
first score), build seconds.  Then per corpus the answer to "at equal model bytes, is the GLM better?":
each GLM point against MKN's frontier interpolated at its size (the MKN models of every order and level
measured that no smaller MKN beats, perplexity linear in log bytes between the two around it; a GLM
larger than the largest MKN has no MKN of its size), and the MKN models within 10% of its bytes.

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
PRUNES = ["none", "0 0 1", "0 0 2", "0 1 1", "0 1 2", "0 2 3"]


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


def frontier(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The (bytes, perplexity) points that no smaller (or equal) model beats, by size."""
    out = []
    for b, p in sorted(points):
        if not out or p < out[-1][1]:
            out.append((b, p))
    return out


def frontier_at(points: list[tuple[int, float]], size: int) -> float | None:
    """The perplexity at ``size`` bytes on the frontier of ``points``, linear in log bytes between its
    points (None outside them)."""
    points = frontier(points)
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
    """At the size of every model measured (MKN or GLM): both methods' perplexities there, the measured
    one and the other method's frontier interpolated (or "-" outside its sizes), the GLM's change, and the
    models of the other method within 10% of the bytes."""
    out = []
    for r in sorted(rows, key=lambda r: (list(dict.fromkeys(x["corpus"] for x in rows)).index(r["corpus"]),
                                          r["bytes"])):
        other = [m for m in rows if m["corpus"] == r["corpus"] and m["method"] != r["method"]]
        at = frontier_at([(m["bytes"], m["ppl"]) for m in other], r["bytes"])
        g, k = (r["ppl"], at) if r["method"] == "glm" else (at, r["ppl"])
        near = [m for m in other if abs(r["bytes"] / m["bytes"] - 1) <= 0.10]
        out.append(f"| {r['corpus']} | {'GLM' if r['method'] == 'glm' else 'MKN'} n={r['order']} {r['prune']} | "
                   f"{r['bytes'] / 1e6:.1f} | " + (f"{k:.2f}" if k else "-") + " | " + (f"{g:.2f}" if g else "-")
                   + " | " + (f"{100 * (g / k - 1):+.2f}%" if g and k else "-") + " | "
                   + ("; ".join(f"n={m['order']} {m['prune']}: {m['ppl']:.2f} ({m['bytes'] / 1e6:.1f} MB)"
                                for m in near) or "-") + " |")
    return out


def summary(rows: list[dict]) -> list[str]:
    """Per corpus: at how many of the sizes compared (the models whose size the other method's frontier
    spans) the GLM is below MKN, the range of its change there, and the pairs within 10% of bytes."""
    out = []
    for name in dict.fromkeys(r["corpus"] for r in rows):
        mine = [r for r in rows if r["corpus"] == name]
        front = {m: [(r["bytes"], r["ppl"]) for r in mine if r["method"] == m] for m in ("mkn", "glm")}
        deltas = []
        for r in mine:
            at = frontier_at(front["mkn" if r["method"] == "glm" else "glm"], r["bytes"])
            if at is not None:
                g, k = (r["ppl"], at) if r["method"] == "glm" else (at, r["ppl"])
                deltas.append((r["bytes"], 100 * (g / k - 1)))
        better = [b for b, d in deltas if d < 0]
        pairs = [(g, m) for g in mine if g["method"] == "glm" for m in mine
                 if m["method"] == "mkn" and abs(g["bytes"] / m["bytes"] - 1) <= 0.10]
        won = [(g, m) for g, m in pairs if g["ppl"] < m["ppl"]]
        out.append(f"| {name} | {len(deltas)} | {len(better)}"
                   + (f" ({min(better) / 1e6:.1f}–{max(better) / 1e6:.1f} MB)" if better else "") + " | "
                   + (f"{min(d for _, d in deltas):+.2f}% to {max(d for _, d in deltas):+.2f}%" if deltas else "-")
                   + f" | {len(won)} of {len(pairs)} | "
                   + ("; ".join(f"GLM n={g['order']} {g['prune']} {g['ppl']:.2f} ({g['bytes'] / 1e6:.1f} MB) < "
                                f"MKN n={m['order']} {m['prune']} {m['ppl']:.2f} ({m['bytes'] / 1e6:.1f} MB)"
                                for g, m in sorted(won, key=lambda p: p[0]["ppl"] / p[1]["ppl"])[:1]) or "-") + " |")
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["corpus"] for r in rows))
    cols = min(3, len(names))
    fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.4 * ((len(names) + cols - 1) // cols)),
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        orders = sorted({r["order"] for r in rows})
        for method, color, marker in (("mkn", "tab:blue", "o"), ("glm", "tab:orange", "s")):
            for n, dash in zip(orders, ("-", "--", ":", "-.")):
                pts = sorted((r["bytes"] / 1e6, r["ppl"], r["prune"]) for r in rows
                             if r["corpus"] == name and r["method"] == method and r["order"] == n)
                if not pts:
                    continue
                label = ("MKN" if method == "mkn" else "GLM (default)") + (f" n={n}" if len(orders) > 1 else "")
                ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle=dash, marker=marker, color=color,
                        markersize=4, label=label)
                for x, y, text in pts:
                    ax.annotate(text, (x, y), fontsize=5, textcoords="offset points", xytext=(3, 3))
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
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}" if f"{x:g}"[0] in "25" else ""))
        ax.tick_params(axis="x", which="both", labelsize=6)
    orders = "/".join(str(n) for n in sorted({r["order"] for r in rows}))
    fig.suptitle(f"order {orders}: test perplexity against .glmb size (pruning levels annotated)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def row_text(r: dict) -> str:
    return (f"| {r['corpus']} | {r['order']} | {'MKN' if r['method'] == 'mkn' else 'GLM'} | {r['prune']} | {r['ngrams']:,} | "
            f"{r['bytes']:,} | {r['bytes'] / r['ngrams']:.1f} | {r['ppl']:.2f} | {r['speed'] / 1e6:.2f} M | "
            f"{r['build']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora-dir", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--corpora", nargs="+", default=["ptb", "brown", "wikitext2"], choices=list(NAMES))
    ap.add_argument("--orders", type=int, nargs="+", default=[4])
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
        args.orders = sorted({r["order"] for r in rows})
        names = list(dict.fromkeys(r["corpus"] for r in rows))
        rows.sort(key=lambda r: (names.index(r["corpus"]), r["order"],
                                 PRUNES.index(r["prune"]) if r["prune"] in PRUNES else len(PRUNES),
                                 r["method"] != "mkn"))
    print(f"Orders {' '.join(map(str, args.orders))}. GLM: the default (tuned on every 10th training line, rebuilt on all), "
          "pruned with the same cutoffs as MKN. Scoring: one thread, median of 3.\n")
    print("| corpus | n | method | prune | n-grams | .glmb bytes | bytes/n-gram | test ppl | scoring tok/s | build s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(row_text(r))
    if not args.sources:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for name, (train, test) in load_corpora(args.corpora_dir, tmp, args.corpora, args.eltec_mb).items():
                for n, prune in ((n, p) for n in args.orders for p in prunes):
                    for method in ("mkn", "glm"):
                        r = measure(train, test, n, method, prune, tmp)
                        r.update(corpus=name, method=method, prune=" ".join(map(str, prune)) or "none", order=n)
                        rows.append(r)
                        print(row_text(r), flush=True)
                        if args.rows is not None:
                            with open(args.rows, "a") as f:
                                f.write(json.dumps(r) + "\n")
    print("\nAt equal bytes: at the size of each model, its perplexity and the other method's frontier there "
          "(the models no smaller one beats, interpolated linearly in log bytes; - outside its sizes); Δ: GLM "
          "against MKN (negative: the GLM is better); the other method's models within 10% of the bytes.\n")
    print("| corpus | model | MB | MKN ppl | GLM ppl | Δ | other method within 10% of bytes |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(verdict(rows)))
    print("\nPer corpus: the sizes compared (above, both perplexities known), those where the GLM is below MKN "
          "(Δ < 0) and the range of Δ; the pairs of models within 10% of bytes where the GLM is the better, and the "
          "one where it is most so.\n")
    print("| corpus | sizes compared | GLM below MKN at | Δ | pairs within 10%: GLM better | the best such pair |")
    print("|---|---|---|---|---|---|")
    print("\n".join(summary(rows)))
    if args.plot is not None:
        plot(rows, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
