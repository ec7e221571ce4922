"""A back-off n-gram model ready for querying: log10 probabilities, sentence scores and perplexity.

Scores follow KenLM's conventions: log10 probabilities; a sentence is scored as ``<s> w1 .. wn </s>``
with ``</s>`` predicted and ``<s>`` only a context; a word not in the vocabulary is an OOV, scored as
``<unk>``.  Corpus perplexity counts tokens and OOVs exactly as KenLM's ``query`` does.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Iterator, Sequence

import numpy as np

from . import formats
from ._query import Trie, trie_hash
from ._state import Queries
from .corpus import expand_inputs, line_chunks, read_chunks
from .spill import in_memory, release
from .threads import threads
from .vocab import Vocabulary


@dataclass
class Evaluation:
    """Corpus totals, as ``query -v summary`` reports them (``Model.evaluate``).

    Attributes
    ----------
    log10_prob : float
        The sum of log10 p over all scored tokens.
    tokens : int
        Words plus one ``</s>`` per line (when ``eos``).
    oovs : int
        Tokens not in the vocabulary (scored as ``<unk>``).
    oov_log10_prob : float
        The sum of log10 p over the OOV tokens.
    lines : int
        Lines scored.
    """
    log10_prob: float
    tokens: int          # words plus one </s> per line
    oovs: int
    oov_log10_prob: float
    lines: int

    @property
    def perplexity(self) -> float:
        """10 ** (-log10_prob / tokens), OOVs included (NaN without tokens)."""
        return 10.0 ** (-self.log10_prob / self.tokens) if self.tokens else float("nan")

    @property
    def entropy(self) -> float:
        """Cross-entropy in bits per token, log2(perplexity) (nltk.lm's ``entropy``)."""
        return -self.log10_prob / self.tokens * math.log2(10.0) if self.tokens else float("nan")

    @property
    def perplexity_excluding_oov(self) -> float:
        """The perplexity of the tokens that are not OOVs, as KenLM's ``query`` (NaN without any)."""
        n = self.tokens - self.oovs
        return 10.0 ** (-(self.log10_prob - self.oov_log10_prob) / n) if n else float("nan")

    def add(self, res: "LineScores") -> None:
        """Add the lines of a batch to the totals.

        Parameters
        ----------
        res : LineScores
        """
        self.log10_prob += float(res.log10_prob.sum())
        self.tokens += int(res.tokens.sum())
        self.oovs += int(res.oovs.sum())
        self.oov_log10_prob += float(res.oov_log10_prob.sum())
        self.lines += len(res.tokens)

    def as_dict(self) -> dict:
        """The fields and both perplexities (what ``glm score --json`` prints).

        Returns
        -------
        dict
        """
        d = asdict(self)
        d.update(perplexity=self.perplexity, perplexity_excluding_oov=self.perplexity_excluding_oov)
        return d


@dataclass
class LineScores:
    """Per-line results of a batch (``Model.score_lines``): four arrays, one entry per line.

    Attributes
    ----------
    log10_prob : numpy.ndarray
        float64, the log10 probability of the line.
    tokens : numpy.ndarray
        int64, words plus 1 for ``</s>`` when ``eos``.
    oovs : numpy.ndarray
        int64, the OOV tokens.
    oov_log10_prob : numpy.ndarray
        float64, the summed log10 p of the OOV tokens.
    """
    log10_prob: np.ndarray
    tokens: np.ndarray
    oovs: np.ndarray
    oov_log10_prob: np.ndarray


class Model:
    """A language model ready for querying (from ``glm.train`` or ``glm.load``).

    The queries are the same for every kind of model; each subclass stores its probabilities in its
    own way and makes a compiled *scorer* for them (``_make_scorer``): ``BackoffModel`` (an ARPA-style
    back-off trie: MKN models, ARPA files) and ``GeneralizedModel`` (a lattice of skip patterns).

    Attributes
    ----------
    vocab : Vocabulary
        The words of the model.
    order : int
        The n-gram order.
    meta : dict
        How the model was made (as stored in its file).
    source : str or None
        The file the model was loaded from (None for a model trained in this process), named in errors.

    Notes
    -----
    All scores are log10.  ``bos`` (default True) conditions the first word on ``<s>``; ``eos`` (default
    True) adds the term for predicting ``</s>``.  A word not in the vocabulary is an OOV, scored as
    ``<unk>``.
    """

    kind = ""            # the storage kind, as the file formats know it (glm.formats)

    def __init__(self, vocab: Vocabulary, order: int, meta: dict | None = None):
        self.vocab = vocab
        self.order = order
        self.meta = dict(meta or {})
        self.source = None            # the file the model was read from (glm.load), named in errors
        self._lock = threading.Lock()
        self._scorer = None
        self._source = None          # the file it was loaded from (glm.model.load), for pickling

    @property
    def _trie(self):
        """The compiled scorer, made on first use (``score_stream``, ``logprob``)."""
        if self._scorer is None:
            scorer = self._make_scorer()
            if hasattr(scorer, "source"):         # (named in its errors: a damaged value scored)
                scorer.source = self.source
            with self._lock:
                if self._scorer is None:
                    self._scorer = scorer
        return self._scorer

    def _make_scorer(self):
        raise NotImplementedError

    @cached_property
    def _queries(self) -> Queries:
        """The per-call queries of one sentence (score, full_scores, perplexity) in compiled code."""
        return Queries(self.vocab.table, self._trie)

    # -- pickling --------------------------------------------------------------------------------
    def _parts(self) -> dict:
        """The arguments of the class that make this model again (as a reader's formats.Parts)."""
        raise NotImplementedError

    def __reduce__(self):
        """A model loaded from a file pickles as its path and the file's identity (size, modification
        time, inode): unpickling loads the file again, and fails if it changed.  Any other model
        pickles as its contents."""
        if self._source is not None:
            return _reopen, (self._source,)
        try:
            parts = self._parts()
        except NotImplementedError:
            raise TypeError(f"a {type(self).__name__} that was not loaded from a file cannot be "
                            "pickled") from None
        return _rebuild, (self.kind, parts)

    # -- structure -------------------------------------------------------------------------------
    @property
    def counts(self) -> list[int]:
        """Number of n-grams of each order (as in an ARPA header)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<glm.{type(self).__name__} order={self.order} ngrams={self.counts}>"

    def __contains__(self, word) -> bool:
        """Whether ``word`` (str or bytes) is a word of the model, as ``word in kenlm.Model``: <s> and
        </s> are, <unk> (the unknown word, what any other word is scored as) is not."""
        if not isinstance(word, (str, bytes)):
            raise TypeError(f"expected a word (str or bytes), not {type(word).__name__}")
        return self.vocab.id(word) != 0

    def describe(self, sep: str = ": ") -> list[str]:
        """Lines of n-gram counts and discounts (what ``glm info`` prints).

        Parameters
        ----------
        sep : str
            Between a line's name and its values.

        Returns
        -------
        list of str
        """
        raise NotImplementedError

    def info(self) -> dict:
        """The model's structure (what ``glm info --json`` prints).

        Returns
        -------
        dict
            ``order``, ``ngrams``, ``vocabulary``, ``meta`` (and ``discounts``; for a GLM ``method``,
            ``patterns``, ``weights``).
        """
        return dict(order=self.order, ngrams=self.counts, vocabulary=len(self.vocab), meta=self.meta)

    # -- queries ---------------------------------------------------------------------------------
    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 p(word | context).

        Parameters
        ----------
        word : str
            The predicted word; an unknown word is scored as ``<unk>``.
        context : sequence of str
            The words before it, oldest first (may start with ``"<s>"``); only the last ``order - 1``
            are used.

        Returns
        -------
        float

        Raises
        ------
        TypeError
            ``context`` is one string instead of a sequence of words.
        """
        if isinstance(context, (str, bytes)):
            raise TypeError("context: expected a sequence of words, oldest first, not one string")
        ids = [self.vocab.id(w) for w in context]
        return float(self._trie.logprob(self.vocab.id(word), ids)[0])

    # -- the next word ---------------------------------------------------------------------------
    def _context_ids(self, context) -> list[int]:
        if isinstance(context, (str, bytes)):
            raise TypeError("context: expected a sequence of words, oldest first, not one string")
        return [self.vocab.id(w) for w in context]

    def _next_logprobs(self, ids: list[int]) -> np.ndarray:
        scorer = self._trie
        if hasattr(scorer, "next_logprobs"):
            out = scorer.next_logprobs(ids)
        else:                      # a scorer without it: word by word
            out = np.array([scorer.logprob(w, ids)[0] for w in range(len(self.vocab))], dtype=np.float64)
        out[1] = -np.inf           # <s> is never predicted
        return out

    def next_logprobs(self, context: Sequence[str] = ()) -> np.ndarray:
        """log10 p(w | context) of every word w of the vocabulary, by id (``vocab.word(i)`` is word i),
        computed in compiled code; <s> gets -inf (it is never predicted), </s> and <unk> their
        probabilities, so that 10 ** the array sums to 1.

        Parameters
        ----------
        context : sequence of str
            The words before, oldest first; start it with "<s>" for the beginning of a sentence.

        Returns
        -------
        numpy.ndarray
            float64, one entry per word id.

        Raises
        ------
        TypeError
            ``context`` is one string instead of a sequence of words.
        """
        return self._next_logprobs(self._context_ids(context))

    def next_words(self, context: Sequence[str] = (), k: int | None = 10) -> list[tuple[str, float]]:
        """The most probable next words after ``context`` (see ``next_logprobs``).

        Parameters
        ----------
        context : sequence of str
            The words before, oldest first.
        k : int or None
            How many words; None: every word but ``<s>``.

        Returns
        -------
        list of (str, float)
            (word, log10 p), most probable first (ties: the lower word id first).
        """
        lp = self.next_logprobs(context)
        n = len(lp) - 1 if k is None else min(int(k), len(lp) - 1)
        if n <= 0:
            return []
        neg = -lp
        kth = np.partition(neg, n - 1)[n - 1]         # (ties at the n-th place: the lowest ids)
        above = np.flatnonzero(neg < kth)
        top = np.concatenate([above, np.flatnonzero(neg == kth)[:n - len(above)]])
        top = top[np.lexsort((top, neg[top]))]
        return [(self.vocab.word(int(i)), float(lp[i])) for i in top]

    def generate(self, n: int = 1, *, seed=None, max_words: int = 100,
                 prefix: Sequence[str] = ()) -> list[str]:
        """Sentences sampled from the model, word after word from ``next_logprobs``.

        Parameters
        ----------
        n : int
            How many sentences.
        seed : int or None
            The seed of numpy's PCG64 generator: the same seed gives the same sentences.
        max_words : int
            A sentence ends at ``</s>`` or after this many words.
        prefix : sequence of str
            Words each sentence begins with (after ``<s>``).

        Returns
        -------
        list of str
            The sentences (a sampled ``<unk>`` is written ``<unk>``).

        Raises
        ------
        TypeError
            ``prefix`` is one string.
        ValueError
            ``max_words`` is negative.
        """
        if isinstance(prefix, (str, bytes)):
            raise TypeError("prefix: expected a sequence of words, not one string")
        if max_words < 0:
            raise ValueError(f"max_words must be >= 0, not {max_words}")
        rng = np.random.default_rng(seed)
        keep = self.order - 1
        out = []
        for _ in range(int(n)):
            words = [w if isinstance(w, str) else w.decode("utf-8") for w in prefix]
            ids = [1] + self._context_ids(words)
            while len(words) < max_words:
                p = np.cumsum(10.0 ** self._next_logprobs(ids[len(ids) - keep:] if keep else []))
                w = int(np.searchsorted(p, rng.random() * p[-1], side="right"))
                w = min(w, len(p) - 1)
                if w == 2:
                    break
                words.append(self.vocab.word(w))
                ids.append(w)
            out.append(" ".join(words))
        return out

    def entropy(self, inputs=None, bos: bool = True, eos: bool = True, *, lines=None) -> float:
        """Cross-entropy of text in bits per token, log2 of its perplexity (as nltk.lm's ``entropy``).

        Parameters
        ----------
        inputs, bos, eos, lines
            As for ``evaluate``.

        Returns
        -------
        float
        """
        return self.evaluate(inputs, bos, eos, lines=lines).entropy

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
        """Per-line totals of many lines, computed in compiled code on all cores.

        Parameters
        ----------
        lines : sequence of str or bytes
            One sentence per item (an LF inside one counts as a space).
        bos, eos : bool
            Condition the first word on ``<s>``; predict ``</s>``.

        Returns
        -------
        LineScores

        Raises
        ------
        TypeError
            ``lines`` is one string, or holds items that are not str or bytes.
        """
        lines = _lines(lines)
        parts = _split(lines, threads())
        if len(parts) <= 1:
            res = [self._trie.score_stream(self._stream(lines), bos, eos)]
        else:
            with ThreadPoolExecutor(len(parts)) as ex:
                res = list(ex.map(lambda part: self._trie.score_stream(self._stream(part), bos, eos), parts))
        cols = [np.concatenate([r[i] for r in res]) if res else np.zeros(0) for i in range(4)]
        return LineScores(*cols)

    def score_ids(self, ids: np.ndarray, bos: bool = True, eos: bool = True) -> LineScores:
        """Per-line totals of a padded id stream (``Vocabulary.tokenize``), in the calling thread.

        Parameters
        ----------
        ids : numpy.ndarray
            uint32 ids, ``1 w1 .. wn 2`` per line.
        bos, eos : bool
            Condition the first word on ``<s>``; predict ``</s>``.

        Returns
        -------
        LineScores
        """
        return LineScores(*self._trie.score_stream(ids, bos, eos))

    def score_many(self, lines: Sequence[str | bytes], bos: bool = True, eos: bool = True) -> np.ndarray:
        """log10 probability of each line, as ``kenlm.Model.score`` per line.

        Parameters
        ----------
        lines : sequence of str or bytes
            One sentence per item.
        bos, eos : bool
            Condition the first word on ``<s>``; predict ``</s>``.

        Returns
        -------
        numpy.ndarray
            float64, one entry per line.

        Raises
        ------
        TypeError
            ``lines`` is one string, or holds items that are not str or bytes.
        """
        return self.score_lines(lines, bos, eos).log10_prob

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """log10 probability of one sentence (compiled from the string to the sum: as fast per call
        as the kenlm module's).

        Parameters
        ----------
        sentence : str or bytes
            Words separated by space, TAB, CR, LF or NUL.
        bos, eos : bool
            Condition the first word on ``<s>``; predict ``</s>``.

        Returns
        -------
        float
        """
        return self._queries.score(sentence, bos, eos)

    def full_scores(self, sentence: str, bos: bool = True, eos: bool = True) -> Iterator[tuple]:
        """Scores of each token of one sentence.

        Parameters
        ----------
        sentence : str or bytes
            Words separated by space, TAB, CR, LF or NUL.
        bos, eos : bool
            Condition the first word on ``<s>``; predict ``</s>``.

        Returns
        -------
        iterator of (float, int, bool)
            (log10 p, matched n-gram length, OOV) per word, then for ``</s>`` when ``eos``.
        """
        return self._queries.full_scores(sentence, bos, eos)

    def token_scores(self, lines: Sequence[str | bytes], bos: bool = True, eos: bool = True):
        """Per-token arrays for many lines.

        Parameters
        ----------
        lines : sequence of str or bytes
            One sentence per item.
        bos, eos : bool
            Condition the first word on ``<s>``; predict ``</s>``.

        Returns
        -------
        tuple of numpy.ndarray
            ``(line_starts, log10p, matched, oov)``: int64 of ``len(lines) + 1`` entries, then float32,
            uint8 and bool per token; the tokens of line i are ``line_starts[i]:line_starts[i + 1]``.
        """
        stream = self._stream(_lines(lines))
        (lp_line, tok_line, _, _), (lp, matched, oov) = self._trie.score_stream(stream, bos, eos, True)
        starts = np.zeros(len(tok_line) + 1, dtype=np.int64)
        np.cumsum(tok_line, out=starts[1:])
        return starts, lp, matched, oov

    def perplexity(self, sentence: str) -> float:
        """10^(-score / (words + 1)), as ``kenlm.Model.perplexity`` (words split as the model splits them).

        Parameters
        ----------
        sentence : str or bytes

        Returns
        -------
        float
        """
        return self._queries.perplexity(sentence)

    def evaluate(self, inputs=None, bos: bool = True, eos: bool = True, quiet: bool = True,
                 bad_utf8: str = "error", *, lines=None) -> Evaluation:
        """Corpus totals over files or lines, read as one sentence per line (as KenLM's ``query``).

        Parameters
        ----------
        inputs : path or list of paths, optional
            Files (plain or compressed), directories or ``'-'`` (stdin).
        bos, eos : bool
            Condition the first word on ``<s>``; predict ``</s>``.
        quiet : bool
            No progress bar.
        bad_utf8 : {'error', 'replace'}
            Invalid UTF-8 raises ``CorpusError`` naming the file and line, or becomes U+FFFD.
        lines : iterable of str or bytes, optional
            Lines instead of files (give ``inputs`` or ``lines``, not both).

        Returns
        -------
        Evaluation

        Raises
        ------
        TypeError
            Both or neither of ``inputs`` and ``lines``.
        CorpusError
            A missing input or bad text (the message names the file and line).
        ValueError
            An unknown ``bad_utf8``.
        """
        total = Evaluation(0.0, 0, 0, 0.0, 0)
        for res in self.score_chunks(inputs, bos, eos, quiet, bad_utf8, lines=lines):
            total.add(res)
        return total

    def score_chunks(self, inputs=None, bos: bool = True, eos: bool = True, quiet: bool = True,
                     bad_utf8: str = "error", *, lines=None) -> Iterator[LineScores]:
        """Per-line scores of files (or ``lines=``), chunk after chunk, in input order (chunks scored on
        all cores): the streaming form of ``evaluate``.

        Parameters
        ----------
        inputs, bos, eos, quiet, bad_utf8, lines
            As for ``evaluate``.

        Yields
        ------
        LineScores
            The lines of one chunk.

        Raises
        ------
        TypeError, CorpusError, ValueError
            As ``evaluate``.
        """
        if (inputs is None) == (lines is None):
            raise TypeError("give either inputs (paths of files) or lines= (an iterable of lines)"
                            + (", not both" if inputs is not None else ""))
        if bad_utf8 not in ("error", "replace"):
            raise ValueError(f"bad_utf8 must be 'error' or 'replace', not {bad_utf8!r}")

        def work(chunk):
            stream = self.vocab.tokenize(chunk, symbols="unk", bad_utf8=bad_utf8)
            return self.score_ids(stream, bos, eos)

        if lines is not None:
            chunks = line_chunks(lines)
        else:
            chunks = read_chunks(expand_inputs(inputs), chunk_bytes=1 << 22, quiet=quiet, desc="scoring")
        with ThreadPoolExecutor(threads()) as ex:
            pending = []
            for chunk in chunks:
                pending.append(ex.submit(work, chunk))
                if len(pending) > 2 * threads():
                    yield pending.pop(0).result()
            for fut in pending:
                yield fut.result()

    # -- files -----------------------------------------------------------------------------------
    def save(self, path, quiet: bool = True, layout: str | None = None, quantize=None,
             pointer_bits: int | None = None) -> None:
        """Write the model; the format follows the name: .arpa, .arpa.gz (.bz2, .xz), .glm (GLM) or
        .glmb (binary, both kinds), or with ``layout="compact"`` KenLM's trie binary whatever the name
        (back-off models: MKN, tuned or not, ARPA and KenLM models).  A model read from a binary file is
        verified first (``verify``).

        Parameters
        ----------
        path : str or os.PathLike
            The file; written under a temporary name and renamed into place.
        quiet : bool
            No progress bar.
        layout : {None, "fast", "compact"}
            None or "fast": the format of the name; "compact": KenLM's trie (``build_binary trie``), which
            ``glm.load`` and KenLM's tools read; the name may not end in .arpa, .glm or .glmb
            (docs/formats.md, "The compact layout").
        quantize : int or (int, int), optional
            To a .glmb name: 8 or 16, a GLM's alphas and gammas stored as codes of that many bits into a
            codebook per table (glm.quantize; docs/glm.md, "Quantized files").  Otherwise a back-off
            model's probabilities and backoffs in this many bits (or (probability bits, backoff bits)),
            2 to 25, as ``build_binary -q -b`` does; implies the compact layout.
        pointer_bits : int, optional
            Compress the trie's child pointers as ``build_binary -a pointer_bits`` (0 to 255; 22 is
            KenLM's usual value, 255 as many bits as pay): about 1 byte less per n-gram, slightly slower
            lookups; implies the compact layout.

        Raises
        ------
        ValueError
            An unknown format name, a missing directory, ``path`` being the model's own file, a
            compact layout for a GLM model or under an ARPA/.glm/.glmb name, bad quantization bits.
        ModelFormatError
            The model's binary file is damaged (nothing is written).
        """
        formats.save(self, path, quiet=quiet, layout=layout, quantize=quantize, pointer_bits=pointer_bits)

    def verify(self, threads: int | None = None) -> dict:
        """Check the model in full (what ``glm verify`` does): for a model read from a binary file, the
        checksum of every array and every value of the file (word ids, the structure of the tables,
        probabilities, the hashes); for other models, every value of the arrays (a text file's values
        were checked as it was read).  Costs a read of the whole model (docs/formats.md).

        Parameters
        ----------
        threads : int, optional
            Threads for the checks (default: the cores).

        Returns
        -------
        dict
            ``arrays``, ``bytes``, ``checksums`` (whether checksums were compared: binary files written
            since they exist), ``seconds``, ``problems`` (empty).

        Raises
        ------
        ModelFormatError
            The model is damaged; the message names the arrays and entries.
        """
        return formats.verify(self, threads)


class BackoffModel(Model):
    """An n-gram back-off model, as an ARPA file holds it: MKN models, ARPA files (KenLM's, SRILM's).

    The levels form a suffix trie (``ext/_query.pyx``): level 1 indexed by word id; the children of an
    n-gram g (in level n+1) are the n-grams x g, sorted by x, at ``starts[g] .. starts[g+1]``.

    Attributes
    ----------
    levels : list of dict
        The query arrays of each order (docs/formats.md).
    discounts : list of (float, float, float) or None
        (D1, D2, D3+) per order; None for a model read from ARPA.
    unpruned_counts : list of int or None
        N-grams per order before pruning; None for a model read from ARPA.
    """

    kind = "backoff"

    def __init__(self, vocab: Vocabulary, levels: list[dict], discounts=None, counts=None,
                 meta: dict | None = None, child_index=None):
        super().__init__(vocab, len(levels), meta)
        self.levels = levels
        self.discounts = discounts
        self.unpruned_counts = counts
        self._child_index = child_index

    @property
    def child_index(self) -> np.ndarray:
        """Hash of the children of n-grams with many children (stored in binary files); made on first
        use, so that a model built only to be written as ARPA never needs it."""
        with self._lock:
            if self._child_index is None:
                self._child_index = trie_hash(self.levels)
            return self._child_index

    def _make_scorer(self) -> Trie:
        return Trie(self.levels, self.child_index)

    def _parts(self) -> dict:
        return dict(vocab=self.vocab, levels=self.levels, discounts=self.discounts, counts=self.unpruned_counts,
                    meta=self.meta, child_index=self.child_index)

    @property
    def counts(self) -> list[int]:
        return [len(self.levels[0]["logprob"])] + [len(lv["word"]) for lv in self.levels[1:]]

    def describe(self, sep: str = ": ") -> list[str]:
        if not self.discounts:
            return [f"{n}-grams{sep}{c}" for n, c in enumerate(self.counts, 1)] + [
                f"discounts{sep}not stored (model read from ARPA)"]
        return [f"{n}-grams{sep}{c}{_discounts(d, sep)}" for n, (c, d) in enumerate(zip(self.counts, self.discounts), 1)]

    def info(self) -> dict:
        return dict(super().info(), discounts=[list(d) for d in self.discounts] if self.discounts else None)


class GeneralizedModel(Model):
    """A Generalized Language Model (or MKN computed over the pattern lattice): the same queries as
    ``Model``, answered by recursive interpolation over skip patterns (docs/glm.md).

    Attributes
    ----------
    method : str
        ``'glm'``, ``'glm-abs'``, ``'mkn'`` (tuned), ``'glmtk2014'`` or ``'glmtk2014-mkn'``.
    weights : dict
        {pattern mask: the farthest-word child's weight, or a tuple of every child's weight}; empty:
        uniform weights.
    """

    kind = "generalized"

    def __init__(self, vocab: Vocabulary, tables, meta: dict | None = None, weights: dict | None = None,
                 hash_table=None):
        """Made by ``glm.train`` and ``glm.load``.

        Parameters
        ----------
        hash_table : tuple, optional
            (pattern_hash array, {mask: largest range searched}) of the tables, made when None.
        """
        from ._glm import pattern_hash
        from .generalized import combination
        from .records import searched
        super().__init__(vocab, tables.order, dict(meta or {}, order=tables.order, method=tables.method))
        self.tables = tables
        self.method = tables.method
        # {mask: parent weight, or every child's weight (glm.generalized.combination)}
        self.weights = {int(m): float(w) if np.ndim(w) == 0 else tuple(map(float, w))
                        for m, w in (weights or {}).items()}
        kids = combination(self.order, self.method, self.weights)   # (checks them)
        self.discounts = None
        self._consume = False        # the scorer takes the tables' arrays (_scorer_only)
        if hash_table is None:       # the hash read every table: drop the pages of file-backed ones
            small = searched([1, *kids])
            hash_table = pattern_hash(tables.tables, small), small
            for t in tables.tables.values():
                for a in t.values():
                    release(a)
        self.hash = hash_table

    def _scorer_only(self) -> None:
        """Make the scorer moving the tables' arrays into its node records instead of copying them: one
        copy of the model in memory instead of two, but no tables left to save or to change (the
        weights, the discounts).  For a model that is only scored or traced once made (glm.build's
        model of part of the text, which the parameters are fitted with)."""
        self._consume = self._scorer is None and self.tables.records is None
        self._trie

    def _drop_scorer(self) -> None:
        """Free the scorer, its node records and hash of a model made by ``_scorer_only`` once it is no
        longer scored (glm.tune.lattice, after the trace: the fit reads only the statistics then)."""
        if not self._consume:
            raise AssertionError("only a scorer-only model gives its scorer up")
        self._scorer, self.tables.records, self.hash = None, None, None

    def _make_scorer(self):
        """The scorer, with the node records of the tables (glm.records: made once for the tables, a
        copy of them in memory) and the children hash, read from memory too."""
        from ._glm import Scorer
        from .generalized import combination
        from .records import Records
        children = combination(self.order, self.method, self.weights)
        if not self.tables.terms and not self._consume:
            raise ValueError("a model estimated without its terms (terms=False) is only traced (glm.tune.fit)")
        if self.tables.records is None:
            self.tables.records = Records(self.tables.tables, [1, *children], self._consume, self.tables.terms)
        self.hash = in_memory(self.hash[0]), self.hash[1]
        return Scorer(self.order, self.tables.tables, children, self.tables.records, *self.hash,
                      None if self.tables.compat is None else self.tables.compat.scorer_args(),
                      cap=bool(self.meta.get("quantized")))

    def _parts(self) -> dict:
        from .generalized import Tables
        t = self.tables          # (what a binary file keeps: not the tuning statistics, nor the records)
        return dict(vocab=self.vocab, tables=Tables(t.order, t.method, t.tables, t.discounts, t.sizes,
                                                    compat=t.compat),
                    meta=self.meta, weights=self.weights, hash_table=self.hash)

    @property
    def counts(self) -> list[int]:
        """Number of n-grams of each contiguous pattern (order), as for a back-off model."""
        return [self.tables.sizes.get((1 << n) - 1, 0) for n in range(1, self.order + 1)]

    def __repr__(self) -> str:
        return f"<glm.GeneralizedModel method={self.method} order={self.order} ngrams={self.counts}>"

    def describe(self, sep: str = ": ") -> list[str]:
        """Lines per pattern: n-grams, discounts and weight (what ``glm info`` prints).

        Parameters
        ----------
        sep : str
            Between a line's name and its values.

        Returns
        -------
        list of str
        """
        from .formats.glmtext import format_weight
        from .patterns import name
        gap = "\t" if sep == "\t" else "  "
        t = self.tables
        lines = [f"pattern {name(m)}{sep}{t.sizes[m]}{_discounts(t.discounts.get(m), sep)}"
                 + (f"{gap}weight={format_weight(self.weights[m], lambda x: f'{x:.4g}')}" if m in self.weights
                    else "") for m in sorted(t.sizes)]
        if t.compat is not None:          # the 2014 toolkit's tops of the shorter lengths
            lines += [f"top {name(m)}{sep}(occurrences){_discounts(d, sep)}"
                      for m, d in sorted(t.compat.discounts.items())]
            lines.append(f"normalized{sep}no (the 2014 toolkit's {self.method}; docs/glm.md §4.1)")
        return lines

    def info(self) -> dict:
        from .patterns import name
        return dict(super().info(), method=self.method,
                    weights={name(m): w if np.ndim(w) == 0 else list(w) for m, w in sorted(self.weights.items())},
                    discounts={name(m): list(d) for m, d in sorted(self.tables.discounts.items())},
                    patterns={name(m): size for m, size in sorted(self.tables.sizes.items())})

    def as_backoff(self) -> BackoffModel:
        """The back-off form of an MKN model (tuned or not), which ARPA holds: the same probabilities in
        float32 (glm.backoff).  A ValueError for a GLM, which has none.

        Returns
        -------
        BackoffModel
            The model in back-off form.
        """
        from .backoff import to_backoff
        levels, discounts, meta = to_backoff(self)
        return BackoffModel(self.vocab, levels, discounts=discounts, meta=meta)

    def with_weights(self, weights: dict) -> "GeneralizedModel":
        """The same tables combined with other child weights.

        Parameters
        ----------
        weights : dict
            {pattern mask: the farthest-word child's weight (the other children share the rest
            equally), or a sequence of every child's weight, farthest-word child first}, as
            ``glm.generalized.combination``.

        Returns
        -------
        GeneralizedModel

        Raises
        ------
        ValueError
            A weight out of [0, 1], weights that do not sum to 1, or a mask that is no pattern with
            children.
        """
        return GeneralizedModel(self.vocab, self.tables, self.meta, weights, self.hash)


class KenLMModel(Model):
    """A KenLM binary (``build_binary``'s probing or trie, quantized or not), scored from the mapped
    file by KenLM's rules (``glm.formats.kenlm``, ``ext/_kenlm.pyx``).  ``save`` writes its n-grams
    and values as ARPA or .glmb (``to_model``)."""

    kind = "kenlm"

    def __init__(self, path: str, vocab: Vocabulary, scorer, counts: list[int], meta: dict, layout: dict,
                 perm: np.ndarray):
        super().__init__(vocab, scorer.order, meta)
        self.path = path
        self.layout = layout
        self.perm = perm
        self.discounts = None
        self._scorer = scorer
        self._counts = list(counts)

    @property
    def counts(self) -> list[int]:
        """Number of n-grams of each order, as the binary's header says."""
        return list(self._counts)

    def __repr__(self) -> str:
        return (f"<glm.KenLMModel {self.meta['kenlm_type']} order={self.order} ngrams={self.counts} "
                f"path={self.path!r}>")

    def describe(self, sep: str = ": ") -> list[str]:
        return [f"{n}-grams{sep}{c}" for n, c in enumerate(self.counts, 1)] + [
            f"kenlm binary{sep}{self.meta['kenlm_type']}"]

    def to_model(self, quiet: bool = True) -> BackoffModel:
        """A BackoffModel with this binary's n-grams and values (dequantized when quantized).

        Parameters
        ----------
        quiet : bool
            No progress bar.

        Returns
        -------
        BackoffModel
        """
        from .formats.kenlm import dump
        return BackoffModel(**dump(self, quiet).args)

    def save(self, path, quiet: bool = True, layout: str | None = None, quantize=None,
             pointer_bits: int | None = None) -> None:
        """Write the n-grams as ARPA (.arpa, .arpa.gz, ...), glm's binary (.glmb) or, with
        ``layout="compact"`` or ``quantize``, a KenLM trie again (as ``Model.save``).

        Parameters
        ----------
        path : str or os.PathLike
            The file; the format follows the name unless the layout is compact.
        quiet : bool
            No progress bar.
        layout : {None, "fast", "compact"}
            As ``Model.save``.
        quantize : int or (int, int), optional
            As ``Model.save``.
        pointer_bits : int, optional
            As ``Model.save``.

        Raises
        ------
        ValueError
            An unknown format name, a missing directory, ``path`` being this binary, bad options.
        """
        formats.check_outputs({"output": os.fspath(path)}, [self.path])
        self.to_model(quiet).save(path, quiet=quiet, layout=layout, quantize=quantize, pointer_bits=pointer_bits)


KINDS = {cls.kind: cls for cls in (BackoffModel, GeneralizedModel, KenLMModel)}


def load(path, quiet: bool = True) -> Model:
    """Read a model file: ARPA or .glm text (plain or compressed), glm's binary (memory-mapped) or a
    KenLM binary, recognized by its first bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The model file.
    quiet : bool
        No progress bar while a text model is read.

    Returns
    -------
    Model
        A ``BackoffModel``, ``GeneralizedModel`` or ``KenLMModel``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ModelFormatError
        The file is not a model glm reads, or is damaged (the message names the file and the line,
        section or array).
    """
    source = _Source.of(path)
    parts = formats.read(path, quiet=quiet)
    try:
        model = KINDS[parts.kind](**parts.args)
    except formats.ModelFormatError:
        raise
    except (ValueError, KeyError, TypeError) as exc:     # (the readers check what the models need)
        raise formats.ModelFormatError(f"{os.fspath(path)}: {exc}") from None
    model.source = os.fspath(path)
    model._source = source
    return model


@dataclass(frozen=True)
class _Source:
    """The file a model was loaded from, as it was then."""
    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path) -> "_Source":
        path = os.path.abspath(os.fspath(path))
        st = os.stat(path)
        return cls(path, st.st_size, st.st_mtime_ns, st.st_ino)


