"""hub: a probe battery over public checkpoints (Hugging Face model ids x revisions).

One task per (model, revision): loaded once, scored, freed. The suite folder holds the
usual trajectory tables (run = model id, step = the revision's step) plus suite.json
(per-task status, seconds and peak memory) and, after classification, hub_fates.json
(verdicts per model and family, and the depth-by-scale Spearman statistic).

    from ungrok.hub import score_suite, classify_suite
    score_suite(["EleutherAI/pythia-70m", "EleutherAI/pythia-160m"], "thinned", battery, out)
    classify_suite(out)

Names are imported lazily so `import ungrok.hub` does not load torch.
"""

from __future__ import annotations

from ungrok.lazy import lazy_getattr

_EXPORTS = {
    "score_suite": "suite",
    "SuiteSummary": "suite",
    "classify_suite": "scale",
    "depth_by_scale": "scale",
    "pythia_grid": "revisions",
    "resolve_revisions": "revisions",
    "parse_step": "revisions",
    "add_to_cache": "cache",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
