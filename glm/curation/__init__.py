"""Data curation with n-gram models: document readers, per-document scores, SoftDedup weights,
seeded resampling, perplexity pruning and CCNet buckets (see docs/curation.md)::

    from glm.curation import DocFormat, read_documents, score_documents
    fmt = DocFormat("jsonl", text_field="text", id_field="meta.id")
    for batch in score_documents("model.glmb", ["data/"], fmt, workers=2):
        for row in batch.rows(): ...
"""
from .documents import DocFormat, Document, document_lines, get_field, read_documents
from .pipeline import bucket_to_dir, prune_to_files, resample_to_file, score_to_file, softdedup_to_file
from .pruning import percentile_cutoffs, prune_mask, read_cutoff_csv, reference_split
from .resample import draw_counts, read_weights, repeat_documents
from .scoring import PERPLEXITY_DEFINITION, DocScores, score_documents, score_texts
from .softdedup import log10_commonness, softdedup, softdedup_weights, train_on_documents

__all__ = ["DocFormat", "Document", "document_lines", "get_field", "read_documents", "bucket_to_dir",
           "prune_to_files", "resample_to_file", "score_to_file", "softdedup_to_file", "percentile_cutoffs",
           "prune_mask", "read_cutoff_csv", "reference_split", "draw_counts", "read_weights",
           "repeat_documents", "PERPLEXITY_DEFINITION", "DocScores", "score_documents", "score_texts",
           "log10_commonness", "softdedup", "softdedup_weights", "train_on_documents"]
