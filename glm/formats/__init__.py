"""Model files: ARPA text (plain or compressed), glm's memory-mapped binary format and KenLM's
binaries; and the rules of every output file of glm.

Every writer goes through ``atomic_output``: the file is written under a temporary name in the same
directory and renamed at the end, so an interrupted write never leaves a partial file behind.  An output
is checked before any work (``check_outputs``): it may not be one of the inputs (after symlinks, by
device and inode) nor another output, nor an existing file without write permission.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from typing import NamedTuple

BINARY_SUFFIX = ".glmb"
ARPA_SUFFIXES = (".arpa", ".arpa.gz", ".arpa.bz2", ".arpa.xz", ".arpa.zst")
GLM_SUFFIXES = (".glm", ".glm.gz", ".glm.bz2", ".glm.xz", ".glm.zst")


def special(path) -> bool:
    """Whether path exists and is not a regular file (/dev/null, a FIFO, a terminal): written directly."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_output(path, generalized: bool = False, inputs=(), arpa: bool = False) -> None:
    """Fail early (before hours of work) on an output name or directory that cannot be written, or that
    is one of ``inputs``.  generalized: the model is a GLM, written as .glm text (plain or compressed)
    or binary; arpa: as ARPA too (a tuned MKN, glm.backoff).  An existing target that is not a regular file (/dev/null, a FIFO) gets text (ARPA or
    .glm) whatever its name; the binary format needs a regular file."""
    path = os.fspath(path)
    check_outputs({"output": path}, inputs)
    text = GLM_SUFFIXES + (ARPA_SUFFIXES if arpa else ()) if generalized else ARPA_SUFFIXES
    if special(path):
        if path.endswith(BINARY_SUFFIX):
            raise ValueError(f"{path}: not a regular file; the binary format needs one (it seeks back to "
                             "write its header)")
        return
    if not (path.endswith(BINARY_SUFFIX) or os.path.basename(path).endswith(text)):
        kind = "a GLM model" if generalized else "an MKN model"
        if generalized and os.path.basename(path).endswith(ARPA_SUFFIXES):
            raise ValueError(f"{path}: a GLM model has no back-off form, so it is not written as ARPA (only MKN, "
                             f"tuned or not, is); use a name ending in {', '.join(text)} or {BINARY_SUFFIX}")
        raise ValueError(f"{path}: unknown model format for {kind}; use a name ending in "
                         f"{', '.join(text)} or {BINARY_SUFFIX}")


def _same(a: str, b: str) -> bool:
    """Whether two paths name the same file: the same device and inode, or (when one does not exist
    yet) the same real path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: dict, inputs=()) -> None:
    """Fail before any work when an output would destroy an input or another output, or cannot be
    written.  outputs: {what (an option name): path or None}; inputs: the paths read (files; '-' and
    None are skipped).  Each output may not be the same file as an input (after symlinks, by device and
    inode) nor as another output; its directory must exist and be writable, and an existing output
    must be writable, by this user and by its mode (glm does not replace a read-only file, even as
    root).  '-' (stdout) and targets that are not
    regular files (/dev/null) are only checked against the inputs."""
    named = [(what, os.fspath(path)) for what, path in outputs.items() if path is not None and path != "-"]
    inputs = [os.fspath(p) for p in inputs if p is not None and os.fspath(p) != "-"]
    for i, (what, path) in enumerate(named):
        refuse_overwrite(path, inputs, what)
        for other_what, other in named[:i]:
            if not (special(path) and special(other)) and _same(path, other):
                raise ValueError(f"{path}: {what} and {other_what} are the same file; give them different "
                                 "names (nothing was written)")
        if special(path):
            continue
        directory = os.path.dirname(os.path.abspath(os.path.realpath(path)))
        if not os.path.isdir(directory):
            raise ValueError(f"{path}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK):
            raise ValueError(f"{path}: directory {directory} is not writable")
        if os.path.isdir(path):
            raise ValueError(f"{path}: a directory, not a file name")
        if os.path.exists(path) and (not os.access(path, os.W_OK) or not os.stat(path).st_mode & 0o222):
            raise ValueError(f"{path}: the file is read-only; remove it or make it writable first "
                             "(nothing was written)")


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


def json_text(obj, **kw) -> str:
    """JSON text of obj with NaN and infinities written as null (JSON has no such numbers)."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(obj), allow_nan=False, **kw)


