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
