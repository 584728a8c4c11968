"""Optimizers, learning-rate schedules and the training recipes of the papers.

Everything here builds plain ``optax`` objects; nothing is stateful. The recipe values live in one
frozen :class:`TrainConfig` so that a run's full configuration can be written to its workdir and
read back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (written to ``<workdir>/config.json``).

    Attributes:
      model: zoo name (``jaxprune models`` lists them).
      dataset: dataset name (``jaxprune datasets`` lists them).
      model_options: keyword options for ``jaxprune.models.get`` (widths, width_multiplier, ...).
      epochs: number of passes over the training split (>= 0).
      batch_size: training batch size.
      optimizer: one of ``OPTIMIZERS``.
      learning_rate: peak learning rate.
      momentum: SGD momentum (ignored by Adam).
      nesterov: Nesterov momentum for SGD.
      weight_decay: L2 coefficient. Coupled (added to the gradient, as PyTorch's SGD/Adam do) for
        ``sgd``/``adam``; decoupled for ``adamw``.
      schedule: one of ``SCHEDULES``; ``step`` multiplies the rate by ``lr_decay`` at each of
        ``milestones`` (fractions of the run, e.g. ``(0.5, 0.75)``), ``cosine`` decays to 0.
      milestones: step-schedule boundaries as fractions of the total number of steps.
      lr_decay: step-schedule factor.
      warmup_epochs: linear warm-up from 0 (0 disables).
      bn_l1: Network Slimming's sparsity strength ``s`` (Liu et al. 2017; 1e-4 on CIFAR):
        ``s * sign(gamma)`` is added to the gradient of every batch-norm scale before weight
        decay and momentum (:func:`jaxprune.structured.slimming.network_slimming`). 0 disables.
      label_smoothing: label-smoothing coefficient in [0, 1).
      augment: CIFAR-style augmentation (pad-4 random crop + horizontal flip).
      normalize: per-channel normalization with the training split's mean/std.
      seed: integer seed for init, batching and augmentation.
      eval_batch_size: evaluation batch size.
      checkpoint_every: save a checkpoint every this many epochs (and always after the last).
      data_dir: directory holding the official dataset files (None: $JAXPRUNE_DATA_DIR or TFDS).
    """

    model: str = "lenet_300_100"
    dataset: str = "mnist"
    model_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: Sequence[float] = (0.5, 0.75)
    lr_decay: float = 0.1
    warmup_epochs: int = 0
    bn_l1: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False
    normalize: bool = True
    seed: int = 0
    eval_batch_size: int = 1000
    checkpoint_every: int = 1
    data_dir: str | None = None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_options"] = dict(self.model_options)
        d["milestones"] = list(self.milestones)
        if not self.bn_l1:  # off: absent, so workdirs written before the field keep resuming
            del d["bn_l1"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; valid fields: {sorted(known)}")
        d = dict(d)
        if "milestones" in d:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {list(SCHEDULES)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of the run in (0, 1): {self.milestones}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not self.bn_l1 >= 0:
            raise ValueError(f"bn_l1 (Network Slimming's s) must be >= 0, got {self.bn_l1}")


# Recipes from the papers. Each is a dict of TrainConfig overrides.
PRESETS: dict[str, dict[str, Any]] = {
    # He et al. 2016 / Liu et al. 2019 ("Rethinking"): 160 epochs, lr 0.1 divided by 10 at 50%
    # and 75% of training, momentum 0.9, weight decay 1e-4, batch 64-128, standard augmentation.
    "cifar_resnet": dict(
        dataset="cifar10", epochs=160, batch_size=128, optimizer="sgd", learning_rate=0.1,
        momentum=0.9, weight_decay=1e-4, schedule="step", milestones=(0.5, 0.75), lr_decay=0.1,
        augment=True, normalize=True,
    ),
    # Li et al. 2017 / Network Slimming VGG recipe: as above with weight decay 5e-4 on VGG.
    "cifar_vgg": dict(
        dataset="cifar10", epochs=160, batch_size=128, optimizer="sgd", learning_rate=0.1,
        momentum=0.9, weight_decay=5e-4, schedule="step", milestones=(0.5, 0.75), lr_decay=0.1,
        augment=True, normalize=True,
    ),
    # LeNet-300-100 on MNIST: SGD + Nesterov with cosine decay, no augmentation.
    "mnist_lenet": dict(
        dataset="mnist", epochs=20, batch_size=128, optimizer="sgd", learning_rate=0.05,
        momentum=0.9, nesterov=True, weight_decay=1e-4, schedule="cosine", augment=False,
        normalize=True,
    ),
    # Tanaka et al. 2020 (SynFlow code) MNIST/MLP recipe: Adam 1e-3, batch 256.
    "synflow_mlp": dict(
        dataset="mnist", epochs=10, batch_size=256, optimizer="adam", learning_rate=1e-3,
        weight_decay=0.0, schedule="constant", augment=False, normalize=True,
    ),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named recipe as a :class:`TrainConfig`, with ``overrides`` applied.

    Example:
      >>> cfg = preset("cifar_resnet", model="resnet20", epochs=2)
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides})


def make_schedule(
    config: TrainConfig, steps_per_epoch: int, *, step_offset: int = 0
) -> optax.Schedule:
    """The learning-rate schedule of ``config`` as a function of the optimizer step.

    With ``step_offset = k`` the schedule is read ``k`` steps in: an optimizer created fresh at
    step ``k`` of a run (training resumed from rewound weights, Frankle et al. 2020) gets the
    rates the run had from step ``k`` on.
    """
    total = max(1, config.epochs * steps_per_epoch)
    warmup = config.warmup_epochs * steps_per_epoch
    lr = config.learning_rate
    if config.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif config.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, decay_steps=max(1, total - warmup))
    elif config.schedule == "step":
        bounds = {int(round(m * total)) - warmup: config.lr_decay for m in config.milestones}
        main = optax.piecewise_constant_schedule(lr, {b: s for b, s in bounds.items() if b > 0})
    else:
        raise ValueError(f"unknown schedule {config.schedule!r}; valid: {list(SCHEDULES)}")
    full = main if warmup == 0 else optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), main], [warmup])
    if step_offset == 0:
        return full
    return lambda count: full(count + step_offset)


def make_optimizer(
    config: TrainConfig, steps_per_epoch: int, *, step_offset: int = 0
) -> optax.GradientTransformation:
    """The optax optimizer of ``config`` (weight decay, momentum, schedule included); see
    :func:`make_schedule` for ``step_offset``."""
    config.validate()
    lr = make_schedule(config, steps_per_epoch, step_offset=step_offset)
    front = []
    if config.bn_l1:  # Network Slimming's updateBN: on the raw gradient, before everything else
        from jaxprune.structured.slimming import network_slimming

        front.append(network_slimming(config.bn_l1))
    if config.optimizer == "adamw":
        return optax.chain(*front, optax.adamw(lr, weight_decay=config.weight_decay))
    if config.optimizer == "adam":
        base = optax.adam(lr)
    else:
        base = optax.sgd(lr, momentum=config.momentum or None, nesterov=config.nesterov)
    if config.weight_decay:
        front.append(optax.add_decayed_weights(config.weight_decay))
    return optax.chain(*front, base) if front else base
