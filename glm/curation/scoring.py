"""Per-document scores: tokens, OOVs, log10 probability and perplexity, in input order.

A document is scored as CCNet's ``DocLM`` scores it: each LF-separated line of its text is a sentence
``<s> w1 .. wn </s>`` (``</s>`` predicted and counted, ``<s>`` only a context), and the log10
probabilities and token counts of its lines are summed::

    perplexity = 10 ** (-sum(log10_prob) / sum(tokens)),   tokens = words + 1 per line, OOVs included

Chunks of documents go to worker processes that each map the same binary model file (the operating
system shares its pages); an ARPA model or a model in memory is written once to a temporary binary
file for them.  Each document's result depends only on its own text, so the results are the same
whatever the number of workers.
"""
from __future__ import annotations

import collections
import json
import math
import multiprocessing
import os
import shutil
import signal
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ..threads import count, threads
from ..formats import BINARY_SUFFIX
from ..model import load
from ..formats.binary import MAGIC
from .documents import DocFormat, Document, document_chunks, parse_chunk

# a str as a JSON string literal (non-ASCII kept as is), as json.dumps(s, ensure_ascii=False) without its overhead
_json_string = json.encoder.c_encode_basestring or json.encoder.py_encode_basestring

PERPLEXITY_DEFINITION = (
    "perplexity = 10^(-log10_prob / tokens); each LF-separated line of a document is scored as "
    "<s> w1 .. wn </s> (KenLM's Model.score with bos and eos) and log10_prob and tokens are summed over "
    "the lines; tokens = words + one </s> per line (<s> not counted), OOVs included and scored as <unk> "
    "(as CCNet's DocLM and KenLM's query)")


@dataclass
class DocScores:
    """Scores of a batch of documents, in order; skipped: malformed JSONL lines skipped in the batch."""
    ids: list
    tokens: np.ndarray        # int64
    oovs: np.ndarray          # int64
    log10_prob: np.ndarray    # float64
    skipped: int = 0
    decimals: int | None = None   # perplexities rounded to this many decimals (CCNet's: 1)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def perplexity(self) -> np.ndarray:
        ppl = 10.0 ** (-self.log10_prob / self.tokens)
        return ppl if self.decimals is None else np.round(ppl, self.decimals)

    @classmethod
    def concat(cls, parts: Iterable["DocScores"], keep_ids: bool = True) -> "DocScores":
        """One batch of many (keep_ids=False drops the ids as they arrive, to save memory)."""
        kept = []
        for p in parts:
            if not keep_ids:
                p.ids = []
            kept.append(p)
        parts = kept
        ids = [i for p in parts for i in p.ids]
        cols = [np.concatenate([getattr(p, c) for p in parts]) if parts else np.zeros(0, dtype=t)
                for c, t in (("tokens", np.int64), ("oovs", np.int64), ("log10_prob", np.float64))]
        return cls(ids, *cols, skipped=sum(p.skipped for p in parts),
                   decimals=parts[0].decimals if parts else None)

    def rows(self) -> Iterator[dict]:
        """The rows of a scores file.

        Yields
        ------
        dict
            id, tokens, oovs, log10_prob, perplexity of each document.
        """
        for i, t, o, lp, pp in zip(self.ids, self.tokens.tolist(), self.oovs.tolist(),
                                   self.log10_prob.tolist(), self.perplexity.tolist()):
            yield dict(id=i, tokens=t, oovs=o, log10_prob=lp, perplexity=pp)


