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


def _tiny_scorer():
    from jaxprune.criteria import learned

    net = learned.ScorerNet((4, 4))
    v = net.init(jax.random.key(0), jnp.zeros((2, 2)))
    return learned.Scorer(v, (4, 4), "none", np.zeros(2, np.float32), np.ones(2, np.float32), {})


@pytest.mark.parametrize("method", pai.METHODS)
def test_prune_seeds_equals_a_loop_and_hits_the_count(setup, method):
    model, _, _, seeds, variables, batches = setup
    sparsity = 0.9
    rounds = 5 if criteria.default_rounds(method) > 1 else None  # keep the test fast
    # AutoS needs a scorer; an untrained one does (the engine's contract does not depend on it)
    opts = {"scorer": _tiny_scorer()} if method == "autos" else None
    stacked = pai.prune_seeds(model, variables, method, sparsity, seeds=seeds, batches=batches,
                              rounds=rounds, criterion_options=opts)
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
                        key=jax.random.fold_in(jax.random.key(s), 3), rounds=rounds,
                        criterion_options=opts)
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
    with pytest.raises(ValueError, match="unknown criterion 'obd'"):
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
    # the library call the command makes, on its own: the same masks and accuracies
    from jaxprune.train import Split, TrainConfig

    train, test = (Split(*data.load("digits", s)) for s in ("train", "test"))
    lib = pai.prune_and_train(models.get("lenet_300_100"), train, test,
                              TrainConfig(dataset="digits", epochs=1, batch_size=64),
                              criterion="snip", sparsity=0.9, seeds=[0, 1],
                              keep_first_last=True, progress=False)
    for kp, leaf in jax.tree_util.tree_leaves_with_path(lib.masks):
        np.testing.assert_array_equal(saved[masks.path_str(kp)], np.asarray(leaf))
    assert [r["test_accuracy"] for r in summary["per_seed"]] == lib.fit["test_accuracy"]
    assert [r["test_accuracy"] for r in lib.rows()] == lib.fit["test_accuracy"]
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
    from jaxprune.train import Split, TrainConfig

    with open(out / "networks.csv") as f:
        networks = list(csv.DictReader(f))
    train, test = (Split(*data.load("mnist1d", s)) for s in ("train", "test"))
    config = TrainConfig(model="mlp_6x100", dataset="mnist1d", epochs=1, batch_size=100,
                         optimizer="adam", learning_rate=2e-3, schedule="cosine",
                         weight_decay=0.0)  # the demo's recipe
    lib = pai.sweep(models.get("mlp_6x100"), train, test, config,
                    methods=["random", "magnitude"], sparsities=[pai.compression_to_sparsity(10)],
                    seeds=[0, 1], progress=False)
    assert [float(r["test_accuracy"]) for r in networks] == [r["test_accuracy"] for r in lib]


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
    stacked = pai.prune_seeds(model, variables, "synflow", 0.5, seeds=seeds, batches=batches,
                              rounds=2, strategy=strategy)
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


@pytest.mark.compiles
@pytest.mark.parametrize(("method", "kw"), [
    ("snip", {}),
    ("synflow", {"rounds": 3}),
    ("magnitude", {"allocation": "erk"}),
    ("random", {"allocation": {("fc1", "kernel"): 0.5}, "keep_dense": [("fc3", "kernel")]}),
])
def test_prune_seeds_compiles_once_for_any_seeds_and_sparsity(setup, method, kw):
    """Seeds, variables, batches and the sparsity are arguments of one compiled program."""
    model, _, _, seeds, variables, batches = setup
    pai.prune_seeds(model, variables, method, 0.9, seeds=seeds, batches=batches, **kw)
    other = pai.init_seeds(model, SHAPE, [7, 8, 9])
    for s, v, sparsity in [([7, 8, 9], other, 0.9), (seeds, variables, 0.5),
                           ([7, 8, 9], other, 0.99)]:
        with _compilations() as counts:
            got = pai.prune_seeds(model, v, method, sparsity, seeds=s, batches=batches, **kw)
            jax.block_until_ready(got)
        assert counts == {"compiles": 0, "traces": 0}, (s, sparsity)
    # ... and computes what a fresh per-network prune computes
    i = 1
    ref = pai.prune(model, jax.tree.map(lambda a: a[i], other), method, 0.99, input_shape=SHAPE,
                    batch=(batches[0][i], batches[1][i]), key=jax.random.fold_in(
                        jax.random.key(8), 3), **kw)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[i], b), got, ref)


