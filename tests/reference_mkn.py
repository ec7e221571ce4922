"""Slow, dict-based reference implementation of KenLM ``lmplz`` modified Kneser-Ney.

This module is a test oracle: it is written for clarity, not speed, and is only
meant for tiny corpora (a few thousand tokens).  It does not import ``glm``.

It reproduces what ``lmplz`` (KenLM commit 4cb443e) writes into its ARPA file,
computed in float64 instead of lmplz's float32 (differences are ~1e-7 in log10, up to
2e-6 where lmplz's float32 sums lose more; tests/test_lmplz_stored.py measures them).

Definitions (N = order, n = order of an n-gram, a(g) = adjusted count):

* Every sentence is padded as ``<s> w1 .. wn </s>``.  The n-grams of the model
  are all n-grams of the padded sentences, n = 1..N, except the unigram ``<s>``
  (``<s>`` only ever occurs at the start of an n-gram).
* Raw count c(g): number of occurrences.
* Adjusted count a(g): c(g) if n == N or g starts with ``<s>``; otherwise the
  number of distinct words v such that ``v g`` occurs.  The unigrams ``<s>`` and
  ``<unk>`` have a = 0 (``<unk>`` never occurs in lmplz training text).
* Discounts of order n from the count-of-counts t_k of the adjusted counts of
  all n-grams of order n (pruned or not; but see the quirk at the end):
  Y = t1/(t1+2 t2), D(k) = k - (k+1) Y t_{k+1}/t_k for k = 1, 2, 3; D(3) is used
  for every count >= 3.  They are undefined if t1, t2 or t3 is 0 and rejected
  if any D(k) lies outside [0, k]; then ``discount_fallback`` replaces the
  whole triple of that order (or DiscountError is raised).
* Pruning (``prune`` = lmplz ``--prune``): an n-gram is pruned ("marked") if its
  *raw* count is <= t_n.  Unigrams ``<s>`` and ``<unk>`` are never marked.
  Unigram ``</s>`` is marked by the count rule when N > 1 (never when N == 1)
  but, like ``<s>`` and ``<unk>``, it is always written to the ARPA file.
* For every context h of order n (h = () for unigrams) with at least one
  extension:
    total(h) = sum_x a(hx)                             (pruned x included)
    gamma(h) = [sum_{unmarked x, a(hx)>0} D(a(hx)) + sum_{marked x} a(hx)] / total(h)
    u(hw)    = (a(hw) - D(a(hw))) / total(h)
* Interpolation: p(w|h) = u(hw) + gamma(h) * p(w|h[1:]) for every n-gram that is
  written.  Unigrams interpolate with 1/V, V = max(vocab_pad, number of unmarked
  unigrams other than ``<s>``).  ``<unk>`` has u = 0 so p(<unk>) = gamma()/V.
  With ``interpolate_unigrams=False`` there is no uniform term: every unigram
  gets p = u and ``<unk>`` gets gamma() (the whole left-over mass).
  Unigram ``<s>`` gets log10 p = 0.
* Backoff (ARPA) of an n-gram g with n < N: log10 gamma(g) if g has at least one
  extension ``g x`` among the (pruned or unpruned) (n+1)-grams, else 0.  (This
  excludes n-grams ending in ``</s>``, which never have extensions, and the
  unigram ``<unk>`` when it does not occur in the text.)
* log10 p is clamped to <= 0.
* lmplz bug reproduced: when N > 1 and the number of sentences is <= t1, the
  unigram ``</s>`` is marked (its adjusted count goes into gamma() and it is not
  counted in V) but still written, with log10 p = 0 (lmplz reads its count with
  the prune-mark bit set), and the ARPA header's ``ngram 1=`` is one less than
  the number of unigram lines.  The model then no longer sums to 1.
* lmplz quirk reproduced: the lower-order n-grams that are suffixes of the last
  padded N-gram in suffix order (see ``build_mkn``) enter the count-of-counts
  with their raw count instead of their adjusted count.

Extension beyond lmplz: if a sentence contains the literal token ``<unk>``
(lmplz refuses this, or drops it with ``--skip_symbols``), the reference treats
it as an ordinary occurrence of the word with id 0: it is counted, discounted,
gets interpolated probability and a backoff like any other word, and is never
pruned as a unigram.  Pass ``skip_symbols=True`` to drop ``<unk>``/``<s>``/
``</s>`` tokens from the input instead, as ``lmplz --skip_symbols`` does.
"""