def score_texts(model, docs: Iterable[Document | str], tokenizer=None) -> DocScores:
    """Scores of a batch of documents with a loaded model, in this process (each LF-separated line of
    a text is a sentence; docs/curation.md).

    Parameters
    ----------
    model : glm.Model
    docs : iterable of Document or str
        Documents, or their texts (ids 0, 1, ...).
    tokenizer : callable, optional
        Text -> tokenized text (``glm.ccnet.CCNetTokenizer``: CCNet's perplexities, tokens counted as
        CCNet counts them).

    Returns
    -------
    DocScores
    """
    docs = list(docs)
    texts = [d.text if isinstance(d, Document) else d for d in docs]
    ids = [d.id if isinstance(d, Document) else i for i, d in enumerate(docs)]
    if tokenizer is not None:
        texts = [tokenizer(t) for t in texts]
    lines = [t.split("\n") for t in texts]
    per_doc = np.fromiter((len(x) for x in lines), dtype=np.int64, count=len(lines))
    decimals = None if tokenizer is None else 1
    if not len(per_doc):
        return DocScores([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), decimals=decimals)
    flat = [ln for x in lines for ln in x]
    res = model.score_lines(flat)
    starts = np.zeros(len(per_doc), dtype=np.int64)
    np.cumsum(per_doc[:-1], out=starts[1:])
    tokens = res.tokens.astype(np.int64)
    if tokenizer is not None:      # CCNet's count: len(line.split()) + 1 (Python's split: Unicode spaces)
        tokens = np.fromiter((len(ln.split()) + 1 for ln in flat), dtype=np.int64, count=len(flat))
    return DocScores(ids, np.add.reduceat(tokens, starts), np.add.reduceat(res.oovs.astype(np.int64), starts),
                     np.add.reduceat(res.log10_prob.astype(np.float64), starts), decimals=decimals)


def _score_chunk(chunk, fmt: DocFormat, model, tokenizer=None) -> DocScores:
    """Scores of the documents of a chunk; one document per line of plain text goes straight from the
    chunk's bytes to the tokenizer (the same tokens as through score_texts)."""
    if fmt.fmt == "text" and fmt.unit == "line" and tokenizer is None:
        res = model.score_ids(model.vocab.tokenize(chunk, symbols="unk", bad_utf8=fmt.bad_utf8))
        ids = [f"{chunk.path}:{n}" for n in range(chunk.first_line, chunk.first_line + len(res.tokens))]
        return DocScores(ids, res.tokens.astype(np.int64), res.oovs.astype(np.int64),
                         res.log10_prob.astype(np.float64))
    docs, skipped = parse_chunk(chunk, fmt)
    res = score_texts(model, docs, tokenizer)
    res.skipped = skipped
    return res


def _json_number(x: float) -> str:
    """x as JSON: null for NaN and infinities (a document of probability 0 has an infinite perplexity)."""
    return repr(x) if math.isfinite(x) else "null"


def render_rows(res: DocScores, tsv: bool = False) -> bytes:
    """The rows of a batch: JSON lines or TSV lines (a TAB or LF in an id becomes a space)."""
    rows = []
    for i, t, o, lp, pp in zip(res.ids, res.tokens.tolist(), res.oovs.tolist(), res.log10_prob.tolist(),
                               res.perplexity.tolist()):
        if tsv:
            rows.append(f"{i.replace(chr(9), ' ').replace(chr(10), ' ')}\t{t}\t{o}\t{lp!r}\t{pp!r}\n")
        else:
            rows.append(f'{{"id": {_json_string(i)}, "tokens": {t}, "oovs": {o}, '
                        f'"log10_prob": {_json_number(lp)}, "perplexity": {_json_number(pp)}}}\n')
    return "".join(rows).encode("utf-8")


def _score_and_render(chunk, fmt: DocFormat, model, tsv: bool, tokenizer=None) -> tuple[bytes, DocScores]:
    """Rows of a chunk, and its scores without the ids (they are in the rows)."""
    res = _score_chunk(chunk, fmt, model, tokenizer)
    rows = render_rows(res, tsv)
    res.ids = []
    return rows, res


# -- worker processes -------------------------------------------------------------------------------
_WORKER_MODEL = None
_INHERITED = None        # the model that forked workers take over (set by map_chunks)


def _init_worker(path: str | None) -> None:
    global _WORKER_MODEL
    os.environ["GLM_THREADS"] = "1"       # one process per core already
    # the parent process handles Ctrl-C, SIGTERM and SIGHUP (it stops the pool and removes its files);
    # a worker ignores Ctrl-C (sent to the whole process group) and dies of the others
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    _WORKER_MODEL = _INHERITED if path is None else load(path)


def _in_worker(fn, chunk, fmt, *args):
    return fn(chunk, fmt, _WORKER_MODEL, *args)


