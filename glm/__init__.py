"""glm: exact, fast modified Kneser-Ney n-gram language models.

    import glm
    model = glm.train("corpus.txt", order=5)      # or glm.load("model.arpa" / "model.glmb")
    model.score("a sentence")                     # log10 probability, as kenlm.Model.score
    model.save("model.arpa")
"""
from .build import train
from .corpus import CorpusError
from .discount import DiscountError
from .formats import ModelFormatError, load
from .model import Evaluation, Model
from .vocab import Vocabulary

__all__ = ["train", "load", "Model", "Evaluation", "Vocabulary", "CorpusError", "DiscountError",
           "ModelFormatError"]
__version__ = "0.1.0"
