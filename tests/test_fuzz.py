"""Random mutations of every model format, each loaded and scored in a child process with a timeout
(tests/model_fuzz.py): no crash, no hang, no insane score, no error that is not a glm error.  A fixed seed
and a few files per format here; `python benchmarks/fuzz_models.py` runs thousands and prints the table."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from model_fuzz import FORMATS, campaign, table

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("seed", [0])
def test_mutated_model_files(tmp_path, seed):
    with gzip.open(DATA / "shakespeare-train.txt.gz", "rt", encoding="utf-8") as f:
        train = f.read().split("\n")[:900]
    with gzip.open(DATA / "shakespeare-test.txt.gz", "rt", encoding="utf-8") as f:
        test = f.read().split("\n")[:20] + ["", "qwertyuiop asdfgh"]
    res = campaign(str(tmp_path), train, test, per_format=24, seed=seed, timeout=60)
    bad = [(fmt, what, outcome, detail) for fmt, items in res.items() for what, outcome, detail in items
           if outcome in ("insane scores", "unclean error", "crash", "hang")]
    assert not bad, bad
    rows = {row[0]: row for row in table(res)}
    assert set(rows) == set(FORMATS)
    # the mutations reach both sides: some files are refused, some load (and verify flags damaged binaries)
    for fmt in FORMATS:
        assert rows[fmt][2] > 0 and rows[fmt][3] > 0, rows[fmt]
