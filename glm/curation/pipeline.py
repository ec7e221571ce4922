"""File-to-file curation steps (what the ``glm`` subcommands run): per-document scores, SoftDedup weights,
resampling, pruning and buckets, each writing its outputs atomically and a JSON manifest.

Documents are written out as they were read (JSONL lines with every field, text lines or paragraphs),
in input order.  Steps that need every score before they can choose (pruning, buckets) read the input
twice, so they take files, not stdin.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile

import numpy as np

from ..formats import BINARY_SUFFIX, atomic_output, check_output, check_outputs, json_text
from ..formats.arpa import gzip_writer
from .documents import (DocFormat, document_chunks, get_field, input_paths, parse_chunk, read_documents,
                        rereadable_paths)
from .plot import check_matplotlib, plot_distribution
from .pruning import (bucket_of, check_cutoffs, percentile_cutoffs, prune_mask, read_cutoff_csv,
                      reference_split, write_cutoff_csv)
from .resample import draw_counts, read_weights, repeat_documents
from .scoring import PERPLEXITY_DEFINITION, DocScores, score_documents, score_rows
from .softdedup import softdedup, train_on_documents


# -- outputs --------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_output(path):
    """A binary stream to path, written atomically ('-' = stdout; a name ending in .gz is gzip'd)."""
    if os.fspath(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_output(path) as tmp:
        f = gzip_writer(tmp, 6) if os.fspath(path).endswith(".gz") else open(tmp, "wb")
        with f:
            yield f


def write_json(path, obj) -> None:
    with open_output(path) as f:
        f.write(json_text(obj, indent=2).encode("utf-8") + b"\n")


def _check(outputs: dict, inputs, *others) -> None:
    """Before any work: no output is an input (the documents, a model, weights...) or another output."""
    paths = input_paths(inputs) + [p for p in others if isinstance(p, (str, os.PathLike))]
    check_outputs(outputs, paths)


def _manifest(command: str, inputs, fmt: DocFormat, model=None, tokenizer=None, **extra) -> dict:
    from .. import __version__
    from ..ccnet import PERPLEXITY_DEFINITION as CCNET_DEFINITION
    out = dict(glm_version=__version__, command=command, inputs=[os.path.abspath(p) if p != "-" else p
                                                                for p in input_paths(inputs)],
               input_format=dataclasses.asdict(fmt))
    if model is not None:
        out["model"] = _model_info(model)
    out["perplexity_definition"] = PERPLEXITY_DEFINITION if tokenizer is None else CCNET_DEFINITION
    if tokenizer is not None:
        out["tokenizer"] = dict(name="ccnet", sp_model=os.path.abspath(tokenizer.path))
    out.update(extra)
    return out


def _model_info(model) -> dict:
    if isinstance(model, (str, os.PathLike)):
        st = os.stat(model)
        return dict(path=os.path.abspath(model), bytes=st.st_size, mtime=int(st.st_mtime))
    return dict(order=model.order, ngrams=model.counts, meta=model.meta)


def _json_row(**row) -> str:
    return json_text(row, ensure_ascii=False) + "\n"


# -- glm score --per-doc ---------------------------------------------------------------------------
def score_to_file(model, inputs, output="-", fmt: DocFormat = DocFormat(), tsv: bool = False,
                  manifest="auto", workers=None, quiet: bool = True, plot=None, tokenizer=None) -> dict:
    """Write one row per document (id, tokens, oovs, log10_prob, perplexity) as JSONL or TSV (with the
    perplexity definition as a '#' line).

    Parameters
    ----------
    model : glm.Model or path
        The model, or the path of a model file (ARPA, .glm or binary).
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    output : path
        Where the rows go (``'-'``: stdout).
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    tsv : bool
        TSV rows instead of JSONL.
    manifest : path, 'auto' or None
        Where the manifest goes; 'auto': next to a JSONL output file (OUTPUT.manifest.json).
    workers : int, optional
        Scoring processes (default: the cores this process may use, ``$GLM_THREADS``); 1 scores in
        this process.
    quiet : bool
        No progress bar.
    plot : path, optional
        Also draw the histogram of the values with the thresholds (needs matplotlib).
    tokenizer : callable, optional
        Text -> tokenized text before scoring (``glm.ccnet.CCNetTokenizer``: CCNet's perplexities).

    Returns
    -------
    dict
        The corpus totals (documents, tokens, OOVs, perplexity).

    Raises
    ------
    ValueError
        An output that is an input or the model.
    CorpusError
        A missing input, bad text or JSON.
    """
    from ..ccnet import PERPLEXITY_DEFINITION as CCNET_DEFINITION
    if manifest == "auto":
        manifest = None if tsv or output == "-" else f"{output}.manifest.json"
    _check({"--output": output, "--manifest": manifest, "--plot": plot}, inputs, model)
    if plot:
        check_matplotlib()
    total = dict(documents=0, tokens=0, oovs=0, log10_prob=0.0, skipped=0)
    ppl_parts = []
    with open_output(output) as out:
        if tsv:
            definition = PERPLEXITY_DEFINITION if tokenizer is None else CCNET_DEFINITION
            out.write(f"# {definition}\nid\ttokens\toovs\tlog10_prob\tperplexity\n".encode())
        for rows, res in score_rows(model, inputs, fmt, tsv, workers, quiet, tokenizer):
            out.write(rows)
            total["documents"] += len(res)
            total["tokens"] += int(res.tokens.sum())
            total["oovs"] += int(res.oovs.sum())
            total["log10_prob"] += float(res.log10_prob.sum())
            total["skipped"] += res.skipped
            if plot:
                ppl_parts.append(res.perplexity)
    total["perplexity"] = 10.0 ** (-total["log10_prob"] / total["tokens"]) if total["tokens"] else None
    if manifest:
        write_json(manifest, _manifest("score --per-doc", inputs, fmt, model, tokenizer, output=os.fspath(output),
                                       columns=["id", "tokens", "oovs", "log10_prob", "perplexity"],
                                       totals=total))
    if plot:
        plot_distribution(plot, np.concatenate(ppl_parts) if ppl_parts else [], {}, "document perplexity",
                          "per-document perplexity")
    return total


# -- glm softdedup ---------------------------------------------------------------------------------
def softdedup_to_file(inputs, output, fmt: DocFormat = DocFormat(), *, order: int = 4, model=None,
                      mode: str = "geomean", segments: int = 10, stat: str = "median",
                      normalize: str = "docs", clip=None, floor_segment: bool = False, save_model=None,
                      manifest=None, workers=None, quiet: bool = True, plot=None) -> dict:
    """Write SoftDedup rows (id, tokens, commonness, log10_commonness, segment, weight).

    Parameters
    ----------
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    output : path
        Where the rows go (JSONL).
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    order, model, mode, segments, stat, normalize, clip, floor_segment, save_model
        As for ``softdedup``.
    manifest : path, optional
        Where the manifest (parameters and counts, JSON) goes.
    workers : int, optional
        Scoring processes (default: the cores this process may use, ``$GLM_THREADS``); 1 scores in
        this process.
    quiet : bool
        No progress bar.
    plot : path, optional
        Also draw the histogram of the values with the thresholds (needs matplotlib).

    Returns
    -------
    dict
        The manifest (parameters, and per segment its documents, tokens, commonness and weight).

    Raises
    ------
    ValueError
        Bad parameters, an output that is an input.
    CorpusError
        A missing input, bad text or JSON.
    """
    _check({"--output": output, "--manifest": manifest, "--save-model": save_model, "--plot": plot}, inputs,
           model)
    if save_model is not None:
        check_output(save_model, False)
    if plot:
        check_matplotlib()
    res = softdedup(inputs, fmt, order=order, model=model, mode=mode, segments=segments, stat=stat,
                    normalize=normalize, clip=clip, floor_segment=floor_segment, save_model=save_model,
                    workers=workers, quiet=quiet)
    with open_output(output) as out:
        out.write("".join(_json_row(**row) for row in res.rows()).encode("utf-8"))
    per_segment = []
    for k in np.unique(res.segment):
        sel = res.segment == k
        per_segment.append(dict(segment=int(k) if k >= 0 else None, documents=int(sel.sum()),
                                tokens=int(res.scores.tokens[sel].sum()),
                                commonness_min=float(10.0 ** res.log10_commonness[sel].min()),
                                commonness_max=float(10.0 ** res.log10_commonness[sel].max()),
                                weight=float(res.weight[sel][0]) if k >= 0 else None))
    info = _manifest("softdedup", inputs, fmt, model, output=os.fspath(output),
                     reference_model=None if model is not None else dict(
                         trained_on="the input documents (in-sample)", order=order,
                         smoothing="interpolated modified Kneser-Ney", saved_to=save_model),
                     commonness=("10^(log10_prob / tokens) = 1 / perplexity" if mode == "geomean"
                                 else "10^log10_prob (joint probability)"),
                     parameters=dict(mode=mode, segments=segments, stat=stat, normalize=normalize,
                                     clip=list(clip) if clip else None, floor_segment=floor_segment),
                     documents=len(res.scores), skipped=res.scores.skipped, segments=per_segment)
    if manifest:
        write_json(manifest, info)
    if plot:
        edges = {}
        for s in per_segment[1:]:
            edges[f"segment {s['segment']}"] = s["commonness_min"]
        plot_distribution(plot, 10.0 ** res.log10_commonness, edges if len(edges) <= 10 else {},
                          "commonness", "SoftDedup commonness with segment boundaries")
    return info


# -- glm resample ----------------------------------------------------------------------------------
def resample_to_file(inputs, weights, output, fmt: DocFormat = DocFormat(), *, target_docs=None,
                     target_tokens=None, seed: int = 0, manifest=None, quiet: bool = True) -> dict:
    """Write the documents drawn by weight (with replacement, seeded) in input order.

    Parameters
    ----------
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    weights : path
        A JSONL file with ``id``, ``weight`` (and ``tokens`` for a token target) per document, in the
        order of the inputs.
    output : path
        Where the drawn documents go.
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    target_docs : int, optional
        Draw this many documents.
    target_tokens : int, optional
        Or draw until the drawn documents' tokens reach this.
    seed : int
        The seed of numpy's PCG64 generator.
    manifest : path, optional
        Where the manifest (parameters and counts, JSON) goes.
    quiet : bool
        No progress bar.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ValueError
        Neither or both targets, an output that is an input.
    CorpusError
        A weights file that does not list the inputs' documents in order, bad input.
    """
    _check({"--output": output, "--manifest": manifest}, inputs, weights)
    ids, w, tokens = read_weights(weights)
    counts = draw_counts(w, tokens, target_docs, target_tokens, seed)
    sep = fmt.separator()
    with open_output(output) as out:
        for doc in repeat_documents(read_documents(inputs, fmt, quiet), ids, counts, os.fspath(weights)):
            out.write(doc.raw + sep)
    info = _manifest("resample", inputs, fmt, weights=os.path.abspath(weights), output=os.fspath(output),
                     seed=seed, target_documents=target_docs, target_tokens=target_tokens,
                     drawn_documents=int(counts.sum()), distinct_documents=int((counts > 0).sum()),
                     drawn_tokens=int(counts @ tokens) if tokens is not None else None,
                     sampling="with replacement, probability proportional to weight (numpy PCG64)")
    if manifest:
        write_json(manifest, info)
    return info


# -- glm prune -------------------------------------------------------------------------------------
def _count_documents(inputs, fmt: DocFormat, quiet: bool) -> int:
    return sum(len(parse_chunk(c, fmt)[0]) for c in document_chunks(inputs, fmt, quiet, "counting"))


def prune_to_files(inputs, output, fmt: DocFormat = DocFormat(), *, model=None, ref_fraction=None,
                   order: int = 5, criterion: str = "low", rate: float = 0.5, seed: int = 0,
                   rejected=None, manifest=None, workers=None, quiet: bool = True, plot=None,
                   tokenizer=None) -> dict:
    """Keep round(rate * N) documents by perplexity band (Ankner et al. 2024) under a given model or
    one trained on a seeded ``ref_fraction`` of the documents (left out of the outputs).

    Parameters
    ----------
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    output : path
        Where the kept documents go, as they were read.
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    model : glm.Model or path, optional
        The model, or the path of a model file (ARPA, .glm or binary).
    ref_fraction : float, optional
        Instead of ``model``: train one of ``order`` on this seeded fraction of the documents.
    order : int
        The order of that model.
    criterion : {'low', 'medium', 'high'}
        Keep the lowest perplexities, the band around the median, or the highest.
    rate : float
        The fraction of the candidates kept.
    seed : int
        The seed of the reference split.
    rejected : path, optional
        Where the other candidates go.
    manifest : path, optional
        Where the manifest (parameters and counts, JSON) goes.
    workers : int, optional
        Scoring processes (default: the cores this process may use, ``$GLM_THREADS``); 1 scores in
        this process.
    quiet : bool
        No progress bar.
    plot : path, optional
        Also draw the histogram of the values with the thresholds (needs matplotlib).
    tokenizer : callable, optional
        Text -> tokenized text before scoring, with a given model only
        (``glm.ccnet.CCNetTokenizer``: CCNet's perplexities).

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ValueError
        Neither or both of ``model`` and ``ref_fraction``, a bad criterion or rate, an output that is an
        input, stdin as input (it is read twice).
    CorpusError
        A missing input, bad text or JSON.
    """
    if (model is None) == (ref_fraction is None):
        raise ValueError("give either a model or a reference fraction")
    if tokenizer is not None and model is None:
        raise ValueError("a tokenizer (CCNet's) goes with a given model, not one trained on the documents")
    _check({"--output": output, "--rejected": rejected, "--manifest": manifest, "--plot": plot}, inputs, model)
    if plot:
        check_matplotlib()
    prune_mask(np.zeros(0), criterion, rate)           # check the arguments before the work
    if ref_fraction is not None:
        reference_split(0, ref_fraction)
    rereadable_paths(inputs, "prune")
    with tempfile.TemporaryDirectory(prefix="glm-prune-") as tmp:
        ref = None
        if ref_fraction is not None:
            ref = reference_split(_count_documents(inputs, fmt, quiet), ref_fraction, seed)
            model_path = os.path.join(tmp, "reference" + BINARY_SUFFIX)
            train_on_documents(inputs, fmt, order, quiet, keep=ref).save(model_path)
            scored_with = model_path
        else:
            scored_with = model
        scores = DocScores.concat(score_documents(scored_with, inputs, fmt, workers, quiet, tokenizer),
                                  keep_ids=False)
    n = len(scores)
    if ref is not None and len(ref) != n:
        raise ValueError("the input changed while it was read")
    pool = np.ones(n, dtype=bool) if ref is None else ~ref
    ppl = scores.perplexity
    keep = np.zeros(n, dtype=bool)
    keep[np.flatnonzero(pool)[prune_mask(ppl[pool], criterion, rate)]] = True
    sep = fmt.separator()
    with contextlib.ExitStack() as stack:
        kept_f = stack.enter_context(open_output(output))
        rej_f = stack.enter_context(open_output(rejected)) if rejected else None
        for i, doc in enumerate(read_documents(inputs, fmt, quiet)):
            if keep[i]:
                kept_f.write(doc.raw + sep)
            elif rej_f is not None and pool[i]:
                rej_f.write(doc.raw + sep)
    lo, hi = (float(ppl[keep].min()), float(ppl[keep].max())) if keep.any() else (None, None)
    info = _manifest(
        "prune", inputs, fmt, model, tokenizer,
        reference_model=None if ref is None else dict(
            trained_on=f"a random {ref_fraction} of the documents (seed {seed}), left out of the outputs",
            order=order),
        criterion=criterion, rate=rate, seed=seed, output=os.fspath(output),
        rejected=os.fspath(rejected) if rejected else None,
        thresholds=dict(min_perplexity_kept=lo, max_perplexity_kept=hi),
        counts=dict(documents=n, skipped_malformed=scores.skipped,
                    reference=0 if ref is None else int(ref.sum()), candidates=int(pool.sum()),
                    kept=int(keep.sum()), rejected=int(pool.sum() - keep.sum())))
    if manifest:
        write_json(manifest, info)
    if plot:
        plot_distribution(plot, ppl[pool], {} if lo is None else {"lowest kept": lo, "highest kept": hi},
                          "document perplexity", f"pruning: keep {criterion} {rate:g}")
    return info


# -- glm bucket ------------------------------------------------------------------------------------
def bucket_to_dir(inputs, model, out_dir, fmt: DocFormat = DocFormat(), *, cutoffs=(30, 60),
                  cutoff_csv=None, lang_field=None, lang=None, workers=None, quiet: bool = True,
                  plot=None, tokenizer=None) -> dict:
    """CCNet buckets: OUT/{head,middle,tail}.EXT (and all.EXT for documents of a language the cutoff
    file lacks), OUT/manifest.json, and OUT/cutoff.csv when the cutoffs come from the documents.

    Parameters
    ----------
    inputs : path or list of paths
        Files (plain or compressed), directories (walked in sorted order), glob patterns or ``'-'``
        (stdin).
    model : glm.Model or path
        The model, or the path of a model file (ARPA, .glm or binary).
    out_dir : path
        The output directory (made when missing).
    fmt : DocFormat
        How documents are read (text lines or paragraphs, JSONL fields, malformed lines).
    cutoffs : (int, int)
        The head and tail percentiles of the documents' own perplexities (default 30, 60).
    cutoff_csv : path, optional
        CCNet's cutoff file (one column per language) instead of ``cutoffs``.
    lang_field : str, optional
        JSONL: the field of each document's language (for ``cutoff_csv``).
    lang : str, optional
        The language of every document (a column of ``cutoff_csv``; the column name of the written
        cutoff.csv).
    workers : int, optional
        Scoring processes (default: the cores this process may use, ``$GLM_THREADS``); 1 scores in
        this process.
    quiet : bool
        No progress bar.
    plot : path, optional
        Also draw the histogram of the values with the thresholds (needs matplotlib).
    tokenizer : callable, optional
        Text -> tokenized text before scoring (``glm.ccnet.CCNetTokenizer``: CCNet's perplexities).

    Returns
    -------
    dict
        The manifest (thresholds and counts), as written to OUT/manifest.json.

    Raises
    ------
    ValueError
        ``out_dir`` is a file, a language field without JSONL input, no documents, an output that is
        an input.
    CorpusError
        A missing input, bad text or JSON (the message names the file and line).
    """
    head_p, tail_p = check_cutoffs(cutoffs)
    ext = "jsonl" if fmt.fmt == "jsonl" else "txt"
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir}: --out-dir is a file, not a directory")
    written = {f"--out-dir's {b}.{ext}": os.path.join(out_dir, f"{b}.{ext}")
               for b in ("head", "middle", "tail", "all")}
    written["--out-dir's manifest.json"] = os.path.join(out_dir, "manifest.json")
    if not cutoff_csv:
        written["--out-dir's cutoff.csv"] = os.path.join(out_dir, "cutoff.csv")
    _check(dict(written, **{"--plot": plot}) if os.path.isdir(out_dir) else {"--plot": plot}, inputs, model,
           cutoff_csv)
    if plot:
        check_matplotlib()
    if lang_field and fmt.fmt != "jsonl":
        raise ValueError("a language field needs JSONL input")
    table = read_cutoff_csv(cutoff_csv) if cutoff_csv else None
    rereadable_paths(inputs, "bucket")
    os.makedirs(out_dir, exist_ok=True)
    ppl = DocScores.concat(score_documents(model, inputs, fmt, workers, quiet, tokenizer), keep_ids=False).perplexity
    if table is None:
        if not len(ppl):
            raise ValueError("no documents to take percentiles of")
        table = {lang or "default": percentile_cutoffs(ppl)}
        write_cutoff_csv(os.path.join(out_dir, "cutoff.csv"), table)
    counts = dict(head=0, middle=0, tail=0, all=0)
    sep = fmt.separator()
    with contextlib.ExitStack() as stack:
        files = {b: stack.enter_context(open_output(os.path.join(out_dir, f"{b}.{ext}")))
                 for b in ("head", "middle", "tail")}
        for i, doc in enumerate(read_documents(inputs, fmt, quiet)):
            doc_lang = lang or "default"
            if lang_field:
                try:
                    doc_lang = str(get_field(doc.fields, lang_field))
                except KeyError:
                    doc_lang = None
            cut = table.get(doc_lang)
            b = "all" if cut is None else bucket_of(ppl[i], cut[head_p], cut[tail_p])
            if b not in files:
                files[b] = stack.enter_context(open_output(os.path.join(out_dir, f"{b}.{ext}")))
            files[b].write(doc.raw + sep)
            counts[b] += 1
    info = _manifest("bucket", inputs, fmt, model, tokenizer, out_dir=os.path.abspath(out_dir),
                     cutoffs=dict(head_percentile=head_p, tail_percentile=tail_p,
                                  source=os.path.abspath(cutoff_csv) if cutoff_csv else "the documents' "
                                  "own perplexities (written to cutoff.csv)",
                                  rule="perplexity < head -> head; < tail -> middle; else tail; "
                                       "a language without cutoffs -> all"),
                     thresholds={k: dict(head=float(v[head_p]), tail=float(v[tail_p]))
                                 for k, v in table.items()},
                     counts=counts)
    write_json(os.path.join(out_dir, "manifest.json"), info)
    if plot:
        first = next(iter(info["thresholds"].values()))
        plot_distribution(plot, ppl, {f"p{head_p} (head)": first["head"], f"p{tail_p} (tail)": first["tail"]},
                          "document perplexity", "CCNet buckets")
    return info
