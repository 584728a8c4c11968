"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "sparsity 0.9000" in out
    accs = eval(out.strip().splitlines()[-1])  # the per-seed accuracies it prints
    assert len(accs) == 3 and min(accs) > 0.8, accs


def test_readme_bring_your_own_model_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Bring your own model"):]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out.strip().splitlines()
    dense, kept = (int(w) for w in out[0].split()[::3][:2])
    assert dense == 8 * 8 * 9 * 8 + 512 * 10 and 0 < kept < dense, out[0]
    accs = eval(out[-1])
    assert len(accs) == 3 and min(accs) > 0.8, accs
