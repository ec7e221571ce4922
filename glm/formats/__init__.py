"""Model files: ARPA text (plain or compressed), glm's memory-mapped binary format and KenLM's
binaries; and (in ``glm.formats.files``) the rules of every output file of glm.
"""
from __future__ import annotations

import io
import os
import stat

from .files import (ARPA_SUFFIXES, BINARY_SUFFIX, GLM_SUFFIXES, ModelFormatError, Parts,  # noqa: F401
                    atomic_output, check_output, check_outputs, json_text, refuse_overwrite, special)


def save(model, path, quiet: bool = True, layout: str | None = None, quantize=None, pointer_bits=None,
         alloc=None) -> None:
    """Write ``model`` (a ``glm.Model``) in the format its name asks for; with ``layout='compact'`` (or
    ``pointer_bits``, or ``quantize`` to a name that is not a .glmb) a back-off model as a KenLM trie
    binary (``glm.formats.kenlm_write``; its working arrays from ``alloc``, a memory budget's
    ``Scratch.zeros``, when given); ``quantize`` to a .glmb: a GLM's values as codes (glm.quantize)."""
    path = os.fspath(path)
    compact, bits, pointer_bits, codes = output_layout(path, layout, quantize, pointer_bits)
    generalized = model.kind == "generalized"
    if codes is not None:
        if not generalized:
            raise ValueError(f"{path}: quantized {BINARY_SUFFIX} files hold GLM models; a back-off model is "
                             "quantized in KenLM's trie: give a name that is not .arpa/.glm/.glmb (e.g. "
                             "model.klm)")
        if model.tables.compat is not None:
            raise ValueError(f"{path}: quantize applies to the normalized GLM models, not to the 2014 "
                             f"toolkit's {model.method} (kept as built, to reproduce the paper)")
    if generalized and model.tables.compat is not None and model.tables.compat.pad is not None:
        raise ValueError(f"{path}: a model with paper padding is for `glm paper-eval` only; it is not saved")
    mkn = generalized and model.method == "mkn"
    check_output(path, generalized, inputs=[model.source] if model.source is not None else (), arpa=mkn,
                 compact=compact)
    if model.source is not None and is_binary(model.source):
        verify(model)        # (a damaged file is not copied, nor its damage given fresh checksums)
    if compact:
        from .kenlm_write import write_trie
        write_trie(model.as_backoff() if generalized else model, path, bits, pointer_bits, alloc)
        return
    if mkn and os.path.basename(path).endswith(ARPA_SUFFIXES):     # a tuned MKN, in back-off form
        model = model.as_backoff()
        generalized = False
    if path.endswith(BINARY_SUFFIX) and not special(path):
        from .binary import write_binary
        write_binary(model, path, codes)
    elif generalized:
        from .glmtext import write_glm
        write_glm(model, path)
    else:
        from .arpa import write_arpa
        write_arpa(model, path, quiet=quiet)


def output_layout(path: str, layout=None, quantize=None, pointer_bits=None):
    """(compact, KenLM bits or None, pointer bits or None, GLM code bits or None) of save's options,
    checked.  ``quantize`` means two things, told apart by the name: to a .glmb (and no compact layout)
    a GLM's alphas and gammas as 8- or 16-bit codes (glm.quantize); otherwise KenLM's quantized trie
    (``build_binary -q -b``), which implies the compact layout (glm.formats.kenlm_write)."""
    from .kenlm_write import layout_options
    if (quantize is not None and path.endswith(BINARY_SUFFIX) and not special(path)
            and layout in (None, "fast") and pointer_bits is None):
        from ..quantize import check_bits
        return False, None, None, check_bits(quantize)
    return (*layout_options(layout, quantize, pointer_bits), None)


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
    of what it finds).  The file is opened once and a text model read as a stream, so a path that is a
    pipe (/dev/stdin, bash's <(...), a FIFO) works for text; a binary model is mapped from its file."""
    from .binary import MAGIC, read_binary
    from .kenlm import is_kenlm_binary, read_kenlm
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a model file")
    with open(path, "rb") as raw:
        head = raw.peek(64)[:64]
        if not (head.startswith(MAGIC) or is_kenlm_binary(head)):
            return _read_text(raw, path, quiet)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ModelFormatError(f"{path}: a binary model is mapped from its file, so it cannot be read "
                               "from a pipe: give the file itself (or an ARPA file through the pipe)")
    return read_binary(path) if head.startswith(MAGIC) else read_kenlm(path)


def _read_text(raw, path: str, quiet: bool) -> Parts:
    """An ARPA or .glm model from an open file, decompressed as its first bytes say, its first line
    peeked at to tell the two apart."""
    from ..corpus import DECOMPRESS_ERRORS, open_binary_from
    from .arpa import read_arpa
    from .glmtext import read_glm
    try:
        stream = open_binary_from(raw, path)
        if not hasattr(stream, "peek"):
            stream = io.BufferedReader(stream)
        generalized = stream.peek(64).split(b"\n", 1)[0].rstrip() == b"\\glm\\"
        return read_glm(stream, path) if generalized else read_arpa(stream, path, quiet=quiet)
    except DECOMPRESS_ERRORS as exc:      # damaged or truncated compressed data
        raise ModelFormatError(f"{path}: cannot read: {exc}") from None
    except (KeyError, IndexError, TypeError, OverflowError) as exc:   # (a check the readers lack: still clean)
        raise ModelFormatError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
