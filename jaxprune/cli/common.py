"""What the commands share besides flags: data splits, models, workdir claims, output lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def build_model(config):
    """``config.model`` (a zoo name or pkg.module:attr) for ``config.dataset``'s classes."""
    from jaxprune import data, models

    return models.get(config.model, num_classes=data.info(config.dataset).num_classes,
                      **config.model_options)


def seed_list(first: int, n: int, what: str = "random inits") -> list[int]:
    if n < 1:
        raise ValueError(f"--seeds is the number of {what}, at least 1; got {n}")
    return list(range(first, first + n))


def load_splits(dataset: str, data_dir: str | None):
    from jaxprune import data
    from jaxprune.train import Split

    return (Split(*data.load(dataset, "train", data_dir)),
            Split(*data.load(dataset, "test", data_dir)))


def subset(split, size: int | None):
    """``size`` examples of ``split`` drawn at random with ``key(0)`` (in their original order),
    or the whole split; the choice is fixed, and the run's data fingerprint records it."""
    import jax
    import numpy as np

    if size is None:
        return split
    n = len(split.labels)
    if not 0 < size <= n:
        raise ValueError(f"a subset of {size} examples needs 0 < size <= {n} (the split)")
    idx = np.sort(np.asarray(jax.random.permutation(jax.random.key(0), n))[:size])
    return type(split)(split.images[idx], split.labels[idx])


def claim(workdir: Path, identity: dict[str, Any]) -> None:
    """Create ``workdir`` and write its ``config.json``, or refuse a different configuration:
    nothing in a workdir is overwritten by another run's results."""
    from jaxprune.train import check_or_write_config

    workdir.mkdir(parents=True, exist_ok=True)
    check_or_write_config(workdir / "config.json", identity)


def data_fingerprint(train, test) -> str:
    from jaxprune.train import fingerprint

    return fingerprint((train.images, train.labels, test.images, test.labels))


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def mean_std(row: dict[str, Any] | None, key: str, scale: float, digits: int = 2) -> str:
    """``"mean +/- std"`` of ``row[key]`` (just the mean for one seed, "" without a value)."""
    if row is None or key not in row:
        return ""
    mean, std = scale * row[key], scale * row[f"{key} std"]
    return f"{mean:.{digits}f}" + ("" if std != std else f" +/- {std:.{digits}f}")


def diverged_cell(epoch: int | None) -> str:
    return "no" if epoch is None else f"epoch {epoch}"


def diverged_line(epochs: Sequence[int | None], what: str) -> str:
    """The last line of a command that trained: how many runs' loss became NaN/inf."""
    n = sum(e is not None for e in epochs)
    if not n:
        return f"diverged: none of {len(epochs)} {what} (every training loss stayed finite)"
    return (f"diverged: {n} of {len(epochs)} {what} (training loss became NaN or infinite; "
            "their accuracies are not trained networks'): lower the learning rate")


def restore_matching(workdir: str, like, config):
    """The variables of ``workdir``'s run, refused unless they fit the model being pruned."""
    import json

    import jax

    from jaxprune import masks
    from jaxprune.train import restore_variables

    cfg_path = Path(workdir) / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        for field in ("model", "model_options"):
            if field in old and old[field] != getattr(config, field):
                raise ValueError(
                    f"--from-workdir {workdir} holds a {old.get('model')!r} run with "
                    f"{field}={old[field]!r}, not {getattr(config, field)!r}: pass the same "
                    "--model (and width options) as that run")
    restored = restore_variables(workdir)
    want = {masks.path_str(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(like)}
    got = {masks.path_str(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(restored)}
    if want != got:
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:3]
        raise ValueError(
            f"--from-workdir {workdir} holds variables of another model than {config.model!r} "
            f"(e.g. {', '.join(f'{k}: {got.get(k)} vs {want.get(k)}' for k in diff)}); pass the "
            "--model and options that run was trained with")
    return restored

