"""Scores -> masks: exact top-k counts, deterministic ties, prunable filters, reports, misuse."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxprune import masks

# A few fixed layouts (hypothesis varies values and sparsity, not shapes: fewer compilations).
LAYOUTS = [
    {"conv": {"kernel": (3, 3, 1, 2), "bias": (2,)}, "dense": {"kernel": (8, 3), "bias": (3,)}},
    {"a": {"kernel": (4, 5)}, "b": {"kernel": (5, 1)}, "bn": {"scale": (5,)}},
    {"only": {"kernel": (2, 3)}},
]


def _tree(layout, fill):
    return jax.tree.map(fill, layout, is_leaf=lambda x: isinstance(x, tuple))


def _int_scores(data, layout):
    """Integer-valued float scores in [0, 3]: lots of ties."""
    return _tree(
        layout,
        lambda shape: jnp.asarray(
            data.draw(
                st.lists(
                    st.integers(0, 3), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))
                )
            ),
            jnp.float32,
        ).reshape(shape),
    )


def _reference_keep(flat_scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Keep the n_keep highest; among ties the lower index is kept (independent: np.lexsort)."""
    order = np.lexsort((np.arange(flat_scores.size), -flat_scores))
    keep = np.zeros(flat_scores.size, bool)
    keep[order[:n_keep]] = True
    return keep


def _flat_prunable(tree, paths):
    by_path = {masks.path_tuple(kp): x for kp, x in jax.tree_util.tree_flatten_with_path(tree)[0]}
    return np.concatenate([np.ravel(np.asarray(by_path[p])) for p in paths])


@pytest.mark.filterwarnings("ignore::jaxprune.masks.LayerCollapseWarning")  # sparsity 1.0 etc.
@settings(max_examples=60, deadline=None)
@given(data=st.data(), layout_idx=st.integers(0, len(LAYOUTS) - 1), sparsity=st.floats(0, 1))
def test_global_topk_exact_count_and_ties(data, layout_idx, sparsity):
    layout = LAYOUTS[layout_idx]
    scores = _int_scores(data, layout)
    mask = masks.mask_by_topk(scores, sparsity)
    paths = masks.prunable_paths(scores)
    flat_scores, flat_mask = _flat_prunable(scores, paths), _flat_prunable(mask, paths)
    n = flat_scores.size
    assert (~flat_mask).sum() == round(sparsity * n)
    np.testing.assert_array_equal(flat_mask, _reference_keep(flat_scores, n - round(sparsity * n)))
    # every non-prunable leaf is all True
    for kp, m in jax.tree_util.tree_flatten_with_path(mask)[0]:
        if masks.path_tuple(kp) not in paths:
            assert bool(np.all(np.asarray(m)))
    # deterministic, and identical under jit
    again = jax.jit(masks.mask_by_topk, static_argnums=1)(scores, sparsity)
    jax.tree.map(np.testing.assert_array_equal, mask, again)


@pytest.mark.filterwarnings("ignore::jaxprune.masks.LayerCollapseWarning")  # sparsity 1.0 etc.
@settings(max_examples=40, deadline=None)
@given(data=st.data(), layout_idx=st.integers(0, len(LAYOUTS) - 1))
def test_layer_topk_exact_counts_and_ties(data, layout_idx):
    layout = LAYOUTS[layout_idx]
    scores = _int_scores(data, layout)
    paths = masks.prunable_paths(scores)
    sizes = {p: _flat_prunable(scores, [p]).size for p in paths}
    counts = {p: data.draw(st.integers(0, sizes[p])) for p in paths}
    mask = masks.mask_by_layer_topk(scores, counts)
    for p in paths:
        s, m = _flat_prunable(scores, [p]), _flat_prunable(mask, [p])
        assert (~m).sum() == counts[p]
        np.testing.assert_array_equal(m, _reference_keep(s, sizes[p] - counts[p]))


@pytest.mark.filterwarnings("ignore::jaxprune.masks.LayerCollapseWarning")  # sparsity 1.0 etc.
def test_tie_rule_keeps_lower_flat_index():
    scores = {"a": {"kernel": jnp.zeros((2, 2))}, "b": {"kernel": jnp.zeros((1, 2))}}
    mask = masks.mask_by_topk(scores, 0.5)  # 6 weights, remove 3; flat order a (4) then b (2)
    assert mask["a"]["kernel"].tolist() == [[True, True], [True, False]]
    assert mask["b"]["kernel"].tolist() == [[False, False]]


def test_rounding_is_pythons_round():
    assert masks.num_to_remove(5, 0.5) == 2  # 2.5 -> 2 (half to even)
    assert masks.num_to_remove(7, 0.5) == 4  # 3.5 -> 4
    assert masks.num_to_remove(10, 0.0) == 0 and masks.num_to_remove(10, 1.0) == 10


