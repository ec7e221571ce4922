"""Peak RSS of every process of `glm build --dask --memory B` (the client and each worker) against the
single-machine `glm build --memory B`, on each corpus given.

    python benchmarks/bench_dask_budget.py CORPUS.txt [CORPUS.txt ...] [--memory 1G] [--order 5]
        [--dask-workers 2] [--workdir DIR] [--glm DIR] [--only dask|single]

The glm of this checkout (or --glm DIR, to compare with another) runs (``python -m glm.cli``, first on
PYTHONPATH).  Every
0.1 s the peak RSS (VmHWM, which the kernel keeps as a maximum) of each process below the build is
read from /proc (the process tree as benchmarks/bench_cost_curve.py walks it); a process's last
reading before it exits is its peak.  The client is the build process itself (for a LocalCluster it
also runs the scheduler); the workers are the largest of the
others (a LocalCluster's nannies run in the client; the rest is multiprocessing's resource tracker).  One run each; wall time from the start to the exit of the build.  The last column
compares the Dask build's ARPA file with the single-machine one's, byte for byte.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_cost_curve import descendants  # noqa: E402


def peak_kb(pid: int) -> int | None:
    """VmHWM of a process in KiB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def run(cmd: list[str], env: dict, cwd: str) -> tuple[float, int, int, dict[int, tuple[int, str]]]:
    """(wall seconds, exit status, pid, {pid: (peak KiB, command line)}) of cmd and its process tree, run
    in cwd (not in a checkout: ``python -m`` puts the working directory first on the path)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    peaks: dict[int, tuple[int, str]] = {}
    while proc.poll() is None:
        for pid in [proc.pid] + descendants(proc.pid):
            kb = peak_kb(pid)
            if kb is not None:
                old = peaks.get(pid)
                peaks[pid] = (max(kb, old[0] if old else 0), old[1] if old else cmdline(pid))
        time.sleep(0.1)
    return time.perf_counter() - t, proc.returncode, proc.pid, peaks


def same(kind: str, work: str, reference: str) -> str:
    """'reference' for the single-machine model (kept to compare with), then 'identical' or 'DIFFERENT'
    for the Dask build's (compared byte for byte); '-' when only one kind runs."""
    model = os.path.join(work, "model.arpa")
    if kind == "single":
        os.replace(model, reference)
        return "reference"
    if not os.path.exists(reference):
        os.unlink(model)
        return "-"
    result = "identical" if filecmp.cmp(model, reference, shallow=False) else "DIFFERENT"
    os.unlink(model)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpora", nargs="+")
    ap.add_argument("--memory", default="1G")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--dask-workers", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--glm", default=str(HERE.parent), help="the checkout whose glm runs (default: this one)")
    ap.add_argument("--only", choices=["dask", "single"], default=None)
    args = ap.parse_args()
    root = args.glm
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print("| corpus MB | build | wall s | client peak GB | worker peaks GB | other processes GB | ARPA |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.workdir and os.path.abspath(args.workdir)) as work:
        for corpus in map(os.path.abspath, args.corpora):
            mb = os.path.getsize(corpus) / 1e6
            reference = os.path.join(work, "single.arpa")
            for kind in ("single", "dask"):
                if args.only not in (None, kind):
                    continue
                cmd = [sys.executable, "-m", "glm.cli", "build", "--order", str(args.order), "-q", corpus,
                       "-o", os.path.join(work, "model.arpa"), "--memory", args.memory, "--tmpdir", work]
                if kind == "dask":
                    cmd += ["--dask", "--workers", str(args.dask_workers)]
                wall, status, pid, peaks = run(cmd, env, work)
                if status:
                    sys.exit(f"{' '.join(cmd)}: exit status {status}")
                client = peaks[pid][0]
                workers = sorted((kb for p, (kb, _) in peaks.items() if p != pid), reverse=True)
                shown = workers[:args.dask_workers] if kind == "dask" else []
                rest = workers[len(shown):]
                print(f"| {mb:.0f} | {'--dask ' if kind == 'dask' else ''}--memory {args.memory} | {wall:.1f} "
                      f"| {client / 2**20:.2f} | {', '.join(f'{kb / 2**20:.2f}' for kb in shown) or '-'} "
                      f"| {max(rest, default=0) / 2**20:.2f} | {same(kind, work, reference)} |", flush=True)
            if os.path.exists(reference):
                os.unlink(reference)


if __name__ == "__main__":
    main()
