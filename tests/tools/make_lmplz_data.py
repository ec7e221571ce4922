"""Make (or check) the lmplz outputs stored in tests/data/lmplz/ (see its README.md).

    PATH=/path/to/kenlm/bin:$PATH python tests/tools/make_lmplz_data.py [--check] [--out DIR]

Runs KenLM's ``lmplz`` (found on PATH; never built here) on the stored input texts with the option sets
of ``cases()``, and writes ``cases.json`` (every case: its text, order, options, the exact command, lmplz's
printed statistics and discounts, or its error) and ``arpa.tar.xz`` (the ARPA files, byte for byte as
lmplz wrote them).  The input texts are made once by ``texts()`` from seeded generators and the Brown
corpus; they are stored too (``texts/``), so the data never depends on the generators again.
``--check`` reruns lmplz and compares with the stored files instead of writing.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data" / "lmplz"
KENLM_COMMIT = "4cb443e"          # kpu/kenlm master, the lmplz that made the stored files

# ------------------------------------------------------------------------------------------ option sets
# glm-side names (glm.train / reference_mkn.build_mkn keywords); lmplz_args() gives lmplz's flags.
OPTION_SETS = {        # those of tests/test_reference_mkn.py
    "plain": {},
    "prune011": {"prune": (0, 1, 1)},
    "prune012": {"prune": (0, 1, 2)},
    "prune112": {"prune": (1, 1, 2)},
    "nointerp": {"interpolate_unigrams": False},
    "nointerp-prune01": {"interpolate_unigrams": False, "prune": (0, 1)},
    "vocabpad": {"vocab_pad": 1000},
    "nointerp-prune112": {"interpolate_unigrams": False, "prune": (1, 1, 2)},
    "vocabpad-prune112": {"vocab_pad": 1000, "prune": (1, 1, 2)},
}
EOS_SETS = {"t1=29": {"prune": (29,)}, "t1=30": {"prune": (30,)}, "t1=0,t2=30": {"prune": (0, 30)},
            "t1=50": {"prune": (50,)}}


def lmplz_args(opts: dict) -> list[str]:
    args = []
    if opts.get("prune"):
        args += ["--prune", *map(str, opts["prune"])]
    if opts.get("interpolate_unigrams") is False:
        args += ["--interpolate_unigrams", "0"]
    if opts.get("vocab_pad"):
        args += ["--vocab_pad", str(opts["vocab_pad"])]
    fb = opts.get("discount_fallback")
    if fb is True:
        args += ["--discount_fallback"]
    elif fb:
        args += ["--discount_fallback", *map(str, fb)]
    if opts.get("verbose_header"):
        args += ["--verbose_header"]
    return args


def cases() -> list[dict]:
    """Every stored case: text name, order, option-set name, options ("fallback": "auto" = run without
    --discount_fallback first and add it only when lmplz refuses, as test_reference_matches_lmplz)."""
    out = []

    def add(text, orders, sets, auto=True):
        for order in orders:
            for name, opts in sets.items():
                opts = dict(opts)
                if "prune" in opts:
                    opts["prune"] = tuple(opts["prune"][:order])
                out.append(dict(text=text, order=order, options=name, opts=opts, auto_fallback=auto))

    main_sets = {k: OPTION_SETS[k] for k in ("plain", "prune011")}
    add("random101", [1, 2, 3, 4, 5], OPTION_SETS)
    add("random102", [1, 2, 3, 4, 5], OPTION_SETS)
    add("random-small", [1, 2, 3, 4, 5], OPTION_SETS)
    add("random-zipf", [1, 2, 3, 4, 5], OPTION_SETS)
    add("toy", [1, 2, 3], OPTION_SETS)
    add("eos-pruned", [1, 2, 3], EOS_SETS)
    add("brown", [1, 2, 4], main_sets)
    add("brown", [3, 5], OPTION_SETS)
    add("brown-tail", [2, 3, 4, 5], main_sets)
    # the cases of test_kenlm_agreement.py::test_lmplz_*
    fb = {"discount_fallback": True}
    add("agree231", [2, 3, 4, 5], {"fallback": fb}, auto=False)
    add("agree232", [2, 3, 4, 5], {"fallback": fb}, auto=False)
    for order, prune in ((3, (0, 1)), (4, (0, 1, 2)), (5, (0, 0, 1))):
        add("agree233", [order], {"fallback-prune" + "".join(map(str, prune)): dict(fb, prune=prune)},
            auto=False)
    add("agree234", [3], {"fallback-nointerp": dict(fb, interpolate_unigrams=False),
                          "fallback-vocabpad500": dict(fb, vocab_pad=500)}, auto=False)
    add("agree234", [2], {"fallback0.3,0.9,1.4": {"discount_fallback": (0.3, 0.9, 1.4)}}, auto=False)
    add("agree235", [3], {"fallback-verbose": dict(fb, verbose_header=True)}, auto=False)
    add("brown2000", [3], {"plain": {}}, auto=False)
    # a literal <unk> in the text, which lmplz refuses: lmplz reads it renamed to an ordinary word
    # (UNK_WORD); glm and the reference read <unk>, without unigram interpolation (see the README)
    nointerp = {k: v for k, v in OPTION_SETS.items() if k.startswith("nointerp")}
    nointerp["nointerp-prune011"] = {"interpolate_unigrams": False, "prune": (0, 1, 1)}
    add("unk-renamed", [1, 2, 3, 4], nointerp)
    return out


# ---------------------------------------------------------------------------------------------- texts
def texts() -> dict[str, bytes]:
    """The input texts, made from the generators of the tests (only when they are not stored yet)."""
    sys.path.insert(0, str(TESTS))
    import helpers
    import test_reference_mkn as trm
    from reference_mkn import read_text

    def join(sentences):
        return "".join(" ".join(s) + "\n" for s in sentences).encode("utf-8")

    out = {}
    for name, (seed, n, v) in {"random101": (101, 300, 25), "random102": (102, 300, 25),
                               "random-small": (103, 60, 10), "random-zipf": (104, 300, 400)}.items():
        out[name] = join(trm.random_corpus(seed, n_sentences=n, vocab_size=v) + [[]] * 3)
    out["toy"] = join(trm.TOY)
    out["eos-pruned"] = join(trm.random_corpus(301, n_sentences=30, vocab_size=8))
    brown = helpers.read_corpus_lines("brown/brown.txt.gz", 2000)
    out["brown2000"] = "".join(line + "\n" for line in brown).encode("utf-8")
    sentences = read_text("".join(line + "\n" for line in brown))
    out["brown"] = join(sentences[:BROWN_LINES])
    out["brown-tail"] = join(sentences[:BROWN_TAIL_LINES] + [["QQQ1", "QQQ2", "QQQ3", "QQQ4"]] * 3)
    for seed in (231, 232, 234, 235):
        out[f"agree{seed}"] = join(helpers.random_corpus(seed))
    out["agree233"] = join(helpers.random_corpus(233, n_sentences=400))
    unk = helpers.random_corpus(241, vocab_size=20, n_sentences=300, unk_prob=0.04)
    out["unk-renamed"] = join([[UNK_WORD if w == "<unk>" else w for w in s] for s in unk])
    return out


UNK_WORD = "UNK_WORD"


BROWN_LINES = 500
BROWN_TAIL_LINES = 300


def text_path(name: str) -> str:
    return f"texts/{name}.txt.gz"


# ---------------------------------------------------------------------------------------------- lmplz
STAT_LINE = re.compile(r"^(\d+) (\d+)(?:/(\d+))? D1=(\S+) D2=(\S+) D3\+=(\S+)$")


def run_lmplz(lmplz: str, text: bytes, order: int, args: list[str], tmp: str):
    cmd = ["lmplz", "-o", str(order), *args]
    proc = subprocess.run([lmplz, *cmd[1:], "-S", "100M", "-T", tmp + "/"], input=text,
                          capture_output=True)
    return cmd, proc


def statistics(stderr: str) -> dict:
    """lmplz's printed statistics: per order the n-gram count (after / before pruning) and the discounts
    as printed (C++ ostream, 6 significant digits), and the orders that got the fallback."""
    lines = stderr.splitlines()
    i = lines.index("Statistics:")
    stats = []
    for line in lines[i + 1:]:
        m = STAT_LINE.match(line)
        if not m:
            break
        n, kept, total, d1, d2, d3 = m.groups()
        assert int(n) == len(stats) + 1, line
        stats.append(dict(count=int(total or kept), kept=int(kept), discounts=[d1, d2, d3]))
    fallback = [int(m.group(1)) + 1 for m in re.finditer(r"Substituting fallback discounts for order (\d+)",
                                                          stderr)]
    return dict(statistics=stats, fallback_orders=fallback)


def run_case(lmplz: str, case: dict, text: bytes, tmp: str) -> tuple[dict, bytes]:
    """lmplz on one case: its manifest entry and the ARPA file it wrote (stdout)."""
    opts = dict(case["opts"])
    entry = dict(text=text_path(case["text"]), order=case["order"], options=case["options"],
                 glm_options={k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()})
    if case["auto_fallback"]:
        cmd, proc = run_lmplz(lmplz, text, case["order"], lmplz_args(opts), tmp)
        if proc.returncode != 0:
            entry["refused"] = dict(command=" ".join(cmd), error=error_lines(proc.stderr.decode()))
            opts["discount_fallback"] = True
    cmd, proc = run_lmplz(lmplz, text, case["order"], lmplz_args(opts), tmp)
    if proc.returncode != 0:
        raise SystemExit(f"lmplz failed: {' '.join(cmd)}\n{proc.stderr.decode()[-2000:]}")
    fallback = opts.get("discount_fallback")
    entry.update(arpa=f"{case['text']}-o{case['order']}-{case['options']}.arpa", command=" ".join(cmd),
                 fallback=list(fallback) if isinstance(fallback, tuple) else fallback,
                 **statistics(proc.stderr.decode()))
    if case["text"] == "unk-renamed":
        entry["unk_word"] = UNK_WORD
    return entry, proc.stdout


def make(lmplz: str, stored_texts: dict[str, bytes], threads: int = 2) -> tuple[dict, dict[str, bytes]]:
    """Run lmplz on every case: the manifest (cases.json) and the ARPA files by name."""
    from concurrent.futures import ThreadPoolExecutor
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(threads) as ex:
        done = list(ex.map(lambda c: run_case(lmplz, c, stored_texts[c["text"]], tmp), cases()))
        # why unk-renamed is renamed: lmplz refuses a literal <unk>
        literal = stored_texts["unk-renamed"].replace(UNK_WORD.encode(), b"<unk>")
        cmd, proc = run_lmplz(lmplz, literal, 2, [], tmp)
        assert proc.returncode != 0
        refusal = dict(command=" ".join(cmd), error=error_lines(proc.stderr.decode()))
    manifest = dict(kenlm_commit=KENLM_COMMIT, literal_unk=refusal, cases=[e for e, _ in done])
    return manifest, {e["arpa"]: arpa for e, arpa in done}


def error_lines(stderr: str) -> str:
    """The first line of lmplz's error message (the line after the 'threw' line)."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if " threw " in line:
            return lines[i + 1].strip()
    return stderr.strip().splitlines()[-1]


