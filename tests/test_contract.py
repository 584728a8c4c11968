"""The model contract: a user's Linen and NNX networks (tests/byom_models.py, not the zoo) through
init/apply, pruning over seeds, masked training with resume, lottery tickets, AutoS, MAC counting
and the CLI's --model pkg.module:attr."""

from __future__ import annotations

import json

import byom_models as bm
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxprune import contract, data, flops, masks
from jaxprune.cli import main
from jaxprune.studies import lottery, pai
from jaxprune.train import Split, TrainConfig, fit

SHAPE = (8, 8, 1)
CFG = TrainConfig(dataset="digits", epochs=2, batch_size=64, optimizer="adam",
                  learning_rate=1e-2, schedule="constant")

MODELS = {
    "nnx_conv_bn": lambda: contract.nnx(bm.NNXConvBN),
    "nnx_mlp": lambda: contract.nnx(bm.NNXMLP),
    "linen_dropout": lambda: bm.LinenDropout(),
}


@pytest.fixture(scope="module")
def digits():
    train = Split(*data.load("digits", "train"))
    test = Split(*data.load("digits", "test"))
    return train, test


class _Crash(Exception):
    pass


def _crash_after(epoch):
    def cb(e, state, row):
        if e == epoch:
            raise _Crash

    return cb