@pytest.mark.compiles
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


# ---------------------------------------------------------------------------------------------
# No silent wrong masks: NaN on every path, targets that keep nothing, clear stack errors.
# ---------------------------------------------------------------------------------------------


def _with_nan(tree, seed=None):
    """``tree`` with one NaN in ``fc2/kernel`` (of stacked seed index ``seed``)."""
    out = jax.tree.map(jnp.asarray, tree)
    k = out["params"]["fc2"]["kernel"]
    out["params"]["fc2"]["kernel"] = k.at[(0, 0) if seed is None else (seed, 0, 0)].set(jnp.nan)
    return out


PATHS = [("synflow", 3), ("iterative_snip", 3), ("snip", 2), ("snip", 1), ("grasp", 1),
         ("magnitude", 1), ("random", 1)]


@pytest.mark.parametrize(("method", "rounds"), PATHS)
def test_nan_parameters_raise_naming_seed_and_layer_on_every_path(setup, method, rounds):
    model, _, _, seeds, variables, batches = setup
    one = jax.tree.map(lambda a: a[0], variables)
    kw = dict(input_shape=SHAPE, batch=(batches[0][0], batches[1][0]), key=jax.random.key(0),
              rounds=rounds)
    with pytest.raises(ValueError, match="non-finite parameters .* layer 'fc2/kernel'"):
        pai.prune(model, _with_nan(one), method, 0.9, **kw)
    with pytest.raises(ValueError, match="for seed 1, layer 'fc2/kernel'"):
        pai.prune_seeds(model, _with_nan(variables, seed=1), method, 0.9, seeds=seeds,
                        batches=batches, rounds=rounds)


@pytest.mark.parametrize(("method", "rounds"), [("snip", 1), ("snip", 2), ("iterative_snip", 3),
                                                ("grasp", 1)])
def test_nan_scores_from_data_raise_naming_the_seed(setup, method, rounds):
    """Finite weights, a NaN in one seed's scoring batch: that seed's scores are NaN."""
    model, _, _, seeds, variables, batches = setup
    xs = batches[0].at[2, 0, 0, 0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="non-finite scores .* for seed 2, layer 'fc1/kernel'"):
        pai.prune_seeds(model, variables, method, 0.9, seeds=seeds, batches=(xs, batches[1]),
                        rounds=rounds)
    one = jax.tree.map(lambda a: a[0], variables)
    with pytest.raises(ValueError, match="non-finite scores .* layer 'fc1/kernel'"):
        pai.prune(model, one, method, 0.9, batch=(xs[2], batches[1][2]), rounds=rounds)


@pytest.mark.parametrize("sparsity", [1.0, pai.compression_to_sparsity(1e12)])
def test_a_target_that_keeps_no_weight_is_refused_everywhere(setup, sparsity):
    model, train, test, seeds, variables, batches = setup
    one = jax.tree.map(lambda a: a[0], variables)
    n = 64 * 32 + 32 * 16 + 16 * 10
    message = f"removes all {n:,} prunable weights"
    for rounds in (1, 4):
        with pytest.raises(ValueError, match=message):
            pai.prune(model, one, "magnitude", sparsity, rounds=rounds)
        with pytest.raises(ValueError, match=message):
            pai.prune_seeds(model, variables, "magnitude", sparsity, seeds=seeds, rounds=rounds)
    with pytest.raises(ValueError, match=message):
        pai.sweep(model, train, test, TrainConfig(epochs=1), methods=["random"],
                  sparsities=[0.5, sparsity], seeds=[0], progress=False)
    assert pai.budget(one["params"], 1 - 1 / n) == 1  # one weight left is a valid target


