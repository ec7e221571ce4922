"""glm and the pure-Python reference against lmplz's own output, stored in tests/data/lmplz/.

These tests need no KenLM: the ARPA files, the statistics and discounts lmplz printed, its refusals and
the input texts were made once by KenLM's lmplz (tests/data/lmplz/README.md lists the commands and the
KenLM commit; tests/tools/make_lmplz_data.py made them).  For every stored case, glm and the reference
(tests/reference_mkn.py) must give

* exactly lmplz's n-grams and ARPA header counts, and the vocabulary in lmplz's id order;
* every log10 probability and backoff within a few float32 steps (helpers.float32_unit: glm within 2,
  which is <= 1e-6 relative on these probabilities; the float64 reference within 12, since lmplz's
  float32 sums drift up to ~2e-6 from the exact values);
* discounts bit for bit: lmplz's float32 formula applied to the reference's count-of-counts gives the
  6-digit values lmplz printed, and glm's discounts are exactly those float32 numbers;
* a DiscountError naming the order where lmplz refused to run without --discount_fallback.

Two groups of cases are compared through a documented difference instead (see their tests):
``eos-pruned`` with t1 >= the number of sentences (lmplz marks ``</s>`` pruned, glm keeps it) and
``unk-renamed`` (a literal ``<unk>``, which lmplz refuses; lmplz read it renamed to an ordinary word).

``test_stored_files_are_what_lmplz_makes`` reruns lmplz where it is on PATH.
"""
from __future__ import annotations

import functools
import gzip
import json
import math
import random
import re
import shutil
import sys

import numpy as np
import pytest

import glm
from helpers import TESTS_DIR, assert_ngrams_float32, parse_arpa_text
from reference_mkn import build_mkn, read_text

DATA = TESTS_DIR / "data" / "lmplz"
sys.path.insert(0, str(TESTS_DIR / "tools"))
from make_lmplz_data import unpack  # noqa: E402

GLM_UNITS = 2           # glm's values: within 2 float32 units of lmplz's (measured: 1.4)
REFERENCE_UNITS = 12    # the float64 reference's (measured: 10.5, lmplz's float32 error)
DEFAULT_FALLBACK = (0.5, 1.0, 1.5)


@functools.lru_cache(maxsize=None)
def stored():
    manifest = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))
    return manifest, unpack((DATA / "arpa.tar.xz").read_bytes())


CASES = stored()[0]["cases"]


def case_id(case) -> str:
    return case["arpa"][:-len(".arpa")]


@functools.lru_cache(maxsize=None)
def text_of(path: str) -> str:
    return gzip.decompress((DATA / path).read_bytes()).decode("utf-8")


def input_text(case) -> str:
    """The text glm and the reference read: lmplz's, with the renamed word back to <unk>."""
    text = text_of(case["text"])
    if case.get("unk_word"):
        text = re.sub(rf"(?<!\S){case['unk_word']}(?!\S)", "<unk>", text)
    return text


@functools.lru_cache(maxsize=2)
def lmplz_arpa(name: str):
    return parse_arpa_text(stored()[1][name].decode("utf-8"))


def options(case, who: str) -> dict:
    """glm.train / build_mkn keywords of a case (as lmplz ran it: with its fallback, if any)."""
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in case["glm_options"].items()
          if k != "verbose_header"}
    fb = case["fallback"]
    kw.pop("discount_fallback", None)
    if fb is not None:
        kw["discount_fallback"] = (fb if who == "glm" else DEFAULT_FALLBACK) if fb is True else tuple(fb)
    return kw


@functools.lru_cache(maxsize=2)
def reference(name: str, **kw):
    case = next(c for c in CASES if c["arpa"] == name)
    return build_mkn(read_text(input_text(case)), case["order"], **kw)


_COUNT_OF_COUNTS = {}


def count_of_counts(case) -> list:
    """The reference's count-of-counts of a case's text and order (the options do not change them):
    those of the reference model of the case when it was built, else of a plain one."""
    key = case["text"], case["order"], case.get("unk_word")
    if key not in _COUNT_OF_COUNTS:
        ref = build_mkn(read_text(input_text(case)), case["order"], discount_fallback=DEFAULT_FALLBACK)
        _COUNT_OF_COUNTS[key] = ref.count_of_counts
    return _COUNT_OF_COUNTS[key]