def _leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nnx_variables_modes_and_seeds():
    model = contract.nnx(bm.NNXConvBN)
    assert model == contract.nnx(bm.NNXConvBN)  # compiled programs are shared across wrappers
    x = jax.random.normal(jax.random.key(1), (5, *SHAPE))
    v = jax.jit(model.init)(jax.random.key(0), x)
    assert set(v) == {"params", "batch_stats"}
    assert v["params"]["conv1"]["kernel"].shape == (3, 3, 1, 4)
    assert set(v["batch_stats"]["bn1"]) == {"mean", "var"}
    apply = jax.jit(model.apply, static_argnames="train")
    logits, state = apply(v, x)
    assert logits.shape == (5, 10)
    _leaves_equal(state, {"batch_stats": v["batch_stats"]})  # eval: running stats, unchanged
    # train: the batch's statistics, and the running mean moves towards them (momentum 0.99)
    _, new = apply(v, x, train=True)
    h = np.asarray(jax.lax.conv_general_dilated(
        x, v["params"]["conv1"]["kernel"], (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))) + np.asarray(v["params"]["conv1"]["bias"])
    np.testing.assert_allclose(new["batch_stats"]["bn1"]["mean"], 0.01 * h.mean(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    # pure: the same key gives the same network, another key another one, under vmap too
    stacked = pai.init_seeds(model, SHAPE, [0, 1, 0])
    k = stacked["params"]["conv1"]["kernel"]
    np.testing.assert_array_equal(k[0], k[2])
    assert not np.array_equal(k[0], k[1])
    # a built module: its own weights, and a clear refusal to initialise from a key
    built = bm.NNXMLP(rngs=nnx.Rngs(3))
    mine = contract.variables_of(built)
    np.testing.assert_array_equal(mine["params"]["layers"]["0"]["kernel"],
                                  built.layers[0].kernel[...])
    with pytest.raises(ValueError, match="factory"):
        contract.as_model(built).init(jax.random.key(0), x)
    # what workdirs record: the same in every process (no memory addresses), Linen and NNX
    assert "0x" not in model.describe() and "params/conv1/kernel: float32[3, 3, 1, 4]" in \
        model.describe()
    linen = contract.as_model(nn.Dense(3, kernel_init=lambda k, s, d: jnp.zeros(s, d)))
    assert "0x" not in linen.describe() and linen.describe().startswith("Dense(")


class _Calls(nnx.Variable):
    """A user's own variable type: not a parameter, not batch statistics."""


class _Counting(nnx.Module):
    def __init__(self, *, rngs):
        self.fc = nnx.Linear(64, 10, rngs=rngs)
        self.calls = _Calls(jnp.zeros((), jnp.int32))

    def __call__(self, x):
        self.calls[...] += 1
        return self.fc(x.reshape(x.shape[0], -1))


def test_nnx_other_variables_are_state_and_keep_their_type():
    model = contract.nnx(_Counting)
    v = model.init(jax.random.key(0), None)
    assert set(v) == {"params", "state"} and int(v["state"]["calls"]) == 0
    _, new = jax.jit(lambda v: model.apply(v, jnp.ones((2, *SHAPE)), train=True))(v)
    assert int(new["state"]["calls"]) == 1  # updated in train mode, returned as state
    _, same = model.apply(v, jnp.ones((2, *SHAPE)))
    assert int(same["state"]["calls"]) == 0  # eval mode returns the state as given


def test_linen_dropout_follows_its_deterministic_flag_and_the_key():
    model = contract.as_model(bm.LinenDropout())
    assert model.mode_args == (("deterministic", False),)
    x = jnp.ones((4, *SHAPE))
    v = model.init(jax.random.key(0), x)
    apply = jax.jit(model.apply, static_argnames="train")
    a = apply(v, x, train=True, key=jax.random.key(1))[0]
    b = apply(v, x, train=True, key=jax.random.key(1))[0]
    c = apply(v, x, train=True, key=jax.random.key(2))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(apply(v, x)[0], apply(v, x)[0])  # eval: no dropout


def _linen_twin_params(nnx_params):
    return {f"fc{i}": dict(nnx_params["layers"][str(i)]) for i in range(3)}


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_the_same_weights_in_linen_and_nnx_give_the_same_scores_and_masks(digits, method):
    train, _ = digits
    nnx_model = contract.nnx(bm.NNXMLP)
    v = nnx_model.init(jax.random.key(0), None)
    linen_v = {"params": _linen_twin_params(v["params"])}
    np.testing.assert_allclose(contract.as_model(bm.LinenMLP()).logits(linen_v, train.images[:8]),
                               nnx_model.logits(v, train.images[:8]), rtol=1e-6, atol=1e-6)
    batch = (jnp.asarray(train.images[:100]), jnp.asarray(train.labels[:100]))
    kw = dict(input_shape=SHAPE, batch=batch, key=jax.random.key(0),
              rounds=3 if method == "synflow" else None)
    fns = [pai.model_fns(m, {}, SHAPE) for m in (nnx_model, bm.LinenMLP())]
    from jaxprune import criteria

    s_nnx = criteria.for_model(method, fns[0])(v["params"], batch=batch, key=kw["key"])
    s_linen = criteria.for_model(method, fns[1])(linen_v["params"], batch=batch, key=kw["key"])
    for a, b in zip(jax.tree.leaves(_linen_twin_params(s_nnx)), jax.tree.leaves(s_linen),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * float(np.abs(b).max()))
    m_nnx = pai.prune(nnx_model, v, method, 0.8, **kw)
    m_linen = pai.prune(bm.LinenMLP(), linen_v, method, 0.8, **kw)
    _leaves_equal(_linen_twin_params(m_nnx), m_linen)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prune_seeds_on_a_users_model_equals_a_loop(digits, name):
    train, _ = digits
    model = MODELS[name]()
    seeds = [0, 1, 2]
    variables = pai.init_seeds(model, SHAPE, seeds)
    batches = pai.score_batches(train, seeds, 4)
    stacked = pai.prune_seeds(model, variables, "snip", 0.7, seeds=seeds, batches=batches)
    for i in range(len(seeds)):
        one = pai.prune(model, jax.tree.map(lambda a, i=i: a[i], variables), "snip", 0.7,
                        batch=(batches[0][i], batches[1][i]))
        _leaves_equal(jax.tree.map(lambda a, i=i: a[i], stacked), one)
    kept = sum(int(np.sum(m)) for m in jax.tree.leaves(masks.restrict_to_prunable(
        jax.tree.map(lambda a: a[0], stacked))))
    total = masks.num_prunable(jax.tree.map(lambda a: a[0], variables["params"]))
    assert kept == total - round(0.7 * total)


@pytest.mark.parametrize("name", ["nnx_conv_bn", "linen_dropout"])
def test_masked_fit_of_a_users_model_keeps_zeros_and_resumes_bitwise(digits, tmp_path, name):
    train, test = digits
    model = MODELS[name]()
    seeds = [0, 1]
    variables = pai.init_seeds(model, SHAPE, seeds)
    mask = pai.prune_seeds(model, variables, "magnitude", 0.6, seeds=seeds)
    full = fit(model, variables, train, test, CFG, mask=mask, seeds=seeds, progress=False)
    for p, m in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(mask), strict=True):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0)
    assert min(full.results["test_accuracy"]) > 0.3  # it learns (chance is 0.1)
    if "batch_stats" in variables:  # running statistics were updated in training
        assert not np.allclose(full.state.model_state["batch_stats"]["bn1"]["var"], 1.0)
    with pytest.raises(_Crash):
        fit(model, variables, train, test, CFG, mask=mask, seeds=seeds, progress=False,
            workdir=str(tmp_path), callbacks=[_crash_after(1)])
    resumed = fit(model, variables, train, test, CFG, mask=mask, seeds=seeds, progress=False,
                  workdir=str(tmp_path))
    _leaves_equal(full.state, resumed.state)


