"""Figures from the results store (matplotlib, Agg, PNG; written atomically).

* ``accuracy_<preset>.png`` -- test accuracy per task, one bar per attention, error bars = std over
  seeds, dashed line = the task's chance level;
* ``curves_<preset>_<task>.png`` -- validation accuracy over training steps (records' `history`),
  mean over seeds with a ±std band;
* ``efficiency_<bench>_<pass>_<device>_<dtype>_H<heads>_d<head dim>.png`` -- when efficiency
  records exist (`lra bench`): time per example and peak memory against sequence length, log-log,
  one line per attention (and backend).

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state), so plotting works
in threads, without a display, and never changes the caller's matplotlib backend.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from lra.io import atomic_path, slug

from .leaderboard import Leaderboard, build, task_title
from .store import Store

DPI = 150


def _figure(width: float, height: float, ncols: int = 1):  # -> (Figure, list[Axes])
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig, path: Path) -> Path:  # fig: matplotlib Figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _colours(labels: list[str]) -> dict[str, tuple[float, ...]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def plot_accuracy(lb: Leaderboard, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Grouped bars of mean test accuracy (%) per task and attention, one figure per preset."""
    paths = []
    for preset in lb.presets:
        cells = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["seeds"] > 0)]
        if cells.empty:
            continue
        tasks, labels = lb.tasks(preset), lb.labels(preset)
        colours = _colours(labels)
        fig, (ax,) = _figure(max(7.0, 2.5 + 0.35 * len(tasks) * len(labels)), 4.5)
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            mine = cells[cells["attention_label"] == label].set_index("task")
            xs = [i - 0.4 + width * (j + 0.5) for i, t in enumerate(tasks) if t in mine.index]
            present = [t for t in tasks if t in mine.index]
            heights = [mine.loc[t, "mean"] for t in present]
            errors = [0.0 if math.isnan(mine.loc[t, "std"]) else mine.loc[t, "std"] for t in present]
            ax.bar(xs, heights, width, yerr=errors, capsize=3, color=colours[label], label=label)
        for i, task in enumerate(tasks):
            chance = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["task"] == task)]["chance"].dropna()
            if len(chance):
                level = float(chance.iloc[0]) * 100
                ax.hlines(
                    level,
                    i - 0.45,
                    i + 0.45,
                    colors="black",
                    linestyles="dashed",
                    linewidth=1,
                    label="chance" if i == 0 else None,
                )
        ax.set_xticks(range(len(tasks)), [task_title(t) for t in tasks])
        ax.set_ylabel("test accuracy (%), mean ± std over seeds")
        ax.set_ylim(0, 100)
        ax.set_title(f"Test accuracy, preset {preset}")
        fig.legend(loc="outside right upper", fontsize="small")
        paths.append(_save(fig, Path(out_dir) / f"accuracy_{slug(preset)}.png"))
    return paths


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


