"""Counting in many small runs (with the key layout widened as the vocabulary grows) gives exactly
the counts of counting everything at once."""
import numpy as np

from glm import _count
from glm.counts import NgramCounter
from glm.vocab import Vocabulary
from glm.corpus import Chunk


def _streams(n_lines=40_000, vocab=1_000_000, seed=3):
    rng = np.random.default_rng(seed)
    v = Vocabulary()
    streams = []
    for start in range(0, n_lines, 250):
        lines = []
        for _ in range(250):
            k = int(rng.integers(0, 12))
            # Zipf-like draws so that n-grams repeat, plus a wide tail that outgrows 2^16 ids
            words = np.where(rng.random(k) < 0.5, rng.integers(0, vocab, size=k), rng.zipf(1.3, size=k))
            lines.append(" ".join(f"w{w}" for w in words))
        streams.append(v.tokenize(Chunk(("\n".join(lines) + "\n").encode(), "<t>", start + 1), add=True))
    return v, streams


def _levels(streams, sizes, order, run_windows, background=False):
    counter = NgramCounter(order, run_windows=run_windows, background=background)
    for s, size in zip(streams, sizes):
        counter.add(s, size)
    try:
        return counter.levels(sizes[-1], with_raw=True)
    finally:
        counter.close()


def test_small_runs_and_repacking_equal_one_run():
    v, streams = _streams()
    # the vocabulary size seen after each stream (ids of a stream are below it)
    sizes, seen = [], 3
    for s in streams:
        seen = max(seen, int(s.max()) + 1)
        sizes.append(seen)
    assert sizes[-1] > 1 << 16, "the test needs a vocabulary that outgrows the first key layout"
    for order in (2, 4):
        whole = _levels(streams, sizes, order, run_windows=1 << 30)
        small = _levels(streams, sizes, order, run_windows=700)
        background = _levels(streams, sizes, order, run_windows=700, background=True)
        for a, b, c in zip(whole, small, background):
            assert a.keys() == b.keys() == c.keys()
            for name in ("word", "parent", "count", "raw"):
                if name in a:
                    np.testing.assert_array_equal(a[name], b[name])
                    np.testing.assert_array_equal(a[name], c[name])


def test_levels_built_in_parts_equal_one_pass():
    """build_levels cut into parts at last-word changes (one a thread) gives the levels and last_open
    of one pass."""
    v, streams = _streams(n_lines=60_000)
    counter = NgramCounter(5)
    for s in streams:
        counter.add(s, len(v))
    keys, counts, layout = counter.merged(len(v))
    assert len(counts) >= 3 << 16, "the test needs windows for three parts"
    one = _count.build_levels(keys, counts, layout, len(v), True)
    for threads in (2, 3, 16):
        parts = _count.build_levels(keys, counts, layout, len(v), True, np.zeros, threads)
        for a, b in zip(one, parts):
            assert a.keys() == b.keys()
            for name in a:
                if name == "last_open":
                    assert a[name] == b[name]
                else:
                    np.testing.assert_array_equal(a[name], b[name])


def test_count_windows_equals_a_sort_of_the_windows():
    """The bucketed sort of count_windows gives the windows' distinct keys in order with their counts
    (against numpy's unique of the windows built here), for one and two threads and key widths 1-3."""
    rng = np.random.default_rng(5)
    for order, vocab in ((3, 50), (5, 300_000), (9, 70_000)):
        words = np.where(rng.random(200_000) < 0.7, rng.zipf(1.2, 200_000) % vocab, rng.integers(3, vocab, 200_000))
        stream = np.maximum(words, 3).astype(np.uint32)
        stream[rng.random(len(stream)) < 0.08] = 1          # sentence starts
        stream[0] = 1
        layout = _count.KeyLayout(order, vocab)
        starts = np.maximum.accumulate(np.where(stream == 1, np.arange(len(stream)), 0))
        rows = []
        for j in range(order):                               # word j back from the window's end
            idx = np.arange(len(stream)) - j
            rows.append(np.where(idx >= starts, stream[np.maximum(idx, 0)], 1))
        rows = np.stack(rows, 1)[stream != 1].astype(np.uint64)
        keys = np.zeros((len(rows), layout.words), np.uint64)
        for j in range(order):
            keys[:, j // layout.per_word] |= rows[:, j] << np.uint64((layout.per_word - 1 - j % layout.per_word)
                                                               * layout.bits)
        expected, counts = np.unique(keys, axis=0, return_counts=True)
        assert len(counts) < len(rows), "the test needs windows that repeat"
        for threads in (1, 2):
            got_keys, got_counts = _count.count_windows(stream, layout, threads)
            np.testing.assert_array_equal(got_keys, expected)
            np.testing.assert_array_equal(got_counts, counts)


