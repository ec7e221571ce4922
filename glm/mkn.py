"""Modified Kneser-Ney estimation, as KenLM's lmplz computes it (formulas in docs/formulas.md).

Input: trie levels with adjusted counts (glm.counts).  Output: trie levels with log10 probabilities and
backoffs, ready for querying and writing.  Orders are processed upwards; each needs only the level below.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _count, _mkn
from .threads import parallel
from .discount import count_of_counts, discounts, fallback_triple
from .vocab import BOS, UNK


@dataclass
class Options:
    """Estimation options, named after lmplz's."""
    prune: tuple = ()                 # raw-count thresholds per order from 1; the last one repeats
    discount_fallback: tuple | None = None
    interpolate_unigrams: bool = True
    vocab_pad: int = 0

    def threshold(self, n: int) -> int:
        if not self.prune:
            return 0
        return int(self.prune[min(n, len(self.prune)) - 1])

    def check(self, order: int):
        if any(b < a for a, b in zip(self.prune, self.prune[1:])):
            raise ValueError(f"--prune thresholds must be non-decreasing: {list(self.prune)}")
        if any(int(t) < 0 for t in self.prune):
            raise ValueError("--prune thresholds must be >= 0")
        if self.vocab_pad and not self.interpolate_unigrams:
            raise ValueError("--vocab-pad needs the uniform distribution (--interpolate-unigrams 1)")
        if self.discount_fallback is not None:
            fallback_triple(self.discount_fallback)


@dataclass
class Estimate:
    levels: list                                   # per order: word/logprob/backoff/starts arrays
    discounts: list = field(default_factory=list)  # per order (D1, D2, D3+)
    counts: list = field(default_factory=list)     # n-grams per order before pruning
    unigram_keep: np.ndarray | None = None         # words kept when unigrams are pruned (old ids)


def estimate(levels: list[dict], order: int, opts: Options = Options(), alloc=np.zeros) -> Estimate:
    """Turn counted levels into a back-off model.  ``levels`` is consumed.  alloc(size, dtype) makes the
    large zeroed arrays (np.zeros, or memory-mapped files of a glm.spill.Scratch)."""
    opts.check(order)
    fallback = fallback_triple(opts.discount_fallback) if opts.discount_fallback is not None else None
    D = [discounts(count_of_counts(lv["count"], lv.get("last_open")), n, fallback)
         for n, lv in enumerate(levels, 1)]
    counts = [int(np.count_nonzero(levels[0]["count"]))] + [len(lv["count"]) for lv in levels[1:]]

    # Unigrams: discounted continuation counts plus the uniform distribution over the vocabulary
    # without <s>.
    # Pruned unigrams (occurrences <= the first threshold; never <unk>, <s>, </s>) give their whole
    # adjusted count to gamma and leave the uniform distribution.
    keep1 = None
    if opts.threshold(1) > 0:
        keep1 = levels[0]["raw"] > opts.threshold(1)
        keep1[:3] = True
    prob = unigram_probs(levels[0]["count"], D[0], opts, keep1).astype(np.float32)
    out = [dict(logprob=prob, keep=keep1)]

    pruning = any(opts.threshold(n) for n in range(1, order + 1))
    ctx_prev = None
    for n in range(2, order + 1):
        lv, low = levels[n - 1], levels[n - 2]
        low_size = len(out[n - 2]["logprob"])
        low["starts"] = out[n - 2]["starts"] = _count.child_starts(lv["parent"], low_size, alloc)
        ctx = alloc(len(lv["word"]), np.uint32)
        parallel(_count.contexts, len(ctx), lv["word"], lv["parent"], ctx_prev, low.get("word"),
                 levels[n - 3]["starts"] if n >= 3 else None, ctx)
        keep = None
        if opts.threshold(n) > 0:
            keep = (lv["raw"] > opts.threshold(n)).view(np.uint8)
        total, num = context_sums(ctx, lv["count"], keep, D[n - 1], low_size, alloc)
        out[n - 2]["backoff"] = backoffs(total, num, alloc)
        parallel(_mkn.interpolate, len(ctx), lv["count"], ctx, lv["parent"], total, num,
                 out[n - 2]["logprob"], D[n - 1])
        del total, num
        prob_n = lv.pop("count").view(np.float32)
        lv.pop("raw", None)
        out.append(dict(logprob=prob_n, word=lv["word"], keep=keep))
        if pruning:
            out[n - 1]["parent"] = lv["parent"]
        del lv["parent"]
        ctx_prev = ctx
    del ctx_prev
    for n in range(1, order + 1):
        parallel(_mkn.log10_inplace, len(out[n - 1]["logprob"]), out[n - 1]["logprob"])
    out[0]["logprob"][BOS] = 0.0
    if pruning:
        _prune(out, alloc)
    for n in range(1, order + 1):
        out[n - 1].pop("parent", None)
        out[n - 1].pop("keep", None)
    return Estimate(out, D, counts, keep1)


