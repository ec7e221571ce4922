"""Perplexity-based selection: pruning to a band (Ankner et al. 2024) and CCNet's head/middle/tail buckets.

Pruning keeps exactly round(rate * N) documents: the lowest perplexities ('low'), the highest ('high'),
or the band centred on the median ('medium': ranks (N-k)//2 .. (N-k)//2 + k - 1 of the documents sorted
by perplexity, ties in input order).  With a reference fraction, a seeded random round(f * N) documents
train the reference model and are left out of the selection and of the output (Ankner et al.'s split).

Buckets follow CCNet's ``PerplexityBucket``: ppl < p_head -> head, ppl < p_tail -> middle, else tail,
where p_head, p_tail are the perplexities at the percentiles ``cutoffs`` (default 30, 60) of the
documents' own perplexities, or the values for the document's language in a CCNet ``cutoff.csv``
(first column the percentile 0..100, one column per language); a language without a column gets 'all'.
"""
from __future__ import annotations

import csv
import math

import numpy as np

from ..corpus import CorpusError
from ..formats import atomic_output

CRITERIA = ("low", "medium", "high")
BUCKETS = ("head", "middle", "tail", "all")


def prune_mask(perplexity: np.ndarray, criterion: str = "low", rate: float = 0.5) -> np.ndarray:
    """Boolean mask of the kept documents: exactly round(rate * N) (round half up) by perplexity.

    Parameters
    ----------
    perplexity : numpy.ndarray
        The documents' perplexities.
    criterion : {'low', 'medium', 'high'}
        Keep the lowest, the band around the median, or the highest (ties in input order).
    rate : float
        The fraction kept, 0 to 1.

    Returns
    -------
    numpy.ndarray
        bool, one per document.

    Raises
    ------
    ValueError
        An unknown criterion or a rate outside [0, 1].
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, not {criterion!r}")
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be between 0 and 1, not {rate}")
    n = len(perplexity)
    k = math.floor(rate * n + 0.5)
    order = np.argsort(perplexity, kind="stable")
    start = {"low": 0, "medium": (n - k) // 2, "high": n - k}[criterion]
    keep = np.zeros(n, dtype=bool)
    keep[order[start:start + k]] = True
    return keep


def reference_split(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the round(fraction * n) documents, drawn with the seed, that train the reference.

    Parameters
    ----------
    n : int
        Documents.
    fraction : float
        Between 0 and 1 (exclusive).
    seed : int
        The seed of numpy's PCG64 permutation.

    Returns
    -------
    numpy.ndarray
        bool, one per document.

    Raises
    ------
    ValueError
        A fraction outside (0, 1).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the reference fraction must be between 0 and 1 (exclusive), not {fraction}")
    k = math.floor(fraction * n + 0.5)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:k]] = True
    return mask


def percentile_cutoffs(perplexity: np.ndarray) -> np.ndarray:
    """Perplexity at the percentiles 0, 1, .., 100 (numpy's linear interpolation).

    Parameters
    ----------
    perplexity : numpy.ndarray

    Returns
    -------
    numpy.ndarray
        101 values.
    """
    return np.percentile(perplexity, np.arange(101))


def write_cutoff_csv(path, columns: dict[str, np.ndarray]) -> None:
    """CCNet's cutoff.csv: a header ',lang1,lang2..', then one row per percentile 0..100."""
    langs = sorted(columns)
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([""] + langs)
        for p in range(101):
            w.writerow([p] + [repr(float(columns[lang][p])) for lang in langs])


def read_cutoff_csv(path) -> dict[str, np.ndarray]:
    """Language -> perplexity at the percentiles 0..100, from a CCNet cutoff.csv.

    Parameters
    ----------
    path : path

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    CorpusError
        Not a cutoff table (the message names the line).
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise CorpusError(f"{path}: not a cutoff table (a header and percentile rows)")
    langs = rows[0][1:]
    table = {lang: np.full(101, np.nan) for lang in langs}
    for n, row in enumerate(rows[1:], 2):
        try:
            p = int(float(row[0]))
            values = [float(v) for v in row[1:]]
        except (ValueError, IndexError):
            raise CorpusError(f"{path}:{n}: not a percentile row") from None
        if len(values) != len(langs) or not 0 <= p <= 100:
            raise CorpusError(f"{path}:{n}: not a percentile row of {len(langs)} values")
        for lang, v in zip(langs, values):
            table[lang][p] = v
    return table


def bucket_of(perplexity: float, head: float, tail: float) -> str:
    if perplexity < head:
        return "head"
    return "middle" if perplexity < tail else "tail"


def check_cutoffs(cutoffs) -> tuple[int, int]:
    head, tail = (int(c) for c in cutoffs)
    if not 0 <= head <= tail <= 100:
        raise ValueError(f"cutoffs must be two percentiles 0 <= head <= tail <= 100, not {cutoffs}")
    return head, tail
