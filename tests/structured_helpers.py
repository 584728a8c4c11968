"""Helpers shared by the structured-pruning tests: random variables and keep-sets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import masks


def random_variables(model, input_shape, seed=0):
    """Random params and NON-trivial batch_stats, drawn in NumPy (no per-shape jax.random).

    Kernels ~ N(0, 1/fan_in), biases and BN betas ~ N(0, 0.3), BN gammas ~ U(0.5, 1.5),
    running means ~ N(0, 0.3), running variances ~ U(0.5, 2).
    """
    rng = np.random.default_rng(seed)
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)

    def draw(keypath, leaf):
        path = masks.path_tuple(keypath)
        shape, last = leaf.shape, path[-1]
        if last == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            a = rng.standard_normal(shape) / np.sqrt(fan_in)
        elif last == "scale":
            a = rng.uniform(0.5, 1.5, shape)
        elif last == "var":
            a = rng.uniform(0.5, 2.0, shape)
        else:  # bias, mean
            a = 0.3 * rng.standard_normal(shape)
        return jnp.asarray(a, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, dict(shapes))


def random_keep(structure, seed=0, fraction=0.5):
    """About ``fraction`` of each group's channels, at least one in every stage prefix."""
    rng = np.random.default_rng(seed)
    keep = {}
    for g in structure.groups:
        k = rng.random(g.width) < fraction
        for t in g.targets:  # no empty stage (option-A residual groups)
            if not k[: t.size].any():
                k[rng.integers(t.size)] = True
        if k.all():
            k[rng.integers(g.width)] = False if g.width > 1 else True
        keep[g.name] = np.flatnonzero(k)
    return keep

