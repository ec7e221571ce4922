"""The API reference (docs/api/index.rst, docs/conf.py): Sphinx builds it from the docstrings with
warnings as errors, it names the whole public API, and the public functions' docstrings follow numpydoc
(a Parameters section when they take arguments, Returns or Yields when they return something)."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import glm
import glm.ccnet
import glm.curation
import glm.kenlm

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "docs" / "api" / "index.rst"
MODULES = {"glm": glm, "glm.kenlm": glm.kenlm, "glm.ccnet": glm.ccnet, "glm.curation": glm.curation}


def public_api():
    """(qualified name, object) of every name in the __all__ of the public modules."""
    return [(f"{mod_name}.{name}", getattr(mod, name)) for mod_name, mod in MODULES.items()
            for name in mod.__all__]


def documented_names() -> set[str]:
    """The names the reference's auto* directives document, qualified by their current module."""
    names, module = set(), "glm"
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\.\. (automodule|currentmodule|auto\w+):: (\S+)", line)
        if not m:
            continue
        if m[1] in ("automodule", "currentmodule"):
            module = m[2]
        else:
            names.add(f"{module}.{m[2]}")
    return names


def test_every_public_name_is_in_the_reference():
    missing = [name for name, _ in public_api() if name not in documented_names()]
    assert not missing, f"not in docs/api/index.rst: {missing}"


def _functions():
    """Public functions and methods whose docstrings must follow numpydoc."""
    out = []
    for name, obj in public_api():
        if inspect.isfunction(obj):
            out.append((name, obj))
        elif inspect.isclass(obj) and obj.__module__.startswith("glm"):
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and inspect.isfunction(value):
                    out.append((f"{name}.{attr}", value))
    for cls in (glm.Model, glm.GeneralizedModel, glm.KenLMModel):
        for attr, value in vars(cls).items():
            if not attr.startswith("_") and inspect.isfunction(value):
                out.append((f"glm.{cls.__name__}.{attr}", value))
    return sorted(set(out))


FUNCTIONS = _functions()


def _section(doc: str, title: str) -> bool:
    return re.search(rf"^\s*{title}\n\s*-{{{len(title)}}}\s*$", doc, re.MULTILINE) is not None


@pytest.mark.parametrize("name, func", FUNCTIONS, ids=[n for n, _ in FUNCTIONS])
def test_docstring_is_numpydoc(name, func):
    doc = inspect.getdoc(func)
    assert doc, f"{name} has no docstring"
    params = [p for p in inspect.signature(func).parameters.values() if p.name not in ("self", "cls")]
    if params:
        assert _section(doc, "Parameters"), f"{name}: no Parameters section"
        listed = " ".join(re.findall(r"^(\S[^:\n]*?)(?: :.*)?$", doc.split("Parameters\n", 1)[1], re.MULTILINE))
        for p in params:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                assert re.search(rf"\b{p.name}\b", listed), f"{name}: parameter {p.name} is not described"
    returns = inspect.signature(func).return_annotation
    if returns not in (None, "None", inspect.Signature.empty) or "return " in inspect.getsource(func):
        if inspect.isgeneratorfunction(func):
            assert _section(doc, "Yields"), f"{name}: no Yields section"
        elif returns not in (None, "None"):
            assert _section(doc, "Returns") or _section(doc, "Yields"), f"{name}: no Returns section"


def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="sphinx is not installed (it is in the test extra)")
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
                        "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path / "html" / "api" / "index.html").read_text(encoding="utf-8")
    for name, _ in public_api():
        target = name if name.count(".") > 1 or name.startswith("glm.") else f"glm.{name}"
        assert f'id="{target}"' in page, f"{target} is not in the built page"
    for method in ("glm.Model.score", "glm.Model.evaluate", "glm.kenlm.Model.BaseScore"):
        assert f'id="{method}"' in page
