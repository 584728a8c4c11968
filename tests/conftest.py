"""Shared test configuration: strict JAX numerics and the location of real data."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    env = os.environ.get("JAXPRUNE_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real datasets (``$JAXPRUNE_DATA_DIR`` or ``../shared/data``); skips if absent."""
    d = _shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set JAXPRUNE_DATA_DIR or place it in ../shared/data")
    return d
