"""Bytes per n-gram of a GLM .glmb, unquantized and quantized (issue 16, item 4), and what it costs.

    python benchmarks/bench_glm_quantize.py [--corpora-dir ../shared/corpora] [--order 5]
        [--corpora ptb wikitext2 gutenberg10] [--tune-split 0]

Per corpus (bench_glm_frontier.load_corpora: PTB, WikiText-2 train / test; Gutenberg 10 MB: the first
10 MB of its training text, the first 1 MB of its test text): one GLM (`--method glm`, tuned on
`--tune-split` of its lines, default 0: the untuned model, to keep the run short) and our MKN, built once;
the GLM saved as .glmb unquantized and with `quantize=16` and `quantize=8`, MKN as .glmb.  Printed per file:
n-grams stored (a GLM: over all its patterns), bytes per n-gram (file bytes / n-grams), the share of
the values (alpha, gamma and their codebooks) in them, test perplexity (running text, OOVs included) and
its change against the unquantized GLM, and scoring tokens/s of one thread (bench_glm.scoring_speed:
median of 3) with its ratio to MKN's in the same run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_glm import scoring_speed  # noqa: E402
from bench_glm_default import DEFAULT_CORPORA  # noqa: E402
from bench_glm_frontier import load_corpora, text_of  # noqa: E402

import glm  # noqa: E402
from glm.formats.binary import open_binary_model  # noqa: E402


def value_bytes(path: Path) -> int:
    """Bytes of the values in a .glmb: a GLM's alphas, gammas and their codebooks, MKN's log10
    probabilities and backoffs."""
    layout = open_binary_model(path)
    return sum(a.nbytes for name, a in layout.arrays.items()
               if name.rsplit(".", 1)[-1].removesuffix("_book") in ("alpha", "gamma", "logprob", "backoff"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora-dir", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--corpora", nargs="+", default=["ptb", "wikitext2", "gutenberg10"])
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--tune-split", type=float, default=0.0)
    args = ap.parse_args()
    print("| corpus | model | n-grams | bytes/n-gram | of which values | test ppl | ppl change | "
          "Mtok/s (1 thread) | / MKN |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, (train, test) in load_corpora(args.corpora_dir, tmp, args.corpora, 0).items():
            test_text = text_of(test)
            mkn = glm.train([train], args.order, discount_fallback=True)
            path = tmp / "mkn.glmb"
            mkn.save(path)
            n_mkn, ppl_mkn = sum(mkn.counts), mkn.evaluate([test]).perplexity
            del mkn
            speed_mkn, _ = scoring_speed(str(path), test_text)
            rows = [("MKN", n_mkn, path.stat().st_size, value_bytes(path), ppl_mkn, speed_mkn)]
            path.unlink()
            model = glm.train([train], args.order, method="glm", tune_split=args.tune_split,
                              discount_fallback=True)
            n = sum(model.tables.sizes.values())
            for bits in (None, 16, 8):
                path = tmp / f"glm{bits}.glmb"
                model.save(path, quantize=bits)
                q = glm.load(path)
                ppl = q.evaluate([test]).perplexity
                del q
                speed, _ = scoring_speed(str(path), test_text)
                rows.append((f"GLM {bits}-bit" if bits else "GLM", n, path.stat().st_size, value_bytes(path),
                             ppl, speed))
                path.unlink()
            del model
            base = rows[1][4]
            for label, n, size, values, ppl, speed in rows:
                change = "" if label == "MKN" else f"{100 * (ppl / base - 1):+.4f}%"
                print(f"| {name} | {label} | {n / 1e6:.2f} M | {size / n:.2f} | {values / n:.2f} | {ppl:.3f} "
                      f"| {change} | {speed / 1e6:.2f} | {speed / speed_mkn:.2f} |", flush=True)


if __name__ == "__main__":
    main()