def test_repack_keeps_words_and_order():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 1000, size=(500, 5)).astype(np.uint64)
    narrow, wide = _count.KeyLayout(5, 1000), _count.KeyLayout(5, 1 << 20)

    def pack(layout):
        keys = np.zeros((len(rows), layout.words), dtype=np.uint64)
        for j in range(5):     # word j of the window (last word first) into its slot
            keys[:, j // layout.per_word] |= rows[:, j] << np.uint64((layout.per_word - 1 - j % layout.per_word)
                                                                   * layout.bits)
        return keys

    np.testing.assert_array_equal(_count.repack(pack(narrow), narrow, wide), pack(wide))


def test_count_of_counts_in_blocks_equals_a_tally(monkeypatch):
    """count_of_counts tallies a level a block at a time (no copy of a whole level): across block
    boundaries, and with lmplz's still-open n-gram counted by its raw count, it equals a plain tally."""
    from collections import Counter

    import glm.discount as discount
    rng = np.random.default_rng(5)
    counts = rng.zipf(1.6, 1000).clip(max=2**31).astype(np.uint32)
    for block in (1, 7, 1000, 1 << 20):
        monkeypatch.setattr(discount, "BLOCK", block)
        tally = Counter(min(int(c), 5) for c in counts)
        assert discount.count_of_counts(counts) == [tally[k] for k in (1, 2, 3, 4)]
        i = int(np.flatnonzero(counts >= 5)[0])
        tally[5] -= 1
        tally[2] += 1
        assert discount.count_of_counts(counts, (i, 2)) == [tally[k] for k in (1, 2, 3, 4)]


def test_tokenize_densest_buffers():
    """The id stream is sized from the buffer (n/2 + 1 words, two boundaries a line): the densest
    buffers (one-byte words, empty lines, no final LF, separators only) give exactly the expected ids."""
    import random
    rng = random.Random(3)
    v = Vocabulary()
    cases = [b"", b"\n", b"\n" * 1000, b"a", b"a b", b"a\n" * 500, b"a b c d e f\n" * 100 + b"x y z",
             b" \t " * 50 + b"\n", b"a  b\t\tc\n\n"]
    cases += [bytes(rng.choice(b"ab \t\n") for _ in range(rng.randrange(1, 400))) for _ in range(200)]
    for data in cases:
        text = data.decode()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        want = []
        for line in lines:
            want += ["<s>", *line.split(), "</s>"]
        ids = v.tokenize(Chunk(data, "<t>", 1), add=True)
        assert [v.word(int(i)) for i in ids] == want, data


def test_merge_counts_on_two_threads_equals_numpy():
    """merge_counts (one thread, and two halves cut at the middle key of the first run) gives the
    union of two sorted unique runs with the counts of equal keys added, as numpy's unique does."""
    rng = np.random.default_rng(1)

    def rows(x, W):          # keys of W words whose order is that of the numbers x (< 2^60)
        return np.stack([(x >> np.uint64(20 * (W - 1 - q))) & np.uint64((1 << 20) - 1 if q else (1 << 60) - 1)
                         for q in range(W)], 1)

    for W in (1, 2, 3):
        for na, nb in ((200_000, 150_000), (70_000, 300_000), (0, 5), (100_000, 0)):
            # numbers drawn from one range: the runs share many keys
            spread = np.uint64((1 << 37) + 12345)
            xa, xb = (np.unique(rng.integers(0, 600_000, n).astype(np.uint64) * spread) for n in (na, nb))
            ca, cb = (rng.integers(1, 10, len(x)).astype(np.uint32) for x in (xa, xb))
            x, where = np.unique(np.concatenate([xa, xb]), return_inverse=True)
            counts = np.bincount(where, weights=np.concatenate([ca, cb])).astype(np.uint32)
            assert len(x) < len(xa) + len(xb) or not (na and nb), "the test needs keys in both runs"
            for threads in (1, 2):
                got_keys, got_counts = _count.merge_counts(rows(xa, W), ca, rows(xb, W), cb, threads)
                np.testing.assert_array_equal(got_keys, rows(x, W))
                np.testing.assert_array_equal(got_counts, counts)
