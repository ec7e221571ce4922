"""Counting on a Dask cluster (``glm build --dask [ADDRESS]``, ``train(dask=...)``; pip install glm[dask]).

The corpus is cut into shards (byte ranges of plain files, cut at line starts; a compressed file is one
shard).  Then, on the workers:

1. each shard's words in order of first occurrence; one task adds them shard after shard to one
   vocabulary, which gives every word the id it has in a single-machine build (kept on the workers:
   the client holds its size and a future of it, ``SharedVocabulary``);
2. with that vocabulary, each shard counts its windows (``NgramCounter``) into one sorted run;
3. splitter keys sampled from the runs cut the key space into ranges; each range is merged on a worker
   (``spill.merge_many``), and the ranges, gathered in order, are the merged run of the whole corpus.

For an MKN model written as ARPA, glm.dask_mkn then estimates and writes it on the workers too, by key
range (the client only coordinates).  For every other model (GLM methods, tuned or pruned MKN, order 1,
.glmb output, ``train(dask=...)`` without an output file) the ranges, gathered in order, are the merged
run on the client, where the trie levels and the estimation run (with its memory budget, if any), as in
a single-machine build, so the model is identical.

With a memory budget (``--memory``), it bounds each worker task too (the budget over the threads of the
largest worker; with one thread a worker, each worker process): a shard is counted as on one machine
under the budget (runs spill to disk) into a run file in the worker's local directory, which stays
there until the end of the build; the number of key ranges is chosen once the runs exist, so that a
range's rows fill at most 1/RANGE_SHARE of the budget; ranges are merged a few at a time (about one
per worker ahead of the one the client receives) and the client writes each to its scratch directory.
"""
from __future__ import annotations

import os
import threading
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import _count
from ._vocab import OK
from .corpus import _MAGIC, CHUNK_BYTES, Chunk, CorpusError, expand_inputs, read_chunks, read_once
from .counts import NgramCounter, key_layout
from .spill import Run, Scratch, merge_many
from .vocab import Vocabulary

SHARD_BYTES = 64 << 20
LOST_CHECK = 2.0         # seconds between checks that the workers holding a build's run files are there
SAMPLES = 256            # sampled keys per key range
RANGE_SHARE = 8          # with a budget, a range's runs take at most 1/8 of it (its merge: about 4x that)


def _client(dask, n_workers: int | None):
    """(client, things to close): a given Client, one connected to an address, or a LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--dask needs the 'distributed' package: pip install glm[dask]") from None
    if isinstance(dask, Client):
        return dask, []
    if dask in (None, "", "local"):
        import dask.config
        # Dask's workers get MALLOC_TRIM_THRESHOLD_=65536 by default, which also fixes glibc's mmap
        # threshold at 128 KiB: every buffer above it (the formatted ARPA text, a chunk at a time) is then
        # a fresh map whose pages the kernel faults in and zeroes.  Our workers keep glibc's defaults.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
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


def _merged_words(*shard_words: bytes) -> tuple:
    """The vocabulary's arrays (``VocabTable.arrays``): the shards' new words added shard after shard,
    so that every word gets the id it has in a single-machine build."""
    vocab = Vocabulary()
    for words in shard_words:
        status, _, _ = vocab.table.tokenize(words, True, 0, False)
        assert status == OK, "a shard's words hold <s> or </s>"
    return vocab.table.arrays()


def _vocabulary(arrays: tuple) -> Vocabulary:
    from ._vocab import VocabTable
    return Vocabulary(VocabTable.from_arrays(*arrays))


def _size(arrays: tuple) -> int:
    return len(arrays[1]) - 1           # (the words' offsets, one more than the words)


@dataclass
class SharedVocabulary:
    """The vocabulary of a build, made on a worker and kept there: its arrays (a future, which tasks
    take as an argument), its size, and ``fetch()`` for a client that needs the words."""
    arrays: object
    size: int

    def fetch(self) -> Vocabulary:
        return _vocabulary(self.arrays.result())


_STORES: dict = {}                     # in a worker process: a build's id -> its glm.spill.Scratch
STATE: dict = {}                       # in a worker process: a build's id -> what its tasks keep there
_STORES_LOCK = threading.Lock()


def _store(build: str, memory: int) -> Scratch:
    """This worker's scratch directory for a build (made on first use, in the worker's local
    directory): it holds the build's counted runs until ``_drop_store``."""
    from distributed import get_worker
    with _STORES_LOCK:
        if build not in _STORES:
            _STORES[build] = Scratch(memory, get_worker().local_directory).__enter__()
        return _STORES[build]