def test_python_api_friction(setup):
    """What a newcomer tries first works: data.load's tuple, no batches for data-free
    criteria, prune and prune_seeds with the same argument order, a clear stack error."""
    model, _, _, seeds, variables, _ = setup
    train = data.load("digits", "train")  # a plain (images, labels) tuple
    xs, ys = pai.score_batches(train, seeds, per_class=2)
    assert xs.shape == (3, 20, *SHAPE) and ys.shape == (3, 20)
    mags = pai.prune_seeds(model, variables, "magnitude", 0.9, seeds=seeds)  # no data needed
    syn = pai.prune_seeds(model, variables, "synflow", 0.9, seeds=seeds, input_shape=SHAPE,
                          rounds=2)
    assert jax.tree.leaves(mags)[0].shape[0] == jax.tree.leaves(syn)[0].shape[0] == 3
    with pytest.raises(ValueError, match="synflow needs input_shape="):
        pai.prune_seeds(model, variables, "synflow", 0.9, seeds=seeds)
    with pytest.raises(ValueError, match="snip scores on data: pass batches="):
        pai.prune_seeds(model, variables, "snip", 0.9, seeds=seeds)
    with pytest.raises(ValueError, match="2 seeds but the stacked variables leaf"):
        pai.prune_seeds(model, variables, "magnitude", 0.9, seeds=[0, 1])
    with pytest.raises(ValueError, match="3 seeds but the stacked batches leaf"):
        pai.prune_seeds(model, variables, "snip", 0.9, seeds=seeds, batches=(xs[:2], ys[:2]))
    import inspect

    first = lambda f: list(inspect.signature(f).parameters)[:4]
    assert first(pai.prune) == first(pai.prune_seeds) == ["model", "variables", "method",
                                                          "sparsity"]
    assert pai.METHODS == tuple(criteria.names())


def test_synflow_keeps_every_layer_where_magnitude_collapses_one(setup):
    """Tanaka et al.'s point: 100 rounds of SynFlow avoid layer collapse at a compression where
    one-shot magnitude removes a whole layer (the first: fan-in 64, the smallest weights)."""
    model, _, _, seeds, variables, _ = setup
    sparsity = pai.compression_to_sparsity(300)  # 9 of 2,720 weights left
    with pytest.warns(masks.LayerCollapseWarning, match="seed 0: fc1/kernel"):
        mags = pai.prune_seeds(model, variables, "magnitude", sparsity, seeds=seeds)
    syn = pai.prune_seeds(model, variables, "synflow", sparsity, seeds=seeds, input_shape=SHAPE)
    for i in range(len(seeds)):
        take = lambda t, i=i: jax.tree.map(lambda a: a[i], t)
        one = take(variables)["params"]
        assert ("fc1", "kernel") in masks.collapsed_layers(take(mags))
        assert masks.collapsed_layers(take(syn)) == []
        assert masks.summary(one, take(syn)).num_pruned == masks.summary(one, take(mags)
                                                                          ).num_pruned


def test_chance_accuracy_and_aggregate():
    labels = np.array([0] * 60 + [1] * 40)
    chance, threshold = pai.chance_accuracy(labels)
    assert chance == 0.6 and threshold == pytest.approx(0.6 + 2.326 * np.sqrt(0.24 / 100))
    rows = [{"method": "m", "sparsity": 0.9, "compression": 10.0, "test_accuracy": a,
             "collapsed_layers": c, "at_chance": a <= threshold, "remaining_params": 1}
            for a, c in [(0.6, 0), (0.6, 1), (0.9, 0)]]
    (agg,) = pai.aggregate(rows)
    assert (agg["collapsed_runs"], agg["at_chance_runs"]) == (1, 2)
    (single,) = pai.aggregate(rows[:1])
    assert np.isnan(single["acc_std"])  # one seed: no spread, not 0


def test_snip_with_batch_norm_in_train_mode_uses_the_batch_statistics():
    """criterion option batch_norm="train": SNIP's gradient through batch statistics (a
    hand-written loss with ``train=True``), unlike the default eval mode."""
    model, shape = _TinyBN(), (4, 4, 2)
    variables = jax.tree.map(lambda a: a[0], pai.init_seeds(model, shape, [0]))
    rng = np.random.default_rng(1)
    batch = (jnp.asarray(rng.normal(size=(6, *shape)) * 3 + 1, jnp.float32),
             jnp.asarray([0, 1, 2, 0, 1, 2]))

    def snip_mask(train):
        def loss(params):
            out = model.apply({**variables, "params": params}, batch[0], train=train,
                              mutable=["batch_stats"] if train else False)
            logits = out[0] if train else out
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(6), batch[1]])
        g = jax.grad(loss)(variables["params"])
        scores = jax.tree.map(lambda p, d: jnp.abs(p * d), variables["params"], g)
        return masks.mask_by_topk(scores, 0.5)

    for mode in ("train", "eval"):
        got = pai.prune(model, variables, "snip", 0.5, batch=batch,
                        criterion_options={"batch_norm": mode})
        jax.tree.map(np.testing.assert_array_equal, got, snip_mask(mode == "train"))
    assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, snip_mask(True),
                                                snip_mask(False))))
    with pytest.raises(ValueError, match="unknown batch_norm mode 'test'"):
        pai.prune(model, variables, "snip", 0.5, batch=batch,
                  criterion_options={"batch_norm": "test"})


