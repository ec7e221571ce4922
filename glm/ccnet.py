"""CCNet's document scoring (Wenzek et al. 2020, the ``cc_net`` package), in front of a glm model.

CCNet scores a document with a pair of models per language, ``L.sp.model`` (SentencePiece) and
``L.arpa.bin`` (a KenLM model over the pieces).  Its pipeline (``cc_net/mine.py``) runs

1. ``text_normalizer.normalize`` on the document's whole text: strip, lower-case, strip accents
   (Unicode NFD without the combining marks), every decimal digit to 0, a fixed table of Unicode
   punctuation to ASCII, and then every control character (U+0000-U+001F, U+007F-U+009F) removed --
   newlines and TABs included, so the lines of a document run together;
2. SentencePiece's ``encode_as_pieces``, the pieces joined by spaces;
3. ``DocLM``: per LF-separated line of that (one line, after step 1) ``model.score(line)`` and
   ``len(line.split()) + 1`` tokens, summed over the lines; the document's perplexity is
   ``round(10 ** (-log10_prob / tokens), 1)``.

``CCNetTokenizer`` does steps 1 and 2 (``normalize`` is step 1); ``glm score --per-doc``, ``glm prune``,
``glm bucket`` (``--tokenizer ccnet --sp-model L.sp.model``) and ``glm.curation`` run step 3 with it,
giving CCNet's perplexities for the same model pair (a KenLM binary, an ARPA file or a glm model).
One difference: CCNet gives a document whose text normalizes to nothing no perplexity at all; glm
scores it as an empty line (</s> alone).
"""
from __future__ import annotations

import os
import re
import unicodedata

__all__ = ["normalize", "CCNetTokenizer", "PERPLEXITY_DEFINITION", "doc_perplexity"]

# CCNet's table of Unicode punctuation and its ASCII replacements (text_normalizer.UNICODE_PUNCT)
PUNCT = {
    "\uff0c": ",", "\u3002": ".", "\u3001": ",", "\u201e": '"', "\u201d": '"', "\u201c": '"',
    "\u00ab": '"', "\u00bb": '"', "\uff11": '"', "\u300d": '"', "\u300c": '"', "\u300a": '"',
    "\u300b": '"', "\u00b4": "'", "\u2236": ":", "\uff1a": ":", "\uff1f": "?", "\uff01": "!",
    "\uff08": "(", "\uff09": ")", "\uff1b": ";", "\u2013": "-", "\u2014": " - ", "\uff0e": ". ",
    "\uff5e": "~", "\u2019": "'", "\u2026": "...", "\u2501": "-", "\u3008": "<", "\u3009": ">",
    "\u3010": "[", "\u3011": "]", "\uff05": "%", "\u25ba": "-",
}
_PUNCT_TABLE = str.maketrans(PUNCT)
_CONTROL_TABLE = dict.fromkeys([*range(0, 32), *range(127, 160)])
_DIGIT = re.compile(r"\d")

PERPLEXITY_DEFINITION = (
    "CCNet's: the text normalized (cc_net text_normalizer.normalize: lower case, accents stripped, "
    "digits to 0, Unicode punctuation to ASCII, control characters including LF removed) and split into "
    "SentencePiece pieces joined by spaces; each LF-separated line scored as <s> pieces </s>; "
    "perplexity = round(10^(-sum(log10_prob) / sum(pieces + 1)), 1), pieces counted by Python's "
    "str.split()")


def normalize(text: str, accent: bool = True, case: bool = True, numbers: bool = True,
              punct: int = 1) -> str:
    """CCNet's ``text_normalizer.normalize``: strip, then the steps below, then the control characters
    removed (LF and TAB included).

    Parameters
    ----------
    text : str
    accent : bool
        Strip accents (NFD without the combining marks).
    case : bool
        Lower-case.
    numbers : bool
        Every decimal digit to 0.
    punct : {0, 1, 2}
        Unicode punctuation kept (0), to ASCII (1) or removed (2).

    Returns
    -------
    str
    """
    text = text.strip()
    if not text:
        return text
    if case:
        text = text.lower()
    if accent:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    if numbers:
        text = _DIGIT.sub("0", text)
    if punct == 1:
        text = text.translate(_PUNCT_TABLE)
    elif punct == 2:
        text = text.translate(dict.fromkeys(map(ord, PUNCT)))
    return text.translate(_CONTROL_TABLE)


class CCNetTokenizer:
    """CCNet's text -> pieces: ``normalize``, then SentencePiece's pieces joined by spaces.

    Parameters
    ----------
    sp_model : str or os.PathLike
        A SentencePiece model file (CCNet's ``L.sp.model``).
    normalize : bool
        Normalize first (CCNet's pipeline does).

    Raises
    ------
    ImportError
        The sentencepiece package is missing (``pip install glm[ccnet]``).
    ValueError
        The file is not a SentencePiece model.

    A tokenizer pickles as its model's path (worker processes load the model again).
    """

    def __init__(self, sp_model, normalize: bool = True):
        self.path = os.fspath(sp_model)
        self.normalize = normalize
        self._sp = None
        self._processor()                   # (fail here, not in a worker)

    def _processor(self):
        if self._sp is None:
            try:
                import sentencepiece
            except ImportError:
                raise ImportError("CCNet's tokenization needs the sentencepiece package: "
                                  "pip install glm[ccnet]") from None
            if not os.path.isfile(self.path):
                raise FileNotFoundError(f"{self.path}: no such SentencePiece model")
            sp = sentencepiece.SentencePieceProcessor()
            try:
                sp.load(self.path)
            except (OSError, RuntimeError) as exc:
                raise ValueError(f"{self.path}: not a SentencePiece model ({exc})") from None
            self._sp = sp
        return self._sp

    def __call__(self, text: str) -> str:
        """The pieces of text, joined by spaces."""
        if self.normalize:
            text = normalize(text)
        return " ".join(self._processor().encode_as_pieces(text))

    def __reduce__(self):
        return CCNetTokenizer, (self.path, self.normalize)

    def __repr__(self) -> str:
        return f"CCNetTokenizer({self.path!r}, normalize={self.normalize})"


def doc_perplexity(log10_prob: float, tokens: int) -> float:
    """CCNet's per-document perplexity (``DocLM``): 10^(-log10_prob / tokens), rounded to 0.1.

    Parameters
    ----------
    log10_prob : float
        The document's summed log10 probability.
    tokens : int
        Its tokens, counted as CCNet counts them (``len(line.split()) + 1`` per line).

    Returns
    -------
    float
    """
    return round(10.0 ** (-log10_prob / tokens), 1)


def tokenizer_of(name: str | None, sp_model=None):
    """The tokenizer a command asks for: None (the text as it is) or a CCNetTokenizer."""
    if name in (None, "none", "whitespace"):
        if sp_model is not None:
            raise ValueError("--sp-model goes with --tokenizer ccnet")
        return None
    if name != "ccnet":
        raise ValueError(f"unknown tokenizer {name!r}; use 'whitespace' or 'ccnet'")
    if sp_model is None:
        raise ValueError("--tokenizer ccnet needs --sp-model (CCNet's L.sp.model)")
    return CCNetTokenizer(sp_model)
