"""Counting on a Dask cluster (``glm build --dask [ADDRESS]``, ``train(dask=...)``; pip install glm[dask]).

The corpus is cut into shards (byte ranges of plain files, cut at line starts; a compressed file is one
shard).  Then, on the workers:

1. each shard's words in order of first occurrence; the client adds them shard after shard to one
   vocabulary, which gives every word the id it has in a single-machine build;
2. with that vocabulary broadcast, each shard counts its windows (``NgramCounter``) into one sorted run;
3. splitter keys sampled from the runs cut the key space into ranges; each range is merged on a worker
   (``spill.merge_many``), and the ranges, gathered in order, are the merged run of the whole corpus.

The trie levels and the estimation then run on the client (with its memory budget, if any), as in a
single-machine build, so the model is identical.
"""
from __future__ import annotations

import operator
import os

import numpy as np

from . import _count
from ._vocab import OK
from .corpus import _MAGIC, CHUNK_BYTES, Chunk, CorpusError, expand_inputs, read_chunks
from .counts import NgramCounter, key_layout
from .spill import merge_many
from .vocab import Vocabulary

SHARD_BYTES = 64 << 20
SAMPLES = 1024


def _client(dask, n_workers: int | None):
    """(client, things to close): a given Client, one connected to an address, or a LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--dask needs the 'distributed' package: pip install glm[dask]") from None
    if isinstance(dask, Client):
        return dask, []
    if dask in (None, "", "local"):
        cluster = LocalCluster(n_workers=n_workers or 2, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
        return client, [client, cluster]
    client = Client(dask)
    return client, [client]


def shards(paths: list[str], parts: int) -> list[tuple[str, int, int | None]]:
    """(path, start, end) byte ranges of plain files of about equal size (at least ``parts`` in all,
    at most SHARD_BYTES each); (path, 0, None) for a whole compressed file."""
    total = sum(os.path.getsize(p) for p in paths)
    size = max(1 << 16, min(SHARD_BYTES, -(-total // max(1, parts))))
    out = []
    for path in map(os.path.abspath, paths):          # workers may run in another directory
        with open(path, "rb") as f:
            head = f.read(8)
        if any(head.startswith(magic) for magic, _ in _MAGIC):
            out.append((path, 0, None))
        else:
            n = os.path.getsize(path)
            out.extend((path, lo, min(lo + size, n)) for lo in range(0, max(n, 1), size))
    return out


def _chunks(shard):
    """Chunks of complete lines of a shard: the lines that start in [start, end)."""
    path, start, end = shard
    if end is None:
        yield from read_chunks([path], quiet=True)
        return
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()
        pos, line = f.tell(), 1
        while pos < end:
            data = f.read(min(CHUNK_BYTES, end - pos))
            if not data:
                break
            if not data.endswith(b"\n"):
                data += f.readline()
            pos += len(data)
            yield Chunk(data, path, line)
            line += data.count(b"\n")


def _lines_before(shard) -> int:
    path, start, end = shard
    if end is None or start == 0:
        return 0
    with open(path, "rb") as f:
        f.seek(start - 1)
        f.readline()
        stop, n = f.tell(), 0
        f.seek(0)
        while f.tell() < stop:
            n += f.read(min(CHUNK_BYTES, stop - f.tell())).count(b"\n")
    return n


def _streams(shard, vocab: Vocabulary, add: bool, symbols: str, bad_utf8: str):
    """Padded id streams of a shard's chunks; an error names the line in the whole file."""
    for chunk in _chunks(shard):
        try:
            yield vocab.tokenize(chunk, add=add, symbols=symbols, bad_utf8=bad_utf8)
        except CorpusError:
            # again, numbered from the start of the file, to raise the same error with the right line
            vocab.tokenize(Chunk(chunk.data, chunk.path, chunk.first_line + _lines_before(shard)),
                           add=add, symbols=symbols, bad_utf8=bad_utf8)
            raise


def _shard_words(shard, symbols: str, bad_utf8: str) -> bytes:
    """The new words of a shard in order of first occurrence, one a line."""
    vocab = Vocabulary()
    for _ in _streams(shard, vocab, True, symbols, bad_utf8):
        pass
    return b"\n".join(vocab.table.words()[3:]) + b"\n"


def _shard_run(shard, vocab_arrays, order: int, symbols: str, bad_utf8: str):
    """The shard's windows counted with the global vocabulary: (keys, counts, layout)."""
    from ._vocab import VocabTable
    vocab = Vocabulary(VocabTable.from_arrays(*vocab_arrays))
    counter = NgramCounter(order)
    for stream in _streams(shard, vocab, False, symbols, bad_utf8):
        counter.add(stream, len(vocab))
    return counter.merged(len(vocab))


def _sample(run) -> np.ndarray:
    keys = run[0]
    return keys[np.linspace(0, len(keys) - 1, min(SAMPLES, len(keys))).astype(np.intp)] if len(keys) else keys


def _cut(run, bounds: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The run cut into len(bounds) + 1 key ranges: keys <= bounds[0], ..., keys > bounds[-1]."""
    keys, counts, _ = run
    cuts = [0] + [_count.upper_bound(keys, b) for b in bounds] + [len(keys)]
    return [(keys[a:b], counts[a:b]) for a, b in zip(cuts, cuts[1:])]


def count_on_dask(inputs, order: int, dask, n_workers: int | None, symbols: str, bad_utf8: str,
                  scratch=None):
    """(vocabulary, (keys, counts, layout)): the corpus counted on a Dask cluster, as one sorted run
    (on the client; written to the scratch directory when there is one)."""
    paths = expand_inputs(inputs)
    if "-" in paths:
        raise ValueError("--dask reads files, not stdin")
    client, to_close = _client(dask, n_workers)
    try:
        workers = max(1, len(client.scheduler_info()["workers"]))
        parts = shards(paths, 2 * workers)
        vocab = Vocabulary()
        for words in client.gather(client.map(_shard_words, parts, symbols=symbols, bad_utf8=bad_utf8,
                                              pure=False)):
            status, _, _ = vocab.table.tokenize(words, True, 0, False)
            assert status == OK, "a shard's words hold <s> or </s>"
        arrays = client.scatter(vocab.table.arrays(), broadcast=True)
        runs = client.map(_shard_run, parts, vocab_arrays=arrays, order=order, symbols=symbols,
                          bad_utf8=bad_utf8, pure=False)
        layout = key_layout(order, len(vocab))          # the layout of every shard's run
        samples = np.concatenate([s for s in client.gather(client.map(_sample, runs)) if len(s)]
                                 or [np.zeros((0, layout.words), np.uint64)])
        samples = samples[np.lexsort(samples.T[::-1])] if len(samples) else samples
        ranges = 2 * workers if len(samples) else 1
        bounds = samples[[len(samples) * r // ranges for r in range(1, ranges)]]
        cut = client.map(_cut, runs, bounds=bounds)
        merged = [client.submit(merge_many, [client.submit(operator.getitem, c, r) for c in cut])
                  for r in range(ranges)]
        blocks = (f.result() for f in merged)
        if scratch is not None:
            return vocab, (*scratch.load_run(scratch.save_run(blocks, layout)), layout)
        blocks = list(blocks)
        return vocab, (np.concatenate([k for k, _ in blocks]), np.concatenate([c for _, c in blocks]), layout)
    finally:
        for c in to_close:
            c.close()
