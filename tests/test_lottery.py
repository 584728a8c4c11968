"""Lottery tickets: IMP against a hand computation, multi-seed == per-seed, resume, controls."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import data, masks, models
from jaxprune.studies import lottery
from jaxprune.train import Split, TrainConfig, fit

MODEL = models.get("lenet_300_100", widths=(8, 6))
CFG = TrainConfig(epochs=2, batch_size=64, optimizer="adam", learning_rate=3e-3,
                  schedule="constant")


@pytest.fixture(scope="module")
def digits():
    train = Split(*data.load("digits", "train"))
    test = Split(*data.load("digits", "test"))
    train, val = lottery.holdout(train, 200)
    return train, test, val


def _keep_reference(scores: np.ndarray, alive: np.ndarray, k: int) -> np.ndarray:
    """The k largest live scores, ties to the lower index (np.lexsort: independent of jaxprune)."""
    s = np.where(alive.ravel(), scores.ravel(), -np.inf)
    order = np.lexsort((np.arange(s.size), -s))
    out = np.zeros(s.size, bool)
    out[order[:k]] = True
    return out.reshape(scores.shape) & alive


def test_level_keep_counts_round_up_like_open_lth():
    counts = lottery.level_keep_counts([100, 10], [0.2, 0.1], 3)
    # 100 -> 100 - ceil(20) = 80 -> 64 -> 51 (ceil(12.8) = 13); 10 -> 9 -> 8 -> 7 (ceil(0.8) = 1)
    assert counts.tolist() == [[100, 10], [80, 9], [64, 8], [51, 7]]
    assert lottery.level_keep_counts([100, 10], [0.2], 2, per_layer=False).tolist() == [110, 88,
                                                                                         70]


def test_two_levels_of_imp_by_hand(digits):
    """Level 1 keeps the largest trained weights of level 0 per layer; level 2 the largest live
    weights of level 1's training; every level retrains from theta_0 masked."""
    train, test, val = digits
    lc = lottery.LotteryConfig(levels=2, rate=0.5, last_layer_rate=0.25, controls=())
    res = lottery.run(MODEL, train, test, CFG, lc, seeds=[4], validation=val, progress=False)
    init = jax.tree.map(np.asarray, lottery.pai.init_seeds(MODEL, (8, 8, 1), [4]))
    kw = dict(seeds=[4], validation=val, progress=False)
    prev_mask = jax.vmap(masks.ones_like)(init["params"])
    trained = fit(MODEL, init, train, test, CFG, **kw).state.params
    rates = {"fc1": 0.5, "fc2": 0.5, "fc3": 0.25}  # fc3 is the last layer
    for level in (1, 2):
        want = {}
        for layer, rate in rates.items():
            alive = np.asarray(prev_mask[layer]["kernel"][0])
            k = int(alive.sum()) - int(np.ceil(rate * alive.sum()))
            want[layer] = _keep_reference(np.abs(np.asarray(trained[layer]["kernel"][0])), alive,
                                          k)
            np.testing.assert_array_equal(np.asarray(res.masks[level][layer]["kernel"][0]),
                                          want[layer])
            assert bool(np.all(res.masks[level][layer]["bias"]))
        prev_mask = res.masks[level]
        # rewound: the ticket retrains from theta_0 under the new mask
        trained = fit(MODEL, init, train, test, CFG, mask=prev_mask, **kw).state.params
    # the last level's ticket accuracy is that retraining's accuracy
    assert res.levels[2]["arms"]["ticket"]["test_accuracy"] == pytest.approx(
        [float(fit(MODEL, init, train, test, CFG, mask=prev_mask, **kw).results[
            "test_accuracy"][0])])
    surv = res.survival["fc1/kernel"][0]
    np.testing.assert_array_equal(surv, np.asarray(res.masks[1]["fc1"]["kernel"][0], np.uint8)
                                  + np.asarray(res.masks[2]["fc1"]["kernel"][0], np.uint8))
    assert set(np.unique(surv)) <= {0, 1, 2}


