"""Boolean mask pytrees: validation, application, scores -> masks by top-k, and reports.

A *mask* is a pytree with exactly the tree structure and leaf shapes of the params it refers to,
holding boolean arrays: ``True`` keeps a weight, ``False`` prunes it. Leaves that are never pruned
(biases, batch-norm scales) are all-``True``.

Vocabulary: *sparsity* is the fraction of prunable weights removed, *density* = 1 - sparsity,
*compression* = 1 / density. Which leaves are prunable is decided by a predicate
``(path, leaf) -> bool`` (default :func:`is_kernel`) minus an explicit ``keep_dense`` set of paths.

  scores --mask_by_topk (global) / mask_by_layer_topk (per-layer counts)--> mask --summary--> report

Three modules, one job each:

  _tree    mask trees and prunable leaves: ``check_mask_tree``, ``apply_mask``,
           ``flatten_prunable``, finiteness checks (``check_finite_scores``, ``nonfinite_leaves``).
  _topk    the exact top-k: ``mask_by_topk``, ``mask_by_layer_topk``, ``mask_by_keep_counts``,
           ``keep_top`` (``override_top_k``: trace another selection, for reference rows).
  _report  ``summary``/``format_report``, layer-collapse detection and its warning.
"""

from jaxprune.masks._report import (
    LayerCollapseWarning,
    LayerRow,
    MaskReport,
    collapsed_layers,
    format_report,
    summary,
    warn_if_collapsed,
)
from jaxprune.masks._topk import (
    check_sparsity,
    keep_top,
    keep_top_sort,
    mask_by_keep_counts,
    mask_by_layer_topk,
    mask_by_topk,
    num_to_remove,
    override_top_k,
)
from jaxprune.masks._tree import (
    Path,
    Predicate,
    PrunableLeaves,
    apply_mask,
    check_finite_scores,
    check_mask_tree,
    first_and_last,
    flatten_prunable,
    is_kernel,
    nonfinite_leaves,
    normalize_keep_dense,
    num_prunable,
    ones_like,
    path_str,
    path_tuple,
    prunable_paths,
    raise_if_nonfinite,
    restrict_to_prunable,
)

__all__ = [
    "LayerCollapseWarning", "LayerRow", "MaskReport", "Path", "Predicate", "PrunableLeaves",
    "apply_mask", "check_finite_scores", "check_mask_tree", "check_sparsity", "collapsed_layers",
    "first_and_last", "flatten_prunable", "format_report", "is_kernel", "keep_top",
    "keep_top_sort", "mask_by_keep_counts", "mask_by_layer_topk", "mask_by_topk",
    "nonfinite_leaves", "normalize_keep_dense", "num_prunable", "num_to_remove", "ones_like",
    "override_top_k",
    "path_str", "path_tuple", "prunable_paths", "raise_if_nonfinite", "restrict_to_prunable",
    "summary", "warn_if_collapsed",
]
