"""Tests for jaxprune.seeds: every strategy equals a plain Python loop over jax.jit(fn)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxprune import criteria, masks, seeds

N = 5  # seeds; not a multiple of CHUNK, so "chunked" runs a remainder chunk
CHUNK = 2
RUNS = [("vmap", None), ("map", None), ("chunked", CHUNK), ("loop", None), ("auto", None)]
# Batched matmuls/convs are different GEMMs, so XLA:CPU rounds differently. Measured on the SNIP
# scores below (jax 0.10.2, 2-core CPU): MLP vmap/chunked differ from the loop by up to ~2000 ulp
# on near-cancelling entries, i.e. |diff| <= 1e-5 |w| + 3.3e-8 max|w|; conv net vmap/map/chunked
# by up to 4.7e-8 max|w|. MLP "map" and "loop" are bitwise equal, elementwise functions bitwise
# equal under every strategy. Masks are identical in every case.
RTOL, ATOL_OF_MAX = 1e-5, 1e-6  # atol = ATOL_OF_MAX * max|leaf|: 20x the measured worst case


class TinyMLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)  # (B, 64)
        x = nn.relu(nn.Dense(16)(x))
        return nn.Dense(3)(x)  # (B, 3)


class TinyConvNet(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.Conv(3, (3, 3))(x))  # (B, 8, 8, 3)
        x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))  # (B, 4, 4, 4)
        return nn.Dense(3)(x.reshape(x.shape[0], -1))  # (B, 3)


def _batch(b: int = 4) -> tuple[jax.Array, jax.Array]:
    kx, ky = jax.random.split(jax.random.key(123))
    return jax.random.normal(kx, (b, 8, 8, 1)), jax.random.randint(ky, (b,), 0, 3)


def _snip_pruner(model: nn.Module):
    def loss_fn(params, batch):
        x, y = batch
        logits = model.apply({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    score_fn = criteria.get("snip", loss_fn=loss_fn)

    def prune_one(key: jax.Array, batch: tuple) -> tuple:
        params = model.init(key, batch[0])["params"]
        scores = score_fn(params, batch=batch)
        return scores, masks.mask_by_topk(scores, 0.7)

    return prune_one


PRUNE_MLP = _snip_pruner(TinyMLP())
PRUNE_CONV = _snip_pruner(TinyConvNet())


def _loop_reference(fn, keys, *args):
    """Independent reference: a Python loop over jax.jit(fn), stacked with numpy."""
    jitted = jax.jit(fn)
    outs = [jitted(keys[i], *args) for i in range(keys.shape[0])]
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *outs)


def assert_trees_close(got, want, *, exact: bool) -> None:
    """Leaf by leaf: bool leaves and ``exact`` runs bitwise; else rtol RTOL, atol by leaf scale."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        g, w = np.asarray(g), np.asarray(w)
        if exact or w.dtype == bool:
            np.testing.assert_array_equal(g, w)
        else:
            atol = ATOL_OF_MAX * float(np.abs(w).max(initial=0.0))
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=atol)


def _keys(n: int = N, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.key(seed), n)


@pytest.mark.parametrize(("strategy", "chunk_size"), RUNS)
def test_mlp_snip_masks_match_loop(strategy, chunk_size):
    keys, batch = _keys(), _batch()
    want = _loop_reference(PRUNE_MLP, keys, batch)
    got = seeds.map_seeds(PRUNE_MLP, keys, batch, strategy=strategy, chunk_size=chunk_size)
    assert_trees_close(got, want, exact=strategy in ("map", "loop"))
    # Each seed prunes exactly 70% of its kernels.
    kept = sum(m.sum(axis=(1, 2)) for m in jax.tree.leaves(want[1]) if m.ndim == 3)
    total = sum(m[0].size for m in jax.tree.leaves(want[1]) if m.ndim == 3)
    np.testing.assert_array_equal(kept, np.full(N, total - round(0.7 * total)))