def test_many_seeds_equal_a_loop_and_controls_keep_the_densities(digits):
    train, test, val = digits
    lc = lottery.LotteryConfig(levels=2, rate=0.4, eval_every=5)
    many = lottery.run(MODEL, train, test, CFG, lc, seeds=[0, 1], validation=val, progress=False)
    for i, s in enumerate([0, 1]):
        one = lottery.run(MODEL, train, test, CFG, lc, seeds=[s], validation=val, progress=False)
        for level in range(3):
            jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(a[i], b[0]),
                         many.masks[level], one.masks[level])
            for arm, m in one.levels[level]["arms"].items():
                got = many.levels[level]["arms"][arm]
                assert got["test_accuracy"][i] == pytest.approx(m["test_accuracy"][0], abs=2e-3)
    # the controls train with exactly the ticket's per-layer densities
    mask = many.masks[2]
    variables, arm_masks = lottery.arm_networks(
        MODEL, (8, 8, 1), [0, 1], 2, ["ticket", *lottery.CONTROLS],
        lottery.pai.init_seeds(MODEL, (8, 8, 1), [0, 1]), mask)
    per_layer = lambda m: [int(x.sum()) for x in jax.tree.leaves(m)]
    for a in range(4):
        for i in range(2):
            arm = jax.tree.map(lambda x, j=a * 2 + i: x[j], arm_masks)
            assert per_layer(arm) == per_layer(jax.tree.map(lambda x, i=i: x[i], mask))
    ticket, shuffled = (jax.tree.map(lambda x, j=j: x[j], arm_masks) for j in (0, 4))
    assert not np.array_equal(ticket["fc1"]["kernel"], shuffled["fc1"]["kernel"])
    first = lambda j: np.asarray(variables["params"]["fc1"]["kernel"][j])
    np.testing.assert_array_equal(first(0), first(4))  # shuffle keeps theta_0
    assert not np.array_equal(first(0), first(2))  # reinit draws a new init
    summary = many.levels[2]
    assert summary["early_stop_on"] == "val_loss"
    assert all(s % 5 == 0 for s in summary["arms"]["ticket"]["early_stop_step"])


class _Crash(Exception):
    pass


def test_kill_at_any_point_resumes_bitwise(digits, tmp_path):
    train, test, val = digits
    lc = lottery.LotteryConfig(levels=3, rate=0.5, rewind_step=7, eval_every=10)
    kw = dict(seeds=[0, 1], validation=val, progress=False)
    full = lottery.run(MODEL, train, test, CFG, lc, workdir=str(tmp_path / "full"), **kw)

    def crash_in_level_2(epoch, state, row, calls=[0]):  # noqa: B006 - counts calls
        calls[0] += 1
        if calls[0] == 4:  # levels 0, 1 take 2 epochs each: epoch 1 of level 2
            raise _Crash

    wd = str(tmp_path / "killed")
    with pytest.raises(_Crash):
        lottery.run(MODEL, train, test, CFG, lc, workdir=wd, epoch_callbacks=[crash_in_level_2],
                    **kw)
    with pytest.raises(_Crash):  # and once more between levels
        lottery.run(MODEL, train, test, CFG, lc, workdir=wd,
                    level_callbacks=[lambda level, s: (_ for _ in ()).throw(_Crash)
                                     if level == 2 else None], **kw)
    resumed = lottery.run(MODEL, train, test, CFG, lc, workdir=wd, **kw)
    assert resumed.levels == full.levels
    for a, b in zip(full.masks, resumed.masks, strict=True):
        jax.tree.map(np.testing.assert_array_equal, a, b)
    got, levels = lottery.read_survival(wd)
    assert levels == 3 and set(got) == {"fc1/kernel", "fc2/kernel", "fc3/kernel"}
    np.testing.assert_array_equal(got["fc2/kernel"], full.survival["fc2/kernel"])
    for level in range(4):
        saved = np.load(tmp_path / "killed" / f"level_{level:02d}" / "masks.npz")
        np.testing.assert_array_equal(saved["fc1/kernel"], full.masks[level]["fc1"]["kernel"])
    with pytest.raises(ValueError, match=r"different configuration \(rate: 0.5 -> 0.4\)"):
        lottery.run(MODEL, train, test, CFG, lottery.LotteryConfig(
            levels=3, rate=0.4, rewind_step=7, eval_every=10), workdir=wd, **kw)
    results = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert len(results["levels"]) == 4


