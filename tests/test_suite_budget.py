"""The suite's own machinery (tests/conftest.py): a whole-suite run over its time budget fails."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


def _project(tmp_path: Path, budget_s: float) -> Path:
    """A copy of this suite's conftest with another budget, beside one test that passes."""
    text, n = re.subn(r"^SUITE_BUDGET_S = .*$", f"SUITE_BUDGET_S = {budget_s}",
                      CONFTEST.read_text(), flags=re.M)
    assert n == 1, "SUITE_BUDGET_S is written once, at the start of a line, in conftest.py"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(text)
    (tmp_path / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    return tmp_path


def _run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("budget, code, words", [
    (0.001, 1, "over its budget of 0.001 s (SUITE_BUDGET_S in tests/conftest.py)"),
    (3600, 0, "within its budget of 3600 s"),
])
def test_whole_suite_over_budget_fails(tmp_path, budget, code, words):
    p = _run(_project(tmp_path, budget))
    assert p.returncode == code, p.stdout[-2000:] + p.stderr[-2000:]
    assert "1 passed" in p.stdout and words in p.stdout, p.stdout[-2000:]


def test_a_chosen_file_is_not_held_to_the_budget(tmp_path):
    p = _run(_project(tmp_path, 0.001), "tests/test_ok.py")
    assert p.returncode == 0 and "budget" not in p.stdout, p.stdout[-2000:]
