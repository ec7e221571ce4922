"""Shared helpers of the glm test suite (no glm internals used here).

* ``corpus_path`` / ``read_corpus_lines``: the shared text corpora, found relative to the repository
  (``<repo>/../shared/corpora``); tests skip when a corpus is missing.
* ``random_corpus``: seeded Zipf-like random sentences with some Markov structure, so that higher
  orders repeat and the discounts are defined.
* ``parse_arpa``: an independent, pure-Python ARPA reader (plain or compressed, detected by bytes).
* ``assert_ngrams_float32``: n-gram sets equal, values within a few float32 steps.
* ``assert_matches_reference``: n-gram set and every log10 probability / backoff against
  ``reference_mkn``.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import math
import os
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

TOL = 1e-5


# ----------------------------------------------------------------------------------------- corpora
def corpus_path(rel: str) -> Path:
    """Path of a shared corpus file; skips the calling test when it is not there."""
    p = CORPORA / rel
    if not p.exists():
        pytest.skip(f"corpus {rel} not available (looked for {p})")
    return p


def read_corpus_lines(rel: str, limit: int | None = None) -> list[str]:
    """The first ``limit`` lines (all when None) of a gzip'd corpus, without their LF."""
    out = []
    with gzip.open(corpus_path(rel), "rt", encoding="utf-8", newline="\n") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            out.append(line.rstrip("\n"))
    return out


def split_line(line: str) -> list[str]:
    """lmplz's tokenization: space, TAB, CR and NUL separate tokens."""
    for ch in "\t\r\0":
        line = line.replace(ch, " ")
    return [t for t in line.split(" ") if t]


def random_corpus(seed: int, vocab_size: int | None = None, n_sentences: int | None = None,
                  empty_prob: float = 0.05, max_len: int = 12, unk_prob: float = 0.0,
                  prefix: str = "w") -> list[list[str]]:
    """Seeded random sentences: vocab 5-40 words, Zipf-like, 30-400 sentences, some empty ones."""
    rng = random.Random(seed)
    vocab_size = vocab_size or rng.randint(5, 40)
    n_sentences = n_sentences or rng.randint(30, 400)
    words = [f"{prefix}{i}" for i in range(vocab_size)]
    weights = [1.0 / (i + 1) for i in range(vocab_size)]
    successor = {w: rng.choice(words) for w in words}
    sentences = []
    for _ in range(n_sentences):
        if rng.random() < empty_prob:
            sentences.append([])
            continue
        length = rng.randint(1, max_len)
        sent = []
        for _ in range(length):
            if sent and sent[-1] in successor and rng.random() < 0.5:
                sent.append(successor[sent[-1]])
            else:
                sent.append(rng.choices(words, weights)[0])
            if unk_prob and rng.random() < unk_prob:
                sent[-1] = "<unk>"
        sentences.append(sent)
    return sentences


def to_lines(sentences) -> list[str]:
    return [" ".join(s) for s in sentences]


def write_lines(path, lines) -> Path:
    path = Path(path)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -------------------------------------------------------------------------------------------- ARPA
@dataclass
class Arpa:
    counts: list            # from the \data\ header
    ngrams: list            # ngrams[n-1][tuple of words] = (log10 prob, log10 backoff or None)

    @property
    def order(self) -> int:
        return len(self.counts)


