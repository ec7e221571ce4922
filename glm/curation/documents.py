"""Documents: plain text (one per line or per blank-line-separated paragraph) or JSONL, read in order.

Input goes through ``glm.corpus.read_chunks`` (files, directories in sorted order, '-', gzip / bzip2 / xz /
zstd), so memory stays constant.  The chunks are cut at document boundaries (``document_chunks``) and
each chunk is parsed on its own (``parse_chunk``): worker processes can parse and score chunks without
seeing the rest of the input.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import Iterator

from ..corpus import Chunk, CorpusError, expand_inputs, read_chunks

FORMATS = ("text", "jsonl")
UNITS = ("line", "paragraph")


@dataclass(frozen=True)
class DocFormat:
    """How documents are read.

    fmt: 'text' or 'jsonl'.  unit (text only): 'line' (one document per line) or 'paragraph' (documents
    separated by blank lines).  text_field / id_field (JSONL): field names, dotted paths allowed
    ('meta.id'); without id_field the id is the document's ``id`` field when it has one (a string or a
    number: the convention of dolma and datatrove), else ``file:line``.  on_error: a malformed JSONL line raises
    CorpusError ('error') or is skipped and counted ('skip').  bad_utf8: 'error' or 'replace'.
    """
    fmt: str = "text"
    unit: str = "line"
    text_field: str = "text"
    id_field: str | None = None
    on_error: str = "error"
    bad_utf8: str = "error"

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {self.fmt!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, not {self.unit!r}")
        if self.on_error not in ("error", "skip"):
            raise ValueError(f"on_error must be 'error' or 'skip', not {self.on_error!r}")

    def separator(self) -> bytes:
        """What follows a document's raw bytes when documents are written out again.

        Returns
        -------
        bytes
        """
        return b"\n" if self.fmt == "text" and self.unit == "paragraph" else b""


@dataclass
class Document:
    """id; text (lines separated by LF); raw: the bytes read (a JSONL or text line with its LF, or the
    lines of a paragraph), written out unchanged; fields: the parsed JSON object (None for text)."""
    id: str
    text: str
    raw: bytes
    fields: dict | None = None


def get_field(obj: dict, path: str):
    """obj[path], or the value at a dotted path ('a.b' -> obj['a']['b']); a key that itself holds the
    dot is tried first.

    Parameters
    ----------
    obj : dict
    path : str

    Returns
    -------
    object

    Raises
    ------
    KeyError
        No such field.
    """
    if path in obj:
        return obj[path]
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def expand_globs(inputs) -> list:
    """Inputs with glob patterns ('data/*.jsonl.gz', '**' recursive) replaced by the matching paths in
    sorted order; a pattern that matches nothing is an error."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out = []
    for item in inputs:
        item = os.fspath(item)
        if item != "-" and not os.path.exists(item) and glob.has_magic(item):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise CorpusError(f"{item}: no file matches")
            out.extend(found)
        else:
            out.append(item)
    return out


def input_paths(inputs) -> list[str]:
    """The files that inputs name (globs, directories, '-'), in reading order."""
    return expand_inputs(expand_globs(inputs))


def rereadable_paths(inputs, what: str) -> list[str]:
    """input_paths, for a step that reads its input twice: stdin and pipes are refused."""
    from ..corpus import read_once
    paths = input_paths(inputs)
    for path in paths:
        if read_once(path):
            name = "stdin ('-')" if path == "-" else f"{path} (a pipe)"
            raise ValueError(f"{what} reads its input twice, which {name} cannot be: save it to a file")
    return paths


def _after_last(data: bytes, sep: bytes) -> int:
    """The offset just after the last occurrence of sep in data, 0 if none."""
    at = data.rfind(sep)
    return 0 if at < 0 else at + len(sep)


