"""SoftDedup (He et al., ACL 2024): sampling weights that fall with a document's "commonness", its
probability under an n-gram model trained on the corpus itself.

Commonness (``mode``): 'geomean' (default) is the per-token geometric mean probability
10^(log10_prob / tokens) = 1 / perplexity; 'joint' is the document's whole probability 10^log10_prob
(length-dominated; only for documents of similar length).  Everything is computed on log10 commonness,
so the joint mode does not underflow.

Weights: documents are sorted by commonness and cut into ``segments`` groups of equal size (segment 0
holds the least common documents; equal commonness always shares a segment).  Segment k's weight is
1 / stat_k, stat the median (default) or mean commonness of the segment; ``clip=(lo, hi)`` bounds the
ratio of a segment's weight to the median segment weight; ``floor_segment`` gives segment 0 (often noise)
the weight of segment 1.  ``segments=0`` gives every document its own weight 1 / commonness (the
paper's W(x) proportional to 1/p(x)).  Normalization: 'docs' makes the mean weight per document 1
(sum w_i = N); 'tokens' makes it 1 per token (sum w_i tokens_i = sum tokens_i).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ..build import train
from ..formats import BINARY_SUFFIX
from .documents import DocFormat, document_lines, input_paths, read_documents, rereadable_paths
from .scoring import DocScores, score_documents

MODES = ("geomean", "joint")
STATS = ("median", "mean")
NORMALIZE = ("docs", "tokens")


def log10_commonness(scores: DocScores, mode: str = "geomean") -> np.ndarray:
    """log10 of each document's commonness.

    Parameters
    ----------
    scores : DocScores
    mode : {'geomean', 'joint'}
        The per-token geometric mean probability (1 / perplexity), or the document's probability.

    Returns
    -------
    numpy.ndarray
        float64, one per document.

    Raises
    ------
    ValueError
        An unknown mode.
    """
    if mode == "geomean":
        return scores.log10_prob / scores.tokens
    if mode == "joint":
        return scores.log10_prob.copy()
    raise ValueError(f"commonness mode must be one of {MODES}, not {mode!r}")


def _log10_mean(x: np.ndarray) -> float:
    """log10 of the mean of 10^x, without overflow."""
    m = x.max()
    return float(m + np.log10(np.mean(10.0 ** (x - m))))


def segments_of(log_c: np.ndarray, segments: int) -> np.ndarray:
    """Segment of each document: equal-count quantiles of commonness, ties in the lowest segment of
    their value (so equal documents always share a segment)."""
    n = len(log_c)
    first_rank = np.searchsorted(np.sort(log_c, kind="stable"), log_c, side="left")
    return (first_rank * segments // max(n, 1)).astype(np.int64)


def softdedup_weights(log_c: np.ndarray, tokens: np.ndarray, segments: int = 10, stat: str = "median",
                      normalize: str = "docs", clip: tuple[float, float] | None = None,
                      floor_segment: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(segment, weight) per document from log10 commonness and token counts (docs/curation.md).

    Parameters
    ----------
    log_c : numpy.ndarray
        log10 commonness per document (``log10_commonness``).
    tokens : numpy.ndarray
        Tokens per document.
    segments : int
        Equal-count segments by commonness; 0: each document its own weight, 1 / commonness.
    stat : {'median', 'mean'}
        The statistic of a segment's commonness whose inverse is its weight.
    normalize : {'docs', 'tokens'}
        The weights average 1 per document, or per token.
    clip : (float, float), optional
        Bounds of a segment's weight, times the median segment weight.
    floor_segment : bool
        Segment 0 gets the weight of segment 1.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The segment (int64; -1 for every document when ``segments`` is 0) and the weight (float64)
        of each document.

    Raises
    ------
    ValueError
        An unknown stat or normalization, a negative number of segments, bad clip bounds.
    """
    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}, not {stat!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, not {normalize!r}")
    if segments < 0:
        raise ValueError(f"segments must be >= 0, not {segments}")
    if clip is not None and not 0 < clip[0] <= 1 <= clip[1]:
        raise ValueError(f"clip must be lo,hi with 0 < lo <= 1 <= hi, not {clip}")
    log_c = np.asarray(log_c, dtype=np.float64)
    n = len(log_c)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    if segments == 0:
        seg = np.full(n, -1, dtype=np.int64)
        log_w = -log_c
    else:
        seg = segments_of(log_c, segments)
        used = np.unique(seg)
        seg_log_w = np.full(segments, np.nan)
        for k in used:
            x = log_c[seg == k]
            seg_log_w[k] = -(np.median(x) if stat == "median" else _log10_mean(x))
        if floor_segment and len(used) > 1:
            seg_log_w[used[0]] = seg_log_w[used[1]]
        if clip is not None:
            top = seg_log_w[used].max()
            mid = top + np.log10(np.median(10.0 ** (seg_log_w[used] - top)))   # the median segment weight
            seg_log_w[used] = np.clip(seg_log_w[used], mid + np.log10(clip[0]), mid + np.log10(clip[1]))
        log_w = seg_log_w[seg]
    w = 10.0 ** (log_w - log_w.max())
    if normalize == "docs":
        w *= n / w.sum()
    else:
        tok = np.asarray(tokens, dtype=np.float64)
        w *= tok.sum() / (w * tok).sum()
    return seg, w


@dataclass
class SoftDedup:
    """Result of ``softdedup``: per document, in input order."""
    scores: DocScores
    log10_commonness: np.ndarray
    segment: np.ndarray
    weight: np.ndarray

    def rows(self):
        """The rows of a weights file.

        Yields
        ------
        dict
            id, tokens, commonness, log10_commonness, segment (None without segments), weight.
        """
        for i, t, lc, s, w in zip(self.scores.ids, self.scores.tokens.tolist(), self.log10_commonness.tolist(),
                                  self.segment.tolist(), self.weight.tolist()):
            yield dict(id=i, tokens=t, commonness=10.0 ** lc, log10_commonness=lc,
                       segment=None if s < 0 else s, weight=w)


def train_on_documents(inputs, fmt: DocFormat, order: int, quiet: bool = True, keep=None):
    """A modified Kneser-Ney model of the documents' lines.  Discounts that the counts leave undefined
    fall back to lmplz's defaults; literal <s> / </s> are dropped from the training text (scoring reads
    them as <unk>).

    Parameters
    ----------
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    order : int
        The n-gram order.
    quiet : bool
        No progress bar.
    keep : sequence of bool, optional
        Train on the documents i with ``keep[i]`` only.

    Returns
    -------
    glm.Model
    """
    options = dict(order=order, discount_fallback=True, skip_symbols=True, bad_utf8=fmt.bad_utf8, quiet=quiet)
    if keep is None and fmt.fmt == "text" and fmt.unit == "line":
        return train(input_paths(inputs), **options)   # every line is a document: the files are the text
    docs = read_documents(inputs, fmt, quiet=quiet)
    if keep is not None:
        docs = (d for i, d in enumerate(docs) if keep[i])
    return train(lines=document_lines(docs), **options)


def softdedup(inputs, fmt: DocFormat = DocFormat(), *, order: int = 4, model=None, mode: str = "geomean",
              segments: int = 10, stat: str = "median", normalize: str = "docs", clip=None,
              floor_segment: bool = False, save_model=None, workers: int | None = None,
              quiet: bool = True) -> SoftDedup:
    """Train an order-``order`` model on the documents (unless ``model`` is given), score every
    document with it and compute SoftDedup weights (He et al. 2024; docs/curation.md).

    Parameters
    ----------
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    order : int
        The order of the model trained on the documents.
    model : glm.Model or path, optional
        A model to use instead.
    mode : {'geomean', 'joint'}
        Commonness: per-token geometric mean probability, or the document's probability.
    segments, stat, normalize, clip, floor_segment
        As for ``softdedup_weights``.
    save_model : path, optional
        Keep the trained model there.
    workers : int, optional
        Scoring processes (default: the cores).
    quiet : bool
        No progress bar.

    Returns
    -------
    SoftDedup
        ``.scores`` (DocScores), ``.log10_commonness``, ``.segment`` and ``.weight`` per document.

    Raises
    ------
    ValueError
        Bad parameters, stdin as input without ``model`` (it is read twice).
    CorpusError
        A missing input, bad text or JSON.
    """
    if mode not in MODES:
        raise ValueError(f"commonness mode must be one of {MODES}, not {mode!r}")
    if model is None:
        rereadable_paths(inputs, "softdedup (training, then scoring)")
    with tempfile.TemporaryDirectory(prefix="glm-softdedup-") as tmp:
        if model is None:
            model_path = save_model or os.path.join(tmp, "model" + BINARY_SUFFIX)
            train_on_documents(inputs, fmt, order, quiet).save(model_path)
            model = model_path
        scores = DocScores.concat(score_documents(model, inputs, fmt, workers, quiet))
    log_c = log10_commonness(scores, mode)
    seg, w = softdedup_weights(log_c, scores.tokens, segments, stat, normalize, clip, floor_segment)
    return SoftDedup(scores, log_c, seg, w)
