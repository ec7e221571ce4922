"""The ``.glm`` text format of Generalized Language Models (ARPA-like; documented in docs/formats.md).

    \\glm\\
    order=3
    method=glm
    weights=uniform              (or PATTERN=W ...: W the weight of the farthest-word child, or
                                  W1,W2,... the weight of every child, farthest-word child first)
    prune=0 1 1                  (optional: the count cutoffs the model was pruned with)
    pattern 1=9 D=0.5 1 1.5      (one line per pattern: number of n-grams, discounts)
    pattern 11=10 D=...
    ...

    \\1:\\                          unigram probabilities:  p <TAB> word
    \\11:\\                         alpha of each n-gram:   alpha <TAB> w1 w2
    \\11 gamma:\\                   gamma of each history:  gamma <TAB> w1
    \\101:\\                        gapped patterns write _ at skipped positions: alpha <TAB> a _ c
    ...
    \\end\\

Values are linear (not log10): alphas are float32 (shortest representation), unigram probabilities and
gammas float64 (17 significant digits), so a model read back gives the same probabilities.  A history is listed under the pattern it is the history of, written as the
n-gram of its own pattern; histories never followed by a word are not listed.

Words are escaped (header line ``escape=backslash``): a word that is ``_`` or starts with a backslash is
written with one more backslash in front (``\\_``, ``\\\\x``), so that ``_`` always marks a gap and every
word the tokenizer makes (no spaces, TABs, CRs, LFs or NULs) reads back as itself.  Files without the
line (written before it) are read without unescaping.

A model of the 2014 toolkit (method glmtk2014 or glmtk2014-mkn, glm.paper.glmtk2014) also has the tops of the
shorter lengths:

    compat extra=E floor=F       (header: the extra term of the average of children, the floor)
    top 11 D=...                 (header: one line per top below the order, its discounts)
    \\top 1:\\                      the top unigram probabilities, every word:  p <TAB> word
    \\top 11:\\                     alpha of every n-gram of the pattern:    alpha <TAB> w1 w2
    \\top 11 gamma:\\               gamma of each history:                    gamma <TAB> w1
"""
from __future__ import annotations

import numpy as np

from ..patterns import history, name, parse, patterns, span
from .files import ModelFormatError, Parts, atomic_output
from .arpa import _open_out

ESCAPE = "backslash"
_F32 = float(np.finfo(np.float32).max)
_F64 = float(np.finfo(np.float64).max)


def escape(word: str) -> str:
    """A word as the text format writes it: '_' and words starting with a backslash get one more."""
    return "\\" + word if word == "_" or word.startswith("\\") else word


def unescape(token: str) -> str:
    return token[1:] if token.startswith("\\") else token


def _rows(tables: dict, mask: int) -> np.ndarray:
    """Word ids of every n-gram of pattern ``mask``: column j = j-th kept word from the predicted one."""
    if mask == 1:
        return np.arange(len(tables[1]["prob"]), dtype=np.uint32)[:, None]
    par = mask & ~(1 << (span(mask) - 1))
    t = tables[mask]
    parent_of = np.repeat(np.arange(len(t["starts"]) - 1), np.diff(t["starts"].astype(np.int64)))
    return np.column_stack([_rows(tables, par)[parent_of], t["word"]])


def _text(words: np.ndarray, rows: np.ndarray, mask: int) -> list[str]:
    """Reading-order text of n-grams of a pattern: farthest word first, '_' at gaps."""
    offsets = [d for d in range(span(mask)) if mask >> d & 1]
    cols = []
    for d in range(span(mask) - 1, -1, -1):
        cols.append(words[rows[:, offsets.index(d)]] if d in offsets else np.full(len(rows), "_", dtype=object))
    return [" ".join(t) for t in zip(*cols)]


def format_weight(w, fmt=str) -> str:
    """A pattern's child weights as the text format writes them: the parent's, or all, comma-separated."""
    return fmt(w) if np.ndim(w) == 0 else ",".join(map(fmt, w))


