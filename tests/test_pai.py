"""Pruning at initialization on zoo models: prune(), multi-seed pruning, the sweep, the CLI."""

from __future__ import annotations

import contextlib
import csv
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import criteria, data, masks, models
from jaxprune.cli import main
from jaxprune.studies import pai
from jaxprune.train import Split, TrainConfig

SHAPE = (8, 8, 1)  # digits


@pytest.fixture(scope="module")
def setup():
    model = models.get("lenet_300_100", widths=(32, 16))
    train = Split(*data.load("digits", "train"))
    test = Split(*data.load("digits", "test"))
    seeds = [0, 1, 2]
    variables = pai.init_seeds(model, SHAPE, seeds)
    batches = pai.score_batches(train, seeds, per_class=2)
    return model, train, test, seeds, variables, batches


def _num_pruned(mask):
    return sum(int((~np.asarray(m)).sum()) for m in jax.tree.leaves(mask))


def test_prune_snip_is_the_criterion_then_global_topk(setup):
    model, _, _, _, variables, batches = setup
    one = jax.tree.map(lambda a: a[0], variables)
    batch = (batches[0][0], batches[1][0])
    mask = pai.prune(model, one, "snip", 0.8, input_shape=SHAPE, batch=batch)
    # independent composition: the criterion on a hand-written loss, then global top-k
    def loss_fn(params, b):
        logits = model.apply({"params": params}, b[0])
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(b[1])), b[1]])
    scores = criteria.get("snip", loss_fn=loss_fn)(one["params"], batch=batch)
    expected = masks.mask_by_topk(scores, 0.8)
    for a, b in zip(jax.tree.leaves(mask), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", pai.METHODS)
def test_prune_seeds_equals_a_loop_and_hits_the_count(setup, method):
    model, _, _, seeds, variables, batches = setup
    sparsity = 0.9
    rounds = 5 if method in pai.DEFAULT_ROUNDS else None  # keep the test fast
    stacked = pai.prune_seeds(model, variables, batches, seeds, method, sparsity, rounds=rounds)
    n_prunable = sum(p.size for p in jax.tree.leaves(
        masks.restrict_to_prunable(jax.tree.map(lambda a: a[0], variables["params"]))))
    n_kernel = sum(int(np.prod(p.shape[1:])) for path, p in
                   jax.tree_util.tree_leaves_with_path(variables["params"])
                   if path[-1].key == "kernel")
    del n_prunable
    for i, s in enumerate(seeds):
        one = jax.tree.map(lambda a, i=i: a[i], variables)
        ref = pai.prune(model, one, method, sparsity, input_shape=SHAPE,
                        batch=(batches[0][i], batches[1][i]),
                        key=jax.random.fold_in(jax.random.PRNGKey(s), 3), rounds=rounds)
        got = jax.tree.map(lambda a, i=i: a[i], stacked)
        assert _num_pruned(got) == round(sparsity * n_kernel)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            np.testing.assert_array_equal(a, b)


def test_keep_first_last_and_misuse(setup):
    model, _, _, _, variables, batches = setup
    one = jax.tree.map(lambda a: a[0], variables)
    first, last = pai.first_and_last_layers(model, one, SHAPE)
    assert (first, last) == (("fc1", "kernel"), ("fc3", "kernel"))
    mask = pai.prune(model, one, "magnitude", 0.95, input_shape=SHAPE, keep_dense=(first, last))
    assert np.all(mask["fc1"]["kernel"]) and np.all(mask["fc3"]["kernel"])
    assert not np.all(mask["fc2"]["kernel"])
    with pytest.raises(ValueError, match="unknown pruning method 'obd'"):
        pai.prune(model, one, "obd", 0.5, input_shape=SHAPE)
    with pytest.raises(ValueError, match="needs rounds=1"):
        pai.prune(model, one, "synflow", 0.5, input_shape=SHAPE, allocation="erk")
    with pytest.raises(ValueError, match="compression is 1/density"):
        pai.compression_to_sparsity(0.5)


def test_sweep_trains_every_network_together(setup):
    model, train, test, _, _, _ = setup
    cfg = TrainConfig(epochs=6, batch_size=64, optimizer="adam", learning_rate=1e-2)
    rows = pai.sweep(model, train, test, cfg, methods=["random", "synflow"],
                     sparsities=[0.5, 0.99], seeds=[0, 1], progress=False)
    assert len(rows) == (2 * 2 + 1) * 2
    assert {r["method"] for r in rows} == {"random", "synflow", "dense"}
    dense = [r for r in rows if r["method"] == "dense"]
    assert all(r["sparsity"] == 0 and r["test_accuracy"] > 0.8 for r in dense), dense
    table = pai.aggregate(rows)
    assert len(table) == 5 and all(t["seeds"] == 2 for t in table)
    sparse = [r for r in rows if r["sparsity"] == 0.99]
    assert all(r["remaining_params"] < dense[0]["remaining_params"] for r in sparse)


def test_cli_prune_writes_masks_and_summary(tmp_path, capsys):
    wd = tmp_path / "p"
    argv = ["prune", "--model", "lenet_300_100", "--dataset", "digits", "--criterion", "snip",
            "--compression", "10", "--seeds", "2", "--keep-first-last", "--epochs", "1",
            "--batch-size", "64", "--workdir", str(wd), "--no-progress"]
    assert main(argv) == 0
    saved = np.load(wd / "masks.npz")
    assert saved["fc2/kernel"].shape == (2, 300, 100) and saved["fc2/kernel"].dtype == bool
    assert saved["fc1/kernel"].all()  # kept dense
    fc2_pruned = (~saved["fc2/kernel"][0]).sum()
    summary = json.loads((wd / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.9)
    assert fc2_pruned == round(0.9 * 300 * 100)  # fc2 is the only prunable layer left
    assert len(summary["per_seed"]) == 2 and "test_accuracy" in summary["per_seed"][0]
    assert main(["prune", "--model", "lenet_300_100", "--dataset", "digits", "--criterion",
                 "snip", "--sparsity", "0.5", "--compression", "2", "--workdir", str(wd)]) == 2
    assert "exactly one of --sparsity" in capsys.readouterr().err


def test_cli_demo_small(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "1", "--seeds", "2", "--methods", "random", "magnitude",
                 "--log10-compressions", "1", "--out", str(out), "--no-progress"]) == 0
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["random", "magnitude", "dense"]
    assert (out / "accuracy_vs_compression.png").stat().st_size > 1000


def test_synflow_float64_through_max_pooling():
    """SynFlow scores in float64; pooling layers must not force float32 (regression)."""
    model = models.get("conv2", widths=(4, 4, 8, 8))
    variables = jax.tree.map(lambda a: a[0], pai.init_seeds(model, (32, 32, 3), [0]))
    mask = pai.prune(model, variables, "synflow", 0.9, input_shape=(32, 32, 3), rounds=3)
    kernels = [m for p, m in jax.tree_util.tree_leaves_with_path(mask) if p[-1].key == "kernel"]
    assert sum(int((~np.asarray(m)).sum()) for m in kernels) == round(
        0.9 * sum(m.size for m in kernels))


class _TinyBN(nn.Module):
    """conv -> batch norm -> relu -> global mean -> dense: the smallest batch-norm model."""

    @nn.compact
    def __call__(self, x, *, train=False):
        x = nn.Conv(4, (3, 3), name="conv")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, name="conv_bn")(x))
        return nn.Dense(3, name="fc")(jnp.mean(x, axis=(1, 2)))


