"""Data curation: document readers, per-document scores against KenLM, SoftDedup on a real corpus with
injected duplicates, weight normalization, seeded resampling, pruning bands, CCNet buckets, the CLI and
its errors."""
from __future__ import annotations

import gzip
import json
import math
import os

import numpy as np
import pytest

import glm
from glm.cli import main
from glm.corpus import CorpusError
from glm.curation import (DocFormat, DocScores, bucket_to_dir, draw_counts, prune_mask, prune_to_files,
                          read_documents, reference_split, resample_to_file, score_documents, score_texts,
                          softdedup, softdedup_weights)
from glm.curation.documents import document_chunks, parse_chunk
from helpers import fifo_feeding, float32_sum_tol, read_corpus_lines


@pytest.fixture(scope="module")
def kenlm():
    """KenLM's Python module, the oracle of the per-document scores (only those tests need it)."""
    return pytest.importorskip("kenlm")


def paragraphs(lines):
    """Blank-line-separated blocks of lines (the documents of --unit paragraph)."""
    out, cur = [], []
    for ln in lines + [""]:
        if ln.strip():
            cur.append(ln)
        elif cur:
            out.append(cur)
            cur = []
    return out


@pytest.fixture(scope="module")
def shakespeare():
    return read_corpus_lines("tiny-shakespeare/input.txt.gz", 12000)


