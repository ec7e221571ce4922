"""Training: text -> vocabulary -> counts -> discounts -> probabilities -> Model.

``train`` is the pipeline: one validation step (``_Plan.check``), then count, estimate (MKN or GLM) and
write, each step a function below it.  The text is read by glm.corpus (and split by glm.split when a part
of it is held out to fit the parameters on).
"""
from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from . import _count
from ._query import trie_hash
from .corpus import CorpusError, expand_inputs, input_names, rereadable, text_chunks
from .counts import NgramCounter
from .discount import DiscountError
from .formats.binary import StreamingBinary
from .mkn import Options, estimate
from .progress import stage
from .model import BackoffModel, Model
from .spill import Scratch
from .threads import count as check_count, threads, workers as using_workers
from .vocab import Vocabulary, check_text

MAX_ORDER = 16
BAD_UTF8 = ("error", "replace")
TUNED_BY_DEFAULT = ("glm", "glm-abs")     # fitted on a part of the training text unless told otherwise
DEFAULT_TUNE_SPLIT = 0.1


def count(inputs=None, order: int = 5, *, lines=None, with_raw: bool = False, skip_symbols: bool = False,
          bad_utf8: str = "error", quiet: bool = True, scratch=None, dask=None,
          dask_workers: int | None = None, pad: int = 0, chunks=None) -> tuple[Vocabulary, list[dict]]:
    """The vocabulary and counted trie levels (adjusted counts; occurrences too when with_raw), counted
    here (spilling to ``scratch`` when given) or on a Dask cluster.  pad: that many copies of the pad
    word of glm.paper.padding after each <s>.  chunks: the text as chunks of lines (glm.corpus.Chunk)
    instead of inputs or lines (counted here)."""
    symbols = "skip" if skip_symbols else "error"
    if dask is not None:
        from .distributed import count_on_dask
        vocab, (keys, counts, layout) = count_on_dask(inputs, order, dask, dask_workers, symbols,
                                                      bad_utf8, scratch)
    else:
        vocab = Vocabulary()
        if pad:                                        # paper padding: the pad word after each <s>
            from .paper.padding import WORD as PAD_WORD, pad_stream
            pad_id = vocab.table.add_word(PAD_WORD)
        counter = NgramCounter(order, scratch=scratch, background=True)     # (counts while tokenizing)
        try:
            for chunk in chunks if chunks is not None else text_chunks(inputs, lines, quiet, "counting"):
                ids = vocab.tokenize(chunk, add=True, symbols=symbols, bad_utf8=bad_utf8)
                counter.add(ids if not pad else pad_stream(ids, pad_id, pad), len(vocab))
            keys, counts, layout = counter.merged(len(vocab))
        finally:
            counter.close()
        del counter
    return vocab, _count.build_levels(keys, counts, layout, len(vocab), with_raw, _alloc(scratch), threads())