@pytest.mark.parametrize(("strategy", "chunk_size"), RUNS)
def test_conv_snip_masks_match_loop(strategy, chunk_size):
    keys, batch = _keys(), _batch()
    want = _loop_reference(PRUNE_CONV, keys, batch)
    got = seeds.map_seeds(PRUNE_CONV, keys, batch, strategy=strategy, chunk_size=chunk_size)
    assert_trees_close(got, want, exact=strategy == "loop")


@pytest.mark.parametrize(("strategy", "chunk_size"), RUNS)
def test_elementwise_bitwise_equal_loop(strategy, chunk_size):
    keys, scale = _keys(), jnp.float32(3.0)
    got = seeds.map_seeds(_elementwise, keys, scale, strategy=strategy, chunk_size=chunk_size)
    assert_trees_close(got, _loop_reference(_elementwise, keys, scale), exact=True)


def _apply_mlp(x: jax.Array, variables: dict) -> jax.Array:
    return TinyMLP().apply(variables, x)


def test_choose_strategy_cpu_rule():
    keys, batch = _keys(), _batch()
    seed_args = ((keys, batch), (0, None))
    # Per-seed weights meet per-seed activations: grouped convs -> loop, batched matmuls -> map.
    assert seeds.choose_strategy(PRUNE_CONV, seed_args[0], in_axes=seed_args[1]) == "loop"
    assert seeds.choose_strategy(PRUNE_MLP, seed_args[0], in_axes=seed_args[1]) == "map"
    # Shared weights, N stacked inputs: vmap only makes the batch bigger.
    variables = TinyMLP().init(jax.random.key(0), batch[0])
    xs = jnp.ones((N, *batch[0].shape))
    data_args = ((xs, variables), (0, None))
    assert seeds.choose_strategy(_apply_mlp, data_args[0], in_axes=data_args[1]) == "vmap"
    assert seeds.choose_strategy(_elementwise, (keys, 1.0), in_axes=(0, None)) == "vmap"
    chunked = seeds.choose_strategy(_elementwise, (keys, 1.0), in_axes=(0, None), chunk_size=2)
    assert chunked == "chunked"
    # Elementwise scores and the exact top-k's loop (magnitude, random): map, not vmap.
    assert seeds.choose_strategy(_magnitude_mask, (keys,)) == "map"
    assert seeds.choose_strategy(_magnitude_mask, (keys,), chunk_size=2) == "map"
    for backend in ("gpu", "tpu"):
        for fn, (args, axes) in ((PRUNE_CONV, seed_args), (_apply_mlp, data_args)):
            assert seeds.choose_strategy(fn, args, in_axes=axes, backend=backend) == "vmap"
            with_chunks = seeds.choose_strategy(
                fn, args, in_axes=axes, backend=backend, chunk_size=2
            )
            assert with_chunks == "chunked"


def _conv(w: jax.Array, x: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@jax.custom_vjp
def _conv_custom(w, x):
    return _conv(w, x)


_conv_custom.defvjp(
    lambda w, x: (_conv(w, x), (w, x)),
    lambda res, g: (jnp.zeros_like(res[0]), jnp.zeros_like(res[1])),  # only traced, never used
)


def _matmul(w: jax.Array, x: jax.Array) -> jax.Array:
    return x.reshape(-1, 1) @ w.reshape(1, -1)[:, :1]  # (16, 1) @ (1, 1): shapes of conv below


def _twice(layer):
    def fn(w, x):
        h = layer(w, x)  # weight batched, input shared: vmap widens the weight's free dims
        return layer(w, h.reshape(x.shape)).sum()  # both batched: grouped conv / batched matmul

    return fn


_PLAIN, _JITTED, _CUSTOM = _twice(_conv), _twice(jax.jit(_conv)), _twice(_conv_custom)
_MATMULS = _twice(_matmul)


def _in_scan(w, x):
    return jax.lax.scan(lambda c, _: (c + _PLAIN(w, x), None), 0.0, None, length=2)[0]


def _in_cond(w, x):
    return jax.lax.cond(w.sum() > 0, _PLAIN, lambda w, x: 0.0, w, x)


def _matmuls_in_rounds(w, x):  # SynFlow's shape: rounds of forward/backward passes
    return jax.lax.fori_loop(0, 3, lambda i, c: c + jax.grad(_MATMULS)(w, x).sum(), 0.0)


def _matmuls_then_search(w, x):  # SNIP + top-k's shape: the loop is elementwise only
    s = _MATMULS(w, x)
    return jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 0.5), (0, s))[1]