def test_lottery_levels_then_autos_on_an_nnx_model(digits, tmp_path):
    """Two IMP levels with survival counts, then AutoS end to end on the same NNX network:
    features from the lottery workdir, a scorer, and the criterion pruning a fresh init."""
    from jaxprune.studies import autos

    train, test = digits
    train, val = lottery.holdout(train, 100)
    model = contract.nnx(bm.NNXMLP)
    lc = lottery.LotteryConfig(levels=2, rate=0.5, controls=())
    res = lottery.run(model, train, test, CFG.replace(epochs=1), lc, seeds=[0, 1],
                      validation=val, progress=False, workdir=str(tmp_path / "imp"))
    assert set(res.survival) == {"layers/0/kernel", "layers/1/kernel", "layers/2/kernel"}
    surv = res.survival["layers/0/kernel"]
    want = sum(np.asarray(res.masks[level]["layers"]["0"]["kernel"], np.uint8)
               for level in (1, 2))
    np.testing.assert_array_equal(surv, want)
    assert surv.shape == (2, 64, 16) and set(np.unique(surv)) == {0, 1, 2}
    assert res.levels[2]["arms"]["ticket"]["test_accuracy"][0] > 0.2

    ds = autos.dataset_from_lottery([tmp_path / "imp"], model=model)
    assert len(ds.labels) == 2 * (64 * 16 + 16 * 12 + 12 * 10)  # every prunable weight, 2 seeds
    scorer, _ = autos.train_scorer(ds, *autos.split(ds, "run"), widths=(4,), epochs=1,
                                   batch_size=256, progress=False)
    autos.save_scorer(scorer, tmp_path / "scorer", [])
    with pytest.raises(ValueError, match="another model"):
        autos.dataset_from_lottery([tmp_path / "imp"], model=contract.nnx(bm.NNXConvBN))
    v = model.init(jax.random.key(7), None)
    batch = (jnp.asarray(train.images[:40]), jnp.asarray(train.labels[:40]))
    mask = pai.prune(model, v, "autos", 0.5, batch=batch,
                     criterion_options={"scorer": str(tmp_path / "scorer")})
    total = masks.num_prunable(v["params"])
    kept = sum(int(np.sum(m)) for m in jax.tree.leaves(masks.restrict_to_prunable(mask)))
    assert kept == total - round(0.5 * total)


def test_channel_pruning_of_a_users_linen_model_with_declared_groups(digits):
    """A user's Linen MLP (widths as a field) with its channel groups declared by hand: scores,
    a policy, surgery (the narrow network computes the masked wide one), MAC counts, the
    Rethinking pipeline (fine-tune and Scratch-E), Fisher scores and PfS gates all run on it as
    on the zoo."""
    from jaxprune import structured as st
    from jaxprune.studies import structured as study
    from jaxprune.train import init_model

    train, test = digits
    s = bm.wide_mlp_structure()
    assert isinstance(s.model, bm.LinenWideMLP)
    v = init_model(s.model, jax.random.key(0), train.images)
    one_epoch = CFG.replace(epochs=1)
    trained = fit(s.model, v, train, test, one_epoch, progress=False).variables
    keep = st.prune_by_ratio(s, st.criteria.get("l1", structure=s)(trained), 0.5)
    narrow = st.prune_channels(s, trained, keep, input_shape=SHAPE)
    assert narrow.variables["params"]["hidden0"]["kernel"].shape == (64, 16)
    assert narrow.variables["params"]["head"]["kernel"].shape == (8, 10)
    x = jnp.asarray(train.images[:8])
    np.testing.assert_allclose(narrow.model.apply(narrow.variables, x),
                               s.model.apply(st.mask_channels(s, trained, keep), x),
                               rtol=1e-5, atol=1e-5)
    assert st.count_pruned(s, keep, input_shape=SHAPE).macs == 64 * 16 + 16 * 8 + 8 * 10
    res = study.run(s, trained, train, test, criterion="l1",
                    policy=study.get_policy("ratio", s, ratio=0.5), config=one_epoch,
                    finetune_config=one_epoch, key=jax.random.key(1),
                    modes=("finetune", "scratch-e"), input_shape=SHAPE)
    assert tuple(res.narrow_options["widths"]) == (16, 8)
    assert min(r["test_accuracy"] for r in res.modes.values()) > 0.5
    # Crowley's Fisher scores and Pruning from Scratch's gates use the declared sites
    batch = (x, jnp.asarray(train.labels[:8]))
    fisher = st.criteria.get("fisher", structure=s)(trained, batch=batch)
    assert {g: np.shape(v) for g, v in fisher.items()} == {"hidden0": (32,), "hidden1": (16,)}
    from jaxprune.studies import scratch

    small = Split(train.images[:256], train.labels[:256])
    gates = scratch.learn_gates(s, v, small, small, scratch.GateConfig(epochs=1, batch_size=64,
                                                                       augment=False),
                                progress=False).gates
    found = scratch.search(s, gates, 0.5, reference_macs=st.count_pruned(s, input_shape=SHAPE)
                           .macs, tolerance=0.05, input_shape=SHAPE)
    assert abs(found.reduction - 0.5) <= 0.05


