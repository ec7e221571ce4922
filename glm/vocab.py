"""Vocabulary: word <-> id, with <unk>=0, <s>=1, </s>=2 and the other words in order of first occurrence."""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ._vocab import BAD_UTF8, LITERAL_BOUNDARY, OK, VocabTable
from .corpus import Chunk, CorpusError

UNK, BOS, EOS = 0, 1, 2
SPECIAL = ("<unk>", "<s>", "</s>")
_SYMBOLS = {"error": 0, "skip": 1, "unk": 2}
_LITERAL = ("{where}: literal <s> or </s> in the text "
            "(use --skip-symbols / skip_symbols=True to drop them)")


class Vocabulary:
    """The words of a model.  Iterating yields the words (str) in id order."""

    def __init__(self, table: VocabTable | None = None):
        self.table = table if table is not None else VocabTable.new()

    @classmethod
    def from_words(cls, words) -> "Vocabulary":
        """A vocabulary holding the special words, then ``words`` in order (duplicates ignored)."""
        table = VocabTable.new()
        for w in words:
            table.add_word(w.encode("utf-8") if isinstance(w, str) else w)
        return cls(table)

    def __len__(self) -> int:
        return int(self.table.size)

    def __reduce__(self):
        return _from_arrays, self.table.arrays()

    def __iter__(self) -> Iterator[str]:
        return (w.decode("utf-8", errors="replace") for w in self.table.words())

    def __contains__(self, word) -> bool:
        b = word.encode("utf-8") if isinstance(word, str) else word
        return b == b"<unk>" or self.table.lookup(b) != UNK

    def id(self, word) -> int:
        """Id of a word.

        Parameters
        ----------
        word : str or bytes

        Returns
        -------
        int
            0 (<unk>) when it is not in the vocabulary.
        """
        return int(self.table.lookup(word.encode("utf-8") if isinstance(word, str) else word))

    def word(self, i: int) -> str:
        """The word of an id.

        Parameters
        ----------
        i : int
            A word id, below ``len(vocab)``.

        Returns
        -------
        str
            The word (invalid UTF-8 replaced).
        """
        return self.table.word(i).decode("utf-8", errors="replace")

    def tokenize(self, chunk: Chunk, add: bool = False, symbols: str = "error",
                 bad_utf8: str = "error") -> np.ndarray:
        """Padded id stream (``1 w1 .. wn 2`` per line) of a chunk of lines.

        Parameters
        ----------
        chunk : glm.corpus.Chunk
            Lines of text, with the file and first line they come from (named in errors).
        add : bool
            New words get new ids (training); otherwise they map to <unk>.
        symbols : {'error', 'skip', 'unk'}
            What literal <s> and </s> in the text do: fail, are dropped, or are read as <unk>.
        bad_utf8 : {'error', 'replace'}
            Invalid UTF-8 fails, or becomes U+FFFD.

        Returns
        -------
        numpy.ndarray
            uint32 ids.

        Raises
        ------
        CorpusError
            A literal <s> or </s> (with 'error'), invalid UTF-8 (with 'error'); the message names the
            file and line.
        """
        mode = _SYMBOLS[symbols]
        data = chunk.data
        parts = []
        line = 0
        while True:
            status, ids, n = self.table.tokenize(data, add, mode, True)
            parts.append(ids)
            if status == OK:
                break
            bad = chunk.first_line + line + n
            start = _line_start(data, n)
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end + 1
            if status == LITERAL_BOUNDARY:
                raise CorpusError(_LITERAL.format(where=f"{chunk.path}:{bad}"))
            if status == BAD_UTF8 and bad_utf8 != "replace":
                raise CorpusError(f"{chunk.path}:{bad}: invalid UTF-8 "
                                  "(use --bad-utf8 replace / bad_utf8='replace' to replace bad bytes)")
            fixed = data[start:end].decode("utf-8", errors="replace").encode("utf-8")
            status, ids, _ = self.table.tokenize(fixed, add, mode, False)
            if status != OK:
                raise CorpusError(_LITERAL.format(where=f"{chunk.path}:{bad}"))
            parts.append(ids)
            line += n + 1
            data = data[end:]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def tokenize_text(self, text: str | bytes) -> np.ndarray:
        """Padded id stream of lines of text for scoring: unknown words and literal <s> / </s> as <unk>.

        Parameters
        ----------
        text : str or bytes
            Lines separated by LF (invalid UTF-8 replaced).

        Returns
        -------
        numpy.ndarray
            uint32 ids.
        """
        data = text.encode("utf-8") if isinstance(text, str) else text
        return self.tokenize(Chunk(data, "<text>", 1), symbols="unk", bad_utf8="replace")



def check_text(chunks: Iterable[Chunk], symbols: str = "error", bad_utf8: str = "error") -> None:
    """Read chunks of text as counting does (a new vocabulary, words added), to raise the first error
    with its exact file and line (a CorpusError)."""
    vocab = Vocabulary()
    for chunk in chunks:
        vocab.tokenize(chunk, add=True, symbols=symbols, bad_utf8=bad_utf8)


def _from_arrays(blob, offsets, table) -> Vocabulary:
    """Unpickling: a frozen vocabulary over the arrays of ``VocabTable.arrays``."""
    return Vocabulary(VocabTable.from_arrays(blob, offsets, table))


def _line_start(data: bytes, n: int) -> int:
    """Byte offset of line n (0-based) in data."""
    pos = 0
    for _ in range(n):
        pos = data.index(b"\n", pos) + 1
    return pos
