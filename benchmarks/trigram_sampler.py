"""Synthetic text for the cost curve: paragraphs sampled from a trigram model of a real corpus, fast.

The model is the maximum-likelihood trigram distribution of the training text with a paragraph (one
line) as the sentence, padded `<s> <s> w1 .. wn </s>`.  Drawing the next word after the context (u, v)
with probability c(u v w) / c(u v) is the same as picking a random occurrence of (u, v) in the text and
taking the word after it, so the model is stored as the text's positions sorted by their context:

* `nxt[k]`: the word at the k-th position of that order;
* `state[k]`: the context group of (v, w) that the word leads to (the start group after `</s>`);
* `start[g]`, `count[g]`: where group g's positions begin, and how many there are.

One step draws a word for each of many paragraphs at once (two gathers and one random draw per word,
all numpy), so a core makes a few million words per second.  The output is deterministic for a given
model, seed and size (the batch shape is fixed).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

BOS, EOS = 0, 1
SLOTS = 8192      # paragraphs drawn in parallel (the `slots` attribute)
STEPS = 2048      # words per slot per chunk (`steps`; a paragraph not finished by then is dropped)


class TrigramSampler:
    def __init__(self, words: list[bytes], nxt: np.ndarray, state: np.ndarray, start: np.ndarray,
                 count: np.ndarray, begin: int, corpus: np.ndarray | None = None):
        self.words = words
        self.corpus = corpus          # the training text as word ids, `</s>` ending every line
        self.slots, self.steps = SLOTS, STEPS
        self.nxt, self.state, self.start, self.count, self.begin = nxt, state, start, count, begin
        # every token as bytes: "word " (EOS: "\n"); the space before a newline is dropped when writing
        self.text = np.empty(len(words), dtype=object)
        self.text[:] = [w + b" " for w in words]
        self.text[BOS], self.text[EOS] = b"", b"\n"

    @classmethod
    def from_lines(cls, lines) -> "TrigramSampler":
        """A model of an iterable of lines (bytes or str); empty lines are skipped."""
        index: dict[bytes, int] = {b"<s>": BOS, b"</s>": EOS}
        ids: list[int] = []
        for line in lines:
            toks = line.split()
            if not toks:
                continue
            if isinstance(toks[0], str):
                toks = [t.encode("utf-8") for t in toks]
            ids.append(BOS)
            ids.append(BOS)
            ids.extend(index.setdefault(t, len(index)) for t in toks)
            ids.append(EOS)
        words = [b""] * len(index)
        for w, i in index.items():
            words[i] = w
        seq = np.array(ids, dtype=np.int64)
        V = len(words)
        pos = np.flatnonzero(seq != BOS)                  # every position that follows a full context
        ctx = seq[pos - 2] * V + seq[pos - 1]
        order = np.argsort(ctx, kind="stable")
        pos, ctx = pos[order], ctx[order]
        groups, start, count = np.unique(ctx, return_index=True, return_counts=True)
        nxt = seq[pos]
        follow = seq[pos - 1] * V + nxt
        begin = int(np.searchsorted(groups, BOS * V + BOS))
        state = np.searchsorted(groups, follow)
        state[nxt == EOS] = begin                          # (v, </s>) is no context: a new paragraph starts
        return cls(words, nxt.astype(np.int32), state.astype(np.int32), start.astype(np.int64),
                   count.astype(np.float64), begin, seq[seq != BOS].astype(np.int32))

    @classmethod
    def from_file(cls, path: Path, max_bytes: int | None = None) -> "TrigramSampler":
        """A model of a text file (gzip if it ends in .gz), or of its first max_bytes."""
        opener = gzip.open if str(path).endswith(".gz") else open

        def lines():
            n = 0
            with opener(path, "rb") as f:
                for line in f:
                    n += len(line)
                    if max_bytes is not None and n > max_bytes:
                        return
                    yield line
        return cls.from_lines(lines())

    def chunks(self, seed: int):
        """Endless token chunks (int32 arrays of word ids, EOS ending every paragraph)."""
        rng = np.random.default_rng(seed)
        slots, steps = self.slots, self.steps
        out = np.empty((steps, slots), dtype=np.int32)
        while True:
            g = np.full(slots, self.begin, dtype=np.int64)
            for t in range(steps):
                k = self.start[g] + (rng.random(slots) * self.count[g]).astype(np.int64)
                out[t] = self.nxt[k]
                g = self.state[k]
            streams = out.T                               # one row per slot, its paragraphs in order
            done = streams == EOS
            last = steps - 1 - np.argmax(done[:, ::-1], axis=1)     # the last </s> of each row
            last[~done.any(axis=1)] = -1
            keep = np.arange(steps)[None, :] <= last[:, None]
            yield streams[keep]

    def to_bytes(self, toks: np.ndarray) -> bytes:
        """Text of a token stream ending in EOS: words separated by a space, paragraphs by a newline."""
        return b"".join(self.text[toks].tolist()).replace(b" \n", b"\n")

    def write(self, dst: Path, nbytes: int, seed: int, keep: int = 0) -> tuple[int, int, np.ndarray]:
        """Write whole paragraphs to dst until nbytes would be passed.

        Returns (bytes, words, ids): ids are the word ids of at least the first `keep` words (whole
        paragraphs, `</s>` ending each), or of all if fewer were written.
        """
        written = words = 0
        kept: list[np.ndarray] = []
        nkept = 0
        with open(dst, "wb") as f:
            for toks in self.chunks(seed):
                data = self.to_bytes(toks)
                last = written + len(data) >= nbytes
                if written + len(data) > nbytes:
                    cut = data.rfind(b"\n", 0, nbytes - written + 1) + 1
                    lines = data.count(b"\n", 0, cut)
                    toks = toks[:np.flatnonzero(toks == EOS)[lines - 1] + 1] if lines else toks[:0]
                    data = data[:cut]
                f.write(data)
                written += len(data)
                words += int(np.count_nonzero(toks != EOS))
                if nkept < keep:
                    kept.append(toks)
                    nkept += len(toks)
                if last:
                    return written, words, np.concatenate(kept) if kept else toks[:0]


def distinct_ngrams(ids: np.ndarray, words: int, orders=(3, 4, 5)) -> dict[int, int]:
    """{n: distinct n-grams} of the first `words` words (whole lines) of a stream of word ids in which
    `</s>` (1) ends every line; each line is padded `<s> .. </s>` as an LM counts it, `<s>` being 0.

    The n-grams are told apart by a 64-bit hash of their word ids (for 10^8 n-grams the chance of one
    collision is below 10^-3).
    """
    ends = np.flatnonzero(ids == EOS)
    nwords = ends + 1 - np.arange(1, len(ends) + 1)          # words up to and including each line
    lines = int(np.searchsorted(nwords, words)) + 1
    ids = ids[:ends[min(lines, len(ends)) - 1] + 1].astype(np.uint64)
    starts = np.concatenate([[0], ends[:lines - 1] + 1])
    seq = np.insert(ids, starts, np.uint64(BOS))
    line = np.cumsum(seq == BOS)
    out = {}
    h = seq.copy()
    m1, m2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)
    for n in range(2, max(orders) + 1):
        with np.errstate(over="ignore"):
            h = (h[:-1] * m1 ^ seq[n - 1:]) * m2 ^ (h[:-1] >> np.uint64(29))
        if n in orders:
            ok = line[:len(h)] == line[n - 1:]
            x = np.sort(h[ok])
            out[n] = int(np.count_nonzero(x[1:] != x[:-1])) + 1 if len(x) else 0
    return out
