"""glm: exact, fast modified Kneser-Ney and Generalized n-gram language models.

In short (docs/usage.md has the whole API)::

    import glm
    model = glm.train("corpus.txt", order=5)      # or glm.load("model.arpa" / "model.glmb")
    model.score("a sentence")                     # log10 probability, as kenlm.Model.score
    model.save("model.arpa")
    glm.train("corpus.txt", order=5, method="glm", tune=["valid.txt"])   # a GeneralizedModel
"""
from .build import train
from .corpus import CorpusError
from .discount import DiscountError
from .formats import ModelFormatError
from .model import BackoffModel, Evaluation, GeneralizedModel, KenLMModel, Model, load
from .vocab import Vocabulary

__all__ = ["train", "load", "Model", "BackoffModel", "GeneralizedModel", "KenLMModel", "Evaluation", "Vocabulary", "CorpusError",
           "DiscountError", "ModelFormatError"]
__version__ = "0.1.0"
