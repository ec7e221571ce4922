"""Evaluation protocols beside running text (Model.evaluate): the GLM paper's sampled sequences.

Pickhardt et al. (2014) score each test sequence w1 .. wn (n-word windows sampled from the test text;
the n = 3 and 4 sets are the first 3 or 4 words of the 5-word lines) by the chain rule from an empty
context, P(w1) P(w2 | w1) .. P(wn | w1 .. wn-1), with no <s> before w1 and no </s> predicted, and report
the perplexity per word over all words of all sequences, OOVs included (scored as <unk>).  Literal
<s> and </s> in the sequences are OOVs for glm's models, whose sentences start after <s> and never
predict it.  The 2014 toolkit's models (glmtk2014, glmtk2014-mkn) know them as words, as the toolkit
did: a sequence "<s> a b" scores P(<s>) P(a | <s>) P(b | <s> a), and "c d </s>" ends with P(</s> | c d).
Models with paper padding (glm.paper.padding) take the reference notes' conventions: "<s> a b" scores
P(<unk>) P(a | pad) P(b | pad a), with the pad word as the notes' <s>, and </s> is a word.
The in-vocabulary perplexity keeps the sequences without OOVs, <s> or </s>.  See docs/glm.md.
"""
from __future__ import annotations

import math

from ..corpus import Chunk, read_chunks
from .padding import pad_stream


def sequence_perplexity(model, inputs, n: int, quiet: bool = True, bad_utf8: str = "error") -> dict:
    """The paper's per-word chain-rule perplexity of the first n words of each line of ``inputs``."""
    compat = getattr(getattr(model, "tables", None), "compat", None)
    bounds = compat is not None             # <s> and </s> are words
    pad = compat.pad if bounds else None
    p_bos = model.logprob("<s>") if bounds and pad is None else 0.0
    total = inv_total = 0.0
    sequences = tokens = oovs = inv_sequences = inv_tokens = short = 0
    for chunk in read_chunks(inputs, quiet=quiet, desc="scoring"):
        lines = chunk.data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        cut = [ln.split()[:n] for ln in lines]
        short += sum(1 for c in cut if len(c) < n)
        groups = {(False, False): cut}
        if bounds:              # lines that start with <s> / end with </s>, scored with bos / eos
            model.vocab.tokenize(Chunk(b"".join(b" ".join(c) + b"\n" for c in cut), chunk.path,
                                       chunk.first_line), symbols="unk", bad_utf8=bad_utf8)   # errors: file:line
            groups = {}
            for c in cut:
                bos, eos = c[:1] == [b"<s>"], c[-1:] == [b"</s>"] and len(c) > 1
                groups.setdefault((bos, eos), []).append(c[bos:len(c) - eos])
        for (bos, eos), group in groups.items():
            data = b"".join(b" ".join(c) + b"\n" for c in group)
            stream = model.vocab.tokenize(Chunk(data, chunk.path, chunk.first_line), symbols="unk",
                                          bad_utf8=bad_utf8)
            if bos and pad is not None:          # <s> is the pad word, scored in the stream
                stream = pad_stream(stream, pad, 1)
            own_bos = bos and pad is None         # <s> is glm's, scored here
            res = model.score_ids(stream, bos=own_bos, eos=eos)
            lp, tok, oov = res.log10_prob, res.tokens, res.oovs
            total += float(lp.sum()) + own_bos * len(group) * p_bos
            sequences += len(tok)
            tokens += int(tok.sum()) + own_bos * len(group)
            oovs += int(oov.sum()) + (bos and pad is not None) * len(group)     # the notes' <s> is an OOV
            if not (bos or eos):
                clean = oov == 0
                inv_total += float(lp[clean].sum())
                inv_sequences += int(clean.sum())
                inv_tokens += int(tok[clean].sum())
    ppl = 10.0 ** (-total / tokens) if tokens else math.nan
    inv = 10.0 ** (-inv_total / inv_tokens) if inv_tokens else math.nan
    return dict(perplexity=ppl, sequences=sequences, tokens=tokens, oovs=oovs,
                perplexity_in_vocabulary=inv, sequences_in_vocabulary=inv_sequences,
                shorter_than_n=short, protocol="chain rule from an empty context, per word, OOVs included")