@pytest.mark.parametrize("strategy", ["vmap", "map", "chunked", "loop", "auto"])
def test_synflow_on_a_batch_norm_model_under_every_strategy(strategy):
    """Regression: SynFlow's float64 custom_vmap closed over the per-seed batch statistics and
    failed under vmap (``"vmap"``, and ``"auto"``, whose rule traces vmap) with an
    AssertionError inside jax. Every strategy must give the per-seed masks of ``prune``."""
    model, shape, seeds = _TinyBN(), (4, 4, 2), [0, 1]
    variables = pai.init_seeds(model, shape, seeds)
    rng = np.random.default_rng(0)  # distinct running statistics per seed and channel, (2, 4)
    variables["batch_stats"] = {"conv_bn": {"mean": jnp.asarray(rng.normal(size=(2, 4)) / 4,
                                                                jnp.float32),
                                            "var": jnp.asarray(rng.uniform(0.2, 4, (2, 4)),
                                                               jnp.float32)}}
    batches = (jnp.zeros((2, 2, *shape)), jnp.zeros((2, 2), jnp.int32))  # unused by SynFlow
    stacked = pai.prune_seeds(model, variables, batches, seeds, "synflow", 0.5, rounds=2,
                              strategy=strategy)
    one = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
    for i in range(len(seeds)):
        ref = pai.prune(model, one(variables, i), "synflow", 0.5, input_shape=shape, rounds=2)
        jax.tree.map(np.testing.assert_array_equal, one(stacked, i), ref)
    # the statistics matter: seed 1 pruned with seed 0's statistics gets another mask
    swapped = dict(one(variables, 1), batch_stats=one(variables, 0)["batch_stats"])
    other = pai.prune(model, swapped, "synflow", 0.5, input_shape=shape, rounds=2)
    assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, other, one(stacked, 1))))


