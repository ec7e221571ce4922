"""CCNet's document perplexities: a model pair made here (a SentencePiece model trained with
sentencepiece, an ARPA from glm, a KenLM binary from build_binary) scored by glm with
``--tokenizer ccnet`` and by CCNet's code path -- the ``cc_net`` package when it is installed, and in
any case a minimal rewrite of it here (normalize, SentencePiece, DocLM) over the kenlm module."""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import glm
import glm.cli
from glm.ccnet import CCNetTokenizer, normalize
from glm.curation import DocFormat, score_texts
from glm.curation.pipeline import bucket_to_dir, score_to_file

spm = pytest.importorskip("sentencepiece", reason="sentencepiece is not installed (pip install glm[ccnet])")

DATA = Path(__file__).resolve().parents[1] / "data"
TRICKY = ["  Héllo WÖRLD 2024 «quoted» — dash… ", "Ça coûte 12,50 € ！（ｘ）", "tab\there\nnew line\r\n",
          "ＡＢＣ １２３ ｶﾀｶﾅ ﬁne", "\x00\x1f\x7f\x85 ctrl", "", "   ", "ñandú – “x” ‘y’ ’z’", "한국어 텍스트 ٣٤",
          "Ⅻ ² ½ 𝟙", "a\u200bb\u00a0c\u2028d"]


# -- CCNet's code path, rewritten minimally (as cc_net/text_normalizer.py and perplexity.py do it) --
CC_PUNCT = {"，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
            "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!",
            "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...",
            "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-"}
CC_CONTROL = re.compile("[" + "".join(map(chr, list(range(0, 32)) + list(range(127, 160)))) + "]")


def cc_normalize(line: str) -> str:
    line = line.strip()
    if not line:
        return line
    line = line.lower()
    line = "".join(c for c in unicodedata.normalize("NFD", line) if unicodedata.category(c) != "Mn")
    line = re.sub(r"\d", "0", line)
    line = "".join(CC_PUNCT.get(c, c) for c in line)
    return CC_CONTROL.sub("", line)


def cc_doc_perplexity(klm, sp, text: str):
    """cc_net's MultiSentencePiece(normalize=True) then DocLM(normalize=False): (log10, length, pp)."""
    tokenized = " ".join(sp.encode_as_pieces(cc_normalize(text)))
    score, length = 0.0, 0
    for line in tokenized.split("\n"):
        score += klm.score(line)
        length += len(line.split()) + 1
    return score, length, round(10.0 ** (-score / length), 1)


def cc_net_package_perplexities(sp_path, lm_path, docs):
    """The cc_net package's own transformers, as cc_net/mine.py chains them (None without it)."""
    try:
        from cc_net import perplexity as ccp
    except ImportError:
        return None
    sp = ccp.MultiSentencePiece({"en": Path(sp_path)}, field="raw_content", output_field="tokenized",
                                normalize=True)
    lm = ccp.DocLM({"en": Path(lm_path)}, field="tokenized", output_field="perplexity", normalize=False)
    out = list(lm.map(sp.map([dict(raw_content=d["text"], language="en") for d in docs])))
    return [d.get("perplexity") for d in out]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """CCNet's model pair, made here: en.sp.model, en.arpa (glm) and en.arpa.bin (build_binary)."""
    kenlm = pytest.importorskip("kenlm")
    tmp = tmp_path_factory.mktemp("ccnet")
    with gzip.open(DATA / "shakespeare-train.txt.gz", "rt", encoding="utf-8") as f:
        train = [line.rstrip("\n") for line in f][:6000]
    text = tmp / "norm.txt"
    text.write_text("".join(normalize(line) + "\n" for line in train + TRICKY * 3 if normalize(line)))
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp / "en.sp"), vocab_size=400,
                                   model_type="unigram", character_coverage=1.0, num_threads=1,
                                   minloglevel=2)
    tok = CCNetTokenizer(tmp / "en.sp.model")
    model = glm.train(lines=[tok(line) for line in train], order=4)
    model.save(tmp / "en.arpa")
    binary = None
    if shutil.which("build_binary"):
        binary = tmp / "en.arpa.bin"
        subprocess.run(["build_binary", str(tmp / "en.arpa"), str(binary)], check=True, capture_output=True)
    with gzip.open(DATA / "shakespeare-test.txt.gz", "rt", encoding="utf-8") as f:
        test = [line.rstrip("\n") for line in f]
    docs = [dict(id=f"doc{i}", text="\n".join(test[i:i + 1 + i % 5]) + (" " + TRICKY[i % len(TRICKY)]))
            for i in range(0, 600, 3)] + [dict(id="tricky", text="\n".join(TRICKY)), dict(text="no id field 7")]
    jsonl = tmp / "docs.jsonl"
    jsonl.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return tmp, tok, docs, jsonl, binary, kenlm


