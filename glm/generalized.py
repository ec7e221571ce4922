"""Generalized Language Model estimation (Pickhardt et al., ACL 2014), normalized (docs/glm.md).

Input: the suffix-trie levels of the counted text (glm.counts), the same as for MKN.  Every skip pattern
S gets a table (``ext/_glm.pyx``): its n-grams with a statistic s_S, and from it the interpolation terms

    alpha_S(w|h) = max(s_S(hw) - D_S(s_S(hw)), 0) / den_S(h),   den_S(h) = sum_w s_S(hw)
    gamma_S(h)   = (D_S1 N1(h) + D_S2 N2(h) + D_S3+ N3+(h)) / den_S(h)

with N_k(h) the words w with s_S(hw) = k (3+: >= 3) and D_S from the count-of-counts of s_S.  The
statistic: the top pattern counts occurrences; a contiguous lower pattern the adjusted counts of MKN
(distinct left extensions, or occurrences for n-grams that start with <s>); a gapped pattern the
distinct fillers of its gaps.  ``method="glm-abs"`` uses occurrences (summed over the fillers) for
every lower pattern.  A gapped pattern's n-grams are the projections of the distinct windows of its
span, so they come from the trie level of that length by one grouping pass (``_glm.group``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import _count, _glm
from .threads import parallel, threads
from .discount import count_of_counts, discounts, fallback_triple
from .mkn import Options, unigram_probs
from .patterns import children, history, is_contiguous, name, parent, patterns, span
from .terms import interpolation_terms, pruned_terms, scaled
from .vocab import BOS

if TYPE_CHECKING:
    from .paper.compat import Compat

METHODS = ("glm", "glm-abs", "mkn", "glmtk2014", "glmtk2014-mkn")
COMPAT = ("glmtk2014", "glmtk2014-mkn")     # the 2014 toolkit's models (glm.paper.glmtk2014): not normalized


def check(order: int, method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if not 1 <= order <= _glm.MAX_ORDER:
        raise ValueError(f"GLM models are built for orders 1 to {_glm.MAX_ORDER}, not {order}")
    if method in COMPAT and order < 2:
        raise ValueError(f"{method} models are built for orders 2 to {_glm.MAX_ORDER}, not {order}")


def _map_large_arrays() -> None:
    """Have glibc map every block of 1 MB or more on its own, so that the large temporary arrays of the
    estimation go back to the system when freed.  By default glibc raises that threshold up to 32 MB
    once such blocks are freed and then keeps them in its heap, which fragments: the resident set of a
    GLM build grew by a fifth.  (This is glibc's initial behaviour, made permanent; elsewhere a no-op.)"""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, 1 << 20)   # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


@dataclass
class Tables:
    """The estimated model: per pattern mask, its table (mask 1: 'prob' by word id; others: 'word',
    'starts', 'alpha', 'gamma'), its discounts, and its number of n-grams."""
    order: int
    method: str
    tables: dict
    discounts: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    stats: dict | None = None     # {mask: (statistic, history index, kept, history's kept)}, {1: (counts,
                                  # options, kept)}: for tuning (indices and kept arrays before pruning)
    compat: Compat | None = None  # tops of every length, of the paper's models (glm.paper: Tops.compat())
    records: object = None        # the scorer's node records (glm.records.Records), made on first use
    unigram_keep: np.ndarray | None = None   # words kept when unigrams are pruned (ids of the counting)
    terms: bool = True            # False: no alphas and gammas (a model only traced, for glm.tune.fit)


def combination(order: int, method: str, weights: dict | None = None) -> dict:
    """{mask: [(child, weight), ...]}: uniform weights over the children (GLM) or the parent only (MKN).
    ``weights`` {mask: w} sets a pattern's: w a number lambda gives the parent (farthest-word deletion)
    weight lambda and the other children (1 - lambda) / (k - 1) each; w a sequence gives every child's
    weight, in the order of patterns.children (parent first), >= 0 and summing to 1."""
    out = {}
    for mask in patterns(order)[1:]:
        if method in ("mkn", "glmtk2014-mkn"):
            if is_contiguous(mask):
                out[mask] = [(parent(mask), 1.0)]
            continue
        kids = children(mask)
        w = (weights or {}).get(mask)
        if w is None or len(kids) == 1:
            out[mask] = [(c, 1.0 / len(kids)) for c in kids]
        elif np.ndim(w) == 0:
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"pattern {name(mask)}: the parent's weight must be in [0, 1], not {w}")
            out[mask] = [(kids[0], w)] + [(c, (1.0 - w) / (len(kids) - 1)) for c in kids[1:]]
        else:
            if len(w) != len(kids) or not all(x >= 0 for x in w) or not abs(sum(w) - 1.0) <= 1e-6:
                raise ValueError(f"pattern {name(mask)}: {len(kids)} child weights >= 0 summing to 1 "
                                 f"expected, not {list(w)}")
            out[mask] = list(zip(kids, w))
    return out


