"""Pruning from Scratch (Wang et al. 2020): channel gates learned on frozen random networks.

The procedure, as the official code (``frankwang345/pruning-from-scratch``) runs it on CIFAR:

1. **Expand** the network: every width times ``e`` (``-e``: VGG-16's first width 64 -> 80).
2. **Gate** it: a scalar in [0, 1] (init 1) multiplies each gated channel after its batch norm
   (VGG: every conv; CIFAR ResNets: the middle channel of each basic block, i.e. the default
   :func:`~jaxprune.structured.channel_groups`). The random weights stay **frozen**; only the
   gates train, with ``CE + lambda * (mean|g| - r)^2`` (the mean over all gates together),
   Adam(0.01), ``lambda = 0.5``, ``r = 0.2``, 10 epochs, batch 128, CIFAR augmentation, every
   gate clamped to [0, 1] after each step, batch-norm statistics updating (``model.train()``).
   :func:`learn_gates`, one network or many stacked ones in one program.
3. **Select** the epoch: the best validation accuracy among epochs whose fraction of nonzero
   gates is ``<= r``; the last epoch when none is (the code's ``best_acc == 0`` branch).
4. **Search** the architecture: rank all gates globally and find the structure whose MAC
   reduction against the *standard-width* model is the target ``p`` within 0.1% (relative):
   :func:`search` (:func:`~jaxprune.structured.prune_to_reduction`). The narrow network keeps
   the expanded widths of what was not gated (the ResNets' residual stream).
5. **Train** it from a new random init with Scratch-B's budget, ``int(epochs / (1 - p))``
   epochs (:func:`budget_epochs`), SGD 0.1, momentum 0.9, weight decay 1e-4, steps at 50% and
   75% of training.

The study the paper makes of it: structures found from *different random inits* are more
diverse than those found from *trained* weights, at similar accuracy. :func:`width_vectors`
and :func:`diversity` measure that: pairwise normalized L1 distance and cosine similarity of
the kept-width vectors, and the per-layer spread.

  structure = structured.channel_groups("vgg16", classifier_widths=(), width_multiplier=1.25)
  result = learn_gates(structure, variables, train, val, GateConfig())
  found = search(structure, result.gates, 0.5, reference_macs=standard_macs("vgg16", ...))
  narrow = structured.fresh_init(structure, found.keep, key=key)          # step 5

Reference: Wang et al., "Pruning from Scratch", AAAI 2020, https://arxiv.org/abs/1909.12579
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprune import seeds as _seeds
from jaxprune import structured as st
from jaxprune._cache import cached_factory
from jaxprune.data import batching, preprocess
from jaxprune.train import Split, cross_entropy, split_variables

PyTree = Any
Gates = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """How gates are learned (defaults: the official CIFAR script ``learn_gates.py``).

    Attributes:
      epochs: gate-learning epochs (10).
      batch_size: training batch (128).
      learning_rate: Adam's (0.01).
      penalty: ``lambda`` of the sparsity term (0.5).
      target: ``r`` (``-s``, 0.2): the mean |gate| the term pulls toward, and the largest
        fraction of nonzero gates an epoch may have to be selected.
      augment: random crop (pad 4) and horizontal flip of image batches.
      normalize: standardize inputs with the training split's per-channel statistics.
      seed: data order and augmentation (shared by all networks of a stacked run).
    """

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 0.01
    penalty: float = 0.5
    target: float = 0.2
    augment: bool = True
    normalize: bool = True
    seed: int = 0

    def validate(self) -> GateConfig:
        """Raise ``ValueError`` (one line, saying what to change) on a bad field."""
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"the gate target r must lie in (0, 1), got {self.target}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}")
        if not (self.learning_rate > 0 and self.penalty >= 0):
            raise ValueError(f"need learning_rate > 0 and penalty >= 0, got "
                             f"{self.learning_rate}, {self.penalty}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class GateResult(NamedTuple):
    """What :func:`learn_gates` returns (stacked runs: a leading network axis / lists).

    Attributes:
      gates: the selected epoch's gates ``{group: (width,)}``.
      variables: the network after gate learning: the frozen ``params`` (the very arrays
        given) and the batch-norm statistics of the last epoch.
      history: one row per epoch: ``train_ce``, ``penalty``, ``train_accuracy``,
        ``val_accuracy``, ``val_ce``, ``density`` (fraction of nonzero gates), ``mean_gate``.
      selected_epoch: 1-based epoch whose gates were kept.
      met_target: whether that epoch's density was ``<= r`` (``False``: no epoch reached it
        and the last epoch was kept, as the official code does).
      strategy: ``"vmap"`` or ``"loop"`` (how stacked networks ran; ``"single"`` otherwise).
    """

    gates: Gates
    variables: PyTree
    history: list[dict[str, Any]]
    selected_epoch: int | list[int]
    met_target: bool | list[bool]
    strategy: str


# ---------------------------------------------------------------------------------------------
# The pure pieces.
# ---------------------------------------------------------------------------------------------


def _flat(gates: Mapping[str, jax.Array]) -> jax.Array:
    return jnp.concatenate([jnp.ravel(gates[k]) for k in sorted(gates)])


def gate_penalty(gates: Mapping[str, jax.Array], *, penalty: float, target: float) -> jax.Array:
    """``penalty * (mean |g| - target)^2``, the mean over every gate of every group at once."""
    return penalty * (jnp.mean(jnp.abs(_flat(gates))) - target) ** 2


def gate_density(gates: Mapping[str, jax.Array]) -> jax.Array:
    """Fraction of gates that are not exactly zero (the official code's "sparsity")."""
    return jnp.mean((_flat(gates) != 0).astype(jnp.float32))


def clamp(gates: PyTree) -> PyTree:
    """Every gate clipped to [0, 1] (after each step, as ``p.data.clamp_(0, 1)``)."""
    return jax.tree.map(lambda g: jnp.clip(g, 0.0, 1.0), gates)


def _apply(structure, params, model_state, gates, x, train):
    variables = {"params": params, **model_state}
    if train and model_state:
        logits, new = st.apply_with_gates(structure, variables, gates, x, train=True,
                                          mutable=list(model_state))
        return logits, dict(new)
    return st.apply_with_gates(structure, variables, gates, x, train=train), model_state


class GatePrograms(NamedTuple):
    """One network's gate-learning step and evaluation, as :func:`learn_gates` runs them (not
    jitted; :func:`gate_programs`).

    ``carry`` is ``(gates, tx's optimizer state of the gates, model_state)``; ``sums`` are running
    float32 sums ``{"ce", "penalty", "count", "correct"}`` (start from zeros), the evaluation's
    ``{"ce", "count", "correct"}``; ``key_data`` is ``jax.random.key_data`` of the step's key.
    """

    tx: optax.GradientTransformation
    step: Any  # (params, carry, sums, images, labels, idx, key_data) -> (carry, sums)
    eval: Any  # (params, model_state, gates, images, labels, valid) -> sums


def gate_programs(structure: st.Structure, config: GateConfig, train: Split) -> GatePrograms:
    """The gate-learning step (Adam on cross-entropy plus the gate penalty, then
    :func:`clamp`, on the examples ``idx`` of ``images``) and evaluation that
    ``learn_gates(structure, variables, train, val, config)`` runs for one network; built once
    per setup (cached)."""
    return _programs(structure, config, _stats(config, train), train.images.ndim)


@cached_factory
def _programs(structure: st.Structure, config: GateConfig, stats: tuple | None,
              image_ndim: int) -> GatePrograms:
    """The gate-learning step and evaluation of one setup (built once per setup)."""
    tx = optax.adam(config.learning_rate)
    if stats is not None:
        mean, std = (jnp.asarray(v, jnp.float32) for v in stats)
        norm = lambda x: preprocess.normalize(x, mean, std)
    else:
        norm = lambda x: x
    if config.augment and image_ndim == 4:
        pre = lambda key, x: norm(preprocess.random_crop_flip(key, x))
    else:
        pre = lambda key, x: norm(x)

    def step(params, carry, images, labels, key):
        gates, opt_state, model_state = carry
        x = pre(key, images)

        def loss_fn(g):
            logits, new_state = _apply(structure, params, model_state, g, x, True)
            ce = cross_entropy(logits, labels).mean()
            reg = gate_penalty(g, penalty=config.penalty, target=config.target)
            return ce + reg, (ce, reg, logits, new_state)

        grads, (ce, reg, logits, new_state) = jax.grad(loss_fn, has_aux=True)(gates)
        updates, opt_state = tx.update(grads, opt_state, gates)
        gates = clamp(optax.apply_updates(gates, updates))
        n = jnp.asarray(labels.shape[0], jnp.float32)
        sums = {"ce": ce * n, "penalty": reg * n, "count": n,
                "correct": (logits.argmax(-1) == labels).sum().astype(jnp.float32)}
        return (gates, opt_state, new_state), sums

    def step_on_indices(params, carry, sums, images, labels, idx, key_data):
        carry, m = step(params, carry, images[idx], labels[idx],
                        jax.random.wrap_key_data(key_data))
        return carry, jax.tree.map(jnp.add, sums, m)

    def evaluate(params, model_state, gates, images, labels, valid):
        logits, _ = _apply(structure, params, model_state, gates, norm(images), False)
        w = valid.astype(jnp.float32)
        return {"ce": (cross_entropy(logits, labels) * w).sum(), "count": w.sum(),
                "correct": ((logits.argmax(-1) == labels) * w).sum()}

    return GatePrograms(tx, step_on_indices, evaluate)


@cached_factory
def _compiled(structure, config, stats, image_ndim, mode: str):
    """jit-ed step / eval / init for one network (``"single"``) or vmapped over networks.

    Steps are dispatched from Python, not scanned: XLA:CPU runs convolution gradients inside a
    while loop tens of times slower (see :mod:`jaxprune.seeds`)."""
    progs = _programs(structure, config, stats, image_ndim)
    step, evaluate = progs.step, progs.eval
    init = lambda gates: progs.tx.init(gates)
    if mode == "vmap":
        step = jax.vmap(step, in_axes=(0, 0, 0, None, None, None, None))
        evaluate = jax.vmap(evaluate, in_axes=(0, 0, 0, None, None, None))
        init = jax.vmap(init)
    return jax.jit(step, donate_argnums=(1, 2)), jax.jit(evaluate), jax.jit(init)


def _zero_sums(lead: tuple[int, ...]) -> dict[str, jax.Array]:
    return {k: jnp.zeros(lead, jnp.float32) for k in ("ce", "penalty", "count", "correct")}


def _plan(seed: int, epoch: int, n: int, batch_size: int):
    ekey = jax.random.fold_in(jax.random.key(seed), epoch)
    order = batching.epoch_batches(jax.random.fold_in(ekey, 0), n, batch_size)
    keys = jax.random.split(jax.random.fold_in(ekey, 1), order.shape[0])
    return order, jax.random.key_data(keys)


def _stats(config: GateConfig, train: Split) -> tuple | None:
    if not config.normalize:
        return None
    mean, std = preprocess.channel_stats(train.images)
    return tuple(np.asarray(mean).tolist()), tuple(np.asarray(std).tolist())


# ---------------------------------------------------------------------------------------------
# Gate learning.
# ---------------------------------------------------------------------------------------------


def learn_gates(
    structure: st.Structure,
    variables: PyTree,
    train: Split,
    val: Split,
    config: GateConfig = GateConfig(),
    *,
    groups: Sequence[str] | None = None,
    stacked: bool = False,
    strategy: str = "auto",
    progress: bool = True,
    eval_batch_size: int = 500,
) -> GateResult:
    """Learn channel gates on the frozen network ``variables`` (steps 2-3 of the module doc).

    Args:
      structure: the (expanded) model's channel groups.
      variables: its variables; only the batch-norm statistics change, in the program, and the
        caller's arrays are never touched. With ``stacked=True`` every leaf has a leading axis of
        N networks (e.g. from :func:`jaxprune.seeds.init_seeds`), trained together on the same
        batches (``config.seed``).
      train: training split (raw pixels; normalization and augmentation follow ``config``).
      val: the split an epoch is selected on.
      config: the recipe.
      groups: the gated groups (default: all of ``structure``: VGG's convs, or a ResNet's
        block-internal channels).
      stacked: ``variables`` hold N networks.
      strategy: stacked networks run as one vmapped program (``"vmap"``), one after another
        (``"loop"``, each network's own compiled step: what a per-seed loop does), or
        ``"auto"``: :func:`jaxprune.seeds.choose_strategy` on one step (a loop where vmap would
        turn per-network convolutions into grouped ones on CPU; measured in
        ``benchmarks/gate_seeds.py``).
      progress: print one line per epoch.
      eval_batch_size: evaluation batch.

    Returns:
      :class:`GateResult`; stacked: gates with a leading N axis, every history value and the
      selection a list of N.

    Raises:
      ValueError: a bad config, a batch larger than the split, an unknown strategy.
    """
    config.validate()
    if strategy not in ("auto", "vmap", "loop"):
        raise ValueError(f"unknown strategy {strategy!r}; valid: ['auto', 'vmap', 'loop']")
    n_train = len(train.labels)
    if config.batch_size > n_train:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training split "
                         f"({n_train} examples); lower it")
    names = structure.group_names if groups is None else list(groups)
    params, model_state = split_variables(variables)
    model_state = jax.tree.map(jnp.copy, model_state)  # the steps donate it: not the caller's
    lead = (jax.tree.leaves(params)[0].shape[0],) if stacked else ()
    gates = {n: jnp.ones((*lead, structure.group(n).width), jnp.float32) for n in names}
    setup = (structure, config, _stats(config, train), train.images.ndim)
    x, y = jnp.asarray(train.images), jnp.asarray(train.labels)
    xv, yv = jnp.asarray(val.images), jnp.asarray(val.labels)
    if stacked and strategy == "auto":
        step_one = _programs(*setup).step
        order, keys = _plan(config.seed, 0, n_train, config.batch_size)
        carry = (gates, jax.eval_shape(jax.vmap(_programs(*setup).tx.init), gates), model_state)
        picked = _seeds.choose_strategy(step_one, (params, carry, _zero_sums(lead), x, y,
                                                   order[0], keys[0]),
                                        in_axes=(0, 0, 0, None, None, None, None))
        strategy = "loop" if picked in ("loop", "map") else "vmap"
    mode = strategy if stacked else "single"
    step_fn, eval_fn, init_fn = _compiled(*setup, "vmap" if mode == "vmap" else "single")
    if mode == "loop":  # one network's state per entry
        pick = lambda t, i: jax.tree.map(lambda a: a[i], t)
        nets = [(pick(params, i), (pick(gates, i), init_fn(pick(gates, i)),
                                   pick(model_state, i))) for i in range(lead[0])]
    else:
        nets = [(params, (gates, init_fn(gates), model_state))]

    def evaluate(p, ms, g):
        tot = None
        for idx, valid in batching.eval_batches(len(yv), eval_batch_size):
            m = eval_fn(p, ms, g, xv[idx], yv[idx], valid)
            tot = m if tot is None else jax.tree.map(jnp.add, tot, m)
        return tot

    history: list[dict[str, Any]] = []
    n_nets = lead[0] if lead else 1
    best_acc = [-1.0] * n_nets
    chosen: list[Any] = [None] * n_nets
    selected = [config.epochs] * n_nets
    met = [False] * n_nets
    for epoch in range(config.epochs):
        order, keys = _plan(config.seed, epoch, n_train, config.batch_size)
        sums, evals, now = [], [], []
        order, keys = np.asarray(order), np.asarray(keys)
        for i, (p, carry) in enumerate(nets):
            s = _zero_sums(lead if mode == "vmap" else ())
            for idx, k in zip(order, keys, strict=True):
                carry, s = step_fn(p, carry, s, x, y, idx, k)
            nets[i] = (p, carry)
            sums.append(s)
            evals.append(evaluate(p, carry[2], carry[0]))
            now.append(carry[0])
        cat = (lambda parts: jax.tree.map(lambda *a: np.stack(a), *parts)) if mode == "loop" \
            else (lambda parts: jax.tree.map(np.asarray, parts[0]))
        s, ev, g_now = cat(sums), cat(evals), cat(now)
        density = np.asarray(jax.vmap(gate_density)(g_now) if lead else gate_density(g_now))
        mean_gate = np.asarray(jax.vmap(lambda g: jnp.mean(_flat(g)))(g_now) if lead
                               else jnp.mean(_flat(g_now)))
        row = {"epoch": epoch + 1,
               "train_ce": s["ce"] / s["count"], "penalty": s["penalty"] / s["count"],
               "train_accuracy": s["correct"] / s["count"],
               "val_ce": ev["ce"] / ev["count"], "val_accuracy": ev["correct"] / ev["count"],
               "density": density, "mean_gate": mean_gate}
        row = {k: (v if k == "epoch" else (np.asarray(v).tolist() if lead
                                            else float(v))) for k, v in row.items()}
        history.append(row)
        accs = np.atleast_1d(row["val_accuracy"])
        dens = np.atleast_1d(row["density"])
        for j in range(n_nets):
            if dens[j] <= config.target and accs[j] > best_acc[j]:
                best_acc[j], selected[j], met[j] = float(accs[j]), epoch + 1, True
                chosen[j] = jax.tree.map(lambda a, j=j: a[j] if lead else a, g_now)
        if progress:
            mean = lambda k, row=row: float(np.mean(row[k]))
            print(f"gates epoch {epoch + 1:>2}/{config.epochs}  train ce {mean('train_ce'):.4f}  "
                  f"val acc {mean('val_accuracy'):.4f}  nonzero gates {mean('density'):.3f}  "
                  f"mean gate {mean('mean_gate'):.3f}"
                  + (f" (mean of {lead[0]} networks)" if lead else ""), flush=True)
    last = jax.tree.map(np.asarray, g_now)
    for j in range(n_nets):
        if chosen[j] is None:
            chosen[j] = jax.tree.map(lambda a, j=j: a[j] if lead else a, last)
    states = [c[2] for _, c in nets]
    model_state = jax.tree.map(lambda *a: jnp.stack(a), *states) if mode == "loop" \
        else states[0]
    final = {"params": params, **model_state}
    if lead:
        out = jax.tree.map(lambda *a: np.stack(a), *chosen)
        return GateResult(out, final, history, selected, met, mode)
    return GateResult(chosen[0], final, history, selected[0], met[0], "single")