def _drop_store(build: str) -> None:
    with _STORES_LOCK:
        scratch = _STORES.pop(build, None)
        STATE.pop(build, None)
    if scratch is not None:
        scratch.__exit__(None, None, None)


def _shard_run(shard, vocab_arrays, order: int, symbols: str, bad_utf8: str, memory: int | None = None,
               build: str | None = None):
    """The shard's windows counted with the global vocabulary, as (worker address, run): without a
    budget, the run in memory, (keys, counts, layout), and no address; with one (``memory`` bytes per
    task), a glm.spill.Run file in this worker's scratch directory for the build."""
    vocab = _vocabulary(vocab_arrays)
    if memory is None:
        counter = NgramCounter(order)
    else:
        counter = NgramCounter(order, scratch=_store(build, memory))
    for stream in _streams(shard, vocab, False, symbols, bad_utf8):
        counter.add(stream, len(vocab))
    if memory is None:
        return None, counter.merged(len(vocab))
    from distributed import get_worker
    return get_worker().address, counter.merged_run(len(vocab))


def _keys(run) -> np.ndarray:
    """The keys of a run: in memory, or its file mapped read-only."""
    if not isinstance(run, Run):
        return run[0]
    if not run.rows:
        return np.zeros((0, run.layout.words), np.uint64)
    return np.memmap(run.path + ".keys", np.uint64, "r", shape=(run.rows, run.layout.words))


def _rows(shard_run) -> tuple[str | None, int]:
    """(worker address, rows) of a shard's run."""
    where, run = shard_run
    return where, len(_keys(run))


def _sample(shard_run, step: int) -> np.ndarray:
    """Every step-th key of a run (the last of each step rows)."""
    return np.array(_keys(shard_run[1])[step - 1::step])


def _piece(shard_run, low, high) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a run with low < key <= high (None: no bound), copied from its file if it has one."""
    run = shard_run[1]
    keys = _keys(run)
    a = 0 if low is None else _count.upper_bound(keys, low)
    b = len(keys) if high is None else _count.upper_bound(keys, high)
    if not isinstance(run, Run):
        return run[0][a:b], run[1][a:b]
    del keys
    w = run.layout.words
    with open(run.path + ".keys", "rb") as f:
        keys = np.fromfile(f, np.uint64, (b - a) * w, offset=8 * w * a).reshape(b - a, w)
    with open(run.path + ".counts", "rb") as f:
        counts = np.fromfile(f, np.uint32, b - a, offset=4 * a)
    return keys, counts


def _piece_view(shard_run, low, high, scratch) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a run file with low < key <= high (None: no bound), mapped read-only by ``scratch``
    (a glm.spill.Scratch: its watcher trims them), not copied: read by a task on any worker that sees
    the file (``runs_visible``)."""
    run = shard_run[1]
    if not run.rows:
        return np.zeros((0, run.layout.words), np.uint64), np.zeros(0, np.uint32)
    keys = scratch.load(run.path + ".keys", np.uint64, (run.rows, run.layout.words))
    a = 0 if low is None else _count.upper_bound(keys, low)
    b = run.rows if high is None else _count.upper_bound(keys, high)
    return keys[a:b], scratch.load(run.path + ".counts", np.uint32, (run.rows,))[a:b]


