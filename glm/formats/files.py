"""The rules of every output file of glm, and what the model readers share.

Every writer goes through ``atomic_output``: the file is written under a temporary name in the same
directory and renamed at the end, so an interrupted write never leaves a partial file behind.  An output
is checked before any work (``check_outputs``): it may not be one of the inputs (after symlinks, by
device and inode) nor another output, nor an existing file without write permission.

Leaf module of ``glm.formats``: the readers and writers import it, it imports none of them.
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


def check_output(path, generalized: bool = False, inputs=(), arpa: bool = False, compact: bool = False) -> None:
    """Fail early (before hours of work) on an output name or directory that cannot be written, or that
    is one of ``inputs``.  generalized: the model is a GLM, written as .glm text (plain or compressed)
    or binary; arpa: as ARPA too (a tuned MKN, glm.backoff); compact: written as a KenLM trie (the
    compact layout, glm.formats.kenlm_write) whatever the name, which may not be one of glm's formats.  An existing target that is not a regular file (/dev/null, a FIFO) gets text (ARPA or
    .glm) whatever its name; the binary format needs a regular file."""
    path = os.fspath(path)
    check_outputs({"output": path}, inputs)
    if compact:
        if generalized and not arpa:
            raise ValueError(f"{path}: a GLM model has no back-off form, so it has no compact layout (KenLM's "
                             f"trie holds back-off models: MKN, tuned or not, and ARPA models); save it as "
                             f"{BINARY_SUFFIX} or .glm")
        if os.path.basename(path).endswith(ARPA_SUFFIXES + GLM_SUFFIXES + (BINARY_SUFFIX,)):
            raise ValueError(f"{path}: the compact layout writes KenLM's trie binary format, not the format "
                             "this name says; give the file another name (e.g. model.klm or model.trie), or "
                             "drop --layout compact / --quantize")
        return
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