@dataclass
class _Plan:
    """What ``train`` was asked, checked once before any work (every error names the argument)."""
    inputs: list | None      # the files (directories walked), or None: the text is ``lines``
    lines: Iterable | None
    order: int
    method: str
    generalized: bool        # the model is a GeneralizedModel (a GLM, a tuned MKN, paper padding)
    paper: bool
    opts: Options
    tune: list | None
    output: str | None
    tune_split: float        # the interleaved part of the training lines the parameters are fitted on
    skip_symbols: bool
    bad_utf8: str
    quiet: bool
    budget: Scratch | None   # the memory budget's scratch directory (made by the block that enters it)
    tmpdir: str | None       # where stdin is copied when the text is read twice (tune_split)
    workers: int | None
    dask: object
    dask_workers: int | None
    layout: str | None = None      # how the output is saved (Model.save)
    quantize: int | tuple | None = None     # KenLM's (probability, backoff) bits, or a GLM's code bits
    pointer_bits: int | None = None

    @property
    def with_raw(self) -> bool:
        """Whether counting keeps the n-grams' occurrences (pruning, glm-abs, the paper's models need them)."""
        return (any(self.opts.prune) or self.method == "glm-abs" or self.method.startswith("glmtk2014")
                or self.paper)

    @classmethod
    def check(cls, inputs, lines, order, *, method, tune, prune, discount_fallback, interpolate_unigrams,
              vocab_pad, skip_symbols, bad_utf8, quiet, memory, tmpdir, workers, dask, dask_workers,
              output, padding, tune_split, layout=None, quantize=None, pointer_bits=None) -> "_Plan":
        if (inputs is None) == (lines is None):
            raise TypeError("train: give either inputs (paths of files) or lines= (an iterable of lines)"
                            + (", not both" if inputs is not None else ""))
        paths = expand_inputs(inputs) if inputs is not None else None
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
            raise TypeError(f"order: expected an int, not {type(order).__name__}")
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be between 1 and {MAX_ORDER}, not {order}")
        if bad_utf8 not in BAD_UTF8:
            raise ValueError(f"bad_utf8 must be one of {', '.join(BAD_UTF8)}, not {bad_utf8!r}")
        if padding not in ("kenlm", "paper"):
            raise ValueError(f"padding must be 'kenlm' or 'paper', not {padding!r}")
        for name, n in (("workers", workers), ("dask_workers", dask_workers)):
            if n is not None:
                check_count(name, n)
        paper = padding == "paper"
        if paper and (method not in ("glm", "glm-abs", "mkn") or tune or output is not None):
            raise ValueError("paper padding is for untuned glm, glm-abs and mkn models that are not saved")
        if tune_split is None:       # the default: GLMs are fitted on a part of their training text
            split = DEFAULT_TUNE_SPLIT if method in TUNED_BY_DEFAULT and not tune and not paper else 0.0
        else:
            from .split import check_fraction
            split = float(check_fraction(tune_split))
            if split and tune:
                raise ValueError("give tune (a held-out file: --tune) or tune_split (a part of the training "
                                 "text: --tune-split), not both; tune_split=0 with tune")
            if split and paper:
                raise ValueError("paper padding is for untuned models: give tune_split=0 (--tune-split 0)")
            if split and method.startswith("glmtk2014"):
                raise ValueError(f"{method}: the 2014 toolkit's models are not tuned (give tune_split=0, "
                                 "or use glm or mkn)")
        generalized = method != "mkn" or bool(tune) or paper or split > 0
        if generalized:
            from .generalized import check
            check(order, method)
        tune = expand_inputs(tune, "tune") if tune is not None else None
        compact, bits, codes = False, None, None
        if layout is not None or quantize is not None or pointer_bits is not None:
            if output is None:
                raise ValueError("layout/quantize/pointer_bits: they say how the output is saved; give output (-o)")
            from .formats import output_layout
            compact, bits, pointer_bits, codes = output_layout(os.fspath(output), layout, quantize, pointer_bits)
            if codes is not None and not generalized:
                raise ValueError(f"{os.fspath(output)}: quantize to a .glmb applies to GLM models (--method glm, "
                                 "glm-abs, a tuned mkn); an MKN model is quantized in KenLM's trie: give a name "
                                 "that is not .arpa/.glm/.glmb (e.g. model.klm)")
        if output is not None:
            from .formats import check_output
            output = os.fspath(output)
            check_output(output, generalized, inputs=(paths or []) + (tune or []), arpa=method == "mkn",
                         compact=compact)
        if discount_fallback is True:
            discount_fallback = ()
        opts = Options(tuple(int(t) for t in prune),
                       None if discount_fallback in (None, False) else tuple(discount_fallback),
                       bool(interpolate_unigrams), int(vocab_pad))
        opts.check(order)
        if any(opts.prune) and (paper or method.startswith("glmtk2014")):
            raise ValueError("pruning is not supported for paper padding nor the 2014 toolkit's models "
                             "(prune: use glm, glm-abs or mkn)")
        if tune and method.startswith("glmtk2014"):
            raise ValueError(f"{method}: the 2014 toolkit's models are not tuned (use glm or mkn)")
        if dask is not None:
            if paper:
                raise ValueError("dask: paper padding is not supported")
            if paths is None:
                raise ValueError("dask: the inputs must be files (paths or directories), not lines")
        budget = Scratch(memory, tmpdir) if memory is not None else None     # (checks memory and tmpdir)
        return cls(paths, lines, int(order), method, generalized, paper, opts, tune, output, split,
                   skip_symbols, bad_utf8, quiet, budget, tmpdir, workers, dask, dask_workers,
                   "compact" if compact else layout, bits if codes is None else codes, pointer_bits)


