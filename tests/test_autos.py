"""AutoS: features against NumPy, leak-free splits, the scorer's save/restore and learning, the
criterion under the multi-seed engine, bad input."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import criteria, data, models
from jaxprune.criteria import learned as crit
from jaxprune.studies import autos, lottery, pai
from jaxprune.train import Split, TrainConfig


def _mlp(seed, sizes=(5, 4, 3)):
    rng = np.random.default_rng(seed)
    return {f"fc{i}": {"kernel": jnp.asarray(rng.standard_normal((a, b)) / np.sqrt(a), jnp.float32),
                       "bias": jnp.asarray(0.1 * rng.standard_normal(b), jnp.float32)}
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))}


def _apply(p, x):
    h = jax.nn.relu(x @ p["fc0"]["kernel"] + p["fc0"]["bias"][None, :])
    return h @ p["fc1"]["kernel"] + p["fc1"]["bias"][None, :]


def _loss(p, batch):
    x, y = batch
    return -jnp.mean(jax.nn.log_softmax(_apply(p, x))[jnp.arange(len(y)), y])


def _numpy_grads(p, x, y):
    """dL/dW of the mean softmax cross-entropy, backprop by hand in float64."""
    W0, b0 = np.asarray(p["fc0"]["kernel"], np.float64), np.asarray(p["fc0"]["bias"], np.float64)
    W1, b1 = np.asarray(p["fc1"]["kernel"], np.float64), np.asarray(p["fc1"]["bias"], np.float64)
    x = np.asarray(x, np.float64)
    h = x @ W0 + b0
    a = np.maximum(h, 0)
    z = a @ W1 + b1
    q = np.exp(z - z.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    dz = (q - np.eye(3)[np.asarray(y)]) / len(y)
    dh = (dz @ W1.T) * (h > 0)
    return x.T @ dh, a.T @ dz


def test_features_against_numpy():
    p = _mlp(0)
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((3, 6, 5)).astype(np.float32)  # 3 batches of 6
    ys = rng.integers(0, 3, (3, 6))
    one = crit.initial_gradient(_loss, p, (jnp.asarray(xs[0]), jnp.asarray(ys[0])))
    g0, g1 = _numpy_grads(p, xs[0], ys[0])
    np.testing.assert_allclose(one["fc0"]["kernel"], g0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(one["fc1"]["kernel"], g1, rtol=1e-4, atol=1e-6)
    many = crit.initial_gradient(_loss, p, (jnp.asarray(xs), jnp.asarray(ys)))  # mean of 3
    want = [np.mean([_numpy_grads(p, xs[k], ys[k])[i] for k in range(3)], axis=0)
            for i in range(2)]
    f = np.asarray(crit.weight_features(p, many))
    assert f.shape == (5 * 4 + 4 * 3, 2)
    np.testing.assert_allclose(f[:, 0], np.concatenate([np.ravel(p["fc0"]["kernel"]),
                                                        np.ravel(p["fc1"]["kernel"])]))
    np.testing.assert_allclose(f[:, 1], np.concatenate([w.ravel() for w in want]), rtol=1e-4,
                               atol=1e-6)
    z = np.asarray(crit.weight_features(p, many, standardize="layer"))
    for rows in (slice(0, 20), slice(20, 32)):
        np.testing.assert_allclose(z[rows].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(z[rows].std(0), 1, rtol=1e-4)


def _scorer(widths=(4, 4), seed=0):
    net = crit.ScorerNet(widths)
    v = net.init(jax.random.key(seed), jnp.zeros((2, 2)))
    return crit.Scorer(v, widths, "none", np.zeros(2, np.float32), np.ones(2, np.float32), {})


def test_scorer_learns_a_known_ranking_and_round_trips_bitwise(tmp_path):
    """Labels that are a known function of (theta_0, g_0): the scorer recovers their order."""
    rng = np.random.default_rng(0)
    n = 6000
    f = np.stack([rng.standard_normal(n), 0.01 * rng.standard_normal(n)], 1).astype(np.float32)
    lab = 1 / (1 + np.exp(-(2 * np.abs(f[:, 0]) + 100 * f[:, 1])))  # |theta| and signed g
    ds = autos.Dataset(f, lab.astype(np.float32), np.repeat([0, 1, 2], n // 3),
                       np.zeros(n, int), ["a", "b", "c"])
    train_rows, held_rows = autos.split(ds, "run")
    scorer, curve = autos.train_scorer(ds, train_rows, held_rows, widths=(32, 32), epochs=8,
                                       batch_size=256, learning_rate=0.01, progress=False)
    assert scorer.info["heldout_spearman"] > 0.95, curve
    assert scorer.info["heldout_mse"] == min(r["heldout_mse"] for r in curve)  # best epoch
    autos.save_scorer(scorer, tmp_path / "s", curve)
    back = crit.load_scorer(tmp_path / "s")
    jax.tree.map(np.testing.assert_array_equal, back.variables, scorer.variables)
    np.testing.assert_array_equal(back.mean, scorer.mean)
    assert back.info["best_epoch"] == scorer.info["best_epoch"]
    feats = jnp.asarray(f[:100])
    np.testing.assert_array_equal(crit.predict(back, feats), crit.predict(scorer, feats))
    assert len((tmp_path / "s" / "curves.jsonl").read_text().splitlines()) == 8
    meta = json.loads((tmp_path / "s" / "scorer.json").read_text())
    meta["feature_version"] = 0
    (tmp_path / "s" / "scorer.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="features of version 0"):
        crit.load_scorer(tmp_path / "s")


def test_predict_in_chunks_equals_one_pass():
    scorer = _scorer()
    feats = jnp.asarray(np.random.default_rng(2).standard_normal((1000, 2)), jnp.float32)
    np.testing.assert_allclose(crit.predict(scorer, feats, chunk=128),
                               crit.predict(scorer, feats, chunk=4096), rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def lottery_run(tmp_path_factory):
    """A tiny lottery workdir (3 seeds, 2 levels) on digits."""
    wd = tmp_path_factory.mktemp("imp")
    model = models.get("lenet_300_100", widths=(8, 6))
    train, test = Split(*data.load("digits", "train")), Split(*data.load("digits", "test"))
    cfg = TrainConfig(model="lenet_300_100", dataset="digits", model_options={"widths": (8, 6)},
                      epochs=1, batch_size=64, optimizer="adam", learning_rate=3e-3)
    lottery.run(model, train, test, cfg, lottery.LotteryConfig(levels=2, rate=0.5, controls=()),
                seeds=[0, 1, 2], workdir=str(wd), progress=False)
    return wd


def test_dataset_split_has_no_tensor_in_both_halves(lottery_run):
    ds = autos.dataset_from_lottery([lottery_run])
    n = 64 * 8 + 8 * 6 + 6 * 10
    assert ds.features.shape == (3 * n, 2) and len(ds.runs) == 3
    assert set(np.unique(ds.labels)) <= {0.0, 0.5, 1.0}  # 0..2 levels survived, / 2
    for how in ("run", "layer"):
        tr, held = autos.split(ds, how)
        assert tr.any() and held.any() and not (tr & held).any()
        tensors = lambda rows: {(int(r), int(ly)) for r, ly in zip(ds.run[rows], ds.layer[rows],
                                                                   strict=True)}
        assert not tensors(tr) & tensors(held)
    # theta_0 is the lottery's init: seed 1's first feature column is its fc1 kernel
    init = pai.init_seeds(models.get("lenet_300_100", widths=(8, 6)), (8, 8, 1), [1])
    np.testing.assert_array_equal(ds.features[ds.run == 1][:64 * 8, 0],
                                  np.ravel(init["params"]["fc1"]["kernel"][0]))


def test_autos_through_the_multi_seed_engine_equals_a_loop(lottery_run, tmp_path):
    ds = autos.dataset_from_lottery([lottery_run])
    tr, held = autos.split(ds, "run")
    scorer, curve = autos.train_scorer(ds, tr, held, widths=(8, 8), epochs=2, batch_size=128,
                                       progress=False)
    autos.save_scorer(scorer, tmp_path / "scorer", curve)
    model = models.get("lenet_300_100", widths=(8, 6))
    train = data.load("digits", "train")
    seeds = [5, 6]
    variables = pai.init_seeds(model, (8, 8, 1), seeds)
    batches = pai.score_batches(train, seeds, 2)
    opts = {"scorer": str(tmp_path / "scorer")}
    stacked = pai.prune_seeds(model, variables, "autos", 0.8, seeds=seeds, batches=batches,
                              criterion_options=opts)
    for i in range(2):
        one = jax.tree.map(lambda a, i=i: a[i], variables)
        ref = pai.prune(model, one, "autos", 0.8, batch=(batches[0][i], batches[1][i]),
                        criterion_options=opts)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(a[i], b), stacked, ref)
    with pytest.raises(ValueError, match="needs a trained scorer"):
        pai.prune(model, one, "autos", 0.8, batch=(batches[0][0], batches[1][0]))
    assert criteria.needs_data("autos")


def test_bad_input(lottery_run, tmp_path):
    with pytest.raises(ValueError, match="holds no AutoS scorer"):
        crit.load_scorer(tmp_path)
    (lottery_run / "survival.npz").rename(tmp_path / "survival.npz")
    try:
        with pytest.raises(FileNotFoundError, match="holds no survival.npz"):
            autos.dataset_from_lottery([lottery_run])
    finally:
        (tmp_path / "survival.npz").rename(lottery_run / "survival.npz")
    ds = autos.dataset_from_lottery([lottery_run])
    with pytest.raises(ValueError, match="at least two runs"):
        autos.split(ds._replace(runs=["one"], run=np.zeros_like(ds.run)), "run")
    from jaxprune.cli import main

    out = tmp_path / "scorer"
    assert main(["autos", "train", "--from", str(lottery_run), "--out", str(out),
                 "--widths", "8,8", "--epochs", "1", "--batch-size", "64", "--no-progress"]) == 0
    assert (out / "scorer.json").is_file()
    # the library calls the command makes: the same scorer (its held-out figures)
    ds2 = autos.dataset_from_lottery([lottery_run])
    train_rows, held_rows = autos.split(ds2, "run")
    lib, _ = autos.train_scorer(ds2, train_rows, held_rows, widths=(8, 8), epochs=1,
                                batch_size=64, progress=False)
    assert json.loads((out / "scorer.json").read_text())["heldout_mse"] == \
        lib.info["heldout_mse"]
    assert main(["autos", "train", "--from", str(lottery_run), "--out", str(out),
                 "--widths", "8,8", "--epochs", "2", "--batch-size", "64", "--no-progress"]) == 2
    assert main(["autos", "train", "--from", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_features_with_nan_are_refused(lottery_run, monkeypatch):
    real = crit.weight_features
    monkeypatch.setattr(crit, "weight_features",
                        lambda *a, **k: real(*a, **k).at[3, 1].set(jnp.nan))
    with pytest.raises(ValueError, match="feature rows are not finite"):
        autos.dataset_from_lottery([lottery_run])