def _once(w, x):
    return _conv(w, x).sum() + _matmul(w, x).sum()  # only the weight is batched


@pytest.mark.parametrize(
    ("fn", "want"),
    [
        (_PLAIN, "loop"),
        (_JITTED, "loop"),
        (_CUSTOM, "loop"),
        (_in_scan, "loop"),
        (_in_cond, "loop"),
        (_MATMULS, "map"),
        (_matmuls_in_rounds, "loop"),
        (_matmuls_then_search, "map"),
        (_once, "vmap"),
    ],
    ids=["conv", "jit", "custom_vjp", "scan", "cond", "matmul", "matmul_rounds", "matmul_search",
         "once"],
)
def test_auto_finds_batched_contractions_in_nested_jaxprs(fn, want):
    w, x = jnp.ones((3, 3, 3, 1, 1)), jnp.ones((1, 4, 4, 1))  # w: (N, H, W, I, O)
    assert seeds.choose_strategy(fn, (w, x), in_axes=(0, None)) == want
    # Shared weights, mapped inputs: contractions only get a bigger batch.
    assert seeds.choose_strategy(fn, (w[0], jnp.ones((3, 1, 4, 4, 1))), in_axes=(None, 0)) == "vmap"


def test_contracts_in_loop():
    w, x = jnp.ones((3, 3, 1, 1)), jnp.ones((1, 4, 4, 1))
    found = {f.__name__: seeds.contracts_in_loop(jax.make_jaxpr(f)(w, x).jaxpr)
             for f in (_in_scan, _in_cond, _matmuls_in_rounds, _matmuls_then_search, _once)}
    assert found == {"_in_scan": True, "_in_cond": False, "_matmuls_in_rounds": True,
                     "_matmuls_then_search": False, "_once": False}
    # Sharded runs cannot loop in Python: rounds of matmuls then run under lax.map.
    stacked = jnp.ones((3, *w.shape))
    assert seeds.choose_strategy(_matmuls_in_rounds, (stacked, x), in_axes=(0, None),
                                 devices=jax.devices()[:1]) == "map"


def test_count_contractions_plain_and_vmapped():
    w, x, ws = jnp.ones((3, 3, 1, 1)), jnp.ones((1, 4, 4, 1)), jnp.ones((5, 3, 3, 1, 1))
    assert seeds.count_contractions(jax.make_jaxpr(_PLAIN)(w, x).jaxpr) == (2, 0)
    batched = jax.make_jaxpr(jax.vmap(_PLAIN, (0, None)))(ws, x).jaxpr
    assert seeds.count_contractions(batched) == (1 + 5, 0)  # the second conv has 5 groups
    assert seeds.count_contractions(jax.make_jaxpr(_MATMULS)(w, x).jaxpr) == (0, 0)
    batched = jax.make_jaxpr(jax.vmap(_MATMULS, (0, None)))(ws, x).jaxpr
    assert seeds.count_contractions(batched) == (0, 1)  # the second matmul is batched


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 7), chunk=st.integers(1, 4))
def test_chunked_any_n_and_chunk_size(n, chunk):
    keys = _keys(n, seed=n)
    fn = _elementwise
    got = seeds.map_seeds(fn, keys, jnp.float32(3.0), strategy="chunked", chunk_size=chunk)
    np.testing.assert_array_equal(np.asarray(got), _loop_reference(fn, keys, jnp.float32(3.0)))


