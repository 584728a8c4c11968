"""The score-function contract shared by every criterion."""

from __future__ import annotations

from typing import Any, Protocol

import jax

PyTree = Any


class ScoreFn(Protocol):
    """``score_fn(params, *, batch=None, key=None) -> scores``.

    ``scores`` has exactly params' tree structure and leaf shapes; higher = more important = kept.
    Pure and jittable; ``batch`` is whatever the criterion's ``loss_fn`` takes, ``key`` a PRNG key.
    """

    def __call__(
        self, params: PyTree, *, batch: Any = None, key: jax.Array | None = None
    ) -> PyTree: ...


def require(value: Any, criterion: str, name: str, what: str) -> None:
    """Raise ``ValueError`` if a criterion was called without an argument it needs."""
    if value is None:
        raise ValueError(f"the {criterion!r} criterion needs {name}= ({what}), got None")


def require_callable(fn: Any, criterion: str, name: str, signature: str) -> None:
    """Raise ``TypeError`` unless a factory argument is callable."""
    if not callable(fn):
        raise TypeError(
            f"the {criterion!r} criterion needs {name}= a function {signature}, got {fn!r}"
        )


def compiled(score_fn: Any) -> ScoreFn:
    """``jax.jit(score_fn)``: eager calls compile once instead of op by op; under an outer
    ``jit``/``vmap``/loop it is simply inlined. Argument checks still run (at trace time)."""
    return jax.jit(score_fn)