# ---------------------------------------------------------------------------------------------
# From gates to an architecture.
# ---------------------------------------------------------------------------------------------


def fold_gates(structure: st.Structure, variables: PyTree, gates: Mapping[str, Any]) -> PyTree:
    """``variables`` with each gate multiplied into the module it follows, so that
    ``structure.model.apply(folded, x) == apply_with_gates(structure, variables, gates, x)``.

    A gate scales its site's output channel: a batch norm's ``scale`` and ``bias``, or a conv /
    dense layer's kernel column and bias. Pruning the folded variables to the gates' nonzero
    channels (:func:`~jaxprune.structured.prune_channels`) gives the narrow network that
    computes exactly what the gated wide one does.
    """
    params = jax.tree.map(lambda a: a, dict(variables["params"]))  # a copy of the dict tree

    def scaled(node: dict, g: jax.Array) -> dict:
        node = dict(node)
        key = "scale" if "scale" in node else "kernel"
        size = node[key].shape[-1]
        node[key] = node[key] * g[:size]
        if "bias" in node:
            node["bias"] = node["bias"] * g[:size]
        return node

    def visit(tree: dict, path: tuple[str, ...], g: jax.Array) -> dict:
        tree = dict(tree)
        if len(path) == 1:
            tree[path[0]] = scaled(tree[path[0]], g)
        else:
            tree[path[0]] = visit(tree[path[0]], path[1:], g)
        return tree

    for name, g in gates.items():
        for site in structure.group(name).sites:
            params = visit(params, tuple(site.path), jnp.asarray(g)[: site.size])
    return {**variables, "params": params}