def train(inputs=None, order: int = 5, *, lines: Iterable[str | bytes] | None = None, method: str = "mkn",
          tune=None, prune=(), discount_fallback=None, interpolate_unigrams: bool = True,
          vocab_pad: int = 0, skip_symbols: bool = False, bad_utf8: str = "error", quiet: bool = True,
          memory=None, tmpdir=None, workers: int | None = None, dask=None, dask_workers: int | None = None,
          output=None, padding: str = "kenlm", tune_split: float | None = None, layout: str | None = None,
          quantize=None, pointer_bits: int | None = None) -> Model:
    """Estimate a modified Kneser-Ney model (as lmplz does) or a Generalized Language Model.

    Parameters
    ----------
    inputs : str, os.PathLike or list of them
        Files to read, one sentence per line: paths (plain or compressed text), directories (walked in
        sorted order) or '-' (stdin).  Every one must exist (checked before any work).
    order : int
        The n-gram order, 1 to 16.
    lines : iterable of str or bytes, optional
        Lines of text to train on instead of files (give ``inputs`` or ``lines``, not both).
    method : {'mkn', 'glm', 'glm-abs', 'glmtk2014', 'glmtk2014-mkn'}
        'mkn' gives a back-off model; the others a ``GeneralizedModel`` (see docs/glm.md).
    tune : path or list of paths, optional
        Held-out text to fit the child weights (GLM) and discount scales on (``glm.tune``); the result
        is a ``GeneralizedModel``, for 'mkn' too.
    tune_split : float, optional
        Fit the parameters on a part of the training text instead: an interleaved fraction of the
        lines is held out (0.1: every 10th line; glm.split), a model of the other lines is tuned on
        it, and the model is then rebuilt on **all** the lines with the fitted child weights and
        discount scales.  Default (None): 0.1 for 'glm' and 'glm-abs' when no ``tune`` is given, 0
        otherwise; 0 gives the untuned model (uniform weights for a GLM); at most 0.5.  Giving both
        a fraction > 0 and ``tune`` is an error.  For 'mkn' the result is a tuned MKN (a
        ``GeneralizedModel``).  Inputs read from stdin are copied to a temporary file in ``tmpdir``
        (the text is read twice), and an iterator of ``lines`` is kept in a list.
    prune : sequence of int
        Raw-count thresholds per order from unigrams on (lmplz's ``--prune``; the last repeats): an
        n-gram seen at most that often is dropped and its mass goes to the back-off.  For a GLM, a
        pattern's n-grams use the threshold of their number of words (docs/glm.md, "Pruning").
    discount_fallback : None, True or up to three floats
        None to fail when discounts are undefined, True for lmplz's default (0.5, 1, 1.5).
    interpolate_unigrams : bool
        Mix unigrams with the uniform distribution (lmplz's default).
    vocab_pad : int
        Size of the uniform distribution at least this.
    skip_symbols : bool
        Drop literal <s> / </s> instead of failing.
    bad_utf8 : {'error', 'replace'}
        What invalid UTF-8 in the text does.
    quiet : bool
        No progress bars.
    memory : str or int, optional
        A memory budget ('2G', '500M' or bytes; lmplz's -S): sorted runs spill to a private directory in
        ``tmpdir`` (default: the system's) and the large arrays are memory-mapped files there
        (glm.spill); the directory is removed before returning, also on error or interruption.
    tmpdir : path, optional
        Where ``memory`` puts its files.
    workers : int, optional
        Threads for the compiled kernels (default: all cores).
    dask : str or distributed.Client, optional
        Count on a Dask cluster: 'local' (a LocalCluster of ``dask_workers`` processes, default 2), a
        scheduler address or a Client (glm.distributed; files only).  The model is the same.  An MKN
        model saved as ARPA (``output``; not pruned, not tuned, order 2 or more) is also estimated and
        written on the workers (glm.dask_mkn): the model returned then reads its n-grams back from
        ``output`` on first use.
    dask_workers : int, optional
        The processes of a local cluster (``dask='local'``; default 2).
    output : path, optional
        Also save the model there (as ``Model.save``; the name is checked before counting, and may not
        be one of the inputs).  An untuned GLM saved as .glmb is written while it is built (each finished
        pattern table goes into the file and is mapped back from it).
    layout : {None, 'fast', 'compact'}
        How ``output`` is saved (``Model.save``): 'compact' writes KenLM's trie binary (MKN only).
    quantize : int or (int, int), optional
        Quantize the saved output (``Model.save``): to a .glmb, a GLM's alphas and gammas as 8- or 16-bit
        codes; to another name, an MKN's probabilities and backoffs in KenLM's quantized trie.
    pointer_bits : int, optional
        Compress the saved output's child pointers (``Model.save``; KenLM's ``-a``).
    padding : {'kenlm', 'paper'}
        'kenlm' (one <s> per sentence, as lmplz) or 'paper', the conventions of the reference notes'
        normalized en0008t figures (glm.paper.padding), for the paper's protocol only (not saved, not tuned).

    Returns
    -------
    Model
        A ``BackoffModel`` (MKN) or a ``GeneralizedModel``.

    Raises
    ------
    TypeError
        Inputs that are not paths, lines that are not str or bytes, both or neither given.
    CorpusError
        A missing or unreadable input, bad text (the message names the file and line).
    DiscountError
        Discounts undefined for an order (too little text) and no fallback.
    ValueError
        Other invalid arguments (named in the message).
    """
    plan = _Plan.check(inputs, lines, order, method=method, tune=tune, prune=prune,
                       discount_fallback=discount_fallback, interpolate_unigrams=interpolate_unigrams,
                       vocab_pad=vocab_pad, skip_symbols=skip_symbols, bad_utf8=bad_utf8, quiet=quiet,
                       memory=memory, tmpdir=tmpdir, workers=workers, dask=dask, dask_workers=dask_workers,
                       output=output, padding=padding, tune_split=tune_split, layout=layout,
                       quantize=quantize, pointer_bits=pointer_bits)
    if _estimates_on_dask(plan):
        return _dask_backoff_model(plan)
    with _workspace(plan) as (plan, scratch):
        fitted = _fit_on_split(plan, scratch) if plan.tune_split else None     # on a part of the text
        with stage("count"):
            vocab, levels = _count_text(plan, scratch)
        if plan.generalized:
            return _generalized_model(plan, vocab, levels, scratch, fitted)     # estimated, tuned, written
        with stage("estimate"):
            est = estimate(levels, plan.order, plan.opts, _alloc(scratch))
            model = _backoff_model(plan, vocab, est, scratch)
        if plan.output is not None:
            with stage("write"):
                _save(plan, model, scratch)
    return model


