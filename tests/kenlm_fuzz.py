"""Fuzzing of glm's KenLM binary reader: damaged copies of small binaries (bit flips, truncations,
header edits, overwritten runs), each loaded, scored and dumped by a child process watched with a timeout.

Every case ends as one of: ``error`` (a glm.ModelFormatError: a clean refusal), ``sane`` (it loads and
every score is a finite log10 probability <= 0), ``insane`` (a score that is NaN, infinite or positive),
``exception`` (any other exception: a traceback from deep inside), ``crash`` (the process died) or
``hang`` (no answer within the timeout).  The test suite runs a few hundred cases (tests/test_kenlm_binary.py);
run more with ``python tests/kenlm_fuzz.py --cases 3000``.
"""
from __future__ import annotations

import argparse
import collections
import os
import queue
import random
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "kenlm"
OUTCOMES = ("error", "sane", "insane", "exception", "crash", "hang")

CHILD = r'''
import math, sys, traceback
import glm
LINES = ["w1 w2 w3", "w0 w1 w0 w1 w2", "", "zz w5 w1", "w3 w3 w3 w3 w3 w3 w3", "the of and to", "Enter KING",
         "w2 w7 w9 w1 w0 w4 w4 w2 w1", "a b c d e f g"]
for path in sys.argv[1:]:
    print("start\t" + path, flush=True)
    stage = "load"
    try:
        m = glm.load(path)
        stage = "score"
        vals = [float(x) for x in m.score_many(LINES)]
        for line in LINES:
            vals.append(m.score(line, bos=False, eos=False))
            vals += [t[0] for t in m.full_scores(line)]
        vals.append(m.logprob("w1", ("<s>", "w0")))
        stage = "dump"
        m.to_model()
        out = "sane" if all(math.isfinite(v) and v <= 0 for v in vals) else "insane"
    except glm.ModelFormatError:
        out = "error\t" + stage
    except Exception:
        out = "exception\t" + traceback.format_exc().replace("\n", " | ")[-400:]
    print("done\t" + path + "\t" + out, flush=True)
'''


def _header_size(data: bytes) -> int:
    order = data[88] if len(data) > 88 else 0
    return -(-(108 + 8 * order) // 8) * 8


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A damaged copy of a binary and the kind of damage."""
    data = bytearray(data)
    kind = rng.choice(["flip", "flip-tables", "flip-tables", "truncate", "header-byte", "header-field", "zero-run",
                       "random-run"])
    head = _header_size(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "flip-tables":          # in the tables: between the header and the words
        end = data.rfind(b"<unk>\0")
        end = end if end > head else len(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(head, end)
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "header-byte":
        data[rng.randrange(min(head, len(data)))] = rng.randrange(256)
    elif kind == "header-field":
        field = rng.choice(["order", "multiplier", "type", "vocab", "count", "quant", "bhiksha", "bound"])
        if field == "order":
            data[88] = rng.choice([0, 1, 2, 3, 7, 17, 255])
        elif field == "multiplier":
            data[92:96] = struct.pack("<f", rng.choice([0.0, 0.5, 1.0, 1.0001, 2.5, 1e30, float("nan"), float("inf")]))
        elif field == "type":
            data[96:100] = struct.pack("<I", rng.choice([0, 1, 2, 3, 4, 5, 6, 1 << 31]))
        elif field == "vocab":
            data[100] = rng.choice([0, 2, 255])
        elif field == "count":
            k = rng.randrange(max(1, data[88]))
            value = rng.choice([0, 1, 2, 255, 1 << 20, 1 << 40, (1 << 64) - 1])
            data[108 + 8 * k:116 + 8 * k] = struct.pack("<Q", value)
        elif field in ("quant", "bhiksha", "bound") and head + 8 < len(data):
            # bytes right after the header and at the start of the tables (quantization, pointer
            # compression and vocabulary headers sit there)
            i = head + rng.randrange(min(64, len(data) - head))
            data[i] = rng.randrange(256)
    elif kind == "zero-run":
        i, n = rng.randrange(len(data)), rng.randint(1, 64)
        data[i:i + n] = bytes(len(data[i:i + n]))
    else:
        i = rng.randrange(len(data))
        n = rng.randint(1, 32)
        data[i:i + n] = bytes(rng.randrange(256) for _ in range(len(data[i:i + n])))
    return bytes(data), kind


def run_cases(paths: list[str], timeout: float = 20.0) -> dict[str, str]:
    """Outcome of each damaged file; a crash or hang ends the child, which restarts after that case."""
    results: dict[str, str] = {}
    todo = list(paths)
    env = dict(os.environ, GLM_THREADS="1")
    while todo:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, *todo], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        err: list = []
        threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True).start()
        progressed = False
        lines: queue.Queue = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        current = None
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                proc.kill()
                proc.wait()
                results[current or todo[0]] = "hang"
                break
            if line is None:
                proc.wait()
                if current is not None:
                    results[current] = f"crash\texit status {proc.returncode}"
                elif not progressed:       # the child fails before any file (glm does not import)
                    raise RuntimeError(f"the probing process exits with status {proc.returncode} "
                                       f"before its first file: {''.join(err)[-2000:]}")
                break
            fields = line.split("\t", 2)
            if fields[0] == "start":
                current, progressed = fields[1], True
            elif fields[0] == "done":
                results[fields[1]] = fields[2]
                current = None
        todo = [p for p in todo if p not in results]
    return results


def fuzz(sources: list[Path], cases: int, seed: int, workdir: str) -> tuple[dict, list]:
    """`cases` damaged copies of each source; returns ({source name: Counter of outcomes}, failures)."""
    rng = random.Random(seed)
    paths, origin = [], {}
    for src in sources:
        data = src.read_bytes()
        for i in range(cases):
            damaged, kind = mutate(data, rng)
            p = os.path.join(workdir, f"{src.name}.{i}")
            with open(p, "wb") as f:
                f.write(damaged)
            paths.append(p)
            origin[p] = (src.name, kind)
    results = run_cases(paths)
    table = {src.name: collections.Counter() for src in sources}
    failures = []
    for p in paths:
        outcome = results[p].split("\t")[0]
        table[origin[p][0]][outcome] += 1
        if outcome == "error":          # where the error was raised: at load, scoring or dumping
            table[origin[p][0]]["error at " + results[p].split("\t")[1]] += 1
        if outcome not in ("error", "sane"):
            failures.append((p, origin[p], results[p]))
    return table, failures


def format_table(table: dict) -> str:
    columns = [*OUTCOMES, "error at load", "error at score", "error at dump"]
    rows = [["binary", *columns]] + [[name, *(str(c[o]) for o in columns)] for name, c in table.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
                     for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=300, help="damaged copies per binary")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("binaries", nargs="*", help="default: the binaries of tests/data/kenlm")
    args = ap.parse_args()
    sources = [Path(b) for b in args.binaries] or sorted(p for p in DATA.iterdir() if p.suffix in (".probing", ".trie"))
    with tempfile.TemporaryDirectory() as tmp:
        table, failures = fuzz(sources, args.cases, args.seed, tmp)
        print(format_table(table))
        for p, (name, kind), what in failures:
            keep = Path(f"fuzz-failure-{name}-{kind}-{os.path.basename(p)}")
            keep.write_bytes(Path(p).read_bytes())
            print(f"{keep}: {what}")


if __name__ == "__main__":
    main()
