"""GLM tuning, the paper's evaluation protocol and the command line."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import glm
from glm.build import count
from glm.cli import main
from glm.generalized import estimate
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.patterns import children
from glm.protocols import sequence_perplexity
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
    tuned = tune(model, [corpus / "valid.txt"], rounds=1, iters=6)
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


def test_cli_build_score_info_glm(tmp_path, capsys):
    train, test = DATA / "shakespeare-train.txt.gz", DATA / "shakespeare-test.txt.gz"
    out = tmp_path / "m.glmb"
    assert main(["build", "--order", "3", "--method", "glm", str(train), "-o", str(out), "-q"]) == 0
    assert main(["score", str(out), str(test), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = glm.train([train], 3, method="glm").evaluate([test])
    assert summary["perplexity"] == pytest.approx(expected.perplexity, rel=1e-12)
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "glm" and set(info["patterns"]) == {"1", "11", "101", "111"}
    # a GLM cannot be written as ARPA, and the error names the formats it can be written in
    assert main(["build", "--order", "3", "--method", "glm", str(train), "-o", str(tmp_path / "m.arpa")]) == 1
    assert ".glm" in capsys.readouterr().err
    assert not (tmp_path / "m.arpa").exists()


def test_cli_tune_and_paper_eval(corpus, tmp_path, capsys):
    out = tmp_path / "tuned.glm"
    assert main(["build", "--order", "3", "--method", "glm", str(corpus / "train.txt"), "--tune",
                 str(corpus / "valid.txt"), "--discount-fallback", "-o", str(out), "-q"]) == 0
    model = glm.load(out)
    assert isinstance(model, GeneralizedModel) and model.weights
    assert main(["paper-eval", "--train", str(corpus / "train.txt"), "--test", str(corpus / "test.txt"),
                 "--order", "3", "--method", "mkn", "--discount-fallback", "--json", "-q"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["order"] == 3 and res["perplexity"] > 1 and res["sequences"] == 250
