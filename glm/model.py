"""A back-off n-gram model ready for querying: log10 probabilities, sentence scores and perplexity.

Scores follow KenLM's conventions: log10 probabilities; a sentence is scored as ``<s> w1 .. wn </s>``
with ``</s>`` predicted and ``<s>`` only a context; a word not in the vocabulary is an OOV, scored as
``<unk>``.  Corpus perplexity counts tokens and OOVs exactly as KenLM's ``query`` does.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterator, Sequence

import numpy as np

from ._query import Trie, trie_hash
from .corpus import read_chunks
from .counts import threads
from .spill import in_memory, release
from .vocab import Vocabulary


@dataclass
class Evaluation:
    """Corpus totals, as ``query -v summary`` reports them."""
    log10_prob: float
    tokens: int          # words plus one </s> per line
    oovs: int
    oov_log10_prob: float
    lines: int

    @property
    def perplexity(self) -> float:
        return 10.0 ** (-self.log10_prob / self.tokens) if self.tokens else float("nan")

    @property
    def perplexity_excluding_oov(self) -> float:
        n = self.tokens - self.oovs
        return 10.0 ** (-(self.log10_prob - self.oov_log10_prob) / n) if n else float("nan")

    def add(self, res: "LineScores") -> None:
        """Add the lines of a batch to the totals."""
        self.log10_prob += float(res.log10_prob.sum())
        self.tokens += int(res.tokens.sum())
        self.oovs += int(res.oovs.sum())
        self.oov_log10_prob += float(res.oov_log10_prob.sum())
        self.lines += len(res.tokens)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(perplexity=self.perplexity, perplexity_excluding_oov=self.perplexity_excluding_oov)
        return d


@dataclass
class LineScores:
    """Per-line results of a batch: log10 probability, tokens, OOVs and the log10 probability of OOVs."""
    log10_prob: np.ndarray
    tokens: np.ndarray
    oovs: np.ndarray
    oov_log10_prob: np.ndarray


class Model:
    """An n-gram back-off model (from ``glm.train`` or ``glm.load``)."""

    def __init__(self, vocab: Vocabulary, levels: list[dict], discounts=None, counts=None,
                 meta: dict | None = None, child_index=None):
        self.vocab = vocab
        self.levels = levels
        self.order = len(levels)
        self.discounts = discounts
        self.unpruned_counts = counts
        self.meta = dict(meta or {})
        self._child_index, self._trie_built = child_index, None
        self._lock = threading.Lock()

    @property
    def child_index(self) -> np.ndarray:
        """Hash of the children of n-grams with many children (stored in binary files); made on first
        use, so that a model built only to be written as ARPA never needs it."""
        with self._lock:
            if self._child_index is None:
                self._child_index = trie_hash(self.levels)
            return self._child_index

    @property
    def _trie(self) -> Trie:
        if self._trie_built is None:
            index = self.child_index
            with self._lock:
                if self._trie_built is None:
                    self._trie_built = Trie(self.levels, index)
        return self._trie_built

    # -- structure -------------------------------------------------------------------------------
    @property
    def counts(self) -> list[int]:
        """Number of n-grams of each order (as in an ARPA header)."""
        return [len(self.levels[0]["logprob"])] + [len(lv["word"]) for lv in self.levels[1:]]

    def __repr__(self) -> str:
        return f"<glm.Model order={self.order} ngrams={self.counts}>"

    # -- queries ---------------------------------------------------------------------------------
    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 p(word | context); context is a tuple of words, oldest first (may start with <s>)."""
        ids = [self.vocab.id(w) for w in context]
        return float(self._trie.logprob(self.vocab.id(word), ids)[0])

    def _stream(self, lines: Sequence[str | bytes]) -> np.ndarray:
        if not lines:
            return np.zeros(0, dtype=np.uint32)
        if isinstance(lines[0], bytes):
            data = b"\n".join(lines)
        else:
            data = "\n".join(lines).encode("utf-8", errors="replace")
        if data.count(b"\n") != len(lines) - 1:      # a line holding LF: it is whitespace there
            return self._stream([ln.replace("\n" if isinstance(ln, str) else b"\n",
                                            " " if isinstance(ln, str) else b" ") for ln in lines])
        return self.vocab.tokenize_text(data + b"\n")

    def score_lines(self, lines: Sequence[str | bytes], bos: bool = True, eos: bool = True) -> LineScores:
        """Per-line totals of many lines, computed in compiled code on all cores."""
        lines = list(lines)
        parts = _split(lines, threads())
        if len(parts) <= 1:
            res = [self._trie.score_stream(self._stream(lines), bos, eos)]
        else:
            with ThreadPoolExecutor(len(parts)) as ex:
                res = list(ex.map(lambda part: self._trie.score_stream(self._stream(part), bos, eos), parts))
        cols = [np.concatenate([r[i] for r in res]) if res else np.zeros(0) for i in range(4)]
        return LineScores(*cols)

    def score_ids(self, ids: np.ndarray, bos: bool = True, eos: bool = True) -> LineScores:
        """Per-line totals of a padded id stream (``Vocabulary.tokenize``), in the calling thread."""
        return LineScores(*self._trie.score_stream(ids, bos, eos))

    def score_many(self, lines: Sequence[str | bytes], bos: bool = True, eos: bool = True) -> np.ndarray:
        """log10 probability of each line (float64 array), as ``kenlm.Model.score`` per line."""
        return self.score_lines(lines, bos, eos).log10_prob

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """log10 probability of one sentence."""
        return float(self._trie.score_stream(self._stream([sentence]), bos, eos)[0][0])

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> Iterator[tuple]:
        """Per token (words, then </s> when eos): (log10 prob, matched n-gram length, OOV flag)."""
        _, (lp, matched, oov) = self._trie.score_stream(self._stream([sentence]), bos, eos, True)
        return iter([(float(a), int(b), bool(c)) for a, b, c in zip(lp, matched, oov)])

    def token_scores(self, lines: Sequence[str | bytes], bos: bool = True, eos: bool = True):
        """Per-token arrays for many lines: (line_starts, log10 prob, matched length, OOV flag);
        the tokens of line i are line_starts[i] .. line_starts[i+1]."""
        stream = self._stream(list(lines))
        (lp_line, tok_line, _, _), (lp, matched, oov) = self._trie.score_stream(stream, bos, eos, True)
        starts = np.zeros(len(tok_line) + 1, dtype=np.int64)
        np.cumsum(tok_line, out=starts[1:])
        return starts, lp, matched, oov

    def perplexity(self, sentence: str) -> float:
        """10^(-score / (words + 1)), as ``kenlm.Model.perplexity`` (words split as the model splits them)."""
        lp, tokens, _, _ = self._trie.score_stream(self._stream([sentence]))
        return 10.0 ** (-lp[0] / tokens[0])

    def evaluate(self, inputs, bos: bool = True, eos: bool = True, quiet: bool = True,
                 bad_utf8: str = "error") -> Evaluation:
        """Corpus totals over files (paths, a directory, '-') read as one sentence per line."""
        total = Evaluation(0.0, 0, 0, 0.0, 0)
        for res in self.score_chunks(inputs, bos, eos, quiet, bad_utf8):
            total.add(res)
        return total

    def score_chunks(self, inputs, bos: bool = True, eos: bool = True, quiet: bool = True,
                     bad_utf8: str = "error") -> Iterator[LineScores]:
        """Per-line scores of files, chunk after chunk, in input order (chunks scored on all cores)."""
        def work(chunk):
            stream = self.vocab.tokenize(chunk, symbols="unk", bad_utf8=bad_utf8)
            return self.score_ids(stream, bos, eos)

        chunks = read_chunks(inputs, chunk_bytes=1 << 22, quiet=quiet, desc="scoring")
        with ThreadPoolExecutor(threads()) as ex:
            pending = []
            for chunk in chunks:
                pending.append(ex.submit(work, chunk))
                if len(pending) > 2 * threads():
                    yield pending.pop(0).result()
            for fut in pending:
                yield fut.result()

    # -- files -----------------------------------------------------------------------------------
    def binary_arrays(self) -> list[tuple[str, np.ndarray]]:
        """The query arrays, as the binary format stores them (besides the vocabulary)."""
        out = [("children.hash", self.child_index)]
        for n, lv in enumerate(self.levels, 1):
            for name in ("word", "logprob", "backoff", "starts"):
                if name in lv:
                    out.append((f"{n}.{name}", np.ascontiguousarray(lv[name])))
        return out

    def binary_header(self) -> dict:
        return dict(discounts=[list(d) for d in (self.discounts or [])],
                    unpruned_counts=list(self.unpruned_counts or []))

    @classmethod
    def from_binary(cls, vocab: Vocabulary, arrays: dict, header: dict) -> "Model":
        if "children.hash" not in arrays:
            raise ValueError("children.hash missing")
        levels = [{name: arrays[f"{n}.{name}"] for name in ("word", "logprob", "backoff", "starts")
                   if f"{n}.{name}" in arrays} for n in range(1, header["order"] + 1)]
        return cls(vocab, levels, discounts=[tuple(d) for d in header["discounts"]] or None,
                   counts=header["unpruned_counts"] or None, meta=header["meta"],
                   child_index=arrays["children.hash"])

    def save(self, path, quiet: bool = True) -> None:
        """Write the model; the format follows the name: .arpa, .arpa.gz (.bz2, .xz) or .glmb (binary)."""
        from .formats import save
        save(self, path, quiet=quiet)