def _reopen(source: _Source) -> Model:
    """Unpickling a model loaded from a file: the file again, if it is the same."""
    try:
        now = _Source.of(source.path)
    except FileNotFoundError:
        raise formats.ModelFormatError(f"{source.path}: cannot unpickle the model: the file is gone") from None
    if now != source:
        raise formats.ModelFormatError(
            f"{source.path}: cannot unpickle the model: the file changed since it was pickled (size, "
            "modification time or inode differ); load it again with glm.load")
    return load(source.path)


def _rebuild(kind: str, parts: dict) -> Model:
    return KINDS[kind](**parts)


def _discounts(d, sep: str) -> str:
    gap = "\t" if sep == "\t" else "  "
    return f"{gap}D1={d[0]:.6g} D2={d[1]:.6g} D3+={d[2]:.6g}" if d else ""


def _lines(lines) -> list:
    """lines as a list; a TypeError for a single string (score() scores one sentence)."""
    if isinstance(lines, (str, bytes)):
        raise TypeError("expected a sequence of lines, not one string; use score() for one sentence")
    return list(lines)


def _split(lines: list, parts: int) -> list[list]:
    """Lines cut into up to `parts` consecutive pieces of about equal size (small batches stay whole)."""
    if parts <= 1 or len(lines) < 2048:
        return [lines]
    step = math.ceil(len(lines) / parts)
    return [lines[i:i + step] for i in range(0, len(lines), step)]
