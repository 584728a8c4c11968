"""Structured (channel) pruning of zoo models: groups, criteria, policies, surgery, budgets.

The flow mirrors the unstructured one, with channels instead of weights:

  structure = channel_groups("vgg16")                              # groups.py
  scores = criteria.get("l1", structure=structure)(variables)      # criteria.py: {group: (w,)}
  keep = policies.prune_to_widths(structure, scores, widths)       # policies.py: kept indices
  pruned = prune_channels(structure, variables, keep)              # surgery.py: narrow model
  count_pruned(structure, keep)                                    # costs.py: params, MACs

Also: ``gates`` (per-channel multipliers: Fisher scores, Pruning from Scratch), ``slimming``
(Network Slimming's optax regularizer), ``reduced`` (uniformly thinned baselines to a budget)
and ``fresh_init`` (Scratch-E/B: the pruned architecture, newly initialized).

Unlike the model-agnostic ``criteria``/``masks``, this package knows the zoo: it reads a model's
widths and rebuilds narrower members with ``models.get``.

  ==============================  =====================================================
  paper                           pieces
  ==============================  =====================================================
  Li et al. 2017 (L1 filters)     ``l1`` + ``prune_to_widths`` / ``prune_by_ratio`` with
                                  ``li_resnet_ratios``, ``LI_RESNET56``, ``LI_VGG16_A_WIDTHS``
  Liu et al. 2017 (Slimming)      ``network_slimming`` + ``bn_scale`` +
                                  ``prune_by_global_threshold``
  Crowley et al. 2018             ``fisher`` + ``prune_greedily``; ``reduce_to_budget``
  Liu et al. 2019 (Rethinking)    ``fresh_init`` (Scratch-E/B)
  Wang et al. 2020 (PfS)          ``init_gates``/``apply_with_gates`` + ``prune_to_reduction``
  ==============================  =====================================================
"""

from __future__ import annotations

from jaxprune.structured import criteria, policies
from jaxprune.structured.costs import Counts, cost_model, count_pruned, reduction
from jaxprune.structured.gates import apply_with_gates, init_gates
from jaxprune.structured.groups import (
    ChannelGroup,
    Keep,
    Site,
    Slot,
    Structure,
    WidthTarget,
    channel_groups,
    check_keep,
    keep_all,
    keep_from_masks,
    narrow_options,
)
from jaxprune.structured.policies import (
    LI_RESNET56,
    LI_VGG16_A_WIDTHS,
    li_resnet_ratios,
    prune_by_global_threshold,
    prune_by_ratio,
    prune_greedily,
    prune_to_budget,
    prune_to_reduction,
    prune_to_widths,
)
from jaxprune.structured.reduced import Reduced, reduce_to_budget
from jaxprune.structured.slimming import (
    add_l1_subgradient,
    bn_scale_paths,
    is_bn_scale,
    network_slimming,
)
from jaxprune.structured.surgery import (
    Pruned,
    channel_mask,
    fresh_init,
    mask_channels,
    prune_channels,
    slice_variables,
)

__all__ = [
    "LI_RESNET56",
    "LI_VGG16_A_WIDTHS",
    "ChannelGroup",
    "Counts",
    "Keep",
    "Pruned",
    "Reduced",
    "Site",
    "Slot",
    "Structure",
    "WidthTarget",
    "add_l1_subgradient",
    "apply_with_gates",
    "bn_scale_paths",
    "channel_groups",
    "channel_mask",
    "check_keep",
    "cost_model",
    "count_pruned",
    "criteria",
    "fresh_init",
    "init_gates",
    "is_bn_scale",
    "keep_all",
    "keep_from_masks",
    "li_resnet_ratios",
    "mask_channels",
    "narrow_options",
    "network_slimming",
    "policies",
    "prune_by_global_threshold",
    "prune_by_ratio",
    "prune_channels",
    "prune_greedily",
    "prune_to_budget",
    "prune_to_reduction",
    "prune_to_widths",
    "reduce_to_budget",
    "reduction",
    "slice_variables",
]
