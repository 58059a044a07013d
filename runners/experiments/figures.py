"""What every experiment writes besides records: tables (markdown + CSV), figures (PNG, Agg) and
the `ExperimentResult` a command prints.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import atomic_path, atomic_write, atomic_write_text

DPI = 150


def percent_text(value: float | None, digits: int = 1) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.{digits}f}"
    )


def count_text(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{int(value)}"


def suptitle(fig: Any, text: str) -> None:
    """A figure title wrapped to the figure's width (long run labels would be cut off)."""
    width = max(40, int(fig.get_figwidth() * 9))
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")))


def save_figure(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def write_table(frame: pd.DataFrame, markdown: str, stem: Path) -> list[Path]:
    atomic_write_text(stem.with_suffix(".md"), markdown)
    atomic_write(stem.with_suffix(".csv"), lambda fh: frame.to_csv(fh, index=False))
    return [stem.with_suffix(".md"), stem.with_suffix(".csv")]


@dataclass
class ExperimentResult:
    """Records written, the markdown printed, the files written (tables, figures)."""

    records: list[dict[str, Any]]
    markdown: str
    paths: list[Path] = field(default_factory=list)


def new_figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def heatmap(ax: Any, fig: Any, values: Any, xlabels: list[str], ylabels: list[str], title: str) -> None:
    import numpy as np

    image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    fig.colorbar(image, ax=ax, shrink=0.9)
    ax.set_xticks(
        range(len(xlabels)),
        xlabels,
        rotation=30 if max(map(len, xlabels)) > 6 else 0,
        ha="right" if max(map(len, xlabels)) > 6 else "center",
    )
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_title(title)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(
                j,
                i,
                f"{value:.1f}",
                ha="center",
                va="center",
                fontsize="small",
                color="black" if value > middle else "white",
            )


def outline_cell(ax: Any, x: int, y: int, label: str | None = None) -> None:
    """A red box inside cell (x, y); inset, so that boxes of neighbouring cells stay apart."""
    from matplotlib.patches import Rectangle

    box = Rectangle((x - 0.44, y - 0.44), 0.88, 0.88, fill=False, edgecolor="red", linewidth=2.0, label=label)
    ax.add_patch(box)