def standard_macs(name: str, *, input_shape: Sequence[int] | None = None,
                  **options: Any) -> int:
    """MACs of the standard-width model ``models.get(name, **options)`` (the reference of the
    FLOPs reduction; ``options`` without the expansion)."""
    return st.count_pruned(st.channel_groups(name, **options), input_shape=input_shape).macs


class Searched(NamedTuple):
    """What :func:`search` found: ``keep`` per group, the narrow ``widths`` (group -> kept
    count), the narrow model's ``counts``, the ``reduction`` of MACs against the standard model,
    and the ``options`` that build it with ``models.get``."""

    keep: st.Keep
    widths: dict[str, int]
    counts: st.Counts
    reduction: float
    options: dict[str, Any]


def search(
    structure: st.Structure,
    gates: Mapping[str, Any],
    reduction: float,
    *,
    reference_macs: int,
    tolerance: float = 1e-3,
    input_shape: Sequence[int] | None = None,
) -> Searched:
    """The architecture whose MACs are ``1 - reduction`` of ``reference_macs`` (step 4).

    Gates are ranked globally (:func:`~jaxprune.structured.prune_to_reduction`, every group
    keeps at least one channel); ``reference_macs`` is the *standard-width* model's
    (:func:`standard_macs`), as the official ``prune_model.py`` measures it.

    Raises:
      ValueError: a target outside (0, 1), one no structure reaches, or none within
        ``tolerance``.
    """
    scores = {k: np.asarray(v, np.float64) for k, v in gates.items()}
    found = st.prune_to_reduction(structure, scores, reduction, reference=reference_macs,
                                  tolerance=tolerance, input_shape=input_shape,
                                  groups=list(gates))
    widths = {n: int(found.keep[n].size) if n in found.keep else structure.group(n).width
              for n in structure.group_names}
    return Searched(found.keep, widths, found.counts, found.reduction,
                    st.narrow_options(structure, found.keep))