def context_sums(ctx, count, keep, D: tuple, nctx: int, alloc=np.zeros):
    """(total, numerator of gamma) per context (_mkn.context_sums), the contexts cut among the threads:
    each thread reads every n-gram and adds those of its contexts, in order (the same float sums)."""
    total, num = alloc(nctx, np.uint32), alloc(nctx, np.float64)
    parallel(_mkn.add_context_sums, nctx, ctx, count, keep, D, total, num)
    return total, num


def backoffs(total, num, alloc=np.zeros):
    """log10 gamma per context (_mkn.backoffs) on the threads."""
    out = alloc(len(total), np.float32)
    parallel(_mkn.backoffs_into, len(total), total, num, out)
    return out


def unigram_probs(a: np.ndarray, D1: tuple, opts: Options, keep1: np.ndarray | None = None,
                  excluded: int = 1) -> np.ndarray:
    """Unigram probabilities (float64, by word id) from adjusted counts ``a``: discounted counts plus
    the uniform distribution over the vocabulary without <s> (lmplz's; <s> gets 1, log10 0) and, for
    excluded = 2, without the pad word of glm.paper.padding.
    Pruned unigrams (not in keep1) give their whole count to gamma and leave the uniform distribution."""
    total = float(a.sum())
    if total == 0:
        raise ValueError("no n-grams to estimate from: the text is empty")
    Dt = np.array((0.0,) + tuple(D1))
    disc = Dt[np.minimum(a, 3)]
    if keep1 is not None:
        disc = np.where(keep1, disc, a)
    gamma = float(disc.sum()) / total
    p = (a - disc) / total
    uniform_size = max((len(a) if keep1 is None else int(keep1.sum())) - excluded, opts.vocab_pad)
    if opts.interpolate_unigrams:
        p += gamma / uniform_size
    else:
        p[UNK] += gamma
    p[BOS] = 1.0
    return p


def _prune(out: list[dict], alloc=np.zeros) -> None:
    """Drop the n-grams marked not kept, renumber words (when unigrams are pruned), parents and child
    ranges.  The new arrays come from alloc, and are filled a block at a time."""
    uni = out[0]
    keep1 = uni.get("keep")
    if keep1 is None:
        keep1 = np.ones(len(uni["logprob"]), dtype=bool)
    new_id = np.cumsum(keep1, dtype=np.int64) - 1
    for name in ("logprob", "backoff"):
        if name in uni:
            uni[name] = uni[name][keep1]
    uni["kept"], uni["renumber"] = keep1, new_id
    for n in range(2, len(out) + 1):
        lv = out[n - 1]
        keep = alloc(len(lv["word"]), bool)
        renumber = alloc(len(keep), np.int64)
        for lo, hi in _blocks(len(keep)):
            # an n-gram whose suffix or first word was dropped is dropped too (cannot happen with raw-count
            # thresholds that do not decrease, but keep the trie consistent regardless)
            k = out[n - 2]["kept"][lv["parent"][lo:hi]] & keep1[lv["word"][lo:hi]]
            if lv.get("keep") is not None:
                k &= lv["keep"][lo:hi].view(bool)
            keep[lo:hi] = k
        np.cumsum(keep, dtype=np.int64, out=renumber)
        renumber -= 1
        lv["kept"], lv["renumber"] = keep, renumber
        size = int(renumber[-1]) + 1 if len(renumber) else 0
        lv["parent"] = _kept(lv["parent"], keep, size, alloc, out[n - 2]["renumber"])
        lv["word"] = _kept(lv["word"], keep, size, alloc, new_id)
        for name in ("logprob", "backoff"):
            if name in lv:
                lv[name] = _kept(lv[name], keep, size, alloc)
        out[n - 2]["starts"] = _count.child_starts(lv["parent"], len(out[n - 2]["logprob"]), alloc)
    for lv in out:
        lv.pop("kept", None)
        lv.pop("renumber", None)


def _blocks(n: int, size: int = 1 << 22):
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def _kept(values: np.ndarray, keep: np.ndarray, size: int, alloc, renumber=None) -> np.ndarray:
    """values[keep] (mapped through renumber, as uint32, when given) in a new array from alloc."""
    out = alloc(size, values.dtype if renumber is None else np.uint32)
    pos = 0
    for lo, hi in _blocks(len(keep)):
        v = values[lo:hi][keep[lo:hi]]
        out[pos:pos + len(v)] = v if renumber is None else renumber[v]
        pos += len(v)
    return out
