"""SynFlow: data-free iterative synaptic flow (Tanaka et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import custom_batching

from jaxprune.criteria.base import ScoreFn, compiled, require_callable

PyTree = Any


def synflow(
    apply_fn: Callable[[PyTree, jax.Array], jax.Array],
    input_shape: Sequence[int],
    *,
    compute_dtype: str = "float64",
    normalize: bool = True,
) -> ScoreFn:
    """Synaptic flow: ``score = |theta * dR/dtheta|`` with ``R = sum(f(|theta|, 1))``.

    Every leaf of ``params`` is replaced by its absolute value (the reference's ``linearize``), the
    network is run on one all-ones input of shape ``(1, *input_shape)``, ``R`` is the sum of its
    outputs, and ``score = |theta| * dR/d|theta|``, which equals ``|theta * dR/dtheta|`` for the
    original ``theta``. No data, labels or key are used.

    Numerics: ``R`` is a sum of products of one weight per layer, so over many layers, or after
    many pruning rounds, it underflows float32 to 0 (all scores 0) or overflows to inf. By default
    the whole computation runs in float64 under a local ``jax.enable_x64(True)`` context (global
    x64 mode is left untouched; ``jit``, ``vmap`` in any order, ``lax.map``/``scan``/``fori_loop``
    work: the float64 part is a ``jax.custom_batching.custom_vmap`` whose rule re-enters the
    context; the score function is not differentiable); ``apply_fn`` then
    receives float64 params and input, and Flax layers without an explicit ``dtype`` compute in
    float64 (a model built with ``dtype=jnp.float32`` would force float32 and lose this). With
    ``normalize=True`` the float64 scores are divided by their largest value (one positive number
    for the whole tree, so every ranking and mask is unchanged) before casting back to each leaf's
    dtype, so they fit in float32 without overflow. To keep them float64 through the top-k, pass
    float64 params inside ``jax.enable_x64(True)`` (the whole pruning program is then float64).
    On Synaptic-Flow's MNIST setting (6x100 MLP, 100 rounds, 100x and 1000x, zoo and PyTorch
    inits) the float32 cast changed no mask entry (``experiments/synflow_mnist/layers.py``).

    Batch norm: ``apply_fn`` must run the model in eval mode (running statistics), as the
    reference does (``model.eval()`` by default). The reference also takes the absolute value of
    buffers (running means); here only what is in ``params`` is made non-negative; at
    initialization running means are 0, so this is the same. ``apply_fn`` may close over such
    arrays, also when they are vmapped along with ``params`` (a stack of inits, one set of
    running statistics each): they are passed to the float64 part as arguments.

    Args:
      apply_fn: ``apply_fn(params, x) -> outputs`` for a batch ``x`` of shape (1, *input_shape).
      input_shape: one example's shape, no batch dim, e.g. ``(32, 32, 3)``.
      compute_dtype: ``"float64"`` (default) or ``"float32"`` (faster on accelerators without
        float64, exposed to the underflow above).
      normalize: divide by the global max score (see above); False returns the raw values.

    Returns:
      ``score_fn(params, *, batch=None, key=None) -> scores`` (``batch``, ``key`` ignored).

    Reference: https://arxiv.org/abs/2006.05467 (Alg. 1); code
    https://github.com/ganguli-lab/Synaptic-Flow (``Pruners/pruners.py``, ``SynFlow``)
    """
    require_callable(apply_fn, "synflow", "apply_fn", "(params, x) -> outputs")
    if compute_dtype not in ("float64", "float32"):
        raise ValueError(f"compute_dtype must be 'float64' or 'float32', got {compute_dtype!r}")
    try:
        shape = tuple(int(d) for d in input_shape)
    except TypeError:
        raise TypeError(
            f"synflow needs input_shape= one example's shape (no batch dim), got {input_shape!r}"
        ) from None

    def _scores(params: PyTree) -> PyTree:  # runs with x64 enabled when compute_dtype is f64
        cd = jnp.dtype(compute_dtype)
        abs_params = jax.tree.map(lambda p: jnp.abs(p).astype(cd), params)
        ones = jnp.ones((1, *shape), cd)
        grads = jax.grad(lambda q: jnp.sum(apply_fn(q, ones)))(abs_params)
        scores = jax.tree.map(lambda a, g: jnp.abs(a * g), abs_params, grads)
        if normalize:
            leaves = jax.tree.leaves(scores)
            top = jnp.max(jnp.stack([jnp.max(x, initial=0.0) for x in leaves])) if leaves else 1.0
            scale = jnp.where(top > 0, top, jnp.ones_like(top))
            scores = jax.tree.map(lambda s: s / scale, scores)
        dtype = lambda p: p.dtype if jnp.issubdtype(p.dtype, jnp.floating) else jnp.float32
        return jax.tree.map(lambda s, p: s.astype(dtype(p)), scores, params)

    if compute_dtype == "float32":
        return compiled(lambda params, *, batch=None, key=None: _scores(params))

    # float64 inside, params' dtypes outside. A transformation applied to an already-traced
    # function (vmap of a jit, of a fori_loop body, ...) re-processes its equations after the
    # local x64 context has exited, which breaks float64 code; custom_vmap makes every vmap
    # batch `_scores` under jax.vmap INSIDE the context instead. custom_vmap must not close over
    # batched values (it asserts that its closure is unbatched), yet `apply_fn` may close over
    # per-seed arrays (a batch-norm model's running statistics, vmapped with the params), so
    # `_scores` is traced once and every array it closes over is passed as an explicit argument.
    def score_fn(params: PyTree, *, batch: Any = None, key: jax.Array | None = None) -> PyTree:
        with jax.enable_x64(True):
            scores, consts = _hoist_closure(_scores, params)
            scores_x64 = custom_batching.custom_vmap(scores)

            @scores_x64.def_vmap
            def _vmap_rule(
                axis_size: int, in_batched: list, consts: list, params: PyTree
            ) -> tuple[PyTree, PyTree]:
                axes = tuple(jax.tree.map(lambda b: 0 if b else None, in_batched))
                with jax.enable_x64(True):
                    out = jax.vmap(scores, in_axes=axes, axis_size=axis_size)(consts, params)
                return out, jax.tree.map(lambda _: True, out)

            return scores_x64(consts, params)

    return compiled(score_fn)


def _hoist_closure(fn: Callable[..., PyTree], *args: Any) -> tuple[Callable[..., PyTree], list]:
    """``(g, consts)`` with ``g(consts, *args) == fn(*args)`` and no array in ``g``'s closure.

    ``fn`` is traced once (for the shapes of ``args``); every array its trace closes over, traced
    or not, whatever its dtype, becomes an entry of ``consts``. (``jax.closure_convert`` hoists
    only values that may carry a tangent, which leaves e.g. integer per-seed arrays behind.)
    """
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    out_tree = jax.tree.structure(out_shape)

    def g(consts: list, *args: Any) -> PyTree:
        out = jax.core.eval_jaxpr(closed.jaxpr, consts, *jax.tree.leaves(args))
        return jax.tree.unflatten(out_tree, out)

    return g, list(closed.consts)
