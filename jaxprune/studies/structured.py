"""Structured pruning as a study: score -> policy -> surgery -> fine-tune | Scratch-E | Scratch-B.

Liu et al. 2019 ("Rethinking the Value of Network Pruning") compare three ways to train the
network a pruning method finds, all from the same keep-sets:

  finetune    the trained large network's surviving weights, trained further (the usual pipeline)
  scratch-e   the pruned architecture from a new random init, trained as many epochs as the
              large network was
  scratch-b   the same, for the large network's training FLOPs: ``epochs * F_large / F_pruned``
              epochs (the reference code: ``int(160 * flops_std / flops_small)``, uncapped on
              CIFAR; on ImageNet the paper caps the factor at 2: pass ``cap=2``)

  policy = get_policy("li-vgg16-a", structure)                    # registry, family checked
  sel = select(structure, trained, criterion="l1", policy=policy)  # keep-sets, counts
  res = run(structure, trained, train, test, criterion="l1", policy=policy,
            config=large_recipe, finetune_config=finetune_recipe, key=key)
  res.modes["scratch-b"]["test_accuracy"]

Policies (:data:`POLICIES`, by name like the criteria registry): ``ratio`` (the same fraction of
every group), ``global`` (one threshold over raw scores: Network Slimming), ``macs`` / ``params``
(remove a fraction of the MACs / parameters by bisection), ``li-vgg16-a``, ``li-resnet56-a``,
``li-resnet56-b`` (Li et al. 2017's published settings; each only for its model). Each policy
raises on a group it would empty (the official Slimming code crashes there) unless built with
``on_empty="clamp"``.

Unstructured pruning in the same frame (the paper's weight-level section): :func:`run_unstructured`
removes the smallest-magnitude conv weights of the trained network globally (the reference prunes
conv layers only), and trains the mask from the trained weights or from a new init; Scratch-B's
FLOPs count the kept conv weights, as the reference's ``count_flops.py`` does.

Reference: https://arxiv.org/abs/1810.05270; code
https://github.com/Eric-mingjie/rethinking-network-pruning (``cifar/l1-norm-pruning``,
``cifar/network-slimming``, ``cifar/weight-level``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxprune import flops, masks
from jaxprune import structured as st
from jaxprune.registry import Registry
from jaxprune.train import Split, TrainConfig, fit

PyTree = Any
Scores = Mapping[str, Any]
#: ``policy(structure, scores, input_shape) -> keep``.
Policy = Callable[[st.Structure, Scores, Sequence[int] | None], st.Keep]

MODES = ("finetune", "scratch-e", "scratch-b")
ON_EMPTY = ("raise", "clamp")


# ---------------------------------------------------------------------------------------------
# Policies.
# ---------------------------------------------------------------------------------------------


def _check_ratio(ratio: float, what: str) -> float:
    if not (isinstance(ratio, int | float) and 0 <= ratio < 1):
        raise ValueError(f"ratio is the fraction of {what} to remove, in [0, 1); got {ratio!r}")
    return float(ratio)


def _check_on_empty(on_empty: str) -> str:
    if on_empty not in ON_EMPTY:
        raise ValueError(f"on_empty must be one of {list(ON_EMPTY)}, got {on_empty!r}")
    return on_empty


def ratio_policy(ratio: float, *, on_empty: str = "raise") -> Policy:
    """``ratio`` of every group's channels, lowest scores first (layer-wise)."""
    r, e = _check_ratio(ratio, "each group's channels"), _check_on_empty(on_empty)
    return lambda structure, scores, input_shape=None: st.prune_by_ratio(
        structure, scores, r, on_empty=e)


def global_policy(ratio: float, *, on_empty: str = "raise") -> Policy:
    """``int(total * ratio)`` channels with the lowest raw scores over all groups (Slimming)."""
    r, e = _check_ratio(ratio, "all channels"), _check_on_empty(on_empty)
    return lambda structure, scores, input_shape=None: st.prune_by_global_threshold(
        structure, scores, ratio=r, on_empty=e)


def _budget_policy(metric: str) -> Callable[..., Policy]:
    def factory(ratio: float) -> Policy:
        r = _check_ratio(ratio, f"the {'MACs' if metric == 'macs' else 'parameters'}")

        def policy(structure, scores, input_shape=None):
            dense = getattr(st.count_pruned(structure, input_shape=input_shape), metric)
            budget = {metric: int((1 - r) * dense)}
            return st.prune_to_budget(structure, scores, input_shape=input_shape, **budget).keep

        return policy

    factory.__doc__ = f"Remove ``ratio`` of the {metric}: one global threshold, by bisection."
    return factory


