"""MKN estimated and written on the Dask workers (glm.dask_mkn): the ARPA file is the single-machine
build's, byte for byte, however the key ranges fall; the client receives only summaries and the text."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import glm
from glm import dask_mkn, distributed as dist
from glm.counts import key_layout
from helpers import fifo_feeding

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "shakespeare-train.txt.gz"
TEST = ROOT / "data" / "shakespeare-test.txt.gz"


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    d = tmp_path_factory.mktemp("texts")
    train = d / "train.txt"
    train.write_bytes(gzip.decompress(TRAIN.read_bytes()))
    # words that are not in the vocabulary of the other text, <unk> and literal <s> (skipped), an empty line
    odd = d / "odd.txt"
    odd.write_text("<unk> the <unk> end\n\nzzz yyy xxx the end\n" * 3 + "a <s> b\n" + "the end\n" * 40)
    return train, odd


def _plain(tmp_path, inputs, order, **kw):
    out = tmp_path / f"plain{order}.arpa"
    glm.train(inputs, order, output=out, **kw)
    return out.read_bytes()


def _on_workers(tmp_path, client, inputs, order, spy=None, **kw):
    out = tmp_path / f"dask{order}.arpa"
    model = glm.train(inputs, order, dask=client, output=out, **kw)
    assert isinstance(model, dask_mkn.WrittenModel)
    return model, out.read_bytes()


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_arpa_is_byte_identical(tmp_path, dask_client, texts, order):
    """Orders 2-5, with and without a budget (1M to 4M: a range per few thousand windows, about ten to
    twenty ranges); the model returned reads the file back for scoring."""
    train, _ = texts
    inputs = [train, TEST] if order < 4 else [train]
    expected = _plain(tmp_path, inputs, order)
    for memory in (None, "1M" if order < 4 else "4M"):
        model, got = _on_workers(tmp_path, dask_client, inputs, order, memory=memory, tmpdir=tmp_path)
        assert got == expected, (order, memory)
    plain = glm.load(tmp_path / f"plain{order}.arpa")
    assert model._levels is None and model._vocab is None   # (the client never held the n-grams nor words)
    assert model.vocab.table.words() == plain.vocab.table.words()
    assert model.counts == plain.counts and model.describe() == glm.train(inputs, order).describe()
    lines = ["the king is dead", "long live the king", "zzz unknown words"]
    assert np.array_equal(model.score_many(lines), plain.score_many(lines))


def test_many_ranges_cut_inside_heavy_words(tmp_path, dask_client, texts, monkeypatch):
    """Many more ranges than last words allow: the sampled splitters fall inside the windows of frequent
    last words (</s>, 'the', ','), are moved to their ends, and duplicates drop; the file is the same."""
    train, _ = texts
    expected = _plain(tmp_path, train, 3)
    seen = []
    real = dask_mkn.last_word_bounds

    def spy(bounds, layout, vocab_size):
        out = real(bounds, layout, vocab_size)
        seen.append((bounds, layout, out))
        return out
    monkeypatch.setattr(dist, "range_count", lambda *args: 30)
    monkeypatch.setattr(dask_mkn, "last_word_bounds", spy)
    _, got = _on_workers(tmp_path, dask_client, train, 3)
    assert got == expected
    (bounds, layout, (aligned, last)), = seen
    shift = (layout.per_word - 1) * layout.bits
    assert len(bounds) == 29 and len(aligned) < len(bounds)            # some bounds shared a last word
    assert len(np.unique(bounds[:, 0] >> np.uint64(shift))) == len(aligned)


def test_last_word_bounds():
    """A bound moves up to the largest key with its last word; the ranges' word intervals follow."""
    layout = key_layout(3, 1000)        # 10 bits a word, 6 words in a uint64
    shift = (layout.per_word - 1) * layout.bits

    def key(*words):                    # words of a window, last first
        return sum(w << (shift - j * layout.bits) for j, w in enumerate(words))
    bounds = np.array([[key(5, 7, 2)], [key(5, 9, 9)], [key(40, 1, 1)], [key(999, 3, 3)]], np.uint64)
    aligned, last = dask_mkn.last_word_bounds(bounds, layout, 1000)
    assert last.tolist() == [5, 40, 999]
    assert aligned[:, 0].tolist() == [key(6) - 1, key(41) - 1]
    from glm import _count
    keys = np.array([[key(5, 999, 999)], [key(6, 0, 0)], [key(40, 999, 999)], [key(41, 0, 0)]], np.uint64)
    assert [_count.upper_bound(keys, b) for b in aligned] == [1, 3]


def test_unk_bos_and_options(tmp_path, dask_client, texts):
    """<unk> in the text, literal <s> skipped, empty lines, --discount-fallback, no unigram
    interpolation with a padded vocabulary: all as on one machine."""
    train, odd = texts
    for kw in (dict(skip_symbols=True, discount_fallback=True),
               dict(skip_symbols=True, discount_fallback=(0.4, 0.9), vocab_pad=100000)):
        expected = _plain(tmp_path, [odd, train], 3, **kw)
        _, got = _on_workers(tmp_path, dask_client, [odd, train], 3, **kw)
        assert got == expected, kw
    expected = _plain(tmp_path, [train], 3, interpolate_unigrams=False)
    _, got = _on_workers(tmp_path, dask_client, [train], 3, interpolate_unigrams=False, memory="2M")
    assert got == expected