def open_text(path):
    """Text stream of a file, decompressed according to its first bytes."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    if head.startswith(b"BZh"):
        return bz2.open(path, "rt", encoding="utf-8", newline="\n")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rt", encoding="utf-8", newline="\n")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import io
        import zstandard
        data = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True,
                                                           closefd=True).read()
        return io.StringIO(data.decode("utf-8"), newline="\n")
    return open(path, "rt", encoding="utf-8", newline="\n")


def parse_arpa(path) -> Arpa:
    """Strict, slow reader for the ARPA files of the tests (fields split on space and TAB)."""
    with open_text(path) as f:
        return parse_arpa_text(f.read())


def parse_arpa_text(text: str) -> Arpa:
    """parse_arpa of the text of a file."""
    lines = text.split("\n")
    i = 0
    while lines[i].strip() != "\\data\\":
        i += 1
    i += 1
    counts = []
    while lines[i].strip():
        key, value = lines[i].split("=")
        assert key.split() == ["ngram", str(len(counts) + 1)], lines[i]
        counts.append(int(value))
        i += 1
    order = len(counts)
    ngrams = []
    for n in range(1, order + 1):
        while not lines[i].strip():
            i += 1
        assert lines[i].strip() == f"\\{n}-grams:", lines[i]
        i += 1
        entries = {}
        while lines[i].strip() and not lines[i].startswith("\\"):
            fields = lines[i].replace("\t", " ").split()
            assert len(fields) in (n + 1, n + 2), lines[i]
            gram = tuple(fields[1:n + 1])
            assert gram not in entries, f"{gram} listed twice"
            bo = float(fields[n + 1]) if len(fields) == n + 2 else None
            entries[gram] = (float(fields[0]), bo)
            i += 1
        ngrams.append(entries)
    while not lines[i].strip():
        i += 1
    assert lines[i].strip() == "\\end\\", lines[i]
    return Arpa(counts, ngrams)


# float32 precision: a log10 value stored as float32 is within half a float32 step (ulp) of the
# exact one, and a probability computed in float32 arithmetic (as lmplz does) carries a relative error
# of a few float32 epsilons, which is eps / ln 10 in log10.  FLOAT32_UNIT(v) is the sum of both.
EPS32 = 2.0 ** -23


def float32_unit(v: float) -> float:
    """One float32 step of v plus one float32 epsilon of relative error in 10**v, in log10."""
    import numpy as np
    return float(np.spacing(np.float32(abs(v)))) + EPS32 / math.log(10.0)


def float32_sum_tol(total: float, terms: int) -> float:
    """How far a sum of ``terms`` log10 values (all <= 0) accumulated in float32, as KenLM's
    ``Model.score`` does, can be from the same sum in float64: each addition rounds by at most half a
    float32 step of the running total (never larger than the total); allowed here: a whole step per
    term, plus one float32_unit of the total (measured: at most 0.4 of this bound)."""
    import numpy as np
    return terms * float(np.spacing(np.float32(abs(total)))) + float32_unit(total)


def assert_ngrams_float32(got: list, want: list, units: float, what: str = "") -> None:
    """got / want: per order dicts gram -> (lp, bo); the same n-grams, and every log10 value within
    ``units`` * float32_unit(wanted value) (a missing backoff counts as 0)."""
    import numpy as np
    assert len(got) == len(want), f"{what}: order {len(got)} != {len(want)}"
    for n, (g, w) in enumerate(zip(got, want), 1):
        if set(g) != set(w):
            extra = sorted(set(g) - set(w))[:5]
            missing = sorted(set(w) - set(g))[:5]
            raise AssertionError(f"{what}: {n}-grams differ: {len(g)} vs {len(w)}; "
                                 f"unexpected {extra}, missing {missing}")
        grams = list(w)
        x = np.array([(lp, bo or 0.0) for lp, bo in (g[k] for k in grams)], dtype=np.float64).reshape(-1, 2)
        y = np.array([(lp, bo or 0.0) for lp, bo in (w[k] for k in grams)], dtype=np.float64).reshape(-1, 2)
        unit = np.spacing(np.abs(y).astype(np.float32)).astype(np.float64) + EPS32 / math.log(10.0)
        err = np.abs(x - y) / unit
        bad = np.argwhere(~(err <= units))
        if len(bad):
            eg = [(grams[i], ("log10 p", "backoff")[j], x[i, j], y[i, j], f"{err[i, j]:.2f} units")
                  for i, j in bad[:5]]
            raise AssertionError(f"{what}: {len(bad)} {n}-gram values differ, e.g. {eg}")


def assert_ngrams_close(got: list, want: list, tol: float = TOL, what: str = "") -> None:
    """got / want: per order dicts gram -> (lp, bo); a missing backoff counts as 0."""
    assert len(got) == len(want), f"{what}: order {len(got)} != {len(want)}"
    for n, (g, w) in enumerate(zip(got, want), 1):
        if set(g) != set(w):
            extra = sorted(set(g) - set(w))[:5]
            missing = sorted(set(w) - set(g))[:5]
            raise AssertionError(f"{what}: {n}-grams differ: {len(g)} vs {len(w)}; "
                                 f"unexpected {extra}, missing {missing}")
        bad = []
        for gram, (lp, bo) in w.items():
            glp, gbo = g[gram]
            if not math.isclose(glp, lp, rel_tol=0, abs_tol=tol):
                bad.append((gram, "prob", glp, lp))
            if not math.isclose(gbo or 0.0, bo or 0.0, rel_tol=0, abs_tol=tol):
                bad.append((gram, "backoff", gbo, bo))
        assert not bad, f"{what}: {len(bad)} {n}-gram values differ, e.g. {bad[:5]}"


def assert_matches_reference(arpa: Arpa, ref, tol: float = TOL, what: str = "") -> None:
    """A parsed ARPA file has exactly the reference model's entries, values within tol."""
    assert arpa.counts == list(ref.arpa_header_counts), \
        f"{what}: header counts {arpa.counts} != {ref.arpa_header_counts}"
    for n, entries in enumerate(arpa.ngrams, 1):
        has_bo = {bo is not None for _, bo in entries.values()}
        if entries:
            assert has_bo == ({True} if n < arpa.order else {False}), \
                f"{what}: {n}-grams should {'' if n < arpa.order else 'not '}have backoffs"
    assert_ngrams_close(arpa.ngrams, ref.ngrams, tol, what)


