"""Packaging: the license, `glm --version`, `python -m glm`, the installed packages, the core apart from
glm.paper, typing stubs of the compiled modules, the compiler builtins' fallback header, and a memory
budget off Linux."""
from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import glm
import glm.spill

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(glm.__file__).resolve().parent
COMPILED = sorted({f.name.split(".")[0] for f in PKG.iterdir() if f.suffix in (".so", ".pyd")})


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert 'license = {text = "MIT"}' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("command", [["glm"], [sys.executable, "-m", "glm"]], ids=["script", "module"])
def test_version(command):
    if command == ["glm"] and shutil.which("glm") is None:
        pytest.skip("the glm script is not installed (pip install -e .)")
    out = subprocess.run(command + ["--version"], check=True, capture_output=True, text=True).stdout
    assert out.strip() == f"glm {glm.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", glm.__version__)


def test_python_m_glm_runs_commands(tmp_path):
    (tmp_path / "t.txt").write_text("a b c\nb c a\n")
    subprocess.run([sys.executable, "-m", "glm", "build", "-q", "--discount-fallback", "--order", "2",
                    str(tmp_path / "t.txt"), "-o", str(tmp_path / "m.arpa")], check=True)
    res = subprocess.run([sys.executable, "-m", "glm", "info", str(tmp_path / "m.arpa")], capture_output=True, text=True)
    assert res.returncode == 0 and "order\t2" in res.stdout
    res = subprocess.run([sys.executable, "-m", "glm", "info", str(tmp_path / "missing.arpa")], capture_output=True,
                         text=True)
    assert res.returncode == 1 and "missing.arpa" in res.stderr


def test_every_package_is_installed():
    """pyproject.toml's package list names every folder of glm with an __init__.py (else a wheel lacks it)."""
    tomllib = pytest.importorskip("tomllib")
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = [".".join(f.parent.relative_to(PKG.parent).parts) for f in PKG.rglob("__init__.py")]
    assert "glm.paper" in found and sorted(listed) == sorted(found)


PAPER_LOADED = r"""
import importlib, sys
from pathlib import Path
import glm
root = Path(glm.__file__).parent
for f in sorted(root.rglob("*.py")):                 # every core module (glm.paper and __main__ aside)
    parts = f.relative_to(root.parent).with_suffix("").parts
    if parts[1] not in ("paper", "__main__.py", "__main__"):
        importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
lines = ["a b c d", "b c a d", "c a b d e", "a b d c"] * 3
for method in ("mkn", "glm"):
    model = glm.train(lines=lines, order=3, method=method, discount_fallback=True, tune_split=0)
    model.save(sys.argv[1] + "/m.glmb" if method == "glm" else sys.argv[1] + "/m.arpa")
glm.load(sys.argv[1] + "/m.glmb").score("a b c")
print(" ".join(sorted(m for m in sys.modules if m.startswith("glm.paper"))) or "-")
glm.train(lines=lines, order=3, method=sys.argv[2], discount_fallback=True)
print(" ".join(sorted(m for m in sys.modules if m.startswith("glm.paper"))))
"""


def test_core_imports_paper_only_when_asked(tmp_path):
    """Importing every core module and building, saving and loading MKN and GLM models loads nothing of
    glm.paper; asking for a paper method loads it."""
    out = subprocess.run([sys.executable, "-c", PAPER_LOADED, str(tmp_path), "glmtk2014"], check=True,
                         capture_output=True, text=True).stdout.split("\n")
    assert out[0] == "-"
    assert out[1].split() == ["glm.paper", "glm.paper.compat", "glm.paper.glmtk2014"]


def test_stubs_cover_the_compiled_modules():
    assert (PKG / "py.typed").exists()
    for name in COMPILED:
        stub = (PKG / f"{name}.pyi").read_text()
        module = importlib.import_module(f"glm.{name}")
        public = [n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))
                  and getattr(getattr(module, n), "__module__", None) == module.__name__]
        missing = [n for n in public if not re.search(rf"^(def|class) {n}\b", stub, re.M)]
        assert not missing, (name, missing)


def test_stubtest(tmp_path):
    """mypy's stubtest on the stubs (the compiled modules copied alone, so that mypy checks only them)."""
    pytest.importorskip("mypy", reason="mypy is not installed")
    pkg = tmp_path / "glm"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for f in PKG.iterdir():
        if f.name.startswith(tuple(COMPILED)) and f.suffix in (".so", ".pyd", ".pyi") or f.name == "py.typed":
            shutil.copy(f, pkg / f.name)
    res = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--ignore-unused-allowlist", "--allowlist",
                          str(ROOT / "tests" / "stubtest-allowlist.txt"), *[f"glm.{m}" for m in COMPILED]],
                         cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


PROGRAM = r"""
#include <stdio.h>
#include "glm_builtins.h"
int main(void) {
    static const int data[4] = {1, 2, 3, 4};
    unsigned long long x;
    int s;
    __builtin_prefetch(data);
    for (s = 0; s < 64; s++) {
        x = 1ULL << s;
        printf("%d %d\n", __builtin_clzll(x), __builtin_clzll(x | (x >> 1) | 1ULL));
    }
    printf("%d\n", __builtin_clzll(0xFFFFFFFFFFFFFFFFULL));
    return data[0] - 1;
}
"""


@pytest.mark.parametrize("compiler", ["cc", "clang"])
@pytest.mark.parametrize("portable", [False, True], ids=["builtins", "portable"])
def test_builtins_header(tmp_path, compiler, portable):
    """ext/glm_builtins.h: the compiler's builtins, or the plain C fallback (what compilers other than
    GCC, clang and MSVC get), give the same counts of leading zeros."""
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    (tmp_path / "t.c").write_text(PROGRAM)
    flags = ["-DGLM_PORTABLE_BUILTINS"] if portable else []
    subprocess.run([compiler, "-std=c99", "-Wall", "-Werror", *flags, "-I", str(ROOT / "ext"), "t.c", "-o", "t"],
                   cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "t")], check=True, capture_output=True, text=True).stdout.split("\n")
    want = [f"{63 - s} {63 - s}" for s in range(64)] + ["0"]
    assert out[:65] == want


def test_memory_budget_off_linux(monkeypatch, tmp_path):
    """Without /proc the resident size comes from psutil; without psutil either, a clear error before
    any work."""
    monkeypatch.setattr(glm.spill, "_STATM", str(tmp_path / "no-proc"))
    try:
        import psutil  # noqa: F401
        rss, shared = glm.spill.resident_bytes()
        assert rss > 0 and 0 <= shared <= rss
        glm.spill.check_memory_budget_support()
    except ImportError:
        pass
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(ValueError, match="psutil"):
        glm.train(lines=["a b c"], order=2, memory="1G", discount_fallback=True)
