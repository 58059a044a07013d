"""``curves_<preset>_<task>.png``: validation accuracy over training steps (the records' `history`),
mean over seeds, with the range over seeds where there are several."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import slug

from ..leaderboard import Leaderboard
from .common import (
    label_styles,
    new_figure,
    save_png,
)


def _history_frame(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for run in runs.itertuples():
        if not isinstance(run.history, list):
            continue
        for point in run.history:
            if isinstance(point, dict) and point.get("val_acc") is not None and point.get("step") is not None:
                rows.append(
                    {
                        "preset": run.preset,
                        "task": run.task,
                        "attention_label": run.attention_label,
                        "seed": run.seed,
                        "step": point["step"],
                        "val_acc": float(point["val_acc"]) * 100,
                    }
                )
    return pd.DataFrame(rows, columns=["preset", "task", "attention_label", "seed", "step", "val_acc"])


def curve_figures(runs: pd.DataFrame, lb: Leaderboard) -> list[tuple[str, Any]]:
    """(file name, Figure) of the validation curves of every (preset, task): mean over seeds per
    attention, the range over seeds shaded where there are several, chance dashed, the legend
    beside the axes."""
    history = _history_frame(runs)
    figures = []
    for (preset, task), group in history.groupby(["preset", "task"], sort=True):
        labels = [label for label in lb.labels(preset) if label in set(group["attention_label"])]
        styles = label_styles(lb, preset)
        fig, (ax,) = new_figure(7.0 + 0.06 * max(len(label) for label in labels), 4.5)
        for label in labels:
            colour, marker = styles[label]
            curve = group[group["attention_label"] == label].groupby("step")["val_acc"]
            summary = curve.agg(["mean", "min", "max", "count"])
            ax.plot(
                summary.index,
                summary["mean"],
                color=colour,
                marker=marker,
                markersize=3,
                label=label,
                linewidth=1.3,
            )
            if (summary["count"] > 1).any():
                ax.fill_between(summary.index, summary["min"], summary["max"], color=colour, alpha=0.15)
        chance = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["task"] == task)]["chance"].dropna()
        if len(chance):
            ax.axhline(
                float(chance.iloc[0]) * 100,
                color="black",
                linestyle="dashed",
                linewidth=1,
                label="chance (test)",
            )
        seeds = int(group.groupby("attention_label")["seed"].nunique().max())
        ax.set_xlabel("training step")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(
            f"{lb.task_title(task)}, preset {preset}: validation accuracy"
            + (f" (mean over {seeds} seeds, shaded: their range)" if seeds > 1 else " (one seed)"),
            fontsize="medium",
        )
        ax.grid(True, alpha=0.3)
        fig.legend(loc="outside right upper", fontsize="small", frameon=False)
        figures.append((f"curves_{slug(preset)}_{slug(task)}.png", fig))
    return figures


def plot_curves(runs: pd.DataFrame, lb: Leaderboard, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Validation accuracy against step per task (`curve_figures`), written under `out_dir`."""
    return [save_png(fig, Path(out_dir) / name) for name, fig in curve_figures(runs, lb)]
