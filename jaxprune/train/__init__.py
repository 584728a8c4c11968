"""Masked training with optax: recipes, pure train/eval steps, the epoch loop, workdirs.

  optim     TrainConfig, the papers' presets, optimizers and learning-rate schedules.
  steps     TrainState and the pure train/eval steps (masked training lives here).
  loop      fit / train_and_evaluate: epochs, evaluation, progress, checkpoints, resume.
  workdir   config.json, metrics.jsonl, orbax checkpoints, results.json (atomic writes).
"""

from jaxprune.train.loop import (
    FitResult,
    Split,
    evaluate,
    fit,
    init_model,
    run_identity,
    train_and_evaluate,
)
from jaxprune.train.optim import (
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    TrainConfig,
    make_optimizer,
    make_schedule,
    preset,
)
from jaxprune.train.steps import (
    TrainState,
    apply_model,
    create_state,
    cross_entropy,
    make_eval_step,
    make_train_step,
    split_variables,
)
from jaxprune.train.workdir import (
    Workdir,
    check_or_write_config,
    fingerprint,
    restore_variables,
    save_tree,
    write_json_atomic,
    write_npz_atomic,
    write_text_atomic,
)

__all__ = [
    "OPTIMIZERS", "PRESETS", "SCHEDULES", "FitResult", "Split", "TrainConfig", "TrainState",
    "Workdir", "apply_model", "check_or_write_config", "create_state", "cross_entropy",
    "evaluate", "fingerprint", "fit", "init_model", "make_eval_step", "make_optimizer",
    "make_schedule", "make_train_step", "preset", "restore_variables", "run_identity",
    "save_tree", "split_variables", "train_and_evaluate", "write_json_atomic", "write_npz_atomic",
    "write_text_atomic",
]