def budget_epochs(epochs: int, reduction: float) -> int:
    """PfS's training budget for an architecture with ``reduction`` fewer MACs than the standard
    model (``train_pruned.py --budget_train``): ``int(epochs / (1 - p))``. The same rule as
    Rethinking's Scratch-B (:func:`jaxprune.studies.structured.scratch_b_epochs`, whose FLOPs
    ratio is dense / pruned), stated on the reduction against the *standard* (not the
    expanded) network."""
    if not 0.0 <= reduction < 1.0:
        raise ValueError(f"reduction must lie in [0, 1), got {reduction}")
    return int(1 / (1 - reduction) * epochs)


def check_expansion(expansion: float) -> float:
    """An expansion factor ``e >= 1`` (the official ``-e``, as a multiple of the base width)."""
    if not (isinstance(expansion, int | float) and math.isfinite(expansion) and expansion >= 1):
        raise ValueError(f"expansion must be >= 1 (a multiple of the standard widths), got "
                         f"{expansion}")
    return float(expansion)


# ---------------------------------------------------------------------------------------------
# The study: many seeds searched at once, structures trained from scratch.
# ---------------------------------------------------------------------------------------------


def expanded_structure(name: str, options: Mapping[str, Any], expansion: float
                       ) -> tuple[st.Structure, dict[str, Any]]:
    """The expanded model's groups and the standard model's options.

    ``options`` describe the *standard* model (e.g. ``width_multiplier=0.25`` at CPU scale);
    the expanded one multiplies its ``width_multiplier`` by ``expansion``.
    """
    check_expansion(expansion)
    standard = dict(options)
    wide = {**standard, "width_multiplier": standard.get("width_multiplier", 1.0) * expansion}
    return st.channel_groups(name, **wide), standard