def _elementwise(key: jax.Array, scale: jax.Array) -> jax.Array:
    return jnp.tanh(scale * jax.random.normal(key, (6,))) ** 2


def _magnitude_mask(key: jax.Array) -> jax.Array:
    """An init's 70% global magnitude mask: elementwise scores, then the exact top-k."""
    w = jax.random.normal(key, (64,))
    return masks.keep_top(jnp.abs(w), 19)


def test_has_elementwise_loop():
    x = jnp.ones(8)
    loop = lambda body: jax.make_jaxpr(lambda x: jax.lax.fori_loop(0, 3, body, x))(x).jaxpr
    assert seeds.has_elementwise_loop(jax.make_jaxpr(lambda x: masks.keep_top(x, 3))(x).jaxpr)
    assert seeds.has_elementwise_loop(loop(lambda i, y: y * 2.0))
    assert not seeds.has_elementwise_loop(loop(lambda i, y: jnp.outer(y, y) @ y))  # contracts
    assert not seeds.has_elementwise_loop(jax.make_jaxpr(lambda x: jnp.tanh(x) @ x)(x).jaxpr)


def test_raw_uint32_keys_match_typed_keys():
    raw = jax.random.split(jax.random.PRNGKey(0), N)  # (N, 2) uint32
    got = seeds.map_seeds(_elementwise, raw, jnp.float32(2.0), strategy="vmap")
    np.testing.assert_array_equal(
        np.asarray(got), _loop_reference(_elementwise, raw, jnp.float32(2.0))
    )


def test_map_stacked_mapped_inputs_and_shared_params():
    params = TinyMLP().init(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
    xs = jax.random.normal(jax.random.key(1), (N, 2, 8, 8, 1))  # N stacked batches

    def apply_one(x, p):
        return TinyMLP().apply(p, x)

    want = np.stack([np.asarray(jax.jit(apply_one)(xs[i], params)) for i in range(N)])
    for strategy, chunk_size in RUNS:
        got = seeds.map_stacked(
            apply_one, xs, params, in_axes=(0, None), strategy=strategy, chunk_size=chunk_size
        )
        assert_trees_close(got, want, exact=strategy in ("map", "loop"))


_TRACES = {"n": 0}


def _counted(key: jax.Array, scale: jax.Array) -> jax.Array:
    _TRACES["n"] += 1
    return scale * jax.random.uniform(key, (3,))


@pytest.mark.parametrize(("strategy", "chunk_size"), RUNS)
def test_compiled_once(strategy, chunk_size):
    kw = dict(strategy=strategy, chunk_size=chunk_size)
    seeds.map_seeds(_counted, _keys(4, seed=0), jnp.float32(1.0), **kw)
    after_first = _TRACES["n"]
    out = seeds.map_seeds(_counted, _keys(4, seed=1), jnp.float32(2.0), **kw)
    seeds.map_seeds(_counted, _keys(4, seed=2), jnp.float32(3.0), **kw)
    assert _TRACES["n"] == after_first, "retraced on a call with the same shapes"
    np.testing.assert_array_equal(
        np.asarray(out), _loop_reference(_counted, _keys(4, seed=1), jnp.float32(2.0))
    )


def test_init_seeds_stack_unstack():
    model, x, keys = TinyConvNet(), jnp.ones((2, 8, 8, 1)), _keys(3)
    stacked = seeds.init_seeds(model.init, keys, x)  # "auto" -> "loop": init runs the conv net
    want = _loop_reference(model.init, keys, x)
    assert_trees_close(stacked, want, exact=True)  # initializers are elementwise: bitwise
    parts = seeds.unstack(stacked)
    assert len(parts) == 3
    assert_trees_close(seeds.unstack(stacked, 1), parts[1], exact=True)
    assert_trees_close(parts[-1], jax.tree.map(lambda w: w[-1], want), exact=True)
    assert_trees_close(seeds.stack(parts), stacked, exact=True)


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        (jax.random.key(0), "one key: split it"),
        (jax.random.split(jax.random.key(0), (2, 3)), "1-D array of N keys"),
        (jax.random.PRNGKey(0), "one key: split it"),
        (jnp.zeros((4, 3), jnp.uint32), r"shape \(N, 2\)"),
        (jnp.zeros((4,), jnp.float32), "must be PRNG keys"),
        (jax.random.split(jax.random.key(0), 0), "empty"),
        ([1, 2], "array of N PRNG keys"),
    ],
)
def test_bad_keys_raise(keys, match):
    with pytest.raises(ValueError, match=match):
        seeds.map_seeds(_elementwise, keys, jnp.float32(1.0))


