"""Training: optimizers and schedules, masked training, workdirs, kill-and-resume."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxprune import masks
from jaxprune.train import (
    Split,
    TrainConfig,
    Workdir,
    create_state,
    fit,
    make_optimizer,
    make_schedule,
    make_train_step,
    preset,
    split_variables,
)


class TinyMLP(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(16, name="fc1")(x))
        return nn.Dense(3, name="fc2")(x)


class TinyConvBN(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = nn.Conv(4, (3, 3), use_bias=False, name="conv1")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn1")(x)
        x = nn.relu(x).mean(axis=(1, 2))
        return nn.Dense(3, name="fc")(x)


def _data(n=96, shape=(6, 6, 3), seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    x = rng.random((n, *shape), dtype=np.float32) * 0.5
    x[..., 0] += 0.5 * y[:, None, None]  # learnable signal that survives crops and flips
    return Split(x, y)


def _half_mask(params):
    """Prune every other entry of each kernel."""
    def leaf(path, p):
        if path[-1].key != "kernel":
            return jnp.ones(p.shape, bool)
        return (jnp.arange(p.size).reshape(p.shape) % 2) == 0
    return jax.tree_util.tree_map_with_path(leaf, params)


# -- optimizers and schedules ---------------------------------------------------------------------

def test_step_schedule_drops_at_milestones():
    cfg = TrainConfig(epochs=10, schedule="step", learning_rate=0.1, milestones=(0.5, 0.75))
    lr = make_schedule(cfg, steps_per_epoch=10)  # 100 steps, drops at 50 and 75
    assert float(lr(49)) == pytest.approx(0.1)
    assert float(lr(50)) == pytest.approx(0.01)
    assert float(lr(74)) == pytest.approx(0.01)
    assert float(lr(75)) == pytest.approx(0.001)


def test_cosine_schedule_with_warmup():
    cfg = TrainConfig(epochs=10, schedule="cosine", learning_rate=0.2, warmup_epochs=2)
    lr = make_schedule(cfg, steps_per_epoch=5)
    assert float(lr(0)) == 0.0
    assert float(lr(10)) == pytest.approx(0.2)
    assert float(lr(50)) == pytest.approx(0.0, abs=1e-7)


def test_sgd_coupled_weight_decay_matches_hand_written_update():
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=0.01,
                      schedule="constant", epochs=1)
    tx = make_optimizer(cfg, steps_per_epoch=1)
    p = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([0.5, 0.25])}
    state = tx.init(p)
    buf = np.zeros(2)
    w = np.array([1.0, -2.0])
    for _ in range(3):  # PyTorch SGD: d = g + wd*w; buf = m*buf + d; w -= lr*buf
        upd, state = tx.update(g, state, p)
        p = optax.apply_updates(p, upd)
        d = np.array([0.5, 0.25]) + 0.01 * w
        buf = 0.9 * buf + d
        w = w - 0.1 * buf
    np.testing.assert_allclose(p["w"], w, rtol=1e-6)


def test_preset_and_config_validation():
    cfg = preset("cifar_resnet", model="resnet20")
    assert cfg.weight_decay == 1e-4 and cfg.augment and cfg.epochs == 160
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        TrainConfig(epochs=-1).validate()
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"epochz": 3})
    cfg2 = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert cfg2 == cfg


# -- masked training ------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_masked_training_keeps_pruned_weights_exactly_zero(optimizer):
    model = TinyMLP()
    data = _data()
    variables = model.init(jax.random.key(0), data.images[:1])
    params, model_state = split_variables(variables)
    mask = _half_mask(params)
    cfg = TrainConfig(optimizer=optimizer, learning_rate=0.05, momentum=0.9, nesterov=True,
                      weight_decay=0.01, schedule="constant", epochs=1)
    tx = make_optimizer(cfg, 1)
    state = create_state(params, model_state, tx, mask)
    # Poison the optimizer state so that a leak through momentum/moments would move pruned weights.
    state = state.replace(opt_state=jax.tree.map(
        lambda s: jnp.full_like(s, 0.5) if jnp.issubdtype(s.dtype, jnp.floating) else s,
        state.opt_state))
    step = jax.jit(make_train_step(model, tx))
    x, y = jnp.asarray(data.images), jnp.asarray(data.labels)
    for i in range(5):
        state, _ = step(state, x, y, jax.random.key(i))
    for p, m, p0 in zip(jax.tree.leaves(state.params), jax.tree.leaves(mask),
                        jax.tree.leaves(params), strict=True):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)
        kept = np.asarray(m)
        assert not np.allclose(np.asarray(p)[kept], np.asarray(p0)[kept])  # the rest does train


def test_mask_not_matching_params_is_a_clear_error():
    model = TinyMLP()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    params, model_state = split_variables(variables)
    tx = optax.sgd(0.1)
    bad = dict(masks.ones_like(params))
    bad.pop("fc2")
    with pytest.raises(ValueError, match="mask tree does not match"):
        create_state(params, model_state, tx, bad)
    wrong_shape = jax.tree.map(lambda p: jnp.ones(p.shape[:1], bool), params)
    with pytest.raises(ValueError, match="has shape"):
        create_state(params, model_state, tx, wrong_shape)
    not_bool = jax.tree.map(lambda p: jnp.ones(p.shape), params)
    with pytest.raises(ValueError, match="dtype"):
        create_state(params, model_state, tx, not_bool)


def test_fit_learns_and_masks_with_batch_norm():
    model = TinyConvBN()
    train, test = _data(seed=0), _data(n=60, seed=1)
    variables = model.init(jax.random.key(0), train.images[:1])
    mask = _half_mask(variables["params"])
    cfg = TrainConfig(epochs=4, batch_size=16, optimizer="adam", learning_rate=0.03,
                      schedule="constant", augment=True, eval_batch_size=25)
    res = fit(model, variables, train, test, cfg, mask=mask, progress=False)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.results["test_accuracy"] > 0.6
    k = np.asarray(res.state.params["conv1"]["kernel"])
    assert np.all(k[~np.asarray(mask["conv1"]["kernel"])] == 0)
    # batch-norm statistics were updated by training
    assert not np.allclose(res.state.model_state["batch_stats"]["bn1"]["mean"], 0.0)


# -- workdir, kill and resume ---------------------------------------------------------------------

class _Crash(Exception):
    pass


def _crash_after(epoch):
    def cb(e, state, row):
        if e == epoch:
            raise _Crash(f"simulated crash after epoch {e}")
    return cb


def _strip_timing(history):
    return [{k: v for k, v in r.items() if k not in ("epoch_seconds", "images_per_second")}
            for r in history]


def test_kill_and_resume_is_bitwise_identical(tmp_path):
    model = TinyConvBN()
    train, test = _data(seed=0), _data(n=40, seed=1)
    variables = model.init(jax.random.key(0), train.images[:1])
    mask = _half_mask(variables["params"])
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="sgd", learning_rate=0.05,
                      momentum=0.9, weight_decay=5e-4, schedule="cosine", augment=True)
    full = fit(model, variables, train, test, cfg, mask=mask, workdir=str(tmp_path / "a"),
               progress=False)

    with pytest.raises(_Crash):
        fit(model, variables, train, test, cfg, mask=mask, workdir=str(tmp_path / "b"),
            progress=False, callbacks=[_crash_after(2)])
    wd = Workdir(tmp_path / "b")
    assert wd.latest_epoch() == 2
    assert len(wd.read_metrics()) == 2
    assert not wd.results_path.exists()
    wd.close()
    resumed = fit(model, variables, train, test, cfg, mask=mask, workdir=str(tmp_path / "b"),
                  progress=False)

    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert _strip_timing(full.history) == _strip_timing(resumed.history)
    assert _strip_timing(Workdir(tmp_path / "b").read_metrics()) == _strip_timing(full.history)
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert saved["test_accuracy"] == full.results["test_accuracy"]


def test_ctrl_c_while_a_checkpoint_is_written_completes_it_then_interrupts(tmp_path,
                                                                          monkeypatch):
    """SIGINT delivered while orbax finishes a save (the moment that used to leave a traceback
    or a hang): the checkpoint is completed and readable, then KeyboardInterrupt is raised."""
    import os
    import signal

    import orbax.checkpoint as ocp

    state = {"w": jnp.arange(6.0).reshape(2, 3)}
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    finish = ocp.CheckpointManager.wait_until_finished

    def interrupted_wait(manager):
        os.kill(os.getpid(), signal.SIGINT)
        finish(manager)

    wd = Workdir(tmp_path / "w")
    with monkeypatch.context() as m:  # orbax's own wait, as a Workdir's save calls it
        m.setattr(ocp.CheckpointManager, "wait_until_finished", interrupted_wait)
        with pytest.raises(KeyboardInterrupt):
            wd.save(1, state, [{"epoch": 1}])
    wd.close()
    fresh = Workdir(tmp_path / "w")
    assert fresh.latest_epoch() == 1
    restored, history = fresh.restore(1, state)
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.asarray(state["w"]))
    assert history == [{"epoch": 1}]
    fresh.close()
    # Outside a save the handler in place before is back; an ignored SIGINT stays ignored.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wd = Workdir(tmp_path / "w")
    with monkeypatch.context() as m:
        m.setattr(ocp.CheckpointManager, "wait_until_finished", interrupted_wait)
        wd.save(2, state, [{"epoch": 1}, {"epoch": 2}])  # no KeyboardInterrupt
    wd.close()
    signal.signal(signal.SIGINT, before)


def test_resume_with_a_different_config_is_refused(tmp_path):
    model = TinyMLP()
    train = _data()
    variables = model.init(jax.random.key(0), train.images[:1])
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer="adam", learning_rate=1e-3)
    fit(model, variables, train, train, cfg, workdir=str(tmp_path), progress=False)
    with pytest.raises(ValueError, match=r"configuration \(learning_rate: 0.001 -> 0.01\)"):
        fit(model, variables, train, train, cfg.replace(learning_rate=0.01),
            workdir=str(tmp_path), progress=False)


def test_resume_with_another_mask_init_data_or_seeds_is_refused(tmp_path):
    """The mask, the starting weights, the data and the seeds of a stack are part of a run."""
    model = TinyMLP()
    train = _data()
    variables = model.init(jax.random.key(0), train.images[:1])
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer="adam", learning_rate=1e-3)
    mask = _half_mask(variables["params"])
    fit(model, variables, train, train, cfg, mask=mask, workdir=str(tmp_path), progress=False)
    flipped = jax.tree.map(lambda m: ~m if m.ndim == 2 else m, mask)
    other = model.init(jax.random.key(1), train.images[:1])
    for kw, field in [(dict(mask=flipped), "mask_fingerprint"),
                      (dict(mask=mask, variables=other), "init_fingerprint"),
                      (dict(mask=mask, train=_data(seed=5)), "data_fingerprint")]:
        args = {"variables": variables, "train": train, **kw}
        with pytest.raises(ValueError, match=field):
            fit(model, args["variables"], args["train"], train, cfg, mask=args["mask"],
                workdir=str(tmp_path), progress=False)
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), variables)
    fit(model, stacked, train, train, cfg, seeds=[0, 1], workdir=str(tmp_path / "s"),
        progress=False)
    with pytest.raises(ValueError, match=r"seeds: \[0, 1\] -> \[2, 3\]"):
        fit(model, stacked, train, train, cfg, seeds=[2, 3], workdir=str(tmp_path / "s"),
            progress=False)


def test_result_files_get_the_usual_mode(tmp_path):
    import os

    from jaxprune.train import write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644


def test_fit_rejects_bad_input():
    model = TinyMLP()
    train = _data(n=10)
    variables = model.init(jax.random.key(0), train.images[:1])
    with pytest.raises(ValueError, match="larger than the training split"):
        fit(model, variables, train, train, TrainConfig(batch_size=64), progress=False)
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        fit(model, variables, train, train, TrainConfig(epochs=-2), progress=False)
    with pytest.raises(ValueError, match="10 images but 3 labels"):
        fit(model, variables, Split(train.images, train.labels[:3]), train, TrainConfig(),
            progress=False)


# -- several networks in one vmapped run ----------------------------------------------------------

def test_stacked_fit_reproduces_single_runs(tmp_path):
    """Network i of a stacked run equals a single run with seed seeds[i]."""
    model = TinyMLP()
    train, test = _data(seed=0), _data(n=40, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", learning_rate=0.05, momentum=0.9,
                      schedule="cosine", seed=3)
    keys = jnp.stack([jax.random.key(k) for k in (10, 11, 12)])
    stacked_vars = jax.vmap(lambda k: model.init(k, train.images[:1]))(keys)
    stacked_mask = jax.vmap(_half_mask)(stacked_vars["params"])
    many = fit(model, stacked_vars, train, test, cfg, mask=stacked_mask, seeds=[3, 4, 5],
               workdir=str(tmp_path), progress=False)
    assert len(many.results["test_accuracy"]) == 3
    for s in range(3):
        variables = jax.tree.map(lambda a, s=s: a[s], stacked_vars)
        one = fit(model, variables, train, test, cfg.replace(seed=cfg.seed + s),
                  mask=_half_mask(variables["params"]), progress=False)
        for a, b in zip(jax.tree.leaves(one.state.params),
                        jax.tree.leaves(jax.tree.map(lambda a, s=s: a[s], many.state.params)),
                        strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        assert many.history[-1]["test_accuracy"][s] == pytest.approx(
            one.history[-1]["test_accuracy"], abs=1e-6)


def test_stacked_fit_checks_the_leading_axis():
    model = TinyMLP()
    train = _data()
    variables = model.init(jax.random.key(0), train.images[:1])
    with pytest.raises(ValueError, match="need a leading axis of size 4"):
        fit(model, variables, train, train, TrainConfig(batch_size=16), seeds=range(4),
            progress=False)


def test_zero_epochs_evaluates_the_initial_network():
    model = TinyMLP()
    train = _data()
    variables = model.init(jax.random.key(0), train.images[:1])
    res = fit(model, variables, train, train, TrainConfig(epochs=0, batch_size=16),
              progress=False)
    assert res.history == [] and res.results["steps"] == 0
    logits = model.apply(variables, (train.images - train.images.mean((0, 1, 2))) /
                         train.images.std((0, 1, 2)))
    expected = float(np.mean(np.asarray(logits).argmax(-1) == train.labels))
    assert res.results["test_accuracy"] == pytest.approx(expected, abs=1e-6)


def test_start_step_continues_a_run_exactly():
    """Plain SGD keeps no optimizer state beyond its step count, so training from the weights
    captured after step k with start_step=k must end exactly where the full run ends: same
    batches, same augmentation keys, same learning rates from step k on."""
    model = TinyConvBN()
    train, test = _data(seed=0), _data(n=40, seed=1)
    variables = model.init(jax.random.key(0), train.images[:1])
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="sgd", learning_rate=0.05, momentum=0.0,
                      schedule="cosine", augment=True)
    spe = len(train.labels) // 16
    k = spe + 2  # inside the second epoch
    full = fit(model, variables, train, test, cfg, progress=False, snapshot_steps=[0, k])
    jax.tree.map(np.testing.assert_array_equal, full.snapshots[0], variables)
    late = fit(model, full.snapshots[k], train, test, cfg, progress=False, start_step=k)
    assert late.results["steps"] == full.results["steps"] == 3 * spe
    jax.tree.map(np.testing.assert_array_equal, late.state.params, full.state.params)
    assert [r["lr"] for r in late.history] == [r["lr"] for r in full.history[1:]]
    with pytest.raises(ValueError, match="start_step 18 is outside"):
        fit(model, variables, train, test, cfg, progress=False, start_step=3 * spe)


def test_evaluation_points_and_snapshots_survive_a_crash(tmp_path):
    model = TinyMLP()
    train, test = _data(seed=0), _data(n=40, seed=1)
    val = _data(n=30, seed=2)
    variables = model.init(jax.random.key(0), train.images[:1])
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="adam", learning_rate=1e-2)
    kw = dict(validation=val, eval_every=4, snapshot_steps=[5], progress=False)
    full = fit(model, variables, train, test, cfg, **kw)
    steps = [e["step"] for r in full.history for e in r["evals"]]
    assert steps == [4, 8, 12, 16]  # 6 steps per epoch, every 4th
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= set(full.history[0])
    with pytest.raises(_Crash):
        fit(model, variables, train, test, cfg, workdir=str(tmp_path), callbacks=[_crash_after(2)],
            **kw)
    resumed = fit(model, variables, train, test, cfg, workdir=str(tmp_path), **kw)
    jax.tree.map(np.testing.assert_array_equal, resumed.snapshots[5], full.snapshots[5])
    assert _strip_timing(resumed.history) == _strip_timing(full.history)


@pytest.mark.compiles
def test_a_second_fit_of_the_same_setup_compiles_nothing():
    """fit caches its compiled programs per (model, recipe, data shapes and statistics): IMP
    levels, sweeps and per-seed loops pay the compilation once."""
    model = TinyMLP()
    train, test = _data(seed=0), _data(n=40, seed=1)
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer="adam", learning_rate=1e-2)
    variables = model.init(jax.random.key(0), train.images[:1])
    fit(model, variables, train, test, cfg, mask=_half_mask(variables["params"]),
        progress=False)
    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event) if event == (
        "/jax/core/compile/backend_compile_duration") else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        other = model.init(jax.random.key(1), train.images[:1])
        fit(model, other, train, test, cfg, mask=_half_mask(other["params"]), progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def test_stacked_conv_nets_loop_on_cpu_with_the_results_of_vmap(tmp_path):
    """strategy='auto' trains stacked conv nets one at a time on CPU (vmap would make grouped
    convolutions); every strategy computes the same networks, and resume works in loop mode."""
    from jaxprune.train import stacked_groups

    model = TinyConvBN()
    train, test = _data(seed=0), _data(n=40, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", learning_rate=0.05,
                      momentum=0.9, augment=True)
    keys = jnp.stack([jax.random.key(k) for k in (3, 4)])
    variables = jax.vmap(lambda k: model.init(k, train.images[:1]))(keys)
    mask = jax.vmap(_half_mask)(variables["params"])
    kw = dict(mask=mask, seeds=[0, 1], progress=False, eval_every=3, snapshot_steps=[4])
    vm = fit(model, variables, train, test, cfg, strategy="vmap", **kw)
    lp = fit(model, variables, train, test, cfg, strategy="loop", **kw)
    for a, b in zip(jax.tree.leaves(vm.state.params), jax.tree.leaves(lp.state.params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert [e["step"] for r in lp.history for e in r["evals"]] == [3, 6, 9, 12]
    assert lp.snapshots[4]["params"]["conv1"]["kernel"].shape[0] == 2
    stacked_state = jax.tree.map(jnp.asarray, vm.state)
    assert stacked_groups(model, cfg, train, stacked_state) == [(0, 1), (1, 2)]  # conv: loop
    assert stacked_groups(model, cfg, train, stacked_state, "vmap") is None
    with pytest.raises(_Crash):
        fit(model, variables, train, test, cfg, strategy="loop", workdir=str(tmp_path),
            callbacks=[_crash_after(1)], **kw)
    resumed = fit(model, variables, train, test, cfg, strategy="loop", workdir=str(tmp_path),
                  **kw)
    jax.tree.map(np.testing.assert_array_equal, resumed.state.params, lp.state.params)


def test_stacked_mlps_train_in_vmapped_groups_with_the_results_of_one_program():
    """strategy='auto' groups more than GROUP_SIZE stacked MLPs on CPU (one vmapped program
    per group); the networks are those of a single vmapped program."""
    from jaxprune.train import loop

    model = TinyMLP()
    train, test = _data(seed=0), _data(n=40, seed=1)
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer="adam", learning_rate=1e-2)
    n = loop.GROUP_SIZE + 3
    keys = jax.random.split(jax.random.key(7), n)
    variables = jax.vmap(lambda k: model.init(k, train.images[:1]))(keys)
    seeds = list(range(n))
    one = fit(model, variables, train, test, cfg, seeds=seeds, strategy="vmap", progress=False)
    grouped = fit(model, variables, train, test, cfg, seeds=seeds, progress=False)
    for a, b in zip(jax.tree.leaves(one.state.params), jax.tree.leaves(grouped.state.params),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert len(grouped.results["test_accuracy"]) == n
    assert loop.stacked_groups(model, cfg, train, one.state) == [(0, 8), (8, 11)]


def test_diverged_epochs_is_the_first_epoch_with_a_nonfinite_training_loss():
    from jaxprune.train import diverged_epochs

    nan, inf = float("nan"), float("inf")
    history = [{"epoch": 1, "train_loss": [0.5, 0.4, 0.3]},
               {"epoch": 2, "train_loss": [nan, 0.3, 0.2]},
               {"epoch": 3, "train_loss": [nan, inf, 0.1]}]
    assert diverged_epochs(history, 3) == [2, 3, None]
    assert diverged_epochs([{"epoch": 1, "train_loss": 0.2}]) is None
    assert diverged_epochs([{"epoch": 1, "train_loss": 0.2}, {"epoch": 2, "train_loss": -inf}]) == 2