def pack(arpas: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz", preset=9 | 0x80000000,  # xz -9e
                      format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(arpas):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(arpas[name]), 0, 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(arpas[name]))
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def read_stored_texts(out: Path) -> dict[str, bytes]:
    got = {}
    for p in sorted((out / "texts").glob("*.txt.gz")):
        got[p.name[:-len(".txt.gz")]] = gzip.decompress(p.read_bytes())
    return got


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the stored files, write nothing")
    ap.add_argument("--out", type=Path, default=DATA)
    ap.add_argument("--new-texts", action="store_true", help="(re)make the input texts from the generators")
    args = ap.parse_args(argv)
    lmplz = shutil.which("lmplz")
    if lmplz is None:
        raise SystemExit("lmplz (KenLM) is not on PATH")
    stored = read_stored_texts(args.out)
    if args.new_texts or not stored:
        stored = texts()
    manifest, arpas = make(lmplz, stored)
    if args.check:
        old = json.loads((args.out / "cases.json").read_text())
        assert old == manifest, "cases.json differs from what lmplz prints now"
        assert unpack((args.out / "arpa.tar.xz").read_bytes()) == arpas, "ARPA files differ"
        print(f"{len(manifest['cases'])} cases: the stored files are what this lmplz makes")
        return 0
    (args.out / "texts").mkdir(parents=True, exist_ok=True)
    for name, text in stored.items():
        (args.out / text_path(name)).write_bytes(gzip.compress(text, 9, mtime=0))
    (args.out / "cases.json").write_text(json.dumps(manifest, indent=None, separators=(",", ":")).replace("},{", "},\n{") + "\n")
    (args.out / "arpa.tar.xz").write_bytes(pack(arpas))
    print(f"{len(manifest['cases'])} cases written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
