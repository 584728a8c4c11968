"""Mask reports: per-layer densities, totals, MACs, and layer collapse, never silent."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxprune.masks._tree import (
    Path,
    Predicate,
    check_mask_tree,
    flatten_prunable,
    normalize_keep_dense,
    path_tuple,
)

PyTree = Any

# ---------------------------------------------------------------------------------------------
# Reporting: never let a collapsed layer go unnoticed.
# ---------------------------------------------------------------------------------------------


class LayerCollapseWarning(UserWarning):
    """A mask keeps no weight of some prunable layer (the network output no longer depends on
    its input). Emitted by the mask builders for concrete masks; see :func:`collapsed_layers`."""


def warn_if_collapsed(mask: PyTree, flags: Sequence[bool] | None = None) -> PyTree:
    """Return ``mask``; first warn (:class:`LayerCollapseWarning`) if a prunable leaf is all False.

    ``flags`` (one bool per leaf, tree-flatten order) says which leaves are prunable; default
    :func:`is_kernel`. Traced masks (inside ``jit``/``vmap``) are returned unchecked.
    """
    leaves = jax.tree.leaves(mask)
    if any(isinstance(m, jax.core.Tracer) for m in leaves):
        return mask
    if flags is None:
        flags = flatten_prunable(mask, None, ())[2]
    paths = [path_tuple(kp) for kp, _ in jax.tree_util.tree_flatten_with_path(mask)[0]]
    dead = [
        "/".join(map(str, p))
        for p, m, f in zip(paths, leaves, flags, strict=True)
        if f and np.size(m) and not bool(np.asarray(m).any())
    ]
    if dead:
        warnings.warn(
            f"layer collapse: the mask keeps no weight of {dead}; the pruned network is "
            "disconnected. Lower the sparsity, use an allocation that protects small layers "
            "('erk'), keep these layers dense (keep_dense=), or use an iterative criterion "
            "(SynFlow).",
            LayerCollapseWarning,
            stacklevel=3,
        )
    return mask


class LayerRow(NamedTuple):
    """One row of a :class:`MaskReport` (one prunable or kept-dense leaf)."""

    path: Path
    shape: tuple[int, ...]
    kept: int  # weights kept
    total: int  # weights in the leaf
    density: float  # kept / total
    prunable: bool  # False for leaves listed in keep_dense
    macs: int | None  # dense multiply-accumulates of the layer, if given
    remaining_macs: float | None  # macs * density (MACs scale with kept weights)


class MaskReport(NamedTuple):
    """Summary of a mask; print it with :func:`format_report`.

    ``sparsity``/``density`` are over prunable weights only; ``params``/``remaining_params`` count
    every leaf (biases and batch-norm included, always kept).
    """

    rows: tuple[LayerRow, ...]
    num_prunable: int
    num_pruned: int
    sparsity: float
    density: float
    params: int
    remaining_params: int
    collapsed: tuple[Path, ...]  # prunable layers with zero kept weights
    macs: int | None
    remaining_macs: float | None


def collapsed_layers(
    mask: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
) -> list[Path]:
    """Prunable layers whose mask keeps no weight at all (the network is then disconnected)."""
    paths, leaves, flags, _ = flatten_prunable(mask, prunable, keep_dense)
    return [
        p
        for p, m, f in zip(paths, leaves, flags, strict=True)
        if f and not bool(np.asarray(m).any())
    ]


def summary(
    params: PyTree,
    mask: PyTree,
    *,
    prunable: Predicate | None = None,
    keep_dense: Iterable[Sequence[str | int]] = (),
    macs: Mapping[Sequence[str | int], int] | None = None,
) -> MaskReport:
    """Per-layer kept/total/density rows, totals and the collapsed layers of ``mask``.

    Args:
      params: the params pytree the mask refers to.
      mask: bool pytree mirroring ``params`` (checked with :func:`check_mask_tree`).
      prunable, keep_dense: the prunable filter used to build the mask.
      macs: optional ``{path: dense multiply-accumulates}`` from model-aware code (a kernel's MACs
        per example); rows then report ``remaining_macs = macs * density``, and the report totals
        them (layers absent from ``macs`` count as unknown and are left out of the totals).

    Returns:
      A :class:`MaskReport`. Needs concrete arrays (call outside ``jit``).
    """
    check_mask_tree(params, mask)
    paths, leaves, flags, _ = flatten_prunable(params, prunable, keep_dense)
    dense = normalize_keep_dense(keep_dense)
    macs = {tuple(k): int(v) for k, v in (macs or {}).items()}
    unknown = set(macs) - set(paths)
    if unknown:
        raise ValueError(f"macs names paths not in params: {sorted(map(str, unknown))}")
    m_leaves = jax.tree.leaves(mask)
    rows = []
    total = kept_all = n_pr = kept_pr = 0
    for path, leaf, m, f in zip(paths, leaves, m_leaves, flags, strict=True):
        m = np.asarray(m)
        size, kept = int(m.size), int(m.sum())
        total += size
        kept_all += kept
        if f:
            n_pr += size
            kept_pr += kept
        if f or path in dense:
            d = kept / size if size else 1.0
            lm = macs.get(path)
            rows.append(
                LayerRow(
                    path,
                    tuple(np.shape(leaf)),
                    kept,
                    size,
                    d,
                    f,
                    lm,
                    None if lm is None else lm * d,
                )
            )
    known = [r for r in rows if r.macs is not None]
    sp = 1.0 - kept_pr / n_pr if n_pr else 0.0
    return MaskReport(
        rows=tuple(rows),
        num_prunable=n_pr,
        num_pruned=n_pr - kept_pr,
        sparsity=sp,
        density=1.0 - sp,
        params=total,
        remaining_params=kept_all,
        collapsed=tuple(r.path for r in rows if r.prunable and r.kept == 0),
        macs=sum(r.macs for r in known) if known else None,
        remaining_macs=sum(r.remaining_macs for r in known) if known else None,
    )


def format_report(report: MaskReport) -> str:
    """A plain-text table of a :class:`MaskReport` (one line per layer, then totals)."""
    with_macs = report.macs is not None
    head = f"{'layer':<32} {'shape':<18} {'kept':>10} {'total':>10} {'density':>8}"
    head += f" {'MACs left':>12}" if with_macs else ""
    lines = [head, "-" * len(head)]
    for r in report.rows:
        name = "/".join(map(str, r.path)) + ("" if r.prunable else " (dense)")
        line = f"{name:<32} {str(r.shape):<18} {r.kept:>10} {r.total:>10} {r.density:>8.4f}"
        if with_macs:
            line += f" {'?' if r.remaining_macs is None else f'{round(r.remaining_macs):,}':>12}"
        lines.append(line)
    lines.append(
        f"sparsity {report.sparsity:.4f} (density {report.density:.4f}, "
        f"compression {1 / report.density if report.density else float('inf'):.4g}x): "
        f"{report.num_pruned:,} of {report.num_prunable:,} prunable weights removed; "
        f"{report.remaining_params:,} of {report.params:,} params remain"
    )
    if with_macs:
        lines.append(f"MACs: {round(report.remaining_macs):,} of {report.macs:,} remain "
                     f"({100 * report.remaining_macs / max(report.macs, 1):.2f}%)")
    if report.collapsed:
        lines.append(
            "WARNING: layer collapse, no weight kept in "
            + ", ".join("/".join(map(str, p)) for p in report.collapsed)
        )
    return "\n".join(lines)