from __future__ import annotations

import math
from collections import defaultdict

UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
SPECIALS = (UNK, BOS, EOS)

DEFAULT_FALLBACK = (0.5, 1.0, 1.5)


class DiscountError(ValueError):
    """Raised when the closed-form Kneser-Ney discounts of some order are undefined."""

    def __init__(self, order, message):
        self.order = order
        super().__init__("order %d (%d-grams): %s" % (order, order, message))


def _log10(p):
    if p <= 0.0:
        return float("-inf")
    return math.log10(p)


def _normalize_thresholds(prune, order):
    thresholds = [int(t) for t in prune]
    if not thresholds:
        return [0] * order
    if len(thresholds) > order:
        raise ValueError("pruning thresholds given for %d orders but the model has order %d"
                         % (len(thresholds), order))
    for t in thresholds:
        if t < 0:
            raise ValueError("pruning thresholds must be >= 0")
    for a, b in zip(thresholds, thresholds[1:]):
        if a > b:
            raise ValueError("pruning thresholds must be non-decreasing")
    thresholds += [thresholds[-1]] * (order - len(thresholds))
    return thresholds


def _normalize_fallback(discount_fallback):
    if discount_fallback is None:
        return None
    values = [float(x) for x in discount_fallback]
    if not 1 <= len(values) <= 3:
        raise ValueError("discount_fallback takes 1 to 3 values")
    values += [values[-1]] * (3 - len(values))
    for k, d in enumerate(values, start=1):
        if not 0.0 <= d <= k:
            raise ValueError("fallback discount for count %d is %r, not in [0, %d]" % (k, d, k))
    return tuple(values)


def compute_discounts(count_of_counts, order):
    """Closed-form MKN discounts (D1, D2, D3+) from {k: t_k}; raises DiscountError."""
    t = [count_of_counts.get(k, 0) for k in range(5)]
    for k in (1, 2, 3):
        if t[k] == 0:
            raise DiscountError(
                order,
                "could not calculate Kneser-Ney discounts for %d-grams with adjusted count %d "
                "because no %d-gram has adjusted count %d (count-of-counts t1..t4 = %r)"
                % (order, k + 1, order, k, t[1:]))
    y = t[1] / (t[1] + 2.0 * t[2])
    discounts = []
    for k in (1, 2, 3):
        d = k - (k + 1) * y * t[k + 1] / t[k]
        if d < 0.0 or d > k:
            raise DiscountError(
                order,
                "%d-gram discount for adjusted count %d is %r, out of range [0, %d] "
                "(count-of-counts t1..t4 = %r)" % (order, k, d, k, t[1:]))
        discounts.append(d)
    return tuple(discounts)


