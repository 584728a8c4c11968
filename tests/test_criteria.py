"""Criteria against independent references, the papers' invariants, and one registry contract."""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from flax import nnx
from jax.flatten_util import ravel_pytree

from jaxprune import allocation, criteria, masks

# ---------------------------------------------------------------------------------------------
# Tiny models, written out so the tests depend on nothing but jax.
# ---------------------------------------------------------------------------------------------


def _dense(rng, d_in, d_out, bias=True):
    p = {"kernel": jnp.asarray(rng.standard_normal((d_in, d_out)) / np.sqrt(d_in), jnp.float32)}
    if bias:
        p["bias"] = jnp.asarray(0.1 * rng.standard_normal((d_out,)), jnp.float32)
    return p


def mlp_init(seed, sizes=(5, 4, 4, 3), bias=True):
    """NumPy-drawn weights (no per-shape compilation of jax.random in eager mode)."""
    rng = np.random.default_rng(seed)
    return {
        f"fc{i}": _dense(rng, a, b, bias)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }


def mlp_apply(params, x):
    n = len(params)
    for i in range(n):
        p = params[f"fc{i}"]
        x = x @ p["kernel"] + (p["bias"][None, :] if "bias" in p else 0.0)
        if i < n - 1:
            x = jax.nn.relu(x)
    return x


def convnet_init(seed):
    """conv 3x3 (1 -> 2 channels) on 4x4 images, flatten (32), dense -> 3 classes."""
    rng = np.random.default_rng(seed)
    return {
        "conv": {
            "kernel": jnp.asarray(rng.standard_normal((3, 3, 1, 2)) / 3.0, jnp.float32),
            "bias": jnp.asarray(0.1 * rng.standard_normal((2,)), jnp.float32),
        },
        "head": _dense(rng, 32, 3),
    }


def convnet_apply(params, x):  # x (N, 4, 4, 1)
    y = jax.lax.conv_general_dilated(
        x, params["conv"]["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )  # (N, 4, 4, 2)
    y = jax.nn.relu(y + params["conv"]["bias"][None, None, None, :])
    y = y.reshape(y.shape[0], -1)  # (N, 32)
    return y @ params["head"]["kernel"] + params["head"]["bias"][None, :]


def xent(apply_fn):
    return criteria.softmax_xent_with_temperature(apply_fn, 1.0)


CONV_BATCH = (
    jnp.asarray(np.random.default_rng(10).standard_normal((6, 4, 4, 1)), jnp.float32),
    jnp.array([0, 1, 2, 0, 1, 2]),
)

def _tiny_scorer():
    """An untrained AutoS scorer (the contract does not depend on what it learned)."""
    from jaxprune.criteria import learned

    net = learned.ScorerNet((4, 4))
    v = net.init(jax.random.key(0), jnp.zeros((2, 2)))
    return learned.Scorer(v, (4, 4), "none", np.zeros(2, np.float32), np.ones(2, np.float32), {})


# Factory kwargs for every registered criterion. A new criterion must be added here.
FACTORY_KWARGS = {
    "autos": {"scorer": _tiny_scorer(), "loss_fn": xent(convnet_apply)},
    "random": {},
    "magnitude": {},
    "trained_magnitude": {},
    "snip": {"loss_fn": xent(convnet_apply)},
    "iterative_snip": {"loss_fn": xent(convnet_apply)},
    "grasp": {"loss_fn": criteria.softmax_xent_with_temperature(convnet_apply, 200.0)},
    "synflow": {"apply_fn": convnet_apply, "input_shape": (4, 4, 1)},
}

# ---------------------------------------------------------------------------------------------
# The contract, over every registered criterion.
# ---------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::jaxprune.masks.LayerCollapseWarning")  # sparsity 1.0 etc.
@pytest.mark.parametrize("name", criteria.names())
def test_criterion_contract(name):
    assert name in FACTORY_KWARGS, f"add factory kwargs for the new criterion {name!r}"
    score_fn = criteria.get(name, **FACTORY_KWARGS[name])
    params = convnet_init(0)

    def call(p, k):
        return score_fn(p, batch=CONV_BATCH, key=k)

    jcall = jax.jit(call)
    key = jax.random.key(1)
    scores = jcall(params, key)
    assert jax.tree.structure(scores) == jax.tree.structure(params)
    for s, p in zip(jax.tree.leaves(scores), jax.tree.leaves(params), strict=True):
        assert s.shape == p.shape
        assert bool(jnp.all(jnp.isfinite(s)))
    jax.tree.map(np.testing.assert_array_equal, scores, jcall(params, key))  # deterministic

    keys = jax.random.split(jax.random.key(2), 3)
    over_keys = jax.jit(jax.vmap(call, in_axes=(None, 0)))(params, keys)
    for i in range(3):
        jax.tree.map(
            lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-7),
            over_keys,
            jcall(params, keys[i]),
        )

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[convnet_init(s) for s in (3, 4, 5)])
    over_params = jax.vmap(jcall, in_axes=(0, None))(stacked, key)  # vmap of a jit, too
    for i in range(3):
        p_i = jax.tree.map(lambda x, i=i: x[i], stacked)
        jax.tree.map(
            lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-7),
            over_params,
            jcall(p_i, key),
        )

    n = len(jnp.ravel(params["conv"]["kernel"])) + len(jnp.ravel(params["head"]["kernel"]))
    for sparsity in (0.0, 0.37, 0.9, 1.0):
        for alloc in ("global", "erk"):
            mask = allocation.mask_by_allocation(scores, sparsity, alloc)
            assert masks.summary(params, mask).num_pruned == round(sparsity * n)


