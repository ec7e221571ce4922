"""The GLM tuned by default on its training text (tune_split, --tune-split; glm.split, glm.build).

The parameters are recomputed here without tune_split: the model of the lines not held out (every 10th
line held out, written out by the test), tuned with glm.tune on the held-out lines; then applied by hand
(rediscount, with_weights) to the untuned model of all the lines.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import glm
from glm.build import count
from glm.cli import main
from glm.generalized import estimate, rediscount
from glm.mkn import Options
from glm.model import GeneralizedModel
from glm.split import held_out
from glm.tune import tune
from helpers import fifo_feeding, random_corpus

ORDER = 3


@pytest.fixture(scope="module")
def text():
    return [" ".join(s) for s in random_corpus(23, vocab_size=200, n_sentences=1800)]


@pytest.fixture(scope="module")
def lines(text):
    return text[:1500]


def fitted_by_hand(train_lines, held_lines, method):
    """(weights, {mask: discount scale}) fitted on held_lines with a model of train_lines."""
    vocab, levels = count(lines=train_lines, order=ORDER)
    opts = Options(discount_fallback=())
    model = GeneralizedModel(vocab, estimate(levels, ORDER, method, opts, keep_stats=True))
    base = dict(model.tables.discounts)
    tuned = tune(model, lines=held_lines, label="held")
    scales = {m: tuned.tables.discounts[m][0] / base[m][0] for m in base}
    return tuned.weights, scales


def by_hand(all_lines, weights, scales, method):
    """The model of all_lines with those weights and discount scales, made without tune_split."""
    vocab, levels = count(lines=all_lines, order=ORDER)
    tables = estimate(levels, ORDER, method, Options(discount_fallback=()), keep_stats=True)
    for m, c in scales.items():
        rediscount(tables, m, tuple(min(c * d, k) for k, d in zip((1, 2, 3), tables.discounts[m])))
    return GeneralizedModel(vocab, tables, weights=weights), dict(tables.discounts)


def sums(model, contexts):
    words = [w for w in model.vocab if w != "<s>"]
    return [math.fsum(10.0 ** model.logprob(w, ctx) for w in words) for ctx in contexts]


@pytest.mark.parametrize("method", ["glm", "mkn"])
def test_default_is_fitted_on_every_10th_line_and_built_on_all(text, lines, method, tmp_path):
    kw = {} if method == "glm" else dict(tune_split=0.1)     # the default for glm, asked for mkn
    model = glm.train(lines=lines, order=ORDER, method=method, discount_fallback=True, **kw)
    untuned = glm.train(lines=lines, order=ORDER, method="glm" if method == "glm" else "mkn",
                        discount_fallback=True, tune_split=0)
    held = [ln for i, ln in enumerate(lines) if i % 10 == 9]
    rest = [ln for i, ln in enumerate(lines) if i % 10 != 9]
    assert len(held) == 150
    weights, scales = fitted_by_hand(rest, held, method)

    # built on all the lines: the tables hold the untuned build's n-grams (for mkn: MKN's counts)
    assert isinstance(model, GeneralizedModel) and model.method == method
    if method == "glm":
        assert model.tables.sizes == untuned.tables.sizes
        for m, t in untuned.tables.tables.items():
            for k in ("word", "starts"):
                if k in t:
                    np.testing.assert_array_equal(model.tables.tables[m][k], t[k])
    else:
        assert model.counts == untuned.counts
    # the parameters are those fitted on the split (and fitted: not the untuned ones)
    assert model.weights.keys() == weights.keys()
    for m, w in weights.items():
        assert model.weights[m] == pytest.approx(w, abs=1e-12)
    if method == "glm":
        assert any(max(w) - min(w) > 0.05 for w in model.weights.values())
    assert any(abs(c - 1) > 0.05 for c in scales.values())
    want, discounts = by_hand(lines, weights, scales, method)
    for m, d in discounts.items():
        assert model.tables.discounts[m] == pytest.approx(d, rel=1e-9)
    test = text[1500:]
    np.testing.assert_allclose(model.score_many(test), want.score_many(test), rtol=1e-9)
    assert model.meta["tune_split"] == 0.1 and model.meta["heldout_lines"] == 150
    assert "every 10th line" in model.meta["tuned_on"]
    # still normalized, and better than untuned on other text of the same source
    for s in sums(model, ([], ["<s>"], ["w1", "w2"], ["w3", "never-seen"])):
        assert abs(s - 1.0) < 1e-9
    (tmp_path / "test.txt").write_text("\n".join(test) + "\n")
    assert model.evaluate([tmp_path / "test.txt"]).perplexity < untuned.evaluate([tmp_path / "test.txt"]).perplexity


def test_tune_split_zero_is_the_uniform_model(lines):
    zero = glm.train(lines=lines, order=ORDER, method="glm", discount_fallback=True, tune_split=0)
    vocab, levels = count(lines=lines, order=ORDER)
    uniform = GeneralizedModel(vocab, estimate(levels, ORDER, "glm", Options(discount_fallback=())))
    assert zero.weights == {} and "tuned_on" not in zero.meta
    assert zero.tables.discounts == uniform.tables.discounts
    test = lines[:50]
    np.testing.assert_array_equal(zero.score_many(test), uniform.score_many(test))


def test_other_fractions_and_the_held_out_rule():
    i = np.arange(1000)
    np.testing.assert_array_equal(held_out(i, Fraction(1, 10)), i % 10 == 9)
    np.testing.assert_array_equal(held_out(i, Fraction(1, 4)), i % 4 == 3)
    h = held_out(i, Fraction(3, 10))
    assert h.sum() == 300 and np.diff(np.flatnonzero(h)).max() <= 4      # evenly spread


def test_cli_default_stdin_and_files_agree(lines, tmp_path, capsys):
    """glm build --method glm (no tuning option) writes the model tuned on the split; from stdin too
    (copied to a temporary file, since it is read twice); --tune-split 0.25 holds out every 4th line."""
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    out, out_stdin, out_q = tmp_path / "a.glmb", tmp_path / "b.glmb", tmp_path / "q.glmb"
    assert main(["build", str(train), "--order", "3", "--method", "glm", "--discount-fallback", "-o",
                 str(out), "-q"]) == 0
    a = glm.load(out)
    assert a.meta["tune_split"] == 0.1 and a.weights
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with open(train, "rb") as f:
        subprocess.run([sys.executable, "-m", "glm", "build", "-", "--order", "3", "--method", "glm",
                        "--discount-fallback", "-o", str(out_stdin), "-q", "--tmpdir", str(tmp_path)],
                       stdin=f, check=True, env=env)
    b = glm.load(out_stdin)
    assert b.weights == a.weights and b.tables.discounts == a.tables.discounts
    assert sorted(os.listdir(tmp_path)) == ["a.glmb", "b.glmb", "train.txt"]     # (no copy left behind)
    assert main(["build", str(train), "--order", "3", "--method", "glm", "--discount-fallback",
                 "--tune-split", "0.25", "-o", str(out_q), "-q"]) == 0
    q = glm.load(out_q)
    assert q.meta["heldout_lines"] == len(lines) // 4 and "every 4th line" in q.meta["tuned_on"]
    assert main(["info", str(out_q), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_default_build_from_a_pipe(lines, tmp_path):
    """A training path that is a pipe (a FIFO, bash's <(...)) is read twice as stdin is: copied to a
    temporary file first (a FIFO was opened a second time and hung; bash's <(...) gave 'no text'); the
    copy is removed."""
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with fifo_feeding(tmp_path / "pipe", gzip.compress(train.read_bytes())):
        piped = glm.train(str(tmp_path / "pipe"), 3, method="glm", discount_fallback=True, tmpdir=str(scratch))
    plain = glm.train(str(train), 3, method="glm", discount_fallback=True)
    assert piped.weights == plain.weights and piped.tables.discounts == plain.tables.discounts
    assert os.listdir(scratch) == []


def test_errors(lines, tmp_path, capsys):
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines[:300]) + "\n")
    with pytest.raises(ValueError, match="not both"):
        glm.train([train], 3, method="glm", tune=[train], tune_split=0.1)
    with pytest.raises(ValueError, match=r"tune_split must be in \[0, 0.5\]"):
        glm.train([train], 3, method="glm", tune_split=0.7)
    with pytest.raises(ValueError, match="not tuned"):
        glm.train([train], 3, method="glmtk2014", tune_split=0.1)
    with pytest.raises(ValueError, match="untuned"):
        glm.train([train], 3, method="glm", padding="paper", tune_split=0.1)
    with pytest.raises(glm.CorpusError, match="holds out no line of the 5 lines"):
        glm.train(lines=lines[:5], order=2, method="glm", discount_fallback=True)
    # an explicit held-out file wins over the default split (no error, no split)
    m = glm.train([train], 3, method="glm", tune=[train], discount_fallback=True)
    assert "tune_split" not in m.meta and m.meta["tuned_on"] == [str(train)]
    assert main(["build", str(train), "-n", "3", "--method", "glm", "--tune", str(train), "--tune-split",
                 "0.1", "-o", str(tmp_path / "x.glmb")]) == 1
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build", str(train), "-n", "3", "--method", "glm", "--tune-split", "x", "-o", str(tmp_path / "x.glmb")])
    assert "fraction of the training lines" in capsys.readouterr().err
    # bad text: the error names the exact line, although the first pass reads 9 lines in 10
    bad = tmp_path / "bad.txt"
    bad.write_bytes(("\n".join(lines[:40]) + "\n").encode() + b"bad \xff byte\n" + b"a b\n" * 20)
    with pytest.raises(glm.CorpusError, match=f"{bad}:41: invalid UTF-8"):
        glm.train([bad], 3, method="glm", discount_fallback=True)
    assert not (tmp_path / "x.glmb").exists()


def test_discounts_undefined_only_without_the_held_out_part_say_so(tmp_path):
    """8,000 Shakespeare lines give defined order-5 discounts in every pattern, their 90% does not:
    the error says that it is the tuning model and how to get the untuned one."""
    from glm.discount import DiscountError
    text = tmp_path / "train.txt"
    with gzip.open(Path(__file__).parent.parent / "data/shakespeare-train.txt.gz", "rt") as f:
        text.write_text("".join(line for _, line in zip(range(8000), f)))
    glm.train([text], 5, method="glm", tune_split=0)          # all the text: defined
    with pytest.raises(DiscountError, match=r"without every 10th line .*--tune-split 0"):
        glm.train([text], 5, method="glm")


def test_tuned_mkn_as_arpa_scores_as_kenlm(text, lines, tmp_path, capsys):
    """A tuned MKN written as ARPA (glm.backoff): the kenlm module loads it and gives every token the
    tuned model's log10 probability to float32 precision; glm reads it back the same; the untuned MKN
    scores otherwise (the discounts are the tuned ones)."""
    kenlm = pytest.importorskip("kenlm")
    test = text[1500:] + ["w1 never-seen w2 w3", ""]
    for order in (2, 4):
        tuned = glm.train(lines=lines, order=order, method="mkn", tune_split=0.1, discount_fallback=True)
        arpa = tmp_path / f"tuned{order}.arpa"
        tuned.save(arpa)
        k = kenlm.Model(str(arpa))
        back = glm.load(arpa)
        untuned = glm.train(lines=lines, order=order, discount_fallback=True)
        assert back.counts == untuned.counts == tuned.counts
        far = 0.0
        for line in test:
            want = np.array([s[0] for s in tuned.full_scores(line)])
            got = np.array([s[0] for s in k.full_scores(line)])
            np.testing.assert_allclose(got, want, rtol=0, atol=4e-7 * max(1.0, np.abs(want).max()))
            np.testing.assert_allclose([s[0] for s in back.full_scores(line)], want, rtol=0,
                                       atol=4e-7 * max(1.0, np.abs(want).max()))
            far = max(far, np.abs(np.array([s[0] for s in untuned.full_scores(line)]) - want).max())
        assert far > 1e-3
    # the command line: built as ARPA directly; a GLM is refused as ARPA, naming the formats
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cli.arpa"
    assert main(["build", str(train), "-n", "4", "--tune-split", "0.1", "--discount-fallback", "-o", str(out),
                 "-q"]) == 0
    assert out.read_bytes() == (tmp_path / "tuned4.arpa").read_bytes()
    glmb = tmp_path / "g.glmb"
    assert main(["build", str(train), "-n", "3", "--method", "glm", "--tune-split", "0", "--discount-fallback",
                 "-o", str(glmb), "-q"]) == 0
    assert main(["convert", str(glmb), str(tmp_path / "g.arpa"), "-q"]) == 1
    assert "only MKN" in capsys.readouterr().err and not (tmp_path / "g.arpa").exists()


def test_same_model_under_a_memory_budget_and_one_thread(lines, tmp_path):
    """The split pass spills and parks under --memory like the build; the fit does not depend on it, nor
    on the number of threads (the held-out text is scored in one part per thread)."""
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    want = glm.train([train], ORDER, method="glm", discount_fallback=True)
    for kw in (dict(memory="50M", tmpdir=tmp_path), dict(workers=1)):
        got = glm.train([train], ORDER, method="glm", discount_fallback=True, **kw)
        assert got.weights == want.weights and got.tables.discounts == want.tables.discounts
        np.testing.assert_array_equal(got.score_many(lines[:100]), want.score_many(lines[:100]))


def test_tuning_is_on_at_most_tune_tokens_held_out_tokens(lines, monkeypatch):
    import glm.split
    from glm.split import tuning_lines
    held = [b"a b c", b"d", b"e f", b"g h i j", b"k"]                 # 4 + 2 + 3 + 5 + 2 = 16 tokens
    assert tuning_lines(held, 16) == held
    assert tuning_lines(held, 15) == [b"a b c", b"e f", b"k"]         # k = 2
    assert tuning_lines(held, 5) == [b"a b c", b"k"]                  # k = 4
    full = glm.train(lines=lines, order=ORDER, method="glm", discount_fallback=True)
    assert full.meta["tuning_lines"] == full.meta["heldout_lines"] == len(lines) // 10
    monkeypatch.setattr(glm.split, "TUNE_TOKENS", 200)
    kept = [x for i, x in enumerate(lines) if i % 10 == 9]
    tokens = sum(len(x.split()) + 1 for x in kept)
    capped = glm.train(lines=lines, order=ORDER, method="glm", discount_fallback=True)
    assert capped.meta["tuning_lines"] == len(kept[::-(-tokens // 200)]) < len(kept)
    assert capped.meta["heldout_cross_entropy"] != full.meta["heldout_cross_entropy"]