def _remove_run(shard_run) -> None:
    """A shard's run file removed once no task needs it (its disk and page cache freed before the end)."""
    run = shard_run[1]
    if isinstance(run, Run):
        run.remove()


def runs_visible(client, counted) -> bool:
    """Whether the client sees every run file at its path on its worker, with its size: then so do the
    workers (a LocalCluster, or workers on one machine or file system), and a task reads the runs of
    other workers from their files instead of through Dask."""
    if any(w is None for w in counted.where):
        return False
    for _, run in client.gather(counted.runs):
        try:
            if os.path.getsize(run.path + ".counts") != 4 * run.rows:
                return False
        except OSError:
            return False
    return True


class WorkerLost(ConnectionError):
    """A worker that held run files of the build left the cluster: they are gone with its disk."""


def _results(client, futures: list, pinned) -> list:
    """The results of futures of tasks pinned to workers (``pinned``: addresses, None for none).  A task
    pinned to a worker that has left would wait for it for ever: that is a WorkerLost error instead."""
    wait_for(client, futures, pinned)
    return client.gather(futures)


def wait_for(client, futures: list, pinned) -> None:
    """Wait until futures of tasks pinned to workers (``pinned``) are done (see ``_results``); the
    error of a task that failed is raised."""
    from distributed import wait
    held = {w for w in pinned if w is not None}
    while True:
        try:
            wait(futures, timeout=LOST_CHECK)
            break
        except TimeoutError:
            lost = held - set(client.scheduler_info()["workers"])
            if lost:
                raise WorkerLost(f"Dask worker {', '.join(sorted(lost))} left the cluster while it held counted "
                                 "runs of this build (in its local directory, under --memory) or key ranges "
                                 "being estimated: they are lost; run the build again (counting without "
                                 "--memory, lost work is redone)") from None
    for f in futures:
        if f.status == "error":
            f.result()


def _pin(address: str | None) -> list[str] | None:
    """The workers a task on a run may run on: the one whose disk holds the run file, if any."""
    return None if address is None else [address]


def _merged_ranges(client, runs, where, bounds, ahead: int):
    """The key ranges cut by bounds, merged on the workers, in order: range r is submitted when range
    r - ahead is received, so that the workers hold about ``ahead`` ranges at a time."""
    def submit(r):
        low, high = (bounds[r - 1] if r else None), (bounds[r] if r < len(bounds) else None)
        pieces = [client.submit(_piece, run, low, high, workers=_pin(w), pure=False)
                  for run, w in zip(runs, where)]
        return client.submit(merge_many, pieces, pure=False)

    ranges = len(bounds) + 1
    inflight = deque(submit(r) for r in range(min(ahead, ranges)))
    for r in range(ranges):
        if r + ahead < ranges:
            inflight.append(submit(r + ahead))
        yield _results(client, [inflight.popleft()], where)[0]


def count_on_dask(inputs, order: int, dask, n_workers: int | None, symbols: str, bad_utf8: str,
                  scratch=None):
    """(vocabulary, (keys, counts, layout)): the corpus counted on a Dask cluster, as one sorted run
    (on the client; written to the scratch directory when there is one).

    With a scratch, its memory budget also bounds every worker task (the budget over the threads of
    the largest worker): shards are counted with runs spilled to the worker's local directory, and
    the key ranges are made small enough for a range's merge to fit (``RANGE_SHARE``)."""
    with session(dask, n_workers, scratch) as job:
        shared, counted = count_runs(job, inputs, order, symbols, bad_utf8)
        vocab = shared.fetch()
        bounds = splitters(job, counted)
        blocks = _merged_ranges(job.client, counted.runs, counted.where, bounds, ahead=job.workers)
        layout = counted.layout
        if scratch is not None:
            return vocab, (*scratch.load_run(scratch.save_run(blocks, layout)), layout)
        blocks = list(blocks)
        return vocab, (np.concatenate([k for k, _ in blocks]), np.concatenate([c for _, c in blocks]), layout)