@pytest.mark.filterwarnings("ignore::jaxprune.masks.LayerCollapseWarning")  # sparsity 1.0 etc.
def test_default_filter_custom_predicate_and_keep_dense():
    params = _tree(LAYOUTS[0], jnp.ones)
    assert masks.prunable_paths(params) == [("conv", "kernel"), ("dense", "kernel")]
    assert masks.prunable_paths(params, keep_dense=[("conv", "kernel")]) == [("dense", "kernel")]
    everything = masks.prunable_paths(params, prunable=lambda path, leaf: True)
    assert len(everything) == 4
    mask = masks.mask_by_topk(params, 1.0, keep_dense=[("conv", "kernel")])
    assert bool(mask["conv"]["kernel"].all()) and not bool(mask["dense"]["kernel"].any())
    assert masks.first_and_last([("c0", "kernel"), ("c1", "kernel"), ("fc", "kernel")]) == (
        ("c0", "kernel"),
        ("fc", "kernel"),
    )


def test_nan_under_jit_ranks_lowest():
    scores = {"w": {"kernel": jnp.array([[1.0, jnp.nan], [-jnp.inf, 2.0]])}}
    mask = jax.jit(masks.mask_by_topk, static_argnums=1)(scores, 0.25)
    assert mask["w"]["kernel"].tolist() == [[True, False], [True, True]]


def test_collapse_warns():
    scores = {"a": {"kernel": jnp.ones((2, 2))}, "b": {"kernel": jnp.zeros((2, 2))}}
    with pytest.warns(masks.LayerCollapseWarning, match=r"layer collapse.*'b/kernel'"):
        masks.mask_by_topk(scores, 0.5)
    with pytest.warns(masks.LayerCollapseWarning, match="a/kernel"):
        masks.mask_by_layer_topk(scores, {("a", "kernel"): 4, ("b", "kernel"): 0})


def test_summary_report_and_collapse():
    params = _tree(LAYOUTS[1], jnp.ones)
    mask = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
    mask["b"]["kernel"] = jnp.zeros((5, 1), bool)
    mask["a"]["kernel"] = mask["a"]["kernel"].at[0].set(False)
    rep = masks.summary(params, mask, macs={("a", "kernel"): 100, ("b", "kernel"): 10})
    assert rep.collapsed == (("b", "kernel"),)
    assert masks.collapsed_layers(mask) == [("b", "kernel")]
    assert rep.num_prunable == 25 and rep.num_pruned == 10
    assert rep.sparsity == pytest.approx(0.4) and rep.density == pytest.approx(0.6)
    assert rep.params == 30 and rep.remaining_params == 20
    assert [(r.path, r.kept, r.total) for r in rep.rows] == [
        (("a", "kernel"), 15, 20),
        (("b", "kernel"), 0, 5),
    ]
    assert rep.macs == 110 and rep.remaining_macs == pytest.approx(75.0)
    text = masks.format_report(rep)
    assert "WARNING: layer collapse" in text and "b/kernel" in text


def test_misuse_raises():
    scores = _tree(LAYOUTS[2], jnp.ones)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\]"):
            masks.mask_by_topk(scores, bad)
    with pytest.raises(ValueError, match="NaN"):
        masks.mask_by_topk({"w": {"kernel": jnp.array([[1.0, jnp.nan]])}}, 0.5)
    with pytest.raises(ValueError, match="infinite"):
        masks.mask_by_topk({"w": {"kernel": jnp.array([[1.0, jnp.inf]])}}, 0.5)
    with pytest.raises(ValueError, match="keep_dense names paths not in the tree"):
        masks.mask_by_topk(scores, 0.5, keep_dense=[("nope", "kernel")])
    with pytest.raises(TypeError, match="not the string"):
        masks.mask_by_topk(scores, 0.5, keep_dense="only/kernel")
    # a path as a key tuple or as "a/b" is the same path
    for a, b in zip(jax.tree.leaves(masks.mask_by_topk(scores, 0.5, keep_dense=["only/kernel"])),
                    jax.tree.leaves(masks.mask_by_topk(scores, 0.5,
                                                       keep_dense=[("only", "kernel")])),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="one entry per prunable path"):
        masks.mask_by_layer_topk(scores, {})
    with pytest.raises(ValueError, match="mask tree does not match"):
        masks.summary(scores, {"other": {"kernel": jnp.ones((2, 3), bool)}})
    with pytest.raises(ValueError, match="has shape"):
        masks.summary(scores, {"only": {"kernel": jnp.ones((3, 2), bool)}})


