"""Model files: ARPA text (plain or compressed), glm's memory-mapped binary format and KenLM's binaries.

Every writer goes through ``atomic_output``: the file is written under a temporary name in the same
directory and renamed at the end, so an interrupted write never leaves a partial model behind.
"""
from __future__ import annotations

import contextlib
import lzma
import os
import tempfile
from typing import NamedTuple

BINARY_SUFFIX = ".glmb"
ARPA_SUFFIXES = (".arpa", ".arpa.gz", ".arpa.bz2", ".arpa.xz", ".arpa.zst")
GLM_SUFFIXES = (".glm", ".glm.gz", ".glm.bz2", ".glm.xz", ".glm.zst")


def check_output(path, generalized: bool = False, inputs=()) -> None:
    """Fail early (before hours of work) on an output name or directory that cannot be written, or that
    is one of ``inputs``.  generalized: the model is a GLM, written as .glm text (plain or compressed)
    or binary."""
    path = os.fspath(path)
    refuse_overwrite(path, inputs)
    text = GLM_SUFFIXES if generalized else ARPA_SUFFIXES
    if not (path.endswith(BINARY_SUFFIX) or os.path.basename(path).endswith(text)):
        kind = "a GLM model" if generalized else "an MKN model"
        raise ValueError(f"{path}: unknown model format for {kind}; use a name ending in "
                         f"{', '.join(text)} or {BINARY_SUFFIX}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"{path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise ValueError(f"{path}: directory {directory} is not writable")


def refuse_overwrite(output, inputs, what: str = "output") -> None:
    """A ValueError when ``output`` is the same file as one of ``inputs`` (after symlinks, by device and
    inode): writing it would destroy the input."""
    if output is None or output == "-" or not os.path.exists(output):
        return
    for item in inputs:
        item = os.fspath(item)
        if item != "-" and os.path.exists(item) and os.path.samefile(output, item):
            raise ValueError(f"{output}: the {what} is the same file as the input {item}; "
                             "choose another name (nothing was written)")


class ModelFormatError(ValueError):
    """A model file that cannot be read; the message names the file and, for text, the line."""


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path next to ``path``; renames it to ``path`` if the block succeeds.  An
    existing path that is not a regular file (/dev/null, a FIFO) is yielded itself, never replaced."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path):
        yield path
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes the file private; a model is an ordinary file
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Parts(NamedTuple):
    """What a reader found: the storage kind of the model (``glm.model.Model.kind``) and the arguments
    of its class."""
    kind: str
    args: dict


def save(model, path, quiet: bool = True) -> None:
    """Write ``model`` (a ``glm.Model``) in the format its name asks for."""
    path = os.fspath(path)
    generalized = model.kind == "generalized"
    if generalized and "pad" in (model.tables.compat or {}):
        raise ValueError(f"{path}: a model with paper padding is for `glm paper-eval` only; it is not saved")
    check_output(path, generalized)
    if path.endswith(BINARY_SUFFIX):
        from .binary import write_binary
        write_binary(model, path)
    elif generalized:
        from .glmtext import write_glm
        write_glm(model, path)
    else:
        from .arpa import write_arpa
        write_arpa(model, path, quiet=quiet)


def read(path, quiet: bool = True) -> Parts:
    """Read a model file, ARPA or .glm (plain or compressed), glm's binary or a KenLM binary
    (``build_binary``'s probing or trie), recognized by its first bytes (``glm.load`` makes the model
    of what it finds)."""
    from ..corpus import open_binary
    from .binary import MAGIC, read_binary
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:len(MAGIC)] == MAGIC:
        return read_binary(path)
    from .kenlm import is_kenlm_binary, read_kenlm
    if is_kenlm_binary(head):
        return read_kenlm(path)
    from .arpa import read_arpa
    from .glmtext import read_glm
    try:
        with open_binary(path) as stream:
            generalized = stream.readline().rstrip() == b"\\glm\\"
        with open_binary(path) as stream:
            return read_glm(stream, path) if generalized else read_arpa(stream, path, quiet=quiet)
    except (EOFError, OSError, lzma.LZMAError) as exc:   # damaged or truncated compressed data
        raise ModelFormatError(f"{path}: cannot read: {exc}") from None
