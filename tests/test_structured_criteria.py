"""Channel criteria against independent references, gates, and a registry contract."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from structured_helpers import random_variables

from jaxprune.structured import apply_with_gates, channel_groups, criteria, init_gates

MLP = ("lenet_300_100", (4, 4, 1), {"widths": (7, 5)})
VGG = ("vgg11", (32, 32, 3), {"width_multiplier": 0.0625, "classifier_widths": ()})


def _setup(case, seed=0, residual=False):
    name, shape, opts = case
    s = channel_groups(name, residual=residual, **opts)
    return s, random_variables(s.model, shape, seed), shape


def _batch(shape, n=3, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((n, *shape)), jnp.float32)
    return x, jnp.asarray(rng.integers(0, 10, n), jnp.int32)


def test_l1_matches_numpy_filter_norms():
    s, v, _ = _setup(VGG)
    scores = criteria.get("l1", structure=s)(v)
    for i in range(8):
        k = np.asarray(v["params"][f"conv{i + 1}"]["kernel"])
        np.testing.assert_allclose(scores[f"conv{i + 1}"], np.abs(k).sum(axis=(0, 1, 2)), rtol=1e-5)


def test_l1_and_bn_scale_on_option_a_residual_group():
    s = channel_groups("resnet20", residual=True, width_multiplier=0.25)  # stages 4, 8, 16
    v = random_variables(s.model, (8, 8, 3), seed=1)
    p = v["params"]
    producers = [("stem", 4)] + [
        (f"stage{st}_block{b:02d}", w) for st, w in ((1, 4), (2, 8), (3, 16)) for b in range(3)
    ]
    l1_ref, gamma_sum, gamma_n = np.zeros(16), np.zeros(16), np.zeros(16)
    for layer, w in producers:
        conv = p[layer]["kernel"] if layer == "stem" else p[layer]["conv2"]["kernel"]
        bn = p["stem_bn"] if layer == "stem" else p[layer]["conv2_bn"]
        l1_ref[:w] += np.abs(np.asarray(conv)).sum(axis=(0, 1, 2))
        gamma_sum[:w] += np.abs(np.asarray(bn["scale"]))
        gamma_n[:w] += 1
    l1 = criteria.get("l1", structure=s)(v)
    assert list(l1) == s.group_names  # group order, the residual group last
    np.testing.assert_allclose(l1["residual"], l1_ref, rtol=1e-5)
    np.testing.assert_allclose(
        criteria.get("bn_scale", structure=s)(v)["residual"], gamma_sum / gamma_n, rtol=1e-6
    )
    assert gamma_n.tolist() == [10] * 4 + [6] * 4 + [3] * 8


def test_bn_scale_is_abs_gamma_and_needs_batch_norm():
    s, v, _ = _setup(VGG)
    scores = criteria.get("bn_scale", structure=s)(v)
    np.testing.assert_array_equal(scores["conv3"], np.abs(v["params"]["conv3_bn"]["scale"]))
    with pytest.raises(ValueError, match=r"\['fc1', 'fc2'\] have none"):
        criteria.get("bn_scale", structure=channel_groups("lenet_300_100"))


def _fisher_terms(s, v, x, y, scaled):
    """Independent per-example Fisher terms ``(sum_pos a * dL_n/da)^2``, shape (N, width).

    Instead of gating, ``scaled(params, name, t)`` multiplies group ``name``'s output by ``t``
    through its parameters (a dense layer's column and bias; a batch norm's scale and bias);
    per-example derivatives at ``t = 1`` by ``jax.jacrev`` of the per-example loss vector. No
    interceptors, no gates. The Fisher score is half the mean over examples.
    """

    @jax.jit
    def per_example_grads(ts):
        def losses(ts):
            params = v["params"]
            for name, t in ts.items():
                params = scaled(params, name, t)
            logits = s.model.apply({**v, "params": params}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y)  # (N,)

        return jax.jacrev(losses)(ts)  # {group: (N, width)}

    jac = per_example_grads({g.name: jnp.ones(g.width) for g in s.groups})
    return {k: np.square(np.asarray(a)) for k, a in jac.items()}


def _fisher_reference(s, v, x, y, scaled):
    return {k: 0.5 * t.mean(axis=0) for k, t in _fisher_terms(s, v, x, y, scaled).items()}


def test_fisher_matches_reparametrized_reference_mlp():
    s, v, shape = _setup(MLP)
    x, y = _batch(shape, n=4)

    def scaled(params, name, t):
        layer = dict(params[name])
        layer["kernel"] = layer["kernel"] * t[None, :]
        layer["bias"] = layer["bias"] * t
        return {**params, name: layer}

    got = criteria.get("fisher", structure=s)(v, batch=(x, y))
    ref = _fisher_reference(s, v, x, y, scaled)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=2e-4, atol=1e-9)


def test_fisher_matches_reference_vgg_and_accumulates_batches():
    s, v, shape = _setup(VGG)
    x, y = _batch(shape, n=4, seed=1)

    def scaled(params, name, t):
        bn = dict(params[f"{name}_bn"])
        bn["scale"], bn["bias"] = bn["scale"] * t, bn["bias"] * t
        return {**params, f"{name}_bn": bn}

    fisher = criteria.get("fisher", structure=s)
    terms = _fisher_terms(s, v, x, y, scaled)  # (4, width) per group
    # Two mini-batches accumulate to the mean over all their examples; one batch alone too.
    both = fisher(v, batch=[(x[:2], y[:2]), (x[2:], y[2:])])
    first = fisher(v, batch=(x[:2], y[:2]))
    for k, t in terms.items():
        np.testing.assert_allclose(both[k], 0.5 * t.mean(axis=0), rtol=2e-4, atol=1e-9)
        np.testing.assert_allclose(first[k], 0.5 * t[:2].mean(axis=0), rtol=2e-4, atol=1e-9)
    with pytest.raises(ValueError, match="needs batch="):
        fisher(v)


def test_gates_of_one_leave_the_model_unchanged_and_have_gradients():
    s, v, shape = _setup(MLP)
    x, y = _batch(shape)
    gates = init_gates(s)
    gated = jax.jit(lambda v, g, x: apply_with_gates(s, v, g, x))(v, gates, x)
    np.testing.assert_allclose(gated, s.model.apply(v, x), rtol=1e-6)

    def loss(g):  # Pruning from Scratch: task loss + L1 on the gates
        logits = apply_with_gates(s, v, g, x)
        l1 = sum(jnp.sum(jnp.abs(a)) for a in jax.tree.leaves(g))
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() + 1e-2 * l1

    grads = jax.jit(jax.grad(loss))(gates)
    assert {k: a.shape for k, a in grads.items()} == {"fc1": (7,), "fc2": (5,)}
    with pytest.raises(ValueError, match="width 7"):
        apply_with_gates(s, v, {"fc1": jnp.ones(3)}, x)
    assert init_gates(s, batch_size=3, groups=["fc2"])["fc2"].shape == (3, 5)


@pytest.mark.parametrize("name", criteria.names())
def test_contract_every_registered_criterion(name):
    s, v, shape = _setup(VGG, seed=3)
    kwargs = {"batch": _batch(shape), "key": jax.random.key(0)}
    score_fn = criteria.get(name, structure=s)
    a, b = score_fn(v, **kwargs), score_fn(v, **kwargs)
    assert list(a) == s.group_names
    for g in s.groups:
        assert a[g.name].shape == (g.width,)
        assert np.all(np.isfinite(a[g.name]))
        np.testing.assert_array_equal(a[g.name], b[g.name])  # deterministic


def test_registry_errors_list_valid_names():
    with pytest.raises(ValueError, match="bn_scale.*fisher.*l1.*random"):
        criteria.get("taylor", structure=None)
    with pytest.raises(TypeError, match="structure"):
        criteria.get("l1")
    s, v, _ = _setup(MLP)
    with pytest.raises(ValueError, match="needs key="):
        criteria.get("random", structure=s)(v)
    r = criteria.get("random", structure=s)
    assert not np.allclose(r(v, key=jax.random.key(0))["fc1"], r(v, key=jax.random.key(1))["fc1"])
    with pytest.raises(TypeError, match="variables"):
        criteria.get("l1", structure=s)(v["params"])
