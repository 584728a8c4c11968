"""AutoS (Liu et al. 2024): learn a pruning-at-initialization scorer from iterative pruning.

  lottery workdir(s) --dataset_from_lottery--> (theta_0, g_0) features + survival labels
                     --split (whole runs or whole layers held out)--> train / held-out rows
                     --train_scorer--> Scorer --save_scorer--> DIR
  criteria.get("autos", scorer=DIR, loss_fn=...)  prunes any new network in one pass

Labels: how many IMP levels each weight survived (``lottery.read_survival``), min-max
normalized to [0, 1] by the number of levels (the reference code min-max normalizes its summed
masks). Features: :func:`jaxprune.criteria.learned.weight_features` of each seed's init, with
``g_0`` the mean loss gradient over the seed's class-balanced scoring batch
(:func:`jaxprune.studies.pai.score_batches`), the batch ``pai.prune`` scores a new network with.

What the reference code (ChengYaofeng/AutoSparse) does that this module does not:
  - it evaluates its scorer on the first 10% of its own training tensor (``test_len =
    params.shape[0] // 10`` over the same data the loader trains on): a leak. Here held-out rows
    are whole runs or whole layers, never seen in training (:func:`split`).
  - its ``pct`` schedule computes ``sparse ** 1/epochs``, which Python parses as
    ``(sparse ** 1) / epochs``: a per-round density of ``sparse / epochs``, not the intended
    ``epochs``-th root. The labels here come from ``studies.lottery``, whose per-level counts
    are ``ceil(rate * remaining)``.
  - its ``rewind`` flag is passed positionally into another parameter of ``prune_loop``, so
    rewinding is always on whatever the configuration says. ``studies.lottery`` always rewinds
    (to the init, or to step k), explicitly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from jaxprune import contract, masks, models
from jaxprune.criteria import learned as _autos
from jaxprune.studies import lottery, pai
from jaxprune.train import Split, save_tree, write_json_atomic, write_text_atomic

HOLDOUTS = ("run", "layer")


class Dataset(NamedTuple):
    """Rows of (theta_0, g_0) -> survival label, with where each row came from.

    ``features`` (N, 2) float32 (per-layer standardized already if asked), ``labels`` (N,)
    float32 in [0, 1], ``run`` (N,) int (one run = one seed of one lottery workdir), ``layer``
    (N,) int (the layer's position among its model's prunable layers), ``runs``: a name per run.
    """

    features: np.ndarray
    labels: np.ndarray
    run: np.ndarray
    layer: np.ndarray
    runs: list[str]


def dataset_from_lottery(
    workdirs: Sequence[str | Path],
    *,
    data_dir: str | None = None,
    standardize: str = "none",
    per_class: int = 10,
    model: Any = None,
) -> Dataset:
    """Features and survival labels of every seed of every lottery workdir, pooled.

    Args:
      workdirs: folders written by :func:`jaxprune.studies.lottery.run` (``config.json``,
        ``init/``, ``survival.npz``).
      data_dir: where the workdirs' dataset lives (for ``g_0``'s scoring batches).
      standardize: ``"none"`` or ``"layer"`` (:func:`jaxprune.criteria.learned.weight_features`).
      per_class: scoring examples per class for ``g_0``.
      model: the network the workdirs pruned (any model under :mod:`jaxprune.contract`); by
        default rebuilt from each workdir's ``config.json`` (a zoo name or ``pkg.module:attr``).
        A model passed to ``lottery.run`` as an object must be passed here too; it is checked
        against the description the workdir recorded.

    Raises:
      FileNotFoundError: a workdir without survival counts (no finished level) or init.
      ValueError: a workdir that is not a lottery run, or features that are not finite.
    """
    from jaxprune import data

    feats, labels, run, layer, names = [], [], [], [], []
    for wd in workdirs:
        wd = Path(wd)
        cfg_path = wd / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{wd} holds no config.json: is it a lottery workdir?")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("command") != "lottery":
            raise ValueError(f"{wd} is not a lottery workdir (its config.json is for "
                             f"{cfg.get('command')!r})")
        survival, levels = lottery.read_survival(wd)
        seeds = cfg["seeds"]
        info = data.info(cfg["dataset"])
        if model is None:
            net = models.get(cfg["model"], num_classes=info.num_classes, **cfg["model_options"])
        else:
            net = contract.as_model(model)
            if cfg.get("model_repr") not in (None, net.describe()):
                raise ValueError(f"{wd} was written for another model than {net.name} (its "
                                 "config.json records another model_repr); pass the model it "
                                 "pruned")
        init_dir = (wd / "init").absolute()
        if not init_dir.is_dir():
            raise FileNotFoundError(f"{wd} holds no init/ (the seeds' initial variables)")
        with ocp.StandardCheckpointer() as ckpt:
            init = ckpt.restore(init_dir)
        train = Split(*data.load(cfg["dataset"], "train", data_dir))
        batches = pai.score_batches(train, seeds, per_class, normalize=cfg["normalize"])
        keep_dense = tuple(tuple(p.split("/")) for p in cfg.get("keep_dense", []))

        @jax.jit  # one program for every seed of the workdir (eager code compiles one per op)
        def features(variables, batch, net=net, keep_dense=keep_dense, info=info):
            params, state = variables["params"], {k: v for k, v in variables.items()
                                                  if k != "params"}
            fns = pai.model_fns(net, state, info.input_shape)
            grads = _autos.initial_gradient(fns.loss_fn, params, batch)
            return _autos.weight_features(params, grads, standardize=standardize,
                                          keep_dense=keep_dense)

        for i, seed in enumerate(seeds):
            variables = jax.tree.map(lambda a, i=i: np.asarray(a[i]), init)
            params = variables["params"]
            f = np.asarray(features(variables, (batches[0][i], batches[1][i])))
            paths = [masks.path_str(p) for p in
                     masks.flatten_prunable(params, None, keep_dense).prunable_paths]
            missing = [p for p in paths if p not in survival]
            if missing:
                raise ValueError(f"{wd}/survival.npz has no labels for {missing}")
            lab = np.concatenate([survival[p][i].ravel() for p in paths]).astype(np.float32)
            sizes = [survival[p][i].size for p in paths]
            feats.append(f)
            labels.append(lab / max(levels, 1))
            run.append(np.full(len(lab), len(names)))
            layer.append(np.repeat(np.arange(len(paths)), sizes))
            names.append(f"{wd}#seed{seed}")
    out = Dataset(np.concatenate(feats), np.concatenate(labels), np.concatenate(run),
                  np.concatenate(layer), names)
    bad = ~np.isfinite(out.features)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"{len(rows)} feature rows are not finite (first in run "
                         f"{names[out.run[rows[0]]]!r}); check the inits and the data")
    return out


def split(dataset: Dataset, holdout: str = "run") -> tuple[np.ndarray, np.ndarray]:
    """Boolean (train, held-out) row masks: the last run held out whole (``"run"``), or the
    last prunable layer of every run (``"layer"``). No tensor is in both halves."""
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {list(HOLDOUTS)}, got {holdout!r}")
    if holdout == "run":
        if len(dataset.runs) < 2:
            raise ValueError("holding out a whole run needs at least two runs (seeds or "
                             "workdirs); use holdout='layer'")
        held = dataset.run == len(dataset.runs) - 1
    else:
        last = np.zeros_like(dataset.layer)
        for r in range(len(dataset.runs)):
            rows = dataset.run == r
            last[rows] = dataset.layer[rows].max()
        held = dataset.layer == last
        if held.all():
            raise ValueError("holding out a layer needs models with at least two prunable layers")
    return ~held, held


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties get their average rank)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def train_scorer(
    dataset: Dataset,
    train_rows: np.ndarray,
    held_rows: np.ndarray,
    *,
    widths: Sequence[int] = _autos.PAPER_WIDTHS,
    standardize: str = "none",
    epochs: int = 10,
    batch_size: int = 1024,
    learning_rate: float = 0.01,
    max_train: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[_autos.Scorer, list[dict[str, Any]]]:
    """Fit a :class:`jaxprune.criteria.learned.ScorerNet` to the labels by MSE with Adam.

    The features are standardized with the training rows' mean and std (saved with the
    scorer). After each epoch the held-out MSE and rank correlation are measured; the variables
    of the epoch with the lowest held-out MSE are returned (best checkpoint).

    Args:
      dataset, train_rows, held_rows: from :func:`dataset_from_lottery` and :func:`split`.
      widths: the hidden widths (the paper's: 16, 64, 1024, 1024, 64).
      standardize: how ``dataset``'s features were made (recorded in the scorer).
      epochs, batch_size, learning_rate: Adam on the MSE (the reference: 10, 1024, 0.01).
      max_train: train on at most this many rows (a fixed random subset), for speed.
      seed: init and batch order.
      progress: a progress bar (on a terminal) and a line per epoch.

    Returns:
      ``(scorer, curve)``: the best scorer and one dict per epoch (train and held-out MSE,
      held-out rank correlation).
    """
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and learning_rate > 0; got "
                         f"{epochs}, {batch_size}, {learning_rate}")
    rng = np.random.default_rng(seed)
    tr = np.flatnonzero(train_rows)
    if max_train is not None and len(tr) > max_train:
        tr = np.sort(rng.choice(tr, max_train, replace=False))
    if len(tr) < batch_size:
        raise ValueError(f"{len(tr)} training rows for batch_size {batch_size}")
    x, y = dataset.features[tr], dataset.labels[tr]
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    xn = jnp.asarray((x - mean) / std, jnp.float32)
    yj = jnp.asarray(y, jnp.float32)
    net = _autos.ScorerNet(tuple(widths))
    variables = net.init(jax.random.key(seed), xn[:2], train=False)
    tx = optax.adam(learning_rate)
    opt = tx.init(variables["params"])
    steps = len(tr) // batch_size

    @jax.jit
    def epoch_fn(variables, opt, order):
        def step(carry, idx):
            v, o = carry

            def loss_fn(p):
                pred, new = net.apply({"params": p, "batch_stats": v["batch_stats"]}, xn[idx],
                                      train=True, mutable=["batch_stats"])
                return jnp.mean((pred - yj[idx]) ** 2), new

            (loss, new), g = jax.value_and_grad(loss_fn, has_aux=True)(v["params"])
            upd, o = tx.update(g, o, v["params"])
            return ({"params": optax.apply_updates(v["params"], upd), **new}, o), loss

        (variables, opt), losses = jax.lax.scan(step, (variables, opt),
                                                order.reshape(steps, batch_size))
        return variables, opt, jnp.mean(losses)

    held = np.flatnonzero(held_rows)
    hx, hy = dataset.features[held], dataset.labels[held]
    make = lambda v: _autos.Scorer(v, tuple(widths), standardize, mean.astype(np.float32), std,
                                   {})
    predict = jax.jit(lambda v, f: _autos.predict(make(v), f))
    best, best_loss, curve = variables, math.inf, []
    for epoch in tqdm(range(epochs), desc="scorer", disable=None if progress else True,
                      leave=False):
        order = jnp.asarray(rng.permutation(len(tr))[: steps * batch_size])
        variables, opt, train_loss = epoch_fn(variables, opt, order)
        pred = np.asarray(predict(variables, jnp.asarray(hx)))
        held_loss = float(np.mean((pred - hy) ** 2))
        row = {"epoch": epoch + 1, "train_mse": float(train_loss), "heldout_mse": held_loss,
               "heldout_spearman": rank_correlation(pred, hy)}
        curve.append(row)
        if progress:
            tqdm.write(f"scorer epoch {epoch + 1}/{epochs}: train MSE {row['train_mse']:.5f}, "
                       f"held-out MSE {held_loss:.5f}, rank correlation "
                       f"{row['heldout_spearman']:.4f}")
        if held_loss < best_loss:
            best, best_loss = variables, held_loss
    best_row = min(curve, key=lambda r: r["heldout_mse"])
    info = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
            "train_rows": int(len(tr)), "heldout_rows": int(len(held)), "seed": seed,
            "best_epoch": best_row["epoch"], "heldout_mse": best_row["heldout_mse"],
            "heldout_spearman": best_row["heldout_spearman"]}
    if standardize == "none":  # the PaI scores the same features give, for comparison
        info["heldout_spearman_magnitude"] = rank_correlation(np.abs(hx[:, 0]), hy)
        info["heldout_spearman_snip"] = rank_correlation(np.abs(hx[:, 0] * hx[:, 1]), hy)
    return _autos.Scorer(jax.device_get(best), tuple(widths), standardize,
                         mean.astype(np.float32), std, info), curve


def save_scorer(scorer: _autos.Scorer, directory: str | Path,
                curve: Sequence[dict[str, Any]] = ()) -> None:
    """Write ``scorer`` to ``directory``: ``variables/`` (orbax), ``scorer.json`` (feature
    version, widths, standardization constants, how it was trained and did) and
    ``curves.jsonl`` (one line per epoch); :func:`jaxprune.criteria.learned.load_scorer` reads it.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_tree(d / "variables", scorer.variables)
    write_text_atomic(d / "curves.jsonl", "".join(json.dumps(r) + "\n" for r in curve))
    write_json_atomic(d / "scorer.json", {
        "feature_version": _autos.FEATURE_VERSION, "widths": list(scorer.widths),
        "standardize": scorer.standardize, "mean": np.asarray(scorer.mean).tolist(),
        "std": np.asarray(scorer.std).tolist(), **scorer.info})