class Found(NamedTuple):
    """One network's search: its data ``seed``, the :class:`Searched` architecture, and the
    gate learning's ``selected_epoch``, ``met_target`` and selected ``val_accuracy``."""

    seed: int
    searched: Searched
    selected_epoch: int
    met_target: bool
    val_accuracy: float


def search_seeds(
    structure: st.Structure,
    variables: PyTree,
    seeds: Sequence[int],
    train: Split,
    val: Split,
    config: GateConfig,
    reduction: float,
    *,
    reference_macs: int,
    tolerance: float = 1e-3,
    groups: Sequence[str] | None = None,
    strategy: str = "auto",
    progress: bool = True,
) -> tuple[GateResult, list[Found]]:
    """Steps 2-4 for N stacked networks (``variables`` with a leading axis of ``len(seeds)``):
    gates learned together on ``groups`` (default: all), then one architecture per network.

    Raises:
      ValueError: as :func:`learn_gates` and :func:`search`; the search error names the seed.
    """
    result = learn_gates(structure, variables, train, val, config, groups=groups, stacked=True,
                         strategy=strategy, progress=progress)
    found = []
    for i, seed in enumerate(seeds):
        gates = {k: np.asarray(v[i]) for k, v in result.gates.items()}
        try:
            s = search(structure, gates, reduction, reference_macs=reference_macs,
                       tolerance=tolerance)
        except ValueError as e:
            raise ValueError(f"seed {seed}: {e}") from None
        epoch = result.selected_epoch[i]
        found.append(Found(int(seed), s, epoch, bool(result.met_target[i]),
                           float(result.history[epoch - 1]["val_accuracy"][i])))
    return result, found


