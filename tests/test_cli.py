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
    """Kill `jaxprune train` with SIGKILL after its first checkpoint, rerun, compare bitwise."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(full), check=True, env=env, capture_output=True, timeout=300)

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
    for extra, sub in [([], "finetune"), (["--scratch"], "scratch")]:
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