def test_errors_are_unchanged(tmp_path, dask_client, texts):
    """The errors of a single-machine build: bad text names the file and line; undefined discounts name
    the order; an empty text; the output is not written."""
    train, odd = texts
    good = train.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(good + b"bad \xff byte\n")
    with pytest.raises(glm.CorpusError, match=r"bad\.txt:%d: invalid UTF-8" % (good.count(b"\n") + 1)):
        glm.train(bad, 3, dask=dask_client, output=tmp_path / "x.arpa")
    with pytest.raises(glm.CorpusError, match="<s>"):
        glm.train(odd, 3, dask=dask_client, output=tmp_path / "x.arpa")
    with pytest.raises(glm.DiscountError) as single:
        glm.train(odd, 3, skip_symbols=True, output=tmp_path / "x.arpa")
    with pytest.raises(glm.DiscountError) as on_dask:
        glm.train(odd, 3, skip_symbols=True, dask=dask_client, output=tmp_path / "x.arpa")
    assert str(on_dask.value) == str(single.value)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(glm.CorpusError, match="not a single word"):
        glm.train(empty, 3, dask=dask_client, output=tmp_path / "x.arpa")
    if hasattr(os, "mkfifo"):     # a pipe, which the workers cannot open (it said 'no such file')
        with fifo_feeding(tmp_path / "pipe", good, timeout=10), pytest.raises(ValueError, match="not pipes"):
            glm.train(tmp_path / "pipe", 3, dask=dask_client, output=tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()
    locals_ = dask_client.run(lambda dask_worker: dask_worker.local_directory)
    assert dask_client.run(lambda: len(dist.STATE) + len(dist._STORES)) == {w: 0 for w in locals_}


def test_other_builds_keep_the_client_path(tmp_path, dask_client, texts):
    """Pruned, GLM, order 1 and models without an output file are estimated on the client, as before."""
    train, _ = texts
    model = glm.train(train, 3, dask=dask_client, prune=(0, 1))
    assert isinstance(model, glm.BackoffModel) and not isinstance(model, dask_mkn.WrittenModel)
    model = glm.train(train, 1, dask=dask_client, output=tmp_path / "u.arpa")
    assert not isinstance(model, dask_mkn.WrittenModel)


def test_compressed_output_is_byte_identical(tmp_path, dask_client, texts):
    """A .arpa.gz is compressed as the parts are copied into it: the same bytes as on one machine."""
    train, _ = texts
    glm.train(train, 3, output=tmp_path / "plain.arpa.gz")
    for memory in (None, "2M"):
        model = glm.train(train, 3, dask=dask_client, output=tmp_path / "dask.arpa.gz", memory=memory,
                          tmpdir=tmp_path)
        assert isinstance(model, dask_mkn.WrittenModel)
        assert (tmp_path / "dask.arpa.gz").read_bytes() == (tmp_path / "plain.arpa.gz").read_bytes()


def test_files_read_through_dask_when_not_shared(tmp_path, dask_client, texts, monkeypatch):
    """Workers that do not see each other's files (no shared file system): run slices, shuffle pieces
    and output parts go through Dask; the file is the same, and the shared path is the one taken
    otherwise."""
    train, _ = texts
    expected = _plain(tmp_path, [train], 4)
    seen = []
    real = dask_mkn.runs_visible
    monkeypatch.setattr(dask_mkn, "runs_visible", lambda *a: seen.append(real(*a)) or False)
    monkeypatch.setattr(dask_mkn, "_visible", lambda kept: False)
    _, got = _on_workers(tmp_path, dask_client, [train], 4, memory="4M", tmpdir=tmp_path)
    assert got == expected and seen == [True]


def test_group_by_owner():
    """The counting sort that splits a range's n-grams by the range owning their context: the stable
    argsort's order, and each owner's first index."""
    from glm import _count
    rng = np.random.default_rng(7)
    for ranges, m in ((1, 0), (3, 1), (5, 1000), (40, 5000)):
        owner = rng.integers(0, ranges, m).astype(np.int32)
        perm, cuts = _count.group_by_owner(owner, ranges)
        assert np.array_equal(perm, np.argsort(owner, kind="stable"))
        assert np.array_equal(cuts, np.searchsorted(np.sort(owner), np.arange(ranges + 1)))


def test_child_index():
    """The children found as a plain binary search finds them, in runs of one node with increasing words
    (galloping), with the same node again after another run or with words starting over, and across
    batches; a child that is not there is reported at its first place."""
    from glm import _count
    rng = np.random.default_rng(11)
    sizes = rng.integers(0, 40, 300)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.uint32)
    words = np.concatenate([np.sort(rng.choice(1000, k, replace=False)) for k in sizes]).astype(np.uint32)
    node, want = [], []
    for _ in range(400):                       # runs: one node, a sorted sample of its children
        p = int(rng.integers(0, 300))
        if sizes[p]:
            picks = np.sort(rng.choice(int(sizes[p]), int(rng.integers(1, sizes[p] + 1)), replace=False))
            node += [p] * len(picks)
            want += (starts[p] + picks).tolist()
    node, want = np.array(node, np.uint32), np.array(want, np.uint32)
    got, missing = _count.child_index(node, words[want], starts, words)
    assert missing == -1 and np.array_equal(got, want)
    word = words[want].copy()
    p = int(node[100])
    absent = next(w for w in range(1000) if w not in words[starts[p]:starts[p + 1]])
    word[100] = absent
    assert _count.child_index(node, word, starts, words)[1] == 100
