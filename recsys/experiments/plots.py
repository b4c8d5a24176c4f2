"""How the experiment report renders: its figures (a metric's difference from the control over
time with its confidence band; the cumulative users per arm, the sample-ratio check seen) and
its markdown cells and tables (nan written as "n/a", tiny p-values as "< 0.0001").

Figures are drawn on an explicit ``Figure`` with the Agg canvas, not through pyplot: no display
is needed and nothing global (pyplot's backend, its figure registry) is touched, so a report
builds alike in a server, a test or a notebook, and each figure is freed when it goes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recsys.experiments.analysis import METRIC_PARTS

Band = tuple[list[float], list[float], list[float]]  # (value, low, high), one entry per look


def new_band() -> Band:
    return [], [], []


def push(band: Band, value: float, low: float, high: float) -> None:
    """Append one look's value and interval to ``band``."""
    for series, v in zip(band, (value, low, high), strict=True):
        series.append(float(v))


def fmt(x: float | None, spec: str = ".4f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def fmt_p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:+.2f} %"


def fmt_ci(low: float, high: float, spec: str = ".4f") -> str:
    """An interval's cell; spec "%": a relative lift's, in percent."""
    if spec == "%":
        return f"[{fmt_pct(low)}, {fmt_pct(high)}]"
    return f"[{fmt(low, spec)}, {fmt(high, spec)}]"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table's lines (and a blank line after it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def band_over_time(days: Sequence[float], bands: Mapping[str, Band], path: Path, title: str,
                   ylabel: str, extra: Mapping[str, Band] | None = None) -> Path:
    """One line per series with its shaded band, a dashed zero line (no difference).

    ``extra``: further bands drawn as dotted bounds only (e.g. the always-valid confidence
    sequence, wider than the fixed-horizon interval it surrounds).
    """
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    x = np.asarray(days, dtype=float)
    for label, (value, low, high) in bands.items():
        (line,) = ax.plot(x, value, marker="o", markersize=3, label=label)
        ax.fill_between(x, np.asarray(low, float), np.asarray(high, float), alpha=0.2,
                        color=line.get_color())
    for label, (_, low, high) in (extra or {}).items():
        ax.plot(x, low, ":", color="0.35", linewidth=1, label=label)
        ax.plot(x, high, ":", color="0.35", linewidth=1)
    ax.axhline(0.0, color="0.5", linestyle="--", linewidth=0.8)
    ax.set(title=title, xlabel="days since the first exposure", ylabel=ylabel)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def users_over_time(days: Sequence[float], users: Mapping[str, Sequence[int]], path: Path,
                    title: str) -> Path:
    """Cumulative users per arm: lines that should grow in the arms' weights' proportions."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    for arm, counts in users.items():
        ax.plot(np.asarray(days, float), counts, marker="o", markersize=3, label=arm)
    ax.set(title=title, xlabel="days since the first exposure", ylabel="users (cumulative)")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def jsonable(value: Any) -> Any:
    """numpy scalars to Python, nan/inf to None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds:.3g} s"


def spec_of(metric: str) -> str:
    return ".1f" if METRIC_PARTS[metric][1] is None else ".4f"