@pytest.fixture(scope="module")
def model_files(shakespeare, tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    model = glm.train(lines=shakespeare, order=3)
    model.save(d / "m.arpa")
    model.save(d / "m.glmb")
    return d / "m.arpa", d / "m.glmb"


@pytest.fixture(scope="module")
def shakespeare_file(shakespeare, tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "shakespeare.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(ln + "\n" for ln in shakespeare))
    return path


def kenlm_doc(model, lines):
    """(tokens, oovs, log10 prob, tolerance) of a document: KenLM's scores of its lines, summed (CCNet's
    DocLM); the tolerance is what KenLM's float32 sums of each line's tokens can lose."""
    scores = [model.score(ln, bos=True, eos=True) for ln in lines]
    oovs = sum(oov for ln in lines for _, _, oov in model.full_scores(ln))
    tol = sum(float32_sum_tol(s, len(ln.split()) + 1) for s, ln in zip(scores, lines))
    return sum(len(ln.split()) + 1 for ln in lines), oovs, sum(scores), tol


# -- readers ----------------------------------------------------------------------------------------
def test_paragraphs_ids_and_raw_bytes(shakespeare, shakespeare_file):
    docs = list(read_documents(shakespeare_file, DocFormat(unit="paragraph")))
    want = paragraphs(shakespeare)
    assert [d.text.split("\n") for d in docs] == want
    first = [i + 1 for i, ln in enumerate(shakespeare) if ln.strip() and (i == 0 or not shakespeare[i - 1].strip())]
    assert [d.id for d in docs] == [f"{shakespeare_file}:{n}" for n in first]
    assert all(d.raw == ("\n".join(p) + "\n").encode() for d, p in zip(docs, want))


def test_paragraphs_are_never_cut_between_chunks(shakespeare_file):
    fmt = DocFormat(unit="paragraph")
    small = [d for c in document_chunks(shakespeare_file, fmt, chunk_bytes=300) for d in parse_chunk(c, fmt)[0]]
    assert [(d.id, d.text) for d in small] == [(d.id, d.text) for d in read_documents(shakespeare_file, fmt)]


def test_crlf_paragraphs_across_chunks(tmp_path):
    text = "".join(f"para {i} line a\r\npara {i} line b\r\n\r\n" for i in range(200))
    (tmp_path / "p.txt").write_bytes(text.encode())
    fmt = DocFormat(unit="paragraph")
    chunks = list(document_chunks(tmp_path / "p.txt", fmt, chunk_bytes=256))
    assert len(chunks) > 10                               # cut at CR LF CR LF, not carried to the end
    docs = [d for c in chunks for d in parse_chunk(c, fmt)[0]]
    assert [d.text for d in docs] == [f"para {i} line a\r\npara {i} line b\r" for i in range(200)]
    assert [d.id.rsplit(":", 1)[1] for d in docs] == [str(3 * i + 1) for i in range(200)]


def test_paragraph_at_end_of_file_without_blank_line(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n\n\nthree")
    (tmp_path / "b.txt").write_text("four\n  \nfive\n")
    docs = list(read_documents(tmp_path, DocFormat(unit="paragraph")))     # a directory: sorted files
    assert [(d.id, d.text) for d in docs] == [(f"{tmp_path}/a.txt:1", "one\ntwo"), (f"{tmp_path}/a.txt:5", "three"),
                                               (f"{tmp_path}/b.txt:1", "four"), (f"{tmp_path}/b.txt:3", "five")]
    globbed = list(read_documents(str(tmp_path / "[ba].txt"), DocFormat(unit="paragraph")))
    assert [(d.id, d.text) for d in globbed] == [(d.id, d.text) for d in docs]
    with pytest.raises(CorpusError, match="no file matches"):
        list(read_documents(str(tmp_path / "*.jsonl")))


def test_lines_keep_empty_documents(tmp_path):
    (tmp_path / "t.txt").write_text("a b\n\nc\n")
    docs = list(read_documents(tmp_path / "t.txt"))
    assert [(d.id.rsplit(":", 1)[1], d.text) for d in docs] == [("1", "a b"), ("2", ""), ("3", "c")]


def jsonl_lines():
    return [json.dumps({"meta": {"id": f"doc-{i}", "lang": "en"}, "body": {"text": f"w{i} x\ny {i}"},
                        "n": 1.50, "u": "é"}, ensure_ascii=bool(i % 2)) for i in range(5)]


def test_jsonl_fields_dotted_paths_and_untouched_lines(tmp_path):
    lines = jsonl_lines()
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode())
    docs = list(read_documents(path, DocFormat("jsonl", text_field="body.text", id_field="meta.id")))
    assert [d.id for d in docs] == [f"doc-{i}" for i in range(5)]
    assert [d.text for d in docs] == [f"w{i} x\ny {i}" for i in range(5)]
    assert [d.raw for d in docs] == [(ln + "\n").encode() for ln in lines]
    docs = list(read_documents(path, DocFormat("jsonl", text_field="body.text")))
    assert [d.id for d in docs] == [f"{path}:{i}" for i in range(1, 6)]


@pytest.mark.parametrize("bad, message", [
    ('{"text": "a", ', "malformed JSON"),
    ('["text"]', "not an object"),
    ('{"txt": "a"}', "no text field 'text'"),
    ('{"text": 3}', "holds a int"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, bad, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a b"}\n\n' + bad + '\n{"text": "c"}\n')
    with pytest.raises(CorpusError, match=f"{path}:3: .*{message}"):
        list(read_documents(path, DocFormat("jsonl")))
    docs = list(read_documents(path, DocFormat("jsonl", on_error="skip")))
    assert [d.text for d in docs] == ["a b", "c"]


def test_bad_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"good\nbad \xff\n")
    with pytest.raises(CorpusError, match=f"{path}:2: invalid UTF-8"):
        list(read_documents(path))
    assert [d.text for d in read_documents(path, DocFormat(bad_utf8="replace"))] == ["good", "bad \ufffd"]


# -- scores -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", ["paragraph", "line"])
def test_document_scores_equal_kenlm_sums(shakespeare, shakespeare_file, model_files, unit, kenlm):
    arpa, binary = model_files
    ken = kenlm.Model(str(arpa))
    got = DocScores.concat(score_documents(binary, shakespeare_file, DocFormat(unit=unit), workers=1))
    docs = paragraphs(shakespeare) if unit == "paragraph" else [[ln] for ln in shakespeare]
    want = np.array([kenlm_doc(ken, p) for p in docs])
    if unit == "line":          # plain lines are scored from the chunk's bytes: the same as from the texts
        np.testing.assert_array_equal(got.log10_prob, score_texts(glm.load(binary), shakespeare).log10_prob)
    assert len(got) == len(want)
    np.testing.assert_array_equal(got.tokens, want[:, 0])
    np.testing.assert_array_equal(got.oovs, want[:, 1])
    assert np.all(np.abs(got.log10_prob - want[:, 2]) <= want[:, 3])
    # perplexity = 10^(-log10 p / tokens): relative error ln 10 * tolerance / tokens
    np.testing.assert_array_less(np.abs(got.perplexity / 10 ** (-want[:, 2] / want[:, 0]) - 1),
                                 np.log(10) * want[:, 3] / want[:, 0] + 1e-15)


def test_worker_count_does_not_change_results(shakespeare_file, model_files):
    arpa, binary = model_files
    fmt = DocFormat(unit="paragraph")
    one = DocScores.concat(score_documents(glm.load(arpa), shakespeare_file, fmt, workers=1))
    two = DocScores.concat(score_documents(arpa, shakespeare_file, fmt, workers=2))   # ARPA -> temporary binary
    assert one.ids == two.ids
    for col in ("tokens", "oovs", "log10_prob"):
        np.testing.assert_array_equal(getattr(one, col), getattr(two, col))


def test_generalized_model_scores_documents(tmp_path, shakespeare, shakespeare_file, monkeypatch):
    """A GLM model (GeneralizedModel) scores documents as the sums of its own per-line scores, the same
    with 1 and 2 workers: forked workers take the model over, spawned ones map a temporary binary file."""
    import glm.curation.scoring as scoring
    model = glm.train(lines=shakespeare[:4000], order=3, method="glm", tune_split=0)
    fmt = DocFormat(unit="paragraph")
    one = DocScores.concat(score_documents(model, shakespeare_file, fmt, workers=1))
    two = DocScores.concat(score_documents(model, shakespeare_file, fmt, workers=2))
    np.testing.assert_array_equal(one.log10_prob, two.log10_prob)
    monkeypatch.setattr(scoring.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    spawned = DocScores.concat(score_documents(model, shakespeare_file, fmt, workers=2))
    np.testing.assert_array_equal(one.log10_prob, spawned.log10_prob)
    paras = paragraphs(shakespeare)
    want = [sum(model.score(ln) for ln in p) for p in paras[:300]]
    np.testing.assert_allclose(one.log10_prob[:300], want, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(one.tokens, [sum(len(ln.split()) + 1 for ln in p) for p in paras])


def test_jsonl_scores_count_oovs_and_skipped_lines(tmp_path, model_files, kenlm):
    arpa, binary = model_files
    ken = kenlm.Model(str(arpa))
    texts = ["First Citizen :\nBefore we proceed", "zzqx unknownword the", "", "You are all resolved"]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"t": t, "k": i}) for i, t in enumerate(texts)) + "\n{broken\n")
    fmt = DocFormat("jsonl", text_field="t", id_field="k", on_error="skip")
    got = DocScores.concat(score_documents(binary, path, fmt, workers=1))
    assert got.ids == ["0", "1", "2", "3"] and got.skipped == 1
    want = np.array([kenlm_doc(ken, t.split("\n")) for t in texts])
    np.testing.assert_array_equal(got.tokens, want[:, 0])
    np.testing.assert_array_equal(got.oovs, want[:, 1])
    assert got.oovs[1] == 2
    assert np.all(np.abs(got.log10_prob - want[:, 2]) <= want[:, 3])
    alone = score_texts(glm.load(binary), texts)
    np.testing.assert_array_equal(alone.log10_prob, got.log10_prob)


# -- SoftDedup --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def brown():
    return read_corpus_lines("brown/brown.txt.gz", 6000)


def softdedup_of(tmp_path, lines, target, name):
    """Commonness and weight of the document `target` (its first copy) in a corpus of `lines`."""
    path = tmp_path / f"{name}.txt"
    path.write_text("".join(ln + "\n" for ln in lines))
    res = softdedup(path, order=4, workers=1)
    i = lines.index(target)
    return res.log10_commonness[i], res.weight[i], res


def test_copies_raise_commonness_and_lower_weight(tmp_path, brown):
    target = brown[1234]
    assert brown.count(target) == 1
    rng = np.random.default_rng(0)
    common, segment, weight, relative = [], [], [], []
    for copies in (1, 2, 4, 8, 16):
        lines = list(brown)
        for pos in rng.choice(len(lines), copies - 1, replace=False):
            lines.insert(int(pos), target)
        c, w, res = softdedup_of(tmp_path, lines, target, f"exact{copies}")
        same = [i for i, ln in enumerate(lines) if ln == target]
        assert len(set(res.weight[same])) == 1 and len(set(res.segment[same])) == 1   # copies weigh the same
        common.append(c)
        segment.append(res.segment[same[0]])
        weight.append(w)
        # per-document weights (W = 1/p), relative to the median weight of the original documents
        _, w0 = softdedup_weights(res.log10_commonness, res.scores.tokens, segments=0)
        original = np.ones(len(lines), dtype=bool)
        original[same] = False
        relative.append(w0[same[0]] / np.median(w0[original]))
    assert all(a < b for a, b in zip(common, common[1:])), common
    assert all(a > b for a, b in zip(relative, relative[1:])), relative
    assert all(a <= b for a, b in zip(segment, segment[1:])), segment
    # a segment's normalized weight also moves a little when the rest of the corpus changes
    assert all(b <= a * 1.005 for a, b in zip(weight, weight[1:])), weight
    assert weight[-1] < 0.95 * weight[0]


def test_near_duplicates_raise_commonness(tmp_path, brown):
    target = brown[2345]
    words = target.split()
    assert len(words) >= 8
    common = []
    for near in (0, 3, 9):
        lines = list(brown)
        for j in range(near):                       # one word replaced in each near copy
            w = list(words)
            w[(3 * j + 1) % len(w)] = f"variant{j}"
            lines.insert(100 * (j + 1), " ".join(w))
        common.append(softdedup_of(tmp_path, lines, target, f"near{near}")[0])
    assert common[0] < common[1] < common[2], common


def test_weights_normalize_and_follow_segment_statistic():
    rng = np.random.default_rng(5)
    n, k = 1000, 10
    log_c = -rng.gamma(4.0, 0.5, n)
    tokens = rng.integers(1, 200, n)
    seg, w = softdedup_weights(log_c, tokens, segments=k, stat="median", normalize="docs")
    assert math.isclose(w.sum(), n, rel_tol=1e-9)
    order = np.argsort(log_c)
    for s, idx in enumerate(np.split(order, k)):              # equal-count segments, least common first
        assert set(seg[idx]) == {s}
    med = [np.median(log_c[idx]) for idx in np.split(order, k)]
    w_seg = [w[idx][0] for idx in np.split(order, k)]
    for a in range(k):
        assert math.isclose(w_seg[a] / w_seg[0], 10 ** (med[0] - med[a]), rel_tol=1e-9)
    _, wt = softdedup_weights(log_c, tokens, segments=k, normalize="tokens")
    assert math.isclose((wt * tokens).sum(), tokens.sum(), rel_tol=1e-9)
    np.testing.assert_allclose(wt / wt[0], w / w[0])
    _, wm = softdedup_weights(log_c, tokens, segments=k, stat="mean")
    mean = [np.mean(10.0 ** log_c[idx]) for idx in np.split(order, k)]
    assert math.isclose(wm[order[-1]] / wm[order[0]], mean[0] / mean[-1], rel_tol=1e-9)
    _, w0 = softdedup_weights(log_c, tokens, segments=0)         # the paper's W = 1 / p per document
    np.testing.assert_allclose(w0 / w0[0], 10.0 ** (log_c[0] - log_c), rtol=1e-9)


def test_clip_and_floor_segment():
    rng = np.random.default_rng(6)
    log_c = -rng.gamma(2.0, 1.0, 500)
    tokens = np.ones(500)
    seg, w = softdedup_weights(log_c, tokens, segments=10, clip=(0.5, 2.0))
    per = np.array([w[seg == s][0] for s in range(10)])
    ratio = per / np.median(per)
    assert ratio.min() >= 0.5 - 1e-9 and ratio.max() <= 2.0 + 1e-9
    seg, w = softdedup_weights(log_c, tokens, segments=10, floor_segment=True)
    assert w[seg == 0][0] == w[seg == 1][0]
    with pytest.raises(ValueError, match="clip"):
        softdedup_weights(log_c, tokens, clip=(2.0, 3.0))


# -- resampling -------------------------------------------------------------------------------------
def test_resampling_is_seeded_and_hits_targets():
    w = np.array([0.0, 1.0, 2.0, 7.0])
    tokens = np.array([5, 10, 20, 3])
    a = draw_counts(w, tokens, target_tokens=1000, seed=3)
    assert a[0] == 0
    assert 1000 <= a @ tokens < 1000 + tokens.max()
    np.testing.assert_array_equal(a, draw_counts(w, tokens, target_tokens=1000, seed=3))
    assert not np.array_equal(a, draw_counts(w, tokens, target_tokens=1000, seed=4))
    d = draw_counts(w, target_docs=100000, seed=1)
    assert d.sum() == 100000 and d[0] == 0
    np.testing.assert_allclose(d / d.sum(), w / w.sum(), atol=0.01)


def test_resample_file_roundtrip(tmp_path):
    lines = jsonl_lines()
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(lines) + "\n")
    weights = tmp_path / "w.jsonl"
    weights.write_text("".join(json.dumps(dict(id=f"doc-{i}", weight=float(i), tokens=4)) + "\n"
                               for i in range(5)))
    fmt = DocFormat("jsonl", text_field="body.text", id_field="meta.id")
    outs = []
    for name in ("a", "b"):
        resample_to_file(src, weights, tmp_path / f"{name}.jsonl", fmt, target_docs=50, seed=9)
        outs.append((tmp_path / f"{name}.jsonl").read_text())
    assert outs[0] == outs[1]
    got = outs[0].splitlines()
    assert len(got) == 50 and set(got) <= set(lines[1:])          # doc-0 has weight 0
    assert got == sorted(got, key=lines.index)                    # input order
    weights.write_text(weights.read_text().replace("doc-3", "doc-x"))
    with pytest.raises(CorpusError, match="'doc-3' but .* has 'doc-x'"):
        resample_to_file(src, weights, tmp_path / "c.jsonl", fmt, target_docs=5)
    assert not (tmp_path / "c.jsonl").exists()                   # nothing half-written


# -- pruning and buckets ----------------------------------------------------------------------------
@pytest.mark.parametrize("criterion", ["low", "medium", "high"])
@pytest.mark.parametrize("n, rate", [(1000, 0.5), (999, 0.3), (7, 0.1), (10, 1.0), (10, 0.0)])
def test_prune_keeps_exact_fraction_and_band(criterion, n, rate):
    ppl = np.random.default_rng(n).lognormal(5, 1, n)
    keep = prune_mask(ppl, criterion, rate)
    assert keep.sum() == math.floor(rate * n + 0.5)
    if keep.all() or not keep.any():
        return
    kept, rest = ppl[keep], ppl[~keep]
    below, above = (rest < kept.min()).sum(), (rest > kept.max()).sum()
    assert below + above == len(rest)                              # a contiguous band
    if criterion == "low":
        assert below == 0
    elif criterion == "high":
        assert above == 0
    else:
        assert abs(int(below) - int(above)) <= 1


def test_reference_split_is_seeded_and_exact():
    a = reference_split(1001, 0.25, seed=2)
    assert a.sum() == 250
    np.testing.assert_array_equal(a, reference_split(1001, 0.25, seed=2))
    assert not np.array_equal(a, reference_split(1001, 0.25, seed=3))


def test_prune_with_reference_fraction_keeps_fields_order_and_band(tmp_path, shakespeare):
    lines = [json.dumps({"id": f"p{i}", "text": "\n".join(p), "extra": [i, {"k": None}]}, ensure_ascii=False)
             for i, p in enumerate(paragraphs(shakespeare))]
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(lines) + "\n")
    fmt = DocFormat("jsonl", id_field="id")
    info = prune_to_files(src, tmp_path / "kept.jsonl", fmt, ref_fraction=0.3, order=3, criterion="high",
                          rate=0.4, seed=7, rejected=tmp_path / "rej.jsonl", manifest=tmp_path / "m.json",
                          workers=1)
    kept = (tmp_path / "kept.jsonl").read_text().splitlines()
    rej = (tmp_path / "rej.jsonl").read_text().splitlines()
    n = len(lines)
    ref = reference_split(n, 0.3, seed=7)
    assert set(kept).isdisjoint(rej) and set(kept) | set(rej) == {ln for ln, r in zip(lines, ref) if not r}
    assert kept == sorted(kept, key=lines.index) and rej == sorted(rej, key=lines.index)
    assert len(kept) == math.floor(0.4 * (n - ref.sum()) + 0.5)
    assert info["counts"] == json.loads((tmp_path / "m.json").read_text())["counts"]
    assert info["counts"]["reference"] == ref.sum() and info["seed"] == 7
    # the band: under a model trained on the reference documents, every kept one is above every rejected one
    model = glm.train(lines=[ln for p, r in zip(paragraphs(shakespeare), ref) if r for ln in p], order=3, discount_fallback=True,
                      skip_symbols=True)
    ppl = {json.loads(ln)["id"]: s for ln, s in zip(lines, score_texts(model, read_documents(src, fmt)).perplexity)}
    assert min(ppl[json.loads(ln)["id"]] for ln in kept) >= max(ppl[json.loads(ln)["id"]] for ln in rej)