def estimate(levels: list[dict], order: int, method: str = "glm", opts: Options = Options(),
             fixed_discounts=None, keep_stats: bool = False, park=None, pad: int | None = None,
             discount_scales: dict | None = None, terms: bool = True) -> Tables:
    """Pattern tables from counted levels (``levels`` is consumed).  fixed_discounts: one (D1, D2, D3+)
    for every pattern instead of estimated ones (for tests and the paper's worked example).
    discount_scales: {mask: c}, each pattern's estimated discounts scaled, D_k -> c D_k kept within
    [0, k] (the scales glm.tune fitted, on a model of part of the text).
    keep_stats: keep each pattern's statistic, so that its discounts can be changed (tuning).
    park: applied to each array of a finished table (glm.spill.park: moved to a file-backed map, so
    that the tables built so far do not add to the memory of the ones still being built).
    pad: the pad word of glm.paper.padding (the levels counted from padded streams, with occurrences): the
    n-grams ending in it get the statistic 0, and the model gets normalized tops of every length.
    opts.prune: raw-count thresholds by the number of kept words of a pattern (docs/glm.md, "Pruning");
    the levels must be counted with their occurrences.  With unigrams pruned, the words are renumbered
    (Tables.unigram_keep: the words kept).
    terms=False: the tables hold the n-grams (word, starts) but not their alphas and gammas, for a model
    that is only traced (glm.tune.fit reads the statistics, keep_stats; not for the 2014 toolkit's models)."""
    check(order, method)
    opts.check(order)
    absolute = method == "glm-abs"
    compat = method in COMPAT
    if compat:
        from .paper import glmtk2014             # the toolkit's formulas, only for its methods
    if pad is not None:
        from .paper import padding
    pruning = any(opts.threshold(k) for k in range(1, order + 1))
    if pruning and (compat or pad is not None):
        raise ValueError("pruning is supported for the normalized models (glm, glm-abs, mkn) with KenLM's "
                         "padding, not for the 2014 toolkit's models nor paper padding")
    if not terms and (compat or pad is not None or not keep_stats):
        raise ValueError("terms=False: a normalized model with KenLM's padding, its statistics kept")
    if pruning and "raw" not in levels[0]:
        raise ValueError("pruning: the levels must be counted with their occurrences (with_raw)")
    if compat and "raw" not in levels[0]:
        raise ValueError(f"{method}: the levels must be counted with their occurrences (with_raw)")
    if pad is not None:
        if compat or "raw" not in levels[0]:
            raise ValueError("paper padding: a normalized method, and levels counted with their occurrences")
        ends = np.arange(len(levels[0]["count"])) == pad
        for L, lv in enumerate(levels, 1):            # the pad word is never predicted
            if L > 1:
                ends = ends[lv["parent"]]              # (the parent: the n-gram without its first word)
            lv["count"][ends] = 0
            lv["raw"][ends] = 0
            lv["predicted"] = ~ends
            lv.pop("last_open", None)
        levels[0]["raw"][BOS] = 0
    _map_large_arrays()
    fallback = fallback_triple(opts.discount_fallback) if opts.discount_fallback is not None else None

    def disc(stat, label, last_open=None, mask=None):
        if fixed_discounts is not None:
            return tuple(float(x) for x in fixed_discounts)
        if compat:
            return glmtk2014.discounts(count_of_counts(stat), label, fallback)
        d = discounts(count_of_counts(stat, last_open), label, fallback)
        return scaled(d, discount_scales[mask]) if discount_scales and mask in discount_scales else d

    # the statistic of contiguous patterns: occurrences at the top (and for glm-abs), else adjusted counts
    def contiguous_stat(L):
        lv = levels[L - 1]
        return lv["raw"] if absolute and L < order else lv["count"]

    sizes = [len(levels[0]["count"])] + [len(lv["word"]) for lv in levels[1:]]
    for L in range(1, order):                              # children ranges of each level's n-grams
        levels[L - 1]["starts"] = _count.child_starts(levels[L]["parent"], sizes[L - 1])
    ctx = [None, None]                                     # ctx[L]: level L -> its context in level L-1
    for L in range(2, order + 1):
        lv = levels[L - 1]
        c = np.empty(sizes[L - 1], dtype=np.uint32)
        parallel(_count.contexts, len(c), lv["word"], lv["parent"], ctx[L - 1],
                 levels[L - 2]["word"] if L > 2 else None, levels[L - 3]["starts"] if L > 2 else None, c)
        ctx.append(c)

    # unigrams: MKN's, for every method (glm-abs too: occurrences of words in a capped vocabulary often
    # leave the unigram discounts undefined)
    uni = levels[0]["count"]
    keep1 = None         # unigrams pruned as MKN's (never <unk>, <s>, </s>): their mass goes to the uniform
    if opts.threshold(1) > 0:
        keep1 = levels[0]["raw"] > opts.threshold(1)
        keep1[:3] = True
    new_id = None if keep1 is None else (np.cumsum(keep1, dtype=np.int64) - 1).astype(np.uint32)
    tops = None          # the tops of shorter lengths, if the model has its own
    if compat:           # the 2014 toolkit: unigrams are not discounted, nor mixed with the uniform
        D = {1: (0.0, 0.0, 0.0)}
        tops = glmtk2014.Tops(levels)
        tables = {1: dict(prob=tops.unigrams(uni))}
    else:
        D = {1: disc(uni, "unigrams", levels[0].get("last_open"), 1)}
        # the uniform distribution leaves out <s>, and the pad word
        tables = {1: dict(prob=unigram_probs(uni, D[1], opts, keep1, excluded=1 + (pad is not None)))}
        if keep1 is not None:
            tables[1]["prob"] = tables[1]["prob"][keep1]
        if pad is not None:
            raw = levels[0]["raw"]
            tops = padding.Tops(raw, pad, disc(raw, "unigrams (occurrences)"))
    stats = {1: (uni, opts, keep1)} if keep_stats else None
    table_sizes = {1: sizes[0] if keep1 is None else int(keep1.sum())}
    old_sizes = {1: sizes[0]}   # the patterns' sizes before pruning (their n-grams' indices during the build)
    kept = {1: keep1}           # per pattern: its n-grams kept (bool, before pruning), None: all
    index = {}             # mask -> level-L n-gram -> its n-gram of the pattern (gapped masks only)
    wanted = combination(order, method)

    def nodes_of(mask, level_nodes, L):
        """Indices in pattern ``mask`` of the n-grams of level L given by ``level_nodes`` (None: all)."""
        Lp = span(mask)
        x = np.arange(sizes[L - 1], dtype=np.uint32) if level_nodes is None else level_nodes
        for k in range(L, Lp, -1):                        # suffix of length Lp: follow parents
            x = levels[k - 1]["parent"][x]
        return x if mask not in index else index[mask][x]

    def one(mask):
        """The table of one pattern; it needs only the patterns of shorter spans."""
        L = span(mask)
        gap, hmask = history(mask)
        lv = levels[L - 1]
        if is_contiguous(mask):
            starts, words, stat = levels[L - 2]["starts"], lv["word"], contiguous_stat(L)
            inverse = None
            last_open = None if absolute and L < order else lv.get("last_open")
        else:
            weights = lv["raw"] if absolute else None
            if weights is None and pad is not None:       # windows that end in the pad word do not count
                weights = lv["predicted"].astype(np.uint32)
            starts, words, stat, inverse = _glm.group(nodes_of(parent(mask), None, L), lv["word"],
                                                      old_sizes[parent(mask)], weights)
            last_open = None
        # the history of each n-gram: its prefix without the last `gap` words, in pattern hmask
        prefix = ctx[L]
        for k in range(L - 1, L - gap, -1):
            prefix = ctx[k][prefix]
        hist = nodes_of(hmask, prefix, L - gap)
        if inverse is not None:
            h = np.empty(len(words), dtype=np.uint32)
            h[inverse] = hist
            hist = h
        d = disc(stat, f"pattern {name(mask)}", last_open, mask)
        keep = _kept(mask, lv, starts, words, inverse, hist) if pruning else None
        table = {}
        if compat:
            den = tops.prev if mask == (1 << order) - 1 else None     # the top: histories' occurrences
            table["alpha"], table["gamma"] = glmtk2014.terms(stat, hist, d, old_sizes[hmask],
                                                             is_contiguous(mask), den)
        elif pruning:
            if terms:
                table["alpha"], table["gamma"] = pruned_terms(stat, hist, d, keep, kept[hmask], old_sizes[hmask])
            starts, words = _pruned_rows(starts, words, keep, kept[parent(mask)], new_id)
        elif terms:
            table["alpha"], table["gamma"] = interpolation_terms(stat, hist, d, old_sizes[hmask], pad is not None)
        return dict(word=words, starts=starts, **table), d, inverse, stat, hist, keep

    def _kept(mask, lv, starts, words, inverse, hist):
        """The n-grams of pattern ``mask`` kept: occurrences above the threshold of its number of kept
        words, and (always so with thresholds that do not decrease; checked to keep the tables a trie)
        their parent n-gram, history and words kept.  None: all kept."""
        t = opts.threshold(bin(mask).count("1"))
        if is_contiguous(mask):
            raw, parents = lv["raw"], lv["parent"]
        else:      # a gapped n-gram's occurrences: those of the windows it is the projection of
            raw = np.bincount(inverse, weights=lv["raw"], minlength=len(words))
            parents = np.repeat(np.arange(len(starts) - 1, dtype=np.uint32), np.diff(starts))
        keep = raw > t
        for ok, ids in ((kept[parent(mask)], parents), (kept[history(mask)[1]], hist), (keep1, words)):
            if ok is not None:
                keep &= ok[ids]
        return None if keep.all() else keep

    with ThreadPoolExecutor(threads()) as ex:
        for L in range(2, order + 1):
            masks = [m for m in wanted if span(m) == L]
            for mask, (table, d, inverse, stat, hist, keep) in zip(masks, ex.map(one, masks)):
                if park is not None:
                    table = {k: park(v) for k, v in table.items()}
                tables[mask], D[mask], table_sizes[mask] = table, d, len(table["word"])
                old_sizes[mask], kept[mask] = len(stat), keep
                if inverse is not None and L < order:
                    index[mask] = inverse
                if keep_stats:
                    stats[mask] = (stat, hist, keep, kept[history(mask)[1]])
            if tops is not None and L < order:             # this length's top, from occurrences
                raw, hist = levels[L - 1]["raw"], ctx[L]
                tops.add(L, raw, hist, disc(raw, f"pattern {name((1 << L) - 1)} (occurrences)"), park)
            if not keep_stats:                             # the counts of this span are used up
                levels[L - 1].pop("count", None)
                levels[L - 1].pop("raw", None)
    levels.clear()                                         # the tables hold what is still needed
    return Tables(order, method, tables, D, table_sizes, stats, tops.compat(method) if tops else None,
                  unigram_keep=keep1, terms=terms)


