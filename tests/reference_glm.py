"""A slow, pure-Python Generalized Language Model written from the equations of
../shared/reference/glm.md §2.2 (dicts of tuples, recursion with memoization), independent of glm's
compiled path.  Boundaries as glm (and lmplz): a sentence is <s> w1 .. wn </s>, windows never cross
sentences, contiguous lower-order n-grams that start with <s> keep their occurrence counts.

``padding="paper"`` instead takes the conventions behind the normalized en0008t figures of the
reference notes (glm.md §4.4): n-1 <s> before each sentence, every window counted, continuation counts
for n-grams that start with <s> too; ``sequence_log10prob`` then scores the paper's sequences by the
chain rule, each factor by the (normalized) top of its own length, from occurrence counts.

``prune`` (raw-count thresholds by number of kept words, the last repeating): an n-gram of a pattern with
k kept words whose occurrences (summed over the windows it is the projection of) are at most the k-th
threshold is dropped: alpha 0, its whole statistic in its history's gamma.  Pruned unigrams (never
<unk>, <s>, </s>) leave the vocabulary (they become <unk>) and give their whole statistic to the uniform.

Patterns are strings in the paper's reading order ('101' = w1 _ w3); an n-gram of a pattern is the
tuple of its kept words, oldest first.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from functools import lru_cache
from itertools import product


def lattice(order: int) -> list[str]:
    """All patterns of an order-n model: '1' and every 0/1 string of length 2..n starting and ending in 1."""
    out = ["1"]
    for L in range(2, order + 1):
        out += ["1" + "".join(mid) + "1" for mid in product("01", repeat=L - 2)]
    return out


def pattern_children(p: str) -> list[str]:
    """Drop one kept context word: the first one is deleted (leading zeros stripped), others become 0."""
    out = []
    for i, ch in enumerate(p[:-1]):
        if ch == "1":
            q = p[:i] + "0" + p[i + 1:]
            out.append(q.lstrip("0"))
    return out


def project(gram: tuple, p: str) -> tuple:
    return tuple(w for w, ch in zip(gram, p) if ch == "1")


class ReferenceGLM:
    def __init__(self, sentences: list[list[str]], order: int, method: str = "glm", discounts=None,
                 padding: str = "kenlm", prune=()):
        self.order, self.method, self.paper = order, method, padding == "paper"
        self.prune = tuple(prune)
        self.raw = Counter()                       # every substring of every padded sentence
        for s in sentences:
            toks = ["<s>"] * (order - 1 if self.paper else 1) + list(s) + ["</s>"]
            for L in range(1, order + 1):
                for i in range(len(toks) - L + 1):
                    self.raw[tuple(toks[i:i + L])] += 1
        words = {w for s in sentences for w in s} | {"</s>", "<unk>"}
        words = {w for w in words if not self.pruned("1", (w,))}
        self.vocab = sorted(words)                 # V': no <s>
        self.known = set(words)
        self.stat = {p: self.statistic(p) for p in lattice(order)}
        self.D = {p: (tuple(discounts) if discounts is not None else self.estimate_discounts(p))
                  for p in lattice(order)}
        self.den, self.num = {}, {}
        for p, table in self.stat.items():
            den, num = defaultdict(float), defaultdict(float)
            for x, s in table.items():
                den[x[:-1]] += s
                num[x[:-1]] += s if self.pruned(p, x) else self.disc(p, s)
            self.den[p], self.num[p] = den, num

    def pruned(self, p: str, x: tuple) -> bool:
        """Is n-gram x of pattern p dropped by the thresholds?"""
        k = p.count("1")
        if not self.prune or (p == "1" and x[0] in ("<unk>", "<s>", "</s>")):
            return False
        t = self.prune[min(k, len(self.prune)) - 1]
        if t == 0:
            return False
        return self._occurrences(p).get(x, 0) <= t

    @lru_cache(maxsize=None)
    def _occurrences(self, p: str) -> Counter:
        """Occurrences of the n-grams of pattern p: the windows of its span that project to them."""
        out = Counter()
        for g, c in self.raw.items():
            if len(g) == len(p):
                out[project(g, p)] += c
        return out

    def kept(self, p: str) -> set:
        """The n-grams of pattern p that the model stores (those of a statistic > 0, not pruned)."""
        return {x for x in self.stat[p] if not self.pruned(p, x)}

    def statistic(self, p: str) -> dict:
        L, top = len(p), len(p) == self.order and "0" not in p
        out = Counter()
        if "0" not in p:
            left = Counter(h[1:] for h in self.raw if len(h) == L + 1)
            for g, c in self.raw.items():
                if len(g) != L or g[-1] == "<s>":
                    continue
                if top or self.method == "glm-abs" and L > 1 or g[0] == "<s>" and not self.paper:
                    out[g] += c
                else:                              # distinct left extensions
                    out[g] = left[g]
            return {g: s for g, s in out.items() if s > 0}
        for g, c in self.raw.items():
            if len(g) == L and g[-1] != "<s>":
                out[project(g, p)] += c if self.method == "glm-abs" else 1
        return dict(out)

    def estimate_discounts(self, p: str, stat: dict | None = None) -> tuple:
        t = Counter(min(s, 5) for s in (stat or self.stat[p]).values())
        y = t[1] / (t[1] + 2 * t[2])
        return tuple(k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3))

    def disc(self, p: str, s: int) -> float:
        return 0.0 if s == 0 else self.D[p][min(s, 3) - 1]

    def prob(self, w: str, context: tuple) -> float:
        """p(w | context), context oldest first (may start with <s>), truncated to order-1 words."""
        if w not in self.known:
            w = "<unk>"
        context = tuple(c if c in self.known or c == "<s>" else "<unk>" for c in context)
        context = context[len(context) - min(len(context), self.order - 1):]
        return self._p("1" * (len(context) + 1), context + (w,))

    @lru_cache(maxsize=None)
    def _unigrams(self) -> tuple:
        t = self.stat["1"]
        total = sum(t.values())
        return t, total, sum(s if self.pruned("1", x) else self.disc("1", s) for x, s in t.items()) / total

    @lru_cache(maxsize=None)
    def _p(self, p: str, window: tuple) -> float:
        """P_p of the last word of window (window: the last len(p) words, all positions)."""
        window = window[len(window) - len(p):]
        if p == "1":
            t, total, gamma = self._unigrams()
            s = t.get(window, 0)
            return (s - self.disc("1", s)) / total + gamma / len(self.vocab)    # (window: a known word)
        kids = [self._p(c, window) for c in pattern_children(p)]
        if self.method == "mkn":
            kids = kids[:1]
        avg = sum(kids) / len(kids)
        x = project(window, p)
        den = self.den[p].get(x[:-1], 0.0)
        if den == 0:
            return avg
        s = 0 if self.pruned(p, x) else self.stat[p].get(x, 0)
        return max(s - self.disc(p, s), 0.0) / den + self.num[p][x[:-1]] / den * avg

    def sequence_log10prob(self, seq: list[str]) -> float:
        """log10 P(w1) P(w2 | w1) .. P(wn | w1 .. wn-1), each factor by the top of its own length: occurrence
        counts, discounted by their own count-of-counts, interpolated with the pattern's children."""
        out = 0.0
        for k in range(1, len(seq) + 1):
            q = tuple(w if w in self.known else "<unk>" for w in seq[k - 1:k])
            q = tuple(c if c in self.known or c == "<s>" else "<unk>" for c in seq[:k - 1]) + q
            top = self._top(k)
            c = top["stat"].get(q, 0)
            h = q[:-1]
            if k == 1:
                lower = 1.0 / len(self.vocab)
            else:
                kids = [self._p(p, q) for p in pattern_children("1" * k)]
                lower = kids[0] if self.method == "mkn" else sum(kids) / len(kids)
            den = top["den"].get(h, 0.0)
            p = lower if den == 0 else max(c - top["D"][min(c, 3) - 1] if c else 0.0, 0.0) / den + \
                top["num"][h] / den * lower
            out += math.log10(p)
        return out

    @lru_cache(maxsize=None)
    def _top(self, k: int) -> dict:
        stat = {g: c for g, c in self.raw.items() if len(g) == k and g[-1] != "<s>"}
        D = self.estimate_discounts("", stat)
        den, num = defaultdict(float), defaultdict(float)
        for g, c in stat.items():
            den[g[:-1]] += c
            num[g[:-1]] += D[min(c, 3) - 1]
        return dict(stat=stat, D=D, den=den, num=num)
