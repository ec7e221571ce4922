"""Model files: ARPA (plain and compressed) and .glmb round trips, ARPA parsing errors, atomic saves,
and ARPA files that glm did not write."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest

import glm
from helpers import (assert_matches_reference, float32_unit, parse_arpa, random_corpus, read_corpus_lines,
                     to_lines)
from reference_mkn import build_mkn

ARPA_SUFFIXES = [".arpa", ".arpa.gz", ".arpa.bz2", ".arpa.xz", ".arpa.zst"]
MAGIC = {".arpa": b"\\data\\", ".arpa.gz": b"\x1f\x8b", ".arpa.bz2": b"BZh", ".arpa.xz": b"\xfd7zXZ\x00",
         ".arpa.zst": b"\x28\xb5\x2f\xfd"}


def need_codec(suffix):
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")


@pytest.fixture(scope="module")
def sentences():
    return random_corpus(7, vocab_size=30, n_sentences=300, unk_prob=0.01)


@pytest.fixture(scope="module")
def model(sentences):
    return glm.train(lines=to_lines(sentences), order=4, discount_fallback=True)


@pytest.fixture(scope="module")
def test_lines(sentences):
    rng = random.Random(3)
    lines = to_lines(sentences[:100])
    lines += ["", "w1 OOV-WORD w2", "OOV-A OOV-B", "w0 w0 w0 w0 w0 w0 w0 w0", "<unk> w3"]
    words = sorted({w for s in sentences for w in s})
    lines += [" ".join(rng.choice(words) for _ in range(rng.randint(0, 15))) for _ in range(200)]
    return lines


def all_queries(arpa):
    return [(g[-1], g[:-1]) for entries in arpa.ngrams for g in entries]


# --------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", ARPA_SUFFIXES)
def test_arpa_round_trip(tmp_path, model, test_lines, suffix):
    need_codec(suffix)
    path = tmp_path / ("model" + suffix)
    model.save(path)
    with open(path, "rb") as f:
        assert f.read(6).startswith(MAGIC[suffix]), "wrong compression for the suffix"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "temporary files left behind"
    loaded = glm.load(path)
    assert loaded.order == model.order
    assert list(loaded.counts) == list(model.counts)
    assert list(loaded.vocab) == list(model.vocab)
    arpa = parse_arpa(path)
    assert arpa.counts == list(model.counts)
    # the shortest decimal that reads back as the same float32: values survive bit for bit
    for word, ctx in all_queries(arpa):
        assert loaded.logprob(word, ctx) == model.logprob(word, ctx), (word, ctx)
    for line in test_lines[:50]:
        assert loaded.score(line) == model.score(line), line
        assert list(loaded.full_scores(line)) == list(model.full_scores(line)), line
    for bos in (True, False):
        for eos in (True, False):
            np.testing.assert_array_equal(loaded.score_many(test_lines, bos, eos),
                                          model.score_many(test_lines, bos, eos))


def test_compressed_arpa_files_hold_the_same_text(tmp_path, model):
    import bz2
    import gzip
    import lzma
    model.save(tmp_path / "m.arpa")
    plain = (tmp_path / "m.arpa").read_bytes()
    for suffix, opener in ((".arpa.gz", gzip.open), (".arpa.bz2", bz2.open), (".arpa.xz", lzma.open)):
        model.save(tmp_path / ("m" + suffix))
        with opener(tmp_path / ("m" + suffix), "rb") as f:
            assert f.read() == plain, suffix
    zstandard = pytest.importorskip("zstandard")
    model.save(tmp_path / "m.arpa.zst")
    with open(tmp_path / "m.arpa.zst", "rb") as raw:
        assert zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True).read() == plain


def test_arpa_round_trip_real_text(tmp_path):
    lines = read_corpus_lines("brown/brown.txt.gz", 2000)
    model = glm.train(lines=iter(lines), order=5)
    path = tmp_path / "brown.arpa.gz"
    model.save(path)
    loaded = glm.load(path)
    assert list(loaded.counts) == list(model.counts)
    probe = read_corpus_lines("brown/brown.txt.gz", 2500)[2000:]
    np.testing.assert_array_equal(loaded.score_many(probe), model.score_many(probe))
    np.testing.assert_array_equal(loaded.score_many(lines[:300]), model.score_many(lines[:300]))
    # saving the loaded model writes the same file
    model.save(tmp_path / "a.arpa")
    loaded.save(tmp_path / "b.arpa")
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()


@pytest.mark.parametrize("order", [1, 2, 5])
def test_binary_round_trip(tmp_path, sentences, test_lines, order):
    model = glm.train(lines=to_lines(sentences), order=order, discount_fallback=True, prune=(0, 0, 1))
    path = tmp_path / "model.glmb"
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = glm.load(path)
    assert loaded.order == model.order
    assert list(loaded.counts) == list(model.counts)
    assert list(loaded.vocab) == list(model.vocab)
    assert [tuple(d) for d in loaded.discounts] == [tuple(d) for d in model.discounts]
    for bos in (True, False):
        for eos in (True, False):
            a = loaded.score_many(test_lines, bos, eos)
            b = model.score_many(test_lines, bos, eos)
            assert a.dtype == np.float64 and b.dtype == np.float64
            assert a.tobytes() == b.tobytes(), "scores differ after the binary round trip"
    for line in test_lines[:30]:
        assert list(loaded.full_scores(line)) == list(model.full_scores(line))
    model.save(tmp_path / "a.arpa")
    arpa = parse_arpa(tmp_path / "a.arpa")
    for word, ctx in all_queries(arpa):
        assert loaded.logprob(word, ctx) == model.logprob(word, ctx)
    # and the binary model writes the same ARPA file as the model it came from
    loaded.save(tmp_path / "b.arpa")
    assert (tmp_path / "a.arpa").read_bytes() == (tmp_path / "b.arpa").read_bytes()
    # evaluation of files as well
    text = tmp_path / "test.txt"
    text.write_text("".join(line + "\n" for line in test_lines), encoding="utf-8")
    assert loaded.evaluate(str(text)) == model.evaluate(str(text))


def test_binary_of_loaded_arpa(tmp_path, model, test_lines):
    """ARPA -> load -> .glmb -> load scores like the original."""
    model.save(tmp_path / "m.arpa")
    glm.load(tmp_path / "m.arpa").save(tmp_path / "m.glmb")
    loaded = glm.load(tmp_path / "m.glmb")
    assert loaded.score_many(test_lines).tobytes() == model.score_many(test_lines).tobytes()


def test_written_arpa_equals_reference(tmp_path, sentences):
    ref = build_mkn(sentences, 3, discount_fallback=(0.5, 1.0, 1.5), prune=(0, 1, 1))
    model = glm.train(lines=to_lines(sentences), order=3, discount_fallback=True, prune=(0, 1, 1))
    for suffix in (".arpa", ".arpa.xz"):
        model.save(tmp_path / ("m" + suffix))
        assert_matches_reference(parse_arpa(tmp_path / ("m" + suffix)), ref)


def assert_shortest(values):
    from glm import _arpa
    values = np.asarray(values, dtype=np.float32)
    strings = _arpa.format_floats(values)
    bad = []
    for v, s in zip(values, strings):
        if np.float32(float(s)) != v:
            bad.append((v, s, "does not read back"))
            continue
        shortest = np.format_float_scientific(v, unique=True, trim="-")
        digits = len(re.sub(r"[^0-9]", "", shortest.split("e")[0]).lstrip("0")) or 1
        got = len(re.sub(r"[^0-9]", "", s.split("e")[0]).lstrip("0").rstrip("0")) or 1
        if got > digits:
            bad.append((v, s, shortest))
    assert not bad, f"{len(bad)} of {len(values)} numbers: {bad[:5]}"


def test_numbers_are_shortest_float32_decimals():
    """ARPA numbers (log10 values of a model) read back as the same float32 with as few significant
    digits as possible."""
    rng = np.random.default_rng(0)
    assert_shortest(np.concatenate([
        -rng.uniform(0, 8, 3000), -10.0 ** rng.uniform(-12, 1, 2000), rng.uniform(-1, 1, 500),
        np.array([0.0, -0.0, -1.0, -0.5, -99.0, -100.0, -123456.0, -0.30103, -1e-20, 1e-8]),
    ]))


def test_extreme_numbers_are_shortest_float32_decimals():
    """The whole float32 range, subnormals included (values no estimated model holds, but a loaded
    ARPA file may)."""
    rng = np.random.default_rng(1)
    finfo = np.finfo(np.float32)
    assert_shortest(np.concatenate([
        -10.0 ** rng.uniform(-44, 38, 3000),
        np.array([finfo.max, -finfo.max, finfo.tiny, finfo.smallest_subnormal, -1e-45, 3.4e38, 1e-30,
                  1.2345678e-35, -2.5e-38, 1e38, 9.999999e37]),
    ]))


def test_tiny_numbers_survive_load_and_save(tmp_path):
    """Values far below any real log10 probability (|x| < 1e-31, subnormal float32) still read back
    as themselves after glm writes them."""
    bos = ["-1.5e-35", "-2e-39", "-1e-44", "-3.5e-32"]
    text = ("\\data\\\nngram 1=7\nngram 2=1\n\n\\1-grams:\n-1\t<unk>\t0\n-99\t<s>\t-0.5\n-0.5\t</s>\t0\n"
            + "".join(f"-0.9\tw{i}\t{b}\n" for i, b in enumerate(bos))
            + "\n\\2-grams:\n-0.1\t<s> w0\n\n\\end\\\n")
    (tmp_path / "in.arpa").write_text(text)
    glm.load(tmp_path / "in.arpa").save(tmp_path / "out.arpa")
    out = parse_arpa(tmp_path / "out.arpa")
    for i, b in enumerate(bos):
        assert np.float32(out.ngrams[0][(f"w{i}",)][1]) == np.float32(float(b)), (b, out.ngrams[0])


# ---------------------------------------------------------------------------------- bad files
@pytest.fixture()
def small_arpa(tmp_path):
    """A glm-written order-3 ARPA file as a list of lines (without LF)."""
    model = glm.train(lines=to_lines(random_corpus(9, vocab_size=8, n_sentences=60)), order=3,
                      discount_fallback=True)
    model.save(tmp_path / "good.arpa")
    return (tmp_path / "good.arpa").read_text(encoding="utf-8").split("\n")


def section_lines(lines, n):
    """1-based line numbers of the '\\n-grams:' header and of the n-gram lines after it."""
    start = lines.index(f"\\{n}-grams:") + 1
    end = start
    while lines[end].strip():
        end += 1
    return start, list(range(start + 1, end + 1))


def load_error(tmp_path, lines, name="bad.arpa"):
    path = tmp_path / name
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(glm.ModelFormatError) as info:
        glm.load(path)
    msg = str(info.value)
    m = re.search(re.escape(str(path)) + r":(\d+)", msg)
    assert m, f"no path:line in {msg!r}"
    return int(m.group(1)), msg


@pytest.mark.parametrize("n,field", [(1, "prob"), (2, "prob"), (3, "prob"), (1, "backoff"),
                                     (2, "backoff")])
def test_bad_number(tmp_path, small_arpa, n, field):
    _, body = section_lines(small_arpa, n)
    lineno = body[len(body) // 2]
    fields = small_arpa[lineno - 1].split("\t")
    if field == "prob":
        fields[0] = fields[0] + "x"
    else:
        fields[-1] = "-0.1.2"
    lines = list(small_arpa)
    lines[lineno - 1] = "\t".join(fields)
    got, msg = load_error(tmp_path, lines)
    assert got == lineno, msg


def test_good_file_loads(tmp_path, small_arpa):
    """What was loaded: the header counts, the vocabulary in file order, every stored value, and the
    backoffs (a word unseen after a context h costs backoff(h) + its log10 p after h minus its first
    word)."""
    (tmp_path / "copy.arpa").write_text("\n".join(small_arpa), encoding="utf-8")
    model = glm.load(tmp_path / "copy.arpa")
    arpa = parse_arpa(tmp_path / "copy.arpa")
    assert model.order == 3 and list(model.counts) == arpa.counts
    assert list(model.vocab) == [g[0] for g in arpa.ngrams[0]]
    for entries in arpa.ngrams:
        for g, (lp, _) in entries.items():
            assert model.logprob(g[-1], g[:-1]) == np.float32(lp), g
    words = [g[0] for g in arpa.ngrams[0] if g != ("<s>",)]
    backed_off = 0
    for n, entries in enumerate(arpa.ngrams[:2], 1):
        for h, (_, bo) in entries.items():
            for w in words:
                if h + (w,) not in arpa.ngrams[n]:
                    want = (bo or 0.0) + model.logprob(w, h[1:])
                    assert abs(model.logprob(w, h) - want) <= 2 * float32_unit(want), (h, w)
                    backed_off += bo != 0.0
    assert backed_off > 100


@pytest.mark.parametrize("n,delta", [(1, 1), (2, 1), (3, -1), (2, -2)])
def test_wrong_count_in_header(tmp_path, small_arpa, n, delta):
    lines = list(small_arpa)
    header = lines.index(next(line for line in lines if line.startswith(f"ngram {n}=")))
    count = int(lines[header].split("=")[1])
    lines[header] = f"ngram {n}={count + delta}"
    got, msg = load_error(tmp_path, lines)
    start, body = section_lines(small_arpa, n)
    # the header line that announces the count, or the section that does not hold it
    assert got == header + 1 or start <= got <= body[-1] + 1, msg
    assert str(count + delta) in msg and str(count) in msg, msg


@pytest.mark.parametrize("tail", ["\n", "\n\n\n"])
def test_missing_end(tmp_path, small_arpa, tail):
    lines = [line for line in small_arpa if line.strip() != "\\end\\"]
    while not lines[-1].strip():
        lines.pop()
    path = tmp_path / "noend.arpa"
    path.write_text("\n".join(lines) + tail, encoding="utf-8")
    with pytest.raises(glm.ModelFormatError, match="end") as info:
        glm.load(path)
    # the error is at the end of the file: its last line
    last = len(lines) + len(tail) - 1
    assert f"{path}:{last}:" in str(info.value)


def test_missing_end_without_final_newline(tmp_path, small_arpa):
    """The last line of a file counts even without its LF (line numbers must not be one short)."""
    lines = [line for line in small_arpa if line.strip() != "\\end\\"]
    while not lines[-1].strip():
        lines.pop()
    got, msg = load_error(tmp_path, lines)
    assert "end" in msg
    assert got == len(lines), msg


@pytest.mark.parametrize("n", [2, 3])
def test_unknown_word(tmp_path, small_arpa, n):
    _, body = section_lines(small_arpa, n)
    lineno = body[-2]
    lines = list(small_arpa)
    prob, words = lines[lineno - 1].split("\t")[:2]
    rest = lines[lineno - 1].split("\t")[2:]
    words = words.split(" ")
    words[0] = "NO-SUCH-WORD"
    lines[lineno - 1] = "\t".join([prob, " ".join(words)] + rest)
    got, msg = load_error(tmp_path, lines)
    assert got == lineno, msg


def test_wrong_number_of_fields(tmp_path, small_arpa):
    _, body = section_lines(small_arpa, 3)
    lineno = body[3]
    lines = list(small_arpa)
    lines[lineno - 1] += "\t-0.5"            # a backoff at the top order
    got, msg = load_error(tmp_path, lines)
    assert got == lineno, msg
    _, body = section_lines(small_arpa, 2)
    lines = list(small_arpa)
    lineno = body[1]
    prob, words, bo = lines[lineno - 1].split("\t")
    lines[lineno - 1] = "\t".join([prob, words.split(" ")[0], bo])     # one word short
    got, msg = load_error(tmp_path, lines)
    assert got == lineno, msg


def test_truncated_mid_line(tmp_path, small_arpa):
    _, body = section_lines(small_arpa, 3)
    lineno = body[len(body) // 2]
    text = "\n".join(small_arpa[:lineno - 1]) + "\n" + small_arpa[lineno - 1][:3]
    path = tmp_path / "cut.arpa"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(glm.ModelFormatError, match=re.escape(f"{path}:{lineno}")):
        glm.load(path)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_truncated_at_line_end(tmp_path, small_arpa, n):
    """Cut after a complete line (with its LF) in the middle of a section: the section is short."""
    start, body = section_lines(small_arpa, n)
    keep = body[len(body) // 2]
    path = tmp_path / "cut.arpa"
    path.write_text("\n".join(small_arpa[:keep]) + "\n", encoding="utf-8")
    with pytest.raises(glm.ModelFormatError) as info:
        glm.load(path)
    assert f"{path}:{keep}:" in str(info.value)


@pytest.mark.parametrize("n", [1, 3])
def test_truncated_at_line_end_without_newline(tmp_path, small_arpa, n):
    start, body = section_lines(small_arpa, n)
    keep = body[len(body) // 2]
    got, msg = load_error(tmp_path, small_arpa[:keep])
    assert got == keep, msg


@pytest.mark.parametrize("suffix", [".arpa.gz", ".arpa.bz2", ".arpa.xz", ".arpa.zst"])
def test_truncated_compressed_file(tmp_path, model, suffix):
    need_codec(suffix)
    path = tmp_path / ("m" + suffix)
    model.save(path)
    data = path.read_bytes()
    cut = tmp_path / ("cut" + suffix)
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(glm.ModelFormatError, match=re.escape(str(cut))):
        glm.load(cut)


def test_not_an_arpa_file(tmp_path):
    path = tmp_path / "junk.arpa"
    path.write_bytes(b"hello world\nthis is not a model\n")
    with pytest.raises(glm.ModelFormatError, match=re.escape(str(path))):
        glm.load(path)
    path.write_bytes(b"")
    with pytest.raises(glm.ModelFormatError):
        glm.load(path)


def test_truncated_binary(tmp_path, model):
    model.save(tmp_path / "m.glmb")
    data = (tmp_path / "m.glmb").read_bytes()
    (tmp_path / "cut.glmb").write_bytes(data[:len(data) - 100])
    with pytest.raises(glm.ModelFormatError):
        glm.load(tmp_path / "cut.glmb")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        glm.load(tmp_path / "nothing.arpa")


# ------------------------------------------------------------------------------------- saving
@pytest.mark.parametrize("name", ["model.txt", "model", "model.bin", "model.gz", "model.json",
                                  "model.glm"])
def test_unknown_suffix(tmp_path, model, name):
    with pytest.raises(ValueError):
        model.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["model.arpa.txt", "model.arpa.lz4", "model.arpa.zip",
                                  "model.arpa.gz.bak"])
def test_unknown_compression_suffix(tmp_path, model, name):
    """An .arpa name with an unsupported compression suffix must not be written as plain text."""
    with pytest.raises(ValueError):
        model.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("suffix", ARPA_SUFFIXES)
def test_failed_arpa_save_leaves_nothing(tmp_path, model, monkeypatch, suffix, exc):
    need_codec(suffix)
    import glm.formats.arpa as arpa_mod
    real = arpa_mod._arpa

    class Failing:
        def __getattr__(self, name):
            return getattr(real, name)

        def format_level(self, n, *args):
            if n == 2:
                raise exc("disk on fire")
            return real.format_level(n, *args)

    monkeypatch.setattr(arpa_mod, "_arpa", Failing())
    with pytest.raises(exc):
        model.save(tmp_path / ("m" + suffix))
    assert list(tmp_path.iterdir()) == []
    # an existing file of that name is left as it was
    target = tmp_path / ("old" + suffix)
    target.write_bytes(b"previous contents")
    with pytest.raises(exc):
        model.save(target)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() == b"previous contents"
    monkeypatch.undo()
    model.save(target)
    assert glm.load(target).counts == model.counts


def test_failed_binary_save_leaves_nothing(tmp_path, model, monkeypatch):
    import glm.formats.binary as binary_mod
    calls = []

    def failing_memoryview(obj):
        calls.append(1)
        if len(calls) > 2:
            raise Boom("disk full")
        return memoryview(obj)

    monkeypatch.setattr(binary_mod, "memoryview", failing_memoryview, raising=False)
    with pytest.raises(Boom):
        model.save(tmp_path / "m.glmb")
    assert calls, "the writer was not interrupted where expected"
    assert list(tmp_path.iterdir()) == []


def test_save_over_existing_file(tmp_path, model):
    path = tmp_path / "m.arpa"
    path.write_text("old")
    model.save(path)
    assert glm.load(path).counts == model.counts
    assert [p.name for p in tmp_path.iterdir()] == ["m.arpa"]


# ------------------------------------------------------------------ ARPA files from elsewhere
# An SRILM-style file: -99 for <s>, missing backoffs, tabs and spaces mixed, text before \data\.
HAND = """This file was written by hand; SRILM and lmplz --verbose_header put text here.

