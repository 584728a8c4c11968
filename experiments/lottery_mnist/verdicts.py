"""The accuracy verdicts of lottery_mnist, computed from results.json (never typed by hand).

Each level's ticket and reinit control against the dense network (level 0's ticket), paired by
seed (the same init), with jaxprune.report.compare_paired's 95% t-interval. Prints the Markdown
block that README.md holds between its "verdicts" markers; tests/test_experiments.py checks that
the README holds exactly this output.

    python experiments/lottery_mnist/verdicts.py
"""

from __future__ import annotations

import json
from pathlib import Path

from jaxprune.report import compare_paired

HERE = Path(__file__).resolve().parent


def render() -> str:
    levels = json.loads((HERE / "results.json").read_text())["levels"]
    dense = levels[0]["arms"]["ticket"]["test_accuracy"]
    lines = ["| remaining | ticket vs dense | reinit vs dense |", "|---|---|---|"]
    verdicts: dict[str, list[tuple[str, str]]] = {"ticket": [], "reinit": []}
    for lv in levels[1:]:
        where = f"{100 * lv['density']:.2f}%"
        cells = []
        for arm in ("ticket", "reinit"):
            c = compare_paired(lv["arms"][arm]["test_accuracy"], dense)
            verdicts[arm].append((where, c.verdict))
            cells.append(c.sentence(arm, "dense", scale=100, unit=" points"))
        lines.append(f"| {where} | {cells[0]} | {cells[1]} |")
    lines.append("")
    for arm, v in verdicts.items():
        for verdict in ("higher", "lower"):
            at = [where for where, got in v if got == verdict]
            lines.append(f"- {arm} {verdict} than dense at {len(at)} of {len(v)} levels"
                         + (f" ({', '.join(at)})" if at else "") + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
