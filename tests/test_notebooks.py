"""Every notebook runs end to end (quick mode, embedded data) and writes its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    env = {**os.environ, "JAXPRUNE_QUICK": "1", "JAXPRUNE_NOTEBOOK_OUT": str(tmp_path),
           "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(tmp_path.glob("*.png")), "the notebook wrote no figure"
