"""Every example of README.md and docs/ runs, and prints what the doc shows (issue 19).

Each fenced block (tests/docblocks.py finds them) is, by its language:

* ``bash``/``sh``: run by bash (``-e -o pipefail``) in a fresh directory that holds small files under
  the names the docs use (PLACEHOLDERS below; the docs are not edited for the test), with ``glm`` and
  ``python`` on PATH being this Python with the glm under test; it must exit 0;
* ``console``: each ``$ command`` is run the same way and must print what the doc shows under it
  (numbers to the digits shown); it must exit non-zero exactly when the shown output has an
  ``error:``;
* ``python``: executed in such a directory; ``pycon`` (``>>>``): run as a doctest, output compared;
* anything else, or a block marked ``<!-- doc: not run (why) -->`` / ``<!-- doc: excerpt (what) -->``:
  not run; an unmarked block of another language fails ``test_every_block_runs_or_is_marked``.

Blocks that need an optional package (Dask, matplotlib, SentencePiece) or ``../shared/corpora`` skip
without it, saying which.
"""
from __future__ import annotations

import doctest
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docblocks import ROOT, all_blocks, console_steps, output_matches
from helpers import CORPORA

DATA = ROOT / "data"
BLOCKS, PROBLEMS = all_blocks()
RUN = [b for b in BLOCKS if b.kind in ("shell", "console", "python", "pycon")]
TIMEOUT = 180

# ------------------------------------------------------------------------------------ placeholders
# The names the docs give the user's files, and the small files that stand for them here (assets made
# once per session by `Assets`).  Every block's directory gets all of them (a few MB in all).
PLACEHOLDERS = {
    # text, one sentence per line
    "corpus.txt": "train.txt", "corpus.txt.gz": "train.txt.gz", "corpus.gz": "train.txt.gz",
    "train.txt": "train.txt", "text.txt": "train.txt", "big.txt.gz": "train.txt.gz",
    "more.txt.xz": "more.txt.xz", "T": "train.txt", "TRAIN": "train.txt",
    "valid.txt": "valid.txt", "test.txt": "test.txt", "SEQ": "test.txt", "SEQUENCES": "test.txt",
    "corpus": "corpus_dir", "shards": "corpus_dir",
    # documents
    "docs.jsonl": "docs.jsonl", "docs.jsonl.gz": "docs.jsonl.gz", "corpus.jsonl.gz": "docs.jsonl.gz",
    "data.jsonl": "docs.jsonl", "books": "books_dir", "cutoff.csv": "cutoff.csv",
    # models (of train.txt)
    "model.glmb": "model.glmb", "model.arpa": "model.arpa", "ref.glmb": "model.glmb",
    "en.glmb": "model.glmb",
    # files of the repository the docs name by their path
    "data": DATA, "tests/data/kenlm/sh3.trie": ROOT / "tests/data/kenlm/sh3.trie",
    # the GLM paper's data (../shared/corpora; blocks naming them skip when it is absent)
    "en0008t.train.txt.gz": CORPORA / "glm-paper-en0008t/en0008t.train.txt.gz",
    "en0008t.testing.5.gz": CORPORA / "glm-paper-en0008t/en0008t.testing.5.gz",
}
# Per doc: names that stand for something else there.
PLACEHOLDERS_BY_DOC = {
    "docs/curation.md": {"data": "docs_dir"},         # a directory of JSONL documents
}
# Made only for the blocks that name them (SentencePiece training takes a second).
LAZY = {"en.sp.model": "en.sp.model", "en.arpa": "en.arpa"}
# Text replaced in a block before it runs: absolute paths and cluster addresses of the examples.
SUBSTITUTE = {
    "$ pip install .\n": "$ true\n",                     # the glm under test is installed already
    "--tmpdir /scratch": "--tmpdir scratch",
    "tcp://scheduler:8786": "local",                    # a LocalCluster instead of the cluster
    "--dask --workers 8": "--dask --workers 2",         # 8 worker processes take 5 s on 2 cores
}
# Python names the snippets use without defining them.
NAMES = {"lines": lambda assets: assets.lines("test.txt")[:200]}
# Optional packages: a block that holds the key needs the module.
REQUIRES = {"--dask": "distributed", "dask=": "distributed", "--plot": "matplotlib",
            "sp.model": "sentencepiece", ".zst": "zstandard"}