\\data\\
ngram 1=5
ngram  2 = 4
ngram 3=2

\\1-grams:
-1.2\t<unk>
-99 <s>\t-0.4
-0.7\t</s>
-0.5 a   -0.2
-0.9\tb\t-0.1

\\2-grams:
-0.3\t<s> a\t-0.05
-0.4 a b
-0.6\tb  </s>
-0.2\ta a -0.15

\\3-grams:
-0.1\t<s> a b
-0.25 a\ta b

\\end\\
"""

# hand-computed log10 scores (bos, eos) and full_scores
HAND_SCORES = {
    # p(a|<s>) = -0.3; p(b|<s> a) = -0.1; p(</s>|a b) = p(</s>|b) = -0.6 (no backoff for "a b")
    "a b": [(-0.3, 2, False), (-0.1, 3, False), (-0.6, 2, False)],
    # p(b|<s>) = bo(<s>) + p(b) = -0.4 - 0.9; p(a|<s> b) = bo(b) + p(a) = -0.1 - 0.5;
    # p(</s>|b a) = bo(a) + p(</s>) = -0.2 - 0.7
    "b a": [(-1.3, 1, False), (-0.6, 1, False), (-0.9, 1, False)],
    # p(a|<s> a) = bo(<s> a) + p(a|a) = -0.05 - 0.2; p(b|a a) = -0.25
    "a a b": [(-0.3, 2, False), (-0.25, 2, False), (-0.25, 3, False), (-0.6, 2, False)],
    # OOV: p(<unk>|<s>) = bo(<s>) + p(<unk>) = -0.4 - 1.2; p(</s>|<unk>) = p(</s>) = -0.7
    "zzz": [(-1.6, 1, True), (-0.7, 1, False)],
    # p(</s>|<s>) = bo(<s>) + p(</s>)
    "": [(-1.1, 1, False)],
}


@pytest.mark.parametrize("variant", ["plain", "gzip-misnamed", "crlf"])
def test_hand_written_arpa(tmp_path, variant):
    import gzip
    data = HAND.encode()
    path = tmp_path / "hand.arpa"
    if variant == "gzip-misnamed":
        data = gzip.compress(data)
        path = tmp_path / "hand.txt"
    elif variant == "crlf":
        data = data.replace(b"\n", b"\r\n")
    path.write_bytes(data)
    m = glm.load(path)
    assert m.order == 3
    assert list(m.counts) == [5, 4, 2]
    assert set(m.vocab) == {"<unk>", "<s>", "</s>", "a", "b"}
    assert m.logprob("<s>") == pytest.approx(-99)
    assert m.logprob("b", ("a",)) == pytest.approx(-0.4)
    assert m.logprob("b", ("x", "<s>", "a")) == pytest.approx(-0.1)
    assert m.logprob("a", ("b", "b")) == pytest.approx(-0.6)        # bo(b) + p(a); "b b" absent
    for sentence, expected in HAND_SCORES.items():
        got = list(m.full_scores(sentence))
        assert len(got) == len(expected), sentence
        for (gp, gl, go), (ep, el, eo) in zip(got, expected):
            assert gp == pytest.approx(ep, abs=1e-6), sentence
            assert (gl, go) == (el, eo), sentence
        assert m.score(sentence) == pytest.approx(sum(e[0] for e in expected), abs=1e-6)
    assert m.score("a b", bos=False, eos=False) == pytest.approx(-0.5 - 0.4, abs=1e-6)
    assert m.score("a b", bos=False, eos=True) == pytest.approx(-0.5 - 0.4 - 0.6, abs=1e-6)
    np.testing.assert_allclose(m.score_many(list(HAND_SCORES)),
                               [sum(e[0] for e in v) for v in HAND_SCORES.values()], atol=1e-6)


def test_arpa_without_unk(tmp_path):
    """A model without <unk> gives OOVs log10 p = -100, as KenLM does."""
    text = ("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-99\t<s>\t-0.3\n-0.5\t</s>\n-0.2\ta\t-0.1\n\n"
            "\\2-grams:\n-0.1\t<s> a\n\n\\end\\\n")
    path = tmp_path / "nounk.arpa"
    path.write_text(text)
    m = glm.load(path)
    got = list(m.full_scores("x"))
    assert got[0][0] == pytest.approx(-100 - 0.3) and got[0][2] is True
    assert got[1][0] == pytest.approx(-0.5)
    assert m.score("a") == pytest.approx(-0.1 + -0.1 - 0.5)


def test_unigram_only_hand_file(tmp_path):
    text = "\\data\\\nngram 1=4\n\n\\1-grams:\n-1\t<unk>\n-99\t<s>\n-0.5\t</s>\n-0.3\ta\n\n\\end\\\n"
    path = tmp_path / "uni.arpa"
    path.write_text(text)
    m = glm.load(path)
    assert m.order == 1
    assert m.score("a a zz") == pytest.approx(-0.3 * 2 - 1 - 0.5)
    assert [s[1] for s in m.full_scores("a zz")] == [1, 1, 1]


# --------------------------------------------------------------- files lacking n-gram suffixes
def _arpa_logprob(arpa, word, ctx):
    """log10 p(word | ctx) by the ARPA back-off rule over the file's own entries."""
    ctx = tuple(ctx[-(arpa.order - 1):]) if arpa.order > 1 else ()
    gram = ctx + (word,)
    if gram in arpa.ngrams[len(gram) - 1]:
        return arpa.ngrams[len(gram) - 1][gram][0]
    if not ctx:
        return arpa.ngrams[0].get((word,), arpa.ngrams[0].get(("<unk>",)))[0]
    bo = arpa.ngrams[len(ctx) - 1].get(ctx, (0.0, 0.0))[1] or 0.0
    return bo + _arpa_logprob(arpa, word, ctx[1:])


