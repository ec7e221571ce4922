"""The examples of the documentation: fenced code blocks of README.md and docs/**/*.md, how each is
marked, and how shown output is compared with printed output (no glm imported here).

A block is run by tests/test_docs.py when its language is a shell (``sh``, ``bash``, ``shell``,
``console``) or Python (``python``, ``py``, ``pycon``).  Any block can instead be marked by an HTML
comment on the line right before its opening fence (blank lines between are allowed):

    <!-- doc: not run (why: a cluster address, a 200 MB corpus, minutes of runtime) -->
    <!-- doc: excerpt (what it is: a file format excerpt, C code, formulas) -->

A block of another language (or none) must be marked; so must be an indented block that looks like a
command or Python (it should be fenced).

Shown output: a ``console`` block is ``$ command`` lines (a line ending in ``\\`` continues on the
next), each followed by what it prints (stdout and stderr together); a ``pycon`` block (or a Python
block with ``>>>`` prompts) is a doctest.  ``output_matches`` compares: whitespace runs are equal,
``...`` stands for any text (several lines too), and a number matches a printed number that rounds
to it at the digits shown (``379.741`` matches ``379.74123``, not ``379.7416``).

``python tests/docblocks.py`` prints every block with its kind and the totals.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHELL = {"sh", "bash", "shell", "console", "shell-session"}
PYTHON = {"python", "py", "python3", "pycon"}
MARKS = ("not run", "excerpt")

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_MARK = re.compile(r"^\s*<!--\s*doc:\s*(?P<kind>[\w ]+?)\s*(?:\((?P<reason>.*)\))?\s*-->\s*$")
_LOOKS_RUNNABLE = re.compile(r"^ {4,}(\$ |>>> |glm |python3? |pip |import |from \w+ import )")


@dataclass
class Block:
    path: Path          # the markdown file
    line: int           # 1-based line of the opening fence
    lang: str           # the info string's first word, lower case ("" when none)
    text: str           # the block's content
    mark: str | None    # "not run" / "excerpt" / None
    reason: str         # the mark's reason

    @property
    def doc(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def kind(self) -> str:
        """'marked', 'shell', 'console', 'python', 'pycon' or 'unmarked'."""
        if self.mark:
            return "marked"
        if self.lang == "console" or (self.lang in SHELL and self.text.lstrip().startswith("$ ")):
            return "console"
        if self.lang in SHELL:
            return "shell"
        if self.lang == "pycon" or (self.lang in PYTHON and self.text.lstrip().startswith(">>>")):
            return "pycon"
        if self.lang in PYTHON:
            return "python"
        return "unmarked"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse(path: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a markdown file, and the problems of its marks (a mark that names no
    known kind or gives no reason, a mark followed by no block, an unfenced example)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks, problems = [], []
    rel = path.relative_to(ROOT).as_posix()
    pending = None            # (line, kind, reason) of a mark waiting for its block
    prev_blank = True
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _MARK.match(line)
        if m:
            kind, reason = m["kind"].strip(), (m["reason"] or "").strip()
            if kind not in MARKS:
                problems.append(f"{rel}:{i + 1}: unknown mark {kind!r} (use one of {', '.join(MARKS)})")
            elif not reason:
                problems.append(f"{rel}:{i + 1}: the mark gives no reason: <!-- doc: {kind} (why) -->")
            if pending:
                problems.append(f"{rel}:{pending[0]}: a mark not followed by a code block")
            pending = (i + 1, kind, reason)
            i += 1
            continue
        f = _FENCE.match(line)
        if f:
            fence = f["fence"]
            start = i
            body = []
            i += 1
            while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                          and set(lines[i].strip()) == {fence[0]}):
                body.append(lines[i])
                i += 1
            lang = (f["info"].split() or [""])[0].lower()
            mark, reason = (pending[1], pending[2]) if pending else (None, "")
            blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n", mark, reason))
            pending = None
            i += 1
            prev_blank = False
            continue
        if line.strip():
            if pending:
                problems.append(f"{rel}:{pending[0]}: a mark not followed by a code block")
                pending = None
            if prev_blank and _LOOKS_RUNNABLE.match(line):
                problems.append(f"{rel}:{i + 1}: an indented example; fence it (```bash, ```python) so "
                                f"that it is run, or mark it")
        prev_blank = not line.strip()
        i += 1
    if pending:
        problems.append(f"{rel}:{pending[0]}: a mark not followed by a code block")
    return blocks, problems


def all_blocks() -> tuple[list[Block], list[str]]:
    blocks, problems = [], []
    for path in doc_files():
        b, p = parse(path)
        blocks += b
        problems += p
    return blocks, problems


# ----------------------------------------------------------------------------------- shown output
_TOKEN = re.compile(r"(?P<ellipsis>\.\.\.|…)"
                    r"|(?<![\w.])(?P<number>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])"
                    r"|(?P<space>\s+)")
_PRINTED_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def _tolerance(shown: str) -> float:
    mantissa, _, exponent = shown.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals) * (1 + 1e-9)


def output_matches(shown: str, printed: str) -> bool:
    """Whether the printed text is what the doc shows (see the module's docstring)."""
    shown = "\n".join(x.rstrip() for x in shown.strip("\n").split("\n")).strip()
    printed = "\n".join(x.rstrip() for x in printed.strip("\n").split("\n")).strip()
    pattern, numbers, pos = [], [], 0
    for m in _TOKEN.finditer(shown):
        pattern.append(re.escape(shown[pos:m.start()]))
        pos = m.end()
        if m["ellipsis"]:
            pattern.append(r".*?")
        elif m["number"]:
            pattern.append(_PRINTED_NUMBER)
            numbers.append(m["number"])
        else:
            pattern.append(r"\s+")
    pattern.append(re.escape(shown[pos:]))
    m = re.fullmatch("".join(pattern), printed, re.DOTALL)
    if not m:
        return False
    return all(abs(float(got) - float(want)) <= _tolerance(want)
               for want, got in zip(numbers, m.groups()))


def console_steps(text: str) -> list[tuple[str, str]]:
    """(command, shown output) of each ``$ `` prompt of a console block."""
    steps = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if line.strip():
                raise ValueError(f"output before the first '$ ' prompt: {line!r}")
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].removeprefix("> ").strip()
        out = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            out.append(lines[i])
            i += 1
        steps.append((command, "\n".join(out)))
    return steps


def main() -> int:
    blocks, problems = all_blocks()
    counts: dict[str, int] = {}
    for b in blocks:
        counts[b.kind] = counts.get(b.kind, 0) + 1
        extra = f"  ({b.mark}: {b.reason})" if b.mark else ""
        print(f"{b.name:28} {b.lang or '-':8} {b.kind}{extra}")
    print("totals:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for p in problems:
        print("problem:", p)
    return 1 if problems or counts.get("unmarked") else 0


if __name__ == "__main__":
    sys.exit(main())