@contextlib.contextmanager
def _compilations():
    """Count XLA compilations and jit traces inside the block (``jax.monitoring`` events)."""
    counts = {"compiles": 0, "traces": 0}
    events = {"/jax/core/compile/backend_compile_duration": "compiles",
              "/jax/core/compile/jaxpr_trace_duration": "traces"}

    def listener(event, duration, **kwargs):
        if event in events:
            counts[events[event]] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize(("method", "kw"), [
    ("snip", {}),
    ("synflow", {"rounds": 3}),
    ("magnitude", {"allocation": "erk"}),
    ("random", {"allocation": {("fc1", "kernel"): 0.5}, "keep_dense": [("fc3", "kernel")]}),
])
def test_prune_seeds_compiles_once_for_any_seeds_and_sparsity(setup, method, kw):
    """Seeds, variables, batches and the sparsity are arguments of one compiled program."""
    model, _, _, seeds, variables, batches = setup
    pai.prune_seeds(model, variables, batches, seeds, method, 0.9, **kw)
    other = pai.init_seeds(model, SHAPE, [7, 8, 9])
    for s, v, sparsity in [([7, 8, 9], other, 0.9), (seeds, variables, 0.5),
                           ([7, 8, 9], other, 0.99)]:
        with _compilations() as counts:
            got = pai.prune_seeds(model, v, batches, s, method, sparsity, **kw)
            jax.block_until_ready(got)
        assert counts == {"compiles": 0, "traces": 0}, (s, sparsity)
    # ... and computes what a fresh per-network prune computes
    i = 1
    ref = pai.prune(model, jax.tree.map(lambda a: a[i], other), method, 0.99, input_shape=SHAPE,
                    batch=(batches[0][i], batches[1][i]), key=jax.random.fold_in(
                        jax.random.PRNGKey(8), 3), **kw)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[i], b), got, ref)


def test_prune_reuses_compiled_programs_across_calls_and_sparsities(setup):
    model, _, _, _, variables, batches = setup
    one = jax.tree.map(lambda a: a[0], variables)
    batch = (batches[0][0], batches[1][0])
    for method, kw in [("snip", {}), ("synflow", {"rounds": 3})]:
        pai.prune(model, one, method, 0.9, input_shape=SHAPE, batch=batch, **kw)
        with _compilations() as counts:
            for sparsity in (0.9, 0.5):
                pai.prune(model, one, method, sparsity, input_shape=SHAPE, batch=batch, **kw)
        assert counts["compiles"] == 0, method