def context_sets(order: int, sentences, rng: random.Random, vocab: list[str], per_length: int = 6,
                 max_seen: int = 40) -> list[tuple]:
    """Contexts to query: seen ones (from the text, with and without <s>), unseen ones, with OOV
    words, of every length from 0 up to order - 1 and longer."""
    ctxs = {(), ("<s>",), ("</s>",), ("<unk>",), ("NOT-A-WORD",), ("<s>", "NOT-A-WORD")}
    padded = [["<s>"] + list(s) for s in sentences if s]
    seen = set()
    for sent in padded:
        for i in range(1, len(sent) + 1):
            for k in range(1, order + 1):
                if i - k >= 0:
                    seen.add(tuple(sent[i - k:i]))
    seen = sorted(seen)
    rng.shuffle(seen)
    ctxs.update(seen[:max_seen])
    words = [w for w in vocab if w != "<s>"]
    for length in range(1, order + 2):
        for _ in range(per_length):
            ctx = [rng.choice(words) for _ in range(length)]
            if rng.random() < 0.3:
                ctx[rng.randrange(length)] = "NOT-A-WORD"
            if rng.random() < 0.3:
                ctx[0] = "<s>"
            ctxs.add(tuple(ctx))
    # long real contexts (longer than order - 1) from the text
    for sent in padded[:5]:
        ctxs.add(tuple(sent))
    return sorted(ctxs)


@contextmanager
def fifo_feeding(path, data: bytes, timeout: float = 60.0):
    """A named pipe at ``path`` (made if missing) that a thread fills with ``data`` once a reader opens
    it, while the block runs.  After ``timeout`` seconds, a reader still blocked opening it (a second
    reading of a pipe) is let through to an empty stream, so that a test fails instead of hanging."""
    if not os.path.exists(path):
        os.mkfifo(path)
    done, start = threading.Event(), time.monotonic()

    def write():
        try:
            with open(path, "wb") as f:
                f.write(data)
        except BrokenPipeError:        # (the reader stopped early: a refused binary model)
            pass

    def watchdog():
        while not done.wait(0.5):
            if time.monotonic() - start > timeout:
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:        # (no reader waiting)
                    pass

    threads = [threading.Thread(target=f, daemon=True) for f in (write, watchdog)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        done.set()
        if threads[0].is_alive():      # (nobody read it: let the writer go)
            try:
                with open(path, "rb", buffering=0) as f:
                    f.read()
            except OSError:
                pass
        threads[0].join(timeout)