def test_buckets_by_own_percentiles_and_cutoff_csv(tmp_path, shakespeare, model_files):
    arpa, binary = model_files
    paras = paragraphs(shakespeare)[:600]
    langs = ["en", "fr", "xx"]
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"text": "\n".join(p), "lang": langs[i % 3]}) + "\n"
                           for i, p in enumerate(paras)))
    fmt = DocFormat("jsonl")
    ppl = score_texts(glm.load(binary), ["\n".join(p) for p in paras]).perplexity
    info = bucket_to_dir(src, binary, tmp_path / "own", fmt, workers=1)
    p30, p60 = np.percentile(ppl, [30, 60])
    want = {"head": int((ppl < p30).sum()), "middle": int(((ppl >= p30) & (ppl < p60)).sum()),
            "tail": int((ppl >= p60).sum()), "all": 0}
    assert info["counts"] == want
    assert abs(want["head"] - 0.3 * len(paras)) <= 1
    csv_text = (tmp_path / "own" / "cutoff.csv").read_text().splitlines()
    assert csv_text[0] == ",default" and len(csv_text) == 102
    # CCNet's format, two languages with fixed cutoffs: 'xx' has no column and goes to 'all'
    table = ",en,fr\n" + "".join(f"{p},{100 + p},{200 + 2 * p}\n" for p in range(101))
    (tmp_path / "cut.csv").write_text(table)
    info = bucket_to_dir(src, binary, tmp_path / "csv", fmt, cutoffs=(20, 70), cutoff_csv=tmp_path / "cut.csv",
                         lang_field="lang", workers=1)
    head = {"en": 120, "fr": 240}
    tail = {"en": 170, "fr": 340}
    want = {"head": 0, "middle": 0, "tail": 0, "all": 0}
    expect_lines = {b: [] for b in want}
    for i, p in enumerate(ppl):
        lang = langs[i % 3]
        b = "all" if lang == "xx" else "head" if p < head[lang] else "middle" if p < tail[lang] else "tail"
        want[b] += 1
        expect_lines[b].append(i)
    assert info["counts"] == want
    src_lines = src.read_text().splitlines()
    for b, idx in expect_lines.items():
        got = (tmp_path / "csv" / f"{b}.jsonl").read_text().splitlines() if idx else []
        assert got == [src_lines[i] for i in idx]


