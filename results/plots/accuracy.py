"""``accuracy_<preset>.png``: test accuracy per task (and Avg), one row per attention, the mean with its
95% interval, filled where the leaderboard bolds the cell, hollow where the tests resolve it below;
the chance level dashed and the FAIL line dotted."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from lra.io import slug

from .. import frontier as frontier_
from ..leaderboard import FAIL, Leaderboard, average_tasks
from ..records import plugin_label
from .common import (
    chance_and_fail,
    label_styles,
    new_figure,
    save_png,
)


def _accuracy_panels(lb: Leaderboard, preset: str) -> list[str]:
    tasks = lb.tasks(preset)
    with_avg = len(tasks) > 1 and any(
        not math.isnan(s.value) for s in lb.stats[preset].averages["avg"].values()
    )
    return [*tasks, frontier_.AVG] if with_avg else tasks


def accuracy_figures(lb: Leaderboard) -> list[tuple[str, Any]]:
    """(file name, Figure) of the accuracy figure of every preset table (module docstring)."""
    from matplotlib.lines import Line2D

    figures = []
    for preset in lb.presets:
        cells = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["seeds"] > 0)]
        if cells.empty:
            continue
        labels = lb.labels(preset)
        styles = label_styles(lb, preset)
        panels = _accuracy_panels(lb, preset)
        averaged = lb.stats[preset].averages["avg"]
        longest = max(len(plugin_label(label, None)) for label in labels)
        fig, axes = new_figure(
            1.2 + 0.075 * longest + 3.0 * len(panels), 1.6 + 0.3 * len(labels), ncols=len(panels), sharey=True
        )
        for ax, panel in zip(axes, panels, strict=True):
            rows = []
            for y, label in enumerate(labels):
                if panel == frontier_.AVG:
                    stat = averaged.get(label)
                    if stat is None or math.isnan(stat.value):
                        continue
                    tied = stat.tie is not None and stat.tie.tied
                    rows.append((y, label, stat.value, stat.low, stat.high, tied, False))
                    continue
                mine = cells[(cells["attention_label"] == label) & (cells["task"] == panel)]
                if mine.empty:
                    continue
                cell = mine.iloc[0]
                tied = bool(cell["tied_best"]) if isinstance(cell["tied_best"], bool) else False
                rows.append(
                    (y, label, cell["mean"], cell["ci_low"], cell["ci_high"], tied, cell["status"] == FAIL)
                )
            for y, label, mean, low, high, tied, failed in rows:
                colour, marker = styles[label]
                if not (math.isnan(low) or math.isnan(high)):
                    ax.plot([low, high], [y, y], color=colour, linewidth=2.0, solid_capstyle="butt", zorder=2)
                ax.plot(
                    [mean],
                    [y],
                    marker=marker,
                    markersize=6,
                    color=colour,
                    markerfacecolor=colour if tied else "white",
                    markeredgewidth=1.5,
                    linestyle="",
                    alpha=0.5 if failed else 1.0,
                    zorder=3,
                )
            values = [v for row in rows for v in row[2:5] if not math.isnan(v)]
            if panel == frontier_.AVG:
                chances = [chance_and_fail(cells[cells["task"] == t])[0] for t in average_tasks(lb, preset)]
                chance, fail_line = (sum(chances) / len(chances) if chances else math.nan), math.nan
            else:
                chance, fail_line = chance_and_fail(cells[cells["task"] == panel])
            if not math.isnan(chance):
                ax.axvline(chance, color="black", linestyle="dashed", linewidth=1, zorder=1)
                values.append(chance)
            if not math.isnan(fail_line):
                ax.axvline(fail_line, color="tab:red", linestyle="dotted", linewidth=1.2, zorder=1)
                values.append(fail_line)
            if values:
                pad = max(1.0, 0.06 * (max(values) - min(values)))
                ax.set_xlim(min(values) - pad, max(values) + pad)
            ax.set_title("Avg over " + ", ".join(lb.task_title(t) for t in average_tasks(lb, preset))
                         if panel == frontier_.AVG else lb.task_title(panel), fontsize="medium")  # fmt: skip
            ax.set_xlabel("test accuracy (%)")
            ax.grid(True, axis="x", alpha=0.3)
            ax.set_ylim(len(labels) - 0.5, -0.5)
        axes[0].set_yticks(
            range(len(labels)), [plugin_label(label, None) for label in labels], fontsize="small"
        )
        handles = [
            Line2D([], [], marker="o", color="0.3", markerfacecolor="0.3", linestyle="",
                   label="cannot be told apart from the column's best (bold in the table)"),
            Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="",
                   label="resolved below the best (Holm-corrected tests at 0.05)"),
            Line2D([], [], color="0.3", linewidth=2.0, label="95% interval"),
            Line2D([], [], color="black", linestyle="dashed", linewidth=1, label="chance (most frequent label)"),
            Line2D([], [], color="tab:red", linestyle="dotted", linewidth=1.2, label="FAIL line (chance + 2 SE)"),
        ]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
        seeds = sorted({int(v) for v in cells["seeds"]})
        fig.suptitle(
            f"Test accuracy with 95% intervals, preset {preset} "
            f"({'one seed' if seeds == [1] else 'seeds ' + ', '.join(map(str, seeds))}; intervals: "
            + ("Clopper–Pearson" if seeds == [1] else "Clopper–Pearson for one seed, bootstrap for several")
            + ")",
            fontsize="medium",
        )
        figures.append((f"accuracy_{slug(preset)}.png", fig))
    return figures


def plot_accuracy(lb: Leaderboard, out_dir: str | os.PathLike[str]) -> list[Path]:
    """The accuracy figure of every preset table (module docstring), written under `out_dir`."""
    return [save_png(fig, Path(out_dir) / name) for name, fig in accuracy_figures(lb)]
