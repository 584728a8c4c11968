"""The ``jaxprune`` command: help, listings, errors, and a real kill-and-resume of ``train``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxprune import data
from jaxprune.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "models", "datasets", "demo"):
        assert cmd in out


def test_datasets_listing(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "mnist1d" in out and "cifar100" in out and "1,442" in out


def test_models_listing_with_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "266,610" in out  # LeNet-300-100
    assert "125,485,696" in out  # ResNet-56 MACs (Li et al.: 1.25e8)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "nope", "--dataset", "digits"], "unknown model 'nope'"),
        (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["train", "--model", "lenet_300_100", "--dataset", "digits", "--epochs", "-1"],
         "epochs must be >= 0"),
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--model", "lenet5", "--dataset", "mnist1d"],
         "lenet5 cannot take inputs of shape (40, 1) (it is built for inputs like (28, 28, 1))"),
    ],
)
def test_train_bad_input_is_a_clear_error(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_writes_a_workdir(tmp_path, capsys):
    wd = tmp_path / "run"
    argv = ["train", "--model", "lenet_300_100", "--dataset", "digits", "--epochs", "2",
            "--batch-size", "64", "--optimizer", "adam", "--lr", "0.003", "--workdir", str(wd),
            "--no-progress"]
    assert main(argv) == 0
    assert json.loads((wd / "config.json").read_text())["model"] == "lenet_300_100"
    rows = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    results = json.loads((wd / "results.json").read_text())
    assert results["test_accuracy"] > 0.8  # 2 epochs of an MLP on 8x8 digits
    from jaxprune.train import TrainConfig, train_and_evaluate

    lib = train_and_evaluate(TrainConfig(model="lenet_300_100", dataset="digits", epochs=2,
                                         batch_size=64, optimizer="adam", learning_rate=0.003),
                             progress=False).results  # the library call the command makes
    assert (lib["test_accuracy"], lib["test_loss"]) == (results["test_accuracy"],
                                                        results["test_loss"])


def _train_cmd(workdir: Path) -> list[str]:
    return [sys.executable, "-m", "jaxprune", "train", "--model", "cnn1d_mnist1d",
            "--dataset", "mnist1d", "--epochs", "6", "--batch-size", "50", "--optimizer", "adam",
            "--lr", "0.003", "--workdir", str(workdir), "--no-progress"]


def _final_params(workdir: Path):
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(workdir.absolute() / "checkpoints") as mngr:
        restored = mngr.restore(mngr.latest_step(), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), history=ocp.args.JsonRestore()))
    return restored["state"]["params"]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    """Kill `jaxprune train` with SIGKILL after its first checkpoint, rerun, compare bitwise
    with the same command run uninterrupted (in this process: the same program, one start less)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert main(_train_cmd(full)[3:]) == 0  # the argv after `python -m jaxprune`

    proc = subprocess.Popen(_train_cmd(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    metrics = killed / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed; raise --epochs"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()

    subprocess.run(_train_cmd(killed), check=True, env=env, capture_output=True, timeout=300)
    a, b = _final_params(full), _final_params(killed)
    for x, y in zip(jax_leaves(a), jax_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    ra = json.loads((full / "results.json").read_text())
    rb = json.loads((killed / "results.json").read_text())
    assert ra["test_accuracy"] == rb["test_accuracy"] and ra["test_loss"] == rb["test_loss"]
    strip = lambda p: [{k: v for k, v in json.loads(line).items()
                        if k not in ("epoch_seconds", "images_per_second")}
                       for line in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(full) == strip(killed)


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_flops_listing_and_masks(tmp_path, capsys):
    assert main(["flops", "--model", "resnet56"]) == 0
    assert "125,485,696 MACs" in capsys.readouterr().out  # Li et al.: 1.25e8
    import jax

    from jaxprune import flops, models

    m = models.get("resnet56")
    v = jax.eval_shape(m.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 32, 32, 3), float))
    assert flops.count_macs(m, v, (32, 32, 3)) == 125_485_696  # the library's own count
    wd = tmp_path / "p"
    assert main(["prune", "--model", "lenet_300_100", "--dataset", "digits", "--criterion",
                 "magnitude", "--sparsity", "0.9", "--workdir", str(wd), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["flops", "--model", "lenet_300_100", "--dataset", "digits", "--masks",
                 str(wd / "masks.npz")]) == 0
    out = capsys.readouterr().out
    dense = 64 * 300 + 300 * 100 + 100 * 10
    assert f"{dense:,} MACs per example" in out
    kept = round(0.1 * dense)  # global magnitude keeps exactly 10% of the kernel weights
    assert f"{kept:,} MACs ({100 * kept / dense:.2f}%)" in out


def test_structured_prune_from_a_trained_workdir(tmp_path, capsys):
    trained = tmp_path / "trained"
    common = ["--model", "lenet_300_100", "--dataset", "digits", "--batch-size", "64",
              "--optimizer", "adam", "--lr", "0.003", "--no-progress"]
    assert main(["train", *common, "--epochs", "1", "--workdir", str(trained)]) == 0
    for extra, sub in [([], "finetune"), (["--scratch"], "scratch-e")]:
        wd = tmp_path / f"pruned_{sub}"
        assert main(["prune", "--structured", *common, "--criterion", "l1", "--policy", "ratio",
                     "--ratio", "0.5", "--from-workdir", str(trained), "--epochs", "1",
                     "--workdir", str(wd), *extra]) == 0
        summary = json.loads((wd / "summary.json").read_text())
        assert summary["narrow_options"]["widths"] == [150, 50]
        assert summary["pruned"]["params"] == 64 * 150 + 150 + 150 * 50 + 50 + 50 * 10 + 10
        assert 0.0 <= summary["test_accuracy"] <= 1.0 and (wd / sub / "results.json").exists()
    assert main(["prune", "--structured", *common, "--criterion", "l1", "--workdir",
                 str(tmp_path / "x")]) == 2
    assert "--structured needs --policy" in capsys.readouterr().err


def test_structured_prune_is_the_study_run(tmp_path, capsys):
    """`prune --structured` and `studies.structured.run` give the same channels, networks and
    accuracies (before, the command had its own loop with other random streams)."""
    import jax

    from jaxprune import structured as st
    from jaxprune.studies import pai
    from jaxprune.studies import structured as study
    from jaxprune.train import Split, TrainConfig, init_model

    common = ["--model", "lenet_300_100", "--width-multiplier", "0.1", *DIGITS, "--optimizer",
              "adam", "--lr", "0.003", "--epochs", "1"]
    wd = tmp_path / "cli"
    assert main(["prune", "--structured", *common, "--criterion", "random", "--policy", "ratio",
                 "--ratio", "0.5", "--modes", "finetune", "scratch-e", "--per-class", "2",
                 "--workdir", str(wd)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("diverged: none of 2 modes")
    summary = json.loads((wd / "summary.json").read_text())

    config = TrainConfig(model="lenet_300_100", dataset="digits", batch_size=64, epochs=1,
                         optimizer="adam", learning_rate=0.003,
                         model_options={"width_multiplier": 0.1})
    train, test = (Split(*data.load("digits", s)) for s in ("train", "test"))
    s = st.channel_groups("lenet_300_100", num_classes=10, width_multiplier=0.1)
    v = init_model(s.model, jax.random.fold_in(jax.random.key(0), 0), train.images)
    xs, ys = pai.score_batches(train, [0], 2)
    res = study.run(s, v, train, test, criterion="random",
                    policy=study.get_policy("ratio", s, ratio=0.5), config=config,
                    finetune_config=config, key=jax.random.fold_in(jax.random.key(0), 7),
                    modes=("finetune", "scratch-e"), batch=(xs[0], ys[0]),
                    input_shape=train.images.shape[1:])
    assert summary["keep"] == {g: [int(i) for i in k] for g, k in res.selection.keep.items()}
    for mode in ("finetune", "scratch-e"):
        assert summary["modes"][mode]["test_accuracy"] == res.modes[mode]["test_accuracy"]
        assert summary["modes"][mode]["history"] == res.modes[mode]["history"]


def test_prune_refuses_the_flags_of_the_other_kind_and_old_structured_workdirs(tmp_path,
                                                                              capsys):
    base = ["prune", "--model", "lenet_300_100", *DIGITS, "--workdir", str(tmp_path / "w")]
    assert main([*base, "--structured", "--criterion", "l1", "--policy", "ratio", "--ratio",
                 "0.5", "--sparsity", "0.5", "--seeds", "2"]) == 2
    err = capsys.readouterr().err
    assert "--sparsity, --seeds do not apply to --structured" in err and err.count("\n") == 1
    assert main([*base, "--criterion", "magnitude", "--sparsity", "0.5", "--policy",
                 "ratio"]) == 2
    assert "--policy does not apply without --structured" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"command": "prune --structured"}))
    assert main(["prune", "--structured", "--model", "lenet_300_100", *DIGITS, "--criterion",
                 "l1", "--policy", "ratio", "--ratio", "0.5", "--workdir", str(old)]) == 2
    assert "written by an older `prune --structured`" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# A workdir belongs to one configuration; a refused command writes nothing.
# ---------------------------------------------------------------------------------------------

DIGITS = ["--dataset", "digits", "--batch-size", "64", "--no-progress"]


def _files(wd: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(wd.iterdir()) if p.is_file()}


def test_prune_refuses_another_configuration_and_keeps_the_finished_run(tmp_path, capsys):
    wd = tmp_path / "p"
    first = ["prune", "--model", "lenet_300_100", *DIGITS, "--criterion", "magnitude",
             "--compression", "10", "--epochs", "1", "--workdir", str(wd)]
    assert main(first) == 0
    before = _files(wd)
    assert set(before) == {"config.json", "masks.npz", "summary.json"}
    capsys.readouterr()
    second = [a if a != "magnitude" else "snip" for a in first]
    assert main(second) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "criterion: 'magnitude' -> 'snip'" in err
    assert err.count("\n") == 1  # one line
    assert _files(wd) == before  # the finished run's files are untouched
    assert main([*first[:-1], str(wd)]) == 0  # the same configuration reruns (resumes)
    assert json.loads((wd / "summary.json").read_text()) == json.loads(before["summary.json"])


def test_structured_prune_and_sweep_refuse_another_configuration(tmp_path, capsys):
    wd = tmp_path / "s"
    argv = ["prune", "--structured", "--model", "lenet_300_100", *DIGITS, "--criterion", "l1",
            "--policy", "ratio", "--ratio", "0.5", "--workdir", str(wd)]
    assert main(argv) == 0
    before = _files(wd)
    capsys.readouterr()
    assert main([*argv[:-3], "0.25", *argv[-2:]]) == 2
    assert "ratio: 0.5 -> 0.25" in capsys.readouterr().err
    assert _files(wd) == before

    out = tmp_path / "sweep"
    argv = ["sweep", "--model", "lenet_300_100", *DIGITS, "--epochs", "1", "--seeds", "1",
            "--methods", "magnitude", "--log10-compressions", "1", "--out", str(out)]
    assert main(argv) == 0
    before = _files(out)
    capsys.readouterr()
    assert main([*argv[:-3], "0.5", *argv[-2:]]) == 2
    assert "log10_compressions: [1.0] -> [0.5]" in capsys.readouterr().err
    assert _files(out) == before


def test_train_resume_ignores_where_the_data_lives_but_not_what_it_is(
        tmp_path, monkeypatch, capsys):
    from test_data_readers import write_mnist_folder

    write_mnist_folder(tmp_path / "data" / "mnist", n_train=64, n_test=16)
    write_mnist_folder(tmp_path / "other" / "mnist", n_train=64, n_test=16, seed=1)
    monkeypatch.delenv("JAXPRUNE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    train = ["train", "--model", "lenet_300_100", "--dataset", "mnist", "--epochs", "1",
             "--batch-size", "32", "--workdir", str(tmp_path / "run"), "--no-progress"]
    assert main([*train, "--data-dir", str(tmp_path / "data")]) == 0
    assert main([*train, "--data-dir", str(tmp_path / "data") + "/"]) == 0  # trailing slash
    assert main([*train, "--data-dir", "data"]) == 0  # relative
    monkeypatch.setenv("JAXPRUNE_DATA_DIR", str(tmp_path / "data"))
    assert main(train) == 0  # through the environment variable
    capsys.readouterr()
    assert main([*train, "--data-dir", str(tmp_path / "other")]) == 2  # other data
    assert "data_fingerprint" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, no traceback, nothing written.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [["--sparsity", "1.0"], ["--compression", "1e12"]])
def test_targets_that_remove_every_weight_are_refused(tmp_path, capsys, target):
    wd = tmp_path / "p"
    assert main(["prune", "--model", "lenet_300_100", *DIGITS, "--criterion", "magnitude",
                 *target, "--workdir", str(wd)]) == 2
    err = capsys.readouterr().err
    assert "removes all 50,200 prunable weights" in err and "compression at most 50,200x" in err
    assert not wd.exists()


def test_flops_masks_of_another_model_or_seed_are_clear_errors(tmp_path, capsys):
    wd = tmp_path / "p"
    assert main(["prune", "--model", "lenet_300_100", *DIGITS, "--criterion", "magnitude",
                 "--sparsity", "0.9", "--seeds", "2", "--workdir", str(wd)]) == 0
    capsys.readouterr()
    masks_file = str(wd / "masks.npz")
    for argv, message in [
        (["--model", "mlp_6x100", "--input-shape", "64"], "was not written for mlp_6x100"),
        (["--model", "lenet_300_100"], "fc1/kernel has shape (64, 300) per seed but "
                                       "lenet_300_100 has (784, 300)"),
        (["--model", "lenet_300_100", "--dataset", "digits", "--seed-index", "2"],
         "--seed-index 2 is out of range: " + masks_file + " holds 2 seeds (indices 0..1)"),
        (["--model", "lenet_300_100", "--input-shape", "8,x"], "--input-shape takes positive"),
    ]:
        assert main(["flops", *argv, "--masks", masks_file]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["flops", "--model", "lenet_300_100", "--dataset", "digits", "--masks",
                 masks_file, "--seed-index", "1"]) == 0


def test_structured_prune_from_a_workdir_of_another_model(tmp_path, capsys):
    trained = tmp_path / "trained"
    assert main(["train", "--model", "mlp_6x100", *DIGITS, "--epochs", "1",
                 "--workdir", str(trained)]) == 0
    wider = tmp_path / "wider"
    assert main(["train", "--model", "lenet_300_100", *DIGITS, "--epochs", "1",
                 "--width-multiplier", "0.5", "--workdir", str(wider)]) == 0
    capsys.readouterr()
    base = ["prune", "--structured", "--model", "lenet_300_100", *DIGITS, "--criterion", "l1",
            "--policy", "ratio", "--ratio", "0.5"]
    for source, message in [(trained, "holds a 'mlp_6x100' run"),
                            (wider, "model_options={'width_multiplier': 0.5}")]:
        wd = tmp_path / f"from_{source.name}"
        assert main([*base, "--from-workdir", str(source), "--workdir", str(wd)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not wd.exists()


def test_models_input_shape(capsys):
    assert main(["models", "--input-shape", "3,x"]) == 2
    assert "--input-shape takes positive integers" in capsys.readouterr().err
    assert main(["models", "--input-shape", "3,3"]) == 0  # MLPs flatten any shape
    out = capsys.readouterr().out
    assert "lenet_300_100" in out and "not listed (cannot take inputs of shape (3, 3)):" in out
    assert "resnet20" in out.split("not listed")[1]


def test_missing_dataset_is_one_line_naming_the_cli_way(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.delenv("JAXPRUNE_DATA_DIR", raising=False)
    assert main(["train", "--model", "lenet_300_100", "--dataset", "mnist", "--epochs", "1",
                 "--data-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "download=True" not in err and "absl" not in err
    assert "put its official files (train-images-idx3-ubyte.gz" in err
    assert str(tmp_path / "none" / "mnist") in err
    assert main(["train", "--model", "lenet_300_100", "--dataset", "mnist", "--epochs", "1"]) == 2
    assert "pass --data-dir DIR or set $JAXPRUNE_DATA_DIR=DIR" in capsys.readouterr().err


def test_keyboard_interrupt_is_one_line(monkeypatch, capsys):
    import jaxprune.cli.train as train_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "run", interrupted)
    assert main(["train", "--workdir", "w"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == ("jaxprune train: interrupted; rerun the same command to resume from "
                           "the last checkpoint")


@pytest.mark.slow
def test_ctrl_c_then_resume_says_so(tmp_path):
    """A real SIGINT during `jaxprune train`: one line, exit 130; the rerun says it resumes."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    wd = tmp_path / "run"
    # A terminal's Ctrl-C: SIGINT must not be ignored in the child even if this process ignores
    # it (a child inherits an ignored SIGINT, and Python then leaves it ignored).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(_train_cmd(wd), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, before)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (wd / "metrics.jsonl").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("rerun the same command to resume from the "
                                                 "last checkpoint")
    # The epoch of the last checkpoint (the metrics file is written with it, never apart).
    epoch = json.loads((wd / "metrics.jsonl").read_text().splitlines()[-1])["epoch"]
    done = subprocess.run(_train_cmd(wd), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming from epoch {epoch} of 6" in done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# Output a person reads.
# ---------------------------------------------------------------------------------------------


def test_output_words_and_numbers(tmp_path, capsys):
    assert main(["train", "--model", "lenet_300_100", *DIGITS, "--epochs", "1"]) == 0
    out = capsys.readouterr()
    assert "for 1 epoch\n" in out.out and "1 epochs" not in out.out
    assert "\r" not in out.err  # no progress bar when stderr is not a terminal
    wd = tmp_path / "p"
    assert main(["prune", "--model", "lenet_300_100", *DIGITS, "--criterion", "magnitude",
                 "--compression", "10", "--seeds", "2", "--epochs", "1",
                 "--workdir", str(wd)]) == 0
    out = capsys.readouterr().out
    assert "layer densities of seed 0 (1 of 2 seeds" in out
    assert "e+0" not in out  # MACs as integers, never 1.778e+04 beside 8153
    assert "MACs: 5,020 of 50,200 remain (10.00%)" in out
    assert "at chance" in out
    summary = json.loads((wd / "summary.json").read_text())
    assert {"at_chance", "test_accuracy"} <= set(summary["per_seed"][0])
    assert (wd / "summary.json").stat().st_mode & 0o777 == 0o666 & ~_umask()
    argv = ["sweep", "--model", "lenet_300_100", *DIGITS, "--epochs", "1", "--seeds", "1",
            "--methods", "magnitude", "--log10-compressions", "1", "--out", str(tmp_path / "s")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "one seed (no spread)" in out and "+/-" not in out and "at chance" in out
    assert out.splitlines()[-1] == ("diverged: none of 2 networks (every training loss stayed "
                                    "finite)")


def test_a_diverged_run_is_said_to_be_diverged(tmp_path, capsys):
    """SGD at lr 1e6 takes the loss to inf/NaN in the first epoch: every table, summary and the
    last line say so (before, only "at chance: yes" hinted at it)."""
    wd = tmp_path / "p"
    assert main(["prune", "--model", "lenet_300_100", *DIGITS, "--criterion", "magnitude",
                 "--compression", "2", "--seeds", "2", "--epochs", "2", "--optimizer", "sgd",
                 "--lr", "1e6", "--workdir", str(wd)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("diverged: 2 of 2 seeds (training loss became NaN")
    assert "epoch 1" in out  # the table's diverged column
    summary = json.loads((wd / "summary.json").read_text())
    assert [r["diverged_epoch"] for r in summary["per_seed"]] == [1, 1]
    results = json.loads((wd / "train" / "results.json").read_text())
    assert results["diverged_epoch"] == [1, 1]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_structured_modes_and_refusals_write_nothing(tmp_path, capsys):
    trained = tmp_path / "trained"
    common = ["--model", "lenet_300_100", *DIGITS, "--optimizer", "adam", "--lr", "0.003"]
    assert main(["train", *common, "--epochs", "1", "--workdir", str(trained)]) == 0
    base = ["prune", "--structured", *common, "--criterion", "l1", "--from-workdir",
            str(trained)]
    for extra, message in [
        (["--policy", "li-vgg16-a"], "is Li et al.'s setting for vgg16, not 'lenet_300_100'"),
        (["--policy", "ratio", "--ratio", "0.999"], "'fc1' would keep 0 channel(s)"),
        (["--policy", "ratio"], "--policy ratio needs --ratio"),
        (["--policy", "li-vgg16-a", "--ratio", "0.5"], "drop --ratio"),
        (["--policy", "nope"], "unknown structured policy 'nope'"),
        (["--policy", "ratio", "--ratio", "0.5", "--modes", "finetune", "--scratch"],
         "give --modes or --scratch"),
    ]:
        wd = tmp_path / "refused"
        assert main([*base, *extra, "--epochs", "1", "--workdir", str(wd)]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not wd.exists()
    wd = tmp_path / "modes"
    assert main([*base, "--policy", "ratio", "--ratio", "0.5", "--epochs", "2",
                 "--finetune-epochs", "1", "--finetune-lr", "0.001",
                 "--modes", "finetune", "scratch-e", "scratch-b", "--workdir", str(wd)]) == 0
    summary = json.loads((wd / "summary.json").read_text())
    # 64*300+300*100+100*10 = 50,200 MACs -> 64*150+150*50+50*10 = 17,600: int(2 * 2.85) = 5
    assert {m: r["epochs"] for m, r in summary["modes"].items()} == {
        "finetune": 1, "scratch-e": 2, "scratch-b": 5}
    # each mode trains in its own folder, named as studies.structured.run names them
    assert all((wd / sub / "results.json").exists() for sub in ("finetune", "scratch-e",
                                                                  "scratch-b"))
    assert "scratch-b" in capsys.readouterr().out


def test_scratch_search_train_diversity_and_refusals(tmp_path, capsys):
    """`jaxprune scratch`: bad settings refused in one line before anything is written; then
    search (random and pretrained), train and diversity on a small MLP."""
    base = ["scratch", "search", "--model", "lenet_300_100", "--dataset", "digits",
            "--batch-size", "64", "--val-size", "300", "--no-progress", "--gate-epochs", "1"]
    for extra, message in [
        (["--reduction", "0.999"], "no structure reduces macs by 99.90%"),
        (["--target", "1.0"], "the gate target r must lie in (0, 1)"),
        (["--target", "0"], "the gate target r must lie in (0, 1)"),
        (["--expansion", "0.5"], "expansion must be >= 1"),
        (["--reduction", "0"], "target reduction must lie in (0, 1)"),
        (["--batch-size", "5000"], "--batch-size 5000 exceeds the"),
    ]:
        wd = tmp_path / "refused"
        assert main([*base, *extra, "--workdir", str(wd)]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not wd.exists()
    common = [*base, "--expansion", "1.5", "--reduction", "0.5", "--tolerance", "0.01"]
    assert main([*common, "--seeds", "2", "--workdir", str(tmp_path / "r")]) == 0
    assert main([*common, "--seeds", "2", "--pretrain-epochs", "1",
                 "--workdir", str(tmp_path / "t")]) == 0
    search = json.loads((tmp_path / "r" / "search.json").read_text())
    assert search["groups"] == ["fc1", "fc2"] and search["full_widths"] == [450, 150]
    for r in search["found"]:
        assert abs(r["reduction"] - 0.5) <= 0.005 and sum(map(len, r["keep"].values())) == \
            sum(r["widths"])
    # a different configuration in the same workdir is refused
    assert main([*common, "--seeds", "3", "--workdir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "holds a run with a different configuration (seeds:" in err and err.count("\n") == 1
    assert main(["scratch", "train", "--from", str(tmp_path / "r"), "--epochs", "1",
                 "--standard", "--seed-index", "0", "--workdir", str(tmp_path / "tr"),
                 "--no-progress"]) == 0
    res = json.loads((tmp_path / "tr" / "results.json").read_text())
    assert [(r["network"], r["epochs"]) for r in res["runs"]] == [("pruned", 2), ("standard", 1)]
    from jaxprune.studies import scratch
    from jaxprune.train import Split

    structure, _ = scratch.expanded_structure("lenet_300_100", {"num_classes": 10}, 1.5)
    train, test = (Split(*data.load("digits", s)) for s in ("train", "test"))
    first = search["found"][0]
    lib = scratch.train_from_scratch(
        structure, {g: np.asarray(k) for g, k in first["keep"].items()}, first["seed"], train,
        test, scratch.train_config(1, 0.5, model="lenet_300_100", dataset="digits",
                                   augment=True, learning_rate=0.1))
    assert lib["test_accuracy"] == res["runs"][0]["test_accuracy"]
    out = tmp_path / "div"
    assert main(["scratch", "diversity", "--from", str(tmp_path / "r"), str(tmp_path / "t"),
                 "--labels", "random", "trained", "--permutations", "50",
                 "--out", str(out)]) == 0
    assert "random more diverse than trained?" in capsys.readouterr().out
    widths = np.array([r["widths"] for r in search["found"]], np.float64)
    lib_div = scratch.diversity(widths, search["full_widths"])
    saved = json.loads((out / "diversity.json").read_text())
    assert saved["groups"][0]["L1 mean"] == lib_div["l1_mean"]
    assert {"diversity.csv", "widths.csv", "diversity.png", "diversity.json"} <= {
        p.name for p in out.iterdir()}
    before = (out / "diversity.json").read_bytes()
    assert main(["scratch", "diversity", "--from", str(tmp_path / "r"), str(tmp_path / "t"),
                 "--labels", "random", "trained", "--permutations", "60",
                 "--out", str(out)]) == 2  # another configuration: refused, nothing rewritten
    err = capsys.readouterr().err
    assert "holds a run with a different configuration" in err and err.count("\n") == 1
    assert (out / "diversity.json").read_bytes() == before
