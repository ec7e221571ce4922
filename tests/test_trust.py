"""Trust (issue 14): model files of any bytes load and score sanely or fail with ModelFormatError; no
output destroys an input; signals clean up; every failure is a glm error naming the file; .glm text
round-trips every token; compressed outputs are byte-reproducible."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import glm
from glm.cli import _regroup, main
from glm.formats import binary
from helpers import fifo_feeding

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def lines():
    with gzip.open(DATA / "shakespeare-train.txt.gz", "rt", encoding="utf-8") as f:
        return f.read().split("\n")[:1500]


@pytest.fixture(scope="module")
def mkn(lines):
    return glm.train(lines=lines, order=3, discount_fallback=True)


@pytest.fixture(scope="module")
def gen(lines):
    return glm.train(lines=lines[:500], order=3, method="glm", discount_fallback=True, tune_split=0)


@pytest.fixture
def files(tmp_path, mkn, gen, lines):
    """Models and a text in tmp_path."""
    out = dict(arpa=tmp_path / "m.arpa", glmb=tmp_path / "m.glmb", glm=tmp_path / "g.glm",
               gglmb=tmp_path / "g.glmb", text=tmp_path / "t.txt")
    mkn.save(out["arpa"])
    mkn.save(out["glmb"])
    gen.save(out["glm"])
    gen.save(out["gglmb"])
    out["text"].write_text("\n".join(lines) + "\n")
    return out


def header_of(path) -> tuple[dict, int]:
    data = Path(path).read_bytes()
    size = int.from_bytes(data[8:16], "little")
    return json.loads(data[16:16 + size]), size


def rewrite_header(path, header: dict, seal: bool = True) -> None:
    """Replace the header of a .glmb file (the arrays move with the start of the data, as their offsets
    are relative to it), sealed with a fresh checksum (a crafted file: the checks behind the checksum
    must catch it) or without one (a file written before checksums)."""
    data = Path(path).read_bytes()
    size = int.from_bytes(data[8:16], "little")
    start = -(-(16 + size) // 64) * 64
    if not seal:
        header.pop("header_xxh64", None)
    text = json.dumps(header).encode()
    if seal:
        text = binary._seal(text[:18] + b"0" * 16 + text[34:])
    new_start = -(-(16 + len(text)) // 64) * 64
    Path(path).write_bytes(data[:8] + len(text).to_bytes(8, "little") + text
                           + b"\0" * (new_start - 16 - len(text)) + data[start:])


# -- binary files: the header is checked in full at load -------------------------------------------------
def edit(field, value):
    def apply(h):
        h[field] = value
    return apply


def edit_array(name, field, value):
    def apply(h):
        e = next(e for e in h["arrays"] if e["name"] == name)
        e[field] = value(e[field]) if callable(value) else value
    return apply


@pytest.mark.parametrize("change, message", [
    (edit("order", 1), r"the header's order 1 differs from meta's 3"),   # silently a unigram model, once
    (lambda h: h.update(order=1, discounts=[], unpruned_counts=[], meta={}), r"array 1\.backoff is not part of"),
    (lambda h: h.update(order=4, discounts=[], unpruned_counts=[], meta={}), r"array 4\.word missing"),
    (edit("order", -1), r"order -1 is not between 1 and 16"),
    (edit("order", True), r"order True is not"),
    (edit("format", 2), r"format 2, not 1"),
    (edit("kind", "glm"), r"method None is not one of"),
    (edit("meta", []), r"meta: expected a JSON object"),
    (edit("discounts", [[float("nan"), 1, 1]] * 3), r"discounts of 1: \[nan, 1, 1\]"),
    (edit("discounts", [[0.5, 2.5, 1]] * 3), r"0 <= Dk <= k"),
    (lambda h: h.pop("discounts"), r"discounts: expected a list of discount triples"),
    (lambda h: h.pop("unpruned_counts"), r"unpruned_counts: expected"),
    (edit_array("vocab.table", "shape", [0]), r"vocab\.table: shape \[0\], expected \['a power of two'\]"),
    (edit_array("vocab.blob", "shape", [0]), r"overlap|vocab\.offsets: the offsets do not rise"),
    (edit_array("2.word", "shape", [0]), r"2\.logprob: shape"),
    (edit_array("1.logprob", "shape", [0]), r"1\.logprob: shape \[0\]"),
    (edit_array("children.hash", "shape", [0]), r"children\.hash: shape \[0\]"),
    (edit_array("children.hash", "shape", [1000]), r"a power of two"),
    (edit_array("2.logprob", "offset", -64), r"bad shape .* or offset -64"),
    (edit_array("2.logprob", "offset", lambda o: o + 64), r"overlap|beyond the end"),
    (edit_array("2.logprob", "offset", lambda o: o + 1), r"offset"),
    (edit_array("2.logprob", "offset", 1 << 50), r"beyond the end of the file"),
    (edit_array("2.logprob", "dtype", ">f4"), r"dtype >f4, expected <f4"),
    (edit_array("2.logprob", "dtype", "|O"), r"dtype \|O, expected|overlap"),
    (edit_array("2.logprob", "shape", [1 << 60]), r"bad shape"),
    (edit_array("2.logprob", "name", "2.word"), r"a name listed twice"),
    (lambda h: h["arrays"].pop(), r"missing"),
])
def test_damaged_binary_header_is_refused(files, change, message):
    path = files["glmb"]
    original = path.read_bytes()
    for seal in (True, False):                 # a crafted header (fresh checksum), an old file (none)
        path.write_bytes(original)
        header, _ = header_of(path)
        change(header)
        rewrite_header(path, header, seal)
        with pytest.raises(glm.ModelFormatError, match=message) as err:
            glm.load(path)
        assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("change, message", [
    (edit("weights", {"7": 1.5}), r"parent's weight must be in \[0, 1\], not 1\.5"),
    (edit("weights", {"7": -0.5}), r"must be in \[0, 1\]"),
    (edit("weights", {"7": float("nan")}), r"must be in \[0, 1\], not nan"),
    (edit("weights", {"7": [0.5, 0.6]}), r"summing to 1"),
    (edit("weights", {"7": [float("nan"), 1.0]}), r"summing to 1"),
    (edit("method", "x"), r"method 'x' is not one of"),
    (lambda h: h["sizes"].pop("5"), r"pattern 101, which the model combines, is missing"),
    (lambda h: h["sizes"].update({"5": h["sizes"]["5"] + 1}), r"5\.word: shape"),
    (lambda h: h["searched"].pop("5"), r"searched: expected"),
    (edit("order", 9), r"order 9 is not between 1 and 8"),
    (edit("compat", {"extra": 0.1, "floor": 0, "discounts": {}}), r"array top\.1\.prob missing"),
])
def test_damaged_glm_binary_header_is_refused(files, change, message):
    path = files["gglmb"]
    header, _ = header_of(path)
    change(header)
    rewrite_header(path, header)
    with pytest.raises(glm.ModelFormatError, match=message):
        glm.load(path)


def test_header_checksum_catches_any_edit(files):
    path = files["glmb"]
    data = bytearray(path.read_bytes())
    at = data.index(b'"discounts": [[') + len(b'"discounts": [[')
    data[at] = ord("0") if data[at] != ord("0") else ord("1")     # a discount, still a valid one
    path.write_bytes(bytes(data))
    with pytest.raises(glm.ModelFormatError, match="header's checksum does not match"):
        glm.load(path)


def test_truncated_or_overwritten_header_length(files):
    path = files["glmb"]
    data = path.read_bytes()
    for size in (0, 1, len(data), 1 << 40):
        path.write_bytes(data[:8] + size.to_bytes(8, "little") + data[16:])
        with pytest.raises(glm.ModelFormatError, match="corrupt header"):
            glm.load(path)
    for cut in (20, 1000, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(glm.ModelFormatError, match=str(path)):
            glm.load(path)


def array_view(path, name):
    """A writable view of an array of a .glmb file (a copy of the file is edited)."""
    header, size = header_of(path)
    e = next(e for e in header["arrays"] if e["name"] == name)
    start = -(-(16 + size) // 64) * 64
    data = bytearray(Path(path).read_bytes())
    arr = np.frombuffer(data, dtype=e["dtype"], count=int(np.prod(e["shape"])), offset=start + e["offset"])
    return data, arr


@pytest.mark.parametrize("name, index, value", [
    ("vocab.table", None, 0x7FFFFFFF),              # every slot: ids beyond the words, no free slot
    ("vocab.table", "the", 0x7FFFFFFF),             # the slot of "the"
    ("vocab.offsets", 5, 1 << 62),
    ("2.starts", 3, 0xFFFFFFF0),
    ("1.starts", None, 0xFFFFFFFF),
    ("2.starts", None, 0),
    ("children.hash", None, 0),                     # no EMPTY slot, every slot a wrong child
    ("3.word", None, 0xFFFFFFFF),
])
def test_damaged_arrays_never_crash(files, name, index, value, lines):
    """Damaged big arrays (not checked at load) load and score without reading outside an array: a
    sane score, or a ModelFormatError; verify names the damage."""
    path = files["glmb"]
    data, arr = array_view(path, name)
    if index is None:
        arr[:] = value
    elif index == "the":
        from glm._vocab import VocabTable
        m = glm.load(path)
        slot = int(np.flatnonzero(np.asarray(m.vocab.table.arrays()[2]) == m.vocab.id("the"))[0])
        del m, VocabTable
        arr[slot] = value
    else:
        arr[index] = value
    path.write_bytes(bytes(data))
    code = ("import glm, math, sys\n"
            "try:\n"
            "    m = glm.load(sys.argv[1])\n"
            "    s = [m.score('the king'), m.score('hello world'), *m.score_many(sys.argv[2:])]\n"
            "    assert all(x <= 0 and not math.isnan(x) for x in s), s\n"
            "    print('sane')\n"
            "except glm.ModelFormatError as e:\n"
            "    print('clean', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(path), *lines[:20]], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(("sane", "clean")), r.stdout
    with pytest.raises(glm.ModelFormatError, match="damaged|checksum|vocab"):
        glm.load(path).verify()


@pytest.mark.parametrize("value", [np.nan, np.inf, 0.5, 3.0])
def test_damaged_value_raises_when_scored(files, value):
    path = files["glmb"]
    data, arr = array_view(path, "2.logprob")
    arr[:] = value
    path.write_bytes(bytes(data))
    m = glm.load(path)
    with pytest.raises(glm.ModelFormatError, match=rf"{re.escape(str(path))}: damaged model: a score of"):
        m.score_many(["the king is dead", "my lord"] * 5)
    with pytest.raises(glm.ModelFormatError, match="a score of"):
        m.logprob("lord", ["my"])


def test_verify(files, gen):
    for key in ("glmb", "gglmb"):
        report = glm.load(files[key]).verify()
        assert report["checksums"] and report["problems"] == [] and report["arrays"] > 10
    assert glm.load(files["arpa"]).verify()["checksums"] is False
    assert gen.verify()["problems"] == []
    # a value that loads and scores sanely but differs from what was written: only the checksum knows
    data, arr = array_view(files["glmb"], "3.logprob")
    arr[7] = arr[7] - 0.25
    files["glmb"].write_bytes(bytes(data))
    m = glm.load(files["glmb"])
    with pytest.raises(glm.ModelFormatError, match=r"3\.logprob: checksum .* differs"):
        m.verify()
    with pytest.raises(glm.ModelFormatError, match="checksum"):     # not converted with its damage
        m.save(files["glmb"].with_name("copy.arpa"))
    assert not files["glmb"].with_name("copy.arpa").exists()
    assert main(["verify", str(files["glmb"])]) == 1
    assert main(["verify", str(files["gglmb"])]) == 0


def test_file_without_checksums_loads_and_verifies(files, capsys):
    path = files["glmb"]
    header, _ = header_of(path)
    for e in header["arrays"]:
        del e["xxh64"]
    rewrite_header(path, header, seal=False)
    m = glm.load(path)
    assert m.verify()["checksums"] is False
    assert main(["verify", str(path)]) == 0
    assert "no checksums" in capsys.readouterr().out


# -- text files: values --------------------------------------------------------------------------------
@pytest.mark.parametrize("value, ok", [("0.5", False), ("3", False), ("nan", False), ("inf", False),
                                       ("1e39", False), ("-inf", True), ("-1e39", True), ("-0", True)])
def test_arpa_log10_probabilities(files, value, ok):
    path = files["arpa"]
    lines = path.read_text().split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("\\2-grams:")) + 3
    fields = lines[at].split("\t")
    lines[at] = "\t".join([value] + fields[1:])
    path.write_text("\n".join(lines))
    if ok:
        glm.load(path)
    else:
        with pytest.raises(glm.ModelFormatError, match=rf":{at + 1}: bad log10 probability"):
            glm.load(path)


@pytest.mark.parametrize("value, ok", [("nan", False), ("inf", False), ("1e39", False), ("-inf", True),
                                       ("0.7", True)])
def test_arpa_backoffs(files, value, ok):
    path = files["arpa"]
    lines = path.read_text().split("\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith("\\1-grams:")) + 5
    fields = lines[at].split("\t")
    lines[at] = "\t".join(fields[:2] + [value])
    path.write_text("\n".join(lines))
    if ok:
        glm.load(path)
    else:
        with pytest.raises(glm.ModelFormatError, match=rf":{at + 1}: bad backoff"):
            glm.load(path)


@pytest.mark.parametrize("section, value", [("1", "2.0"), ("1", "nan"), ("1", "-0.1"), ("11", "-0.5"),
                                            ("11", "nan"), ("11", "1e39"), ("11 gamma", "-1"),
                                            ("11 gamma", "inf"), ("101", "nan")])
def test_glm_text_values(files, section, value):
    path = files["glm"]
    lines = path.read_text().split("\n")
    at = lines.index(f"\\{section}:\\") + 2
    lines[at] = value + "\t" + lines[at].split("\t", 1)[1]
    path.write_text("\n".join(lines))
    with pytest.raises(glm.ModelFormatError, match=rf":{at + 1}: .*is not a value of section"):
        glm.load(path)


@pytest.mark.parametrize("old, new, message", [
    ("order=3", "order=4", "pattern 1001, which the model combines, is missing"),
    ("order=3", "order=2", r"section \\111:\\ is not part of an order-2|pattern sizes in the header"),
    ("order=3", "order=9", "GLM models are built for orders 1 to 8"),
    ("method=glm", "method=x", "unknown method"),
    ("weights=uniform", "weights=111=1.5", "must be in \\[0, 1\\]"),
    ("weights=uniform", "weights=111=nan", "must be in \\[0, 1\\]"),
    ("weights=uniform", "weights=111=0.5,0.6", "summing to 1"),
    ("escape=backslash", "escape=x", "unknown escaping"),
])
def test_glm_text_header(files, old, new, message):
    path = files["glm"]
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(glm.ModelFormatError, match=message):
        glm.load(path)


def test_glm_text_missing_section(files):
    path = files["glm"]
    path.write_text(path.read_text().replace("\\11:\\", "\\1 gamma:\\", 1))
    with pytest.raises(glm.ModelFormatError, match=r"g\.glm:\d+: no section \\11:\\"):
        glm.load(path)


def test_glm_text_discounts(files):
    path = files["glm"]
    text = path.read_text()
    start = text.index("pattern 11=")
    end = text.index("\n", start)
    line = text[start:end]
    for bad in ("D=nan 1 1", "D=-1 1 1", "D=0.5 2.5 1"):
        path.write_text(text[:start] + line[:line.index("D=")] + bad + text[end:])
        with pytest.raises(glm.ModelFormatError, match=r"discounts of 3"):
            glm.load(path)


def test_glm_text_not_utf8(files):
    path = files["glm"]
    data = path.read_bytes()
    at = data.index(b"\\11:\\") + 12
    path.write_bytes(data[:at] + b"\xff\xfe" + data[at:])
    with pytest.raises(glm.ModelFormatError, match=r":\d+: not UTF-8"):
        glm.load(path)


# -- .glm text: every token round-trips ----------------------------------------------------------------
SPECIAL_TOKENS = ["_", "__", "\\", "\\_", "\\\\", "\\1:\\", "\\end\\", "\\glm\\", "#", "#x", "=", "a=b", "order=3",
                  "1", "-2.5", "nan", "inf", "0x10", "pattern", "weights=uniform", "<unk>", "\\11 gamma:\\",
                  "é", "日本", "\u00a0", "\x0b", "a\x0cb", "\u2028"]


def round_trip(tmp_path, vocab_lines):
    m = glm.train(lines=vocab_lines, order=3, method="glm", discount_fallback=True, tune_split=0)
    m.save(tmp_path / "r.glm")
    back = glm.load(tmp_path / "r.glm")
    assert list(back.vocab) == list(m.vocab)
    np.testing.assert_array_equal(back.score_many(vocab_lines), m.score_many(vocab_lines))
    for mask, t in m.tables.tables.items():
        for key, arr in t.items():
            np.testing.assert_array_equal(back.tables.tables[mask][key], arr)


def test_glm_text_special_tokens(tmp_path):
    import random
    rng = random.Random(0)
    sentences = [" ".join(rng.choice(SPECIAL_TOKENS + ["a", "b", "c"]) for _ in range(rng.randint(1, 8)))
                 for _ in range(300)]
    round_trip(tmp_path, sentences)


def test_glm_text_any_tokens(tmp_path_factory):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    # what the tokenizer can make: no space, TAB, CR, LF or NUL, valid UTF-8 (no lone surrogates)
    token = st.text(st.characters(blacklist_characters=" \t\r\n\0", blacklist_categories=("Cs",)),
                    min_size=1, max_size=6).filter(lambda t: t not in ("<s>", "</s>"))

    @hypothesis.settings(max_examples=25, deadline=None, derandomize=True)
    @hypothesis.given(st.lists(token, min_size=3, max_size=12, unique=True), st.randoms(use_true_random=False))
    def check(vocab, rng):
        sentences = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 6))) for _ in range(60)]
        round_trip(tmp_path_factory.mktemp("g"), sentences)

    check()


def test_old_glm_text_without_escaping_reads_as_before(tmp_path):
    m = glm.train(lines=["a \\b c", "c a \\b", "a c"] * 20, order=2, method="glm", discount_fallback=True, tune_split=0)
    m.save(tmp_path / "e.glm")
    text = (tmp_path / "e.glm").read_text()
    assert "\t\\\\b" in text and "escape=backslash\n" in text
    (tmp_path / "old.glm").write_text(text.replace("escape=backslash\n", "").replace("\\\\b", "\\b"))
    assert list(glm.load(tmp_path / "old.glm").vocab) == list(m.vocab)


# -- discounts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fallback, message", [((float("nan"),), "D1=nan"), ((-1, 5, 100), "D1=-1.0"),
                                               ((0.5, 2.5, 1), "D2=2.5"), ((0.5, 1, 3.5), "D3\\+=3.5"),
                                               ((0.5, 1, float("inf")), "D3\\+=inf")])
def test_discount_fallback_range(lines, fallback, message):
    with pytest.raises(glm.DiscountError, match=message):
        glm.train(lines=lines[:100], order=3, discount_fallback=fallback)


# -- the command line --------------------------------------------------------------------------------
def test_regroup():
    assert _regroup(["build", "--prune", "0", "1", "1", "c.txt", "-o", "m"]) == \
        ["build", "--prune=0,1,1", "c.txt", "-o", "m"]
    assert _regroup(["--discount-fallback", "c.txt"]) == ["--discount-fallback=", "c.txt"]
    assert _regroup(["--discount-fallback", "nan", "-1", "c.txt"]) == ["--discount-fallback=nan,-1", "c.txt"]
    assert _regroup(["--dask", "c.txt"]) == ["--dask=local", "c.txt"]
    assert _regroup(["--dask", "tcp://h:8786", "c.txt"]) == ["--dask=tcp://h:8786", "c.txt"]
    assert _regroup(["--dask", "h.example:8786"]) == ["--dask=h.example:8786"]
    assert _regroup(["--", "--prune", "1"]) == ["--", "--prune", "1"]


@pytest.mark.parametrize("args", [
    ["--order", "3", "--prune", "0", "1", "1", "{t}", "-o", "{o}"],
    ["{t}", "--order", "3", "--prune", "0", "1", "1", "-o", "{o}"],
    ["--order", "3", "--prune=0,1,1", "{t}", "-o", "{o}"],
    ["--order", "3", "--discount-fallback", "{t}", "-o", "{o}"],
    ["--order", "3", "--discount-fallback", "0.5", "1", "{t}", "-o", "{o}"],
])
def test_multi_value_options_before_inputs(files, tmp_path, args):
    out = tmp_path / "x.arpa"
    argv = [a.format(t=files["text"], o=out) for a in args]
    assert main(["build", *argv, "-q"]) == 0
    assert glm.load(out).order == 3


def test_tune_takes_one_file_per_use(files, tmp_path, lines):
    held = tmp_path / "held.txt"
    held.write_text("\n".join(lines[-100:]) + "\n")
    out = tmp_path / "t.glmb"
    assert main(["build", "--order", "2", "--method", "glm", "--tune", str(held), str(files["text"]),
                 "--discount-fallback", "-o", str(out), "-q"]) == 0
    assert glm.load(out).meta["tuned_on"] == [str(held)]


@pytest.mark.parametrize("fallback", [["nan"], ["-1", "5", "100"]])
def test_bad_discount_fallback_on_the_command_line(files, tmp_path, capsys, fallback):
    assert main(["build", "--order", "3", "--discount-fallback", *fallback, str(files["text"]),
                 "-o", str(tmp_path / "x.arpa")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside [0, 1]" in err
    assert not (tmp_path / "x.arpa").exists()


def test_json_never_prints_nan(files, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["score", str(files["arpa"]), str(empty), "--json"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert out["perplexity"] is None and out["tokens"] == 0


def test_missing_input_is_refused_before_any_work(files, tmp_path, capsys):
    out = tmp_path / "new.arpa"
    assert main(["build", str(files["text"]), str(tmp_path / "typo.txt.gz"), "--order", "3", "-o", str(out)]) == 1
    assert "typo.txt.gz: no such file" in capsys.readouterr().err
    assert not out.exists()


def test_missing_model_names_the_file(files, tmp_path, capsys):
    """A missing model file is one line naming it (not Python's "[Errno 2] ..."), for every command."""
    typo = tmp_path / "typo.arpa"
    for argv in (["score", str(typo), str(files["text"])], ["info", str(typo)],
                 ["convert", str(typo), str(tmp_path / "out.klm"), "--layout", "compact"]):
        assert main(argv) == 1
        assert capsys.readouterr().err == f"glm {argv[0]}: error: {typo}: no such file or directory\n"
    assert not (tmp_path / "out.klm").exists()


def test_directory_as_model_is_a_clear_error(files, tmp_path, capsys):
    assert main(["score", str(tmp_path), str(files["text"])]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path}: is a directory, not a model file" in err
    with pytest.raises(IsADirectoryError, match="not a model file"):
        glm.load(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_model_through_a_pipe(files, tmp_path, lines, capsys):
    """A model path that is a pipe (a FIFO, bash's <(...), /dev/stdin): ARPA and .glm text, plain or
    compressed, are read once as a stream and score as their files; a binary model, which is mapped from
    its file, is a clear error (it was read twice and refused as 'not a glm binary model')."""
    fifo = tmp_path / "pipe"
    probe = lines[1400:1450]
    for name, pack in (("arpa", bytes), ("arpa", gzip.compress), ("glm", bytes), ("glm", lzma.compress)):
        with fifo_feeding(fifo, pack(files[name].read_bytes())):
            model = glm.load(fifo)
        assert np.array_equal(model.score_many(probe), glm.load(files[name]).score_many(probe)), (name, pack)
    for name in ("glmb", "gglmb"):
        with fifo_feeding(fifo, files[name].read_bytes()), \
                pytest.raises(glm.ModelFormatError, match="cannot be read from a pipe"):
            glm.load(fifo)
        with fifo_feeding(fifo, files[name].read_bytes()):
            assert main(["score", str(fifo), str(files["text"])]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{fifo}: a binary model is mapped from its file" in err


def test_empty_corpus_and_held_out_text(files, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["build", str(empty), "--order", "3", "-o", str(tmp_path / "m.arpa")]) == 1
    assert f"no text in {empty}" in capsys.readouterr().err
    assert main(["build", str(files["text"]), "--order", "2", "--method", "glm", "--tune", str(empty),
                 "--discount-fallback", "-o", str(tmp_path / "m.glmb")]) == 1
    assert f"no text in {empty}" in capsys.readouterr().err
    with pytest.raises(glm.CorpusError, match="no text in the lines given"):
        glm.train(lines=[], order=2)


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz"])
def test_corrupt_compressed_input(tmp_path, lines, files, capsys, kind):
    text = "\n".join(lines).encode()
    data = bytearray({"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](text))
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0x5A
    corpus = tmp_path / f"c.txt.{kind}"
    corpus.write_bytes(bytes(data))
    assert main(["build", str(corpus), "--order", "2", "-o", str(tmp_path / "m.arpa")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"glm build: error: {corpus}: cannot decompress") and err.count("\n") == 1
    model = tmp_path / f"m.arpa.{kind}"
    compress = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind]
    data = bytearray(compress(files["arpa"].read_bytes()))
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0x5A
    model.write_bytes(bytes(data))
    with pytest.raises(glm.ModelFormatError, match=f"{model}: cannot read"):
        glm.load(model)


def test_bad_environment_and_workers(files, monkeypatch, capsys):
    monkeypatch.setenv("GLM_THREADS", "abc")
    assert main(["score", str(files["arpa"]), str(files["text"])]) == 1
    assert "GLM_THREADS: expected a whole number of at least 1, not 'abc'" in capsys.readouterr().err
    monkeypatch.delenv("GLM_THREADS")
    for bad in ("0", "-1", "x"):
        with pytest.raises(SystemExit) as exc:
            main(["score", str(files["arpa"]), str(files["text"]), "--per-doc", "-j", bad])
        assert exc.value.code == 2
        assert "workers: expected a whole number of at least 1" in capsys.readouterr().err


def test_api_misuse_is_a_type_error(mkn):
    with pytest.raises(TypeError, match="not one string"):
        mkn.score_many("the king")
    with pytest.raises(TypeError, match="not bytes"):
        glm.train(b"/path", 3)
    with pytest.raises(TypeError, match="holding int"):
        glm.train([1, 2], 3)
    with pytest.raises(ValueError, match="bad_utf8"):
        glm.train(lines=["a"], order=2, bad_utf8="x")
    with pytest.raises(ValueError, match="not below the vocabulary size"):
        mkn.score_ids(np.array([1, 10 ** 6, 2], dtype=np.uint32))


# -- outputs never destroy inputs ----------------------------------------------------------------------
def outputs_cases(f, tmp_path):
    t, m = str(f["text"]), str(f["glmb"])
    same = tmp_path / "link.txt"
    same.symlink_to(f["text"])
    out = str(tmp_path / "o.jsonl")
    return [
        ["score", m, t, "--per-line", "tsv", "-o", m],
        ["score", m, t, "--per-line", "tsv", "-o", t],
        ["score", m, t, "--per-line", "tsv", "-o", str(same)],
        ["score", m, t, "--per-doc", "-o", t],
        ["score", m, t, "--per-doc", "-o", m],
        ["score", m, t, "--per-doc", "-o", out, "--manifest", t],
        ["score", m, t, "--per-doc", "-o", out, "--manifest", out],
        ["build", t, "--order", "3", "-o", m, "--tune", m],
        ["build", t, "--order", "3", "-o", t],
        ["convert", m, m],
        ["convert", str(f["arpa"]), str(f["arpa"])],
        ["prune", t, "--model", m, "--criterion", "low", "--rate", "0.5", "-o", t],
        ["prune", t, "--model", m, "--criterion", "low", "--rate", "0.5", "-o", out, "--rejected", out],
        ["prune", t, "--model", m, "--criterion", "low", "--rate", "0.5", "-o", out, "--manifest", m],
        ["resample", t, "--weights", out, "--target-docs", "5", "-o", out],
        ["resample", t, "--weights", str(tmp_path / "w.jsonl"), "--target-docs", "5", "-o", t],
        ["softdedup", t, "-o", t],
        ["softdedup", t, "-o", out, "--save-model", t],
        ["softdedup", t, "-o", out, "--model", m, "--manifest", m],
        ["bucket", t, "--model", m, "--out-dir", str(tmp_path)],       # t.txt is not a bucket: below
        ["bucket", str(tmp_path / "head.txt"), "--model", m, "--out-dir", str(tmp_path)],
        ["bucket", str(tmp_path / "manifest.json"), "--model", m, "--out-dir", str(tmp_path)],
        ["bucket", str(tmp_path / "cutoff.csv"), "--model", m, "--out-dir", str(tmp_path)],
    ]


def test_no_output_destroys_an_input(files, tmp_path, capsys):
    (tmp_path / "head.txt").write_text("a document\n")
    (tmp_path / "manifest.json").write_text("another document\n")
    (tmp_path / "cutoff.csv").write_text("a third\n")
    (tmp_path / "w.jsonl").write_text("")
    (tmp_path / "o.jsonl").write_text("")
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and not p.is_symlink()}
    for argv in outputs_cases(files, tmp_path):
        rc = main(argv)
        err = capsys.readouterr().err
        if argv[0] == "bucket" and argv[1] == str(files["text"]) and "--cutoff-csv" not in argv:
            assert rc == 0, err                  # (the buckets are other files)
            for b in ("head", "middle", "tail"):
                (tmp_path / f"{b}.txt").unlink(missing_ok=True)
            (tmp_path / "head.txt").write_text("a document\n")
            (tmp_path / "manifest.json").write_text("another document\n")
            (tmp_path / "cutoff.csv").write_text("a third\n")
            continue
        assert rc == 1, (argv, err)
        assert err.count("\n") == 1 and ("same file" in err), (argv, err)
    after = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and not p.is_symlink()}
    assert after == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_only_and_symlinked_targets(files, tmp_path, mkn):
    ro = tmp_path / "ro.arpa"
    ro.write_text("keep")
    ro.chmod(0o444)                       # (refused even for root, who may write it)
    with pytest.raises(ValueError, match="read-only"):
        mkn.save(ro)
    assert ro.read_text() == "keep"
    real = tmp_path / "real.glmb"
    real.write_text("old")
    link = tmp_path / "link.glmb"
    link.symlink_to(real)
    mkn.save(link)
    assert link.is_symlink() and glm.load(real).counts == mkn.counts


def test_non_regular_targets_are_written_directly(files, capsys):
    assert main(["build", str(files["text"]), "--order", "3", "-o", "/dev/null", "-q"]) == 0
    assert main(["build", str(files["text"]), "--order", "2", "--method", "glm", "--discount-fallback",
                 "--tune-split", "0", "-o", "/dev/null", "-q"]) == 0
    assert main(["score", str(files["glmb"]), str(files["text"]), "--per-line", "jsonl", "-o", "/dev/null"]) == 0
    assert main(["score", str(files["glmb"]), str(files["text"]), "--per-doc", "-o", "/dev/null", "-q"]) == 0
    assert main(["convert", str(files["glmb"]), "/dev/null"]) == 0
    capsys.readouterr()


def test_dev_stdout_on_a_pipe_is_written_directly(files):
    """/dev/stdout when stdout is a pipe: its real path is no file ('pipe:[N]'); glm writes to it."""
    r = subprocess.run([sys.executable, "-m", "glm", "score", str(files["glmb"]), str(files["text"]),
                        "--per-line", "tsv", "-o", "/dev/stdout"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout.rstrip("\n").split("\n")       # the rows, then the summary (the rows went to a file)
    n = Path(files["text"]).read_bytes().count(b"\n")
    assert out[0].split("\t") == ["line", "log10_prob", "tokens", "oovs", "perplexity"]
    assert [row.split("\t")[0] for row in out[1:n + 1]] == [str(i) for i in range(1, n + 1)]
    assert out[n + 1].startswith("Perplexity including OOVs:")


def test_model_file_replaced_by_rename_while_loaded(files, gen):
    """A loaded .glmb keeps scoring the file it mapped when a new model is renamed over it (what every
    glm writer does)."""
    m = glm.load(files["glmb"])
    want = m.score_many(["the king is dead"] * 3)
    gen.save(files["glmb"])
    np.testing.assert_array_equal(m.score_many(["the king is dead"] * 3), want)


# -- reproducible outputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".arpa.gz", ".arpa.bz2", ".arpa.xz", ".arpa.zst", ".glm.gz", ".glmb"])
def test_outputs_are_byte_reproducible(tmp_path, mkn, gen, suffix):
    if suffix.endswith(".zst"):
        pytest.importorskip("zstandard")
    model = gen if suffix.startswith(".glm") else mkn
    a, b = tmp_path / ("a" + suffix), tmp_path / "sub" / ("b" + suffix)
    b.parent.mkdir()
    model.save(a)
    time.sleep(1.1)
    model.save(b)
    assert a.read_bytes() == b.read_bytes()
    if suffix.endswith(".gz"):
        head = a.read_bytes()[:10]
        assert head[3] & 0x08 == 0 and head[4:8] == b"\0\0\0\0"     # no file name, time 0


# -- signals -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory):
    """A corpus that takes a few seconds to build at order 5 under a small memory budget."""
    import random
    rng = random.Random(5)
    words = [f"w{i}" for i in range(30000)]
    path = tmp_path_factory.mktemp("big") / "big.txt"
    with open(path, "w") as f:
        for _ in range(150000):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) + "\n")
    return path


@pytest.mark.parametrize("sig, code, when", [(signal.SIGTERM, 143, "spill"), (signal.SIGHUP, 129, "spill"),
                                             (signal.SIGTERM, 143, "write"), (signal.SIGHUP, 129, "write"),
                                             (signal.SIGINT, 130, "write")])
def test_signals_leave_nothing_behind(tmp_path, big_corpus, sig, code, when):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    scratch.mkdir()
    cmd = [sys.executable, "-m", "glm.cli", "build", str(big_corpus), "--order", "5", "-o", str(out / "m.arpa.gz"),
           "--memory", "40M", "--tmpdir", str(scratch), "--discount-fallback", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (when == "spill" and any(scratch.rglob("*.run.*"))) or (when == "write" and list(out.glob(".*.tmp"))):
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail(f"the build never reached the {when} stage: {proc.stderr.read()[-2000:]}")
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err
    assert err.count("\n") == 1 and ("terminated by" in err or "interrupted" in err), err
    assert list(out.iterdir()) == [] and list(scratch.iterdir()) == []


def test_sigterm_stops_curation_workers(tmp_path, big_corpus, mkn):
    model = tmp_path / "m.glmb"
    mkn.save(model)
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "glm.cli", "score", str(model), str(big_corpus), "--per-doc", "-j", "2",
           "-o", str(out / "s.jsonl"), "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob(".*.tmp")):
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert list(out.iterdir()) == []



def test_zero_probabilities_are_null_in_json(tmp_path, capsys):
    """A model may give a probability of 0 (zero discounts): scores of -inf, perplexities of +inf, which
    JSON outputs write as null."""
    m = glm.train(lines=["a b", "b c", "a c"] * 5, order=1, discount_fallback=(0.0, 0.0, 0.0))
    assert m.score("zzz") == -math.inf
    model, text, out = tmp_path / "z.glmb", tmp_path / "d.txt", tmp_path / "rows.jsonl"
    m.save(model)
    text.write_text("zzz a\na b\n")
    strict = dict(parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert main(["score", str(model), str(text), "--per-doc", "-o", str(out), "-q"]) == 0
    rows = [json.loads(line, **strict) for line in out.read_text().splitlines()]
    assert rows[0]["log10_prob"] is None and rows[0]["perplexity"] is None and rows[1]["perplexity"] > 1
    capsys.readouterr()
    assert main(["score", str(model), str(text), "--json"]) == 0
    assert json.loads(capsys.readouterr().out, **strict)["perplexity"] is None
    assert main(["score", str(model), str(text), "--per-line", "jsonl", "-o", str(out)]) == 0
    assert json.loads(out.read_text().splitlines()[0], **strict)["log10_prob"] is None