class RefModel:
    """Result of :func:`build_mkn`.

    order:      model order N
    vocab:      all word types in lmplz id order: <unk>, <s>, </s>, then words by
                first occurrence (includes words whose unigram was pruned)
    ngrams:     ngrams[n-1][tuple of n str] = (log10 prob, log10 backoff): exactly
                the entries of lmplz's ARPA file (backoff 0.0 when none/0)
    discounts:  discounts[n-1] = (D1, D2, D3+) actually used for order n
    Diagnostics: raw_counts, adjusted_counts (lists of dicts over all n-grams,
    before pruning), count_of_counts (per order {k: t_k}, k = 1..4),
    discount_fallback_used (per order bool), uniform_vocab_size (V), gammas
    (gammas[n-1][context of n-1 words] for order-n contexts, float64),
    probs (probs[n-1][ngram] = interpolated p, float64, for written n-grams).
    """

    def __init__(self, order, vocab, ngrams, discounts):
        self.order = order
        self.vocab = vocab
        self.ngrams = ngrams
        self.discounts = discounts

    # ----------------------------------------------------------------- query
    @property
    def unigram_vocab(self):
        """Words that have a unigram entry, in ARPA (vocabulary id) order."""
        return [w for w in self.vocab if (w,) in self.ngrams[0]]

    def _map(self, word):
        return word if (word,) in self.ngrams[0] else UNK

    def log10prob(self, word, context=()):
        """Standard ARPA backoff: log10 p(word | context), context oldest first."""
        w = self._map(word)
        ctx = tuple(self._map(c) for c in context)
        if self.order == 1:
            ctx = ()
        elif len(ctx) > self.order - 1:
            ctx = ctx[len(ctx) - (self.order - 1):]
        for start in range(len(ctx) + 1):
            gram = ctx[start:] + (w,)
            entry = self.ngrams[len(gram) - 1].get(gram)
            if entry is None:
                continue
            backoff = 0.0
            for s in range(start):
                hist = ctx[s:]
                hist_entry = self.ngrams[len(hist) - 1].get(hist)
                if hist_entry is not None:
                    backoff += hist_entry[1]
            return entry[0] + backoff
        raise AssertionError("unigram %r missing" % (w,))  # <unk> is always present

    def prob(self, word, context=()):
        """p (not log) of word given context tuple (oldest first), ARPA backoff."""
        return 10.0 ** self.log10prob(word, context)

    def to_arpa(self):
        """ARPA text in lmplz's layout (unigrams in id order, others in suffix order)."""
        ids = {w: i for i, w in enumerate(self.vocab)}
        lines = ["\\data\\"]
        for n in range(1, self.order + 1):
            lines.append("ngram %d=%d" % (n, len(self.ngrams[n - 1])))
        lines.append("")
        for n in range(1, self.order + 1):
            lines.append("\\%d-grams:" % n)
            grams = sorted(self.ngrams[n - 1], key=lambda g: [ids[w] for w in reversed(g)])
            for g in grams:
                lp, bo = self.ngrams[n - 1][g]
                if n < self.order:
                    lines.append("%.7g\t%s\t%.7g" % (lp, " ".join(g), bo))
                else:
                    lines.append("%.7g\t%s" % (lp, " ".join(g)))
            lines.append("")
        lines.append("\\end\\")
        return "\n".join(lines) + "\n"


