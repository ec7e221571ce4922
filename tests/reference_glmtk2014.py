"""A slow, pure-Python model of the 2014 toolkit's probabilities (GLMTK ``master``, the code behind the
paper's tables), written from its behaviour as specified in docs/glm.md §3.3 and independent of glm's
compiled path: dicts of tuples, the toolkit's own padding ``<fs> <s> w1 .. wm </s>``, its tables
defined from first principles, recursion with memoization.
"""
from __future__ import annotations

import math
from collections import Counter

FS, BOS, EOS = "<fs>", "<s>", "</s>"


def _discounts(values):
    n = Counter(v for v in values if 1 <= v <= 4)
    n1, n2, n3, n4 = n[1], n[2], n[3], n[4]
    y = n1 / (n1 + 2 * n2)
    return (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)


def _pick(D, s):
    return 0.0 if s <= 0 else D[min(s, 3) - 1]


class ReferenceGLMTK:
    """glm=True: the toolkit's GLM (kneserNeyComplex); False: its MKN (kneserNeySimple)."""

    def __init__(self, sentences: list[list[str]], order: int, glm: bool):
        self.order, self.glm = order, glm
        self.c = {L: Counter() for L in range(1, order + 1)}
        for s in sentences:
            toks = [FS, BOS] + list(s) + [EOS]
            for L in range(1, order + 1):
                for i in range(len(toks) - L + 1):
                    self.c[L][tuple(toks[i:i + L])] += 1
        self.N = sum(v for g, v in self.c[1].items() if g[0] != FS)
        self.unseen = 1.0 / (self.N + 1)
        self.tables, self.memo = {}, {}
        self.topD = {k: _discounts(v for g, v in self.c[k].items() if g[0] != FS) for k in range(2, order + 1)}
        self.n1p = {k: Counter(g[:-1] for g in self.c[k] if g[0] != FS) for k in range(2, order + 1)}

    def table(self, P: str) -> dict:
        """Lower-order statistics of pattern P ('1', '11', '101', ...): s, den, D, gamma fields."""
        if P in self.tables:
            return self.tables[P]
        ones = [i for i, b in enumerate(P) if b == "1"]
        L = len(ones)
        s = Counter()
        if "0" not in P:                      # distinct predecessors; raw count after <fs>, 0 for <s>
            for g, v in self.c[L + 1].items():
                s[g[1:]] += (0 if L == 1 else v) if g[0] == FS else 1
        else:                                 # distinct windows matching the kept words
            for g in self.c[len(P)]:
                if g[0] != FS:
                    s[tuple(g[i] for i in ones)] += 1
        den = Counter()
        for x, v in s.items():
            den[x[:-1]] += v
        g1, g2, g3 = Counter(), Counter(), Counter()
        if L > 1 and "0" not in P:            # absolute follower types; no N2, N3+
            for g in self.c[L]:
                if g[0] != FS:
                    g1[g[:-1]] += 1
        elif L > 1:                           # 2 N2 and the sum of the values >= 3, as the toolkit
            for x, v in s.items():
                if v == 1:
                    g1[x[:-1]] += 1
                elif v == 2:
                    g2[x[:-1]] += 2
                elif v >= 3:
                    g3[x[:-1]] += v
        t = self.tables[P] = dict(s=s, den=den, D=_discounts(s.values()) if L > 1 else None,
                                  g=(g1, g2, g3), L=L)
        return t

    def mix(self, P: str, x: tuple) -> float:
        if not self.glm:
            return self.low(P[1:], x[1:])
        ones = [i for i, b in enumerate(P) if b == "1"]
        kids = []
        for j in range(len(ones) - 1):        # context words only ...
            Q = list(P)
            Q[ones[j]] = "0"
            kids.append(("".join(Q).lstrip("0"), x[:j] + x[j + 1:]))
        # ... plus the toolkit's child that drops the predicted word: (L-1)/(N+1) over L-1
        return sum(self.low(Q, y) for Q, y in kids) / len(kids) + self.unseen

    def low(self, P: str, x: tuple) -> float:
        if (P, x) not in self.memo:
            t = self.table(P)
            s = t["s"].get(x, 0)
            if t["L"] == 1:
                r = s / t["den"][()] if s > 0 else self.unseen
            else:
                h = x[:-1]
                den = t["den"].get(h, 0)
                if den == 0:
                    r = self.mix(P, x)
                else:
                    gamma = sum(d * g.get(h, 0) for d, g in zip(t["D"], t["g"])) / den
                    r = max(s - _pick(t["D"], s), 0.0) / den + gamma * self.mix(P, x)
            self.memo[(P, x)] = r
        return self.memo[(P, x)]

    def top(self, q: tuple) -> float:
        """P(q[-1] | q[:-1]) by the top of length |q| (absolute counts)."""
        k = len(q)
        cnt = self.c[k].get(q, 0)
        if k == 1:
            return cnt / self.N if cnt > 0 else self.unseen
        h = q[:-1]
        den = self.c[k - 1].get(h, 0)
        if den == 0:
            return self.mix("1" * k, q)
        D = self.topD[k]
        return max(cnt - _pick(D, cnt), 0.0) / den + D[0] * self.n1p[k].get(h, 0) / den * self.mix("1" * k, q)

    def log10prob(self, seq: list[str]) -> float:
        """The chain rule from an empty context; factors <= 0 become 1e-12."""
        return sum(math.log10(max(self.top(tuple(seq[:i])), 0.0) or 1e-12) for i in range(1, len(seq) + 1))
