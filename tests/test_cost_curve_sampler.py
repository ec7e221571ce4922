"""The trigram sampler of benchmarks/bench_cost_curve.py: seeded, the sizes asked for, only seen trigrams."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from trigram_sampler import TrigramSampler, distinct_ngrams  # noqa: E402


def training_lines(n=400, seed=0):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(60)] + ["é", "ünï", "x.y"]
    return [" ".join(rng.choice(words[: rng.randint(3, len(words))]) for _ in range(rng.randint(1, 30)))
            for _ in range(n)]


@pytest.fixture(scope="module")
def sampler():
    s = TrigramSampler.from_lines(training_lines())
    s.slots, s.steps = 64, 50          # small chunks: a 20 kB file takes several
    return s


def padded_trigrams(lines):
    out = set()
    for ln in lines:
        toks = ["<s>", "<s>"] + ln.split() + ["</s>"]
        out.update(zip(toks, toks[1:], toks[2:]))
    return out


def test_seeded_and_reproducible(sampler, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ra, rb, rc = sampler.write(a, 20_000, 7), sampler.write(b, 20_000, 7), sampler.write(c, 20_000, 8)
    assert a.read_bytes() == b.read_bytes() and ra[:2] == rb[:2]
    assert a.read_bytes() != c.read_bytes()
    longer = tmp_path / "d"
    sampler.write(longer, 50_000, 7)
    assert longer.read_bytes().startswith(a.read_bytes())      # a larger size continues the same text


@pytest.mark.parametrize("nbytes", [1_000, 20_000, 123_457])
def test_sizes_and_counts(sampler, tmp_path, nbytes):
    path = tmp_path / "t.txt"
    written, words, ids = sampler.write(path, nbytes, 3, keep=1 << 40)
    data = path.read_bytes()
    longest = max(len(ln.encode()) + 1 for ln in training_lines()) * 3
    assert written == len(data) <= nbytes
    assert written > nbytes - longest                       # stops within a paragraph of the size
    assert data.endswith(b"\n") and b" \n" not in data and b"\n\n" not in data and not data.startswith(b" ")
    assert words == len(data.split())
    assert [sampler.words[i] for i in ids if i != 1] == data.split()


def test_only_trigrams_of_the_training_text(sampler, tmp_path):
    path = tmp_path / "t.txt"
    sampler.write(path, 30_000, 5)
    seen = padded_trigrams(training_lines())
    got = padded_trigrams(path.read_text(encoding="utf-8").splitlines())
    assert got <= seen and len(got) > len(seen) / 4


def test_distinct_ngrams_against_sets(sampler, tmp_path):
    path = tmp_path / "t.txt"
    _, words, ids = sampler.write(path, 30_000, 9, keep=1 << 40)
    lines = path.read_text(encoding="utf-8").splitlines()
    first, n = [], 0
    for ln in lines:                 # whole lines up to the first to reach 2,000 words
        first.append(ln.split())
        n += len(first[-1])
        if n >= 2000:
            break
    got = distinct_ngrams(ids, 2000)
    for k in (3, 4, 5):
        want = {tuple(t[i:i + k]) for t in (["<s>"] + w + ["</s>"] for w in first) for i in range(len(t) - k + 1)}
        assert got[k] == len(want)
    corpus = distinct_ngrams(sampler.corpus, 10**9, orders=(3,))
    assert corpus[3] == len({g for g in padded_trigrams(training_lines()) if g[0] != "<s>" or g[1] != "<s>"})
