"""Layer budgets: exact totals, ERK against an independent water-filling solve, misuse."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxprune import allocation, masks

SHAPES = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        st.tuples(
            st.sampled_from([1, 3]), st.sampled_from([1, 3]), st.integers(1, 16), st.integers(1, 16)
        ),
    ),
    min_size=1,
    max_size=5,
)


def _params(shapes):
    # np arrays: only shapes are read, no device work
    return {
        f"layer{i}": {"kernel": np.zeros(s, np.float32), "bias": np.zeros(s[-1:])}
        for i, s in enumerate(shapes)
    }


def _erk_reference(shapes, sparsity):
    """Water-filling: find eps with sum_l min(1, eps * raw_l) * n_l = (1 - sparsity) * N."""
    n = np.array([np.prod(s) for s in shapes], float)
    raw = np.array([np.sum(s) / np.prod(s) for s in shapes], float)
    target = (1 - sparsity) * n.sum()
    lo, hi = 0.0, 1.0 / raw.min()  # at hi every layer is dense
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.sum(np.minimum(1, mid * raw) * n) < target else (lo, mid)
    return np.minimum(1, hi * raw)


@settings(max_examples=60, deadline=None)
@given(shapes=SHAPES, sparsity=st.floats(0, 1))
def test_erk_exact_total_and_matches_water_filling(shapes, sparsity):
    params = _params(shapes)
    counts = allocation.allocate_erk(params, sparsity)
    sizes = {(f"layer{i}", "kernel"): int(np.prod(s)) for i, s in enumerate(shapes)}
    assert set(counts) == set(sizes)
    assert sum(counts.values()) == round(sparsity * sum(sizes.values()))
    assert all(0 <= counts[p] <= sizes[p] for p in sizes)
    dens = allocation.erk_densities({p: s for p, s in zip(sizes, shapes, strict=True)}, sparsity)
    assert all(0.0 <= d <= 1.0 for d in dens.values())
    np.testing.assert_allclose(list(dens.values()), _erk_reference(shapes, sparsity), atol=1e-7)
    # integer counts within one weight of the real-valued targets
    for p, d in dens.items():
        assert abs(counts[p] - (1 - d) * sizes[p]) < 1 + 1e-6


@settings(max_examples=40, deadline=None)
@given(shapes=SHAPES, sparsity=st.floats(0, 1))
def test_uniform_exact_total(shapes, sparsity):
    counts = allocation.allocate_uniform(_params(shapes), sparsity)
    sizes = [int(np.prod(s)) for s in shapes]
    assert sum(counts.values()) == round(sparsity * sum(sizes))
    for c, n in zip(counts.values(), sizes, strict=True):
        assert abs(c - sparsity * n) < 1 + 1e-9


def test_er_formula_on_dense_layers():
    shapes = [(100, 100), (100, 50)]
    dens = allocation.erk_densities({("a",): shapes[0], ("b",): shapes[1]}, 0.9)
    ratio = dens[("a",)] / dens[("b",)]
    assert ratio == pytest.approx((200 / 10000) / (150 / 5000))
    n = np.array([10000, 5000])
    assert np.dot([dens[("a",)], dens[("b",)]], n) == pytest.approx(0.1 * n.sum())


def test_erk_makes_small_layers_dense():
    shapes = {("first",): (3, 3, 1, 4), ("big",): (3, 3, 64, 64)}
    dens = allocation.erk_densities(shapes, 0.5)
    assert dens[("first",)] == 1.0 and dens[("big",)] < 0.5


def test_user_map_and_mask_by_allocation():
    params = _params([(4, 5), (5, 2)])
    counts = allocation.allocate_by_map(params, {("layer0", "kernel"): 0.5}, default=0.2)
    assert counts == {("layer0", "kernel"): 10, ("layer1", "kernel"): 2}
    scores = {
        k: {kk: jnp.arange(v.size, dtype=jnp.float32).reshape(v.shape) for kk, v in d.items()}
        for k, d in params.items()
    }
    mask = allocation.mask_by_allocation(scores, 0.2, {("layer0", "kernel"): 0.5})
    assert int((~mask["layer0"]["kernel"]).sum()) == 10
    assert int((~mask["layer1"]["kernel"]).sum()) == 2
    for name in ["global", *allocation.names()]:
        m = allocation.mask_by_allocation(scores, 0.6, name)
        rep = masks.summary(scores, m)
        assert rep.num_pruned == round(0.6 * 30)


def test_allocation_misuse():
    params = _params([(4, 5)])
    with pytest.raises(ValueError, match="unknown allocation 'erdos'; valid names"):
        allocation.get("erdos")
    with pytest.raises(ValueError, match="sparsity must be in"):
        allocation.allocate_erk(params, 1.2)
    with pytest.raises(ValueError, match="misses prunable layers"):
        allocation.allocate_by_map(_params([(4, 5), (2, 2)]), {("layer0", "kernel"): 0.5})
    with pytest.raises(ValueError, match="non-prunable paths"):
        allocation.allocate_by_map(params, {("layer0", "bias"): 0.5})