def write_glm(model, path) -> None:
    tables = model.tables.tables
    words = np.array([escape(word) for word in model.vocab], dtype=object)
    masks = sorted(tables)
    with atomic_output(path) as tmp, _open_out(path, tmp) as f:
        w = lambda s: f.write(s.encode("utf-8"))      # noqa: E731
        w(f"\\glm\\\norder={model.order}\nmethod={model.method}\n")
        w("weights=" + (" ".join(f"{name(m)}={format_weight(v, repr)}" for m, v in sorted(model.weights.items()))
                        or "uniform") + "\n")
        w(f"escape={ESCAPE}\n")
        if any(model.meta.get("prune") or ()):
            w("prune=" + " ".join(str(int(t)) for t in model.meta["prune"]) + "\n")
        if model.meta.get("quantized"):         # values from a quantized file: scores capped at 0 (glm.quantize)
            w(f"quantized={int(model.meta['quantized'])}\n")
        for m in masks:
            d = model.tables.discounts.get(m)
            w(f"pattern {name(m)}={model.tables.sizes[m]}" + (f" D={d[0]!r} {d[1]!r} {d[2]!r}" if d else "") + "\n")
        compat = model.tables.compat
        tops = sorted(compat.top.items())[1:] if compat is not None else []
        if compat is not None:
            w(f"compat extra={compat.extra!r} floor={compat.floor!r}\n")
            for m, _ in tops:
                w(f"top {name(m)} D=" + " ".join(map(repr, compat.discounts[m])) + "\n")
        w("\n\\1:\\\n")
        w("".join(f"{p!r}\t{t}\n" for p, t in zip(tables[1]["prob"].tolist(), words)))
        for m in masks[1:]:
            _terms(w, name(m), tables, words, m, tables[m])
        if compat is not None:
            w("\n\\top 1:\\\n")
            w("".join(f"{p!r}\t{t}\n" for p, t in zip(np.asarray(compat.top[1]["prob"]).tolist(), words)))
            for m, t in tops:
                _terms(w, f"top {name(m)}", tables, words, m, t)
        w("\n\\end\\\n")


def _terms(w, section: str, tables: dict, words: np.ndarray, m: int, t: dict) -> None:
    """The alphas of pattern m's n-grams and the gammas of its histories (t: alpha, gamma)."""
    w(f"\n\\{section}:\\\n")
    w("".join(f"{a}\t{x}\n" for a, x in zip(t["alpha"], _text(words, _rows(tables, m), m))))
    hm = history(m)[1]
    gamma = np.asarray(t["gamma"])
    seen = np.flatnonzero(~np.isnan(gamma))
    w(f"\n\\{section} gamma:\\\n")
    w("".join(f"{g!r}\t{x}\n" for g, x in zip(gamma[seen].tolist(), _text(words, _rows(tables, hm)[seen], hm))))