def li_vgg16_a() -> Policy:
    """Li et al. 2017's VGG-16-pruned-A widths (scaled by the model's width multiplier)."""

    def policy(structure, scores, input_shape=None):
        full = st.channel_groups("vgg16")
        widths = {}
        for i, w in enumerate(st.LI_VGG16_A_WIDTHS):
            name = f"conv{i + 1}"
            scale = structure.group(name).width / full.group(name).width
            widths[name] = max(1, round(w * scale))
        return st.prune_to_widths(structure, scores, widths)

    return policy


def _li_resnet56(variant: str) -> Callable[[], Policy]:
    def factory() -> Policy:
        return lambda structure, scores, input_shape=None: st.prune_by_ratio(
            structure, scores, st.li_resnet_ratios(structure, **st.LI_RESNET56[variant]))

    factory.__doc__ = (f"Li et al. 2017's ResNet-56-pruned-{variant}: stage ratios "
                       f"{st.LI_RESNET56[variant]['stage_ratios']}, skipped layers "
                       f"{st.LI_RESNET56[variant]['skip_layers']}.")
    return factory


#: Structured policies by name; ``info(name)["models"]`` lists the models a preset is for
#: (``None``: any), ``info(name)["ratio"]`` whether it takes a ratio.
POLICIES: Registry[Policy] = Registry("structured policy")
POLICIES.register("ratio", ratio_policy, models=None, ratio=True)
POLICIES.register("global", global_policy, models=None, ratio=True)
POLICIES.register("macs", _budget_policy("macs"), models=None, ratio=True)
POLICIES.register("params", _budget_policy("params"), models=None, ratio=True)
POLICIES.register("li-vgg16-a", li_vgg16_a, models=("vgg16",), ratio=False)
POLICIES.register("li-resnet56-a", _li_resnet56("A"), models=("resnet56",), ratio=False)
POLICIES.register("li-resnet56-b", _li_resnet56("B"), models=("resnet56",), ratio=False)


def policy_names() -> list[str]:
    """The registered policy names, sorted."""
    return POLICIES.names()


def get_policy(name: str, structure: st.Structure | str, **factory_kwargs: Any) -> Policy:
    """The policy ``name`` for ``structure``'s model, after checking it applies to it.

    Args:
      name: one of :func:`policy_names`.
      structure: the model's groups (or its zoo name).
      **factory_kwargs: ``ratio=`` (and ``on_empty=`` for ``ratio``/``global``).

    Raises:
      ValueError: an unknown name (listing the valid ones), a preset for another model, or a
        ratio outside [0, 1).
      TypeError: missing or unexpected arguments (listing the expected ones).
    """
    model = structure if isinstance(structure, str) else structure.name
    allowed = POLICIES.info(name)["models"]
    if allowed is not None and model not in allowed:
        raise ValueError(f"policy {name!r} is Li et al.'s setting for {' / '.join(allowed)}, "
                         f"not {model!r}; use ratio / global / macs / params for other models")
    return POLICIES.get(name, **factory_kwargs)


# ---------------------------------------------------------------------------------------------
# The pipeline.
# ---------------------------------------------------------------------------------------------


class Selection(NamedTuple):
    """What a criterion and a policy chose: keep-sets, the scores, and the counts before/after."""

    keep: st.Keep
    scores: Scores
    dense: st.Counts
    pruned: st.Counts


def select(
    structure: st.Structure,
    variables: PyTree,
    *,
    criterion: str,
    policy: Policy,
    batch: Any = None,
    key: jax.Array | None = None,
    input_shape: Sequence[int] | None = None,
) -> Selection:
    """Score the channels of ``variables`` with ``criterion`` and keep what ``policy`` says.

    Args:
      structure: the model's groups.
      variables: its (trained) variables.
      criterion: a channel criterion name (``l1``, ``bn_scale``, ``fisher``, ``random``).
      policy: from :func:`get_policy`.
      batch: ``(x, y)`` for data criteria (``fisher``).
      key: PRNG key for ``random``.
      input_shape: per-example input shape for counting (default: the model's registered one).

    Returns:
      :class:`Selection`.
    """
    scores = st.criteria.get(criterion, structure=structure)(variables, batch=batch, key=key)
    keep = policy(structure, scores, input_shape)
    return Selection(keep, scores, st.count_pruned(structure, input_shape=input_shape),
                     st.count_pruned(structure, keep, input_shape=input_shape))


