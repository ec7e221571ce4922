"""The ``kenlm`` Python module's API over glm's models: ``import glm.kenlm as kenlm`` runs code written
for the kenlm module unchanged, on ARPA files, glm's ``.glm`` and ``.glmb`` models (back-off and GLM) and
KenLM's binary files.

    import glm.kenlm as kenlm
    model = kenlm.Model("lm.arpa")                 # or .glmb, .glm, a KenLM binary
    model.score("this is a sentence .", bos=True, eos=True)
    state, out = kenlm.State(), kenlm.State()
    model.BeginSentenceWrite(state)
    model.BaseScore(state, "this", out)            # log10 p(this | <s>); out: the state after "this"
    "this" in model

The numbers are KenLM's (float32): a sentence is split at ASCII whitespace as KenLM splits it, ``<s>``
and ``</s>`` written in a sentence are the model's own words (KenLM looks them up too), and States
keep the words KenLM's states keep (KenLM's right-state minimization on back-off models), so that they
are equal, and hash equally, exactly when KenLM's are.  The queries run in compiled code
(``glm._state``) and are at least as fast per call as the kenlm module's.

Differences from the kenlm module: ``Config`` options other than ``show_progress`` only ask the
operating system to read a binary file ahead (``load_method``) or do nothing (see ``Config``);
``State`` also has ``length``, ``words`` and ``backoffs``, and works with ``copy.deepcopy`` and pickle;
``BaseScore``/``BaseFullScore`` accept bytes as well as str and may be given the same State as input
and output; a Model pickles by path and refuses to load a file that changed since (kenlm reloads
whatever is there); ``model.model`` is the glm model underneath (``next_words``, ``generate``, ...).
"""
from __future__ import annotations

import os

from ._state import FullScoreReturn, Queries, State

__all__ = ["Model", "LanguageModel", "Config", "LoadMethod", "ARPALoadComplain", "State",
           "FullScoreReturn"]


class LoadMethod:
    """How a binary model file is brought into memory, as KenLM's ``util::LoadMethod``.

    glm maps its binary files (and KenLM's) without reading them: LAZY leaves it there (pages are read
    on first use); the others also ask the operating system to read the whole file ahead (Linux's
    ``posix_fadvise(WILLNEED)``; nothing elsewhere).  ARPA and .glm text files are always read whole.
    """
    LAZY = 0
    POPULATE_OR_LAZY = 1
    POPULATE_OR_READ = 2
    READ = 3
    PARALLEL_READ = 4


class ARPALoadComplain:
    """KenLM's warnings about ARPA files (ALL, EXPENSIVE, NONE); glm's reader does not print them (it
    accepts what KenLM accepts and raises glm.ModelFormatError for what it cannot read)."""
    ALL = 0
    EXPENSIVE = 1
    NONE = 2


class Config:
    """Options of Model(path, config), as ``kenlm.Config``.

    Attributes
    ----------
    load_method : int
        A LoadMethod (default POPULATE_OR_READ, as KenLM's).
    show_progress : bool
        A progress bar while an ARPA or .glm text file is read (default True, as KenLM's; glm shows it
        only on a terminal).
    arpa_complain : int
        An ARPALoadComplain; accepted, without effect.
    """

    def __init__(self):
        self.load_method = LoadMethod.POPULATE_OR_READ
        self.show_progress = True
        self.arpa_complain = ARPALoadComplain.ALL

    def __repr__(self) -> str:
        return (f"Config(load_method={self.load_method}, show_progress={self.show_progress}, "
                f"arpa_complain={self.arpa_complain})")


def _as_bytes(path) -> bytes:
    if isinstance(path, bytes):
        return path
    if isinstance(path, str):
        return path.encode("utf-8")
    if isinstance(path, os.PathLike):
        return os.fsencode(path)
    raise TypeError(f"Cannot convert {type(path)} to string")


def _read_ahead(path: bytes) -> None:
    """Ask the operating system to read the file into its cache (where it can)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


class Model(Queries):
    """A language model with the kenlm module's API (see the module's docstring).

    Parameters
    ----------
    path : str, bytes or os.PathLike
        An ARPA file (plain or compressed), a glm model (.glm, .glmb) or a KenLM binary.
    config : Config, optional
        Loading options.

    Raises
    ------
    OSError
        The file cannot be read or is not a model (as the kenlm module: ``Cannot read model ...``;
        the cause, a glm.ModelFormatError or FileNotFoundError, is chained).

    Attributes
    ----------
    path : bytes
        The absolute path of the file, as the kenlm module gives it.
    model : glm.Model
        The glm model underneath.
    """

    def __init__(self, path, config: Config | None = None):
        from .formats import ModelFormatError
        from .model import load
        config = Config() if config is None else config
        self.path = os.path.abspath(_as_bytes(path))
        try:
            if config.load_method != LoadMethod.LAZY:
                _read_ahead(self.path)
            model = load(os.fsdecode(self.path), quiet=not config.show_progress)
        except (ModelFormatError, OSError) as exc:
            message = str(exc).replace("\n", " ")
            raise OSError(f"Cannot read model '{os.fsdecode(_as_bytes(path))}' ({message})") from exc
        self._attach(model)

    def _attach(self, model) -> None:
        self.model = model
        Queries.__init__(self, model.vocab.table, model._trie, kenlm=True)

    @classmethod
    def from_model(cls, model) -> "Model":
        """The kenlm-module API over a glm.Model already in memory (e.g. from ``glm.train``)."""
        self = cls.__new__(cls)
        source = getattr(model, "_source", None)
        self.path = os.fsencode(source.path) if source is not None else b"<in memory>"
        self._attach(model)
        return self

    def __repr__(self) -> str:
        return "<Model from {0}>".format(os.path.basename(self.path))

    def __reduce__(self):
        return _unpickle, (type(self), self.path, self.model)


class LanguageModel(Model):
    """Backwards compatibility stub, as the kenlm module's.  Use Model."""


def _unpickle(cls, path: bytes, model) -> Model:
    self = cls.__new__(cls)
    self.path = path
    self._attach(model)
    return self
