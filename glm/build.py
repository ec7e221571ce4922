"""Training: text -> vocabulary -> counts -> discounts -> probabilities -> Model."""
from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from typing import Iterable, Iterator

import numpy as np

from . import _count, paperpad
from .corpus import Chunk, read_chunks
from .counts import NgramCounter, workers as using_workers
from .formats.binary import StreamingBinary
from .mkn import Options, estimate
from .model import Model
from .spill import Scratch
from .vocab import Vocabulary


def _is_paths(inputs) -> bool:
    """A path, or a list of paths (holding a Path object, or strings that all name existing files or '-');
    anything else is text.  A list mixing strings that name files with other strings is text, with a
    warning: to name files that may be missing, use Path objects (missing ones then raise)."""
    if isinstance(inputs, (str, os.PathLike)):
        return True
    if not isinstance(inputs, (list, tuple)) or not inputs:
        return False
    if not all(isinstance(x, (str, os.PathLike)) for x in inputs):
        return False
    if any(isinstance(x, os.PathLike) for x in inputs):
        return True
    exist = [x == "-" or os.path.exists(x) for x in inputs]
    if all(exist):
        return True
    if any(exist):
        warnings.warn("glm.train: a list of strings of which only some name existing files is read as "
                      "lines of text; pass pathlib.Path objects to name files", stacklevel=3)
    return False


def _line_chunks(lines: Iterable[str | bytes], chunk_bytes: int = 4 << 20) -> Iterator[Chunk]:
    buf, size, first, count = [], 0, 1, 0
    for line in lines:
        b = line.encode("utf-8", errors="surrogateescape") if isinstance(line, str) else bytes(line)
        b = b.rstrip(b"\n").replace(b"\n", b" ") + b"\n"
        buf.append(b)
        size += len(b)
        count += 1
        if size >= chunk_bytes:
            yield Chunk(b"".join(buf), "<lines>", first)
            buf, size, first = [], 0, count + 1
    if buf:
        yield Chunk(b"".join(buf), "<lines>", first)


def text_chunks(inputs, quiet: bool = True) -> Iterator[Chunk]:
    """Chunks of lines from paths (files, directories, '-') or from an iterable of lines."""
    if _is_paths(inputs):
        return read_chunks(inputs, quiet=quiet, desc="counting")
    return _line_chunks(inputs)


def count(inputs, order: int, *, with_raw: bool = False, skip_symbols: bool = False,
          bad_utf8: str = "error", quiet: bool = True, scratch=None, dask=None,
          dask_workers: int | None = None, pad: int = 0) -> tuple[Vocabulary, list[dict]]:
    """The vocabulary and counted trie levels (adjusted counts; occurrences too when with_raw), counted
    here (spilling to ``scratch`` when given) or on a Dask cluster.  pad: that many copies of the pad
    word of glm.paperpad after each <s>."""
    if not 1 <= order <= 16:
        raise ValueError(f"order must be between 1 and 16, not {order}")
    symbols = "skip" if skip_symbols else "error"
    if dask is not None:
        if pad:
            raise ValueError("dask: paper padding is not supported")
        from .distributed import count_on_dask
        if not _is_paths(inputs):
            raise ValueError("dask: the inputs must be files (paths or directories)")
        vocab, (keys, counts, layout) = count_on_dask(inputs, order, dask, dask_workers, symbols,
                                                      bad_utf8, scratch)
    else:
        vocab = Vocabulary()
        pad_id = vocab.table.add_word(paperpad.WORD) if pad else None
        counter = NgramCounter(order, scratch=scratch)
        for chunk in text_chunks(inputs, quiet):
            ids = vocab.tokenize(chunk, add=True, symbols=symbols, bad_utf8=bad_utf8)
            counter.add(ids if not pad else paperpad.pad_stream(ids, pad_id, pad), len(vocab))
        keys, counts, layout = counter.merged(len(vocab))
        del counter
    alloc = np.zeros if scratch is None else scratch.zeros
    return vocab, _count.build_levels(keys, counts, layout, len(vocab), with_raw, alloc)