@dataclass
class Job:
    """A build on a cluster: its client, id (names its files and state on the workers), number of
    workers and the memory budget of a worker task (None: none)."""
    client: object
    build: str
    workers: int
    memory: int | None


@dataclass
class Counted:
    """The shards' sorted runs (futures), the workers holding them (None: in Dask's memory), their rows
    and key layout."""
    runs: list
    where: tuple
    rows: tuple
    layout: object


@contextmanager
def session(dask, n_workers: int | None, scratch=None):
    """A Job on the cluster ``dask`` (see ``_client``), its files and state on the workers removed at
    the end, also on an error."""
    client, to_close = _client(dask, n_workers)
    build = uuid.uuid4().hex
    try:
        info = client.scheduler_info()["workers"]
        memory = None
        if scratch is not None:
            memory = max(1, scratch.memory // max([w.get("nthreads", 1) for w in info.values()] or [1]))
        yield Job(client, build, max(1, len(info)), memory)
    finally:
        try:
            client.run(_drop_store, build)
        finally:
            for c in to_close:
                c.close()


def count_runs(job: Job, inputs, order: int, symbols: str, bad_utf8: str):
    """(SharedVocabulary, Counted): the vocabulary made from the shards' words on a worker (the client
    holds only its size), and each shard counted with it into one sorted run on the workers."""
    paths = expand_inputs(inputs)
    for path in paths:
        if read_once(path):
            raise ValueError("--dask reads files, not stdin" if path == "-" else
                             f"{path}: --dask reads files, not pipes (its workers open them): save it to a file")
    client = job.client
    parts = shards(paths, 2 * job.workers)
    words = client.map(_shard_words, parts, symbols=symbols, bad_utf8=bad_utf8, pure=False)
    arrays = client.submit(_merged_words, *words, pure=False)
    vocab = SharedVocabulary(arrays, client.submit(_size, arrays, pure=False).result())
    del words                           # (the shards' word lists go once merged)
    runs = client.map(_shard_run, parts, vocab_arrays=arrays, order=order, symbols=symbols,
                      bad_utf8=bad_utf8, memory=job.memory, build=job.build if job.memory else None,
                      pure=False)
    layout = key_layout(order, vocab.size)          # the layout of every shard's run
    where, rows = zip(*client.gather(client.map(_rows, runs)))
    return vocab, Counted(runs, where, rows, layout)


def splitters(job: Job, counted: Counted) -> np.ndarray:
    """Keys sampled from the runs that cut the key space into ranges (``range_count`` of them): range r
    holds the keys above bounds[r - 1] up to bounds[r]."""
    client, runs, where, layout = job.client, counted.runs, counted.where, counted.layout
    rows = sum(counted.rows)
    ranges = range_count(rows, layout, job.workers, job.memory)
    step = max(1, rows // (SAMPLES * ranges))
    samples = [client.submit(_sample, run, step, workers=_pin(w)) for run, w in zip(runs, where)]
    samples = np.concatenate([s for s in _results(client, samples, where) if len(s)]
                             or [np.zeros((0, layout.words), np.uint64)])
    samples = samples[np.lexsort(samples.T[::-1])] if len(samples) else samples
    ranges = ranges if len(samples) else 1
    return samples[[len(samples) * r // ranges for r in range(1, ranges)]]


def range_count(rows: int, layout, workers: int, memory: int | None) -> int:
    """The key ranges to merge: two per worker, or more when a memory budget (bytes per task) needs
    them, so that each range's rows (``rows`` in all runs) fit in 1/RANGE_SHARE of it."""
    if memory is None:
        return 2 * workers
    return max(2 * workers, -(-rows * (8 * layout.words + 4) * RANGE_SHARE // memory))
