"""Experiment READMEs hold what their verdict scripts compute from the committed results."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
BLOCK = re.compile(r"<!-- verdicts: python (\S+) -->\n(.*?)<!-- /verdicts -->", re.S)
READMES = sorted(p for p in EXPERIMENTS.glob("*/README.md") if BLOCK.search(p.read_text()))


def _render(script: Path) -> str:
    spec = importlib.util.spec_from_file_location(f"verdicts_{script.parent.name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render()


def test_some_readme_has_a_verdict_block():
    assert READMES, "no experiment README holds a <!-- verdicts: ... --> block"


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_readme_verdicts_are_the_scripts_output(readme):
    for script, text in BLOCK.findall(readme.read_text()):
        path = EXPERIMENTS.parent / script
        assert path.is_file(), f"{readme} names {script}, which does not exist"
        assert text == _render(path), (f"{readme}'s verdicts differ from `python {script}`: "
                                       "rerun it and paste its output between the markers")