def plot_curves(runs: pd.DataFrame, lb: Leaderboard, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Validation accuracy against step per task, one line per attention (mean over seeds ± std)."""
    history = _history_frame(runs)
    paths = []
    for (preset, task), group in history.groupby(["preset", "task"], sort=True):
        labels = [label for label in lb.labels(preset) if label in set(group["attention_label"])]
        colours = _colours(lb.labels(preset))
        fig, (ax,) = _figure(7.0, 4.5)
        for label in labels:
            curve = group[group["attention_label"] == label].groupby("step")["val_acc"].agg(["mean", "std"])
            ax.plot(curve.index, curve["mean"], color=colours[label], label=label, linewidth=1.5)
            band = curve["std"].fillna(0.0)
            ax.fill_between(
                curve.index, curve["mean"] - band, curve["mean"] + band, color=colours[label], alpha=0.2
            )
        chance = lb.cells[(lb.cells["preset"] == preset) & (lb.cells["task"] == task)]["chance"].dropna()
        if len(chance):
            ax.axhline(
                float(chance.iloc[0]) * 100, color="black", linestyle="dashed", linewidth=1, label="chance"
            )
        ax.set_xlabel("training step")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"{task_title(task)}, preset {preset}: validation accuracy (mean over seeds ± std)")
        ax.legend(fontsize="small")
        paths.append(_save(fig, Path(out_dir) / f"curves_{slug(preset)}_{slug(task)}.png"))
    return paths


EFFICIENCY_GROUP = ["bench", "pass", "device", "dtype", "heads", "head_dim"]


def plot_efficiency(efficiency: pd.DataFrame, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Time per example and peak memory against sequence length (log-log), one figure per
    measurement setting (bench, pass, device, dtype, heads, head dim), one line per attention and
    backend. Time is the median per call divided by the batch (the model bench halves the batch
    where the full one runs out of memory: those points are drawn hollow, their memory is that of
    the smaller batch). Lengths that ran out of memory are named in the legend."""
    if efficiency.empty:
        return []
    paths = []
    frame = efficiency.assign(
        series=[
            f"{label} [{backend}]" if isinstance(backend, str) and backend else str(label)
            for label, backend in zip(efficiency["attention_label"], efficiency["backend"], strict=True)
        ],
        per_example=pd.to_numeric(efficiency["batch"], errors="coerce").fillna(1.0),
    )
    for keys, group in frame.groupby(EFFICIENCY_GROUP, sort=True, dropna=False):
        setting = dict(zip(EFFICIENCY_GROUP, keys, strict=True))
        series = sorted(group["series"].unique())
        colours = _colours(series)
        fig, (ax_time, ax_mem) = _figure(11.0, 4.5, ncols=2)
        full_batch = group["per_example"].max()
        for name in series:
            mine = group[group["series"] == name]
            ok = mine[(mine["status"] == "ok") & mine["time_ms_median"].notna()].sort_values("seq_len")
            failed = mine[mine["status"] != "ok"]
            legend = name + (f" (oom/error from N={int(failed['seq_len'].min())})" if len(failed) else "")
            if ok.empty:
                continue
            batch = ok["per_example"]
            median = ok["time_ms_median"] / batch
            lower = ((ok["time_ms_median"] - ok["time_ms_p20"]) / batch).clip(lower=0).fillna(0)
            upper = ((ok["time_ms_p80"] - ok["time_ms_median"]) / batch).clip(lower=0).fillna(0)
            colour = colours[name]
            ax_time.errorbar(
                ok["seq_len"], median, yerr=[lower, upper], color=colour, capsize=2, label=legend
            )
            memory = ok["peak_memory_bytes"] / 2**20
            ax_mem.plot(ok["seq_len"], memory, color=colour, label=legend)
            for ax, values in ((ax_time, median), (ax_mem, memory)):
                reduced = batch < full_batch
                ax.scatter(ok["seq_len"][~reduced], values[~reduced], s=12, color=colour)
                ax.scatter(
                    ok["seq_len"][reduced], values[reduced], s=12, facecolors="none", edgecolors=colour
                )
        for ax in (ax_time, ax_mem):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length N")
            ax.grid(True, which="both", alpha=0.3)
        ax_time.set_ylabel("time per example (ms)\nmedian per call / batch, bars p20-p80")
        ax_mem.set_ylabel("peak memory of a call (MiB)")
        ax_time.legend(fontsize="x-small")
        fig.suptitle(
            f"{setting['bench']} bench, {setting['pass']}, {setting['device']}, {setting['dtype']}, "
            f"H={_number(setting['heads'])}, d={_number(setting['head_dim'])}, batch {_number(full_batch)}"
            + (" (hollow: smaller batch that fits)" if (group["per_example"] < full_batch).any() else "")
        )
        name = "_".join(
            ["efficiency", *(slug(setting[k]) for k in ("bench", "pass", "device", "dtype"))]
            + [f"H{_number(setting['heads'])}", f"d{_number(setting['head_dim'])}"]
        )
        paths.append(_save(fig, Path(out_dir) / f"{name}.png"))
    return paths


def _number(value: object) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "na"
    return "na" if math.isnan(number) else f"{number:g}"


def plot_all(store: Store, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Every figure the store supports; returns the written paths."""
    lb = build(store.runs)
    return (
        plot_accuracy(lb, out_dir)
        + plot_curves(store.runs, lb, out_dir)
        + plot_efficiency(store.efficiency, out_dir)
    )