def find_architectures(
    structure: st.Structure,
    seeds: Sequence[int],
    train: Split,
    val: Split,
    config: GateConfig,
    reduction: float,
    *,
    reference_macs: int,
    tolerance: float = 1e-3,
    groups: Sequence[str] | None = None,
    pretrain: Any = None,
    strategy: str = "auto",
    workdir: str | None = None,
    progress: bool = True,
) -> tuple[GateResult, list[Found], str]:
    """Steps 1-4 for N networks (the ``scratch search`` command): initialize one expanded
    network per seed (``fold_in(key(seed), 0)``), optionally train them first (``pretrain``: a
    ``TrainConfig``; gates on *trained* weights, the diversity study's baseline; ``fit``'s
    workdir ``<workdir>/pretrain``), then :func:`search_seeds`.

    Returns:
      ``(gate result, one Found per seed, how the weights were made: "random" or "trained N
      epochs")``.
    """
    from jaxprune.train import fit

    seeds = [int(s) for s in seeds]
    x = jnp.zeros((1, *train.images.shape[1:]), jnp.float32)
    variables = _seeds.init_seeds(lambda k, v: structure.model.init(k, v, train=False),
                                  _seeds.seed_keys(seeds, 0), x)
    how = "random"
    if pretrain is not None and pretrain.epochs > 0:
        res = fit(structure.model, variables, train, val, pretrain, seeds=seeds,
                  workdir=None if workdir is None else f"{workdir}/pretrain", progress=progress)
        variables = res.variables
        how = f"trained {pretrain.epochs} epochs"
    result, found = search_seeds(structure, variables, seeds, train, val, config, reduction,
                                 reference_macs=reference_macs, tolerance=tolerance,
                                 groups=groups, strategy=strategy, progress=progress)
    return result, found, how


