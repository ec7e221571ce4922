"""Reading training text: compression detected by bytes, directories, several files, stdin, tokenization,
empty lines, literal boundary symbols, invalid UTF-8, missing files, lines from Python, and discounts
that cannot be computed on tiny data."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import sys

import numpy as np
import pytest

import glm
from helpers import (assert_matches_reference, fifo_feeding, parse_arpa, random_corpus, read_corpus_lines,
                     split_line, to_lines, write_lines)
from reference_mkn import DiscountError as RefDiscountError
from reference_mkn import build_mkn, read_text

ORDER = 3


@pytest.fixture(scope="module")
def lines():
    return to_lines(random_corpus(301, vocab_size=25, n_sentences=200))


def text_of(lines) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def arpa_bytes(model, tmp_path, name="model.arpa") -> bytes:
    path = tmp_path / name
    model.save(path)
    data = path.read_bytes()
    path.unlink()
    return data


def train(inputs=None, order=ORDER, **kw):
    kw.setdefault("discount_fallback", True)
    return glm.train(inputs, order, **kw)


@pytest.fixture(scope="module")
def expected(lines, tmp_path_factory):
    """The ARPA text of the model of `lines`, trained from a plain file."""
    d = tmp_path_factory.mktemp("expected")
    path = d / "plain.txt"
    path.write_bytes(text_of(lines))
    return arpa_bytes(train(str(path)), d)


def zstd_compress(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstd_compress,
}


# ---------------------------------------------------------------------------------- compression
@pytest.mark.parametrize("name", ["corpus.txt", "corpus", "corpus.bz2", "corpus.gz.txt"])
@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_compression_detected_by_bytes(tmp_path, lines, expected, kind, name):
    path = tmp_path / name
    path.write_bytes(COMPRESSORS[kind](text_of(lines)))
    assert arpa_bytes(train(str(path)), tmp_path) == expected


def test_plain_file_with_compressed_suffix(tmp_path, lines, expected):
    for name in ("corpus.gz", "corpus.xz", "corpus.zst", "corpus.bz2"):
        path = tmp_path / name
        path.write_bytes(text_of(lines))
        assert arpa_bytes(train(str(path)), tmp_path) == expected, name


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_concatenated_compressed_streams(tmp_path, lines, expected, kind):
    """gzip members / bzip2 streams / xz streams / zstd frames written one after the other."""
    half = len(lines) // 2
    path = tmp_path / "multi"
    path.write_bytes(COMPRESSORS[kind](text_of(lines[:half])) + COMPRESSORS[kind](text_of(lines[half:])))
    assert arpa_bytes(train(str(path)), tmp_path) == expected


def test_path_objects(tmp_path, lines, expected):
    path = tmp_path / "corpus.txt.gz"
    path.write_bytes(gzip.compress(text_of(lines)))
    assert arpa_bytes(train(path), tmp_path) == expected
    assert arpa_bytes(train([path]), tmp_path) == expected


# ------------------------------------------------------------------------- directories, files
def test_directory_in_sorted_order(tmp_path, lines, expected):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    parts = [lines[:50], lines[50:120], lines[120:170], lines[170:]]
    # written in an order different from the sorted one; mixed compression
    (d / "c.txt").write_bytes(lzma.compress(text_of(parts[3])))
    (d / "a.txt").write_bytes(text_of(parts[0]))
    (d / "b" ).write_bytes(gzip.compress(text_of(parts[1])))
    (d / "b2.txt").write_bytes(bz2.compress(text_of(parts[2])))
    model = train(str(d))
    assert arpa_bytes(model, tmp_path) == expected
    files = [str(d / n) for n in ("a.txt", "b", "b2.txt", "c.txt")]
    assert arpa_bytes(train(files), tmp_path) == expected


def test_directory_vocabulary_follows_file_order(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "b.txt").write_text("beta gamma\n")
    (d / "a.txt").write_text("alpha beta\n")
    (d / "c.txt").write_text("delta alpha\n")
    model = train(str(d), 2)
    assert list(model.vocab) == ["<unk>", "<s>", "</s>", "alpha", "beta", "gamma", "delta"]


def test_nested_directories(tmp_path, lines, expected):
    d = tmp_path / "corpus"
    (d / "x" / "y").mkdir(parents=True)
    # sorted by path: x/y/1.txt before x/z.txt
    write_lines(d / "x" / "z.txt", lines[80:])
    write_lines(d / "x" / "y" / "1.txt", lines[:80])
    assert arpa_bytes(train(str(d)), tmp_path) == expected


def test_several_files(tmp_path, lines, expected):
    paths = []
    for i, lo in enumerate(range(0, len(lines), 37)):
        paths.append(str(write_lines(tmp_path / f"part{i:02d}.txt", lines[lo:lo + 37])))
    assert arpa_bytes(train(paths), tmp_path) == expected
    # the order of the list is the order of the text: reversed, the vocabulary ids differ
    rev = train(list(reversed(paths)))
    assert list(rev.vocab) != list(train(paths).vocab)
    assert sorted(rev.vocab) == sorted(train(paths).vocab)


def test_file_without_final_newline_then_next_file(tmp_path):
    (tmp_path / "1.txt").write_bytes(b"a b\nc d")          # last line without LF
    (tmp_path / "2.txt").write_bytes(b"e f\n")
    (tmp_path / "all.txt").write_bytes(b"a b\nc d\ne f\n")
    joined = train([str(tmp_path / "1.txt"), str(tmp_path / "2.txt")], 2)
    whole = train(str(tmp_path / "all.txt"), 2)
    assert arpa_bytes(joined, tmp_path) == arpa_bytes(whole, tmp_path)
    assert list(joined.vocab) == ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e", "f"]


# ----------------------------------------------------------------------------------------- stdin
class FakeStdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


@pytest.mark.parametrize("compress", [None, "gzip", "xz"])
def test_stdin(monkeypatch, tmp_path, lines, expected, compress):
    data = text_of(lines)
    if compress:
        data = COMPRESSORS[compress](data)
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    assert arpa_bytes(train("-"), tmp_path) == expected
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    assert arpa_bytes(train(["-"]), tmp_path) == expected


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("compress", [None, "gzip"])
def test_named_pipe(tmp_path, lines, expected, compress):
    """A path that is a pipe (a FIFO, /dev/stdin on a pipe, bash's <(...)) is read as a stream: training
    on it and scoring it give what the file gives (its position cannot be asked for the progress bar)."""
    data = text_of(lines)
    if compress:
        data = COMPRESSORS[compress](data)
    fifo = tmp_path / "pipe"
    with fifo_feeding(fifo, data):
        assert arpa_bytes(train(str(fifo)), tmp_path) == expected
    model = train(lines=lines)
    with fifo_feeding(fifo, data):
        assert model.evaluate([str(fifo)]) == model.evaluate(lines=lines)


def test_stdin_error_names_stdin_and_line(monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"a b\nc d\ne <s> f\n"))
    with pytest.raises(glm.CorpusError, match=r"-:3\b"):
        train("-")


# ---------------------------------------------------------------------------------- tokenization
def test_whitespace_splitting(tmp_path):
    text = ("a\tb\rc  d \t\r\n"
            "e\u00a0f g\u2003h i\x0bj k\x0cl m\u3000n\n"
            "\t a \n").encode("utf-8")
    path = tmp_path / "ws.txt"
    path.write_bytes(text)
    model = train(str(path), 2)
    words = list(model.vocab)[3:]
    assert words == ["a", "b", "c", "d", "e\u00a0f", "g\u2003h", "i\x0bj", "k\x0cl", "m\u3000n"]
    assert "e\u00a0f" in model.vocab and "e" not in model.vocab and "f" not in model.vocab
    # scoring splits the same way: the NBSP word is known, its halves are OOVs
    assert [oov for _, _, oov in model.full_scores("e\u00a0f")] == [False, False]
    assert [oov for _, _, oov in model.full_scores("e f")] == [True, True, False]
    assert model.score("a\tb\rc") == pytest.approx(model.score("a b c"), abs=1e-9)
    # perplexity counts the tokens the model scores (words + </s>)
    for sentence in ("e\u00a0f", "a e\u00a0f g\u2003h b", "a\tb\rc"):
        tokens = len(list(model.full_scores(sentence)))
        assert model.perplexity(sentence) == pytest.approx(10 ** (-model.score(sentence) / tokens)), sentence


def test_crlf_file_equals_lf_file(tmp_path, lines, expected):
    path = tmp_path / "crlf.txt"
    path.write_bytes(text_of(lines).replace(b"\n", b"\r\n"))
    assert arpa_bytes(train(str(path)), tmp_path) == expected


def test_empty_lines_are_empty_sentences(tmp_path):
    text = "a b\n\n   \n\t\na\n"
    path = tmp_path / "e.txt"
    path.write_text(text)
    model = train(str(path), 2)
    model.save(tmp_path / "m.arpa")
    from helpers import parse_arpa
    arpa = parse_arpa(tmp_path / "m.arpa")
    assert ("<s>", "</s>") in arpa.ngrams[1]
    ref = build_mkn(read_text(text), 2, discount_fallback=(0.5, 1.0, 1.5))
    assert read_text(text)[1:4] == [[], [], []]
    assert set(arpa.ngrams[1]) == set(ref.ngrams[1])
    for g, (lp, bo) in ref.ngrams[1].items():
        assert arpa.ngrams[1][g][0] == pytest.approx(lp, abs=1e-5)
    # an extra empty line changes the model; no empty line is added at the end of the file
    more = tmp_path / "more.txt"
    more.write_text(text + "\n")
    assert arpa_bytes(train(str(more), 2), tmp_path) != arpa_bytes(model, tmp_path)


def test_final_line_without_newline(tmp_path, lines, expected):
    path = tmp_path / "nolf.txt"
    path.write_bytes(text_of(lines)[:-1])
    assert arpa_bytes(train(str(path)), tmp_path) == expected


# --------------------------------------------------------------------------- boundary symbols
@pytest.mark.parametrize("symbol", ["<s>", "</s>"])
def test_literal_boundary_symbol(tmp_path, lines, symbol):
    bad = list(lines)
    bad[41] = bad[41] + " " + symbol + " w1"
    path = write_lines(tmp_path / "sym.txt", bad)
    with pytest.raises(glm.CorpusError) as info:
        train(str(path))
    assert f"{path}:42" in str(info.value)
    assert not re.search(re.escape(str(path)) + r":4[013]\b", str(info.value))
    # in a compressed file, the second of two files, and lines from Python
    gz = tmp_path / "sym.gz"
    gz.write_bytes(gzip.compress(text_of(bad)))
    first = write_lines(tmp_path / "first.txt", lines[:10])
    with pytest.raises(glm.CorpusError, match=re.escape(f"{gz}:42")):
        train([str(first), str(gz)])
    with pytest.raises(glm.CorpusError, match=r":42\b"):
        train(lines=bad)


@pytest.mark.parametrize("symbol", ["<s>", "</s>"])
def test_skip_symbols(tmp_path, lines, expected, symbol):
    bad = list(lines)
    for i in (0, 17, 99):
        bad[i] = f"{symbol} {bad[i]} {symbol}"
    path = write_lines(tmp_path / "sym.txt", bad)
    assert arpa_bytes(train(str(path), skip_symbols=True), tmp_path) == expected


def test_boundary_symbol_after_first_chunk(tmp_path):
    """Line numbers stay right in files read in several chunks (> 8 MB)."""
    line = " ".join(f"w{i % 50}" for i in range(40)) + "\n"
    n_before = (9 << 20) // len(line) + 10
    path = tmp_path / "big.txt"
    with open(path, "w") as f:
        f.write(line * n_before)
        f.write("x <s> y\n")
        f.write(line * 3)
    with pytest.raises(glm.CorpusError, match=re.escape(f"{path}:{n_before + 1}:")):
        train(str(path), 2)
    gz = tmp_path / "big.gz"
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    with pytest.raises(glm.CorpusError, match=re.escape(f"{gz}:{n_before + 1}:")):
        train(str(gz), 2)


# ----------------------------------------------------------------------------------- bad UTF-8
@pytest.mark.parametrize("bad", [b"\xff", b"caf\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                 b"\xe2\x82"])
def test_invalid_utf8(tmp_path, lines, bad):
    data = text_of(lines[:30]) + b"ok " + bad + b" ok\n" + text_of(lines[30:])
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(glm.CorpusError, match=re.escape(f"{path}:31") + r"\b"):
        train(str(path))
    model = train(str(path), bad_utf8="replace")
    replaced = bad.decode("utf-8", errors="replace")
    assert "\ufffd" in replaced
    assert replaced in model.vocab
    assert "ok" in model.vocab
    # the other lines are read as usual
    good = train(lines=text_of(lines).decode().splitlines())
    assert set(good.vocab) <= set(model.vocab)


def test_valid_multibyte_utf8(tmp_path):
    words = ["café", "中文", "😀", "Ωmega", "\u00e9\u0301"]
    path = tmp_path / "u.txt"
    path.write_text(" ".join(words) + "\n" + " ".join(reversed(words)) + "\n", encoding="utf-8")
    model = train(str(path), 2)
    assert list(model.vocab)[3:] == words
    assert all(not oov for _, _, oov in model.full_scores(" ".join(words)))


def test_invalid_utf8_in_second_chunk(tmp_path):
    line = " ".join(f"v{i % 30}" for i in range(40)) + "\n"
    n_before = (9 << 20) // len(line) + 3
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        f.write(line.encode() * n_before)
        f.write(b"bad \xff\n")
        f.write(line.encode())
    with pytest.raises(glm.CorpusError, match=re.escape(f"{path}:{n_before + 1}:")):
        train(str(path), 2)


# ------------------------------------------------------------------------------- missing input
def test_missing_file(tmp_path):
    with pytest.raises(glm.CorpusError, match="nope.txt"):
        train(str(tmp_path / "nope.txt"))
    with pytest.raises(glm.CorpusError):
        train(tmp_path / "nope.txt")


def test_missing_file_in_a_list(tmp_path, lines):
    """A list of paths with one missing fails naming it, before reading any (inputs are always paths)."""
    good = write_lines(tmp_path / "good.txt", lines)
    with pytest.raises(glm.CorpusError, match="nope.txt"):
        train([good, tmp_path / "nope.txt"])
    with pytest.raises(glm.CorpusError, match="nope.txt"):
        train([good, str(tmp_path / "nope.txt")])
    with pytest.raises(glm.CorpusError, match="nope.txt"):
        train([tmp_path / "nope.txt"])


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(glm.CorpusError):
        train(str(tmp_path / "empty"))


# ----------------------------------------------------------------------------- lines from Python
def test_list_of_lines_equals_file(tmp_path, lines, expected):
    assert arpa_bytes(train(lines=lines), tmp_path) == expected
    assert arpa_bytes(train(lines=tuple(lines)), tmp_path) == expected
    assert arpa_bytes(train(lines=(line for line in lines)), tmp_path) == expected          # generator
    assert arpa_bytes(train(lines=[line + "\n" for line in lines]), tmp_path) == expected  # with LF
    assert arpa_bytes(train(lines=[line.encode() for line in lines]), tmp_path) == expected
    assert arpa_bytes(train(lines=iter(io.StringIO(text_of(lines).decode()))), tmp_path) == expected


@pytest.mark.parametrize("odd", [".", "..", "-", "/", "<existing>"])
def test_list_of_lines_holding_path_like_lines(tmp_path, monkeypatch, lines, odd):
    """Sentences that happen to name an existing path ('.' is a sentence of Brown) are text."""
    monkeypatch.chdir(tmp_path.parent)
    text = list(lines)
    text[5] = tmp_path.name if odd == "<existing>" else odd      # "<existing>": a name in the cwd
    path = write_lines(tmp_path / "text.txt", text)
    monkeypatch.setattr(sys, "stdin", FakeStdin(b""))
    from_list = train(lines=text)
    assert arpa_bytes(from_list, tmp_path) == arpa_bytes(train(str(path)), tmp_path)


def test_list_of_lines_real_text(tmp_path):
    lines = read_corpus_lines("brown/brown.txt.gz", 1600)      # line 1497 is "."
    path = write_lines(tmp_path / "brown.txt", lines)
    a = glm.train(lines=lines, order=4)
    b = glm.train(str(path), 4)
    assert arpa_bytes(a, tmp_path) == arpa_bytes(b, tmp_path)


def test_inputs_are_paths_and_lines_are_text(tmp_path, lines):
    """Positional inputs are always paths: text given there is a missing file, named, and nothing is
    read; other types are TypeErrors saying what is expected."""
    good = write_lines(tmp_path / "good.txt", lines)
    with pytest.raises(glm.CorpusError, match="typo.txt.gz: no such file"):
        train([str(good), str(tmp_path / "typo.txt.gz")])
    with pytest.raises(glm.CorpusError, match="the cat sat: no such file"):
        train(["the cat sat", "a dog ran"])
    for bad in (b"/path", [1, 2], 3.5, {"a": 1}):
        with pytest.raises(TypeError, match="lines="):
            train(bad)
    with pytest.raises(TypeError, match="not one str"):
        train(lines="the cat sat")
    with pytest.raises(TypeError, match="line 2 is a int"):
        train(lines=["a b", 7])
    with pytest.raises(TypeError, match="not both"):
        train(str(good), lines=lines)
    with pytest.raises(TypeError, match="give either"):
        glm.train(order=3)
    with pytest.raises(ValueError, match="bad_utf8"):
        train(str(good), bad_utf8="x")


# ------------------------------------------------------------------------------------ discounts
def brown_sentences(n):
    return [split_line(line) for line in read_corpus_lines("brown/brown.txt.gz", n)]


@pytest.mark.parametrize("n_lines,order", [(20, 4), (50, 4), (50, 5)])
def test_discount_error_names_the_order(tmp_path, n_lines, order):
    sentences = brown_sentences(n_lines)
    with pytest.raises(RefDiscountError) as ref_info:
        build_mkn(sentences, order)
    bad_order = ref_info.value.order
    with pytest.raises(glm.DiscountError) as info:
        glm.train(lines=to_lines(sentences), order=order)
    msg = str(info.value)
    assert re.search(rf"\border {bad_order}\b", msg), msg
    assert not re.search(rf"\border (?!{bad_order}\b)\d+\b", msg), msg
    # with the fallback, the model is built; only the failing orders use it
    model = glm.train(lines=to_lines(sentences), order=order, discount_fallback=True)
    ref = build_mkn(sentences, order, discount_fallback=(0.5, 1.0, 1.5))
    for n, used in enumerate(ref.discount_fallback_used, 1):
        if used:
            assert tuple(model.discounts[n - 1]) == (0.5, 1.0, 1.5)
        else:
            assert tuple(model.discounts[n - 1]) == pytest.approx(ref.discounts[n - 1], rel=1e-5)
    assert list(model.counts) == list(ref.arpa_header_counts)


def test_discount_error_on_tiny_text(tmp_path):
    """Two sentences: no discounts of order 1 (the error names it and the way out); with the fallback,
    lmplz's default discounts at both orders and the reference's model, value for value."""
    with pytest.raises(glm.DiscountError, match=r"\border 1\b.*--discount-fallback"):
        glm.train(lines=["a b c", "a b"], order=2)
    with pytest.raises(RefDiscountError):
        build_mkn([["a", "b", "c"], ["a", "b"]], 2)
    assert isinstance(glm.DiscountError("x"), ValueError)
    model = glm.train(lines=["a b c", "a b"], order=2, discount_fallback=True)
    ref = build_mkn([["a", "b", "c"], ["a", "b"]], 2, discount_fallback=(0.5, 1.0, 1.5))
    assert ref.discount_fallback_used == [True, True]
    assert [tuple(d) for d in model.discounts] == [(0.5, 1.0, 1.5)] * 2
    model.save(tmp_path / "m.arpa")
    assert_matches_reference(parse_arpa(tmp_path / "m.arpa"), ref, 2e-7, "tiny text")
    for line in ("a b c", "c a", "b", "", "x a"):
        words = line.split() + ["</s>"]
        want = sum(ref.log10prob(w, ["<s>"] + words[:i]) for i, w in enumerate(words))
        assert model.score(line) == pytest.approx(want, abs=1e-6), line


@pytest.fixture(scope="module")
def big_text():
    rng = np.random.default_rng(302)
    words = rng.zipf(1.3, size=150_000) % 5000
    return "".join(f"w{w}" + ("\n" if i % 17 == 16 else " ") for i, w in enumerate(words)).encode() + b"\n"


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_truncated_compressed_input(tmp_path, kind, big_text):
    """A compressed corpus cut short (several blocks / frames into it) is an error naming the file,
    not a silently shorter text."""
    data = COMPRESSORS[kind](big_text)
    path = tmp_path / "cut.txt"
    path.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(glm.CorpusError, match=re.escape(str(path))):
        train(str(path))