def reference_of(case, **extra):
    ref = reference(case["arpa"], **options(case, "reference"), **extra)
    _COUNT_OF_COUNTS[case["text"], case["order"], case.get("unk_word")] = ref.count_of_counts
    return ref


# The reference is compared with every stored case but those of Brown's less common option sets
# (all are compared where lmplz is on PATH, test_reference_mkn.py): the pure-Python reference takes
# about a second per Brown model, glm a few milliseconds.
MAIN_SETS = ("plain", "prune011")


def reference_compared(case) -> bool:
    return not ("/brown" in case["text"] and case["options"] not in MAIN_SETS)


def eos_marked(case) -> bool:
    """lmplz's </s> bug applies: order > 1 and a unigram threshold >= the number of sentences."""
    prune = case["glm_options"].get("prune") or [0]
    return case["order"] > 1 and prune[0] >= input_text(case).count("\n")


# --------------------------------------------------------------------------------------- discounts
def lmplz_discounts(t: dict):
    """lmplz's float32 discounts from the count-of-counts {1: t1, .., 4: t4} (adjust_counts.cc:
    y = t1 / (t1 + 2 t2), D(k) = k - (k+1) y t_{k+1} / t_k, each operation in float32), or None
    where lmplz falls back (a t_k of 1..3 is 0 or a D(k) is outside [0, k])."""
    f = np.float32
    if not (t[1] and t[2] and t[3]):
        return None
    y = f(t[1]) / f(t[1] + 2.0 * t[2])
    d = [f(k) - f(k + 1) * y * f(t[k + 1]) / f(t[k]) for k in (1, 2, 3)]
    if any(not 0.0 <= d[k - 1] <= k for k in (1, 2, 3)):
        return None
    return d


def printed(x) -> str:
    """A float as lmplz's std::cerr prints it (6 significant digits, %g)."""
    return "%g" % float(np.float32(x))


def expected_discounts(case) -> list:
    """Per order: the float32 discounts lmplz used, from the reference's count-of-counts or the
    fallback; checked against what lmplz printed."""
    out = []
    fb = case["fallback"]
    fallback = [np.float32(v) for v in (DEFAULT_FALLBACK if fb is True else fb or ())]
    fallback += fallback[-1:] * (3 - len(fallback))
    for n, coc in enumerate(count_of_counts(case), 1):
        d = lmplz_discounts(coc)
        assert (d is None) == (n in case["fallback_orders"]), (n, coc, case["fallback_orders"])
        out.append(fallback if d is None else d)
    assert [[printed(x) for x in d] for d in out] == [s["discounts"] for s in case["statistics"]]
    return out


def refused_order(case) -> int:
    return int(re.search(r"(?:for |ERROR: )(\d+)-gram", case["refused"]["error"]).group(1))


# ---------------------------------------------------------------------------------- the comparisons
def glm_model(case):
    lines = input_text(case).split("\n")[:-1]
    kw = options(case, "glm")
    if "refused" in case:
        no_fallback = dict(kw)
        no_fallback.pop("discount_fallback")
        with pytest.raises(glm.DiscountError, match=rf"\border {refused_order(case)}\b"):
            glm.train(lines=lines, order=case["order"], **no_fallback)
    return glm.train(lines=lines, order=case["order"], **kw)


def glm_arpa(model, tmp_path):
    model.save(tmp_path / "glm.arpa")
    return parse_arpa_text((tmp_path / "glm.arpa").read_text(encoding="utf-8"))