def _read(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


class Assets:
    """The small files of PLACEHOLDERS, made once in a session directory."""

    def __init__(self, root: Path):
        import glm
        self.root = root
        train, test = _read(DATA / "shakespeare-train.txt.gz"), _read(DATA / "shakespeare-test.txt.gz")
        # 12,000 lines: the 90% a default GLM is tuned with needs 3-counts in every order-5 pattern
        self._write("train.txt", train[:12000])
        self._write("train.txt.gz", train[:12000])
        self._write("more.txt.xz", train[12000:13000])
        self._write("valid.txt", test[:100])
        self._write("test.txt", test[3000:])
        self._write("corpus_dir/a.txt", train[:6000])
        self._write("corpus_dir/b.txt.gz", train[6000:12000])
        docs = [dict(id=f"d{i}", text="\n".join(test[i:i + 1 + i % 5]), meta=dict(id=f"m{i}"),
                     language="en") for i in range(0, 1200, 3)]
        jsonl = [json.dumps(d) for d in docs]
        self._write("docs.jsonl", jsonl)
        self._write("docs.jsonl.gz", jsonl)
        self._write("docs_dir/part-0.jsonl", jsonl[:200])
        self._write("docs_dir/part-1.jsonl", jsonl[200:])
        self._write("books_dir/book.txt", [x for d in docs for x in (d["text"], "")])
        model = glm.train(self.root / "train.txt", order=5)
        model.save(self.root / "model.glmb")
        model.save(self.root / "model.arpa")
        cutoffs = [100.0 * 1.05 ** p for p in range(101)]          # increasing, CCNet's layout
        self._write("cutoff.csv", [",en"] + [f"{p},{v}" for p, v in enumerate(cutoffs)])

    def _write(self, name: str, lines: list[str]) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(x + "\n" for x in lines).encode()
        if name.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        elif name.endswith(".xz"):
            import lzma
            data = lzma.compress(data)
        path.write_bytes(data)

    def lines(self, name: str) -> list[str]:
        return _read(self.root / name)

    def lazy(self, name: str) -> Path:
        path = self.root / name
        if not path.exists():
            self._ccnet_pair()
        return path

    def _ccnet_pair(self) -> None:
        spm = pytest.importorskip("sentencepiece", reason="sentencepiece is not installed")
        import glm
        from glm.ccnet import CCNetTokenizer, normalize
        train = self.lines("train.txt")
        norm = self.root / "norm.txt"
        norm.write_text("".join(normalize(x) + "\n" for x in train if normalize(x)), encoding="utf-8")
        spm.SentencePieceTrainer.train(input=str(norm), model_prefix=str(self.root / "en.sp"),
                                       vocab_size=400, model_type="unigram", character_coverage=1.0,
                                       num_threads=1, minloglevel=2)
        tok = CCNetTokenizer(self.root / "en.sp.model")
        glm.train(lines=[tok(x) for x in train], order=4).save(self.root / "en.arpa")

    def source(self, value) -> Path:
        return value if isinstance(value, Path) else self.root / value

    def populate(self, block, dest: Path) -> None:
        """Put the placeholders of the block's doc into dest."""
        table = dict(PLACEHOLDERS, **PLACEHOLDERS_BY_DOC.get(block.doc, {}))
        for name, value in table.items():
            src = self.source(value)
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not src.exists():
                if name in block.text:
                    pytest.skip(f"{src} is not available (the block names {name})")
                continue
            if src.is_dir():
                shutil.copytree(src, target)
            else:
                shutil.copyfile(src, target)
        for name, value in LAZY.items():
            if name in block.text:
                shutil.copyfile(self.lazy(value), dest / name)
        (dest / "scratch").mkdir()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return Assets(tmp_path_factory.mktemp("doc-assets"))


@pytest.fixture(scope="module")
def shims(tmp_path_factory):
    """A directory for PATH with `glm` and `python` running this Python (and so this glm)."""
    bin_dir = tmp_path_factory.mktemp("doc-bin")
    for name, script in (("glm", f'exec "{sys.executable}" -m glm "$@"\n'),
                         ("python", f'exec "{sys.executable}" "$@"\n'),
                         ("python3", f'exec "{sys.executable}" "$@"\n')):
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)
    return bin_dir


