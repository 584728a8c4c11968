"""Plain-text tables and CSV files for results people would rather look at than read."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if abs(v) >= 1e3 and v == v and abs(v) != float("inf"):
            return f"{v:,.0f}"
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".")
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Format ``rows`` (dicts) as an aligned text table; numbers right-aligned, ints with commas.

    Example:
      >>> print(format_table([{"model": "resnet20", "params": 272474}]))
      model     params
      --------  -------
      resnet20  272,474
    """
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), int | float) for r in rows if r.get(c) is not None)
               for c in columns]

    def line(values):
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` as CSV text (full precision)."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plot_accuracy_vs_compression(
    table: Sequence[Mapping[str, Any]], path: str, *, title: str = ""
) -> None:
    """Accuracy vs compression (log x), one line per method with a +/- 1 std band; writes a PNG.

    Args:
      table: rows with ``method``, ``compression``, ``acc_mean``, ``acc_std`` (as from
        ``jaxprune.studies.pai.aggregate``). A ``dense`` method is drawn as a horizontal line.
      path: output file (PNG).
      title: figure title.
    """
    plot_accuracy_panels({title: table}, path)


def plot_accuracy_panels(
    tables: Mapping[str, Sequence[Mapping[str, Any]]], path: str, *, title: str = ""
) -> None:
    """One accuracy-vs-compression panel per table (side by side, shared y axis), e.g. the same
    sweep under two initializations; each panel as :func:`plot_accuracy_vs_compression`.

    Args:
      tables: panel title -> rows (``method``, ``compression``, ``acc_mean``, ``acc_std``).
      path: output file (PNG).
      title: figure title above the panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 4.2), sharey=True, squeeze=False)
    for ax, (panel, table) in zip(axes[0], tables.items(), strict=True):
        _draw_accuracy(ax, table, panel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _draw_accuracy(ax: Any, table: Sequence[Mapping[str, Any]], title: str) -> None:
    methods = list(dict.fromkeys(r["method"] for r in table))
    for method in methods:
        rs = sorted((r for r in table if r["method"] == method), key=lambda r: r["compression"])
        mean = [100 * r["acc_mean"] for r in rs]
        std = [100 * r["acc_std"] for r in rs]
        if method == "dense":
            ax.axhline(mean[0], color="black", ls="--", lw=1, label=f"dense ({mean[0]:.1f}%)")
            continue
        x = [r["compression"] for r in rs]
        (line,) = ax.plot(x, mean, marker="o", ms=3, label=method)
        ax.fill_between(x, [m - d for m, d in zip(mean, std, strict=True)],
                        [m + d for m, d in zip(mean, std, strict=True)],
                        color=line.get_color(), alpha=0.2)
    xs = sorted({r["compression"] for r in table if r["method"] != "dense"})
    if len(xs) == 1:  # a single point: give the log axis some room
        ax.set_xlim(xs[0] / 2, xs[0] * 2)
    ax.set_xscale("log")
    ax.set_xlabel("compression (1 / density)")
    ax.set_ylabel("test accuracy (%)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_lottery(rows: Sequence[Mapping[str, Any]], path: str, *, title: str = "") -> None:
    """IMP: early-stop step and test accuracy at it vs % of weights remaining, one line per arm
    (ticket and controls) with a +/- 1 std band across seeds; writes a PNG.

    Args:
      rows: per level and arm, from :func:`jaxprune.studies.lottery.arm_rows`: ``arm``,
        ``remaining %``, ``early stop``, ``early stop std``, ``acc at early stop``,
        ``acc at early stop std``.
      path: output file (PNG).
      title: figure title.
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for arm in dict.fromkeys(r["arm"] for r in rows):
        rs = sorted((r for r in rows if r["arm"] == arm), key=lambda r: -r["remaining %"])
        x = [r["remaining %"] for r in rs]
        for ax, key, scale in ((axes[0], "early stop", 1.0), (axes[1], "acc at early stop", 100)):
            mean = np.array([r[key] for r in rs]) * scale
            std = np.nan_to_num(np.array([r[f"{key} std"] for r in rs]) * scale)
            (line,) = ax.plot(x, mean, marker="o", ms=3, label=arm)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    for ax, label in ((axes[0], "early-stop step (min. validation loss)"),
                      (axes[1], "test accuracy at early stop (%)")):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(
            [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_structure_diversity(groups: Mapping[str, np.ndarray], layer_names: Sequence[str],
                             full: Sequence[int], path: str, *, title: str = "") -> None:
    """Pruning from Scratch's diversity figure: per group of runs a heatmap of the kept
    fraction of every layer (rows: runs), a 2-D PCA scatter of all width vectors, and the
    histograms of pairwise normalized L1 distances; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxprune.studies.scratch import pairwise, pca_2d

    names = list(groups)
    full = np.asarray(full, np.float64)
    fig, axes = plt.subplots(1, len(names) + 2, figsize=(4.2 * (len(names) + 2), 4.2))
    for ax, name in zip(axes, names, strict=False):
        im = ax.imshow(groups[name] / full, aspect="auto", vmin=0, vmax=1, cmap="viridis",
                       interpolation="nearest")
        ax.set_title(f"{name}: kept fraction per layer")
        ax.set_xlabel("layer")
        ax.set_ylabel("run")
        ax.set_xticks(range(len(layer_names)))
        ax.set_xticklabels([str(i + 1) for i in range(len(layer_names))], fontsize=6)
    fig.colorbar(im, ax=axes[len(names) - 1], fraction=0.046)
    ax = axes[len(names)]
    for name, pts in zip(names, pca_2d(*(groups[n] for n in names)), strict=True):
        ax.scatter(pts[:, 0], pts[:, 1], label=name, alpha=0.7, s=18)
    ax.set_title("width vectors, first two principal axes")
    ax.legend(fontsize=8)
    ax = axes[len(names) + 1]
    for name in names:
        ax.hist(pairwise(groups[name], full)["l1"], bins=20, alpha=0.55, label=name,
                density=True)  # groups of different sizes, comparable shapes
    ax.set_title("pairwise normalized L1 distance")
    ax.set_ylabel("density")
    ax.set_xlabel("fraction of channels placed differently")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Arm ``a`` against arm ``b`` over the same seeds (see :func:`compare_paired`).

    ``diffs`` are ``a - b`` per seed; ``mean`` and ``std`` (n - 1) are theirs; ``low`` and
    ``high`` bound the ``confidence`` t-interval of the mean difference (NaN with one seed);
    ``higher`` / ``lower`` / ``ties`` count seeds; ``verdict`` is one of ``"higher"``,
    ``"lower"`` (the interval excludes 0), ``"equivalent"`` (inside +/- ``margin``),
    ``"no detectable difference"`` or ``"one seed"``.
    """

    diffs: tuple[float, ...]
    mean: float
    std: float
    low: float
    high: float
    confidence: float
    margin: float | None
    higher: int
    lower: int
    ties: int
    verdict: str

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def sentence(self, a: str = "a", b: str = "b", *, scale: float = 1.0, unit: str = "",
                 digits: int = 2) -> str:
        """The verdict in words with the numbers it rests on, e.g. ``"ticket higher than dense
        by 0.72 (95% CI 0.41 to 1.03; higher in 3 of 3 seeds)"``; ``scale=100, unit=" points"``
        for accuracies stored as fractions."""
        f = lambda v: f"{v * scale:.{digits}f}"  # noqa: E731
        pct = f"{100 * self.confidence:g}%"
        seeds = f"{a} higher in {self.higher} of {self.n} seeds"
        if self.verdict == "one seed":
            return f"{a} - {b} = {f(self.mean)}{unit} on one seed (no interval)"
        ci = f"{pct} CI {f(self.low)} to {f(self.high)}"
        if self.verdict in ("higher", "lower"):
            return (f"{a} {self.verdict} than {b} by {f(abs(self.mean))}{unit} ({ci}; {seeds})")
        if self.verdict == "equivalent":
            return (f"{a} equivalent to {b} within +/- {f(self.margin)}{unit} ({ci}; {seeds})")
        return (f"no detectable difference between {a} and {b}: {f(self.mean)} "
                f"+/- {f(self.half_width)}{unit} ({ci}; {seeds})")


def compare_paired(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95,
                   margin: float | None = None) -> Comparison:
    """Paired comparison of two arms run on the same seeds (``a[i]`` and ``b[i]`` share seed
    ``i``): the mean of ``a - b`` and its Student-t interval.

    An interval that excludes 0 is a difference (``"higher"`` / ``"lower"``). One that
    includes 0 is ``"equivalent"`` only when it lies inside ``(-margin, margin)`` for a margin
    chosen in advance; otherwise it is ``"no detectable difference"``, which is not evidence of
    equivalence (a wide interval from few or noisy seeds says little).

    Raises:
      ValueError: arms of different lengths or empty, a non-finite value, or ``confidence``
        outside (0, 1).
    """
    from scipy import stats

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"compare_paired needs two equally long, non-empty 1-D arms (one value "
                         f"per seed); got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("compare_paired got a non-finite value: report diverged runs apart")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    d = x - y
    n, mean = d.size, float(d.mean())
    counts = dict(higher=int((d > 0).sum()), lower=int((d < 0).sum()), ties=int((d == 0).sum()))
    if n == 1:
        return Comparison(tuple(d.tolist()), mean, math.nan, math.nan, math.nan, confidence,
                          margin, verdict="one seed", **counts)
    std = float(d.std(ddof=1))
    h = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    low, high = mean - h, mean + h
    if low > 0:
        verdict = "higher"
    elif high < 0:
        verdict = "lower"
    elif margin is not None and -margin < low and high < margin:
        verdict = "equivalent"
    else:
        verdict = "no detectable difference"
    return Comparison(tuple(d.tolist()), mean, std, low, high, confidence, margin,
                      verdict=verdict, **counts)