def check_glm(case, tmp_path, want, discounts, header):
    """glm's model: vocabulary, header counts, values and discounts against ``want`` (lmplz's ARPA or
    what it implies), and lmplz's own file read by glm answers like glm's model."""
    model = glm_model(case)
    assert list(model.vocab) == [g[0] for g in want.ngrams[0]], "vocabulary not in lmplz's id order"
    assert list(model.counts) == header
    for n, (got, d) in enumerate(zip(model.discounts, discounts), 1):
        assert [float(x) for x in got] == [float(x) for x in d], \
            f"order {n}: glm's discounts {got} are not lmplz's float32 {[float(x) for x in d]}"
    assert_ngrams_float32(glm_arpa(model, tmp_path).ngrams, want.ngrams, GLM_UNITS, "glm vs lmplz")
    return model


def check_lmplz_file_loads(case, model, tmp_path):
    """glm reads lmplz's file (--verbose_header too) and answers as its own model."""
    path = tmp_path / case["arpa"]
    path.write_bytes(stored()[1][case["arpa"]])
    theirs = glm.load(path)
    assert list(theirs.vocab) == list(model.vocab) and list(theirs.counts) == list(model.counts)
    rng = random.Random(0)
    grams = [g for entries in lmplz_arpa(case["arpa"]).ngrams for g in entries]
    for g in rng.sample(grams, min(len(grams), 300)):
        assert theirs.logprob(g[-1], g[:-1]) == model.logprob(g[-1], g[:-1]) or math.isclose(
            theirs.logprob(g[-1], g[:-1]), model.logprob(g[-1], g[:-1]), abs_tol=2e-6), g
    lines = input_text(case).split("\n")[:50] + ["never seen words", ""]
    np.testing.assert_allclose(theirs.score_many(lines), model.score_many(lines), rtol=0, atol=2e-5)


PLAIN = [c for c in CASES if not c.get("unk_word")]
RUNS = [(c, who) for c in PLAIN for who in ("reference", "glm") if who == "glm" or reference_compared(c)]


@pytest.mark.parametrize("case, who", RUNS, ids=[f"{case_id(c)}-{who}" for c, who in RUNS])
def test_matches_stored_lmplz(case, who, tmp_path):
    arpa = lmplz_arpa(case["arpa"])
    header = arpa.counts
    assert header == [s["kept"] for s in case["statistics"]]
    if "refused" in case and who == "reference":
        from reference_mkn import DiscountError
        kw = options(case, who)
        kw.pop("discount_fallback")
        with pytest.raises(DiscountError) as info:
            build_mkn(read_text(input_text(case)), case["order"], **kw)
        assert info.value.order == refused_order(case)
    if who == "reference":
        ref = reference_of(case)
    discounts = expected_discounts(case)
    if who == "reference":
        assert ref.unigram_vocab == [g[0] for g in arpa.ngrams[0]]
        assert list(ref.arpa_header_counts) == header
        assert ref.discount_fallback_used == [n in case["fallback_orders"]
                                              for n in range(1, case["order"] + 1)]
        for got, want in zip(ref.discounts, discounts):    # float64 vs float32 arithmetic: D(3+) =
            # 3 - 4 y t4 / t3 loses digits in float32, so lmplz's is a few float32 steps of 3 away
            np.testing.assert_allclose(got, np.array(want, dtype=np.float64), rtol=0, atol=1e-6)
        assert_ngrams_float32(ref.ngrams, arpa.ngrams, REFERENCE_UNITS, "reference vs lmplz")
    elif eos_marked(case):
        check_glm_eos_pruned(case, tmp_path, arpa, discounts)
    else:
        model = check_glm(case, tmp_path, arpa, discounts, header)
        check_lmplz_file_loads(case, model, tmp_path)


# ------------------------------------------------------------------ </s> pruned (lmplz) or kept (glm)
def distribution_sums(model, contexts) -> list[float]:
    words = [w for w in model.vocab if w != "<s>"]
    return [math.fsum(10.0 ** model.logprob(w, ctx) for w in words) for ctx in contexts]