def test_random_score_batches_are_a_uniform_subset_like_synflows_prune_loader():
    train = data.load("digits", "train")
    xs, ys = pai.score_batches(train, [0, 1, 2], 10, sampling="random", normalize=False)
    assert xs.shape == (3, 100, 8, 8, 1) and ys.shape == (3, 100)
    balanced = 0
    for i, s in enumerate([0, 1, 2]):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(s), 2),
                                                 len(train[1])))
        idx = np.sort(perm[:100])  # 10 x classes examples of the shuffled split
        np.testing.assert_array_equal(np.asarray(xs[i]), train[0][idx])
        np.testing.assert_array_equal(np.asarray(ys[i]), train[1][idx])
        balanced += np.all(np.bincount(np.asarray(ys[i]), minlength=10) == 10)
    assert balanced < 3  # not forced to 10 of each class
    with pytest.raises(ValueError, match="unknown score sampling 'stratified'"):
        pai.score_batches(train, [0], 10, sampling="stratified")
    with pytest.raises(ValueError, match="needs 1..1442"):
        pai.score_batches(train, [0], 1000, sampling="random")


def test_cli_scoring_flags_are_part_of_the_workdir_identity(tmp_path, capsys):
    base = ["prune", "--model", "lenet_300_100", "--dataset", "digits", "--criterion", "snip",
            "--sparsity", "0.5", "--epochs", "0", "--no-progress", "--workdir", str(tmp_path)]
    assert main([*base, "--score-sampling", "random"]) == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["score_sampling"] == "random" and "score_bn" not in cfg
    assert main(base) == 2
    assert "score_sampling" in capsys.readouterr().err


def test_synflow_scores_stay_float64_to_the_top_k_with_float64_params():
    """Under ``jax.enable_x64`` with float64 params the whole pruning program is float64: the
    scores reach the top-k unrounded (by default they are cast to the params' float32)."""
    model = models.get("mlp_6x100", widths=(8,) * 5)
    v = jax.tree.map(lambda a: a[0], pai.init_seeds(model, SHAPE, [0]))
    fn = pai.scoring_fn(model, "synflow", SHAPE, pai.criterion_options_key())
    assert {s.dtype for s in jax.tree.leaves(fn(v["params"], batch=({}, None)))} == {
        jnp.dtype("float32")}
    with jax.enable_x64(True):
        v64 = jax.tree.map(lambda a: a.astype(jnp.float64), v)
        scores = fn(v64["params"], batch=({}, None))
        assert {s.dtype for s in jax.tree.leaves(scores)} == {jnp.dtype("float64")}
        mask = pai.prune(model, v64, "synflow", 0.9, input_shape=SHAPE, rounds=10)
    ref = pai.prune(model, v, "synflow", 0.9, input_shape=SHAPE, rounds=10)
    assert _num_pruned(mask) == _num_pruned(ref)
    # The same masks: on this net the float32 cast of the scores moves no weight across the
    # threshold (the full-size check: experiments/synflow_mnist/layers.py).
    for a, b in zip(jax.tree.leaves(mask), jax.tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.compiles
def test_prune_seeds_first_call_compiles_one_program(setup):
    """The parameter checks and the seeds' keys live in the pruning program: a configuration not
    seen before compiles exactly one program (host-side checks used to compile nine more)."""
    model, _, _, seeds, variables, batches = setup
    pai.prune_seeds(model, variables, "snip", 0.5, seeds=seeds, batches=batches)  # warm helpers
    compiled = []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(kw.get("fun_name"))

    other = models.get("lenet_300_100", widths=(24, 12))  # new shapes: nothing cached
    v = pai.init_seeds(other, SHAPE, seeds)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        pai.prune_seeds(other, v, "snip", 0.5, seeds=seeds, batches=batches)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert len(compiled) == 1, compiled


def test_seeds_or_keys_gives_the_keys_of_seed_keys():
    from jaxprune import seeds as seeds_lib

    for ids in ([0, 5, -3], [2**31 + 7, 1]):
        given = seeds_lib.seeds_or_keys(ids, 3, 9)
        got = jax.vmap(lambda s: seeds_lib.key_from(s, 3, 9))(jnp.asarray(given))
        want = seeds_lib.seed_keys(ids, 3, 9)
        np.testing.assert_array_equal(jax.random.key_data(got), jax.random.key_data(want))
    assert seeds_lib.seeds_or_keys([1, 2]).dtype == np.int32