def _estimates_on_dask(plan: _Plan) -> bool:
    """Whether the Dask workers estimate and write the model too (glm.dask_mkn): an untuned, unpruned
    MKN of order 2 or more written to an ARPA file; any other Dask build estimates on the client."""
    from .formats import ARPA_SUFFIXES, special
    return (plan.dask is not None and not plan.generalized and not any(plan.opts.prune) and plan.order >= 2
            and plan.output is not None and os.path.basename(plan.output).endswith(ARPA_SUFFIXES)
            and not special(plan.output))


def _dask_backoff_model(plan: _Plan):
    """The MKN model counted, estimated and written as ARPA on the Dask workers (glm.dask_mkn)."""
    from .dask_mkn import WrittenModel, build_arpa
    with _workspace(plan) as (plan, scratch):
        counts, discounts, unpruned = build_arpa(
            plan.inputs, plan.order, plan.output, plan.dask, plan.dask_workers,
            "skip" if plan.skip_symbols else "error", plan.bad_utf8, plan.opts, scratch, plan.quiet)
    return WrittenModel(plan.output, counts, discounts, unpruned,
                        meta={"order": plan.order, "smoothing": "modified Kneser-Ney",
                              "prune": list(plan.opts.prune), **_options(plan)})


@contextmanager
def _workspace(plan: _Plan):
    """(plan, scratch): the block runs with the plan's threads, in its memory budget's scratch directory
    (None without a budget), and with the text readable twice when a part of it is held out (tune_split)."""
    with using_workers(plan.workers), (plan.budget if plan.budget is not None else nullcontext()) as scratch:
        if not plan.tune_split:
            yield plan, scratch
            return
        with rereadable(plan.inputs, plan.lines, plan.tmpdir) as (paths, lines):
            yield replace(plan, inputs=paths, lines=lines), scratch


