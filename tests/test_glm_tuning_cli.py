"""GLM tuning, the paper's evaluation protocol and the command line."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import glm
from glm.build import count
from glm.cli import main
from glm.generalized import estimate
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.patterns import children
from glm.paper.protocols import sequence_perplexity
from glm.tune import cross_entropy, heldout_ids, tune
from helpers import random_corpus
from reference_glm import ReferenceGLM

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    sents = random_corpus(11, vocab_size=300, n_sentences=2500)
    lines = [" ".join(s) for s in sents]
    (d / "train.txt").write_text("\n".join(lines[:2000]) + "\n")
    (d / "valid.txt").write_text("\n".join(lines[2000:2250]) + "\n")
    (d / "test.txt").write_text("\n".join(lines[2250:]) + "\n")
    return d


@pytest.mark.parametrize("method", ["glm", "mkn"])
def test_tuning_lowers_heldout_entropy_and_stays_normalized(corpus, method):
    vocab, levels = count([corpus / "train.txt"], 4)
    model = GeneralizedModel(vocab, estimate(levels, 4, method, Options(discount_fallback=()), keep_stats=True))
    ids = heldout_ids(model, [corpus / "valid.txt"])
    before = cross_entropy(model, ids)
    tuned = tune(model, [corpus / "valid.txt"])
    assert cross_entropy(tuned, ids) < before
    if method == "glm":
        kids = {m: len(children(m)) for m in tuned.weights}
        assert tuned.weights and all(len(w) == kids[m] > 1 for m, w in tuned.weights.items())
        assert all(min(w) >= 0 and abs(sum(w) - 1) < 1e-9 for w in tuned.weights.values())
        assert any(max(w) - min(w) > 0.05 for w in tuned.weights.values())     # (not left uniform)
    words = [w for w in tuned.vocab if w != "<s>"]
    for ctx in ([], ["<s>"], ["w1", "w2", "w3"], ["w7", "never", "w3"]):
        assert abs(math.fsum(10.0 ** tuned.logprob(w, ctx) for w in words) - 1.0) < 1e-9


def test_paper_protocol_is_the_chain_rule(tmp_path):
    sents = random_corpus(4, vocab_size=15, n_sentences=80)
    fixed = (0.5, 1.0, 1.5)
    vocab, levels = count(lines=[" ".join(s) for s in sents], order=3)
    model = GeneralizedModel(vocab, estimate(levels, 3, "glm", fixed_discounts=fixed))
    ref = ReferenceGLM(sents, 3, "glm", discounts=fixed)
    seqs = [s[:5] for s in sents[:30] if len(s) >= 5] + [["<s>", "w1", "w2", "oov", "w3"], ["w1", "w2", "w3", "w4", "</s>"]]
    (tmp_path / "seq.txt").write_text("\n".join(" ".join(s) for s in seqs) + "\n")
    for n in (3, 5):
        total = tokens = 0
        for s in seqs:
            s = ["oov" if w in ("<s>", "</s>") else w for w in s[:n]]   # boundary tokens are OOVs here
            total += sum(math.log10(ref.prob(w, tuple(s[:i]))) for i, w in enumerate(s))
            tokens += len(s)
        res = sequence_perplexity(model, [tmp_path / "seq.txt"], n)
        assert res["tokens"] == tokens and res["sequences"] == len(seqs)
        assert res["perplexity"] == pytest.approx(10.0 ** (-total / tokens), rel=1e-6)   # float32 alphas


def reference_perplexity(ref, lines) -> tuple[float, float]:
    """Perplexity (and excluding OOVs) of lines under the reference GLM, counted as KenLM's query: each
    line is <s> w1 .. wn </s>, every word and </s> a token, unknown words scored as <unk>."""
    total = oov_total = 0.0
    tokens = oovs = 0
    for line in lines:
        words = line.split()
        for i, w in enumerate(words + ["</s>"]):
            lp = math.log10(ref.prob(w, tuple(["<s>"] + words[:i])))
            total += lp
            tokens += 1
            if w not in ref.known:
                oovs += 1
                oov_total += lp
    return 10.0 ** (-total / tokens), 10.0 ** (-(total - oov_total) / (tokens - oovs))


def test_cli_build_score_info_glm(tmp_path, capsys):
    """glm build --method glm, then glm score, give the perplexity of the pure-Python reference GLM
    (its own discounts; float32 storage of glm's tables) on the first lines of the Shakespeare data."""
    import gzip
    with gzip.open(DATA / "shakespeare-train.txt.gz", "rt", encoding="utf-8") as f:
        train_lines = [next(f).rstrip("\n") for _ in range(3000)]
    with gzip.open(DATA / "shakespeare-test.txt.gz", "rt", encoding="utf-8") as f:
        test_lines = [next(f).rstrip("\n") for _ in range(400)]
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("".join(ln + "\n" for ln in train_lines), encoding="utf-8")
    test.write_text("".join(ln + "\n" for ln in test_lines), encoding="utf-8")
    out = tmp_path / "m.glmb"
    assert main(["build", "--order", "3", "--method", "glm", str(train), "-o", str(out), "-q", "--tune-split", "0"]) == 0
    assert main(["score", str(out), str(test), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ref = ReferenceGLM([ln.split() for ln in train_lines], 3, "glm")
    ppl, ppl_in_vocab = reference_perplexity(ref, test_lines)
    # each probability carries a few float32 epsilons (1.2e-7) of relative error, so does their mean
    assert summary["perplexity"] == pytest.approx(ppl, rel=5e-7)
    assert summary["perplexity_excluding_oov"] == pytest.approx(ppl_in_vocab, rel=5e-7)
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "glm" and set(info["patterns"]) == {"1", "11", "101", "111"}
    # a GLM cannot be written as ARPA, and the error names the formats it can be written in
    assert main(["build", "--order", "3", "--method", "glm", str(train), "-o", str(tmp_path / "m.arpa")]) == 1
    assert ".glm" in capsys.readouterr().err
    assert not (tmp_path / "m.arpa").exists()


def test_cli_tune_and_paper_eval(corpus, tmp_path, capsys):
    """glm build --tune writes the model tune() returns; its weights lower the perplexity of the held-out
    text (and of the test text) against the untuned model's; paper-eval prints sequence_perplexity of
    the model it trains, which is the reference GLM's chain rule."""
    train, valid, test = (str(corpus / f) for f in ("train.txt", "valid.txt", "test.txt"))
    out = tmp_path / "tuned.glm"
    assert main(["build", "--order", "3", "--method", "glm", train, "--tune", valid, "--discount-fallback",
                 "-o", str(out), "-q"]) == 0
    written = glm.load(out)
    tuned = glm.train([train], 3, method="glm", tune=[valid], discount_fallback=True)   # tune()'s result
    untuned = glm.train([train], 3, method="glm", discount_fallback=True, tune_split=0)
    assert isinstance(written, GeneralizedModel) and written.weights == tuned.weights
    assert written.tables.discounts == tuned.tables.discounts
    assert any(max(w) - min(w) > 0.05 for w in written.weights.values())      # not left uniform
    lines = (corpus / "test.txt").read_text().splitlines()
    np.testing.assert_array_equal(written.score_many(lines), tuned.score_many(lines))
    for heldout in (valid, test):
        assert written.evaluate([heldout]).perplexity < untuned.evaluate([heldout]).perplexity - 0.5

    assert main(["paper-eval", "--train", train, "--test", test, "--order", "3", "--method", "glm",
                 "--discount-fallback", "--json", "-q"]) == 0
    res = json.loads(capsys.readouterr().out)
    want = sequence_perplexity(untuned, [test], 3)
    assert {k: res[k] for k in want} == want
    assert (res["order"], res["method"], res["tuned"], res["sequences"]) == (3, "glm", False, 250)
    sents = [ln.split() for ln in (corpus / "train.txt").read_text().splitlines()]
    ref = ReferenceGLM(sents, 3, "glm")
    total = tokens = 0
    for line in lines:
        s = line.split()[:3]
        total += sum(math.log10(ref.prob(w, tuple(s[:i]))) for i, w in enumerate(s))
        tokens += len(s)
    assert res["tokens"] == tokens
    assert res["perplexity"] == pytest.approx(10.0 ** (-total / tokens), rel=5e-7)   # float32 tables
    # tuned: paper-eval --tune scores the model tune() returns
    assert main(["paper-eval", "--train", train, "--test", test, "--order", "3", "--method", "glm",
                 "--tune", valid, "--discount-fallback", "--json", "-q"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["tuned"] is True and res["perplexity"] == sequence_perplexity(tuned, [test], 3)["perplexity"]
    assert res["perplexity"] < want["perplexity"]