@pytest.mark.parametrize(("kw", "message"), [
    (dict(levels=2, rate=1.0), "rate is the fraction"),
    (dict(levels=2, rate=0.0), "rate is the fraction"),
    (dict(levels=0), "levels must be an integer >= 1"),
    (dict(levels=2, rewind_step=38), r"rewind_step 38 must lie in \[0, 38\)"),
    (dict(levels=2, criterion="snip", per_class=0), "snip scores on data: per_class"),
    (dict(levels=2, controls=("reinit", "nope")), "unknown controls"),
    (dict(levels=2, allocation="global", last_layer_rate=0.1), "per-layer rates need"),
    (dict(levels=2, layer_rates={"fc9/kernel": 0.1}), "layer_rates names"),
    (dict(levels=40, rate=0.5), "prune a layer completely"),
])
def test_bad_configurations_are_refused_before_anything_is_written(digits, tmp_path, kw,
                                                                     message):
    train, test, _ = digits
    with pytest.raises(ValueError, match=message):
        lottery.run(MODEL, train, test, CFG, lottery.LotteryConfig(**kw), seeds=[0],
                    workdir=str(tmp_path / "w"), progress=False)
    assert not (tmp_path / "w").exists()


def test_global_allocation_and_a_data_criterion(digits):
    train, test, _ = digits
    lc = lottery.LotteryConfig(levels=1, rate=0.5, allocation="global", criterion="snip",
                               controls=())
    res = lottery.run(MODEL, train, test, CFG, lc, seeds=[0], progress=False)
    kept = sum(int(np.asarray(m).sum()) for p, m in jax.tree_util.tree_leaves_with_path(
        res.masks[1]) if p[-1].key == "kernel")
    assert kept == 64 * 8 + 8 * 6 + 6 * 10 - int(np.ceil(0.5 * (64 * 8 + 8 * 6 + 6 * 10)))
    assert res.levels[1]["layer_density"]["fc1/kernel"] != 0.5  # one threshold, not per layer
    assert jnp.asarray(res.levels[1]["density"]) == pytest.approx(0.5, abs=1e-3)


def test_cli_lottery_table_files_and_bad_input(tmp_path, capsys):
    from jaxprune.cli import main

    wd = tmp_path / "imp"
    base = ["lottery", "--model", "lenet_300_100", "--dataset", "digits", "--epochs", "1",
            "--batch-size", "64", "--optimizer", "adam", "--lr", "3e-3", "--no-progress"]
    argv = [*base, "--levels", "1", "--rate", "0.5", "--seeds", "2", "--validation", "200",
            "--workdir", str(wd)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mean +/- std over 2 seeds" in out and "reinit" in out and "50.00" in out
    assert {p.name for p in wd.iterdir()} >= {"config.json", "level_00", "level_01",
                                               "survival.npz", "results.json", "summary.csv"}
    # the library call the command makes, on its own (no workdir): the same levels
    train = Split(*data.load("digits", "train"))
    train, val = lottery.holdout(train, 200)
    lib = lottery.run(models.get("lenet_300_100"), train, Split(*data.load("digits", "test")),
                      TrainConfig(dataset="digits", epochs=1, batch_size=64, optimizer="adam",
                                  learning_rate=3e-3), lottery.LotteryConfig(levels=1, rate=0.5),
                      seeds=[0, 1], validation=val, progress=False)
    saved = json.loads((wd / "results.json").read_text())["levels"]
    assert [{a: m["test_accuracy"] for a, m in lvl["arms"].items()} for lvl in saved] == [
        {a: m["test_accuracy"] for a, m in lvl["arms"].items()} for lvl in lib.levels]
    for extra, message in [
        (["--levels", "0"], "levels must be an integer >= 1"),
        (["--levels", "2", "--rate", "1.5"], "rate is the fraction"),
        (["--levels", "2", "--rewind-step", "99"], "rewind_step 99 must lie in [0, 22)"),
        (["--levels", "2", "--layer-rate", "fc3/kernel"], "--layer-rate takes PATH=RATE"),
        (["--levels", "2", "--criterion", "snip", "--per-class", "0"],
         "snip scores on data: per_class must be >= 1"),
    ]:
        bad = tmp_path / "bad"
        assert main([*base, *extra, "--workdir", str(bad)]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not bad.exists()
    other = [a if a != "lenet_300_100" else "mlp_6x100" for a in argv]
    assert main(other) == 2  # the workdir belongs to another model
    assert "different configuration" in capsys.readouterr().err
