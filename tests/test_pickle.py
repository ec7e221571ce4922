"""Models pickle: file-backed ones by path and file identity (refused when the file changed), others by
contents; worker processes started by spawn and forkserver score with them; Hugging Face datasets'
fingerprint of a function using a model is the same in two processes."""
from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import glm
import glm.kenlm as gk
from helpers import random_corpus, to_lines

LINES = to_lines(random_corpus(401, n_sentences=200))
PROBE = LINES[:40] + ["w1 oov w2", ""]


@pytest.fixture(scope="module")
def models():
    return {"mkn": glm.train(lines=LINES, order=3, discount_fallback=True),
            "glm": glm.train(lines=LINES, order=3, method="glm", discount_fallback=True, tune_split=0)}


def scores(model, lines=PROBE):
    return [model.score(line) for line in lines]


@pytest.mark.parametrize("kind", ["mkn", "glm"])
def test_in_memory_by_contents(models, kind):
    model = models[kind]
    data = pickle.dumps(model)
    back = pickle.loads(data)
    assert type(back) is type(model)
    assert scores(back) == scores(model)
    assert list(back.vocab) == list(model.vocab)
    assert back.describe() == model.describe() and back.meta == model.meta
    assert pickle.dumps(model) == data
    assert pickle.loads(pickle.dumps(back)).describe() == model.describe()


IN_MEMORY = textwrap.dedent("""
    import hashlib, pickle, sys, glm
    sys.path.insert(0, sys.argv[1])
    from helpers import random_corpus, to_lines
    model = glm.train(lines=to_lines(random_corpus(401, n_sentences=200)), order=3, method=sys.argv[2],
                      discount_fallback=True)
    print(hashlib.sha256(pickle.dumps(model)).hexdigest())
""")


@pytest.mark.parametrize("kind", ["mkn", "glm"])
def test_in_memory_pickle_is_deterministic(kind):
    """The same model made in two processes pickles to the same bytes (datasets' fingerprints)."""
    run = [sys.executable, "-c", IN_MEMORY, os.path.dirname(os.path.abspath(__file__)), kind]
    first = subprocess.run(run, check=True, capture_output=True, text=True).stdout
    assert first.strip() and first == subprocess.run(run, check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("name", ["m.arpa", "m.glmb", "g.glmb", "g.glm"])
def test_file_backed_by_path(models, tmp_path, name):
    model = models["glm" if name.startswith("g") else "mkn"]
    path = tmp_path / name
    model.save(path)
    loaded = glm.load(path)
    data = pickle.dumps(loaded)
    assert len(data) < 1000 and os.fsencode(path) in data
    np.testing.assert_allclose(scores(pickle.loads(data)), scores(model), atol=1e-5)
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 10**9))       # the file "changed"
    with pytest.raises(glm.ModelFormatError, match="changed since it was pickled"):
        pickle.loads(data)
    os.unlink(path)
    with pytest.raises(glm.ModelFormatError, match="gone"):
        pickle.loads(data)


def test_kenlm_api_model_pickles(models, tmp_path):
    models["mkn"].save(tmp_path / "m.glmb")
    k = gk.Model(tmp_path / "m.glmb")
    back = pickle.loads(pickle.dumps(k))
    assert back.path == k.path and scores(back) == scores(k)
    s, t = gk.State(), gk.State()
    back.BeginSentenceWrite(s)
    assert back.BaseScore(s, "w1", t) == k.BaseScore(s, "w1", t)
    mem = gk.Model.from_model(models["glm"])
    assert scores(pickle.loads(pickle.dumps(mem))) == scores(mem)


def _score_all(model, lines):
    return [model.score(line) for line in lines]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_process_pool(models, tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    models["mkn"].save(tmp_path / "m.glmb")
    jobs = [("file", glm.load(tmp_path / "m.glmb")), ("memory", models["glm"]),
            ("kenlm", gk.Model(tmp_path / "m.glmb"))]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as ex:
        futures = [(m, ex.submit(_score_all, m, PROBE)) for _, m in jobs]
        for model, fut in futures:
            np.testing.assert_allclose(fut.result(), scores(model), atol=1e-6)


FINGERPRINT = textwrap.dedent("""
    import sys, glm
    from datasets.fingerprint import Hasher
    model = glm.load(sys.argv[1])
    def add_score(example):
        return {"score": model.score(example["text"])}
    print(Hasher.hash(add_score))
""")


def test_datasets_fingerprint(models, tmp_path):
    """datasets caches map() results under a fingerprint of the function, made by pickling it with the
    model: the same in two runs when the model file is the same."""
    pytest.importorskip("datasets", reason="Hugging Face datasets is not installed (not a test extra)")
    models["mkn"].save(tmp_path / "m.glmb")
    run = [sys.executable, "-c", FINGERPRINT, str(tmp_path / "m.glmb")]
    first = subprocess.run(run, check=True, capture_output=True, text=True).stdout
    second = subprocess.run(run, check=True, capture_output=True, text=True).stdout
    assert first.strip() and first == second
    models["glm"].save(tmp_path / "m.glmb")                   # another model in the same file
    assert subprocess.run(run, check=True, capture_output=True, text=True).stdout != first


def test_datasets_map_num_proc(models, tmp_path):
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is not installed (not a test extra)")
    models["mkn"].save(tmp_path / "m.glmb")
    model = glm.load(tmp_path / "m.glmb")
    ds = datasets.Dataset.from_dict({"text": PROBE})

    def add_score(example):
        return {"score": model.score(example["text"])}

    kw = dict(num_proc=2, cache_file_name=str(tmp_path / "cache.arrow"))
    out = ds.map(add_score, **kw)
    np.testing.assert_allclose(out["score"], scores(model), atol=1e-6)
    again = ds.map(add_score, **kw)              # the cache: the same fingerprint
    assert again._fingerprint == out._fingerprint
