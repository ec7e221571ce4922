"""Mutation check: does the test suite catch deliberate bugs?

    python tests/tools/mutants.py                 # every mutant, each against its subset of test files
    python tests/tools/mutants.py --full          # every mutant against the whole suite (slow)
    python tests/tools/mutants.py --only M03 M12  # some of them
    python tests/tools/mutants.py --no-lmplz      # as CI runs: KenLM's lmplz / build_binary off PATH
    python tests/tools/mutants.py --list

Each mutant of MUTANTS (below) replaces one exact snippet of one file.  The script copies the working
tree (tracked and untracked-but-not-ignored files, plus the compiled extensions and their generated C,
with their times kept so that nothing is rebuilt needlessly) into a scratch directory, with a link to
``../shared`` beside it as the tests expect; then, for each mutant, it applies the change, rebuilds the
extension when a ``.pyx`` changed (``python setup.py build_ext --inplace``), runs pytest there, restores
the file (and the extension), and finally prints a table: mutant, caught or not, by which tests.

A mutant is caught when pytest fails (a test fails or errors, or the run crashes or times out).  Every
mutant of the list must be caught; a new one that survives needs a test that catches it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ESTIMATION = ["tests/test_lmplz_stored.py", "tests/test_mkn_exact.py", "tests/test_normalization.py"]


@dataclass
class Mutant:
    name: str
    file: str
    old: str               # must occur exactly once in file
    new: str
    what: str
    tests: list = field(default_factory=lambda: list(ESTIMATION))   # the subset run without --full


MUTANTS = [
    # -- the three that survived the audit of issue 18 ---------------------------------------------
    Mutant("M01", "glm/discount.py", "    if last_open is not None:", "    if False and last_open is not None:",
           "discounts: lmplz's last-open count-of-counts rule dropped"),
    Mutant("M02", "glm/discount.py", "        f = np.float32\n", "        f = np.float64\n",
           "discounts computed in float64 instead of lmplz's float32"),
    Mutant("M03", "glm/mkn.py", "        p[UNK] += gamma", "        p[UNK] = gamma",
           "interpolate_unigrams=False: p(<unk>) = gamma, losing a literal <unk>'s own count"),
    # -- the four the audit saw caught -------------------------------------------------------------
    Mutant("M04", "ext/_mkn.pyx", "                num[h] += a\n", "                num[h] += discount(Dt, a)\n",
           "pruning: a pruned n-gram gives gamma its discount instead of its whole count"),
    Mutant("M05", "ext/_arpa.pyx", "    else:\n        p = 9\n", "    else:\n        p = 8\n",
           "ARPA writer: at most 8 significant digits (some float32 values do not round trip)",
           ["tests/test_formats.py", "tests/test_lmplz_stored.py"]),
    Mutant("M06", "glm/generalized.py", "out[mask] = [(kids[0], w)] + ", "out[mask] = [(kids[0], 1.0 - w)] + ",
           "GLM: a pattern's farthest-word child gets weight 1 - lambda instead of lambda",
           ["tests/test_glm.py", "tests/test_glm_tuning_cli.py"]),
    Mutant("M07", "glm/curation/scoring.py", "tokens = res.tokens.astype(np.int64)\n",
           "tokens = res.tokens.astype(np.int64) - 1\n",
           "curation: </s> left out of the tokens of per-document scores", ["tests/test_curation.py"]),
    # -- more, across the pipeline -----------------------------------------------------------------
    Mutant("M08", "glm/discount.py", "y = f(t1) / f(t1 + 2.0 * t2)", "y = f(t1) / f(t1 + t2)",
           "discounts: Y = t1 / (t1 + t2) instead of t1 / (t1 + 2 t2)"),
    Mutant("M09", "ext/_count.pyx", "(raw[n] if (n == N or bos_start[n]) else ext[n])",
           "(raw[n] if n == N else ext[n])",
           "adjusted counts: n-grams that start with <s> get continuation counts, not occurrences"),
    Mutant("M10", "ext/_mkn.pyx", "    return D[a] if a < 3 else D[3]", "    return D[a] if a < 2 else D[3]",
           "interpolation: adjusted count 2 discounted by D3+ instead of D2"),
    Mutant("M11", "ext/_mkn.pyx", "            if total[i] > 0:\n                out[i]",
           "            if total[i] > 1:\n                out[i]",
           "backoff: a context with a single extension gets backoff 0"),
    Mutant("M12", "glm/mkn.py", "        keep1[:3] = True", "        keep1[:2] = True",
           "pruning: </s> pruned like a word when t1 >= the number of sentences (lmplz's bug)"),
    Mutant("M13", "glm/mkn.py", "int(keep1.sum())) - excluded, opts.vocab_pad)",
           "int(keep1.sum())), opts.vocab_pad)",
           "interpolation: the uniform distribution counts <s> too"),
    Mutant("M14", "glm/discount.py", "values = [float(np.float32(float(v))) for v in", "values = [float(float(v)) for v in",
           "discounts: --discount_fallback values not rounded to float32 as lmplz stores them"),
    Mutant("M15", "ext/_vocab.pyx",
           "out[0] = -(<double>m / POW10[frac]) if neg else <double>m / POW10[frac]",
           "out[0] = -(<float>m / <float>POW10[frac]) if neg else <float>m / <float>POW10[frac]",
           "ARPA reader: numbers parsed in float32 arithmetic (not correctly rounded)",
           ["tests/test_formats.py", "tests/test_lmplz_stored.py"]),
    Mutant("M16", "glm/formats/arpa.py",
           'prob[e] = levels[n - 2]["logprob"][parent] + (0.0 if ctx is None else levels[n - 2]["backoff"][ctx])',
           'prob[e] = levels[n - 2]["logprob"][parent]',
           "ARPA reader: a missing suffix (SRILM pruning) is filled without its context's backoff",
           ["tests/test_formats.py"]),
    Mutant("M17", "glm/formats/binary.py", "weights={str(k): v for k, v in model.weights.items()}",
           "weights={}", "binary format: a GLM's weights are not written (a tuned model loads untuned)",
           ["tests/test_formats.py", "tests/test_glm.py", "tests/test_glm_tuning_cli.py"]),
    Mutant("M18", "ext/_vocab.pyx", "    return c == 32 or c == 9 or c == 13 or c == 0",
           "    return c == 32 or c == 9 or c == 13",
           "vocabulary: NUL no longer separates tokens (lmplz splits on space, TAB, CR, NUL)",
           ["tests/test_corpus.py", "tests/test_counting.py", "tests/test_lmplz_stored.py"]),
    Mutant("M19", "ext/_query.pyx", "add_token(R, line, sc, m, w == 0)", "add_token(R, line, sc, m, w == 0 and m == 1)",
           "scoring: an OOV matched in a longer n-gram (literal <unk> in training) is not counted as OOV",
           ["tests/test_kenlm_agreement.py", "tests/test_formats.py", "tests/test_corpus.py"]),
    Mutant("M20", "ext/_query.pyx", "ctx_bo[0] = self.bo[1][1]", "ctx_bo[0] = 0",
           "scoring: the backoff of <s> is not added to a first word seen only as a unigram",
           ["tests/test_kenlm_agreement.py", "tests/test_formats.py"]),
    Mutant("M21", "glm/generalized.py", "[(c, (1.0 - w) / (len(kids) - 1)) for c in kids[1:]]",
           "[(c, (1.0 - w) / len(kids)) for c in kids[1:]]",
           "GLM weights: with a parent weight lambda, the other children share 1 - lambda wrongly",
           ["tests/test_glm.py", "tests/test_glm_tuning_cli.py"]),
    Mutant("M22", "glm/curation/softdedup.py", "-(np.median(x) if stat == \"median\" else _log10_mean(x))",
           "-(np.mean(x) if stat == \"median\" else _log10_mean(x))",
           "curation: SoftDedup's median segment statistic is a mean", ["tests/test_curation.py"]),
    Mutant("M23", "glm/curation/resample.py", "take = drawn[:stop + 1] if stop < batch else drawn",
           "take = drawn[:stop] if stop < batch else drawn",
           "curation: resampling stops one document short of the token target", ["tests/test_curation.py"]),
    Mutant("M24", "glm/model.py", "        n = self.tokens - self.oovs\n", "        n = self.tokens\n",
           "evaluation: perplexity excluding OOVs divides by all tokens",
           ["tests/test_kenlm_agreement.py", "tests/test_glm_tuning_cli.py", "tests/test_corpus.py"]),
    # -- the tuning's lattice and the GLM's terms (issue 16) ---------------------------------------
    Mutant("M25", "ext/_glm.pyx", "x = <float>a - Df[a if a < 3 else 3]", "x = <float>a - Df[a if a < 2 else 3]",
           "GLM terms: a statistic of 2 is discounted by D3+", ["tests/test_glm.py"]),
    Mutant("M26", "glm/tune.py", "c[q, 3] = np.where(seen, (num1[old] - n0) / dn, 0.0)",
           "c[q, 3] = np.where(seen, num1[old] / dn, 0.0)",
           "tuning: a pruned pattern's gamma grows with its discount scale from the pruned mass too",
           ["tests/test_tune_lattice.py"]),
    Mutant("M27", "ext/_glm.pyx", "                        z[i] += y[i] * w\n", "                        z[i] += y[i]\n",
           "tuning: the gradient reaches a child without its weight", ["tests/test_tune_lattice.py"]),
    Mutant("M28", "glm/formats/kenlm_write.py", "np.repeat(first - (offsets[:-1] - lo), sizes)",
           "np.repeat(first - offsets[:-1], sizes)",
           "compact writer: children found from the order's start instead of the step's (wrong past the first "
           "step)", ["tests/test_kenlm_write.py"]),
    Mutant("M29", "glm/generalized.py",
           "            starts, words = _pruned_rows(starts, words, keep, kept[parent(mask)], new_id)\n",
           "            if terms:\n                starts, words = _pruned_rows(starts, words, keep, kept[parent(mask)], new_id)\n",
           "tuning: the model traced without terms keeps the n-grams pruning removed",
           ["tests/test_tune_lattice.py"]),
]


# ---------------------------------------------------------------------------------------- scratch copy
def files_to_copy(root: Path) -> list[str]:
    """The working tree's tracked and untracked-but-not-ignored files, and the generated extensions."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout.decode().split("\0")
    names = [n for n in out if n and (root / n).is_file()]
    for pattern in ("glm/*.so", "ext/*.c", "ext/*.cpp"):
        names += [str(p.relative_to(root)) for p in root.glob(pattern)]
    return sorted(set(names))