def _is_binary(path) -> bool:
    """glm's binary format or a KenLM binary: a file the workers map rather than parse."""
    from ..formats.kenlm import is_kenlm_binary
    with open(path, "rb") as f:
        head = f.read(64)
    return head.startswith(MAGIC) or is_kenlm_binary(head)


@contextmanager
def binary_model(model, quiet: bool = True):
    """A path of the model as a binary file: the file itself (glm's or KenLM's binary), or a temporary
    .glmb copy (removed at the end) of an ARPA file or of a Model in memory."""
    if getattr(model, "kind", "") == "kenlm":      # a KenLM binary: its own file
        model = model.path
    if isinstance(model, (str, os.PathLike)) and _is_binary(model):
        yield os.fspath(model)
        return
    tmpdir = tempfile.mkdtemp(prefix="glm-score-")
    try:
        path = os.path.join(tmpdir, "model" + BINARY_SUFFIX)
        if isinstance(model, (str, os.PathLike)):
            model = load(model, quiet=quiet)
        model.save(path)
        yield path
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def map_chunks(fn, model, inputs, fmt: DocFormat, workers: int | None, quiet: bool, *args) -> Iterator:
    """fn(chunk, fmt, model, *args) for every chunk of documents, results in input order; in this
    process (workers == 1) or in worker processes, forked with the model (loaded here, its scorer made,
    so that its pages are shared), or else started to map the model's binary file."""
    global _INHERITED
    workers = threads() if workers is None else count("--workers", workers)
    chunks = document_chunks(inputs, fmt, quiet=quiet, desc="scoring")
    if workers == 1:
        if isinstance(model, (str, os.PathLike)):
            model = load(model, quiet=quiet)
        for chunk in chunks:
            yield fn(chunk, fmt, model, *args)
        return
    # fork (where there is one) starts workers at once and, unlike spawn, does not re-run the caller's
    # script or need it importable (stdin, notebooks); the workers share the model's pages (a GLM's
    # scorer copies its tables into memory: once, here)
    fork = "fork" in multiprocessing.get_all_start_methods()
    if fork:
        model = load(model, quiet=quiet) if isinstance(model, (str, os.PathLike)) else model
        _ = model._trie                   # (its scorer made before the workers fork)
    with (nullcontext() if fork else binary_model(model, quiet)) as path:
        _INHERITED = model if fork else None
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
                                     initializer=_init_worker, initargs=(path,)) as ex:
                pending = collections.deque()
                try:
                    for chunk in chunks:
                        pending.append(ex.submit(_in_worker, fn, chunk, fmt, *args))
                        if len(pending) >= 2 * workers:
                            yield pending.popleft().result()
                    while pending:
                        yield pending.popleft().result()
                except BaseException:              # (an error, Ctrl-C, SIGTERM: stop at once)
                    ex.shutdown(wait=False, cancel_futures=True)
                    raise
        finally:
            _INHERITED = None


def score_documents(model, inputs, fmt: DocFormat = DocFormat(), workers: int | None = None,
                    quiet: bool = True, tokenizer=None) -> Iterator[DocScores]:
    """Scores of the documents of files, directories or '-', batch after batch in input order.

    Parameters
    ----------
    model : glm.Model or path
        A model, or the path of a model file (ARPA, .glm or binary).
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    workers : int, optional
        Processes (default: the cores this process may use, ``$GLM_THREADS``); 1 scores in this
        process.
    quiet : bool
        No progress bar.
    tokenizer : callable, optional
        As for ``score_texts`` (picklable, for the workers).

    Yields
    ------
    DocScores
        The documents of one chunk.

    Raises
    ------
    CorpusError
        A missing input, bad text or JSON (the message names the file and line).
    """
    return map_chunks(_score_chunk, model, inputs, fmt, workers, quiet, tokenizer)


def score_rows(model, inputs, fmt: DocFormat = DocFormat(), tsv: bool = False, workers: int | None = None,
               quiet: bool = True, tokenizer=None) -> Iterator[tuple[bytes, DocScores]]:
    """As score_documents, with each batch's output rows (JSONL or TSV) made in the workers."""
    return map_chunks(_score_and_render, model, inputs, fmt, workers, quiet, tsv, tokenizer)
