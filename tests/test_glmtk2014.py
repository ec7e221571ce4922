"""The 2014 toolkit's models (glmtk2014, glmtk2014-mkn): against an independent pure-Python model of the
toolkit (reference_glmtk2014), and the paper's published perplexities on its own data."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

import glm
from glm.cli import main
from glm.paper.protocols import sequence_perplexity
from helpers import corpus_path, random_corpus
from reference_glmtk2014 import ReferenceGLMTK

METHODS = {"glmtk2014": True, "glmtk2014-mkn": False}


def sequences(sents: list[list[str]], n: int, rng: random.Random) -> list[list[str]]:
    """n-word windows of <s> .. </s>-padded sentences, as the paper's test sets were cut."""
    out = []
    for s in sents:
        toks = ["<s>"] + s + ["</s>"]
        out += [toks[i:i + n] for i in range(len(toks) - n + 1) if rng.random() < 0.5]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    sents = random_corpus(5, vocab_size=120, n_sentences=1600)
    train, test = sents[:1400], sents[1400:]
    rng = random.Random(3)
    for s in [s for s in test if s][:40]:     # some words the training text never saw
        s[rng.randrange(len(s))] = f"oov{rng.randrange(5)}"
    d = tmp_path_factory.mktemp("glmtk")
    (d / "train.txt").write_text("".join(" ".join(s) + "\n" for s in train))
    return d, train, test


@pytest.mark.parametrize("order", [3, 4, 5])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_matches_the_reference_toolkit(data, method, order):
    d, train, test = data
    ref = ReferenceGLMTK(train, order, METHODS[method])
    model = glm.train(d / "train.txt", order, method=method)
    seqs = sequences(test, 5, random.Random(order))
    worst = 0.0
    for seq in seqs[:300]:
        for k in range(1, order + 1):
            want = math.log10(max(ref.top(tuple(seq[:k])), 0.0) or 1e-12)
            got = model.logprob(seq[k - 1], seq[:k - 1])
            worst = max(worst, abs(got - want) / max(1.0, abs(want)))
    assert worst < 1e-6                       # alphas are float32
    # the protocol: per word over the first `order` words of each line, <s> and </s> known
    (d / f"seq{order}.txt").write_text("".join(" ".join(s) + "\n" for s in seqs))
    res = sequence_perplexity(model, d / f"seq{order}.txt", order)
    cut = [s[:order] for s in seqs]
    want = 10 ** (-sum(ref.log10prob(s) for s in cut) / sum(len(s) for s in cut))
    assert res["perplexity"] == pytest.approx(want, rel=1e-6)
    assert res["tokens"] == sum(len(s) for s in cut)


def test_the_toolkit_models_are_not_normalized(data):
    """What the compatibility modes are for: the toolkit's sums are not 1 (docs/glm.md)."""
    d, train, _ = data
    words = sorted({w for s in train for w in s} | {"</s>"})
    for method in METHODS:
        model = glm.train(d / "train.txt", 3, method=method)
        sums = [math.fsum(10 ** model.logprob(w, ctx) for w in words) for ctx in (["w1", "w2"], ["w5", "w9"])]
        assert any(abs(s - 1) > 1e-3 for s in sums), (method, sums)


@pytest.mark.parametrize("method", METHODS)
def test_file_round_trips(data, tmp_path, method):
    """Binary and .glm text (plain or compressed) give back the same model, tops included."""
    d, _, test = data
    model = glm.train(d / "train.txt", 4, method=method)
    lines = [" ".join(s) for s in test[:200]]
    want = model.score_many(lines)
    seqs = tmp_path / "seq.txt"
    seqs.write_text("".join(" ".join(q) + "\n" for q in sequences(test[:100], 4, random.Random(1))))
    for name in ("m.glmb", "m.glm", "m.glm.gz"):
        model.save(tmp_path / name)
        back = glm.load(tmp_path / name)
        assert back.method == method and back.tables.compat.discounts == model.tables.compat.discounts
        assert np.array_equal(back.score_many(lines), want), name
        assert back.logprob("<s>") == model.logprob("<s>")
        assert sequence_perplexity(back, seqs, 4) == sequence_perplexity(model, seqs, 4)
    with pytest.raises(ValueError, match="not tuned"):
        glm.train(d / "train.txt", 3, method=method, tune=[d / "train.txt"])


def test_bad_toolkit_text_file(data, tmp_path):
    """A .glm file of a toolkit model whose tops are damaged is an error naming the file (and line)."""
    d, _, _ = data
    glm.train(d / "train.txt", 3, method="glmtk2014").save(tmp_path / "m.glm")
    text = (tmp_path / "m.glm").read_text()
    cut = text.index("\\top 11:\\\n") + len("\\top 11:\\\n")
    bad = {"missing.glm": text[:cut] + text[cut:].split("\n", 1)[1],            # one alpha fewer
           "compat.glm": text.replace("compat extra=", "compat extra=x", 1),
           "top1.glm": text.replace("\\top 1:\\", "\\top one:\\", 1)}
    for name, t in bad.items():
        (tmp_path / name).write_text(t)
        with pytest.raises(glm.ModelFormatError, match=name):
            glm.load(tmp_path / name)
    line = text[:text.index("compat extra=")].count("\n") + 1
    with pytest.raises(glm.ModelFormatError, match=f"compat.glm:{line}: bad compat line"):
        glm.load(tmp_path / "compat.glm")


def test_published_perplexities_of_the_paper(tmp_path, capsys):
    """Pickhardt et al. (2014), Table 4, 0.008% row: the toolkit's own training text and test sequences.
    In-vocabulary figures: the sequences whose n words are all training words (docs/glm.md §5.2)."""
    train = corpus_path("glm-paper-en0008t/en0008t.train.txt.gz")
    test = corpus_path("glm-paper-en0008t/en0008t.testing.5.gz")
    published = {"glmtk2014-mkn": ((1212.1, 1120.5, 1009.6), (634.5, 562.4, 535.3)),
                 "glmtk2014": ((1025.6, 875.5, 750.3), (585.0, 494.2, 455.2))}
    for method, (ppl, inv) in published.items():
        for n, want, want_inv in zip((3, 4, 5), ppl, inv):
            res = sequence_perplexity(glm.train(train, n, method=method), test, n)
            assert (round(res["perplexity"], 1), round(res["perplexity_in_vocabulary"], 1)) == (want, want_inv)
    assert main(["paper-eval", "--train", str(train), "--test", str(test), "--order", "3", "--method",
                 "glmtk2014", "--json", "-q"]) in (0, None)
    assert round(json.loads(capsys.readouterr().out)["perplexity"], 1) == 1025.6