class CriterionVariantsTest(chex.TestCase):
    """Every registered criterion computes the same scores called eagerly and under ``jit``."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*criteria.names())
    def test_scores_with_and_without_jit(self, name):
        score_fn = criteria.get(name, **FACTORY_KWARGS[name])
        params, key = convnet_init(0), jax.random.key(1)
        scores = self.variant(lambda p, k: score_fn(p, batch=CONV_BATCH, key=k))(params, key)
        chex.assert_trees_all_equal_shapes(scores, params)
        chex.assert_tree_all_finite(scores)
        reference = jax.jit(lambda p, k: score_fn(p, batch=CONV_BATCH, key=k))(params, key)
        chex.assert_trees_all_close(scores, reference, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# SNIP
# ---------------------------------------------------------------------------------------------


def _numpy_snip(params, x, y):
    """|theta * dL/dtheta| for a 2-hidden-layer ReLU MLP + mean softmax CE, backprop by hand."""
    W = [np.asarray(params[f"fc{i}"]["kernel"], np.float64) for i in range(3)]
    b = [np.asarray(params[f"fc{i}"]["bias"], np.float64) for i in range(3)]
    x = np.asarray(x, np.float64)
    h1 = x @ W[0] + b[0]
    a1 = np.maximum(h1, 0)
    h2 = a1 @ W[1] + b[1]
    a2 = np.maximum(h2, 0)
    z = a2 @ W[2] + b[2]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(z.shape[1])[np.asarray(y)]
    dz = (p - onehot) / x.shape[0]
    dW2, db2 = a2.T @ dz, dz.sum(0)
    dh2 = (dz @ W[2].T) * (h2 > 0)
    dW1, db1 = a1.T @ dh2, dh2.sum(0)
    dh1 = (dh2 @ W[1].T) * (h1 > 0)
    dW0, db0 = x.T @ dh1, dh1.sum(0)
    grads = [(dW0, db0), (dW1, db1), (dW2, db2)]
    return {
        f"fc{i}": {"kernel": np.abs(W[i] * gw), "bias": np.abs(b[i] * gb)}
        for i, (gw, gb) in enumerate(grads)
    }


def test_snip_matches_mask_gradient_and_numpy_backprop():
    params = mlp_init(0)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((8, 5)), jnp.float32)
    y = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])
    loss_fn = xent(mlp_apply)
    scores = jax.jit(criteria.snip(loss_fn))(params, batch=(x, y))

    # |dL/dm| at m = 1 through an explicit multiplicative mask
    ones = jax.tree.map(jnp.ones_like, params)
    mask_grad = jax.jit(jax.grad(lambda m: loss_fn(jax.tree.map(jnp.multiply, params, m), (x, y))))
    dmask = mask_grad(ones)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, jnp.abs(b), rtol=1e-6), scores, dmask)

    ref = _numpy_snip(params, x, y)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), scores, ref)


# ---------------------------------------------------------------------------------------------
# GraSP
# ---------------------------------------------------------------------------------------------


def test_grasp_hg_matches_dense_hessian():
    with jax.enable_x64(True):
        params = jax.tree.map(lambda p: p.astype(jnp.float64), mlp_init(4))
        x = jnp.asarray(np.random.default_rng(5).standard_normal((6, 5)), jnp.float64)
        batch = (x, jnp.array([0, 1, 2, 2, 1, 0]))
        loss_fn = criteria.softmax_xent_with_temperature(mlp_apply, 200.0)
        flat, unravel = ravel_pytree(params)
        assert flat.size < 80 and flat.dtype == jnp.float64
        is_kernel = ravel_pytree(
            {
                k: {"kernel": jnp.ones_like(v["kernel"]), "bias": jnp.zeros_like(v["bias"])}
                for k, v in params.items()
            }
        )[0]

        @jax.jit
        def run(params):
            flat = ravel_pytree(params)[0]
            H = jax.hessian(lambda f: loss_fn(unravel(f), batch))(flat)  # dense (P, P)
            g = ravel_pytree(jax.grad(loss_fn)(params, batch))[0]
            restricted = ravel_pytree(criteria.grasp(loss_fn)(params, batch=batch))[0]
            full = criteria.grasp(loss_fn, prunable=lambda path, leaf: True)(params, batch=batch)
            return H, g, restricted, ravel_pytree(full)[0]

        H, g, restricted, full = run(params)
        # default: g lives on the kernels only (as the reference differentiates weights only)
        np.testing.assert_allclose(restricted, flat * (H @ (g * is_kernel)), rtol=1e-9, atol=1e-20)
        np.testing.assert_allclose(full, flat * (H @ g), rtol=1e-9, atol=1e-20)

        # The reference rule prunes the LARGEST of -theta * Hg: every weight we remove must have
        # a reference score >= every weight we keep, and the count must be exact.
        ref_s = np.asarray(-flat * (H @ (g * is_kernel)))
        mask = np.asarray(
            ravel_pytree(
                jax.tree.map(
                    lambda m: m.astype(jnp.float64), masks.mask_by_topk(unravel(restricted), 0.5)
                )
            )[0]
        )
        idx = np.flatnonzero(np.asarray(is_kernel))
        removed, kept = idx[mask[idx] == 0], idx[mask[idx] == 1]
        assert removed.size == round(0.5 * idx.size)
        assert ref_s[removed].min() >= ref_s[kept].max()


# ---------------------------------------------------------------------------------------------
# SynFlow
# ---------------------------------------------------------------------------------------------


def test_synflow_conservation_bias_free_relu_mlp():
    params = mlp_init(6, sizes=(4, 6, 5, 3), bias=False)
    s = jax.jit(criteria.synflow(mlp_apply, (4,)))(params)
    S = [np.asarray(s[f"fc{i}"]["kernel"], np.float64) for i in range(3)]
    for lower, upper in zip(S[:-1], S[1:], strict=True):  # neuron-wise: incoming sum = outgoing sum
        np.testing.assert_allclose(lower.sum(0), upper.sum(1), rtol=1e-5)
    totals = [x.sum() for x in S]  # layer-wise: every layer's total is R
    np.testing.assert_allclose(totals, totals[0], rtol=1e-5)


def _numpy_synflow(kernels):
    """float64 reference for a bias-free MLP with non-negative weights (ReLU is then identity)."""
    A = [np.abs(np.asarray(k, np.float64)) for k in kernels]
    u = [np.ones((1, A[0].shape[0]))]  # activation entering each layer
    for a in A[:-1]:
        u.append(u[-1] @ a)
    v = [np.ones((A[-1].shape[1], 1))]  # dR/d(output of each layer), from the top
    for a in A[:0:-1]:
        v.insert(0, a @ v[0])
    return [a * (ui.T @ vi.T) for a, ui, vi in zip(A, u, v, strict=True)]


def test_synflow_float64_survives_where_float32_underflows():
    depth, width = 30, 2
    sizes = (width,) * (depth + 1)
    params = jax.tree.map(lambda w: 0.01 * w, mlp_init(7, sizes, bias=False))
    f32 = jax.jit(criteria.synflow(mlp_apply, (width,), compute_dtype="float32"))(params)
    assert all(float(jnp.max(x)) == 0.0 for x in jax.tree.leaves(f32))  # the failure mode

    scores = jax.jit(criteria.synflow(mlp_apply, (width,)))(params)
    flat = np.concatenate([np.ravel(scores[f"fc{i}"]["kernel"]) for i in range(depth)])
    assert flat.dtype == np.float32 and np.all(np.isfinite(flat)) and np.all(flat > 0)
    ref = _numpy_synflow([params[f"fc{i}"]["kernel"] for i in range(depth)])
    ref_flat = np.concatenate([np.ravel(r) for r in ref])
    assert ref_flat.max() < 1e-50  # far below float32's range
    np.testing.assert_allclose(flat, ref_flat / ref_flat.max(), rtol=1e-5)
    np.testing.assert_array_equal(np.argsort(flat, stable=True), np.argsort(ref_flat, stable=True))


def test_synflow_float64_reaches_a_flax_linen_model():
    """Linen layers without an explicit dtype promote to float64 params/inputs: no underflow."""

    class Deep(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(12):
                x = nn.relu(
                    nn.Dense(2, use_bias=False, kernel_init=nn.initializers.normal(1e-4))(x)
                )
            return x

    model = Deep()
    params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 2)))["params"]
    apply_fn = lambda p, x: model.apply({"params": p}, x)
    f32 = criteria.synflow(apply_fn, (2,), compute_dtype="float32")(params)
    f64 = criteria.synflow(apply_fn, (2,))(params)
    assert max(float(jnp.max(x)) for x in jax.tree.leaves(f32)) == 0.0
    assert min(float(jnp.min(x)) for x in jax.tree.leaves(f64)) > 0.0


def test_synflow_scores_equal_abs_theta_grad_on_original_params():
    params = convnet_init(8)
    s = jax.jit(criteria.synflow(convnet_apply, (4, 4, 1), normalize=False))(params)
    # R as a function of the ORIGINAL theta through |theta|
    ones = jnp.ones((1, 4, 4, 1))
    g = jax.jit(jax.grad(lambda p: jnp.sum(convnet_apply(jax.tree.map(jnp.abs, p), ones))))(params)
    jax.tree.map(
        lambda a, p, gg: np.testing.assert_allclose(a, jnp.abs(p * gg), rtol=1e-5), s, params, g
    )


def test_synflow_vmaps_when_apply_fn_closes_over_per_seed_arrays():
    """Regression: an ``apply_fn`` closing over arrays mapped with the params (batch-norm running
    statistics of stacked inits) broke the float64 ``custom_vmap`` (AssertionError inside jax):
    a float shift and an int32 scale, both per seed, under vmap, jit(vmap) and lax.map."""
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), mlp_init(0), mlp_init(1))  # (2, ...)
    shifts = jnp.array([[0.5, -1.0, 2.0, 0.0, 1.0], [-2.0, 0.3, 0.0, 1.5, -0.7]])  # (2, 5)
    scales = jnp.array([1, 3], jnp.int32)  # (2,)

    def per_seed(params, shift, scale):
        apply_fn = lambda p, x: mlp_apply(p, jax.nn.relu(x - shift[None, :]) * scale)
        return criteria.synflow(apply_fn, (5,))(params)

    args = (stacked, shifts, scales)
    loop = [per_seed(*jax.tree.map(lambda a, i=i: a[i], args)) for i in range(2)]
    assert not np.allclose(loop[0]["fc0"]["kernel"], loop[1]["fc0"]["kernel"])
    for run in (jax.vmap(per_seed), jax.jit(jax.vmap(per_seed)),
                jax.jit(lambda *a: jax.lax.map(lambda b: per_seed(*b), a))):
        got = run(*args)
        for i, ref in enumerate(loop):
            jax.tree.map(lambda g, r, i=i: np.testing.assert_allclose(g[i], r, rtol=1e-6),
                         got, ref)


# ---------------------------------------------------------------------------------------------
# Any pytree: a Flax NNX model through nnx.split / nnx.merge.
# ---------------------------------------------------------------------------------------------


class _NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(5, 4, rngs=rngs)
        self.l2 = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


def test_nnx_state_as_params():
    graphdef, params = nnx.split(_NNXMLP(nnx.Rngs(0)))
    apply_fn = lambda p, x: nnx.merge(graphdef, p)(x)
    batch = (
        jnp.asarray(np.random.default_rng(9).standard_normal((4, 5)), jnp.float32),
        jnp.array([0, 1, 2, 0]),
    )
    assert masks.prunable_paths(params) == [("l1", "kernel"), ("l2", "kernel")]
    for name in criteria.names():
        kw = {
            "autos": {"scorer": _tiny_scorer(), "loss_fn": xent(apply_fn)},
            "random": {},
            "magnitude": {},
            "trained_magnitude": {},
            "snip": {"loss_fn": xent(apply_fn)},
            "iterative_snip": {"loss_fn": xent(apply_fn)},
            "grasp": {"loss_fn": xent(apply_fn)},
            "synflow": {"apply_fn": apply_fn, "input_shape": (5,)},
        }[name]
        score_fn = criteria.get(name, **kw)
        scores = score_fn(params, batch=batch, key=jax.random.key(0))
        assert jax.tree.structure(scores) == jax.tree.structure(params)
        mask = masks.mask_by_topk(scores, 0.5)
        assert masks.summary(params, mask).num_pruned == 16  # round(0.5 * (20 + 12))
        pruned = nnx.merge(graphdef, masks.apply_mask(params, mask))
        assert (
            int(jnp.sum(pruned.l1.kernel[...] == 0)) + int(jnp.sum(pruned.l2.kernel[...] == 0))
            >= 16
        )


# ---------------------------------------------------------------------------------------------
# Misuse
# ---------------------------------------------------------------------------------------------


def test_criteria_misuse():
    params = convnet_init(0)
    with pytest.raises(ValueError, match="unknown criterion 'snipp'; valid names: .*'snip'"):
        criteria.get("snipp")
    with pytest.raises(TypeError, match="missing a required argument: 'loss_fn'"):
        criteria.get("snip")
    with pytest.raises(TypeError, match="input_shape"):
        criteria.get("synflow", apply_fn=convnet_apply)
    with pytest.raises(TypeError, match="unexpected keyword"):
        criteria.get("magnitude", loss_fn=None)
    with pytest.raises(ValueError, match="'snip' criterion needs batch="):
        criteria.get("snip", loss_fn=xent(convnet_apply))(params)
    with pytest.raises(ValueError, match="'grasp' criterion needs batch="):
        criteria.get("grasp", loss_fn=xent(convnet_apply))(params)
    with pytest.raises(ValueError, match="'random' criterion needs key="):
        criteria.get("random")(params)
    with pytest.raises(TypeError, match="needs loss_fn= a function"):
        criteria.get("snip", loss_fn=3)
