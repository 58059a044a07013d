"""Figures from the results store (matplotlib, Agg, PNG; written atomically).

* ``accuracy_<preset>.png`` -- test accuracy per task (and Avg), one row per attention: the mean with
  its 95% interval (results/stats.py: Clopper–Pearson for one seed, the bootstrap over seeds and
  examples for several), filled where the leaderboard bolds the cell (it cannot be told apart from
  the column's best), hollow where the tests resolve it below; the axis spans the data, the chance
  level (dashed) and the FAIL line (dotted);
* ``curves_<preset>_<task>.png`` -- validation accuracy over training steps (records' `history`),
  mean over seeds, with the range over seeds where there are several;
* ``efficiency_<bench>_<pass>_<device>_<dtype>_H<heads>_d<head dim>.png`` -- when efficiency
  records exist (`lra bench`): time per example and peak memory against sequence length, log-log,
  one line per attention (and backend);
* ``frontier_<preset>.png`` -- when the table has accuracies and costs (results/frontier/): Avg
  accuracy with its 95% interval (error bars) against speed relative to full attention, circle
  area = peak memory relative to full attention, the Pareto frontier connected, each attention a
  number placed clear of the others (adjustText) and named in a key beside the axes, optionally
  one panel per task; the caption names where the costs come from, the machine and the lengths.

Every figure gives an attention the same colour (`attention_colour`: by registry name, so full
attention is the same blue everywhere); several labels of one attention differ by marker. Legends
and keys sit outside the axes. Figures are built with `matplotlib.figure.Figure` directly (no pyplot
state), so plotting works in threads, without a display, and never changes the caller's backend;
`figures(store)` returns them unsaved (the tests check that no two texts overlap).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import frontier as frontier_
from ..leaderboard import build
from ..store import Store
from .accuracy import accuracy_figures, plot_accuracy
from .common import DPI, MARKERS, attention_colour
from .curves import curve_figures, plot_curves
from .efficiency import EFFICIENCY_GROUP, plot_efficiency
from .frontier_figure import FRONTIER_AREA, MIN_AREA, frontier_figures, frontier_notes, plot_frontier


def figures(store: Store, *, frontier_per_task: bool = False) -> list[tuple[str, Any]]:
    """(file name, Figure) of the accuracy, curve and accuracy–cost figures of the store, unsaved."""
    lb = build(store.runs)
    return (
        accuracy_figures(lb)
        + curve_figures(store.runs, lb)
        + frontier_figures(frontier_.build(store, lb), lb, per_task=frontier_per_task)
    )


def plot_all(store: Store, out_dir: str | os.PathLike[str], *, frontier_per_task: bool = False) -> list[Path]:
    """Every figure the store supports; returns the written paths. `frontier_per_task` adds one
    panel per task to the accuracy–cost figure."""
    lb = build(store.runs)
    return (
        plot_accuracy(lb, out_dir)
        + plot_curves(store.runs, lb, out_dir)
        + plot_efficiency(store.efficiency, out_dir)
        + plot_frontier(frontier_.build(store, lb), lb, out_dir, per_task=frontier_per_task)
    )


__all__ = [
    "DPI",
    "EFFICIENCY_GROUP",
    "FRONTIER_AREA",
    "MARKERS",
    "MIN_AREA",
    "accuracy_figures",
    "attention_colour",
    "curve_figures",
    "figures",
    "frontier_figures",
    "frontier_notes",
    "plot_accuracy",
    "plot_all",
    "plot_curves",
    "plot_efficiency",
    "plot_frontier",
]
