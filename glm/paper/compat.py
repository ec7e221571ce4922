"""What a model with a top of every length needs beside its pattern tables: the 2014 toolkit's models
(glm.paper.glmtk2014) and models with paper padding (glm.paper.padding).  Each factor of the paper's
chain rule is then answered by the top of its own length (docs/glm.md §4.1, §4.2).

Leaf module (no glm imports).  The paper's models make it; glm.generalized.Tables carries it, the model
hands ``scorer_args()`` to the compiled scorer, and the file formats write it and, reading such a file,
import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Compat:
    """extra: added to the average of a GLM's children (the toolkit's 1/(N+1); 0 otherwise); floor:
    what a probability <= 0 becomes (the toolkit's 1e-12; 0 otherwise); top: {1: {"prob": by word id},
    mask of 1^L: {"alpha": per n-gram, "gamma": per history} for L = 2 .. order-1}; discounts: the
    tops' (D1, D2, D3+) by mask; pad: the pad word of paper padding (such a model is not saved)."""
    extra: float
    floor: float
    top: dict = field(default_factory=dict)
    discounts: dict = field(default_factory=dict)
    pad: int | None = None

    def scorer_args(self) -> dict:
        """What the compiled scorer reads (``_glm.Scorer``'s compat argument)."""
        return dict(extra=self.extra, floor=self.floor, top=self.top)
