"""Network Slimming: the optax regularizer against a hand-written update, and end to end."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from structured_helpers import random_variables

from jaxprune.structured import (
    add_l1_subgradient,
    bn_scale_paths,
    channel_groups,
    criteria,
    is_bn_scale,
    mask_channels,
    network_slimming,
    prune_by_global_threshold,
    prune_channels,
)


def _tree():
    rng = np.random.default_rng(0)
    f = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
    params = {
        "conv1": {"kernel": f(3, 3, 2, 3)},
        "conv1_bn": {"scale": jnp.array([0.5, -0.2, 0.0]), "bias": f(3)},
        "block": {"conv2_bn": {"scale": jnp.array([-1.0, 2.0]), "bias": f(2)}},
        "fc": {"kernel": f(3, 4), "bias": f(4)},
    }
    grads = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32), params)
    return params, grads


def test_regularizer_matches_hand_written_sgd_step():
    params, grads = _tree()
    s, lr = 0.1, 0.5
    tx = optax.chain(network_slimming(s), optax.sgd(lr))
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)

    # By hand: theta - lr * (g + s * sign(gamma)) on BN scales only; sign(0) = 0.
    expect = jax.tree.map(lambda p, g: p - lr * g, params, grads)
    for path in (("conv1_bn",), ("block", "conv2_bn")):
        p = params[path[0]] if len(path) == 1 else params[path[0]][path[1]]
        g = grads[path[0]] if len(path) == 1 else grads[path[0]][path[1]]
        hand = np.asarray(p["scale"]) - lr * (np.asarray(g["scale"]) + s * np.sign(p["scale"]))
        tgt = expect[path[0]] if len(path) == 1 else expect[path[0]][path[1]]
        tgt["scale"] = hand
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new, expect)


def test_regularizer_paths_predicate_and_errors():
    params, grads = _tree()
    tx = add_l1_subgradient(1.0, paths=[("conv1_bn", "scale")])
    out, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(
        out["conv1_bn"]["scale"], grads["conv1_bn"]["scale"] + jnp.array([1.0, -1.0, 0.0])
    )
    np.testing.assert_array_equal(
        out["block"]["conv2_bn"]["scale"], grads["block"]["conv2_bn"]["scale"]
    )
    tx = add_l1_subgradient(1.0, predicate=lambda path, leaf: path == ("fc", "bias"))
    out, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(
        out["fc"]["bias"], grads["fc"]["bias"] + jnp.sign(params["fc"]["bias"])
    )
    assert is_bn_scale(("a_bn", "scale"), None) and not is_bn_scale(("a", "scale"), None)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(grads, tx.init(params))
    with pytest.raises(ValueError, match="not both"):
        add_l1_subgradient(1.0, paths=[], predicate=is_bn_scale)
    s = channel_groups("vgg11", classifier_widths=(16,), width_multiplier=0.0625)
    assert bn_scale_paths(s)[0] == ("conv1_bn", "scale") and len(bn_scale_paths(s)) == 9


def test_network_slimming_end_to_end():
    """Sparsity training (a few steps), global |gamma| threshold, surgery: outputs equal."""
    s = channel_groups("vgg11", width_multiplier=0.0625, classifier_widths=())
    v = random_variables(s.model, (32, 32, 3), seed=0)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((8, 32, 32, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 8), jnp.int32)
    tx = optax.chain(network_slimming(1e-2), optax.sgd(0.05, momentum=0.9))

    @jax.jit
    def step(params, stats, opt_state):
        def loss(p):
            logits, upd = s.model.apply(
                {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd

        (_, upd), g = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), upd["batch_stats"], opt_state

    params, stats = v["params"], v["batch_stats"]
    opt_state = tx.init(params)
    for _ in range(3):
        params, stats, opt_state = step(params, stats, opt_state)
    trained = {"params": params, "batch_stats": stats}

    scores = criteria.get("bn_scale", structure=s)(trained)
    keep = prune_by_global_threshold(s, scores, ratio=0.5)
    total = sum(g.width for g in s.groups)
    assert sum(k.size for k in keep.values()) == total - total // 2
    kept = np.concatenate([np.asarray(scores[n])[keep[n]] for n in keep])
    gone = np.concatenate([np.delete(np.asarray(scores[n]), keep[n]) for n in keep])
    assert gone.max() <= kept.min()  # one global threshold on raw |gamma|

    pruned = prune_channels(s, trained, keep)

    @jax.jit
    def both(wide, narrow):
        return s.model.apply(mask_channels(s, wide, keep), x), pruned.model.apply(narrow, x)

    masked, narrow = both(trained, pruned.variables)
    np.testing.assert_allclose(narrow, masked, rtol=1e-4, atol=1e-5)