def _pruned_rows(starts, words, keep, parent_keep, new_id):
    """(children ranges over the kept parent n-grams, words renumbered) of a pattern's kept n-grams."""
    if keep is not None:
        words = words[keep]
        before = np.zeros(len(keep) + 1, dtype=np.uint32)       # kept n-grams before each one
        np.cumsum(keep, out=before[1:])
        starts = before[starts]
    if parent_keep is not None:       # a dropped parent's range is empty now
        starts = starts[np.append(parent_keep, True)]
    return starts, (words if new_id is None else new_id[words])


def rediscount(tables: Tables, mask: int, D: tuple) -> None:
    """Recompute a pattern's terms with other discounts (needs the statistics: keep_stats)."""
    if mask == 1:
        counts, opts, keep1 = tables.stats[1]
        prob = unigram_probs(counts, D, opts, keep1)
        tables.tables[1]["prob"] = prob if keep1 is None else prob[keep1]
    else:
        stat, hist, keep, hist_keep = tables.stats[mask]
        t = tables.tables[mask]
        n_hist = len(t["gamma"]) if hist_keep is None else len(hist_keep)
        t["alpha"], t["gamma"] = pruned_terms(stat, hist, D, keep, hist_keep, n_hist)
        if tables.records is not None:
            tables.records.set_terms(mask, t["alpha"], t["gamma"])
    tables.discounts[mask] = tuple(D)