def document_chunks(inputs, fmt: DocFormat, quiet: bool = True, desc: str = "reading",
                    chunk_bytes: int = 1 << 22) -> Iterator[Chunk]:
    """Chunks of complete documents, in input order (paragraphs are never cut)."""
    chunks = read_chunks(input_paths(inputs), chunk_bytes=chunk_bytes, quiet=quiet, desc=desc)
    if fmt.unit != "paragraph" or fmt.fmt != "text":
        yield from chunks
        return
    carry = None
    for ch in chunks:
        if carry is not None:
            if ch.first_line == 1:          # a new file: the last paragraph of the previous one is whole
                yield carry
            else:
                ch = Chunk(carry.data + ch.data, ch.path, carry.first_line)
            carry = None
        # after the last blank line (LF LF, or CR LF CR LF)
        cut = max(_after_last(ch.data, b"\n\n"), _after_last(ch.data, b"\n\r\n"))
        if not cut:
            carry = ch
            continue
        head = ch.data[:cut]
        yield Chunk(head, ch.path, ch.first_line)
        if len(head) < len(ch.data):
            carry = Chunk(ch.data[cut:], ch.path, ch.first_line + head.count(b"\n"))
    if carry is not None:
        yield carry


def _decode(line: bytes, where: str, bad_utf8: str) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        if bad_utf8 != "replace":
            raise CorpusError(f"{where}: invalid UTF-8 (use --bad-utf8 replace / bad_utf8='replace' "
                              "to replace bad bytes)") from None
        return line.decode("utf-8", errors="replace")


def _lines(chunk: Chunk) -> list[bytes]:
    lines = chunk.data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _parse_json(line: bytes, where: str, fmt: DocFormat) -> Document:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise CorpusError(f"{where}: malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: a JSON {type(obj).__name__}, not an object")
    try:
        text = get_field(obj, fmt.text_field)
    except KeyError:
        raise CorpusError(f"{where}: no text field {fmt.text_field!r}") from None
    if not isinstance(text, str):
        raise CorpusError(f"{where}: text field {fmt.text_field!r} holds a {type(text).__name__}, "
                          "not a string")
    if fmt.id_field is None:
        doc_id = obj.get("id")
        doc_id = str(doc_id) if isinstance(doc_id, (str, int, float)) and not isinstance(doc_id, bool) else where
    else:
        try:
            doc_id = get_field(obj, fmt.id_field)
        except KeyError:
            raise CorpusError(f"{where}: no id field {fmt.id_field!r}") from None
        if isinstance(doc_id, (dict, list)) or doc_id is None:
            raise CorpusError(f"{where}: id field {fmt.id_field!r} holds {json.dumps(doc_id)[:40]}")
        doc_id = str(doc_id)
    return Document(doc_id, text, line + b"\n", obj)


def parse_chunk(chunk: Chunk, fmt: DocFormat) -> tuple[list[Document], int]:
    """The documents of a chunk and the number of malformed JSONL lines skipped."""
    lines = _lines(chunk)
    docs, skipped = [], 0
    if fmt.fmt == "jsonl":
        for i, line in enumerate(lines):
            if not line.strip():
                continue                    # a blank line holds no document
            where = f"{chunk.path}:{chunk.first_line + i}"
            try:
                docs.append(_parse_json(line, where, fmt))
            except CorpusError:
                if fmt.on_error != "skip":
                    raise
                skipped += 1
    elif fmt.unit == "line":
        for i, line in enumerate(lines):
            where = f"{chunk.path}:{chunk.first_line + i}"
            docs.append(Document(where, _decode(line, where, fmt.bad_utf8), line + b"\n"))
    else:
        start = None
        for i, line in enumerate(lines + [b""]):
            if line.strip():
                if start is None:
                    start = i
                continue
            if start is not None:
                where = f"{chunk.path}:{chunk.first_line + start}"
                raw = b"\n".join(lines[start:i]) + b"\n"
                docs.append(Document(where, _decode(raw[:-1], where, fmt.bad_utf8), raw))
                start = None
    return docs, skipped


def read_documents(inputs, fmt: DocFormat = DocFormat(), quiet: bool = True) -> Iterator[Document]:
    """Documents of files, directories or '-' in input order (malformed JSONL lines skipped when
    fmt.on_error == 'skip').

    Parameters
    ----------
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    quiet : bool
        No progress bar.

    Yields
    ------
    Document

    Raises
    ------
    CorpusError
        A missing input, bad text or JSON (the message names the file and line).
    """
    for chunk in document_chunks(inputs, fmt, quiet=quiet):
        yield from parse_chunk(chunk, fmt)[0]


def document_lines(docs) -> Iterator[str]:
    """The lines of documents (text split at LF), as they are scored: training text for a model.

    Parameters
    ----------
    docs : iterable of Document

    Yields
    ------
    str
    """
    for doc in docs:
        yield from doc.text.split("\n")