# -- command line -----------------------------------------------------------------------------------
def test_cli_score_per_doc_jsonl_and_tsv(tmp_path, model_files, capsys, kenlm):
    arpa, binary = model_files
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(json.dumps({"m": {"id": i}, "text": t}) for i, t in
                             enumerate(["the king", "my lord\nzzq"])) + "\n")
    out = tmp_path / "s.jsonl"
    assert main(["score", str(binary), str(src), "--per-doc", "-o", str(out), "--format", "jsonl",
                 "--id-field", "m.id", "-q", "-j", "1"]) == 0
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    ken = kenlm.Model(str(arpa))
    assert [r["id"] for r in rows] == ["0", "1"]
    for r, t in zip(rows, ["the king", "my lord\nzzq"]):
        tok, oov, lp, tol = kenlm_doc(ken, t.split("\n"))
        assert (r["tokens"], r["oovs"]) == (tok, oov)
        assert abs(r["log10_prob"] - lp) <= tol
        assert math.isclose(r["perplexity"], 10 ** (-r["log10_prob"] / r["tokens"]), rel_tol=1e-12)
    manifest = json.loads((tmp_path / "s.jsonl.manifest.json").read_text())
    assert "</s>" in manifest["perplexity_definition"] and manifest["totals"]["documents"] == 2
    tsv = tmp_path / "s.tsv"
    assert main(["score", str(binary), str(src), "--per-doc", "-o", str(tsv), "--format", "jsonl", "-q",
                 "-j", "1"]) == 0
    head, cols, *body = tsv.read_text().splitlines()
    assert head.startswith("# perplexity = 10^(-log10_prob / tokens)")
    assert cols == "id\ttokens\toovs\tlog10_prob\tperplexity" and len(body) == 2
    assert body[0].split("\t")[0] == f"{src}:1"


