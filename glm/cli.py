"""The ``glm`` command: argument parsing only; the work is done by the library."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .corpus import CorpusError
from .discount import DiscountError
from .formats import BINARY_SUFFIX, ModelFormatError


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bad-utf8", choices=("error", "replace"), default="error",
                   help="invalid UTF-8 in the text: fail naming file and line (default) or replace bad bytes")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="glm", description="Modified Kneser-Ney and Generalized n-gram "
                                                         "language models.")
    sub = ap.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="estimate a model from text (one sentence per line)",
                       description="Estimate an interpolated modified Kneser-Ney model, as lmplz does, or a "
                                   "Generalized Language Model (skip patterns, docs/glm.md).")
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="text files (plain, gzip, bzip2, xz or zstd), directories, or - for stdin")
    b.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help=f"model file: .arpa, .arpa.gz/.bz2/.xz (MKN), .glm, .glm.gz/... (GLM) or "
                        f"{BINARY_SUFFIX} (binary, both)")
    b.add_argument("--order", "-n", type=int, required=True, help="n-gram order")
    b.add_argument("--method", choices=("mkn", "glm", "glm-abs"), default="mkn",
                   help="mkn: modified Kneser-Ney (default); glm: the normalized Generalized Language Model; "
                        "glm-abs: GLM with occurrence counts at the lower orders")
    b.add_argument("--tune", metavar="HELDOUT", nargs="+", default=None,
                   help="fit child weights (GLM) and discount scales on held-out text; the model is then "
                        "written as .glm / .glmb, for mkn too")
    b.add_argument("--prune", type=int, nargs="+", default=[], metavar="T",
                   help="drop n-grams of order k seen at most T_k times (T for unigrams, bigrams, ...; "
                        "non-decreasing; the last value repeats; <unk>, <s>, </s> are kept)")
    b.add_argument("--discount-fallback", type=float, nargs="*", default=None, metavar="D",
                   help="discounts to use where the closed form fails (default 0.5 1 1.5)")
    b.add_argument("--interpolate-unigrams", type=int, choices=(0, 1), default=1,
                   help="mix unigrams with the uniform distribution (1, default) or give <unk> the "
                        "left-over mass (0, SRILM style)")
    b.add_argument("--vocab-pad", type=int, default=0, metavar="K",
                   help="use a uniform distribution over at least K words")
    b.add_argument("--skip-symbols", action="store_true", help="drop literal <s> and </s> in the text")
    b.add_argument("--memory", "-S", default=None, metavar="SIZE",
                   help="memory budget, e.g. 2G or 500M (as lmplz -S): sorted runs spill to --tmpdir and "
                        "large arrays are memory-mapped files there (default: no budget, all in memory)")
    b.add_argument("--tmpdir", "-T", default=None, metavar="DIR",
                   help="where --memory puts its temporary files (default: the system's temp directory)")
    b.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads for counting, estimation and writing (default: all cores)")
    b.add_argument("--dask", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="count and merge on a Dask cluster: the scheduler at ADDRESS, or a LocalCluster "
                        "of --workers processes (default 2) when no address is given (pip install glm[dask])")
    _add_input_options(b)

    s = sub.add_parser("score", help="perplexity of text under a model (as KenLM's query)")
    s.add_argument("model")
    s.add_argument("inputs", nargs="+", metavar="INPUT")
    s.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    s.add_argument("--per-line", choices=("tsv", "jsonl"), default=None,
                   help="write one row per input line (log10_prob, tokens, oovs, perplexity)")
    s.add_argument("-o", "--output", default="-", help="where per-line rows go (default stdout)")
    s.add_argument("--no-bos", action="store_true", help="do not condition the first word on <s>")
    s.add_argument("--no-eos", action="store_true", help="do not predict </s> at the end of lines")
    _add_input_options(s)

    e = sub.add_parser("paper-eval", help="train and score as in the GLM paper (sampled test sequences)",
                       description="Per-word chain-rule perplexity of the first ORDER words of each test "
                                   "line, from an empty context, OOVs included (docs/glm.md).")
    e.add_argument("--train", nargs="+", required=True, metavar="TRAIN")
    e.add_argument("--test", nargs="+", required=True, metavar="SEQUENCES")
    e.add_argument("--order", "-n", type=int, required=True)
    e.add_argument("--method", choices=("mkn", "glm", "glm-abs"), default="glm")
    e.add_argument("--tune", metavar="HELDOUT", nargs="+", default=None)
    e.add_argument("--discount-fallback", type=float, nargs="*", default=None, metavar="D")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_input_options(e)

    i = sub.add_parser("info", help="orders, n-gram counts and discounts of a model")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")

    c = sub.add_parser("convert", help=f"rewrite a model in another format (e.g. ARPA to {BINARY_SUFFIX})")
    c.add_argument("model")
    c.add_argument("output")
    c.add_argument("-q", "--quiet", action="store_true")
    return ap


def _log(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _build(args) -> None:
    from .build import train
    from .counts import workers
    from .formats import check_output
    check_output(args.output, generalized=args.method != "mkn" or bool(args.tune))
    t0 = time.time()
    fallback = None if args.discount_fallback is None else tuple(args.discount_fallback)
    with workers(None if args.dask else args.workers):
        model = train(args.inputs, args.order, method=args.method, tune=args.tune, prune=args.prune,
                      discount_fallback=fallback, interpolate_unigrams=bool(args.interpolate_unigrams),
                      vocab_pad=args.vocab_pad, skip_symbols=args.skip_symbols, bad_utf8=args.bad_utf8,
                      quiet=args.quiet, memory=args.memory, tmpdir=args.tmpdir, dask=args.dask,
                      dask_workers=args.workers if args.dask else None)
        for line in _describe(model):
            _log(args, line)
        model.save(args.output, quiet=args.quiet)
    _log(args, f"wrote {args.output} in {time.time() - t0:.1f} s")


def _score(args) -> None:
    from .formats import load
    model = load(args.model, quiet=args.quiet)
    bos, eos = not args.no_bos, not args.no_eos
    if args.per_line:
        from .model import Evaluation
        total = Evaluation(0.0, 0, 0, 0.0, 0)
        out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
        try:
            if args.per_line == "tsv":
                out.write("line\tlog10_prob\ttokens\toovs\tperplexity\n")
            for res in model.score_chunks(args.inputs, bos, eos, args.quiet, args.bad_utf8):
                rows = []
                for i, (lp, tok, oov) in enumerate(zip(res.log10_prob.tolist(), res.tokens.tolist(),
                                                       res.oovs.tolist()), total.lines + 1):
                    ppl = 10.0 ** (-lp / tok) if tok else None
                    if args.per_line == "tsv":
                        rows.append(f"{i}\t{lp:.6f}\t{tok}\t{oov}\t"
                                    f"{'nan' if ppl is None else format(ppl, '.6g')}\n")
                    else:
                        rows.append(json.dumps(dict(line=i, log10_prob=lp, tokens=tok, oovs=oov,
                                                    perplexity=ppl)) + "\n")
                out.write("".join(rows))
                total.add(res)
        finally:
            if out is not sys.stdout:
                out.close()
        if out is sys.stdout:
            return
    else:
        total = model.evaluate(args.inputs, bos, eos, args.quiet, args.bad_utf8)
    summary = total.as_dict()
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"Perplexity including OOVs:\t{summary['perplexity']:.6g}")
        print(f"Perplexity excluding OOVs:\t{summary['perplexity_excluding_oov']:.6g}")
        print(f"OOVs:\t{summary['oovs']}")
        print(f"Tokens:\t{summary['tokens']}")


def _describe(model, sep: str = ": ") -> list[str]:
    """Lines of n-gram counts and discounts, per order (MKN) or per pattern (GLM)."""
    from .model import GeneralizedModel
    gap = "\t" if sep == "\t" else "  "
    fmt = lambda d: f"{gap}D1={d[0]:.6g} D2={d[1]:.6g} D3+={d[2]:.6g}" if d else ""   # noqa: E731
    if isinstance(model, GeneralizedModel):
        from .patterns import name
        t = model.tables
        return [f"pattern {name(m)}{sep}{t.sizes[m]}{fmt(t.discounts.get(m))}"
                + (f"{gap}weight={model.weights[m]:.4g}" if m in model.weights else "") for m in sorted(t.sizes)]
    if not model.discounts:
        return [f"{n}-grams{sep}{c}" for n, c in enumerate(model.counts, 1)] + [
            f"discounts{sep}not stored (model read from ARPA)"]
    return [f"{n}-grams{sep}{c}{fmt(d)}" for n, (c, d) in enumerate(zip(model.counts, model.discounts), 1)]


def _info(args) -> None:
    from .formats import load
    from .model import GeneralizedModel
    model = load(args.model)
    info = dict(order=model.order, ngrams=model.counts, vocabulary=len(model.vocab),
                discounts=[list(d) for d in model.discounts] if model.discounts else None,
                meta=model.meta)
    if isinstance(model, GeneralizedModel):
        from .patterns import name
        from .tune import describe
        info.update(method=model.method, **describe(model),
                    patterns={name(m): size for m, size in sorted(model.tables.sizes.items())})
    if args.json:
        print(json.dumps(info))
        return
    print(f"order\t{model.order}")
    print(f"vocabulary\t{len(model.vocab)}")
    for line in _describe(model, sep="\t"):
        print(line)


def _paper_eval(args) -> None:
    from .build import train
    from .protocols import sequence_perplexity
    fallback = None if args.discount_fallback is None else tuple(args.discount_fallback)
    model = train(args.train, args.order, method=args.method, tune=args.tune, discount_fallback=fallback,
                  bad_utf8=args.bad_utf8, quiet=args.quiet)
    res = dict(sequence_perplexity(model, args.test, args.order, args.quiet, args.bad_utf8),
               order=args.order, method=args.method, tuned=bool(args.tune))
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k}\t{v}")


def _convert(args) -> None:
    from .formats import load
    load(args.model, quiet=args.quiet).save(args.output, quiet=args.quiet)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"build": _build, "score": _score, "info": _info, "convert": _convert,
         "paper-eval": _paper_eval}[args.command](args)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CorpusError, ModelFormatError, DiscountError, ValueError, OSError) as exc:
        print(f"glm {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"glm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
