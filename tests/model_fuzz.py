"""Random mutations of model files, each loaded and scored in a child process with a timeout.

``tests/test_fuzz.py`` runs a few with a fixed seed; ``benchmarks/fuzz_models.py`` runs many and prints
the table of outcomes.  Five formats: ARPA, ``.glm`` text, MKN ``.glmb``, GLM ``.glmb`` and GLM ``.glmb``
with 8-bit quantized values (glm.quantize).  Mutations:
bit flips, truncations, header field edits (the binary header re-sealed with a fresh checksum most of
the time, so that the checks behind the checksum are exercised), value edits (special numbers and
out-of-range indices written into arrays, or into the numbers and words of text lines), line edits.

Outcome of a mutated file, as its child process reports it:

* ``clean error``: ``glm.load`` or the first scores raise ``ModelFormatError`` (a message naming the file);
* ``sane load``: it loads, and every score is a number <= 0 (-inf included: a probability of 0, which a
  model may hold; counted in ``zero prob`` too);
* ``insane scores``: a score that is NaN, +inf or positive came back;
* ``unclean error``: another exception (a traceback);
* ``crash``: the child died of a signal (or exited without a word);
* ``hang``: no answer within the timeout.

A sane load is also verified (``Model.verify``) and saved in another format (``Model.save``); the
``verify flags`` column counts the sane loads that verification finds damaged.
"""
from __future__ import annotations

import json
import math
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
from collections import Counter

OUTCOMES = ("clean error", "sane load", "zero prob", "verify flags", "insane scores", "unclean error",
            "crash", "hang")
FORMATS = ("arpa", "glm", "mkn.glmb", "glm.glmb", "glm8.glmb")
SUFFIX = {"arpa": ".arpa", "glm": ".glm", "mkn.glmb": ".glmb", "glm.glmb": ".glmb", "glm8.glmb": ".glmb"}