def check_glm_eos_pruned(case, tmp_path, arpa, discounts):
    """A unigram threshold t1 >= the number of sentences (order > 1).

    lmplz marks the unigram </s> pruned but writes it: its adjusted count goes into gamma(), it leaves
    the uniform distribution, the header's "ngram 1=" omits it and it is written with log10 p = 0, so
    its model does not sum to 1.  glm keeps </s> like <s> and <unk>: its model is the reference's with
    prune_eos=False, has the same n-grams as lmplz's file, one more unigram in the header, and sums
    to 1."""
    ref = reference_of(case, prune_eos=False)
    assert [g[0] for g in arpa.ngrams[0]] == ref.unigram_vocab
    assert list(ref.arpa_header_counts) == [arpa.counts[0] + 1] + arpa.counts[1:]
    model = check_glm(case, tmp_path, arpa_of(ref), discounts, list(ref.arpa_header_counts))
    # the n-gram sets are lmplz's; </s> differs: 0 in lmplz's file, a probability < 1 in glm's
    ours = glm_arpa(model, tmp_path)
    assert [set(o) for o in ours.ngrams] == [set(a) for a in arpa.ngrams]
    assert arpa.ngrams[0][("</s>",)][0] == 0.0 and ours.ngrams[0][("</s>",)][0] < -0.01
    contexts = [(), ("<s>",)] + [g for g in arpa.ngrams[0] if g != ("</s>",)][:6]
    assert all(abs(s - 1.0) < 1e-5 for s in distribution_sums(model, contexts))
    # lmplz's unigram distribution sums to more than 1 (p(</s>) = 1).  (glm.load refuses its file: the
    # header announces one unigram less than the section holds.)
    assert math.fsum(10.0 ** lp for g, (lp, _) in arpa.ngrams[0].items() if g != ("<s>",)) > 1.5


def arpa_of(ref):
    """The reference's model as an Arpa (values in float64)."""
    from helpers import Arpa
    return Arpa(list(ref.arpa_header_counts),
                [{g: ref.ngrams[n][g] for g in sorted(ref.ngrams[n], key=order_key(ref))}
                 for n in range(ref.order)])


def order_key(ref):
    ids = {w: i for i, w in enumerate(ref.vocab)}
    return lambda g: [ids[w] for w in reversed(g)]


def test_eos_pruned_cases_are_stored():
    """The lmplz bug is exercised by stored cases (at orders 2 and 3) and some stay below it."""
    eos = [c for c in CASES if c["text"].endswith("eos-pruned.txt.gz")]
    assert {c["order"] for c in eos if eos_marked(c)} == {2, 3}
    assert any(not eos_marked(c) and c["order"] > 1 for c in eos)
    for c in eos:
        if eos_marked(c):
            assert lmplz_arpa(c["arpa"]).ngrams[0][("</s>",)][0] == 0.0


# ------------------------------------------------------------------------- a literal <unk> (renamed)
UNK_CASES = [c for c in CASES if c.get("unk_word")]


def merged_unk(case):
    """What lmplz's model of the text with <unk> renamed to an ordinary word X implies for the text
    with <unk>, without unigram interpolation.

    Counts, discounts and every n-gram are the same with X read as <unk>.  Only the unigram
    distribution differs: lmplz gives its own (uncounted) <unk> the left-over mass gamma(), glm gives
    it to the counted <unk>, so p(<unk>) = p_L(X) + p_L(<unk>).  Interpolation is linear in the lower
    order, p(w | h) = u(h w) + gamma(h) p(w | h'), so every n-gram ending in <unk> gains
    delta(h <unk>) = gamma(h) delta(h' <unk>), with gamma(h) = 10^backoff(h) from lmplz's file and
    delta(<unk>) = p_L(<unk>).  Backoffs do not change."""
    from helpers import Arpa
    arpa = lmplz_arpa(case["arpa"])
    x = case["unk_word"]
    (lx, bx), (lu, bu) = arpa.ngrams[0][(x,)], arpa.ngrams[0][("<unk>",)]
    assert bu in (0.0, None)
    delta = {(x,): 10.0 ** lu}
    ngrams = []
    for n, entries in enumerate(arpa.ngrams):
        out = {}
        for g, (lp, bo) in entries.items():
            if g == ("<unk>",):
                continue
            if g[-1] == x and n > 0:
                delta[g] = 10.0 ** (arpa.ngrams[n - 1][g[:-1]][1] or 0.0) * delta[g[1:]]
            if g[-1] == x:
                lp = math.log10(10.0 ** lp + delta[g])
            out[tuple("<unk>" if w == x else w for w in g)] = (lp, bo)
        ngrams.append(out)
    return Arpa([arpa.counts[0] - 1] + arpa.counts[1:], ngrams)


