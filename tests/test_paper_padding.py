"""Paper padding (glm.paper.padding): the reference notes' conventions for their normalized en0008t figures,
against the independent pure-Python model (reference_glm, padding="paper"), and the figures themselves."""
from __future__ import annotations

import gzip
import json
import random

import pytest

import glm
from glm.paper import padding
from glm.cli import main
from glm.paper.protocols import sequence_perplexity
from helpers import corpus_path, random_corpus
from reference_glm import ReferenceGLM

PAD = padding.WORD.decode()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    sents = random_corpus(5, vocab_size=1500, n_sentences=3000)   # discounts of every top defined
    train, test = sents[:2700], [s for s in sents[2700:] if s]
    rng = random.Random(7)
    for s in test[:40]:                          # words the training text never saw
        s[rng.randrange(len(s))] = f"oov{rng.randrange(5)}"
    seqs = []                                    # windows of <s> .. </s>, as the paper's test sets
    for s in test:
        toks = ["<s>"] + s + ["</s>"]
        seqs += [toks[i:i + 5] for i in range(len(toks) - 4)]
    d = tmp_path_factory.mktemp("padding")
    (d / "train.txt").write_text("".join(" ".join(s) + "\n" for s in train))
    (d / "seq.txt").write_text("".join(" ".join(s) + "\n" for s in seqs))
    return d, train, seqs


@pytest.mark.parametrize("order", [3, 4, 5])
@pytest.mark.parametrize("method", ["glm", "glm-abs", "mkn"])
def test_matches_the_reference(data, method, order):
    d, train, seqs = data
    ref = ReferenceGLM(train, order, method, padding="paper")
    model = glm.train(d / "train.txt", order, method=method, padding="paper")
    cut = [s[:order] for s in seqs]
    worst = 0.0
    for seq in cut[:200]:
        ctx = [PAD if w == "<s>" else w for w in seq]          # the notes' <s> is the pad word
        for k in range(1, len(seq) + 1):
            want = ref.sequence_log10prob(seq[:k]) - ref.sequence_log10prob(seq[:k - 1])
            word = "<unk>" if seq[k - 1] == "<s>" else seq[k - 1]
            got = model.logprob(word, ctx[:k - 1])
            worst = max(worst, abs(got - want) / max(1.0, abs(want)))
    assert worst < 1e-6                                        # alphas are float32
    res = sequence_perplexity(model, d / "seq.txt", order)
    want = 10 ** (-sum(ref.sequence_log10prob(s) for s in cut) / sum(len(s) for s in cut))
    assert res["tokens"] == sum(len(s) for s in cut)
    assert res["oovs"] == sum(1 for s in cut for w in s if w not in ref.known)
    assert res["perplexity"] == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("method", ["glm", "mkn"])
def test_every_factor_sums_to_one(data, method):
    """Each top (of every length) is a distribution over the vocabulary without <s> and the pad word."""
    d, train, _ = data
    order = 4
    model = glm.train(d / "train.txt", order, method=method, padding="paper")
    words = [w for w in model.vocab if w not in ("<s>", PAD)]
    s = next(s for s in train if len(s) >= 3)
    contexts = [(), (PAD,), (s[0],), ("oov",), (PAD, PAD), (PAD, s[0]), tuple(s[:2]), (s[0], "oov"),
                (PAD, PAD, PAD), (PAD, PAD, s[0]), (PAD, s[0], s[1]), tuple(s[:3]), ("oov", s[1], s[2])]
    for ctx in contexts:
        total = sum(10.0 ** model.logprob(w, ctx) for w in words)
        assert total == pytest.approx(1.0, abs=1e-9), ctx
    assert model.logprob(PAD, (s[0],)) == pytest.approx(model.logprob("<unk>", (s[0],)), abs=1e-12)


def test_only_for_paper_eval(data, tmp_path):
    d, _, _ = data
    for kw in (dict(method="glmtk2014"), dict(method="glm", output=tmp_path / "m.glmb"),
               dict(method="glm", tune=[d / "train.txt"]), dict(method="glm", dask="local")):
        with pytest.raises(ValueError):
            glm.train(d / "train.txt", 3, padding="paper", **kw)
    model = glm.train(d / "train.txt", 3, method="glm", padding="paper")
    with pytest.raises(ValueError, match="paper-eval. only"):
        model.save(tmp_path / "m.glmb")
    assert not (tmp_path / "m.glmb").exists()
    with pytest.raises(ValueError, match="padding"):
        glm.train(d / "train.txt", 3, method="glm", padding="notes")


@pytest.mark.parametrize("method, ppl, inv", [
    ("mkn", (1311.7, 1162.7, 1021.4), (612.5, 541.4, 514.4)),
    ("glm", (1314.8, 1175.9, 1055.4), (619.9, 558.4, 543.5)),
    ("glm-abs", (1321.1, 1179.6, 1054.8), (619.0, 555.3, 537.6))])
def test_reference_notes_normalized_figures(method, ppl, inv, capsys):
    """The reference notes' normalized rows on en0008t (glm.md §4.4), n = 3 / 4 / 5."""
    train = corpus_path("glm-paper-en0008t/en0008t.train.txt.gz")
    test = corpus_path("glm-paper-en0008t/en0008t.testing.5.gz")
    for n, want, want_inv in zip((3, 4, 5), ppl, inv):
        assert main(["paper-eval", "--train", str(train), "--test", str(test), "--order", str(n),
                     "--method", method, "--padding", "paper", "--json", "-q"]) in (0, None)
        res = json.loads(capsys.readouterr().out)
        assert (round(res["perplexity"], 1), round(res["perplexity_in_vocabulary"], 1)) == (want, want_inv)


def test_the_reference_gives_the_figures_too():
    """The independent reference, written from the notes' equations, prints the notes' n = 3 figures."""
    with gzip.open(corpus_path("glm-paper-en0008t/en0008t.train.txt.gz"), "rt") as f:
        train = [ln.split() for ln in f]
    with gzip.open(corpus_path("glm-paper-en0008t/en0008t.testing.5.gz"), "rt") as f:
        seqs = [ln.split()[:3] for ln in f]
    for method, want in (("mkn", (1311.7, 612.5)), ("glm", (1314.8, 619.9))):
        ref = ReferenceGLM(train, 3, method, padding="paper")
        lp = [ref.sequence_log10prob(s) for s in seqs]
        inv = [i for i, s in enumerate(seqs) if all(w in ref.known and w not in ("<s>", "</s>") for w in s)]
        ppl = 10 ** (-sum(lp) / (3 * len(seqs)))
        ppl_inv = 10 ** (-sum(lp[i] for i in inv) / (3 * len(inv)))
        assert (round(ppl, 1), round(ppl_inv, 1)) == want