@dataclass
class Fitted:
    """What was fitted on the held-out part of the training text: the child weights {mask: weights},
    the discount scales {mask: c}, and what the model's meta says of it."""
    weights: dict
    scales: dict
    meta: dict


def _fit_on_split(plan: _Plan, scratch) -> Fitted:
    """Weights and discount scales fitted on the interleaved held-out part of the training text
    (glm.split), with a model of the other lines (counted here, also when the final count is on Dask)."""
    from .generalized import estimate as estimate_glm
    from .model import GeneralizedModel
    from .patterns import name
    from .split import Interleave, label as split_label, tuning_lines
    from .tune import fit
    part = Interleave(plan.tune_split)
    label = split_label(plan.tune_split)
    vocab, levels = _count_training_part(plan, part, label, scratch)
    try:
        tables = estimate_glm(levels, plan.order, plan.method, plan.opts, keep_stats=True,
                              park=_parking(scratch), terms=False)
    except DiscountError as e:
        raise DiscountError(f"{e} (This is the model of the text without {label}, which the weights are "
                            "fitted with: --tune-split 0 (tune_split=0) builds the untuned model.)") from None
    used = tuning_lines(part.heldout)
    model = GeneralizedModel(_kept_words(vocab, tables.unigram_keep), tables, meta=_options(plan))
    model._scorer_only()               # (the fit reads the statistics and traces the text: no tables)
    f = fit(model, lines=used, label=label, quiet=plan.quiet, bad_utf8=plan.bad_utf8)
    meta = dict(tuned_on=label, tune_split=plan.tune_split, heldout_lines=len(part.heldout),
                tuning_lines=len(used), heldout_cross_entropy=f.cross_entropy,
                discount_scales={name(m): c for m, c in sorted(f.scales.items())})
    return Fitted(f.weights, f.scales, meta)


def _count_training_part(plan: _Plan, part, label: str, scratch):
    """The vocabulary and counted levels of the lines that ``part`` (a glm.split.Interleave) does not
    hold out; a CorpusError when they hold no word or it holds out no line."""
    try:
        chunks = part.train(text_chunks(plan.inputs, plan.lines, plan.quiet, "counting"))
        vocab, levels = count(None, plan.order, chunks=chunks,
                              skip_symbols=plan.skip_symbols, bad_utf8=plan.bad_utf8, quiet=plan.quiet,
                              scratch=scratch, with_raw=plan.with_raw)
    except CorpusError:
        # (the lines of the training part are numbered approximately: name the exact line of a bad one)
        check_text(text_chunks(plan.inputs, plan.lines), "skip" if plan.skip_symbols else "error",
                   plan.bad_utf8)
        raise
    if len(vocab) == 3 and not levels[0]["count"][0]:
        raise CorpusError(f"no text in {input_names(plan.inputs)} once {label} is held out: "
                          "nothing to train on")
    if not part.heldout:
        raise CorpusError(f"{label} holds out no line of the {part.lines} lines of "
                          f"{input_names(plan.inputs)}: give more text, a held-out file (--tune / tune=), "
                          "or --tune-split 0 (tune_split=0) for the untuned model")
    return vocab, levels


def _count_text(plan: _Plan, scratch):
    """The vocabulary and counted levels of the whole text (with occurrences where pruning or the method
    needs them), here or on Dask; a CorpusError when the text holds no word."""
    vocab, levels = count(plan.inputs, plan.order, lines=plan.lines, with_raw=plan.with_raw,
                          skip_symbols=plan.skip_symbols, bad_utf8=plan.bad_utf8, quiet=plan.quiet,
                          scratch=scratch, dask=plan.dask, dask_workers=plan.dask_workers,
                          pad=plan.order - 1 if plan.paper else 0)
    if len(vocab) == 3 and not levels[0]["count"][0]:
        raise CorpusError(f"no text in {input_names(plan.inputs)}: not a single word to train on")
    return vocab, levels