def scratch_b_epochs(epochs: int, dense_flops: float, pruned_flops: float, *,
                     cap: float | None = None) -> int:
    """Scratch-B's epochs: the large network's training FLOPs spent on the pruned one.

    ``int(epochs * dense_flops / pruned_flops)``, the reference code's rule
    (``args.epochs = int(160 * (flops_std / flops_small))``), with the factor capped at ``cap``
    if given (the paper's ImageNet rule: ``cap=2``).

    Example:
      >>> scratch_b_epochs(160, 3.0e8, 2.0e8)
      240
    """
    if not (dense_flops > 0 and pruned_flops > 0):
        raise ValueError(f"FLOPs must be > 0, got dense {dense_flops}, pruned {pruned_flops}")
    if cap is not None and not cap >= 1:
        raise ValueError(f"cap is a factor on the epochs, >= 1; got {cap}")
    factor = dense_flops / pruned_flops
    if cap is not None:
        factor = min(factor, cap)
    return int(epochs * factor + 1e-9)


def check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    """``modes`` as a tuple, each one of :data:`MODES`."""
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"modes must be some of {list(MODES)}, got {list(modes)}")
    return tuple(modes)


def mode_config(mode: str, config: TrainConfig, finetune_config: TrainConfig,
                dense_flops: float, pruned_flops: float, *, cap: float | None = None
                ) -> TrainConfig:
    """The recipe of one mode: ``finetune_config`` for fine-tuning, ``config`` (the large
    network's) for Scratch-E, and ``config`` with :func:`scratch_b_epochs` for Scratch-B."""
    check_modes([mode])
    if mode == "finetune":
        return finetune_config
    if mode == "scratch-e":
        return config
    return config.replace(epochs=scratch_b_epochs(config.epochs, dense_flops, pruned_flops,
                                                  cap=cap))


class StudyResult(NamedTuple):
    """One pruned network's study: what was kept, its width options, and per mode
    ``{"epochs", "test_accuracy", "history"}``."""

    selection: Selection
    narrow_options: dict[str, Any]
    modes: dict[str, dict[str, Any]]


def start_point(mode: str, structure: st.Structure, variables: PyTree, keep: st.Keep, *,
                key: jax.Array, input_shape: Sequence[int] | None = None) -> st.Pruned:
    """The narrow network a mode starts from: the surviving trained weights (``finetune``) or
    the pruned architecture newly initialized with ``key`` (``scratch-e``/``scratch-b``)."""
    check_modes([mode])
    if mode == "finetune":
        return st.prune_channels(structure, variables, keep, input_shape=input_shape)
    return st.fresh_init(structure, keep, key=key, input_shape=input_shape)


def fit_mode(model: nn.Module, variables: PyTree, train: Split, test: Split,
             config: TrainConfig, *, name: str, mask: PyTree | None = None,
             workdir: str | None = None, extra: Mapping[str, Any] | None = None,
             progress: bool = False) -> dict[str, Any]:
    """Train one mode's network: ``fit`` in ``<workdir>/<name>`` (resumable), summarized as
    ``{"epochs", "test_accuracy", "diverged_epoch", "history": [test accuracy per epoch]}``."""
    wd = None if workdir is None else str(Path(workdir) / name)
    res = fit(model, variables, train, test, config, mask=mask, workdir=wd, extra_config=extra,
              progress=progress)
    return {"epochs": config.epochs, "test_accuracy": float(res.results["test_accuracy"]),
            "diverged_epoch": res.results["diverged_epoch"],
            "history": [float(h["test_accuracy"]) for h in res.history]}


