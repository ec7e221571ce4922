"""The default GLM (tuned on an interleaved tenth of its training text, rebuilt on all of it) against MKN
built on the same full training text (issue 16, item 1).  Prints one markdown table.

    python benchmarks/bench_glm_default.py [--order 5] [--only ptb brown] [--corpora ../shared/corpora]

Per corpus: test perplexity including and excluding OOVs (running text: <s> w1 .. wn </s> per line, as
KenLM's query) of MKN (`glm build`, lmplz's model) and of the default `glm build --method glm`; build
seconds of MKN, of the untuned GLM (--tune-split 0) and of the default GLM (counting 90%, estimating,
tuning, counting 100%, estimating: everything `glm build --method glm` does); and whether the
parameters fitted with the 90% model carry over to the model of 100%: the test perplexity of the GLM
built on the 90% with those parameters, against MKN on the same 90%.

Corpora: PTB, WikiText-2, ELTeC German (train / test splits), Brown and Tiny Shakespeare (every 10th
line test, the rest training).  A corpus whose files are missing is skipped.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import sys
import tempfile
import time
from pathlib import Path

import glm
from glm.build import count
from glm.generalized import estimate
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.patterns import parse
from glm.split import check_fraction, held_out

import numpy as np

HERE = Path(__file__).resolve().parent
# (the repository beside ../shared, or a worktree one level further down)
DEFAULT_CORPORA = next((p / "shared" / "corpora" for p in HERE.parents[1:3] if (p / "shared" / "corpora").is_dir()),
                       HERE.parents[1] / "shared" / "corpora")


def every_10th(src: Path, tmp: Path, name: str) -> tuple[Path, Path]:
    with gzip.open(src, "rb") as f:
        lines = f.readlines()
    train, test = tmp / f"{name}.train.txt", tmp / f"{name}.test.txt"
    train.write_bytes(b"".join(ln for i, ln in enumerate(lines) if i % 10))
    test.write_bytes(b"".join(ln for i, ln in enumerate(lines) if i % 10 == 0))
    return train, test


def corpora(root: Path, tmp: Path) -> dict:
    out = {}
    for name, d, pat in (("PTB", "ptb", "ptb.{}.txt.gz"), ("WikiText-2", "wikitext-2", "wiki.{}.tokens.gz"),
                         ("ELTeC German", "eltec-deu", "eltec-deu.{}.txt.gz")):
        train, test = (root / d / pat.format(s) for s in ("train", "test"))
        if train.exists() and test.exists():
            out[name] = (train, test)
    for name, path in (("Brown", root / "brown" / "brown.txt.gz"),
                       ("Tiny Shakespeare", root / "tiny-shakespeare" / "input.txt.gz")):
        if path.exists():
            out[name] = every_10th(path, tmp, name.replace(" ", "_"))
    order = ["PTB", "WikiText-2", "Brown", "Tiny Shakespeare", "ELTeC German"]
    return {k: out[k] for k in order if k in out}


def timed(f):
    gc.collect()
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def ppl(model, test: Path) -> tuple[float, float]:
    e = model.evaluate([test])
    return e.perplexity, e.perplexity_excluding_oov


def ninety(train: Path, fraction: float = 0.1) -> list[bytes]:
    """The lines the default GLM's parameters were fitted with (all but every 10th)."""
    with gzip.open(train, "rb") if train.suffix == ".gz" else open(train, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    held = held_out(np.arange(len(lines)), check_fraction(fraction))
    return [ln for ln, h in zip(lines, held.tolist()) if not h]


def glm_with(lines, order: int, model: GeneralizedModel) -> GeneralizedModel:
    """A GLM of ``lines`` with the weights and discount scales of ``model`` (fitted with another model)."""
    scales = {parse(k): c for k, c in model.meta["discount_scales"].items()}
    vocab, levels = count(lines=lines, order=order)
    tables = estimate(levels, order, "glm", Options(discount_fallback=()), discount_scales=scales)
    return GeneralizedModel(vocab, tables, weights=model.weights)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None, help="corpus names to run (prefixes, lower case)")
    ap.add_argument("--no-carry", action="store_true", help="skip the 90%% models (carry-over columns)")
    args = ap.parse_args()
    n = args.order
    print(f"Order {n}. Δ: GLM against MKN on the same text (negative: GLM better). Build seconds: wall "
          "time of glm.train; GLM default = split, count 90%, estimate, tune, count 100%, estimate.\n")
    print("| corpus | MKN ppl | GLM ppl | Δ | MKN ppl excl. OOV | GLM excl. OOV | Δ excl. | MKN s | GLM untuned s "
          "| GLM default s | GLM/MKN time | 90%: MKN ppl | 90%: GLM ppl (params fitted on it) | Δ at 90% | Δ at 100% |")
    print("|---|" + "---|" * 14)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (train, test) in corpora(args.corpora, Path(tmp)).items():
            if args.only and not any(name.lower().startswith(o) for o in args.only):
                continue
            mkn, t_mkn = timed(lambda: glm.train([train], n, discount_fallback=True))
            p_mkn = ppl(mkn, test)
            del mkn
            untuned, t_untuned = timed(lambda: glm.train([train], n, method="glm", discount_fallback=True,
                                                         tune_split=0))
            del untuned
            model, t_glm = timed(lambda: glm.train([train], n, method="glm", discount_fallback=True))
            p_glm = ppl(model, test)
            d = lambda a, b: f"{100 * (a / b - 1):+.2f}%"   # noqa: E731
            row = [name, f"{p_mkn[0]:.2f}", f"{p_glm[0]:.2f}", d(p_glm[0], p_mkn[0]), f"{p_mkn[1]:.2f}",
                   f"{p_glm[1]:.2f}", d(p_glm[1], p_mkn[1]), f"{t_mkn:.1f}", f"{t_untuned:.1f}", f"{t_glm:.1f}",
                   f"{t_glm / t_mkn:.2f}"]
            if args.no_carry:
                row += ["-"] * 4
            else:
                lines = ninety(train)
                m90 = glm.train(lines=lines, order=n, discount_fallback=True)
                p_m90 = ppl(m90, test)
                del m90
                g90 = glm_with(lines, n, model)
                p_g90 = ppl(g90, test)
                del g90, lines
                row += [f"{p_m90[0]:.2f}", f"{p_g90[0]:.2f}", d(p_g90[0], p_m90[0]), d(p_glm[0], p_mkn[0])]
            del model
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