@pytest.mark.parametrize("case, who", [(c, who) for c in UNK_CASES for who in ("reference", "glm")],
                         ids=[f"{case_id(c)}-{who}" for c in UNK_CASES for who in ("reference", "glm")])
def test_literal_unk_without_unigram_interpolation(case, who, tmp_path):
    """A literal <unk> in the text with interpolate_unigrams=False, with and without pruning: <unk> is
    the unknown class (id 0) and a counted word at once, so p(<unk>) = its discounted count plus all
    of gamma().  Checked against lmplz's model of the same text with <unk> renamed (merged_unk),
    and glm's model sums to 1."""
    assert "<unk>" in input_text(case) and case["glm_options"]["interpolate_unigrams"] is False
    want = merged_unk(case)
    if who == "reference":
        ref = reference_of(case)
    discounts = expected_discounts(case)
    if who == "reference":
        assert list(ref.arpa_header_counts) == want.counts
        assert_ngrams_float32(ref.ngrams, want.ngrams, REFERENCE_UNITS, "reference vs lmplz renamed")
        return
    # glm's vocabulary: lmplz's without the renamed word (its id order otherwise)
    vocab = ["<unk>"] + [g[0] for g in want.ngrams[0] if g != ("<unk>",)]
    want.ngrams[0] = {(w,): want.ngrams[0][(w,)] for w in vocab}
    model = check_glm(case, tmp_path, want, discounts, want.counts)
    contexts = [(), ("<s>",), ("<unk>",), ("<unk>", "<unk>"), ("w1", "<unk>"), ("never-seen",)]
    assert all(abs(s - 1.0) < 1e-5 for s in distribution_sums(model, contexts)), \
        distribution_sums(model, contexts)


def test_literal_unk_is_refused_by_lmplz():
    """Why the <unk> cases are renamed: lmplz refuses a literal <unk> (glm treats it as its unknown
    class, a counted word)."""
    refusal = stored()[0]["literal_unk"]
    assert "<unk>" in refusal["error"] and "not allowed" in refusal["error"]
    assert {c["glm_options"].get("prune", [0])[-1] > 0 for c in UNK_CASES} == {False, True}


# --------------------------------------------------------------------------------- the stored files
def test_stored_cases_cover_the_option_sets():
    """Every option set, both discount paths, refusals and the verbose header are stored."""
    flags = " ".join(c["command"] for c in CASES)
    for flag in ("--prune", "--interpolate_unigrams 0", "--vocab_pad", "--discount_fallback 0.3 0.9 1.4",
                 "--verbose_header"):
        assert flag in flags
    assert any("refused" in c and "out of range" in c["refused"]["error"] for c in CASES)
    assert any("refused" in c and "Could not calculate" in c["refused"]["error"] for c in CASES)
    assert any(c["order"] == 5 and c["text"].endswith("brown.txt.gz") for c in CASES)
    verbose = next(c for c in CASES if "--verbose_header" in c["command"])
    assert stored()[1][verbose["arpa"]].startswith(b"# Input file: stdin\n")
    assert stored()[0]["kenlm_commit"] in (DATA / "README.md").read_text()


def test_stored_files_are_what_lmplz_makes():
    """Where lmplz is on PATH: rerunning it on the stored texts gives the stored files byte for byte."""
    lmplz = shutil.which("lmplz")
    if lmplz is None:
        pytest.skip("lmplz (KenLM) is not on PATH")
    from make_lmplz_data import make, read_stored_texts
    manifest, arpas = make(lmplz, read_stored_texts(DATA))
    assert manifest == stored()[0], "cases.json differs from what lmplz prints now"
    assert arpas.keys() == stored()[1].keys()
    bad = [name for name in arpas if arpas[name] != stored()[1][name]]
    assert not bad, f"{len(bad)} ARPA files differ from what lmplz writes now, e.g. {bad[:5]}"
