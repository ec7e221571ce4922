"""The next-word distribution (next_logprobs, next_words), seeded sampling (generate) and entropy, for
back-off and GLM models."""
from __future__ import annotations

import collections
import math
import random

import numpy as np
import pytest

import glm
from helpers import random_corpus, to_lines


def contexts(model, seed, n=25):
    rng = random.Random(seed)
    words = [w for w in model.vocab if w not in ("<s>", "</s>")]
    out = [(), ("<s>",), ("oov",), ("<s>", "oov"), ("</s>",)]
    for _ in range(n):
        ctx = [rng.choice(words) for _ in range(rng.randint(1, model.order + 1))]
        out.append(tuple(["<s>"] + ctx if rng.random() < 0.5 else ctx))
    return out


@pytest.fixture(params=[("mkn", 2), ("mkn", 3), ("mkn", 5), ("glm", 3), ("glm", 4)],
                ids=lambda p: f"{p[0]}{p[1]}")
def model(request):
    method, order = request.param
    sentences = random_corpus(500 + order, n_sentences=300, unk_prob=0.01)
    return glm.train(lines=to_lines(sentences), order=order, method=method, discount_fallback=True, tune_split=0,
                     prune=(0, 1) if order == 5 else ())


def test_distribution_sums_to_one(model):
    for ctx in contexts(model, 1):
        lp = model.next_logprobs(ctx)
        assert lp.shape == (len(model.vocab),) and lp[1] == -np.inf
        assert math.fsum(10.0 ** lp) == pytest.approx(1.0, abs=1e-5), ctx


def test_distribution_is_logprob(model):
    """Every entry is the scorer's log10 p(w | context), as logprob and score give it."""
    for ctx in contexts(model, 2, 8):
        lp = model.next_logprobs(ctx)
        for i, w in enumerate(model.vocab):
            if w != "<s>":
                assert lp[i] == pytest.approx(model.logprob(w, ctx), abs=1e-5), (w, ctx)


def test_next_words_top_k(model):
    for ctx in contexts(model, 3, 6):
        lp = model.next_logprobs(ctx)
        words = list(model.vocab)
        want = sorted((i for i in range(len(words)) if i != 1), key=lambda i: (-lp[i], i))
        top = model.next_words(ctx, k=5)
        assert [w for w, _ in top] == [words[i] for i in want[:5]]
        assert [p for _, p in top] == [lp[i] for i in want[:5]]
        everything = model.next_words(ctx, k=None)
        assert len(everything) == len(words) - 1 and "<s>" not in dict(everything)
    assert model.next_words((), k=0) == []
    with pytest.raises(TypeError):
        model.next_words("a string")


def test_next_words_like_kenlm(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    m = glm.train(lines=to_lines(random_corpus(511, n_sentences=300)), order=4, discount_fallback=True)
    m.save(tmp_path / "m.arpa")
    k = kenlm.Model(str(tmp_path / "m.arpa"))
    for ctx in contexts(m, 4, 6):
        if "oov" in ctx or "</s>" in ctx:
            continue
        lp = m.next_logprobs(ctx)
        for i, w in enumerate(m.vocab):
            if w in ("<s>", "<unk>"):
                continue
            s, t = kenlm.State(), kenlm.State()
            if ctx and ctx[0] == "<s>":
                k.BeginSentenceWrite(s)
            else:
                k.NullContextWrite(s)
            for c in ctx[1:] if ctx and ctx[0] == "<s>" else ctx:
                k.BaseScore(s, c, t)
                s, t = t, s
            assert lp[i] == pytest.approx(k.BaseScore(s, w, t), abs=1e-4), (w, ctx)


def test_generate_is_seeded(model):
    a = model.generate(20, seed=7, max_words=30)
    assert a == model.generate(20, seed=7, max_words=30) and len(a) == 20
    assert a != model.generate(20, seed=8, max_words=30)
    assert all(len(s.split()) <= 30 for s in a)
    assert all(s.startswith("w1 ") or s == "w1" for s in model.generate(5, seed=1, prefix=["w1"]))
    assert model.generate(3, seed=1, max_words=0) == ["", "", ""]
    vocab = set(model.vocab)
    assert all(w in vocab for s in a for w in s.split())


def test_sampling_frequencies():
    """First and second words of sampled sentences follow the model's probabilities (within 5 sigma)."""
    m = glm.train(lines=["a b", "a c", "b a", "a", "c c b", "b b"], order=2, discount_fallback=True)
    n = 20000
    first = collections.Counter((s.split() or ["</s>"])[0] for s in m.generate(n, seed=3, max_words=1))
    p = dict(zip(m.vocab, 10.0 ** m.next_logprobs(["<s>"])))
    assert set(first) <= {w for w in p if p[w] > 0 and w != "<s>"}
    for w, pw in p.items():
        if w != "<s>":
            assert abs(first[w] / n - pw) < 5 * math.sqrt(pw * (1 - pw) / n) + 1e-9, (w, first[w] / n, pw)
    after_a = collections.Counter((s.split() + ["</s>"])[1] for s in m.generate(n, seed=4, prefix=["a"], max_words=2))
    q = dict(zip(m.vocab, 10.0 ** m.next_logprobs(["<s>", "a"])))
    for w, pw in q.items():
        if w != "<s>":
            assert abs(after_a[w] / n - pw) < 5 * math.sqrt(pw * (1 - pw) / n) + 1e-9, (w, after_a[w] / n, pw)


def test_entropy(model, tmp_path):
    lines = to_lines(random_corpus(99, n_sentences=50))
    ev = model.evaluate(lines=lines)
    assert model.entropy(lines=lines) == pytest.approx(math.log2(ev.perplexity))
    assert ev.entropy == pytest.approx(-ev.log10_prob / ev.tokens * math.log2(10))
    (tmp_path / "t.txt").write_text("".join(line + "\n" for line in lines))
    assert model.entropy(str(tmp_path / "t.txt")) == pytest.approx(model.entropy(lines=lines))