def _backoff_model(plan: _Plan, vocab: Vocabulary, est, scratch) -> BackoffModel:
    """The MKN model of an estimate (glm.mkn), its vocabulary without the words that pruning removed;
    under a memory budget, the child hash a .glmb stores is made in the scratch directory."""
    index = trie_hash(est.levels, scratch.zeros) if scratch is not None and _writes_binary(plan) else None
    return BackoffModel(_kept_words(vocab, est.unigram_keep), est.levels, discounts=est.discounts,
                        counts=est.counts, child_index=index,
                        meta={"order": plan.order, "smoothing": "modified Kneser-Ney",
                              "prune": list(plan.opts.prune), **_options(plan)})


def _kept_words(vocab: Vocabulary, keep) -> Vocabulary:
    """The vocabulary of the words kept when unigrams are pruned (keep: by id; None: all)."""
    if keep is None:
        return vocab
    return Vocabulary.from_words([w for w, kept in zip(vocab.table.words()[3:], keep[3:]) if kept])


def _generalized_model(plan: _Plan, vocab, levels, scratch, fitted: Fitted | None = None):
    """A GeneralizedModel from the counted levels, tuned when asked, written when asked (a .glmb while
    its tables are made, unless tuned on a held-out file).  fitted: the parameters fitted on a part of
    the text, applied as the tables are made."""
    streaming = _streams(plan)
    with (StreamingBinary(plan.output, scratch) if streaming else nullcontext()) as writer:
        model = _estimate_generalized(plan, vocab, levels, _parking(scratch, writer), fitted)
        if writer is not None:
            writer.finish(model)
    if plan.tune:
        from . import tune as tuning
        model = tuning.tune(model, plan.tune, quiet=plan.quiet, bad_utf8=plan.bad_utf8)
        model.tables.stats = None
    if plan.output is not None and not streaming:
        _save(plan, model, scratch)
    return model


def _save(plan: _Plan, model, scratch) -> None:
    """Write the model as the plan asks (the compact writer's arrays in the budget's scratch)."""
    from .formats import save
    save(model, plan.output, quiet=plan.quiet, layout=plan.layout, quantize=plan.quantize,
         pointer_bits=plan.pointer_bits, alloc=_alloc(scratch))


def _writes_binary(plan: _Plan) -> bool:
    """Whether the output is a .glmb in a regular file (not /dev/null)."""
    from .formats import BINARY_SUFFIX
    output = plan.output
    return (output is not None and output.endswith(BINARY_SUFFIX)
            and (os.path.isfile(output) or not os.path.exists(output)))


def _streams(plan: _Plan) -> bool:
    """Whether the model is written while its tables are made: an untuned .glmb into a regular file."""
    return _writes_binary(plan) and not plan.tune and plan.quantize is None


def _estimate_generalized(plan: _Plan, vocab, levels, parking, fitted: Fitted | None):
    """The GeneralizedModel of the counted levels (glm.generalized), its finished arrays given to
    ``parking``; fitted: the parameters fitted on a part of the text, applied as the tables are made."""
    from .generalized import estimate as estimate_glm
    from .model import GeneralizedModel
    if plan.paper:
        from .paper.padding import WORD as PAD_WORD
    tables = estimate_glm(levels, plan.order, plan.method, plan.opts, keep_stats=bool(plan.tune),
                          park=parking, pad=vocab.id(PAD_WORD) if plan.paper else None,
                          discount_scales=fitted.scales if fitted else None)
    meta = dict(_options(plan), **({"prune": list(plan.opts.prune)} if any(plan.opts.prune) else {}),
                **(fitted.meta if fitted else {}))
    return GeneralizedModel(_kept_words(vocab, tables.unigram_keep), tables, meta=meta,
                            weights=fitted.weights if fitted else None)


def _parking(scratch, writer: StreamingBinary | None = None):
    """Where finished arrays leave memory: the model file being written (``writer``), else files in the
    budget's scratch directory (glm.spill.park); None (they stay) without either."""
    if writer is not None:
        return writer.park
    if scratch is None:
        return None
    from .spill import park
    return lambda a: park(a, scratch)


def _alloc(scratch):
    """Zeroed arrays: in memory, or files in the budget's scratch directory."""
    return np.zeros if scratch is None else scratch.zeros


def _options(plan: _Plan) -> dict:
    return {"interpolate_unigrams": plan.opts.interpolate_unigrams, "vocab_pad": plan.opts.vocab_pad}