def test_normalize_like_ccnet():
    for text in TRICKY + ["Plain ASCII, with 42 digits.", "ÀÉÎÕÜ àéîõü ß ø"]:
        assert normalize(text) == cc_normalize(text), text
    try:
        from cc_net import text_normalizer
    except ImportError:
        return
    for text in TRICKY:
        assert normalize(text) == text_normalizer.normalize(text), text
        assert normalize(text, punct=2) == text_normalizer.normalize(text, punct=2), text


def test_tokenizer_matches_sentencepiece(pair):
    tmp, tok, docs, _, _, _ = pair
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "en.sp.model"))
    for d in docs[:50]:
        assert tok(d["text"]) == " ".join(sp.encode_as_pieces(cc_normalize(d["text"])))
    assert "\n" not in tok("two\nlines")


@pytest.mark.parametrize("lm", ["en.arpa", "en.arpa.bin"])
def test_doc_perplexities_like_ccnet(pair, lm):
    tmp, tok, docs, jsonl, binary, kenlm = pair
    if lm.endswith(".bin") and binary is None:
        pytest.skip("KenLM's build_binary is not on PATH")
    klm = kenlm.Model(str(tmp / lm))
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "en.sp.model"))
    want = [cc_doc_perplexity(klm, sp, d["text"]) for d in docs]
    try:
        model = glm.load(tmp / lm)
    except glm.ModelFormatError:
        pytest.skip("this glm does not read KenLM binaries")
    got = score_texts(model, [d["text"] for d in docs], tokenizer=tok)
    assert list(got.tokens) == [w[1] for w in want]
    np.testing.assert_allclose(got.log10_prob, [w[0] for w in want], atol=2e-3, rtol=0)
    np.testing.assert_allclose(got.perplexity, [w[2] for w in want], atol=0.1 + 1e-9, rtol=1e-4)
    assert np.array_equal(got.perplexity, np.round(got.perplexity, 1))
    package = cc_net_package_perplexities(tmp / "en.sp.model", tmp / lm, docs)
    if package is not None:     # (CCNet gives a document that normalizes to nothing no perplexity)
        given = [i for i, p in enumerate(package) if p is not None]
        assert [i for i, d in enumerate(docs) if not tok(d["text"])] == [i for i, p in enumerate(package) if p is None]
        np.testing.assert_allclose(got.perplexity[given], [package[i] for i in given], atol=0.1 + 1e-9, rtol=1e-4)


def test_per_doc_command_and_ids(pair, tmp_path):
    """glm score --per-doc --tokenizer ccnet on JSONL: CCNet's perplexities; ids from the 'id' field
    where a document has one, FILE:LINE otherwise."""
    tmp, tok, docs, jsonl, _, kenlm = pair
    out = tmp_path / "scores.jsonl"
    assert glm.cli.main(["score", "--per-doc", str(tmp / "en.arpa"), str(jsonl), "--format", "jsonl",
                         "--tokenizer", "ccnet", "--sp-model", str(tmp / "en.sp.model"), "-o", str(out),
                         "-q", "--workers", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [d.get("id", f"{jsonl}:{len(docs)}") for d in docs]
    klm = kenlm.Model(str(tmp / "en.arpa"))
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "en.sp.model"))
    for r, d in zip(rows, docs):
        lp, length, ppl = cc_doc_perplexity(klm, sp, d["text"])
        assert r["tokens"] == length and r["perplexity"] == pytest.approx(ppl, abs=0.1 + 1e-9)
    manifest = json.loads((tmp_path / "scores.jsonl.manifest.json").read_text())
    assert manifest["tokenizer"]["name"] == "ccnet" and "SentencePiece" in manifest["perplexity_definition"]
    fmt = DocFormat("jsonl")
    info = bucket_to_dir(jsonl, tmp / "en.arpa", tmp_path / "buckets", fmt, tokenizer=tok)
    assert sum(info["counts"].values()) == len(docs)
    total = score_to_file(tmp / "en.arpa", jsonl, tmp_path / "s.tsv", fmt, tsv=True, tokenizer=tok, workers=1)
    assert total["documents"] == len(docs)
    assert (tmp_path / "s.tsv").read_text().startswith("# CCNet's")


def test_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        CCNetTokenizer(tmp_path / "missing.sp.model")
    (tmp_path / "bad.sp.model").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        CCNetTokenizer(tmp_path / "bad.sp.model")
    assert glm.cli.main(["score", "--per-doc", "m.arpa", "x.txt", "--tokenizer", "ccnet"]) == 1
    assert glm.cli.main(["score", "m.arpa", "x.txt", "--tokenizer", "ccnet", "--sp-model", "x"]) == 1