# -- base models -------------------------------------------------------------------------------------
def base_models(workdir: str, lines: list[str]) -> dict[str, bytes]:
    """The bytes of the five base models: MKN and GLM of order 3 (the GLM on fewer lines: its text is
    read slowly), the GLM's binary also quantized."""
    import glm
    mkn = glm.train(lines=lines, order=3, discount_fallback=True)
    gen = glm.train(lines=lines[:len(lines) // 3], order=3, method="glm", discount_fallback=True, tune_split=0)
    out = {}
    for fmt, model in (("arpa", mkn), ("glm", gen), ("mkn.glmb", mkn), ("glm.glmb", gen), ("glm8.glmb", gen)):
        path = os.path.join(workdir, "base-" + fmt.replace(".", "-") + SUFFIX[fmt])
        model.save(path, **({"quantize": 8} if fmt == "glm8.glmb" else {}))
        with open(path, "rb") as f:
            out[fmt] = f.read()
    return out


# -- mutations ---------------------------------------------------------------------------------------
SPECIAL_FLOATS = ["nan", "inf", "-inf", "0.5", "3", "1e39", "-1e39", "-0", "1e-45", "-99", "abc", "",
                  "0x10", "1e400", "-nan", "+0.1"]


def _bitflips(data: bytes, rng: random.Random, header_end: int | None = None) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        top = header_end if header_end and rng.random() < 0.5 else len(d)
        i = rng.randrange(max(1, top))
        d[i] ^= 1 << rng.randrange(8)
    return bytes(d)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    cut = rng.choice([rng.randrange(len(data)), len(data) - rng.randint(1, 64), rng.randrange(64)])
    return data[:max(0, cut)]


def mutate_binary(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A mutated .glmb file and what was done."""
    size = int.from_bytes(data[8:16], "little")
    what = rng.choices(["bitflip", "truncate", "header", "value", "length"], [2, 1, 4, 4, 0.3])[0]
    if what == "bitflip":
        return _bitflips(data, rng, 16 + size), what
    if what == "truncate":
        return _truncate(data, rng), what
    if what == "length":
        new = rng.choice([0, 1, size - 1, size + 1, size + 64, 1 << 40, len(data)])
        return data[:8] + new.to_bytes(8, "little") + data[16:], f"length {new}"
    text = data[16:16 + size]
    header = json.loads(text)
    start = -(-(16 + size) // 64) * 64
    if what == "value":
        return _value_edit(data, header, start, rng)
    desc = _header_edit(header, rng)
    new = json.dumps(header).encode()
    seal = rng.random()
    if seal < 0.7 and new.startswith(b'{"header_xxh64": "'):      # re-sealed: a crafted header
        from glm._check import XXH64
        zeroed = new[:18] + b"0" * 16 + new[34:]
        new = new[:18] + XXH64(zeroed).hexdigest().encode() + new[34:]
    elif seal < 0.85:                                             # as a file without checksums
        header.pop("header_xxh64", None)
        new = json.dumps(header).encode()
        desc += " (no checksum)"
    else:
        desc += " (stale checksum)"
    if len(new) <= start - 16:                   # keep the data where it was
        new = new + b" " * (start - 16 - len(new))
        return data[:8] + len(new).to_bytes(8, "little") + new + data[16 + len(new):], desc
    return data[:8] + len(new).to_bytes(8, "little") + new + data[16 + size:], desc + " (moved)"


def _header_edit(h: dict, rng: random.Random) -> str:
    arrays = h["arrays"]
    e = rng.choice(arrays)
    n = e["shape"][0] if e["shape"] else 0
    edits = [
        ("order", lambda: h.__setitem__("order", rng.choice([-1, 0, 1, 2, h["order"] + 1, 17, 100, "3", None, 2.5]))),
        ("format", lambda: h.__setitem__("format", rng.choice([0, 2, "1", None]))),
        ("kind", lambda: h.__setitem__("kind", rng.choice(["glm", None, "x", 1])) if rng.random() < 0.8 else h.pop("kind", None)),
        ("shape", lambda: e.__setitem__("shape", rng.choice([[0], [max(0, n - 1)], [n + 1], [2 * n], [1 << 40], [],
                                                             [n, 2], [-1], ["3"], [1], [n // 2]]))),
        ("offset", lambda: e.__setitem__("offset", rng.choice([e["offset"] + 64, e["offset"] - 64, -64, 0, 1,
                                                               rng.choice(arrays)["offset"], 1 << 50, None,
                                                               rng.randrange(0, 1 << 20) * 64]))),
        ("dtype", lambda: e.__setitem__("dtype", rng.choice(["<f4", "<u4", ">u4", "<f8", "|O", "S3", "bogus",
                                                             "<u8", "<i4", "|u1", "<f2"]))),
        ("name", lambda: e.__setitem__("name", rng.choice([a["name"] for a in arrays] + ["x", "9.word", "1.prob"]))),
        ("drop array", lambda: arrays.remove(e)),
        ("discounts", lambda: h.__setitem__("discounts", _bad_discounts(h.get("discounts"), rng))),
        ("unpruned_counts", lambda: h.__setitem__("unpruned_counts", rng.choice([[], [1], [-1, 2, 3], "x", [1.5] * 3]))),
        ("meta", lambda: h.__setitem__("meta", rng.choice([{}, {"order": 5}, [], None, {"order": h["order"]}]))),
        ("drop key", lambda: h.pop(rng.choice(list(h)), None)),
        ("weights", lambda: h.__setitem__("weights", {"3": rng.choice([1.5, -0.5, float("nan"), [0.5, 0.6], "x",
                                                                        0.3, [1.0], None, [0.3, 0.7]]),
                                                      **({"7": rng.choice([2.0, 0.9])} if rng.random() < 0.3 else {})})),
        ("sizes", lambda: _edit_dict(h, "sizes", rng, [0, -1, 1 << 33, None, "5"])),
        ("searched", lambda: _edit_dict(h, "searched", rng, [0, -1, 1 << 33, None, 1, 10 ** 6])),
        ("method", lambda: h.__setitem__("method", rng.choice(["mkn", "glmtk2014", "glm-abs", "x", None]))),
        ("quantize", lambda: h.__setitem__("quantize", rng.choice([8, 16, 4, 0, None, "8", 8.0]))
                             if rng.random() < 0.8 else h.pop("quantize", None)),
        ("compat", lambda: h.__setitem__("compat", rng.choice([{"extra": 0.1, "floor": 1e-12, "discounts": {}}, None, {}]))),
        ("header_xxh64", lambda: h.__setitem__("header_xxh64", "0" * 16)),
        ("xxh64", lambda: e.__setitem__("xxh64", rng.choice(["0" * 16, "x", 5]))),
    ]
    name, edit = rng.choice(edits)
    edit()
    return f"header {name}" + (f" of {e['name']}" if name in ("shape", "offset", "dtype", "name", "drop array", "xxh64") else "")


def _bad_discounts(d, rng):
    if isinstance(d, dict) and d:
        k = rng.choice(list(d))
        return dict(d, **{k: rng.choice([[float("nan"), 1, 1], [-1, 1, 1], [0.5, 5, 1], [1], "x"])})
    return rng.choice([[[float("nan"), 1.0, 1.5]] * 3, [[-1, 1, 1]] * 3, [[0.5, 1, 9]] * 3, [[1]], "x", {}])


def _edit_dict(h, key, rng, values):
    d = h.get(key)
    if not isinstance(d, dict) or not d:
        h[key] = rng.choice([{}, None, {"1": 5}])
        return
    k = rng.choice(list(d))
    if rng.random() < 0.2:
        d.pop(k)
    elif rng.random() < 0.2:
        d[str(rng.choice([2, 5, 9, 64, 255]))] = 3
    else:
        old = d[k]
        d[k] = rng.choice(values + ([old + 1, old - 1, old * 2] if isinstance(old, int) else []))


def _value_edit(data: bytes, header: dict, start: int, rng: random.Random) -> tuple[bytes, str]:
    """One entry of an array overwritten with a special value: the checksums are left as they are (the
    load does not read them; verify does)."""
    import numpy as np
    arrays = [e for e in header["arrays"] if e["shape"] and e["shape"][0]]
    e = rng.choice(arrays)
    dtype = np.dtype(e["dtype"])
    count = int(np.prod(e["shape"]))
    d = bytearray(data)
    edits = []
    for _ in range(rng.choice([1, 1, 1, 2, 8, 64])):
        i = rng.randrange(count)
        at = start + e["offset"] + i * dtype.itemsize
        if dtype.kind == "f":
            v = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.5, 3.0, 0.0, -0.0, 1e-40, -5.0, 2.0])
            raw = np.array([v], dtype=dtype).tobytes()
        else:
            limit = 1 << (8 * dtype.itemsize)
            v = rng.choice([0, 1, 2, limit - 1, (limit - 1) // 2, count, count - 1, count + 1,
                            rng.randrange(limit), rng.randrange(max(1, count))])
            raw = np.array([v % limit], dtype=dtype).tobytes()
        d[at:at + dtype.itemsize] = raw
        edits.append(f"{i}={v}")
    return bytes(d), f"value {e['name']}[{', '.join(edits[:3])}{'...' if len(edits) > 3 else ''}]"


def _text_lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate_text(data: bytes, rng: random.Random, glm_text: bool) -> tuple[bytes, str]:
    """A mutated ARPA or .glm file and what was done."""
    what = rng.choices(["bitflip", "truncate", "value", "word", "line", "header"], [1, 1, 4, 2, 2, 2])[0]
    if what == "bitflip":
        return _bitflips(data, rng), what
    if what == "truncate":
        return _truncate(data, rng), what
    lines = _text_lines(data)
    data_lines = [i for i, ln in enumerate(lines) if b"\t" in ln]
    i = rng.choice(data_lines)
    fields = lines[i].split(b"\t")
    if what == "value":
        k = rng.choice([0, len(fields) - 1]) if not glm_text else 0
        if k == 0 or len(fields) > 2 or glm_text:
            fields[k] = rng.choice(SPECIAL_FLOATS + ["-1", "2", "-0.5", "1.5"]).encode()
        lines[i] = b"\t".join(fields)
        return b"\n".join(lines), f"value line {i + 1}"
    if what == "word":
        words = fields[1].split(b" ")
        j = rng.randrange(len(words))
        other = rng.choice(lines[rng.choice(data_lines)].split(b"\t")[1].split(b" "))
        words[j] = rng.choice([b"_", b"<s>", b"NOT-A-WORD", b"", b"\\_", b"\\", b"<unk>", b"</s>", other, other,
                               b"a  b", b"\\end\\"])
        fields[1] = b" ".join(words)
        lines[i] = b"\t".join(fields)
        return b"\n".join(lines), f"word line {i + 1}"
    if what == "line":
        op = rng.choice(["delete", "duplicate", "swap", "blank", "extra field"])
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = rng.choice(data_lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "blank":
            lines.insert(i, b"")
        else:
            lines[i] += b"\t0"
        return b"\n".join(lines), f"line {op} {i + 1}"
    # header and section lines
    heads = [j for j, ln in enumerate(lines) if ln and b"\t" not in ln]
    j = rng.choice(heads)
    ln = lines[j]
    choices = [b"", b"\\end\\", b"\\data\\", b"\\3-grams:", b"\\1-grams:", b"ngram 1=0", b"ngram 9=5",
               b"ngram 2=99999999999", b"order=9", b"order=1", b"order=x", b"method=glmtk2014", b"method=x",
               b"weights=11=1.5", b"weights=111=nan", b"weights=111=0.5,0.6", b"escape=x", b"pattern 11=3",
               b"pattern 111=1 D=nan 1 1", b"pattern 11=2 D=-1 1 1", b"pattern 1=1 D=0.5 9 1", b"\\1:\\",
               b"\\11 gamma:\\", b"\\1 gamma:\\", b"\\111:\\", b"\\101:\\", b"compat extra=0.1 floor=0",
               ln + b"0", ln.replace(b"=", b"=1"), ln[:-1]]
    lines[j] = rng.choice(choices)
    return b"\n".join(lines), f"header line {j + 1}: {lines[j][:30]!r}"


def mutate(fmt: str, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if fmt.endswith(".glmb"):
        return mutate_binary(data, rng)
    return mutate_text(data, rng, fmt == "glm")


# -- the child: load, score, verify, save ------------------------------------------------------------
def probe(path: str, lines: list[str], scratch: str) -> tuple[str, str]:
    """(outcome, detail) of one model file, in this process."""
    import glm
    try:
        model = glm.load(path)
        compat = getattr(getattr(model, "tables", None), "compat", None) is not None
        values = [float(x) for x in model.score_many(lines)]
        values += [model.score(ln) for ln in lines[:4]]
        values += [lp for ln in lines[:4] for lp, _, _ in model.full_scores(ln)]
        values += [model.logprob(w, ctx) for w, ctx in (("the", ("<s>",)), ("king", ("the",)), ("</s>", ()),
                                                        ("NOT-A-WORD", ("of", "the")), ("<unk>", ("<s>",)))]
        values.append(model.evaluate(lines=lines).log10_prob)
    except glm.ModelFormatError as exc:
        return "clean error", str(exc)[:160]
    except Exception as exc:                                      # noqa: BLE001 (the point: any other)
        return "unclean error", f"{type(exc).__name__}: {str(exc)[:160]}"
    bad = [v for v in values if math.isnan(v) or v == math.inf or (v > 1e-6 and not compat)]
    if bad:
        return "insane scores", f"{bad[:3]}"
    zero = any(v == -math.inf for v in values)
    flags = ""
    try:
        if hasattr(model, "verify"):                    # (glm before verify existed: for comparisons)
            model.verify()
    except glm.ModelFormatError as exc:
        flags = f" verify: {str(exc)[:100]}"
    except Exception as exc:                                      # noqa: BLE001
        return "unclean error", f"verify: {type(exc).__name__}: {str(exc)[:160]}"
    other = os.path.join(scratch, "saved" + (".arpa" if path.endswith(".glmb") and model.kind == "backoff"
                                             else ".glm" if path.endswith(".glmb") else ".glmb"))
    try:
        model.save(other)
    except glm.ModelFormatError:
        pass
    except Exception as exc:                                      # noqa: BLE001
        return "unclean error", f"save: {type(exc).__name__}: {str(exc)[:160]}"
    return "sane load", ("zero prob" if zero else "") + flags


def child_main(lines_file: str) -> None:
    with open(lines_file, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # the scratch directory sits in the parent's work directory (given by GLM_FUZZ_SCRATCH), which the
    # parent removes: a child killed for a crash or a hang leaves nothing behind
    scratch = tempfile.mkdtemp(prefix="glm-fuzz-child-", dir=os.environ.get("GLM_FUZZ_SCRATCH"))
    for row in sys.stdin:
        index, path = row.rstrip("\n").split("\t", 1)
        print(f"BEGIN\t{index}", flush=True)
        outcome, detail = probe(path, lines, scratch)
        print(f"END\t{index}\t{outcome}\t{' '.join(detail.split())}", flush=True)


# -- the parent: children with timeouts ----------------------------------------------------------------
def run_files(paths: list[str], lines_file: str, timeout: float = 20.0) -> list[tuple[str, str]]:
    """(outcome, detail) of each file, probed in child processes: a child that dies is a crash of the
    file it was on, one that stops answering a hang; the next child goes on from the file after it."""
    results: list = [None] * len(paths)
    todo = 0
    while todo < len(paths):
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", lines_file],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=dict(os.environ, GLM_THREADS="1",
                                                    GLM_FUZZ_SCRATCH=os.path.dirname(lines_file),
                                                    PYTHONPATH=os.environ.get("GLM_FUZZ_PYTHONPATH",
                                                                              os.environ.get("PYTHONPATH", ""))))
        feed = "".join(f"{i}\t{paths[i]}\n" for i in range(todo, len(paths)))
        threading.Thread(target=_feed, args=(proc.stdin, feed), daemon=True).start()
        err = []
        threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True).start()
        out: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [out.put(x) for x in proc.stdout] + [out.put(None)], daemon=True).start()
        current, progressed = None, False
        while True:
            try:
                msg = out.get(timeout=timeout)
            except queue.Empty:
                proc.kill()
                proc.wait()
                at = current if current is not None else todo
                results[at] = ("hang", f"no answer in {timeout} s")
                todo = at + 1
                break
            if msg is None:
                rc = proc.wait()
                if current is not None:
                    why = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
                    results[current] = ("crash", f"{why}: {''.join(err)[-200:].strip()}")
                    todo = current + 1
                elif todo < len(paths) and not progressed:
                    raise RuntimeError(f"the probing process fails: {''.join(err)[-2000:]}")
                break
            kind, _, rest = msg.rstrip("\n").partition("\t")
            if kind == "BEGIN":
                current, progressed = int(rest), True
            elif kind == "END":
                index, outcome, detail = (rest.split("\t") + [""])[:3]
                results[int(index)] = (outcome, detail)
                current = None
                todo = int(index) + 1
    return results


def _feed(pipe, text: str) -> None:
    try:
        pipe.write(text)
        pipe.close()
    except (BrokenPipeError, OSError):
        pass


def campaign(workdir: str, train_lines: list[str], test_lines: list[str], per_format: int, seed: int,
             formats=FORMATS, timeout: float = 20.0) -> dict:
    """Mutate each base model per_format times and probe them all: {format: [(what, outcome, detail)]}."""
    rng = random.Random(seed)
    bases = base_models(workdir, train_lines)
    lines_file = os.path.join(workdir, "test-lines.txt")
    with open(lines_file, "w", encoding="utf-8") as f:
        f.write("\n".join(test_lines))
    out = {}
    for fmt in formats:
        paths, whats = [], []
        for k in range(per_format):
            data, what = mutate(fmt, bases[fmt], rng)
            path = os.path.join(workdir, f"m{k:05d}-{fmt.replace('.', '-')}{SUFFIX[fmt]}")
            with open(path, "wb") as f:
                f.write(data)
            paths.append(path)
            whats.append(what)
        res = run_files(paths, lines_file, timeout)
        out[fmt] = [(w, o, d) for w, (o, d) in zip(whats, res)]
        for p in paths:
            os.unlink(p)
    return out


def table(results: dict) -> list[list]:
    """Rows: format, mutations, then the count of each outcome."""
    rows = []
    for fmt, items in results.items():
        c = Counter(o for _, o, _ in items)
        c["zero prob"] = sum(1 for _, o, d in items if o == "sane load" and d.startswith("zero prob"))
        c["verify flags"] = sum(1 for _, o, d in items if o == "sane load" and "verify:" in d)
        rows.append([fmt, len(items)] + [c[o] for o in OUTCOMES])
    return rows


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--child":
    child_main(sys.argv[2])
