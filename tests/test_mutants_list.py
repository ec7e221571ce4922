"""The mutation check's list (tests/tools/mutants.py) stays applicable: each mutant's snippet occurs exactly
once in its file, so that a change of the code that moves a snippet is noticed here, not when someone runs
the (long) mutation check."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tools"))

import mutants  # noqa: E402


def test_every_mutant_applies():
    assert len(mutants.MUTANTS) >= 20
    assert mutants.stale_mutants(ROOT, mutants.MUTANTS) == []
