"""Scale (docs/scale.md): a memory budget that spills to disk, any number of workers, and Dask all
build exactly the model of the plain in-memory build; temporary files never outlive a build."""
import gzip
import mmap
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import glm
from glm import spill
from glm.cli import main
from glm.counts import NgramCounter
from glm.formats import arpa
from test_counting import _streams

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "shakespeare-train.txt.gz"
TEST = ROOT / "data" / "shakespeare-test.txt.gz"


def _same_levels(a, b):
    assert len(a) == len(b)
    for la, lb in zip(a, b):
        assert sorted(la) == sorted(lb)
        for name in la:
            if name == "last_open":
                assert la[name] == lb[name]
            else:
                assert np.array_equal(la[name], lb[name]), name


def _build(tmp_path, name, *args):
    out = tmp_path / name
    assert main(["build", "--order", "4", str(TRAIN), "-o", str(out), "-q", *args]) == 0
    return out.read_bytes()


@pytest.fixture
def spills(monkeypatch):
    """Counts the runs written to disk."""
    written = []
    save = spill.Scratch.save_run

    def spy(self, blocks, layout):
        run = save(self, blocks, layout)
        written.append(run.rows)
        return run
    monkeypatch.setattr(spill.Scratch, "save_run", spy)
    return written


def test_parse_size():
    assert spill.parse_size("2G") == 2 << 30
    assert spill.parse_size("500M") == 500 << 20
    assert spill.parse_size("1.5k") == 1536
    assert spill.parse_size(4096) == 4096
    for bad in ("", "2X", "-1G", "0"):
        with pytest.raises(ValueError):
            spill.parse_size(bad)


def test_spilled_runs_with_repacking_equal_in_memory_counting(tmp_path, spills):
    """Runs spilled while the vocabulary outgrows the key width are re-packed as they are merged."""
    _, streams = _streams()
    sizes = list(np.maximum.accumulate([int(s.max()) + 1 for s in streams]))    # vocabulary seen so far
    plain = NgramCounter(3)
    with spill.Scratch("300K", tmp_path) as scratch:
        spilled = NgramCounter(3, scratch=scratch)
        for s, size in zip(streams, sizes):
            plain.add(s, size)
            spilled.add(s, size)
        layouts = {run.layout.bits for run in spilled.spilled}
        _same_levels(plain.levels(sizes[-1], with_raw=True), spilled.levels(sizes[-1], with_raw=True))
    assert len(layouts) > 1, "the test should spill runs of more than one key width"
    assert len(spills) > 10
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("prune", [(), (0, 1, 1)])
def test_tiny_budget_equals_in_memory_build(tmp_path, spills, prune):
    plain = glm.train(TRAIN, 4, prune=prune)
    bounded = glm.train(TRAIN, 4, prune=prune, memory="400K", tmpdir=tmp_path)
    assert len(spills) > 20, "a budget this small must spill many runs"
    base = bounded.levels[-1]["word"]
    while isinstance(base, (np.ndarray, memoryview)):
        base = base.obj if isinstance(base, memoryview) else base.base
    assert isinstance(base, mmap.mmap), "large arrays are memory-mapped"
    _same_levels(plain.levels, bounded.levels)
    assert plain.discounts == bounded.discounts and plain.unpruned_counts == bounded.unpruned_counts
    assert os.listdir(tmp_path) == []
    assert np.allclose(plain.score_many(["to be or not to be", "my lord"]),
                       bounded.score_many(["to be or not to be", "my lord"]))


def test_cli_budget_and_workers_give_identical_files(tmp_path, monkeypatch):
    monkeypatch.setattr(arpa, "CHUNK", 5000)           # many chunks formatted in parallel
    files = {f"w{n}": _build(tmp_path, f"w{n}.arpa", "--workers", str(n)) for n in (1, 2, 4)}
    files["budget"] = _build(tmp_path, "budget.arpa", "--memory", "1M", "--tmpdir", str(tmp_path),
                             "--workers", "2")
    assert files["w1"].count(b"\n") > 400_000
    for name, data in files.items():
        assert data == files["w1"], name
    assert sorted(os.listdir(tmp_path)) == sorted(f"{k}.arpa" for k in files)


def test_budget_binary_is_the_in_memory_one(tmp_path, monkeypatch):
    """Under a budget the child hash of a back-off .glmb is made in the scratch directory: same bytes."""
    import glm.build
    allocs = []
    real = glm.build.trie_hash
    monkeypatch.setattr(glm.build, "trie_hash", lambda levels, alloc=None: allocs.append(alloc)
                        or real(levels, alloc))
    plain = _build(tmp_path, "plain.glmb")
    budget = _build(tmp_path, "budget.glmb", "--memory", "1M", "--tmpdir", str(tmp_path))
    assert budget == plain
    assert len(allocs) == 1 and allocs[0].__func__ is spill.Scratch.zeros
    assert sorted(os.listdir(tmp_path)) == ["budget.glmb", "plain.glmb"]