class GeneralizedModel(Model):
    """A Generalized Language Model (or MKN computed over the pattern lattice): the same queries as
    Model, answered by recursive interpolation over skip patterns (glm.generalized)."""

    def __init__(self, vocab: Vocabulary, tables, meta: dict | None = None, weights: dict | None = None,
                 hash_table=None):
        """hash_table: (pattern_hash array, {mask: largest range searched}) of the tables, made when None."""
        from ._glm import pattern_hash
        from .generalized import combination
        from .records import searched
        self.vocab = vocab
        self.tables = tables
        self.order = tables.order
        self.method = tables.method
        # {mask: parent weight, or every child's weight (glm.generalized.combination)}
        self.weights = {int(m): float(w) if np.ndim(w) == 0 else tuple(map(float, w))
                        for m, w in (weights or {}).items()}
        kids = combination(self.order, self.method, self.weights)   # (checks them)
        self.discounts = None
        self.unpruned_counts = None
        self.meta = dict(meta or {}, order=self.order, method=self.method)
        self._lock = threading.Lock()
        self._scorer = None
        if hash_table is None:       # the hash read every table: drop the pages of file-backed ones
            small = searched([1, *kids])
            hash_table = pattern_hash(tables.tables, small), small
            for t in tables.tables.values():
                for a in t.values():
                    release(a)
        self.hash = hash_table

    @property
    def _trie(self):
        """The scorer, made on first use, with the node records of the tables (glm.records: made once
        for the tables, a copy of them in memory) and the children hash, read from memory too."""
        from ._glm import Scorer
        from .generalized import combination
        from .records import Records
        with self._lock:
            if self._scorer is None:
                children = combination(self.order, self.method, self.weights)
                if self.tables.records is None:
                    self.tables.records = Records(self.tables.tables, [1, *children])
                self.hash = in_memory(self.hash[0]), self.hash[1]
                self._scorer = Scorer(self.order, self.tables.tables, children, self.tables.records,
                                      *self.hash, self.tables.compat)
            return self._scorer

    @property
    def counts(self) -> list[int]:
        """Number of n-grams of each contiguous pattern (order), as for a back-off model."""
        return [self.tables.sizes.get((1 << n) - 1, 0) for n in range(1, self.order + 1)]

    def __repr__(self) -> str:
        return f"<glm.GeneralizedModel method={self.method} order={self.order} ngrams={self.counts}>"

    def binary_arrays(self) -> list[tuple[str, np.ndarray]]:
        out = [("patterns.hash", self.hash[0]), ("1.prob", self.tables.tables[1]["prob"])]
        for mask, t in sorted(self.tables.tables.items()):
            if mask > 1:
                out += [(f"{mask}.{k}", np.ascontiguousarray(t[k])) for k in ("word", "starts", "alpha", "gamma")]
        for mask, t in sorted((self.tables.compat or {}).get("top", {}).items()):
            out += [(f"top.{mask}.{k}", v) for k, v in sorted(t.items())]
        return out

    def binary_header(self) -> dict:
        out = dict(kind="glm", method=self.method, weights={str(k): v for k, v in self.weights.items()},
                   discounts={str(k): list(v) for k, v in self.tables.discounts.items()},
                   sizes={str(k): v for k, v in self.tables.sizes.items()},
                   searched={str(k): v for k, v in self.hash[1].items()})
        c = self.tables.compat
        if c is not None:
            out["compat"] = dict(extra=c["extra"], floor=c["floor"],
                                 discounts={str(k): list(v) for k, v in c["discounts"].items()})
        return out

    @classmethod
    def from_binary(cls, vocab: Vocabulary, arrays: dict, header: dict) -> "GeneralizedModel":
        from .generalized import Tables
        masks = sorted(int(k) for k in header["sizes"])
        tables = {1: dict(prob=arrays["1.prob"])}
        for mask in masks[1:]:
            tables[mask] = {k: arrays[f"{mask}.{k}"] for k in ("word", "starts", "alpha", "gamma")}
        compat = header.get("compat")
        if compat is not None:
            top = {}
            for key, arr in arrays.items():
                if key.startswith("top."):
                    _, mask, k = key.split(".")
                    top.setdefault(int(mask), {})[k] = arr
            compat = dict(compat, top=top, discounts={int(k): tuple(v) for k, v in compat["discounts"].items()})
        t = Tables(header["order"], header["method"], tables,
                   {int(k): tuple(v) for k, v in header["discounts"].items()},
                   {int(k): v for k, v in header["sizes"].items()}, compat=compat)
        # (files written before the header had "searched": ranges of up to 32 searched in every pattern)
        small = {int(k): v for k, v in header.get("searched", {str(m): 32 for m in masks[1:]}).items()}
        return cls(vocab, t, header["meta"], {int(k): v for k, v in header["weights"].items()},
                   hash_table=(arrays["patterns.hash"], small))

    def with_weights(self, weights: dict) -> "GeneralizedModel":
        """The same tables combined with other child weights ({mask: parent weight, or every child's
        weight}, as glm.generalized.combination)."""
        return GeneralizedModel(self.vocab, self.tables, self.meta, weights, self.hash)


def _split(lines: list, parts: int) -> list[list]:
    """Lines cut into up to `parts` consecutive pieces of about equal size (small batches stay whole)."""
    if parts <= 1 or len(lines) < 2048:
        return [lines]
    step = math.ceil(len(lines) / parts)
    return [lines[i:i + step] for i in range(0, len(lines), step)]