def read_glm(stream, path: str):
    """Read a .glm file (``stream`` yields bytes lines): every value, n-gram and header field is checked,
    and the first error names the file and line."""
    from ..generalized import Tables, check, combination
    from ..vocab import Vocabulary

    no = 0

    def err(msg):
        return ModelFormatError(f"{path}:{no}: {msg}")

    head, sections, current = {}, {}, None
    sizes, discounts, weights, weights_line = {}, {}, {}, 0
    compat, top_discounts = None, {}
    bounds = None                 # the values allowed in the current section: (low, high)
    for no, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise err("not UTF-8 text") from None
        if no == 1:
            if line != "\\glm\\":
                raise err("not a .glm file (first line must be \\glm\\)")
            continue
        if not line:
            continue
        if line.startswith("\\") and line.endswith(":\\"):
            current = line[1:-2]
            if current in sections:
                raise err(f"section \\{current}:\\ appears twice")
            sections[current] = ([], [], no)
            # unigram probabilities in [0, 1]; gammas and alphas >= 0 (alphas as float32)
            bounds = ((0.0, 1.0) if current in ("1", "top 1") else (0.0, _F64) if current.endswith(" gamma")
                      else (0.0, _F32))
            continue
        if line == "\\end\\":
            break
        if current is None:
            if line.startswith("pattern "):
                try:
                    key, _, rest = line[8:].partition("=")
                    parts = rest.split()
                    m = parse(key)
                    sizes[m] = int(parts[0])
                    if len(parts) > 1:
                        discounts[m] = tuple(float(x) for x in [parts[1][2:]] + parts[2:4])
                except (ValueError, IndexError):
                    raise err(f"bad pattern line: {line!r}") from None
            elif line.startswith("compat "):
                try:
                    items = dict(item.split("=") for item in line[7:].split())
                    compat = dict(extra=float(items["extra"]), floor=float(items["floor"]))
                except (ValueError, KeyError):
                    raise err(f"bad compat line: {line!r}") from None
            elif line.startswith("top "):
                try:
                    key, d = line[4:].split(" D=")
                    top_discounts[parse(key)] = tuple(float(x) for x in d.split())
                except ValueError:
                    raise err(f"bad top line: {line!r}") from None
            elif line.startswith("weights="):
                weights_line = no
                try:
                    for item in line[8:].split() if line != "weights=uniform" else []:
                        k, _, v = item.partition("=")
                        weights[parse(k)] = float(v) if "," not in v else tuple(map(float, v.split(",")))
                except ValueError:
                    raise err(f"bad weights line: {line!r}") from None
            else:
                k, _, v = line.partition("=")
                head[k] = v
            continue
        value, tab, text = line.partition("\t")
        if not tab:
            raise err("expected a value, a tab and words")
        try:
            x = float(value)
        except ValueError:
            raise err(f"not a number: {value!r}") from None
        if not bounds[0] <= x <= bounds[1]:
            raise err(f"{value} is not a value of section \\{current}:\\ (a number in [{bounds[0]:g}, "
                      f"{bounds[1]:.4g}])")
        sections[current][0].append(x)
        sections[current][1].append(text)
    else:
        raise err("missing \\end\\")
    try:
        order, method = int(head["order"]), head["method"]
    except (KeyError, ValueError):
        raise ModelFormatError(f"{path}: header lacks order= or method=") from None
    try:
        check(order, method)
    except ValueError as exc:
        raise ModelFormatError(f"{path}: {exc}") from None
    if head.get("escape", ESCAPE) != ESCAPE:
        raise ModelFormatError(f"{path}: unknown escaping {head['escape']!r} (this glm reads {ESCAPE!r})")
    plain = "escape" not in head             # (files written before words were escaped)
    word_of = (lambda t: t) if plain else unescape
    if "1" not in sections:
        raise ModelFormatError(f"{path}: no \\1:\\ section")
    words = [word_of(t) for t in sections["1"][1]]
    if words[:3] != ["<unk>", "<s>", "</s>"]:
        raise ModelFormatError(f"{path}: the unigrams must start with <unk>, <s>, </s>")
    vocab = Vocabulary.from_words(words[3:])
    if len(vocab) != len(words):
        raise ModelFormatError(f"{path}: a unigram is listed twice")
    tables = {1: dict(prob=np.array(sections["1"][0], dtype=np.float64))}
    keys = {}                                  # mask -> sorted (parent << 32 | word) of its table

    def ids_of(mask, texts, first_line):
        offsets = [d for d in range(span(mask)) if mask >> d & 1]
        rows = np.zeros((len(texts), len(offsets)), dtype=np.uint32)
        for i, t in enumerate(texts):
            toks = t.split(" ")
            if len(toks) != span(mask) or any((tok == "_") != (not mask >> (span(mask) - 1 - j) & 1)
                                              for j, tok in enumerate(toks)):
                raise ModelFormatError(f"{path}:{first_line + 1 + i}: {t!r} does not fit pattern {name(mask)}")
            kept = []
            for tok in toks:
                if tok != "_":
                    word = word_of(tok)
                    kept.append(vocab.id(word))
                    if not kept[-1] and word != "<unk>":
                        raise ModelFormatError(f"{path}:{first_line + 1 + i}: {word!r} is not among the unigrams")
            rows[i] = kept[::-1]
        return rows

    def locate(mask, rows, first_line):
        """Node index in pattern ``mask`` of each row (word ids, nearest first)."""
        node = rows[:, 0].astype(np.int64)
        sub = 1
        for j, d in enumerate([d for d in range(1, span(mask)) if mask >> d & 1], 1):
            sub |= 1 << d
            if sub not in keys:
                raise ModelFormatError(f"{path}:{first_line}: no section \\{name(sub)}:\\ (the n-grams listed "
                                       f"here need those of pattern {name(sub)})")
            k = keys[sub]
            q = (node << 32) | rows[:, j]
            pos = np.searchsorted(k, q)
            bad = (pos >= len(k)) | (k[np.minimum(pos, len(k) - 1)] != q)
            if bad.any():
                raise ModelFormatError(f"{path}:{first_line + 1 + int(np.argmax(bad))}: n-gram of pattern "
                                       f"{name(sub)} missing (every n-gram needs its parent n-gram)")
            node = pos
        return node

    def count(m):
        """Number of n-grams of pattern m read so far."""
        return len(tables[m]["prob"]) if m == 1 else len(tables[m]["word"])

    def section(key):
        if key not in sections:
            raise ModelFormatError(f"{path}: no \\{key}:\\ section")
        return sections[key]

    def gammas(m, key):
        """The gammas listed in section 'key gamma' over the histories of pattern m (NaN elsewhere)."""
        hm = history(m)[1]
        gamma = np.full(count(hm), np.nan)
        gvalues, gtexts, gfirst = sections.get(f"{key} gamma", ([], [], 0))
        if gtexts:
            gamma[locate(hm, ids_of(hm, gtexts, gfirst), gfirst)] = gvalues
        return gamma

    for m in patterns(order)[1:]:
        if name(m) not in sections:
            continue
        values, texts, first = sections[name(m)]
        rows = ids_of(m, texts, first)
        parent_nodes = locate(m & ~(1 << (span(m) - 1)), rows[:, :-1], first) if rows.shape[1] > 1 else None
        key = (parent_nodes.astype(np.uint64) << np.uint64(32)) | rows[:, -1]
        order_ = np.argsort(key, kind="stable")
        key = key[order_]
        if len(key) > 1 and (np.diff(key.astype(np.int64)) == 0).any():
            raise ModelFormatError(f"{path}: an n-gram of pattern {name(m)} is listed twice")
        keys[m] = key.astype(np.int64)
        par = m & ~(1 << (span(m) - 1))
        starts = np.zeros(count(par) + 1, dtype=np.uint32)
        np.cumsum(np.bincount((key >> np.uint64(32)).astype(np.int64), minlength=count(par)), out=starts[1:])
        tables[m] = dict(word=rows[order_, -1].copy(), starts=starts,
                         alpha=np.asarray(values, dtype=np.float32)[order_], gamma=gammas(m, name(m)))
    if sizes != {m: count(m) for m in tables}:
        raise ModelFormatError(f"{path}: the pattern sizes in the header do not match the sections")
    if compat is not None:
        compat["discounts"] = top_discounts
        top1, top1_words, _ = section("top 1")
        compat["top"] = {1: dict(prob=np.array(top1, dtype=np.float64))}
        if [word_of(t) for t in top1_words] != words:
            raise ModelFormatError(f"{path}: the top unigrams must list the words of \\1:\\ in its order")
        for m in sorted(top_discounts):
            values, texts, first = section(f"top {name(m)}")
            if m not in tables or len(texts) != sizes[m]:
                raise ModelFormatError(f"{path}:{first}: the top of pattern {name(m)} must give every n-gram "
                                       f"of the pattern an alpha")
            alpha = np.zeros(len(texts), dtype=np.float32)
            alpha[locate(m, ids_of(m, texts, first), first)] = values
            compat["top"][m] = dict(alpha=alpha, gamma=gammas(m, f"top {name(m)}"))
    try:
        combination(order, method, weights)
    except ValueError as e:             # (weights that do not fit the patterns)
        raise ModelFormatError(f"{path}:{weights_line}: {e}") from None
    allowed = {"1"} | {f"{name(m)}{g}" for m in tables if m > 1 for g in ("", " gamma")}
    if compat is not None:
        allowed |= {"top 1"} | {f"top {name(m)}{g}" for m in compat["top"] if m > 1 for g in ("", " gamma")}
    for key in sections:
        if key not in allowed:
            raise ModelFormatError(f"{path}:{sections[key][2]}: section \\{key}:\\ is not part of an order-"
                                   f"{order} {method} model")
    from .binary import _glm_check_header          # (the rules of the binary header: one place)
    header = dict(order=order, method=method, sizes={str(m): n for m, n in sizes.items()},
                  weights={str(m): list(w) if isinstance(w, tuple) else w for m, w in weights.items()},
                  discounts={str(m): list(d) for m, d in discounts.items()})
    if compat is not None:
        header["compat"] = dict(extra=compat["extra"], floor=compat["floor"],
                                discounts={str(m): list(d) for m, d in top_discounts.items()})
    try:
        _glm_check_header(header)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from None
    if compat is not None:                      # a model of the 2014 toolkit
        from ..paper.compat import Compat
        compat = Compat(compat["extra"], compat["floor"], compat["top"], compat["discounts"])
    t = Tables(order, method, tables, discounts, sizes, compat=compat)
    meta = {"order": order, "method": method}
    if "prune" in head:
        try:
            meta["prune"] = [int(x) for x in head["prune"].split()]
        except ValueError:
            raise ModelFormatError(f"{path}: bad prune line: prune={head['prune']}") from None
    if "quantized" in head:
        if head["quantized"] not in ("8", "16"):
            raise ModelFormatError(f"{path}: bad quantized line: quantized={head['quantized']} (8 or 16)")
        meta["quantized"] = int(head["quantized"])
    return Parts("generalized", dict(vocab=vocab, tables=t, meta=meta,
                                     weights=weights))
