"""The published figure: an interpolated modified Kneser-Ney 5-gram on Penn Treebank (Mikolov's
preprocessing), no cut-offs, has test perplexity 141.2 (Mikolov et al. 2011; lmplz gives 141.19)."""
from __future__ import annotations

import glm
from helpers import corpus_path


def test_ptb_5gram_perplexity():
    train = corpus_path("ptb/ptb.train.txt.gz")
    test = corpus_path("ptb/ptb.test.txt.gz")
    # the literal <unk> of the text is glm's unknown word, counted like a word
    model = glm.train(str(train), 5)
    assert model.order == 5
    assert "<unk>" in model.vocab
    assert len(model.vocab) == 9999 + 2        # 9,999 word types (<unk> among them), <s>, </s>
    ev = model.evaluate(str(test))
    assert ev.lines == 3761
    assert ev.tokens == 82430                  # 78,669 words + 3,761 </s>
    assert round(ev.perplexity, 1) == 141.2
    assert abs(ev.perplexity - 141.19) < 0.01
