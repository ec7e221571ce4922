"""The ``glm`` command: argument parsing only; the work is done by the library.

Every failure ends in one line on stderr, ``glm COMMAND: error: ...``, and exit status 1 (2 for usage
errors).  SIGINT, SIGTERM and SIGHUP unwind the work as an exception does, so that every temporary file
and directory is removed, and exit with 130, 143 and 129.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from concurrent.futures.process import BrokenProcessPool

from .corpus import CorpusError
from .discount import DiscountError
from .formats import BINARY_SUFFIX, ModelFormatError, json_text
from .generalized import METHODS


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that the work unwinds as for Ctrl-C (every
    ``with`` block that owns a temporary file or directory removes it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    for sig in (signal.SIGTERM, signal.SIGHUP):      # a second signal must not interrupt the cleanup
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


# -- options that take several values --------------------------------------------------------------
# argparse gives an option with nargs="+" every word up to the next option, inputs included.  So,
# before parsing, the values of these options are made into one word (--prune=0,1,1): numeric options
# take the numbers that follow them, --dask the next word only when it is a scheduler address.
_NUMERIC = ("--prune", "--discount-fallback")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def _is_numbers(word: str) -> bool:
    return all(_NUMBER.fullmatch(x) for x in word.split(","))


def _is_address(word: str) -> bool:
    address = word == "local" or "://" in word or bool(re.fullmatch(r"[\w.-]+:\d+", word))
    return address and not os.path.exists(word)


def _regroup(argv: list[str]) -> list[str]:
    """argv with the values of --prune, --discount-fallback and --dask joined to them (see above)."""
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            out += argv[i - 1:]
            break
        if word in _NUMERIC:
            values = []
            while i < len(argv) and _is_numbers(argv[i]):
                values.append(argv[i])
                i += 1
            out.append(f"{word}={','.join(values)}")
        elif word == "--dask":
            address = i < len(argv) and _is_address(argv[i])
            out.append(f"--dask={argv[i] if address else 'local'}")
            i += address
        else:
            out.append(word)
    return out


def _numbers(kind, what: str, empty_ok: bool):
    def parse(text: str) -> tuple:
        parts = [x for x in text.replace(",", " ").split()]
        if not parts and not empty_ok:
            raise argparse.ArgumentTypeError(f"expected {what}")
        try:
            return tuple(kind(x) for x in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
    return parse


def _fraction(text: str) -> float:
    from .split import check_fraction
    try:
        return float(check_fraction(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction of the training lines in [0, 0.5] "
                                         f"(e.g. 0.1), not {text!r}") from None


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bad-utf8", choices=("error", "replace"), default="error",
                   help="invalid UTF-8 in the text: fail naming file and line (default) or replace bad bytes")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or messages")


def _add_doc_options(p: argparse.ArgumentParser, scoring: bool = True) -> None:
    """Input options of the curation commands (documents, not sentences); scoring: the command scores
    documents (workers, plot)."""
    g = p.add_argument_group("documents")
    g.add_argument("--format", choices=("text", "jsonl"), default="text", dest="doc_format",
                   help="plain text (default) or JSON lines")
    g.add_argument("--unit", choices=("line", "paragraph"), default="line",
                   help="text: one document per line (default) or per blank-line-separated paragraph")
    g.add_argument("--text-field", default="text", help="JSONL: field of the text (dotted path allowed)")
    g.add_argument("--id-field", default=None,
                   help="JSONL: field of the document id (dotted path allowed); default: the field 'id' "
                        "of the documents that have one, FILE:LINE for the others")
    g.add_argument("--on-bad-json", choices=("error", "skip"), default="error",
                   help="a malformed JSONL line: fail naming file and line (default), or skip and count it")
    if scoring:
        g.add_argument("--workers", "-j", type=_workers, default=None,
                       help="scoring processes (default: the cores, or $GLM_THREADS)")
        p.add_argument("--plot", metavar="PNG", default=None,
                       help="histogram of the scores with the thresholds marked (needs matplotlib)")


def _workers(text: str) -> int:
    from .threads import count
    try:
        return count("workers", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_tokenizer_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tokenization (documents)")
    g.add_argument("--tokenizer", choices=("whitespace", "ccnet"), default="whitespace",
                   help="whitespace: the text as it is (default); ccnet: CCNet's normalization and "
                        "SentencePiece pieces (--sp-model), and CCNet's per-document perplexity "
                        "(pip install glm[ccnet])")
    g.add_argument("--sp-model", default=None, metavar="SP_MODEL",
                   help="the SentencePiece model of --tokenizer ccnet (CCNet's L.sp.model)")


def _tokenizer(args):
    from .ccnet import tokenizer_of
    return tokenizer_of(args.tokenizer, args.sp_model)


def _doc_format(args):
    from .curation import DocFormat
    return DocFormat(args.doc_format, args.unit, args.text_field, args.id_field, args.on_bad_json,
                     args.bad_utf8)


def _pair(text: str, kind=float) -> tuple:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two comma-separated numbers, not {text!r}")
    try:
        return tuple(kind(x) for x in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two comma-separated numbers, not {text!r}") from None


def _curation_parsers(sub) -> None:
    d = sub.add_parser("softdedup", help="SoftDedup sampling weights of documents (He et al. 2024)",
                       description="Train an n-gram model on the documents (or use --model), score each "
                                   "document and write id, tokens, commonness, segment, weight per line.")
    d.add_argument("inputs", nargs="+", metavar="INPUT")
    d.add_argument("-o", "--output", required=True, help="weights, JSON lines")
    d.add_argument("--order", type=int, default=4, help="order of the model trained on the documents")
    d.add_argument("--model", default=None, help="score with this model instead of training one")
    d.add_argument("--save-model", default=None, metavar="PATH", help="keep the trained model here")
    d.add_argument("--commonness", choices=("geomean", "joint"), default="geomean",
                   help="per-token geometric mean probability (default) or joint probability")
    d.add_argument("--segments", type=int, default=10,
                   help="equal-count commonness segments (default 10; 0: one weight per document)")
    d.add_argument("--stat", choices=("median", "mean"), default="median",
                   help="segment weight = 1 / this statistic of its commonness")
    d.add_argument("--normalize", choices=("docs", "tokens"), default="docs",
                   help="mean weight 1 per document (default) or per token")
    d.add_argument("--clip", type=_pair, default=None, metavar="LO,HI",
                   help="bound each segment weight to LO..HI times the median segment weight")
    d.add_argument("--floor-segment", action="store_true",
                   help="the least common segment gets the weight of the next one")
    d.add_argument("--manifest", default=None, help="write the parameters and per-segment figures here")
    _add_doc_options(d)
    _add_input_options(d)

    r = sub.add_parser("resample", help="draw documents by weight, seeded, to a target size")
    r.add_argument("inputs", nargs="+", metavar="INPUT")
    r.add_argument("--weights", required=True, help="JSON lines with id, weight (and tokens)")
    target = r.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-tokens", type=int, help="draw until this many tokens")
    target.add_argument("--target-docs", type=int, help="draw this many documents")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--manifest", default=None)
    _add_doc_options(r, scoring=False)
    _add_input_options(r)

    p = sub.add_parser("prune", help="keep a fraction of documents by perplexity band (Ankner et al.)")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--model", help="reference model (ARPA or binary)")
    _add_tokenizer_options(p)
    ref.add_argument("--ref-fraction", type=float,
                     help="train the reference model on this random fraction of the documents "
                          "(left out of the outputs)")
    p.add_argument("--order", type=int, default=5, help="order of the reference model trained here")
    p.add_argument("--criterion", choices=("low", "medium", "high"), required=True)
    p.add_argument("--rate", type=float, required=True, help="fraction of the candidates to keep")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="kept documents")
    p.add_argument("--rejected", default=None, help="rejected documents")
    p.add_argument("--manifest", default=None)
    _add_doc_options(p)
    _add_input_options(p)

    k = sub.add_parser("bucket", help="CCNet head / middle / tail buckets by perplexity")
    k.add_argument("inputs", nargs="+", metavar="INPUT")
    k.add_argument("--model", required=True)
    _add_tokenizer_options(k)
    k.add_argument("--out-dir", required=True)
    k.add_argument("--cutoffs", type=lambda t: _pair(t, int), default=(30, 60), metavar="HEAD,TAIL",
                   help="percentiles of the head and tail boundaries (default 30,60, as CCNet)")
    k.add_argument("--cutoff-csv", default=None, help="per-language perplexity percentiles, CCNet's format")
    k.add_argument("--lang-field", default=None, help="JSONL field of the document language")
    k.add_argument("--lang", default=None, help="language of every document (a column of the cutoff file)")
    _add_doc_options(k)
    _add_input_options(k)


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    ap = argparse.ArgumentParser(prog="glm", description="Modified Kneser-Ney and Generalized n-gram "
                                                         "language models.", allow_abbrev=False)
    ap.add_argument("--version", action="version", version=f"glm {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser
    sub.add_parser = lambda *a, **kw: add_parser(*a, allow_abbrev=False, **kw)   # (see _regroup)

    b = sub.add_parser("build", help="estimate a model from text (one sentence per line)",
                       description="Estimate an interpolated modified Kneser-Ney model, as lmplz does, or a "
                                   "Generalized Language Model (skip patterns, docs/glm.md).")
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="text files (plain, gzip, bzip2, xz or zstd), directories, or - for stdin")
    b.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help=f"model file: .arpa, .arpa.gz/.bz2/.xz (MKN, tuned MKN), .glm, .glm.gz/... (GLM, "
                        f"tuned MKN) or {BINARY_SUFFIX} (binary, all); any other name with --layout compact")
    b.add_argument("--order", "-n", type=int, required=True, help="n-gram order")
    b.add_argument("--method", choices=METHODS, default="mkn",
                   help="mkn: modified Kneser-Ney (default); glm: the normalized Generalized Language Model "
                        "(tuned by default on a tenth of the training text: --tune-split); "
                        "glm-abs: GLM with occurrence counts at the lower orders; glmtk2014, glmtk2014-mkn: "
                        "the 2014 toolkit's GLM and MKN, NOT normalized, to reproduce the paper (.glmb only)")
    b.add_argument("--tune", metavar="HELDOUT", action="append", default=None,
                   help="fit child weights (GLM) and discount scales on held-out text (a file or directory; "
                        "repeat --tune for several) instead of on a part of the training text; the model "
                        "is then written as .glm / .glmb, for mkn too")
    b.add_argument("--tune-split", type=_fraction, default=None, metavar="FRACTION",
                   help="fit child weights (GLM) and discount scales on an interleaved FRACTION of the "
                        "training lines (0.1: every 10th line), then rebuild on all the lines with them; "
                        "default 0.1 for glm and glm-abs (unless --tune), 0 otherwise; 0: untuned "
                        "(uniform weights); with mkn: a tuned MKN, which .arpa holds too (docs/glm.md "
                        "§3.1)")
    b.add_argument("--prune", type=_numbers(int, "thresholds (whole numbers)", False), default=(),
                   metavar="T", help="drop n-grams of order k seen at most T_k times (T for unigrams, bigrams, "
                                     "...; non-decreasing; the last value repeats; <unk>, <s>, </s> are kept); "
                                     "a GLM pattern with k words uses T_k, its mass going to the back-off "
                                     "(docs/glm.md §2)")
    b.add_argument("--discount-fallback", type=_numbers(float, "discounts (numbers)", True), default=None,
                   metavar="D", help="discounts to use where the closed form fails (default 0.5 1 1.5)")
    b.add_argument("--interpolate-unigrams", type=int, choices=(0, 1), default=1,
                   help="mix unigrams with the uniform distribution (1, default) or give <unk> the "
                        "left-over mass (0, SRILM style)")
    b.add_argument("--vocab-pad", type=int, default=0, metavar="K",
                   help="use a uniform distribution over at least K words")
    b.add_argument("--skip-symbols", action="store_true", help="drop literal <s> and </s> in the text")
    b.add_argument("--memory", "-S", default=None, metavar="SIZE",
                   help="memory budget, e.g. 2G or 500M (as lmplz -S): sorted runs spill to --tmpdir and "
                        "large arrays are memory-mapped files there (default: no budget, all in memory); "
                        "with --dask, the budget of the client and of every worker (over its threads), "
                        "which spills to its local directory")
    b.add_argument("--tmpdir", "-T", default=None, metavar="DIR",
                   help="where --memory puts its temporary files (default: the system's temp directory)")
    b.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="threads for counting, estimation and writing (default: all cores)")
    b.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="count and merge on a Dask cluster (and, for an MKN model written as ARPA, "
                        "estimate and write it there too): the scheduler at ADDRESS (tcp://host:port or "
                        "host:port), or a LocalCluster of --workers processes (default 2) when no address "
                        "is given (pip install glm[dask])")
    _add_layout_options(b)
    _add_input_options(b)

    s = sub.add_parser("score", help="perplexity of text under a model (as KenLM's query)")
    s.add_argument("model")
    s.add_argument("inputs", nargs="+", metavar="INPUT")
    s.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    s.add_argument("--per-line", choices=("tsv", "jsonl"), default=None,
                   help="write one row per input line (log10_prob, tokens, oovs, perplexity)")
    s.add_argument("-o", "--output", default=None,
                   help="where the --per-line or --per-doc rows go (default stdout)")
    s.add_argument("--no-bos", action="store_true", help="do not condition the first word on <s>")
    s.add_argument("--no-eos", action="store_true", help="do not predict </s> at the end of lines")
    s.add_argument("--per-doc", action="store_true",
                   help="write one row per document (id, tokens, oovs, log10_prob, perplexity): JSON "
                        "lines, or TSV when the output name ends in .tsv or .tsv.gz")
    s.add_argument("--manifest", default="auto",
                   help="--per-doc: where the definitions and totals go (default OUTPUT.manifest.json "
                        "for a JSONL file; 'none' for nothing)")
    _add_doc_options(s)
    _add_tokenizer_options(s)
    _add_input_options(s)

    e = sub.add_parser("paper-eval", help="train and score as in the GLM paper (sampled test sequences)",
                       description="Per-word chain-rule perplexity of the first ORDER words of each test "
                                   "line, from an empty context, OOVs included (docs/glm.md).")
    e.add_argument("--train", nargs="+", required=True, metavar="TRAIN")
    e.add_argument("--test", nargs="+", required=True, metavar="SEQUENCES")
    e.add_argument("--order", "-n", type=int, required=True)
    e.add_argument("--method", choices=METHODS, default="glm")
    e.add_argument("--tune", metavar="HELDOUT", action="append", default=None)
    e.add_argument("--tune-split", type=_fraction, default=0.0, metavar="FRACTION",
                   help="fit on an interleaved FRACTION of the training lines, then rebuild on all "
                        "(default 0 here: the paper's models are untuned)")
    e.add_argument("--discount-fallback", type=_numbers(float, "discounts (numbers)", True), default=None,
                   metavar="D")
    e.add_argument("--padding", choices=("kenlm", "paper"), default="kenlm",
                   help="kenlm: glm's models as built by `glm build`; paper: the reference notes' "
                        "conventions (n-1 <s> of padding, each factor by the top of its own length; "
                        "glm, glm-abs and mkn, untuned)")
    e.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_input_options(e)

    i = sub.add_parser("info", help="orders, n-gram counts and discounts of a model")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")

    v = sub.add_parser("verify", help="check a model file in full (checksums and every value)",
                       description="Check every array's checksum and every value of a binary model "
                                   "(docs/formats.md); a text model is checked in full as it is read.")
    v.add_argument("model")
    v.add_argument("--json", action="store_true", help="print the report as one JSON object")
    v.add_argument("--workers", type=_workers, default=None, help="threads (default: the cores)")

    _curation_parsers(sub)

    c = sub.add_parser("convert", help=f"rewrite a model in another format (e.g. ARPA to {BINARY_SUFFIX})")
    c.add_argument("model")
    c.add_argument("output")
    c.add_argument("-q", "--quiet", action="store_true")
    _add_layout_options(c)
    return ap


def _bits(text: str):
    """--quantize: BITS or PROB_BITS,BACKOFF_BITS (checked by the writer's layout_options)."""
    try:
        parts = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BITS or PROB_BITS,BACKOFF_BITS (whole numbers), not {text!r}")
    if len(parts) not in (1, 2) or not all(2 <= b <= 25 for b in parts):
        raise argparse.ArgumentTypeError(f"expected BITS or PROB_BITS,BACKOFF_BITS, each 2 to 25 (as KenLM's "
                                         f"-q/-b), not {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _add_layout_options(p) -> None:
    p.add_argument("--layout", choices=("fast", "compact"), default=None,
                   help="fast (default): the format the output's name says (ARPA, .glm, .glmb: glm's fast "
                        "binary); compact: KenLM's trie binary (as build_binary trie, about 10 bytes an "
                        "n-gram; read by glm and KenLM), whatever the name (not .arpa/.glm/.glmb); MKN, "
                        "ARPA and KenLM models only")
    p.add_argument("--quantize", type=_bits, default=None, metavar="BITS",
                   help=f"a back-off model: store probabilities and backoffs in BITS bits (or "
                        "PROB_BITS,BACKOFF_BITS), 2 to 25, as build_binary -q -b (KenLM's bins; implies --layout "
                        f"compact); a GLM (--method glm, glm-abs, a tuned mkn) written as {BINARY_SUFFIX}: its "
                        "alphas and gammas as 8- or 16-bit codes into a codebook (docs/glm.md, \"Quantized "
                        "files\")")
    p.add_argument("--pointer-bits", type=int, choices=range(256), default=None, metavar="B",
                   help="compress the trie's child pointers with an array of at most B high bits, as "
                        "build_binary -a B (0-255; 22 is usual, 255 takes as many as pay): about a byte less "
                        "per n-gram, slightly slower lookups; implies --layout compact")


def _log(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _build(args) -> None:
    from .build import train
    from .threads import workers
    t0 = time.time()          # train() checks the output name before counting
    fallback = args.discount_fallback
    with workers(None if args.dask else args.workers):
        model = train(args.inputs, args.order, method=args.method, tune=args.tune, prune=args.prune,
                      discount_fallback=fallback, interpolate_unigrams=bool(args.interpolate_unigrams),
                      vocab_pad=args.vocab_pad, skip_symbols=args.skip_symbols, bad_utf8=args.bad_utf8,
                      quiet=args.quiet, memory=args.memory, tmpdir=args.tmpdir, dask=args.dask,
                      dask_workers=args.workers if args.dask else None, output=args.output,
                      tune_split=args.tune_split, layout=args.layout, quantize=args.quantize,
                      pointer_bits=args.pointer_bits)
        for line in model.describe():
            _log(args, line)
    _log(args, f"wrote {args.output} in {time.time() - t0:.1f} s")
    if args.memory and not args.dask:
        _note_peak_over_budget(args)


def _note_peak_over_budget(args) -> None:
    """A note when the build's peak resident memory was above --memory: what the budget does not bound
    (the vocabulary, the .glmb writer's hash, ...) set a floor for this corpus (docs/scale.md)."""
    try:
        import resource
    except ImportError:                       # (not on Windows, where a budget is refused anyway)
        return
    from .spill import parse_size
    scale = 1 if sys.platform == "darwin" else 1024          # ru_maxrss: bytes on macOS, KiB elsewhere
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    if peak > 1.1 * parse_size(args.memory):
        _log(args, f"note: the peak resident memory, {peak / (1 << 20):.0f} MiB, was above --memory "
                   f"{args.memory}: what a budget does not bound (the vocabulary, the .glmb writer's hash, "
                   "the interpreter) needs that much for this text (docs/scale.md)")


def _score(args) -> None:
    from .corpus import expand_inputs
    from .model import load
    if args.per_doc:
        _score_per_doc(args)
        return
    if args.tokenizer != "whitespace" or args.sp_model:
        raise ValueError("--tokenizer and --sp-model score documents: use them with --per-doc")
    if args.output is not None and not args.per_line:
        raise ValueError("-o/--output is where --per-line or --per-doc rows go; give one of them")
    output = args.output or "-"
    inputs = expand_inputs(args.inputs)          # (every input checked before any work)
    if output != "-":
        from .formats import check_outputs
        check_outputs({"--output": output}, [args.model] + inputs)
    model = load(args.model, quiet=args.quiet)
    bos, eos = not args.no_bos, not args.no_eos
    if args.per_line:
        import contextlib
        from .formats import atomic_output
        from .model import Evaluation
        total = Evaluation(0.0, 0, 0, 0.0, 0)
        with contextlib.ExitStack() as stack:
            out = (sys.stdout if output == "-" else
                   stack.enter_context(open(stack.enter_context(atomic_output(output)), "w", encoding="utf-8")))
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
                        rows.append(json_text(dict(line=i, log10_prob=lp, tokens=tok, oovs=oov,
                                                   perplexity=ppl)) + "\n")
                out.write("".join(rows))
                total.add(res)
        if output == "-":
            return
    else:
        total = model.evaluate(args.inputs, bos, eos, args.quiet, args.bad_utf8)
    summary = total.as_dict()
    if args.json:
        print(json_text(summary))
    else:
        print(f"Perplexity including OOVs:\t{summary['perplexity']:.6g}")
        print(f"Perplexity excluding OOVs:\t{summary['perplexity_excluding_oov']:.6g}")
        print(f"OOVs:\t{summary['oovs']}")
        print(f"Tokens:\t{summary['tokens']}")


def _score_per_doc(args) -> None:
    from .curation import score_to_file
    if args.per_line or args.no_bos or args.no_eos:
        raise ValueError("--per-doc scores documents with <s> and </s> per line; it does not combine "
                         "with --per-line, --no-bos or --no-eos")
    output = args.output or "-"
    tsv = output.endswith((".tsv", ".tsv.gz"))
    total = score_to_file(args.model, args.inputs, output, _doc_format(args), tsv=tsv,
                          manifest=None if args.manifest == "none" else args.manifest,
                          workers=args.workers, quiet=args.quiet, plot=args.plot, tokenizer=_tokenizer(args))
    skipped = f", {total['skipped']} malformed lines skipped" if total["skipped"] else ""
    ppl = "n/a" if total["perplexity"] is None else format(total["perplexity"], ".6g")
    _log(args, f"{total['documents']} documents, {total['tokens']} tokens, {total['oovs']} OOVs, "
               f"perplexity {ppl}{skipped}")


def _softdedup(args) -> None:
    from .curation import softdedup_to_file
    info = softdedup_to_file(args.inputs, args.output, _doc_format(args), order=args.order,
                             model=args.model, mode=args.commonness, segments=args.segments,
                             stat=args.stat, normalize=args.normalize, clip=args.clip,
                             floor_segment=args.floor_segment, save_model=args.save_model,
                             manifest=args.manifest, workers=args.workers, quiet=args.quiet,
                             plot=args.plot)
    _log(args, f"{info['documents']} documents weighted in {len(info['segments'])} segments")


def _resample(args) -> None:
    from .curation import resample_to_file
    info = resample_to_file(args.inputs, args.weights, args.output, _doc_format(args),
                            target_docs=args.target_docs, target_tokens=args.target_tokens,
                            seed=args.seed, manifest=args.manifest, quiet=args.quiet)
    _log(args, f"drew {info['drawn_documents']} documents ({info['distinct_documents']} distinct)")


def _prune(args) -> None:
    from .curation import prune_to_files
    info = prune_to_files(args.inputs, args.output, _doc_format(args), model=args.model,
                          ref_fraction=args.ref_fraction, order=args.order, criterion=args.criterion,
                          rate=args.rate, seed=args.seed, rejected=args.rejected, manifest=args.manifest,
                          workers=args.workers, quiet=args.quiet, plot=args.plot, tokenizer=_tokenizer(args))
    c = info["counts"]
    _log(args, f"kept {c['kept']} of {c['candidates']} documents ({c['reference']} trained the reference)")


def _bucket(args) -> None:
    from .curation import bucket_to_dir
    info = bucket_to_dir(args.inputs, args.model, args.out_dir, _doc_format(args), cutoffs=args.cutoffs,
                         cutoff_csv=args.cutoff_csv, lang_field=args.lang_field, lang=args.lang,
                         workers=args.workers, quiet=args.quiet, plot=args.plot, tokenizer=_tokenizer(args))
    _log(args, " ".join(f"{k}={v}" for k, v in info["counts"].items()))


def _info(args) -> None:
    from .model import load
    model = load(args.model)
    if args.json:
        print(json_text(model.info()))
        return
    print(f"order\t{model.order}")
    print(f"vocabulary\t{len(model.vocab)}")
    for line in model.describe(sep="\t"):
        print(line)


def _verify(args) -> None:
    from .model import load
    model = load(args.model)
    report = model.verify(args.workers)
    if args.json:
        print(json_text(dict(model=args.model, sound=True, **report)))
        return
    from .formats import is_binary
    t = f"{report['seconds']:.2f} s"
    what = (f"checksums and values checked in {t}" if report["checksums"] else
            f"values checked in {t} (no checksums: the file predates them)" if is_binary(model.source) else
            f"every value checked as it was read, the structure in {t} (text files have no checksums)")
    print(f"{args.model}: sound: {report['arrays']} arrays, {report['bytes'] / 1e6:.1f} MB, {what}")


def _paper_eval(args) -> None:
    from .build import train
    from .corpus import expand_inputs
    from .paper.protocols import sequence_perplexity
    expand_inputs(args.test, "--test")            # (checked before training)
    model = train(args.train, args.order, method=args.method, tune=args.tune,
                  discount_fallback=args.discount_fallback, bad_utf8=args.bad_utf8, quiet=args.quiet,
                  padding=args.padding, tune_split=args.tune_split)
    res = dict(sequence_perplexity(model, args.test, args.order, args.quiet, args.bad_utf8),
               order=args.order, method=args.method, tuned=bool(args.tune or args.tune_split),
               padding=args.padding)
    if args.json:
        print(json_text(res))
    else:
        for k, v in res.items():
            print(f"{k}\t{v}")


def _convert(args) -> None:
    from .model import load
    from .formats import output_layout
    compact = output_layout(args.output, args.layout, args.quantize, args.pointer_bits)[0]  # (before reading)
    if compact:
        from .formats import check_output
        check_output(args.output, inputs=[args.model], compact=True)
    load(args.model, quiet=args.quiet).save(args.output, quiet=args.quiet, layout=args.layout,
                                            quantize=args.quantize, pointer_bits=args.pointer_bits)


COMMANDS = {"build": _build, "score": _score, "info": _info, "verify": _verify, "convert": _convert,
            "paper-eval": _paper_eval, "softdedup": _softdedup, "resample": _resample, "prune": _prune,
            "bucket": _bucket}


def main(argv=None) -> int:
    args = _parser().parse_args(_regroup(list(sys.argv[1:] if argv is None else argv)))
    handlers = {}
    if threading_main():
        handlers = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        COMMANDS[args.command](args)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"glm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"glm {args.command}: terminated by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except (CorpusError, ModelFormatError, DiscountError, ValueError, OSError, ImportError) as exc:
        print(f"glm {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenProcessPool:
        print(f"glm {args.command}: error: a worker process died (killed by a signal, or out of memory)",
              file=sys.stderr)
        return 1
    except MemoryError:
        print(f"glm {args.command}: error: out of memory (see --memory in docs/scale.md)", file=sys.stderr)
        return 1
    except Exception as exc:                  # a bug: still one line (GLM_DEBUG=1 shows the traceback)
        if os.environ.get("GLM_DEBUG"):
            raise
        print(f"glm {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug in glm; "
              "please report it, with the traceback that GLM_DEBUG=1 shows)", file=sys.stderr)
        return 1
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
    return 0


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:    # as "FILE: why"
        text = f"{exc.filename}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split()) if "\n" in text else text


if __name__ == "__main__":
    sys.exit(main())