def train_config(epochs: int, reduction: float, **overrides: Any):
    """The official ``train_pruned.py`` recipe (SGD 0.1, momentum 0.9, weight decay 1e-4,
    batch 128, x0.1 at 50% and 75%, CIFAR augmentation) with Scratch-B's
    ``int(epochs / (1 - p))`` epochs."""
    from jaxprune.train import TrainConfig

    base = {"epochs": budget_epochs(epochs, reduction), "batch_size": 128,
            "optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
            "schedule": "step", "milestones": (0.5, 0.75), "lr_decay": 0.1, "augment": True}
    return TrainConfig(**{**base, **overrides})


#: The key of a network trained from scratch: ``fold_in(key(seed), SCRATCH_STREAM)``.
SCRATCH_STREAM = 2


def train_from_scratch(
    structure: st.Structure,
    keep: st.Keep | None,
    seed: int,
    train: Split,
    test: Split,
    config: Any,
    *,
    model: Any = None,
    workdir: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Step 5: one architecture trained from a new random init (the ``scratch train``
    command, the notebook and the experiment runner all call this).

    The init draws from ``fold_in(key(seed), SCRATCH_STREAM)`` and training uses ``seed``'s
    batch order (``config.seed = seed``).

    Args:
      structure: the (expanded) model's groups.
      keep: the channels of the found architecture (:class:`Searched`'s ``keep``); ``None``
        trains ``model`` instead (the standard network beside the pruned ones).
      seed: the network's seed.
      train, test: the splits.
      config: the recipe (:func:`train_config`: Scratch-B's epochs for a pruned network).
      model: the standard network, with ``keep=None``.
      workdir: ``fit``'s workdir (resume).
      progress: progress bars.

    Returns:
      ``{"seed", "epochs", "test_accuracy", "diverged_epoch"}``.
    """
    from jaxprune.train import fit, init_model

    key = jax.random.fold_in(jax.random.key(int(seed)), SCRATCH_STREAM)
    if keep is None:
        if model is None:
            raise ValueError("keep=None trains the standard network: pass model=")
        variables = init_model(model, key, train.images)
    else:
        net = st.fresh_init(structure, keep, key=key, input_shape=train.images.shape[1:])
        model, variables = net.model, net.variables
    res = fit(model, variables, train, test, config.replace(seed=int(seed)), workdir=workdir,
              progress=progress)
    return {"seed": int(seed), "epochs": config.epochs,
            "test_accuracy": float(res.results["test_accuracy"]),
            "diverged_epoch": res.results["diverged_epoch"]}


# ---------------------------------------------------------------------------------------------
# Diversity of the structures found.
# ---------------------------------------------------------------------------------------------


def width_vectors(found: Sequence[Searched], groups: Sequence[str]) -> np.ndarray:
    """``(runs, layers)`` kept widths, the layers in ``groups`` order."""
    return np.array([[f.widths[g] for g in groups] for f in found], np.float64)


def pairwise(widths: np.ndarray, full: Sequence[int]) -> dict[str, np.ndarray]:
    """Distances between every pair of width vectors (rows of ``widths``).

    Returns:
      ``l1``: ``sum_l |w_il - w_jl| / sum_l full_l`` (the fraction of the expanded channels
      placed differently); ``cosine``: cosine similarity of the width vectors. Each ``(P,)``,
      ``P = runs * (runs - 1) / 2``, pairs in ``itertools.combinations`` order.
    """
    full = np.asarray(full, np.float64)
    pairs = list(itertools.combinations(range(len(widths)), 2))
    l1 = np.array([np.abs(widths[i] - widths[j]).sum() / full.sum() for i, j in pairs])
    unit = widths / np.linalg.norm(widths, axis=1, keepdims=True)
    cos = np.array([float(unit[i] @ unit[j]) for i, j in pairs])
    return {"l1": l1, "cosine": cos}


def diversity(widths: np.ndarray, full: Sequence[int]) -> dict[str, Any]:
    """Summary of one group of structures: mean/std of the pairwise metrics and the per-layer
    spread (std over runs of the kept fraction of each layer) with its mean."""
    d = pairwise(widths, full)
    frac = widths / np.asarray(full, np.float64)
    spread = frac.std(axis=0)
    return {"runs": len(widths), "l1_mean": float(d["l1"].mean()), "l1_std": float(d["l1"].std()),
            "cosine_mean": float(d["cosine"].mean()), "cosine_std": float(d["cosine"].std()),
            "layer_spread": spread.tolist(), "layer_spread_mean": float(spread.mean())}


def more_diverse(a: np.ndarray, b: np.ndarray, full: Sequence[int], *, permutations: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """Is group ``a`` (width vectors, one row per run) more spread out than group ``b``?

    A test of dispersion that does not mistake a shift for spread (PERMDISP, Anderson 2006):
    each run's normalized L1 distance to its *own* group's mean width vector, then a one-sided
    permutation test of ``mean(a's distances) - mean(b's)`` over relabelings of those distances
    (group sizes kept). Pooling the raw vectors instead would count the distance between the two
    groups' centers as spread.

    Returns:
      ``difference``, ``spread_a``, ``spread_b`` (mean distances to the group mean), ``l1_a``,
      ``l1_b`` (mean pairwise normalized L1 within each group, descriptive) and ``p_value``.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each group needs at least two structures to measure diversity")
    full = np.asarray(full, np.float64)
    to_center = lambda w: np.abs(w - w.mean(0)).sum(1) / full.sum()
    da, db = to_center(np.asarray(a, np.float64)), to_center(np.asarray(b, np.float64))
    pooled = np.concatenate([da, db])
    observed = float(da.mean() - db.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(permutations):
        perm = rng.permutation(pooled)
        hits += perm[: len(da)].mean() - perm[len(da):].mean() >= observed - 1e-12
    return {"difference": observed, "spread_a": float(da.mean()), "spread_b": float(db.mean()),
            "l1_a": float(pairwise(a, full)["l1"].mean()),
            "l1_b": float(pairwise(b, full)["l1"].mean()),
            "p_value": (hits + 1) / (permutations + 1)}


def pca_2d(*groups: np.ndarray) -> list[np.ndarray]:
    """The rows of every group projected on the first two principal axes of all rows together
    (for one scatter plot)."""
    allrows = np.concatenate(groups)
    centered = allrows - allrows.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    proj = centered @ vt[:2].T
    return list(np.split(proj, np.cumsum([len(g) for g in groups])[:-1]))


__all__ = [
    "SCRATCH_STREAM", "Found", "GateConfig", "GatePrograms", "GateResult", "Searched",
    "budget_epochs", "check_expansion", "clamp", "diversity", "expanded_structure",
    "find_architectures", "fold_gates", "gate_density", "gate_penalty", "gate_programs",
    "learn_gates", "more_diverse", "pairwise", "pca_2d", "search", "search_seeds",
    "standard_macs", "train_config", "train_from_scratch", "width_vectors",
]
