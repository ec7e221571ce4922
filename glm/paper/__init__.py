"""The reproductions of Pickhardt et al. (2014), apart from the core (docs/glm.md §4):

* ``glm.paper.glmtk2014``: the 2014 toolkit's models, methods ``glmtk2014`` and ``glmtk2014-mkn``;
* ``glm.paper.padding``: paper padding, ``glm.train(..., padding="paper")``;
* ``glm.paper.protocols``: the paper's protocol, ``sequence_perplexity`` (``glm paper-eval``);
* ``glm.paper.compat``: ``Compat``, the tops of every length that the models of both carry.

Nothing in the core imports this package except where a user asks for one of these: a paper method,
paper padding, the paper's protocol, or a saved model of the 2014 toolkit being read.  Its modules import
the core's leaf modules only, never the model or the builders.
"""
