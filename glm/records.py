"""The GLM scorer's node records: the pattern tables (glm.generalized) regrouped so that what scoring
reads about an n-gram lies together, and one cache miss brings it.

A pattern's n-gram is found by a child search from its parent n-gram (in the parent pattern), and
scoring then needs its alpha, the gammas of the patterns whose history it is, and, for the longer
patterns, the range of its children in each child pattern.  In the tables these are four arrays (word
and alpha per n-gram, gamma per history per pattern, children offsets per parent per pattern), so four
misses in a large model.  The records put them in one row per n-gram, 4-byte columns:

    [word, alpha (float32)]           absent for the unigram pattern (indexed by word id)
    [gamma_S (float64, 2 columns)]    for each pattern S whose history pattern this is
    [lo, hi]                          for each pattern whose parent pattern this is: its children

Rows have an even width, so the doubles are aligned.  The records are built on first use (a copy of
the tables, in memory) and kept with the tables; ``set_terms`` follows a change of discounts (tuning).
Tables without terms (a model only traced: glm.generalized.estimate(terms=False)) give records of the
word and the children ranges only (no alpha, no gamma columns): enough to find n-grams, not to score.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .threads import threads
from .patterns import history, parent
from .spill import release


def searched(masks: list[int]) -> dict:
    """{mask: the largest children range of the pattern that the scorer searches (a binary search
    through its rows) rather than finds through the hash}: ranges of up to two cache lines of rows, at
    most 32 rows.  masks: the patterns used, 1 included."""
    width = Records.layout(masks)[0]
    return {m: max(1, min(32, 128 // (4 * width[m]))) for m in masks if m > 1}


class Records:
    def __init__(self, tables: dict, masks: list[int], consume: bool = False, terms: bool = True):
        """tables: {mask: table} (glm.generalized.Tables.tables); masks: the patterns used, 1 included.
        consume: each array of the tables is removed from its table once copied (but the unigrams'
        'prob'), so that the tables and the records are not in memory together.  terms: the tables have
        alphas and gammas (else: records to find n-grams only)."""
        self.masks = sorted(masks)
        self.width, self.goff, self.roff, self.gammas, self.ranges = self.layout(self.masks, terms)
        with ThreadPoolExecutor(threads()) as ex:       # (numpy's copies release the GIL)
            self.rows = dict(zip(self.masks, ex.map(lambda m: self._rows(tables, m, consume), self.masks)))

    @staticmethod
    def layout(masks: list[int], terms: bool = True) -> tuple:
        """(width, goff, roff, gammas, ranges), each {mask: ...}: the columns of the patterns' rows, the
        column of each pattern's gamma (in its history's rows; without terms none: 0) and children range
        (in its parent's), and the patterns whose gammas and ranges each pattern's rows hold."""
        masks = sorted(masks)
        width = {m: 0 if m == 1 else 2 if terms else 1 for m in masks}
        goff, roff = {}, {}
        gammas = {m: [] for m in masks}
        ranges = {m: [] for m in masks}
        for m in masks[1:]:
            h = history(m)[1]
            goff[m] = width[h] if terms else 0
            if terms:
                width[h] += 2
                gammas[h].append(m)
        for m in masks[1:]:
            p = parent(m)
            roff[m] = width[p]
            width[p] += 2
            ranges[p].append(m)
        width[1] = max(width[1], 2)          # (order 1: no columns at all)
        return width, goff, roff, gammas, ranges

    def _rows(self, tables: dict, m: int, consume: bool = False) -> np.ndarray:
        """The rows of pattern m, from the tables (each array of a table is read once, and the pages
        of file-backed ones are dropped after; consume: the array is removed from its table)."""
        n = len(tables[1]["prob"]) if m == 1 else len(tables[m]["word"])
        rows = (np.zeros if self.width[m] == 2 and m == 1 else np.empty)((n, self.width[m]), dtype=np.uint32)
        if m > 1:
            rows[:, 0] = tables[m]["word"]
            release(tables[m]["word"])
            if "alpha" in tables[m]:
                rows[:, 1] = np.asarray(tables[m]["alpha"], dtype=np.float32).view(np.uint32)
                release(tables[m]["alpha"])
        for s in self.gammas[m]:
            k = self.goff[s]
            rows[:, k:k + 2] = np.asarray(tables[s]["gamma"], dtype=np.float64).view(np.uint32).reshape(-1, 2)
            release(tables[s]["gamma"])
        for c in self.ranges[m]:
            starts, k = np.asarray(tables[c]["starts"], dtype=np.uint32), self.roff[c]
            rows[:, k] = starts[:-1]
            rows[:, k + 1] = starts[1:]
            release(tables[c]["starts"])
        if consume:
            for t, key in ([(tables[m], "word"), (tables[m], "alpha")] if m > 1 else []) + \
                    [(tables[s], "gamma") for s in self.gammas[m]] + [(tables[c], "starts") for c in self.ranges[m]]:
                t.pop(key, None)
        return rows

    def set_terms(self, mask: int, alpha: np.ndarray, gamma: np.ndarray) -> None:
        """Write a pattern's alphas and gammas."""
        self.rows[mask][:, 1] = np.asarray(alpha, dtype=np.float32).view(np.uint32)
        k = self.goff[mask]
        self.rows[history(mask)[1]][:, k:k + 2] = np.asarray(gamma, dtype=np.float64).view(np.uint32).reshape(-1, 2)