def test_file_without_some_suffixes_scores_by_backoff(tmp_path):
    """SRILM-style pruning can drop an n-gram and keep its extensions; glm fills such suffixes in with
    the probability back-off gives them, so every score is the one the file defines."""
    rng = random.Random(5)
    sentences = random_corpus(11, vocab_size=12, n_sentences=300)
    model = glm.train(lines=to_lines(sentences), order=4, discount_fallback=True)
    full = tmp_path / "full.arpa"
    model.save(full)
    arpa = parse_arpa(full)
    # drop a third of the bigrams and trigrams that are suffixes of kept higher-order n-grams
    dropped = 0
    for n in (2, 3):
        higher = arpa.ngrams[n]
        suffixes = sorted({g[1:] for g in higher})
        for g in rng.sample(suffixes, len(suffixes) // 3):
            if g in arpa.ngrams[n - 1]:
                del arpa.ngrams[n - 1][g]
                dropped += 1
    assert dropped > 10
    pruned = tmp_path / "pruned.arpa"
    with open(pruned, "w", encoding="utf-8") as f:
        f.write("\\data\\\n" + "".join(f"ngram {n}={len(g)}\n" for n, g in enumerate(arpa.ngrams, 1)))
        for n, grams in enumerate(arpa.ngrams, 1):
            f.write(f"\n\\{n}-grams:\n")
            for g, (p, b) in grams.items():
                f.write(f"{p}\t{' '.join(g)}" + (f"\t{b}" if b is not None and n < arpa.order else "") + "\n")
        f.write("\n\\end\\\n")
    arpa = parse_arpa(pruned)
    loaded = glm.load(pruned)
    vocab = [w for w in model.vocab if w != "<s>"]
    checked = 0
    for sentence in sentences[:80]:
        words = ["<s>"] + sentence + ["</s>"]
        for i in range(1, len(words)):
            ctx = tuple(words[max(0, i - 3):i])
            for w in (words[i], rng.choice(vocab)):
                assert loaded.logprob(w, ctx) == pytest.approx(_arpa_logprob(arpa, w, ctx), abs=1e-5), (w, ctx)
                checked += 1
    assert checked > 500