def _keep_top_reference(vals: np.ndarray, k: int, alive: np.ndarray | None) -> np.ndarray:
    """Plain-Python ranking: (dead, NaN, -score, index) ascending, keep the first k.

    float32 subnormals count as zero: XLA:CPU flushes them (its comparisons see 1e-40 == 0).
    """
    n = len(vals)
    dead = np.zeros(n, bool) if alive is None else ~alive
    v = vals.astype(np.float64)
    if vals.dtype == np.float32:
        v = np.where(np.abs(v) < np.finfo(np.float32).tiny, 0.0, v)
    order = sorted(
        range(n), key=lambda i: (dead[i], bool(np.isnan(v[i])), 0.0 if np.isnan(v[i]) else -v[i], i)
    )
    keep = np.zeros(n, bool)
    keep[order[:k]] = True
    return keep


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64", "int32"])
@pytest.mark.parametrize("with_alive", [False, True])
def test_keep_top_matches_python_reference(dtype, with_alive):
    """The sort-free top-k against an independent ranking: ties, +-0, +-inf, NaN, dead, any k."""
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, np.nan, 1e-40, -3e38])
    n = 37  # one shape: the function compiles once, k and alive vary as traced values
    with jax.enable_x64(dtype == "float64"):
        fn = jax.jit(masks.keep_top)
        for trial in range(40):
            if trial % 2:
                vals = rng.choice(special, n)
            else:
                vals = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)
            if trial % 5 == 0:
                vals[: n // 2] = vals[0]  # long runs of ties
            if dtype == "int32":  # non-float scores take the sort path
                vals = np.clip(np.nan_to_num(vals), -9, 9)
            with np.errstate(over="ignore"):  # -3e38 -> -inf in float16 on purpose
                x = jnp.asarray(vals, jnp.dtype(dtype))
            alive = rng.random(n) < 0.6 if with_alive else None
            k = int(rng.integers(0, n + 1))
            got = fn(x, jnp.int32(k), None if alive is None else jnp.asarray(alive))
            want = _keep_top_reference(np.asarray(x.astype(jnp.float32)), k, alive)
            if dtype == "float64":
                want = _keep_top_reference(np.asarray(x), k, alive)
            np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"trial {trial}, k={k}")
            assert int(np.sum(got)) == k


@pytest.mark.parametrize("n", [1, 2, 3, 32, 33])
def test_keep_top_sizes_at_the_index_bit_boundaries(n):
    """All-tied and random scores at sizes where the index part of the composite key has its
    edge cases (1 bit; exactly 2^B entries; one past), every k, against the Python ranking."""
    rng = np.random.default_rng(n)
    fn = jax.jit(masks.keep_top)
    for vals in (np.zeros(n, np.float32), rng.standard_normal(n).astype(np.float32),
                 rng.integers(0, 2, n).astype(np.float32)):
        for k in range(n + 1):
            got = np.asarray(fn(jnp.asarray(vals), jnp.int32(k)))
            np.testing.assert_array_equal(got, _keep_top_reference(vals, k, None),
                                          err_msg=f"n={n} k={k} {vals}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keep_top_many_entries_and_low_word_ties(dtype):
    """Thousands of entries (13 index bits), and float64 scores that agree in their high 32 bits
    (the search then decides in the low word), against the plain-Python ranking."""
    rng = np.random.default_rng(1)
    n = 2 * 4096 + 123
    with jax.enable_x64(dtype == "float64"):
        fn = jax.jit(masks.keep_top)
        for trial in range(6):
            if dtype == "float64" and trial % 2:
                # 1 + j * 2**-50: equal high words, order decided by the low mantissa bits
                vals = 1.0 + rng.integers(0, 40, n) * 2.0**-50
            else:
                vals = rng.standard_normal(n)
                vals[rng.random(n) < 0.3] = 0.5  # a block of ties
            x = jnp.asarray(vals, jnp.dtype(dtype))
            alive = rng.random(n) < 0.8 if trial >= 3 else None
            for k in (0, 1, int(rng.integers(2, n)), n):
                got = fn(x, jnp.int32(k), None if alive is None else jnp.asarray(alive))
                want = _keep_top_reference(np.asarray(x), k, alive)
                np.testing.assert_array_equal(np.asarray(got), want,
                                              err_msg=f"trial {trial}, k={k}")


class TopKVariantsTest(chex.TestCase):
    """The traceable top-k core gives the same masks jitted and not (chex variants)."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_mask_by_keep_counts_global_and_per_layer(self):
        rng = np.random.default_rng(3)
        scores = {"a": {"kernel": jnp.asarray(rng.integers(0, 4, (4, 5)), jnp.float32)},
                  "b": {"kernel": jnp.asarray(rng.integers(0, 4, (5, 2)), jnp.float32)},
                  "bn": {"scale": jnp.zeros((5,))}}
        paths = [("a", "kernel"), ("b", "kernel")]
        glob = self.variant(lambda s, k: masks.mask_by_keep_counts(s, k, per_layer=False))
        mask = glob(scores, jnp.int32(13))
        chex.assert_trees_all_equal_shapes(mask, scores)
        keep = _reference_keep(_flat_prunable(scores, paths), 13)
        np.testing.assert_array_equal(_flat_prunable(mask, paths), keep)
        assert bool(mask["bn"]["scale"].all())
        layer = self.variant(lambda s, k: masks.mask_by_keep_counts(s, k, per_layer=True))
        mask = layer(scores, jnp.asarray([7, 3], jnp.int32))
        for p, k in zip(paths, (7, 3), strict=True):
            np.testing.assert_array_equal(
                np.ravel(mask[p[0]]["kernel"]),
                _reference_keep(np.ravel(np.asarray(scores[p[0]]["kernel"])), k))
