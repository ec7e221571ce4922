"""Models trained by glm are probability distributions: for any context, the probabilities of every
vocabulary word but <s> (</s> and <unk> included) sum to 1 (within float32 storage error)."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

import glm
from helpers import context_sets, random_corpus, read_corpus_lines, split_line, to_lines

TOL = 1e-5


def distribution_sum(model, ctx, words) -> float:
    return math.fsum(10.0 ** model.logprob(w, ctx) for w in words)


def assert_normalized(model, sentences, seed, per_length=6, max_seen=40):
    rng = random.Random(seed)
    vocab = list(model.vocab)
    words = [w for w in vocab if w != "<s>"]
    assert "<unk>" in words and "</s>" in words
    ctxs = context_sets(model.order, sentences, rng, vocab, per_length, max_seen)
    # every length from 0 to order - 1 and longer is represented
    assert {len(c) for c in ctxs} >= set(range(model.order + 1))
    bad = []
    for ctx in ctxs:
        total = distribution_sum(model, ctx, words)
        if not abs(total - 1.0) < TOL:
            bad.append((ctx, total))
    assert not bad, f"{len(bad)} of {len(ctxs)} contexts do not sum to 1, e.g. {bad[:5]}"


def train(sentences, order, **kw):
    try:
        return glm.train(lines=to_lines(sentences), order=order, **kw)
    except glm.DiscountError:
        return glm.train(lines=to_lines(sentences), order=order, discount_fallback=True, **kw)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [101, 102, 103, 104])
def test_random_unpruned(seed, order):
    sentences = random_corpus(seed)
    assert_normalized(train(sentences, order), sentences, seed)


@pytest.mark.parametrize("prune", [(0, 1), (0, 1, 1), (0, 1, 2), (0, 0, 1), (0, 3), (1, 1, 2), (2,)])
@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [111, 112])
def test_random_pruned(seed, order, prune):
    sentences = random_corpus(seed, vocab_size=120 if prune[0] else None, n_sentences=300)
    model = train(sentences, order, prune=prune)
    full = train(sentences, order)
    if max(prune[1:order], default=0) > 0:
        assert sum(model.counts) < sum(full.counts), "nothing was pruned"
    assert_normalized(model, sentences, seed)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_random_without_unigram_interpolation(order):
    sentences = random_corpus(121)
    assert_normalized(train(sentences, order, interpolate_unigrams=False), sentences, 121)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_random_with_literal_unk(order):
    sentences = random_corpus(131, unk_prob=0.05)
    assert_normalized(train(sentences, order), sentences, 131)


def test_vocab_pad_leaves_mass_to_unseen_words():
    """With vocab_pad > V the uniform part is spread over pad words: the vocabulary sums to less
    than 1, by exactly gamma() * (pad - V) / pad in the unigram distribution."""
    sentences = random_corpus(141)
    plain = train(sentences, 1)
    padded = train(sentences, 1, vocab_pad=1000)
    words = [w for w in plain.vocab if w != "<s>"]
    assert abs(distribution_sum(plain, (), words) - 1) < TOL
    s = distribution_sum(padded, (), words)
    assert s < 1 - 1e-3
    # the uniform share of each word: p_pad(w) - gamma/1000 == p(w) - gamma/V for every word
    V = len(words)
    diffs = [10 ** plain.logprob(w) - 10 ** padded.logprob(w) for w in words]
    # gamma (1/V - 1/pad) the same for every word
    assert max(diffs) - min(diffs) < 1e-6
    gamma = diffs[0] / (1.0 / V - 1.0 / 1000)
    assert s == pytest.approx(1 - gamma * (1000 - V) / 1000, abs=1e-5)


# ------------------------------------------------------------------------------------ real text
@pytest.fixture(scope="module")
def brown():
    return [split_line(line) for line in read_corpus_lines("brown/brown.txt.gz", 1500)]


def vector_sums(model, ctxs, words):
    """The same sums computed through token_scores (compiled batch path), one line per word."""
    sums = []
    for ctx in ctxs:
        bos = bool(ctx) and ctx[0] == "<s>"
        body = list(ctx[1:] if bos else ctx)
        lines = [" ".join(body + [w]) if w != "</s>" else " ".join(body) for w in words]
        starts, lp, _, _ = model.token_scores(lines, bos=bos, eos=False)
        last = lp[starts[1:] - 1].astype(np.float64)
        # </s>: score the body with eos and take its last token
        s_eos, lp_eos, _, _ = model.token_scores([" ".join(body)], bos=bos, eos=True)
        i = words.index("</s>")
        last[i] = lp_eos[s_eos[1] - 1]
        sums.append(math.fsum(10.0 ** last))
    return sums


@pytest.mark.parametrize("order,prune", [(3, ()), (5, ()), (4, (0, 1, 2))])
def test_brown(brown, order, prune):
    model = glm.train(lines=iter(to_lines(brown)), order=order, prune=prune)
    rng = random.Random(order)
    vocab = list(model.vocab)
    words = [w for w in vocab if w != "<s>"]
    ctxs = context_sets(order, brown, rng, vocab, per_length=1, max_seen=6)
    for ctx in ctxs:
        total = distribution_sum(model, ctx, words)
        assert abs(total - 1.0) < TOL, (ctx, total)
    # more contexts through the batch path (contexts without OOV words or </s>, which the
    # text path cannot express, and with <s> only at the start)
    more = [c for c in context_sets(order, brown, rng, vocab, per_length=8, max_seen=80)
            if "NOT-A-WORD" not in c and "</s>" not in c and "<unk>" not in c and "<s>" not in c[1:]
            and c]
    for ctx, total in zip(more, vector_sums(model, more, words)):
        assert abs(total - 1.0) < TOL, (ctx, total)