@pytest.mark.parametrize("name, want", [
    ("nnx_conv_bn", bm.NNX_CONV_BN_MACS), ("nnx_mlp", bm.NNX_MLP_MACS),
    ("linen_dropout", {"fc1": 1024, "out": 160}),
])
def test_macs_of_users_models_by_hand(name, want):
    model = contract.as_model(MODELS[name]())
    v = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, *SHAPE),
                                                                            jnp.float32))
    layers = flops.trace_layers(model, v, jnp.zeros((2, *SHAPE)))
    assert {"/".join(layer.path[:-1]).removeprefix("layers/"): layer.macs
            for layer in layers} == want
    assert [layer.kind for layer in layers][-1] == "dense"
    assert flops.count_macs(model, v, SHAPE) == sum(want.values())


def test_a_dense_layer_written_as_a_matmul_of_a_transposed_parameter_is_counted():
    class Manual(nn.Module):
        @nn.compact
        def __call__(self, x):
            w = self.param("kernel", nn.initializers.lecun_normal(), (5, 12))  # (out, in)
            scale = self.param("scale", nn.initializers.ones, (12,))
            x = x.reshape((x.shape[0], -1))[:, :12] * scale[None]
            return jnp.matmul(x, w.T)  # 12 * 5 = 60 MACs; the scale product is no layer

    v = Manual().init(jax.random.key(0), jnp.zeros((1, *SHAPE)))
    layers = flops.trace_layers(Manual(), v, jnp.zeros((1, *SHAPE)))
    assert [(layer.path, layer.macs) for layer in layers] == [(("kernel",), 60)]


def test_load_builds_classes_and_functions_and_refuses_in_one_line():
    m = contract.load("byom_models:NNXMLP", num_classes=3, hidden=(5,))
    v = m.init(jax.random.key(0), None)
    assert v["params"]["layers"]["1"]["kernel"].shape == (5, 3)
    assert isinstance(contract.load("byom_models:LinenMLP", num_classes=4), contract.LinenModel)
    f = contract.load("byom_models:nnx_mlp_factory", num_classes=2)
    assert f.init(jax.random.key(0), None)["params"]["layers"]["1"]["kernel"].shape == (8, 2)
    lin = contract.load("byom_models:linen_builder", num_classes=5)
    assert lin.module == bm.LinenDropout(num_classes=5)
    for spec, match in [("no_such_pkg.nets:Net", "cannot import"),
                        ("byom_models:Missing", "no attribute"),
                        ("byom_models:not_a_model", "expected a Linen or NNX"),
                        ("byom_models", "pkg.module:attr")]:
        with pytest.raises(contract.ModelLoadError, match=match):
            contract.load(spec) if ":" in spec else contract.load(spec + ":")
    with pytest.raises(contract.ModelLoadError, match="no option"):
        contract.load("byom_models:NNXMLP", width=3)


def test_cli_prune_on_a_users_model_matches_the_library(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["prune", "--model", "byom_models:NNXConvBN", "--dataset", "digits",
               "--criterion", "snip", "--sparsity", "0.6", "--seeds", "2", "--epochs", "0",
               "--per-class", "3", "--workdir", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    saved = np.load(out / "masks.npz")
    model = contract.nnx(bm.NNXConvBN)
    train = Split(*data.load("digits", "train"))
    seeds = [0, 1]
    variables = pai.init_seeds(model, SHAPE, seeds)
    want = pai.prune_seeds(model, variables, "snip", 0.6, seeds=seeds,
                           batches=pai.score_batches(train, seeds, 3))
    for kp, leaf in jax.tree_util.tree_leaves_with_path(want):
        np.testing.assert_array_equal(saved[masks.path_str(kp)], np.asarray(leaf))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "byom_models:NNXConvBN"
    assert summary["per_seed"][0]["macs"] == sum(bm.NNX_CONV_BN_MACS.values())


def test_cli_flops_on_a_users_model_and_a_model_that_cannot_load(capsys):
    assert main(["flops", "--model", "byom_models:NNXMLP", "--input-shape", "8,8,1"]) == 0
    text = capsys.readouterr().out
    assert f"{sum(bm.NNX_MLP_MACS.values()):,} MACs per example" in text
    assert main(["flops", "--model", "no_such_pkg.nets:Net", "--input-shape", "8,8,1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot import 'no_such_pkg.nets'" in err[0]
    assert main(["flops", "--model", "byom_models:NNXMLP"]) == 2
    assert "--input-shape" in capsys.readouterr().err
