"""MKN estimated and written on the Dask workers, by key range (``glm build --dask ... -o model.arpa``).

glm.distributed counts the corpus on the workers into sorted runs of top-order windows, packed last word
first.  Here the splitters are moved to last-word boundaries, so that a key range holds every window
ending in its words (an interval of word ids): every n-gram of every order ending in those words, with
its whole group of left extensions.  On the range's worker:

1. **Levels** (``_open_range``): the range's pieces of every run are merged and turned into its suffix
   trie levels with adjusted counts (``_count.build_levels``, as on one machine: the adjusted count of
   an n-gram only needs the windows that end as it does).  The client receives small summaries: the
   level sizes, the count-of-counts of each order (of unigrams: of the range's words) and the n-grams
   still open at the end of the pass (lmplz counts the last window's suffixes by their raw count; only
   the last non-empty range's count).
2. **Discounts and unigrams**: the client sums the count-of-counts into each order's discounts; a
   worker makes the unigram probabilities from the ranges' counts of their words (a vocabulary-sized
   array, which every worker fetches from it).
3. **Context sums, one shuffle per order n** (``_context_pieces``, ``_context_sums``,
   ``_interpolate``): the context w1..wn-1 of an n-gram ends in another word than the n-gram, so it
   belongs to the range of wn-1.  It is the child w1 of the context w2..wn-1 of the n-gram's parent
   w2..wn, which the same range found at order n-1 (at order 2 it is the unigram w1).  Each range sends
   to each owning range, for each of its n-grams in its own suffix order, that node, w1 and the
   adjusted count; the owner finds the contexts in its level n-1 (``_count.child_index``), sums them in
   range order -- the order of a single-machine build, so even the float sums are the same --
   (``_mkn.context_sums``), computes their backoffs (``_mkn.backoffs``) and sends back each n-gram's
   context (index, sums); the n-gram's range interpolates it with the probability of its suffix
   w2..wn, which is in the same range (``_mkn.interpolate``), and keeps the contexts for order n+1.
4. **Output** (``_format_part``): each range formats its unigrams and its n-grams of each order as
   ARPA lines (``_arpa.format_level``), one task per range and order, submitted as soon as the order
   is final on the range (order n - 1 once order n is interpolated there), at a lower priority than
   the estimation, whose gaps it fills; the client writes the header and copies the parts in order as
   they are done (ranges are in suffix order, so the concatenation is the single-machine file, byte
   for byte): from the part files themselves when it sees them (a LocalCluster;
   ``os.copy_file_range``; each removed once copied), else through Dask a chunk at a time.  A worker
   drops its ranges' arrays (and their files) once their parts are formatted (``_release``).

The client only coordinates: it holds the summaries and one part chunk at a time.  The vocabulary is
made on a worker from the shards' words (glm.distributed), the unigram probabilities on a worker from
the ranges' counts; the tasks that need them take them as Dask futures.
Under a memory budget (``--memory``, per worker task as in glm.distributed) the ranges are sized from
the runs as for counting, a range's arrays are memory-mapped files in the worker's scratch directory,
and the pieces of each shuffle and the output parts are files there, read by the task that needs them.
When the client sees the workers' run files (``runs_visible``: a LocalCluster, or workers sharing a
file system with it), the tasks read each other's files directly (a range maps its slices of the runs;
a shuffle reads its pieces) instead of receiving them through Dask.  Stage times: $GLM_TIMES=1.
A range cannot be cut inside one last word: the range of a very frequent last word can be larger than
the budget asks.

Not done here (these builds count on the workers and estimate on the client, glm.build): GLM methods,
tuned MKN, ``--prune``, order 1, output other than ARPA (``.glmb``), and ``train(dask=...)`` without
an output file (the model is then returned in memory).
"""
from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import numpy as np

from . import _arpa, _count, _mkn
from .discount import discounts, fallback_triple
from .distributed import (STATE, Job, SharedVocabulary, _STORES_LOCK, _piece, _piece_view, _pin, _remove_run,
                          _results, _store, count_runs, runs_visible, session, splitters, wait_for)
from .mkn import Options, unigram_probs
from .model import BackoffModel, Model
from .progress import stage
from .spill import merge_many
from .threads import parallel, threads
from .vocab import BOS