def build_mkn(sentences, order, prune=(), discount_fallback=None, interpolate_unigrams=True,
              vocab_pad=0, skip_symbols=False, prune_eos=True):
    """Estimate an MKN model exactly as lmplz would (in float64).

    sentences: list of lists of str tokens (no <s>/</s>; may contain '<unk>').
    order: model order N >= 1.
    prune: raw-count thresholds per order starting at order 1 (last one repeats).
    discount_fallback: None (raise DiscountError when the closed-form discounts of an
        order fail) or a tuple (d1, d2, d3) (fewer values repeat the last one) used
        for every order whose discounts fail.
    interpolate_unigrams: False = lmplz --interpolate_unigrams 0.
    vocab_pad: lmplz --vocab_pad (requires interpolate_unigrams).
    skip_symbols: drop literal <unk>, <s>, </s> tokens (lmplz --skip_symbols).
    prune_eos: False keeps the unigram </s> unmarked whatever its count (glm's choice), True marks it
        by the count rule like any word when N > 1 (lmplz's bug, see the module docstring).
    """
    N = int(order)
    if N < 1:
        raise ValueError("order must be >= 1")
    thresholds = _normalize_thresholds(prune, N)
    fallback = _normalize_fallback(discount_fallback)
    if vocab_pad and not interpolate_unigrams:
        raise ValueError("vocab_pad requires interpolate_unigrams (as in lmplz)")

    # ------------------------------------------------------- vocabulary, padding
    vocab = [UNK, BOS, EOS]
    seen = set(vocab)
    padded = []
    for sentence in sentences:
        words = []
        for w in sentence:
            if not isinstance(w, str) or w == "":
                raise ValueError("tokens must be non-empty strings, got %r" % (w,))
            if w in SPECIALS:
                if skip_symbols:
                    continue
                if w != UNK:
                    raise ValueError("sentences must not contain %s" % w)
            words.append(w)
            if w not in seen:
                seen.add(w)
                vocab.append(w)
        padded.append([BOS] + words + [EOS])

    # ------------------------------------------------------------ raw counts
    # raw[n-1][g] for every n-gram of the padded sentences except the unigram <s>.
    raw = [defaultdict(int) for _ in range(N)]
    for sent in padded:
        for n in range(1, N + 1):
            for i in range(len(sent) - n + 1):
                gram = tuple(sent[i:i + n])
                if gram == (BOS,):
                    continue
                raw[n - 1][gram] += 1
    raw = [dict(d) for d in raw]
    # <unk> and <s> are unigrams of every model (count 0 unless <unk> occurs).
    for special in (UNK, BOS):
        raw[0].setdefault((special,), 0)

    # -------------------------------------------------------- adjusted counts
    adjusted = [dict() for _ in range(N)]
    for n in range(1, N + 1):
        for gram, c in raw[n - 1].items():
            if n == N or gram[0] == BOS:
                adjusted[n - 1][gram] = c
            else:
                adjusted[n - 1][gram] = 0
        if n < N:
            # distinct left extensions: every (n+1)-gram (v,)+g adds one to g
            for longer in raw[n]:
                suffix = longer[1:]
                if suffix[0] != BOS:
                    adjusted[n - 1][suffix] += 1
    adjusted[0][(BOS,)] = 0
    if (UNK,) not in raw[0] or raw[0][(UNK,)] == 0:
        adjusted[0][(UNK,)] = 0

    # -------------------------------------------------------------- discounts
    # lmplz quirk (adjust_counts.cc, final flush loop): the lower-order n-grams
    # still open when the stream of padded N-grams ends -- the suffixes of the
    # last padded N-gram in suffix order -- enter the count-of-counts with their
    # RAW count instead of their adjusted count.  Their adjusted counts (used for
    # probabilities) are not affected.
    stat_counts = [dict(adjusted[n - 1]) for n in range(1, N + 1)]
    if N > 1 and padded:
        ids = {w: i for i, w in enumerate(vocab)}
        last_full = None
        for sent in padded:
            window = [BOS] * (N - 1) + sent[1:]
            for j in range(N - 1, len(window)):
                full = tuple(window[j - N + 1:j + 1])
                key = [ids[w] for w in reversed(full)]
                if last_full is None or key > last_full[0]:
                    last_full = (key, full)
        full = last_full[1]
        for n in range(1, N):
            suffix = full[N - n:]
            if BOS in suffix[1:]:
                break
            stat_counts[n - 1][suffix] = raw[n - 1][suffix]
    count_of_counts = []
    discounts = []
    fallback_used = []
    for n in range(1, N + 1):
        coc = {k: 0 for k in range(1, 5)}
        for a in stat_counts[n - 1].values():
            if 1 <= a <= 4:
                coc[a] += 1
        count_of_counts.append(coc)
        try:
            d = compute_discounts(coc, n)
            used = False
        except DiscountError:
            if fallback is None:
                raise
            d = fallback
            used = True
        discounts.append(d)
        fallback_used.append(used)

    def discount(n, a):
        if a <= 0:
            return 0.0
        return discounts[n - 1][min(a, 3) - 1]

    # ---------------------------------------------------------------- pruning
    # marked = pruned for the purpose of gamma / V; written = appears in ARPA.
    marked = [set() for _ in range(N)]
    for n in range(1, N + 1):
        t = thresholds[n - 1]
        for gram, c in raw[n - 1].items():
            if n == 1 and gram[0] in (BOS, UNK):
                continue
            if n == 1 and gram[0] == EOS and (N == 1 or not prune_eos):
                continue
            if c <= t:
                marked[n - 1].add(gram)
    written = [set(g for g in raw[n - 1] if g not in marked[n - 1]) for n in range(1, N + 1)]
    written[0] |= {(UNK,), (BOS,), (EOS,)}

    # ------------------------------------------------- per-context statistics
    gammas = [dict() for _ in range(N)]      # gammas[n-1][context] for order n
    totals = [dict() for _ in range(N)]
    for n in range(1, N + 1):
        total = defaultdict(int)
        mass = defaultdict(float)
        for gram, a in adjusted[n - 1].items():
            h = gram[:-1]
            total[h] += a
            if gram in marked[n - 1]:
                mass[h] += a
            else:
                mass[h] += discount(n, a)
        for h, tot in total.items():
            totals[n - 1][h] = tot
            gammas[n - 1][h] = mass[h] / tot if tot > 0 else 0.0

    # ----------------------------------------------------------- probabilities
    V = len([g for g in raw[0] if g not in marked[0] and g != (BOS,)])
    V = max(int(vocab_pad), V)
    probs = [dict() for _ in range(N)]
    total0 = totals[0][()]
    gamma0 = gammas[0][()]
    for gram in written[0]:
        w = gram[0]
        if w == BOS:
            probs[0][gram] = 1.0
            continue
        if gram in marked[0]:
            # Only </s> can be marked yet written (N > 1 and #sentences <= t1).  lmplz
            # then computes its probability from the count *with the prune-mark bit
            # set* (a huge number), so log10 p is clamped to 0: p(</s>) = 1.
            probs[0][gram] = 1.0
            continue
        a = adjusted[0].get(gram, 0)
        u = (a - discount(1, a)) / total0
        if interpolate_unigrams:
            p = u + gamma0 / V
        elif w == UNK:
            p = u + gamma0
        else:
            p = u
        probs[0][gram] = p
    for n in range(2, N + 1):
        for gram in written[n - 1]:
            h = gram[:-1]
            a = adjusted[n - 1][gram]
            u = (a - discount(n, a)) / totals[n - 1][h]
            lower = probs[n - 2][gram[1:]]
            probs[n - 1][gram] = u + gammas[n - 1][h] * lower

    # ------------------------------------------------------------- ARPA entries
    ngrams = []
    for n in range(1, N + 1):
        entries = {}
        for gram in written[n - 1]:
            p = probs[n - 1][gram]
            lp = 0.0 if gram == (BOS,) else min(0.0, _log10(p))
            bo = 0.0
            if n < N and gram in gammas[n]:
                bo = _log10(gammas[n][gram])
            entries[gram] = (lp, bo)
        ngrams.append(entries)

    model = RefModel(N, vocab, ngrams, discounts)
    model.raw_counts = raw
    model.adjusted_counts = adjusted
    model.count_of_counts = count_of_counts
    model.discount_fallback_used = fallback_used
    model.prune_thresholds = thresholds
    model.uniform_vocab_size = V
    # the "ngram n=" lines of lmplz's ARPA header count unmarked n-grams only, so
    # they are one short of the unigram lines when </s> is marked (see above)
    model.arpa_header_counts = [len(written[n - 1] - marked[n - 1]) for n in range(1, N + 1)]
    model.gammas = gammas
    model.probs = probs
    return model


def read_text(text):
    """Split text the way lmplz does: lines on '\\n', tokens on space, TAB, CR, NUL.

    A final line without a trailing newline is still returned as a sentence here
    (lmplz would give it no </s>; avoid that case in tests)."""
    sentences = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        for ch in "\t\r\0":
            line = line.replace(ch, " ")
        sentences.append([tok for tok in line.split(" ") if tok])
    return sentences