class ModelFormatError(ValueError):
    """A model file that cannot be read; the message names the file and, for text, the line."""


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path next to ``path``; renames it to ``path`` if the block succeeds, and
    removes it otherwise (an exception, Ctrl-C, SIGTERM).  An existing path that is not a regular file
    (/dev/null, a FIFO) is yielded itself, never replaced; a symbolic link is followed (the file it
    points to is replaced, the link stays)."""
    path = os.fspath(path)
    if special(path):        # (before realpath: /dev/stdout on a pipe resolves to no path, 'pipe:[N]')
        yield path
        return
    path = os.path.realpath(path)
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
    if generalized and model.tables.compat is not None and model.tables.compat.pad is not None:
        raise ValueError(f"{path}: a model with paper padding is for `glm paper-eval` only; it is not saved")
    mkn = generalized and model.method == "mkn"
    check_output(path, generalized, inputs=[model.source] if model.source is not None else (), arpa=mkn)
    if model.source is not None and is_binary(model.source):
        verify(model)        # (a damaged file is not copied, nor its damage given fresh checksums)
    if mkn and os.path.basename(path).endswith(ARPA_SUFFIXES):     # a tuned MKN, in back-off form
        from ..backoff import to_backoff
        model = to_backoff(model)
        generalized = False
    if path.endswith(BINARY_SUFFIX) and not special(path):
        from .binary import write_binary
        write_binary(model, path)
    elif generalized:
        from .glmtext import write_glm
        write_glm(model, path)
    else:
        from .arpa import write_arpa
        write_arpa(model, path, quiet=quiet)


def is_binary(path) -> bool:
    """Whether path is a glm binary model file (by its first bytes)."""
    from .binary import MAGIC
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def verify(model, threads: int | None = None) -> dict:
    """Check ``model`` (a ``glm.Model``) in full: the checksums and every value of its binary file when
    it was read from one, else every value of its arrays (a text file's values were checked as it was
    read).  Returns the report of ``binary.verify_binary``; raises ModelFormatError naming the problems."""
    import time
    from .binary import KINDS, arrays_of, header_of, verify_binary
    name = model.source or "model"
    if model.source is not None and is_binary(model.source):
        report = verify_binary(model.source, threads)
    else:
        t0 = time.perf_counter()
        arrays = dict(arrays_of(model))
        header = dict(order=model.order, meta=model.meta, **header_of(model))
        report = dict(problems=KINDS[model.kind].verify(arrays, header), arrays=len(arrays),
                      bytes=sum(a.nbytes for a in arrays.values()), checksums=False)
        report["seconds"] = time.perf_counter() - t0
    problems = report["problems"]
    if problems:
        more = f" (and {len(problems) - 3} more problems)" if len(problems) > 3 else ""
        raise ModelFormatError(f"{name}: damaged model: " + "; ".join(problems[:3]) + more)
    return report


def read(path, quiet: bool = True) -> Parts:
    """Read a model file, ARPA or .glm (plain or compressed), glm's binary or a KenLM binary
    (``build_binary``'s probing or trie), recognized by its first bytes (``glm.load`` makes the model
    of what it finds)."""
    from ..corpus import DECOMPRESS_ERRORS, open_binary
    from .binary import MAGIC, read_binary
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a model file")
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
    except DECOMPRESS_ERRORS as exc:      # damaged or truncated compressed data
        raise ModelFormatError(f"{path}: cannot read: {exc}") from None
    except (KeyError, IndexError, TypeError, OverflowError) as exc:   # (a check the readers lack: still clean)
        raise ModelFormatError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