CHUNK = 1 << 16              # n-grams formatted at a time (as glm.formats.arpa: a few MB of text)
READ_BYTES = 16 << 20        # bytes of a part the client reads at a time


def last_word_bounds(bounds: np.ndarray, layout, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(aligned bounds, last words): the splitter keys moved up to the largest key with the same last
    word (so that no last word is cut between two ranges), duplicates dropped; range r then holds the
    windows whose last word is in (last[r - 1], last[r]], the last range up to vocab_size - 1."""
    shift = np.uint64((layout.per_word - 1) * layout.bits)
    last = np.unique(bounds[:, 0] >> shift) if len(bounds) else np.zeros(0, np.uint64)
    last = last[last < vocab_size - 1]
    aligned = np.full((len(last), layout.words), np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64)
    aligned[:, 0] = (last << shift) | ((np.uint64(1) << shift) - np.uint64(1))
    return aligned, np.append(last, vocab_size - 1).astype(np.int64)


# -- on the workers ---------------------------------------------------------------------------------
def _range(build: str, r: int) -> dict:
    """What the tasks of range r of a build keep on this worker (glm.distributed.STATE)."""
    with _STORES_LOCK:
        return STATE.setdefault(build, {}).setdefault(r, {})


def _alloc(build: str, memory: int | None):
    return np.zeros if memory is None else _store(build, memory).zeros


def _open_range(build: str, r: int, memory, vocab_size: int, layout, words: tuple, bounds, *pieces) -> dict:
    """Merge range r's pieces of the runs and make its trie levels (kept on this worker); returns its
    summary for the client: this worker's address, the level sizes, the count-of-counts (bins 0..5) of
    every order (of unigrams: of its words, ids words[0]..words[1]), how many of its words have a
    nonzero adjusted count (and the count of word 0, for range 0), and the n-grams open at the end of
    its pass: per order below the top, None or (index, raw count, adjusted count).  With ``bounds``
    (low, high), the pieces are the shards' runs, read here from their files (mapped)."""
    from distributed import get_worker
    if bounds is not None:
        pieces = [_piece_view(run, *bounds, _store(build, memory)) for run in pieces]
    keys, counts = merge_many(list(pieces))
    del pieces
    alloc = _alloc(build, memory)
    levels = _count.build_levels(keys, counts, layout, vocab_size, False, alloc)
    rows = len(counts)
    del keys, counts
    for n in range(2, len(levels) + 1):
        levels[n - 2]["starts"] = _count.child_starts(levels[n - 1]["parent"], len(levels[n - 2]["count"]),
                                                      alloc)
    _range(build, r).update(levels=levels, alloc=alloc, words=words)
    last_open = []
    for n, lv in enumerate(levels[:-1], 1):
        lo = lv.pop("last_open", None)
        last_open.append(None if lo is None or not rows else (int(lo[0]), int(lo[1]), int(lv["count"][lo[0]])))
    unigrams = _unigrams(build, r)
    return dict(address=get_worker().address, rows=rows, sizes=[len(lv["word"]) for lv in levels[1:]],
                coc=[np.bincount(np.minimum(lv["count"] if n else unigrams, 5), minlength=6)
                     for n, lv in enumerate(levels)],
                nonzero=int(np.count_nonzero(unigrams)), first=int(unigrams[0]) if words[0] == 0 else None,
                last_open=last_open)


def _unigrams(build: str, r: int) -> np.ndarray:
    """The adjusted counts of range r's words."""
    st = _range(build, r)
    lo, hi = st["words"]
    return np.array(st["levels"][0]["count"][lo:hi + 1])


def _unigram_probs(D: tuple, opts: Options, *parts) -> np.ndarray:
    """The unigram probabilities (float32) from the ranges' adjusted counts of their words, in order."""
    return unigram_probs(np.concatenate(parts), D, opts).astype(np.float32)


def _keep(build: str, memory, arrays: list):
    """A list of tuples of arrays as the result of a task: itself without a budget; with one, written to
    a file in this worker's scratch directory, and (path, [(dtype, shape) per array]) returned."""
    if memory is None:
        return arrays
    store = _store(build, memory)
    path, layout = store._name("piece"), []
    with open(path, "wb") as f:
        for group in arrays:
            shapes = []
            for a in group:
                a = np.ascontiguousarray(a)
                if a.size:
                    f.write(memoryview(a).cast("B"))
                shapes.append((a.dtype.str, a.shape))
            layout.append(shapes)
    return path, layout


def _fetch(kept, i: int, j: int | None = None):
    """Item i of what ``_keep`` returned (read from its file, on the worker that wrote it); with j,
    array j of it only."""
    if isinstance(kept, list):
        return kept[i] if j is None else kept[i][j]
    path, layout = kept
    sizes = [[np.dtype(d).itemsize * int(np.prod(s)) for d, s in group] for group in layout]
    offset = sum(map(sum, sizes[:i])) + (sum(sizes[i][:j]) if j is not None else 0)
    wanted = layout[i] if j is None else layout[i][j:j + 1]
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        for dtype, shape in wanted:
            out.append(np.fromfile(f, np.dtype(dtype), int(np.prod(shape))).reshape(shape))
    return tuple(out) if j is None else out[0]


def _drop(kept) -> None:
    if not isinstance(kept, list):
        os.unlink(kept[0])


def _context_pieces(build: str, r: int, memory, n: int, owners: np.ndarray):
    """Where the contexts w1..wn-1 of range r's n-grams are to be found, with the n-grams' adjusted
    counts: one piece per range owning them (by wn-1), each in this range's suffix order (kept: see
    ``_keep``).  A context is the child w1 of its suffix's context w2..wn-1, which the owner found for
    the n-gram's parent at order n-1 (the same owner): a piece holds (that node, w1, count); at order 2
    the context is the unigram w1 (node 0)."""
    st = _range(build, r)
    levels = st["levels"]
    lv = levels[n - 1]
    word = lv["word"]
    if n == 2:
        owner = np.searchsorted(owners, word).astype(np.int32)
        node = None
    else:
        owner = st.pop("ctx_owner")[lv["parent"]]
        node = st.pop("ctx_node")[lv["parent"]]
    perm, cuts = _count.group_by_owner(owner, len(owners))
    st["perm"], st["cuts"], st["owner"] = perm, cuts, owner
    count = lv["count"]
    zero = np.zeros(0, np.uint32)
    return _keep(build, memory, [(node[perm[a:b]] if node is not None else zero, word[perm[a:b]],
                                  count[perm[a:b]]) for a, b in zip(cuts, cuts[1:])])


def _context_sums(build: str, o: int, memory, n: int, D: tuple, ranges: list, *groups):
    """Range o's contexts of order n-1 summed over the n-grams of every range (each range's piece for
    o, grouped by worker: see ``_in_range_order``), their backoffs (kept here), and for each range the
    index, total and numerator of gamma of each n-gram's context (kept)."""
    pieces = _in_range_order(ranges, groups, o)
    del groups
    st = _range(build, o)
    levels, alloc = st["levels"], st["alloc"]
    size = len(levels[0]["count"]) if n == 2 else len(levels[n - 2]["word"])
    found, counts = [], []
    for node, word, count in pieces:
        if n == 2:
            idx = np.asarray(word, dtype=np.uint32)
        else:
            idx, missing = _count.child_index(node, word, levels[n - 3]["starts"], levels[n - 2]["word"])
            if missing >= 0:
                raise RuntimeError(f"the context of an {n}-gram is not in range {o}")
        found.append(idx)
        counts.append(count)
    del pieces
    idx = np.concatenate(found) if found else np.zeros(0, np.uint32)
    total, num = _mkn.context_sums(idx, np.concatenate(counts) if counts else np.zeros(0, np.uint32), None,
                                   D, size, alloc)
    del counts, idx
    levels[n - 2]["backoff"] = _mkn.backoffs(total, num, alloc)
    top = n == len(levels)          # (the contexts' places are only needed for the next order)
    return _keep(build, memory, [(i[:0] if top else i, total[i], num[i]) for i in found])


def _interpolate(build: str, r: int, n: int, D: tuple, unigram_probs, ranges: list, *groups) -> int:
    """The probabilities of range r's n-grams (over their adjusted counts, still linear), from their
    contexts' sums (from each owning range, grouped by worker) and their suffixes' probabilities; the
    contexts' places are kept for order n + 1."""
    answers = _in_range_order(ranges, groups, r)
    del groups
    st = _range(build, r)
    levels = st["levels"]
    lv = levels[n - 1]
    m = len(lv["word"])
    perm, cuts = st.pop("perm"), st.pop("cuts")
    top = n == len(levels)
    node = np.empty(0 if top else m, np.uint32)
    lower = unigram_probs if n == 2 else levels[n - 2]["logprob"]
    for (a, b), (i, total, num) in zip(zip(cuts, cuts[1:]), answers):
        if not top:
            node[perm[a:b]] = i
        _mkn.interpolate_at(lv["count"], perm[a:b], lv["parent"], total, num, lower, D)
    del perm, answers
    lv["logprob"] = lv.pop("count").view(np.float32)
    del lv["parent"]
    owner = st.pop("owner")
    if n < len(levels):
        st["ctx_node"], st["ctx_owner"] = node, owner
    return m


def _format_part(build: str, r: int, memory, n: int, unigram_logprob, vocab_arrays, after=None):
    """Range r's ARPA lines of order n (its words' unigrams for n = 1), formatted as the single-machine
    writer formats them (log10 applied first); kept as ``_keep`` keeps one list of chunks, written to
    the file as they are formatted (a few chunks in memory at a time)."""
    st = _range(build, r)
    levels, (lo, hi) = st["levels"], st["words"]
    order = len(levels)
    if n == 1:
        levels[0]["logprob"] = unigram_logprob
        a, b = lo, hi + 1
    else:
        parallel(_mkn.log10_inplace, len(levels[n - 1]["logprob"]), levels[n - 1]["logprob"])
        a, b = 0, len(levels[n - 1]["logprob"])
    blob, offsets = vocab_arrays[0], vocab_arrays[1]
    file = None
    if memory is not None:
        path = _store(build, memory)._name("part")
        file = open(path, "wb")
    group, pending = [], deque()
    try:
        with ThreadPoolExecutor(threads()) as ex:
            for s in range(a, b, CHUNK):
                pending.append(ex.submit(_arpa.format_level, n, order, levels, blob, offsets, s, min(s + CHUNK, b)))
                while pending and (len(pending) > threads() or s + CHUNK >= b):
                    text = pending.popleft().result()
                    if file is None:
                        group.append(np.frombuffer(text, np.uint8))
                    else:
                        file.write(text)
                        group.append(("|u1", (len(text),)))
    finally:
        if file is not None:
            file.close()
    return [group] if file is None else (path, [group])


def _release(build: str, memory, ranges: list, *parts) -> None:
    """Once its ranges' parts are formatted (``parts``), this worker drops their arrays and removes
    their files, while the client copies the last parts (instead of all at the end)."""
    with _STORES_LOCK:
        state = STATE.get(build, {})
        for r in ranges:
            state.pop(r, None)
    if memory is not None:
        _store(build, memory).remove_arrays()


def _read(kept, chunk: int) -> bytes:
    return bytes(_fetch(kept, 0, chunk))


# -- on the client ----------------------------------------------------------------------------------
def _in_order(client, submit, count: int, ahead: int | None, pinned) -> list:
    """The futures of submit(i) for i < count, all done, submitted in order with at most ``ahead`` of
    them (None: no limit) running ahead of the one awaited (a worker lost while holding a range is a
    glm.distributed.WorkerLost error)."""
    ahead = count if ahead is None else ahead
    futures = []
    for i in range(count + ahead):
        if i < count:
            futures.append(submit(i))
        if i >= ahead:
            wait_for(client, [futures[i - ahead]], pinned)
    return futures


def build_arpa(inputs, order: int, output: str, dask, n_workers: int | None, symbols: str, bad_utf8: str,
               opts: Options, scratch=None, quiet: bool = True):
    """Count, estimate (MKN) and write the ARPA file ``output`` on a Dask cluster; returns (n-grams per
    order, discounts per order, n-grams per order before pruning).  The file is the one a single-machine
    build writes, byte for byte."""
    from .corpus import CorpusError, input_names
    with ExitStack() as stack:
        with stage("cluster start"):
            job = stack.enter_context(session(dask, n_workers, scratch))
        with stage("count"):
            vocab, counted = count_runs(job, inputs, order, symbols, bad_utf8)
        with stage("open ranges"):
            bounds, last = last_word_bounds(splitters(job, counted), counted.layout, vocab.size)
            shared = runs_visible(job.client, counted)
            ranges = _open_ranges(job, counted, bounds, last, vocab.size, shared)
        removed = [job.client.submit(_remove_run, run, workers=_pin(w), priority=-1, pure=False)
                   for run, w in zip(counted.runs, counted.where)]
        if vocab.size == 3 and not ranges[0]["first"]:
            raise CorpusError(f"no text in {input_names(inputs)}: not a single word to train on")
        where = [s["address"] for s in ranges]
        D = _discounts(ranges, order, opts)
        # the unigrams' probabilities, made on a worker from the ranges' counts, as their log10 for the file
        prob = job.client.submit(_unigram_probs, D[0], opts, *[
            job.client.submit(_unigrams, job.build, r, workers=[w], pure=False) for r, w in enumerate(where)],
            pure=False)
        parts, final = _parts(job, where, job.client.submit(_log10, prob, pure=False), vocab)
        with stage("estimate"):
            _estimate(job, where, last, D, prob, shared, final)
        released = _release_all(job, where, parts, order)
        counts = [vocab.size] + [sum(s["sizes"][n - 2] for s in ranges) for n in range(2, order + 1)]
        with stage("write"):
            _write(job, where, output, counts, parts, quiet)
            wait_for(job.client, removed + released, list(counted.where) + where)
        with stage("cluster stop"):
            stack.close()
        return counts, D, [sum(s["nonzero"] for s in ranges)] + counts[1:]


def _log10(prob: np.ndarray) -> np.ndarray:
    """The unigrams' log10 probabilities as the ARPA file gives them (<s>: 0)."""
    logprob = prob.copy()
    _mkn.log10_inplace(logprob, 0, len(logprob))
    logprob[BOS] = 0.0
    return logprob


def _release_all(job: Job, where: list, parts: dict, order: int) -> list:
    """The futures of each worker's ``_release`` of its ranges, after their parts (at the lowest
    priority)."""
    return [job.client.submit(_release, job.build, job.memory, rs,
                              *[parts[n, r] for n in range(1, order + 1) for r in rs],
                              workers=[w], priority=-1 - (order + 1) * len(where), pure=False)
            for w, rs in _held(where).items()]


def _open_ranges(job: Job, counted, bounds, last, vocab_size: int, shared: bool) -> list[dict]:
    """The summaries of the ranges cut at ``bounds``, each merged and made into levels on a worker (the
    workers in turn, so that each holds as many ranges as the others; at most about one range per
    worker ahead of the one awaited)."""
    client = job.client
    workers = sorted(client.scheduler_info()["workers"])

    def submit(r):
        low, high = (bounds[r - 1] if r else None), (bounds[r] if r < len(bounds) else None)
        if shared:
            pieces = counted.runs
        else:
            pieces = [client.submit(_piece, run, low, high, workers=_pin(w), pure=False)
                      for run, w in zip(counted.runs, counted.where)]
        words = (int(last[r - 1]) + 1 if r else 0, int(last[r]))
        return client.submit(_open_range, job.build, r, job.memory, vocab_size, counted.layout, words,
                             (low, high) if shared else None, *pieces, workers=[workers[r % len(workers)]],
                             pure=False)

    futures = _in_order(client, submit, len(bounds) + 1, job.workers, list(counted.where) + workers)
    return client.gather(futures)


def _discounts(ranges: list[dict], order: int, opts: Options) -> list[tuple]:
    """Each order's discounts from the ranges' count-of-counts (the n-grams open at the end of the last
    non-empty range's pass counted by their raw count, as lmplz and glm.mkn do; they end in the range's
    last word, so the range knows their adjusted counts, the unigram's too)."""
    fallback = fallback_triple(opts.discount_fallback) if opts.discount_fallback is not None else None
    last = [s for s in ranges if s["rows"]][-1]["last_open"] if any(s["rows"] for s in ranges) else [None] * order
    out = []
    for n in range(1, order + 1):
        t = sum(s["coc"][n - 1] for s in ranges)
        if n < order and last[n - 1] is not None:
            _, raw, count = last[n - 1]
            t[min(count, 5)] -= 1
            t[min(raw, 5)] += 1
        out.append(discounts([int(x) for x in t[1:5]], n, fallback))
    return out


def _estimate(job: Job, where: list, last, D: list, prob: np.ndarray, shared: bool, final) -> None:
    """Context sums, backoffs and probabilities of every order on the ranges' workers: one shuffle per
    order, its stages in turn (pieces, sums, interpolation), with at most about one range per worker
    ahead of the one awaited.  What a stage sends from a worker's ranges to one range is fetched by one
    task on that worker (or read by the task that needs it, ``shared``).  final(n, futures): order n is
    final (probabilities and backoffs) on range r once futures[r] is done."""
    client, build, memory = job.client, job.build, job.memory
    R, order = len(where), len(D)
    held = _held(where)
    owners = client.scatter(last, broadcast=True)
    uni = prob                       # (a future: each worker fetches the array once)
    ahead = job.workers if memory is not None else None      # (without a budget, all at once)

    def gathered(kept, i):
        """(ranges, futures of their item i) from each worker holding some of ``kept``; with files that
        every worker sees (``shared``), (range, what it kept) of each range, read by the task itself."""
        if shared:
            return [([r], k) for r, k in enumerate(kept)]
        return [(rs, client.submit(_fetch_each, [kept[r] for r in rs], i, workers=[w], pure=False))
                for w, rs in held.items()]

    for n in range(2, order + 1):
        with stage(f"order {n}: pieces"):
            pieces = _in_order(client, lambda r: client.submit(
                _context_pieces, build, r, memory, n, owners, workers=[where[r]], pure=False), R, ahead, where)

        def sums(o):
            groups = gathered(pieces, o)
            return client.submit(_context_sums, build, o, memory, n, D[n - 1], [rs for rs, _ in groups],
                                 *[f for _, f in groups], workers=[where[o]], pure=False)
        with stage(f"order {n}: sums"):
            answers = _in_order(client, sums, R, ahead, where)
            wait_for(client, [client.submit(_drop, p, workers=[w], pure=False) for p, w in zip(pieces, where)],
                     where)

        def interpolate(r):
            groups = gathered(answers, r)
            return client.submit(_interpolate, build, r, n, D[n - 1], uni, [rs for rs, _ in groups],
                                 *[f for _, f in groups], workers=[where[r]], pure=False)
        with stage(f"order {n}: interpolate"):
            done = _in_order(client, interpolate, R, ahead, where)
            wait_for(client, done, where)
            wait_for(client, [client.submit(_drop, a, workers=[w], pure=False) for a, w in zip(answers, where)],
                     where)
        final(n - 1, done)
    final(order, done)


def _held(where: list) -> dict:
    """{worker: the ranges it holds} from the worker of each range."""
    return {w: [r for r in range(len(where)) if where[r] == w] for w in dict.fromkeys(where)}


def _fetch_each(kept: list, i: int) -> list:
    return [_fetch(k, i) for k in kept]


def _in_range_order(ranges: list, groups: tuple, i: int) -> list:
    """The items of groups in range order: a group is a list of the items of the ranges ``ranges[g]``
    (fetched on their worker), or what one range kept (``_keep``: a file), whose item i is read here."""
    by_range = {}
    for rs, items in zip(ranges, groups):
        by_range.update(zip(rs, items if isinstance(items, list) else [_fetch(items, i)]))
    return [by_range[r] for r in sorted(by_range)]


def _parts(job: Job, where: list, logprob, vocab: SharedVocabulary):
    """(parts, final): the futures of the ranges' ARPA parts by (order, range), and the ``final``
    callback of ``_estimate`` that submits an order's parts as soon as the order is final on a range
    (formatted on the range's worker, after the estimation tasks there but filling their gaps).
    logprob: a future of the unigrams' log10 probabilities."""
    client, R = job.client, len(where)
    arrays, uni = vocab.arrays, logprob
    parts = {}

    def final(n: int, after: list) -> None:
        for r, f in enumerate(after):     # (lower orders first: their parts are copied first)
            parts[n, r] = client.submit(_format_part, job.build, r, job.memory, n, uni, arrays, f,
                                        workers=[where[r]], priority=-1 - (n * R + r), pure=False)
    return parts, final


def _write(job: Job, where: list, output: str, counts: list, parts: dict, quiet: bool) -> None:
    """The ranges' ARPA parts (futures by (order, range)) copied in order into ``output`` after the
    header as they are done; a part file the client sees is removed once copied."""
    from .formats.arpa import _open_out
    from .formats.files import atomic_output
    from .progress import progress
    client, R, order = job.client, len(where), len(counts)
    with atomic_output(output) as tmp, _open_out(output, tmp) as out, \
            progress(total=sum(counts), desc="writing ARPA", unit="ngram", quiet=quiet) as bar:
        out.write(b"\\data\\\n" + b"".join(b"ngram %d=%d\n" % (n, c) for n, c in enumerate(counts, 1)))
        for n in range(1, order + 1):
            out.write(b"\n\\%d-grams:\n" % n)
            for r in range(R):
                _copy_part(client, parts.pop((n, r)), where, r, job, out)
            bar.update(counts[n - 1])
        out.write(b"\n\\end\\\n")


def _copy_part(client, part, where: list, r: int, job: Job, out) -> None:
    """A part appended to out: from its file when the client sees it (then removed), else through
    Dask a chunk at a time."""
    wait_for(client, [part], where)
    kept = part.result() if job.memory is not None else None
    if kept is not None and _visible(kept):
        with open(kept[0], "rb") as f:
            _copy(f, 0, os.path.getsize(kept[0]), out)
        os.unlink(kept[0])
        return
    chunks = _results(client, [client.submit(_chunk_sizes, part, workers=[where[r]], pure=False)], where)[0]
    for text in _stream(client, part, where[r], len(chunks), job.workers):
        out.write(text)


def _visible(kept) -> bool:
    """Whether the client sees the part file at its path on the worker, with its size (a LocalCluster,
    or worker directories on a file system the client shares)."""
    path, (group,) = kept
    try:
        return os.path.getsize(path) == sum(int(np.prod(shape)) for _, shape in group)
    except OSError:
        return False


def _copy(src, offset: int, size: int, out) -> None:
    """size bytes of the file src from offset appended to out: by the kernel (os.copy_file_range) into
    a plain output file, else read and written READ_BYTES at a time."""
    if hasattr(os, "copy_file_range") and type(out).__name__ == "BufferedWriter":
        out.flush()
        end = offset + size
        try:
            while offset < end:
                done = os.copy_file_range(src.fileno(), out.fileno(), end - offset, offset)
                if not done:
                    break
                offset += done
        except OSError:          # (not supported between these files: copied below)
            pass
        size = end - offset
    src.seek(offset)
    while size > 0:
        block = src.read(min(READ_BYTES, size))
        out.write(block)
        size -= len(block)


def _chunk_sizes(kept) -> list:
    if isinstance(kept, list):
        return [len(c) for c in kept[0]]
    return [int(np.prod(s)) for _, s in kept[1][0]]


def _stream(client, part, where: str, chunks: int, ahead: int):
    """The text chunks of a part (on the worker ``where``), in order, a few ahead."""
    inflight = deque()
    for c in range(chunks):
        inflight.append(client.submit(_read, part, c, workers=[where], pure=False))
        if len(inflight) > ahead:
            yield _results(client, [inflight.popleft()], [where])[0]
    while inflight:
        yield _results(client, [inflight.popleft()], [where])[0]


class WrittenModel(BackoffModel):
    """The MKN model that ``build_arpa`` wrote: its n-gram counts and discounts are known on the
    client; its vocabulary (made and kept on the workers) and n-grams are read back from the ARPA file
    on first use (scoring, saving)."""

    def __init__(self, path: str, counts: list, discounts: list, unpruned: list, meta: dict):
        Model.__init__(self, None, len(counts), meta)
        self.path = path
        self.discounts = discounts
        self.unpruned_counts = unpruned
        self._child_index = None
        self._counts = list(counts)
        self._levels = None
        self._read_lock = threading.Lock()

    def _read(self) -> None:
        with self._read_lock:
            if self._levels is None:
                from .model import load
                model = load(self.path)
                self._levels, self._vocab = model.levels, model.vocab

    @property
    def levels(self) -> list[dict]:
        """The query arrays, read from the file the first time they are needed."""
        self._read()
        return self._levels

    @property
    def vocab(self):
        """The vocabulary, read from the file with the n-grams."""
        self._read()
        return self._vocab

    @vocab.setter
    def vocab(self, value) -> None:       # (None from Model.__init__: read when first needed)
        self._vocab = value

    @property
    def counts(self) -> list[int]:
        return list(self._counts)