def make_scratch(root: Path) -> Path:
    base = Path(tempfile.mkdtemp(prefix="glm-mutants-"))
    repo = base / "repo"
    for name in files_to_copy(root):
        dest = repo / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest)
    shared = root.parent / "shared"
    if shared.exists():
        (base / "shared").symlink_to(shared.resolve())
    return repo


def build(repo: Path) -> None:
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=repo,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"build failed:\n{proc.stderr[-3000:]}")


def environment(no_lmplz: bool) -> dict:
    env = dict(os.environ, PYTHONPATH="", PYTHONDONTWRITEBYTECODE="1")
    if no_lmplz:
        keep = [d for d in env.get("PATH", "").split(os.pathsep)
                if not any((Path(d) / t).exists() for t in ("lmplz", "build_binary"))]
        env["PATH"] = os.pathsep.join(keep)
    return env


def check_import(repo: Path, env: dict) -> None:
    """The scratch copy's glm is the one the tests import (not an installed one)."""
    got = subprocess.run([sys.executable, "-c", "import glm, glm._mkn; print(glm._mkn.__file__)"],
                         cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not Path(got).resolve().is_relative_to(repo.resolve()):
        raise RuntimeError(f"the tests would import glm from {got}, not from the scratch copy {repo}")


# ------------------------------------------------------------------------------------------- running
@dataclass
class Result:
    mutant: Mutant
    caught: bool
    by: list
    how: str
    seconds: float


def run_pytest(repo: Path, tests: list, env: dict, timeout: float, first: bool) -> tuple[int | None, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    if first:
        cmd.insert(4, "-x")
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, proc.stdout + proc.stderr


def failed_tests(output: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^(FAILED|ERROR) (\S+)", output, re.M)]


def stale_mutants(repo: Path, mutants: list) -> list[str]:
    """The mutants whose snippet does not occur exactly once in its file (the code moved on)."""
    counts = {m.name: (repo / m.file).read_text(encoding="utf-8").count(m.old) if (repo / m.file).exists() else 0
              for m in mutants}
    return [f"{m.name}: {counts[m.name]} times in {m.file}" for m in mutants if counts[m.name] != 1]


def apply(repo: Path, m: Mutant) -> tuple[bytes, float, list]:
    """Apply a mutant; returns what restore() needs."""
    path = repo / m.file
    text = path.read_text(encoding="utf-8")
    if text.count(m.old) != 1:
        raise RuntimeError(f"{m.name}: the snippet occurs {text.count(m.old)} times in {m.file} "
                           "(the list is out of date)")
    original, mtime = path.read_bytes(), path.stat().st_mtime
    saved = []
    if m.file.endswith((".pyx", ".pxi")):
        for p in list((repo / "glm").glob("*.so")) + list((repo / "ext").glob("*.c*")):
            keep = p.with_name(p.name + ".mutants-orig")
            shutil.copy2(p, keep)
            saved.append((p, keep))
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")
    if saved:
        build(repo)
    return original, mtime, saved


def restore(repo: Path, m: Mutant, state) -> None:
    original, mtime, saved = state
    path = repo / m.file
    path.write_bytes(original)
    os.utime(path, (mtime, mtime))
    for p, keep in saved:
        shutil.copy2(keep, p)
        keep.unlink()


def check(repo: Path, m: Mutant, env: dict, full: bool, timeout: float, first: bool) -> Result:
    start = time.time()
    state = apply(repo, m)
    try:
        code, out = run_pytest(repo, ["tests"] if full else m.tests, env, timeout, first)
    finally:
        restore(repo, m, state)
    if code is None:
        return Result(m, True, [], "timeout", time.time() - start)
    by = failed_tests(out)
    if code == 0:
        return Result(m, False, [], "all passed", time.time() - start)
    if code in (2, 3, 4):           # interrupted, internal error, usage error: not a verdict on the mutant
        raise RuntimeError(f"{m.name}: pytest could not run (exit {code}):\n{out[-3000:]}")
    how = f"{len(by)} failed" if by else f"pytest exit {code}"
    return Result(m, True, by, how, time.time() - start)


def table(results: list[Result], full: bool) -> str:
    lines = ["| mutant | what | caught | by (failing tests, first 3) |", "|---|---|---|---|"]
    for r in results:
        by = ", ".join(t.replace("tests/", "") for t in r.by[:3]) + (" ..." if len(r.by) > 3 else "")
        lines.append(f"| {r.mutant.name} `{r.mutant.file}` | {r.mutant.what} | "
                     f"{'yes' if r.caught else '**NO**'} ({r.how}) | {by} |")
    caught = sum(r.caught for r in results)
    lines.append("")
    lines.append(f"{caught} of {len(results)} mutants caught "
                 f"({'whole suite' if full else 'each by its subset of test files'}).")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="run the whole suite for every mutant")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these mutants")
    ap.add_argument("--first", action="store_true", help="stop each run at its first failure (-x)")
    ap.add_argument("--no-lmplz", action="store_true", help="take lmplz and build_binary off PATH (as CI)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per pytest run")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name}  {m.file:28} {m.what}")
        return 0
    stale = stale_mutants(ROOT, mutants)
    if stale:
        print("the list is out of date: " + "; ".join(stale), file=sys.stderr)
        return 2
    env = environment(args.no_lmplz)
    repo = make_scratch(ROOT)
    print(f"scratch copy: {repo}", file=sys.stderr)
    results = []
    try:
        check_import(repo, env)
        for m in mutants:
            r = check(repo, m, env, args.full, args.timeout, args.first)
            results.append(r)
            print(f"{m.name}: {'caught' if r.caught else 'NOT CAUGHT'} ({r.how}, {r.seconds:.0f} s) "
                  f"{' '.join(r.by[:3])}", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(repo.parent, ignore_errors=True)
    print(table(results, args.full))
    return 0 if all(r.caught for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
