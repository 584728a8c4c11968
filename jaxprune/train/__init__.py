"""Masked training with optax: recipes, pure train/eval steps, the epoch loop, workdirs.

  optim     TrainConfig, the papers' presets, optimizers and learning-rate schedules.
  steps     TrainState and the pure train/eval steps (masked training lives here).
  loop      fit / train_and_evaluate: epochs, evaluation, progress, checkpoints, resume.
  workdir   config.json, metrics.jsonl, orbax checkpoints, results.json (atomic writes).
"""

from jaxprune.train.loop import (
    FitResult,
    Split,
    TrainPrograms,
    diverged_epochs,
    evaluate,
    fit,
    init_model,
    run_identity,
    stacked_groups,
    train_and_evaluate,
    train_programs,
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
    "OPTIMIZERS", "PRESETS", "SCHEDULES", "FitResult", "Split", "TrainConfig", "TrainPrograms",
    "TrainState", "Workdir", "apply_model", "check_or_write_config", "create_state",
    "cross_entropy", "diverged_epochs",
    "evaluate", "fingerprint", "fit", "init_model", "make_eval_step", "make_optimizer",
    "make_schedule", "make_train_step", "preset", "restore_variables", "run_identity",
    "save_tree", "split_variables", "stacked_groups", "train_and_evaluate", "train_programs",
    "write_json_atomic", "write_npz_atomic", "write_text_atomic",
]