def train(inputs, order: int = 5, *, method: str = "mkn", tune=None, prune=(), discount_fallback=None,
          interpolate_unigrams: bool = True, vocab_pad: int = 0, skip_symbols: bool = False,
          bad_utf8: str = "error", quiet: bool = True, memory=None, tmpdir=None,
          workers: int | None = None, dask=None, dask_workers: int | None = None, output=None,
          padding: str = "kenlm") -> Model:
    """Estimate a modified Kneser-Ney model (as lmplz does) or a Generalized Language Model.

    inputs: a path, a directory, '-' (stdin), a list of paths, or any other iterable of lines (str or
    bytes), one sentence per line.  method: 'mkn' (a back-off Model), 'glm' or 'glm-abs' (a
    GeneralizedModel, see glm.generalized).  tune: held-out text (paths) to fit the child weights (GLM)
    and discount scales on (glm.tune); the result is a GeneralizedModel, for 'mkn' too.  prune:
    raw-count thresholds per order from unigrams on (lmplz's --prune; the last repeats; MKN only).
    discount_fallback: None to fail when discounts are undefined, True for lmplz's default
    (0.5, 1, 1.5) or up to three values.  interpolate_unigrams: mix unigrams with the uniform
    distribution (lmplz's default).  vocab_pad: size of the uniform distribution at least this.
    skip_symbols: drop literal <s> / </s> instead of failing.  bad_utf8: 'error' or 'replace'.

    Scale (docs/scale.md): memory, a budget ('2G', '500M' or bytes; lmplz's -S): sorted runs spill to a
    private directory in tmpdir (default: the system's) and the large arrays are memory-mapped files
    there (glm.spill); the directory is removed before returning, also on error or Ctrl-C.  (For GLM
    models the budget covers the counting, and each finished pattern table moves to a file-backed map
    there: the tables being built are in memory.)  workers: threads
    for the compiled kernels (default: all cores).  dask: count on a Dask cluster, 'local' (a
    LocalCluster of dask_workers processes, default 2), a scheduler address or a distributed.Client
    (glm.distributed; paths only).  The model is the same in every case.

    output: also save the model there (as Model.save; checked before counting).  An untuned GLM saved
    as .glmb is written while it is built: each finished pattern table goes into the file at once and
    is mapped back from it, so that the tables built so far leave the process's memory (and, under a
    budget, the watcher trims them); the model returned maps its tables from that file.

    padding: 'kenlm' (one <s> per sentence, as lmplz) or 'paper', the conventions of the reference
    notes' normalized en0008t figures (glm.paperpad: n-1 <s>, and the tops of every length), for the
    paper's protocol (glm.protocols) only: such a model is not saved, nor tuned.
    """
    if padding not in ("kenlm", "paper"):
        raise ValueError(f"padding must be 'kenlm' or 'paper', not {padding!r}")
    paper = padding == "paper"
    if paper and (method not in ("glm", "glm-abs", "mkn") or tune or output is not None):
        raise ValueError("paper padding is for untuned glm, glm-abs and mkn models that are not saved")
    if output is not None:
        from .formats import BINARY_SUFFIX, check_output
        check_output(output, method != "mkn" or bool(tune))
    if method != "mkn" or tune or paper:
        from .generalized import check
        check(order, method)
    if discount_fallback is True:
        discount_fallback = ()
    opts = Options(tuple(int(t) for t in prune), None if discount_fallback in (None, False)
                   else tuple(discount_fallback), interpolate_unigrams, int(vocab_pad))
    opts.check(order)
    if (method != "mkn" or tune) and any(opts.prune):
        raise ValueError("pruning is supported for untuned MKN models only")
    if tune and method.startswith("glmtk2014"):
        raise ValueError(f"{method}: the 2014 toolkit's models are not tuned (use glm or mkn)")
    options = {"interpolate_unigrams": interpolate_unigrams, "vocab_pad": opts.vocab_pad}
    with using_workers(workers), (Scratch(memory, tmpdir) if memory is not None else nullcontext()) as scratch:
        raw = any(opts.prune) or method == "glm-abs" or method.startswith("glmtk2014") or paper
        vocab, levels = count(inputs, order, with_raw=raw,
                              skip_symbols=skip_symbols, bad_utf8=bad_utf8, quiet=quiet, scratch=scratch,
                              dask=dask, dask_workers=dask_workers, pad=order - 1 if paper else 0)
        if method != "mkn" or tune or paper:
            from .generalized import estimate as estimate_glm
            from .model import GeneralizedModel
            from .spill import park
            streaming = (output is not None and os.fspath(output).endswith(BINARY_SUFFIX) and not tune
                         and (os.path.isfile(output) or not os.path.exists(output)))   # not /dev/null
            with (StreamingBinary(output, scratch) if streaming else nullcontext()) as writer:
                parking = (writer.park if writer is not None else
                           None if scratch is None else (lambda a: park(a, scratch)))
                tables = estimate_glm(levels, order, method, opts, keep_stats=bool(tune), park=parking,
                                      pad=vocab.id(paperpad.WORD) if paper else None)
                model = GeneralizedModel(vocab, tables, meta=options)
                if writer is not None:
                    writer.finish(model)
            if tune:
                from .tune import tune as fit
                model = fit(model, tune, quiet=quiet, bad_utf8=bad_utf8)
                model.tables.stats = None
            if output is not None and not streaming:
                model.save(output, quiet=quiet)
            return model
        est = estimate(levels, order, opts, np.zeros if scratch is None else scratch.zeros)
    if est.unigram_keep is not None:
        words = vocab.table.words()
        vocab = Vocabulary.from_words([w for w, kept in zip(words[3:], est.unigram_keep[3:]) if kept])
    model = Model(vocab, est.levels, discounts=est.discounts, counts=est.counts,
                  meta={"order": order, "smoothing": "modified Kneser-Ney", "prune": list(opts.prune),
                        **options})
    if output is not None:
        model.save(output, quiet=quiet)
    return model
