"""Seeded resampling of documents by weight (SoftDedup weights or any others).

Documents are drawn with replacement, with probability proportional to their weight, until a target
number of documents or of tokens is reached (a numpy PCG64 generator seeded with ``seed``).  The output
holds each document as many times as it was drawn, in input order.
"""
from __future__ import annotations

import json
import math
from typing import Iterator

import numpy as np

from ..corpus import DECOMPRESS_ERRORS, CorpusError, open_binary


def read_weights(path) -> tuple[list, np.ndarray, np.ndarray | None]:
    """ids, weights and tokens (None when a row lacks them) of a weights JSONL file.

    Parameters
    ----------
    path : path

    Returns
    -------
    (list, numpy.ndarray, numpy.ndarray or None)

    Raises
    ------
    CorpusError
        A row without id and weight, weights that are not finite, negative or all 0.
    """
    ids, weights, tokens = [], [], []
    with open_binary(path) as f:
        try:
            rows = list(f)
        except DECOMPRESS_ERRORS as exc:
            raise CorpusError(f"{path}: cannot decompress: {exc}") from None
        for n, line in enumerate(rows, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                ids.append(str(row["id"]))
                weights.append(float(row["weight"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path}:{n}: not a weights row with id and weight ({exc})") from None
            tokens.append(row.get("tokens"))
    w = np.array(weights, dtype=np.float64)
    if len(w) and (not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0):
        raise CorpusError(f"{path}: weights must be finite, >= 0 and not all 0")
    tok = None if any(t is None for t in tokens) else np.array(tokens, dtype=np.int64)
    return ids, w, tok


def draw_counts(weights: np.ndarray, tokens: np.ndarray | None = None, target_docs: int | None = None,
                target_tokens: int | None = None, seed: int = 0) -> np.ndarray:
    """How many times each document is drawn: ``target_docs`` draws, or draws until their tokens reach
    ``target_tokens``.

    Parameters
    ----------
    weights : numpy.ndarray
        The documents' weights (>= 0).
    tokens : numpy.ndarray, optional
        Their tokens (for ``target_tokens``).
    target_docs, target_tokens : int, optional
        Exactly one of them.
    seed : int
        The seed of numpy's PCG64 generator.

    Returns
    -------
    numpy.ndarray
        int64 draws per document.

    Raises
    ------
    ValueError
        Neither or both targets, no documents, a token target without tokens.
    """
    if (target_docs is None) == (target_tokens is None):
        raise ValueError("give exactly one of target_docs and target_tokens")
    n = len(weights)
    if n == 0:
        raise ValueError("no documents to draw from")
    p = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    rng = np.random.default_rng(seed)
    if target_docs is not None:
        return rng.multinomial(int(target_docs), p)
    if tokens is None:
        raise ValueError("a token target needs the tokens of every document (a 'tokens' column)")
    if float(p @ tokens) <= 0:
        raise ValueError("the documents that can be drawn have no tokens")
    counts = np.zeros(n, dtype=np.int64)
    total = 0
    while total < target_tokens:
        batch = max(16, math.ceil((target_tokens - total) / float(p @ tokens) * 1.05))
        drawn = rng.choice(n, size=batch, p=p)
        cum = total + np.cumsum(tokens[drawn])
        stop = int(np.searchsorted(cum, target_tokens, side="left"))
        take = drawn[:stop + 1] if stop < batch else drawn
        np.add.at(counts, take, 1)
        total = int(cum[min(stop, batch - 1)])
    return counts


def repeat_documents(docs, ids: list, counts: np.ndarray, weights_path: str = "weights") -> Iterator:
    """Each document ``counts[i]`` times, checking that the documents are those of the weights file.

    Parameters
    ----------
    docs : iterable of Document
    ids : list
        The ids of the weights file, in order.
    counts : numpy.ndarray
        Draws per document (``draw_counts``).
    weights_path : str
        The weights file's name, for errors.

    Yields
    ------
    Document

    Raises
    ------
    CorpusError
        A document whose id is not the weights file's at its place, or another number of documents.
    """
    i = -1
    for i, doc in enumerate(docs):
        if i >= len(ids) or doc.id != ids[i]:
            want = ids[i] if i < len(ids) else "nothing"
            raise CorpusError(f"document {i + 1} is {doc.id!r} but {weights_path} has {want!r} there: "
                              "give the inputs and options the weights were computed with")
        for _ in range(int(counts[i])):
            yield doc
    if i + 1 != len(ids):
        raise CorpusError(f"{weights_path} has {len(ids)} rows but the inputs hold {i + 1} documents")