def run(
    structure: st.Structure,
    variables: PyTree,
    train: Split,
    test: Split,
    *,
    criterion: str,
    policy: Policy,
    config: TrainConfig,
    finetune_config: TrainConfig,
    key: jax.Array,
    modes: Sequence[str] = MODES,
    batch: Any = None,
    input_shape: Sequence[int] | None = None,
    cap: float | None = None,
    workdir: str | None = None,
    progress: bool = False,
    on_selected: Callable[[Selection, dict[str, Any]], None] | None = None,
) -> StudyResult:
    """Prune a trained network's channels and train the result in each of ``modes``.

    The ``jaxprune prune --structured`` command is this function (with ``key =
    fold_in(key(seed), 7)``, the rethinking runner's): same selection, same networks, same
    results.

    Args:
      structure: the large model's groups.
      variables: its trained variables.
      train, test: the splits.
      criterion: channel criterion name.
      policy: from :func:`get_policy`.
      config: the large network's recipe (Scratch-E trains this long; Scratch-B scales it).
      finetune_config: the fine-tuning recipe (the reference: 40 epochs at lr 1e-3).
      key: PRNG key: ``fold_in(key, 0)`` scores (``random``), ``fold_in(key, 1)`` initializes
        the scratch networks (Scratch-E and -B start from the same init).
      modes: some of :data:`MODES`; ``()``: select only (no training).
      batch: ``(x, y)`` for data criteria.
      input_shape: per-example input shape (default: the model's registered one).
      cap: Scratch-B's cap on the epoch factor (None: uncapped, the CIFAR code).
      workdir: if given, each mode's ``fit`` writes (and resumes) ``<workdir>/<mode>``.
      progress: progress bars.
      on_selected: ``on_selected(selection, narrow_options)`` once the channels are chosen,
        before any training (e.g. to claim a workdir or print the reduction).

    Returns:
      :class:`StudyResult`.
    """
    modes = check_modes(modes) if modes else ()
    sel = select(structure, variables, criterion=criterion, policy=policy, batch=batch,
                 key=jax.random.fold_in(key, 0), input_shape=input_shape)
    options = st.narrow_options(structure, sel.keep)
    if on_selected is not None:
        on_selected(sel, options)
    out = {}
    for mode in modes:
        start = start_point(mode, structure, variables, sel.keep,
                            key=jax.random.fold_in(key, 1), input_shape=input_shape)
        cfg = mode_config(mode, config, finetune_config, sel.dense.macs, sel.pruned.macs,
                          cap=cap)
        out[mode] = fit_mode(start.model, start.variables, train, test, cfg, name=mode,
                             workdir=workdir, extra={"narrow_options": options, "mode": mode},
                             progress=progress)
    return StudyResult(sel, options, out)


# ---------------------------------------------------------------------------------------------
# Unstructured (weight-level) pruning in the same frame.
# ---------------------------------------------------------------------------------------------


def is_conv_kernel(path: masks.Path, leaf: Any) -> bool:
    """A convolution kernel (4-D ``kernel``): the weights Rethinking's weight-level code prunes."""
    return masks.is_kernel(path, leaf) and jnp.ndim(leaf) == 4


def magnitude_mask(params: PyTree, sparsity: float, *,
                   prunable: masks.Predicate = is_conv_kernel) -> PyTree:
    """Remove the ``sparsity`` fraction of the prunable weights with the smallest magnitudes,
    with one global threshold (exact count, deterministic ties; ``masks.mask_by_topk``)."""
    return masks.mask_by_topk(jax.tree.map(jnp.abs, params), sparsity, prunable=prunable)


class UnstructuredResult(NamedTuple):
    """The mask, the MACs of the dense and the masked network, and per mode results."""

    mask: PyTree
    dense_macs: int
    pruned_macs: int
    modes: dict[str, dict[str, Any]]


def run_unstructured(
    model: nn.Module,
    variables: PyTree,
    train: Split,
    test: Split,
    *,
    sparsity: float,
    config: TrainConfig,
    finetune_config: TrainConfig,
    key: jax.Array,
    modes: Sequence[str] = MODES,
    input_shape: Sequence[int],
    prunable: masks.Predicate = is_conv_kernel,
    cap: float | None = None,
    workdir: str | None = None,
    progress: bool = False,
) -> UnstructuredResult:
    """Magnitude-prune a trained network's weights and train the mask in each of ``modes``.

    ``finetune`` trains the surviving trained weights; ``scratch-e``/``scratch-b`` train the
    same mask from ``model.init(fold_in(key, 1))``. Pruned weights stay exactly zero (masked
    training). Scratch-B's FLOPs are the masked MACs (kept kernel entries x positions).

    Args:
      model: the Flax module.
      variables: its trained variables.
      sparsity: fraction of the prunable weights to remove.
      input_shape: per-example input shape (for the MAC counts and the fresh init).
      prunable: which weights may go (default: conv kernels only, as the reference).
      Others as in :func:`run`.

    Returns:
      :class:`UnstructuredResult`.
    """
    modes = check_modes(modes)
    mask = magnitude_mask(variables["params"], sparsity, prunable=prunable)
    dense = flops.count_macs(model, variables, input_shape)
    pruned = flops.count_macs(model, variables, input_shape, mask=mask)
    fresh = model.init(jax.random.fold_in(key, 1), jnp.zeros((1, *input_shape)), train=False)
    out = {}
    for mode in modes:
        start = variables if mode == "finetune" else fresh
        cfg = mode_config(mode, config, finetune_config, dense, pruned, cap=cap)
        out[mode] = fit_mode(model, start, train, test, cfg, name=mode, mask=mask,
                             workdir=workdir, extra={"sparsity": sparsity, "mode": mode},
                             progress=progress)
    return UnstructuredResult(mask, dense, pruned, out)