def test_cli_errors_name_file_and_line(tmp_path, model_files, capsys):
    arpa, binary = model_files
    src = tmp_path / "d.jsonl"
    src.write_text('{"text": "a"}\n{"text": "b"\n')
    out = tmp_path / "s.jsonl"
    assert main(["score", str(binary), str(src), "--per-doc", "-o", str(out), "--format", "jsonl", "-q",
                 "-j", "1"]) == 1
    assert f"glm score: error: {src}:2: malformed JSON" in capsys.readouterr().err
    assert not out.exists()
    assert main(["score", str(binary), str(src), "--per-doc", "-o", str(out), "--format", "jsonl",
                 "--on-bad-json", "skip", "-j", "1"]) == 0
    assert "1 malformed lines skipped" in capsys.readouterr().err
    assert json.loads((tmp_path / "s.jsonl.manifest.json").read_text())["totals"]["skipped"] == 1
    assert main(["prune", "-", "--model", str(binary), "--criterion", "low", "--rate", "0.5",
                 "-o", str(tmp_path / "k.txt")]) == 1
    assert "stdin" in capsys.readouterr().err
    if hasattr(os, "mkfifo"):          # a pipe given by path is refused as stdin is (not read twice)
        fifo = tmp_path / "pipe"
        with fifo_feeding(fifo, src.read_bytes(), timeout=10):
            assert main(["prune", str(fifo), "--model", str(binary), "--criterion", "low", "--rate", "0.5",
                         "-o", str(tmp_path / "k.txt")]) == 1
        assert f"{fifo} (a pipe) cannot be: save it to a file" in capsys.readouterr().err