def test_temp_files_removed_after_failure(tmp_path):
    text = tmp_path / "text"
    text.mkdir()
    good = gzip.decompress(TRAIN.read_bytes())
    (text / "a.txt").write_bytes(good + b"fine line\nbad \xff byte\n" + good)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(glm.CorpusError, match=r"a\.txt:%d: invalid UTF-8" % (good.count(b"\n") + 2)):
        glm.train(text, 3, memory="300K", tmpdir=work)
    assert os.listdir(work) == []


def test_temp_files_removed_after_ctrl_c(tmp_path):
    corpus = tmp_path / "big.txt"
    corpus.write_bytes(gzip.decompress(TRAIN.read_bytes()) * 6)
    work = tmp_path / "work"
    work.mkdir()
    # the glm this test imported (installed, or built in place), not the source tree of the working directory
    home = str(Path(glm.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=home + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # In full test runs this process has been seen with SIGINT ignored (glm sets no signal handlers), and
    # a Python started so keeps ignoring it: the build gets Ctrl-C's handler, as in a terminal
    cli = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "sys.argv[0] = 'glm'; runpy.run_module('glm.cli', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", cli, "build", "--order", "5", str(corpus),
                             "-o", str(tmp_path / "m.arpa"), "--memory", "300K", "--tmpdir", str(work), "-q"],
                            env=env, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if any(os.listdir(work / d) for d in os.listdir(work)):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert os.listdir(work) == []
    assert not (tmp_path / "m.arpa").exists()


def test_bad_tmpdir_and_workers():
    with pytest.raises(ValueError, match="no such directory"):
        glm.train(TRAIN, 2, memory="1M", tmpdir="/nonexistent/dir")
    with pytest.raises(ValueError, match="workers"):
        glm.train(TRAIN, 2, workers=0)


# ---------------------------------------------------------------------------------------------- Dask
def test_dask_local_cluster_builds_the_same_model(tmp_path, dask_client):
    plain_text = tmp_path / "train.txt"
    plain_text.write_bytes(gzip.decompress(TRAIN.read_bytes()))
    inputs = [plain_text, TEST]          # a plain file cut into shards, and a compressed one (one shard)
    from glm.distributed import shards
    assert len(shards([str(p) for p in inputs], 4)) >= 5
    expected = glm.train(inputs, 4)
    expected.save(tmp_path / "plain.arpa")
    work = tmp_path / "work"
    work.mkdir()
    for memory in (None, "1M"):
        model = glm.train(inputs, 4, dask=dask_client, memory=memory, tmpdir=work)
        assert list(model.vocab) == list(expected.vocab)
        model.save(tmp_path / "dask.arpa")
        assert (tmp_path / "dask.arpa").read_bytes() == (tmp_path / "plain.arpa").read_bytes()
    assert os.listdir(work) == []


def test_dask_budget_cuts_more_key_ranges(tmp_path, dask_client, monkeypatch):
    """With a budget, every worker counts into run files in its local directory and the key ranges
    multiply as the budget shrinks (a range's runs fill at most 1/RANGE_SHARE of it); the model is the
    same, and the workers' run files are gone afterwards."""
    import glm.distributed as dist
    from glm.corpus import text_chunks
    from glm.counts import key_layout
    text = tmp_path / "train.txt"
    text.write_bytes(gzip.decompress(TRAIN.read_bytes()))
    expected = glm.train(text, 4)
    expected.save(tmp_path / "plain.arpa")
    chosen = []
    real = dist.range_count
    monkeypatch.setattr(dist, "range_count", lambda *args: chosen.append((args, real(*args))) or chosen[-1][1])
    dask_client.wait_for_workers(2)
    for memory in (None, "1M"):
        model = glm.train(text, 4, dask=dask_client, memory=memory, tmpdir=tmp_path)
        model.save(tmp_path / "dask.arpa")
        assert (tmp_path / "dask.arpa").read_bytes() == (tmp_path / "plain.arpa").read_bytes()
    # the shards' runs hold at least the corpus's distinct 4-gram windows
    counter, ids = NgramCounter(4), glm.Vocabulary()
    for chunk in text_chunks([text]):
        counter.add(ids.tokenize(chunk, add=True, symbols="error", bad_utf8="error"), len(ids))
    rows = len(counter.merged(len(ids))[1])
    assert len(ids) == len(expected.vocab)
    row_bytes = 8 * key_layout(4, len(ids)).words + 4
    (args, unbudgeted), (budget_args, budgeted) = chosen
    assert args[2] >= 1 and unbudgeted == 2 * args[2]          # no budget: two ranges per worker
    assert budget_args[3] == 1 << 20                           # a task's budget: 1M over 1 thread a worker
    assert budgeted >= rows * row_bytes * dist.RANGE_SHARE / (1 << 20) > unbudgeted
    locals_ = dask_client.run(lambda dask_worker: dask_worker.local_directory)
    assert dask_client.run(lambda: len(dist._STORES)) == {w: 0 for w in locals_}
    for local in locals_.values():
        assert not [n for n in os.listdir(local) if n.startswith("glm-")]
    # one shard counted under a budget: a run file in the local directory of the worker that counted it
    shard = dist.shards([str(text)], 1)[0]
    where, run = dask_client.submit(dist._shard_run, shard, ids.table.arrays(), 4, "error", "error",
                                    memory=1 << 20, build="test", pure=False).result()
    assert run.path.startswith(locals_[where] + os.sep) and run.rows == rows
    assert os.path.getsize(run.path + ".keys") == rows * 8 * run.layout.words
    dask_client.run(dist._drop_store, "test")
    assert not os.path.exists(run.path + ".keys")


def test_dask_error_names_file_and_line(tmp_path, dask_client):
    good = gzip.decompress(TRAIN.read_bytes())
    bad = tmp_path / "bad.txt"
    bad.write_bytes(good + b"bad \xff byte\n" + good)
    with pytest.raises(glm.CorpusError, match=r"bad\.txt:%d: invalid UTF-8" % (good.count(b"\n") + 1)):
        glm.train(bad, 3, dask=dask_client.scheduler.address)       # a scheduler given by address


def test_dask_tuned_on_a_split_is_the_single_machine_model(tmp_path, dask_client):
    """The default GLM and tuned MKN hold out every 10th line, fit with a model of the rest and rebuild
    on all: with --dask the part is counted on the client, all the text on the workers, and the fitted
    model is the single-machine one."""
    lines = gzip.decompress(TRAIN.read_bytes()).decode().splitlines()[:3000]
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    for method in ("glm", "mkn"):
        kw = dict(method=method, tune_split=0.1, discount_fallback=True)
        want, got = glm.train([train], 3, **kw), glm.train([train], 3, dask=dask_client, **kw)
        assert got.meta["tune_split"] == want.meta["tune_split"] == 0.1
        assert got.weights == want.weights and got.tables.discounts == want.tables.discounts
        np.testing.assert_array_equal(got.score_many(lines[:200]), want.score_many(lines[:200]))


def test_cli_dask_local_cluster(tmp_path):
    pytest.importorskip("distributed", reason="Dask is optional: pip install glm[dask]")
    text = tmp_path / "train.txt"
    text.write_bytes(gzip.decompress(TRAIN.read_bytes()))
    for name, extra in (("plain.arpa", []), ("dask.arpa", ["--dask", "--workers", "2"])):
        assert main(["build", "--order", "3", str(text), "-o", str(tmp_path / name), "-q", *extra]) == 0
    assert (tmp_path / "dask.arpa").read_bytes() == (tmp_path / "plain.arpa").read_bytes()


def test_cli_notes_a_peak_above_the_budget(tmp_path, capsys):
    """A budget below what the build needs anyway (the interpreter alone is more than 1 MiB) is named in
    a note; a budget above the peak, or -q, gives none."""
    text = tmp_path / "t.txt"
    text.write_text("a b c\nb c d\n" * 50)
    args = ["build", str(text), "--order", "2", "--discount-fallback", "--tmpdir", str(tmp_path)]
    assert main(args + ["-o", str(tmp_path / "a.arpa"), "--memory", "1M"]) == 0
    err = capsys.readouterr().err
    assert "note: the peak resident memory" in err and "above --memory 1M" in err
    assert main(args + ["-o", str(tmp_path / "b.arpa"), "--memory", "1T"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main(args + ["-o", str(tmp_path / "c.arpa"), "--memory", "1M", "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_dask_task_pinned_to_a_lost_worker_is_an_error_not_a_hang(dask_client, monkeypatch):
    """Under a budget, tasks on run files are pinned to the worker whose disk holds them; if it has
    left, they would wait for ever.  (A task pinned to an address no worker has stands in for it.)"""
    import glm.distributed as dist
    monkeypatch.setattr(dist, "LOST_CHECK", 0.2)
    gone = "tcp://127.0.0.1:9"
    future = dask_client.submit(sum, [1, 2], workers=[gone], pure=False)
    t0 = time.time()
    with pytest.raises(dist.WorkerLost, match="tcp://127.0.0.1:9 left the cluster"):
        dist._results(dask_client, [future], [gone])
    assert time.time() - t0 < 30
    here = next(iter(dask_client.scheduler_info()["workers"]))
    assert dist._results(dask_client, [dask_client.submit(sum, [1, 2], workers=[here], pure=False)],
                         [here]) == [3]


def test_remove_arrays_frees_the_files_keeps_the_maps(tmp_path):
    """Scratch.remove_arrays (a Dask worker done with its ranges): the arrays' files go at once, maps
    still alive keep their data, other files (runs, parts) stay."""
    from glm.spill import Scratch
    with Scratch("64M", tmp_path) as scratch:
        a = scratch.zeros(1 << 20, np.uint32)
        a[:] = np.arange(1 << 20, dtype=np.uint32)
        other = scratch._name("part")
        open(other, "wb").close()
        scratch.remove_arrays()
        assert os.listdir(scratch.path) == [os.path.basename(other)]
        assert np.array_equal(a, np.arange(1 << 20, dtype=np.uint32))