def test_bad_arguments_raise():
    keys = _keys(4)
    one = jnp.float32(1.0)
    with pytest.raises(ValueError, match="unknown strategy 'pmap'.*valid strategies"):
        seeds.map_seeds(_elementwise, keys, one, strategy="pmap")
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        seeds.map_seeds(_elementwise, keys, one, strategy="chunked", chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size applies to"):
        seeds.map_seeds(_elementwise, keys, one, strategy="vmap", chunk_size=2)
    with pytest.raises(ValueError, match=r"in_axes\[0\] is 1"):
        seeds.map_seeds(_elementwise, keys, one, in_axes=(1,))
    with pytest.raises(ValueError, match="in_axes has 2 entries for 1 arguments"):
        seeds.map_seeds(_elementwise, keys, one, in_axes=(None, None))
    with pytest.raises(ValueError, match="disagree on the leading axis"):
        seeds.map_seeds(_elementwise, keys, jnp.ones(3), in_axes=0)
    with pytest.raises(ValueError, match="scalar"):
        seeds.map_stacked(_elementwise, keys[0], one)
    with pytest.raises(ValueError, match="no array leaves"):
        seeds.map_stacked(_elementwise, keys, one, in_axes=None)
    with pytest.raises(ValueError, match="'loop' strategy"):
        seeds.map_seeds(_elementwise, keys, one, strategy="loop", devices=jax.devices())
    with pytest.raises(ValueError, match="empty sequence"):
        seeds.stack([])
    with pytest.raises(ValueError, match="one structure"):
        seeds.stack([{"a": 1}, {"b": 1}])
    with pytest.raises(IndexError, match="out of range"):
        seeds.unstack({"a": jnp.ones((2, 3))}, 2)


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from jax.sharding import PartitionSpec as P
    assert len(jax.devices()) == 4, jax.devices()
    import tests.test_seeds as t
    from jaxprune import seeds
    batch = t._batch()
    for fn in (t.PRUNE_MLP, t.PRUNE_CONV):
        assert seeds.choose_strategy(fn, (t._keys(), batch), in_axes=(0, None)) == "map"
        for n, strategies in ((8, ("auto", "vmap")), (6, ("auto",))):  # 6: padded to 8
            keys = t._keys(n)
            want = t._loop_reference(fn, keys, batch)
            for strategy in strategies:  # "auto" is "map" for both (never "loop" when sharded)
                got = seeds.map_seeds(fn, keys, batch, strategy=strategy)
                t.assert_trees_close(got, want, exact=False)
                for g in jax.tree.leaves(got) if n == 8 else ():
                    assert len(g.sharding.device_set) == 4, g.sharding
                    assert g.sharding.spec == P("seeds"), g.sharding
                    assert [s.data.shape[0] for s in g.addressable_shards] == [2, 2, 2, 2]
    print("SHARDED_OK")
    """
)


def test_sharded_over_four_cpu_devices():
    env = {"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "  # the suite's flags, and:
                        "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(  # the flag must be set before jax is imported: a fresh interpreter
        [sys.executable, "-c", _SHARDED_SCRIPT],
        env={**os.environ, **env},
        cwd=str(Path(__file__).resolve().parents[1]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and "SHARDED_OK" in proc.stdout, proc.stderr[-4000:]