def _prepare(block, assets, tmp_path: Path) -> str:
    for key, module in REQUIRES.items():
        if key in block.text:
            pytest.importorskip(module, reason=f"{module} is not installed (the block uses {key})")
    assets.populate(block, tmp_path)
    text = block.text
    for old, new in SUBSTITUTE.items():
        text = text.replace(old, new)
    return text


def _env(shims: Path) -> dict:
    env = dict(os.environ, PATH=f"{shims}{os.pathsep}{os.environ.get('PATH', '')}", COLUMNS="80")
    env.pop("GLM_DEBUG", None)
    return env


def _run_shell(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=TIMEOUT)


class _Checker(doctest.OutputChecker):
    def check_output(self, want, got, optionflags):
        return output_matches(want, got)


def test_every_block_runs_or_is_marked():
    unmarked = [f"{b.name}: a ```{b.lang or '(no language)'} block that is not run; mark it with "
                f"<!-- doc: not run (why) --> or <!-- doc: excerpt (what) --> on the line before"
                for b in BLOCKS if b.kind == "unmarked"]
    assert not PROBLEMS + unmarked, "\n".join(PROBLEMS + unmarked)


def test_blocks_found():
    """The extraction sees the docs: each file has blocks, and some of them are run."""
    assert {b.doc for b in BLOCKS} >= {"README.md", "docs/usage.md", "docs/curation.md"}
    assert len(RUN) >= 20 and any(b.kind == "console" for b in RUN) and any(b.kind == "pycon" for b in RUN)


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.name)
def test_doc_example(block, assets, shims, tmp_path, monkeypatch):
    text = _prepare(block, assets, tmp_path)
    env = _env(shims)
    if block.kind == "shell":
        r = _run_shell(text, tmp_path, env)
        assert r.returncode == 0, f"{block.name}: exit status {r.returncode}\n{text}\n--- output:\n{r.stdout}"
    elif block.kind == "console":
        for command, shown in console_steps(text):
            r = _run_shell(command, tmp_path, env)
            error = "error:" in shown
            assert (r.returncode != 0) == error, \
                f"{block.name}: `{command}` exited {r.returncode}\n--- output:\n{r.stdout}"
            assert output_matches(shown, r.stdout), \
                f"{block.name}: `{command}` printed\n{r.stdout}\n--- the doc shows:\n{shown}"
    else:
        monkeypatch.chdir(tmp_path)
        names = {k: f(assets) for k, f in NAMES.items() if k in text}
        globs = {"__name__": "__doc_example__", **names}
        if block.kind == "python":
            exec(compile(text, block.name, "exec"), globs)
        else:
            test = doctest.DocTestParser().get_doctest(text, globs, block.name, str(block.path), block.line)
            report = []
            runner = doctest.DocTestRunner(checker=_Checker(), optionflags=doctest.ELLIPSIS)
            result = runner.run(test, out=report.append, clear_globs=False)
            assert result.failed == 0, "".join(report)


# ------------------------------------------------------------------ the comparison itself is tested
@pytest.mark.parametrize("shown, printed, ok", [
    ("Perplexity:\t379.741", "Perplexity:\t379.741", True),
    ("Perplexity:\t379.741", "Perplexity:   379.74149", True),
    ("Perplexity:\t379.741", "Perplexity:\t379.7416", False),
    ("Perplexity:\t380.587", "Perplexity:\t379.741", False),
    ("OOVs: 1553", "OOVs: 1554", False),
    ("OOVs: 1553", "OOV: 1553", False),
    ('{"perplexity": 750.3, ...}', '{"perplexity": 750.2999, "oovs": 3}', True),
    ('{"perplexity": 750.3, ...}', '{"perplexity": 750.36, "oovs": 3}', False),
    ("a\n...\nz", "a\nb\nc\nz", True),
    ("-0.52", "-0.5228787452803376", True),
    ("1.5e-05", "1.54e-05", True),
    ("1.5e-05", "1.56e-05", False),
    ("3-grams: 12", "3-grams: 12", True),
    ("3-grams: 12", "4-grams: 12", False),
])
def test_output_matches(shown, printed, ok):
    assert output_matches(shown, printed) is ok