def test_cli_softdedup_resample_and_plot(tmp_path, brown, capsys):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    src = tmp_path / "b.txt"
    src.write_text("".join(ln + "\n" for ln in brown[:3000]))
    w = tmp_path / "w.jsonl"
    assert main(["softdedup", str(src), "-o", str(w), "--order", "3", "--segments", "5", "--normalize",
                 "tokens", "--manifest", str(tmp_path / "m.json"), "--plot", str(tmp_path / "c.png"),
                 "-q", "-j", "1"]) == 0
    rows = [json.loads(ln) for ln in w.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"{src}:{i}" for i in range(1, 3001)]
    assert [r["tokens"] for r in rows] == [len(ln.split()) + 1 for ln in brown[:3000]]
    assert {r["segment"] for r in rows} == set(range(5))
    assert math.isclose(sum(r["weight"] * r["tokens"] for r in rows), sum(r["tokens"] for r in rows),
                        rel_tol=1e-9)
    # the plot: an 8 x 4.5 inch figure at 100 dpi, the histogram's bars in their colour over a good part
    # of it, and the 4 segment boundaries as lines in the next colours of the cycle
    png = imread(tmp_path / "c.png")
    assert png.shape[:2] == (450, 800)
    rgb = (png[..., :3] * 255).round().astype(int)

    def share(color):
        return np.mean(np.all(np.abs(rgb - [int(color[i:i + 2], 16) for i in (1, 3, 5)]) <= 8, axis=-1))
    assert share("#4c72b0") > 0.02, "no histogram bars"
    assert share("#ffffff") < 0.95
    for line in ("#ff7f0e", "#2ca02c", "#d62728", "#9467bd"):       # matplotlib's C1 .. C4
        assert share(line) > 0.0005, f"no boundary line in {line}"
    # resampling: seeded, documents of the input, and the tokens drawn just reach the target
    tokens = {ln: len(ln.split()) + 1 for ln in brown[:3000]}
    outs = []
    for name in ("r1.txt", "r2.txt"):
        assert main(["resample", str(src), "--weights", str(w), "--target-tokens", "20000", "--seed", "5",
                     "-o", str(tmp_path / name), "-q"]) == 0
        outs.append((tmp_path / name).read_text())
    drawn = outs[0].splitlines()
    assert outs[0] == outs[1] and set(drawn) <= set(brown[:3000])
    total = sum(tokens[ln] for ln in drawn)
    assert 20000 <= total < 20000 + max(tokens.values())
    assert main(["resample", str(src), "--weights", str(w), "--target-tokens", "20000", "--seed", "6",
                 "-o", str(tmp_path / "r3.txt"), "-q"]) == 0
    assert (tmp_path / "r3.txt").read_text() != outs[0]


def test_output_to_a_special_file_writes_into_it(tmp_path, model_files):
    """A FIFO (like /dev/null or /dev/stdout) is written to, never replaced by a renamed temporary file."""
    import os
    import stat
    import threading
    arpa, binary = model_files
    src = tmp_path / "t.txt"
    src.write_text("the king\nmy lord\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    assert main(["score", str(binary), str(src), "--per-doc", "-o", str(fifo), "--manifest", "none", "-q",
                 "-j", "1"]) == 0
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [json.loads(r)["id"] for r in got[0].splitlines()] == [f"{src}:1", f"{src}:2"]
