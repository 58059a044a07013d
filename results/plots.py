"""Figures from the results store (matplotlib, Agg, PNG; written atomically).

* ``accuracy_<preset>.png`` -- test accuracy per task, one bar per attention, error bars = std over
  seeds, dashed line = the task's chance level;
* ``curves_<preset>_<task>.png`` -- validation accuracy over training steps (records' `history`),
  mean over seeds with a ±std band;
* ``efficiency_<bench>_<pass>_<device>_<dtype>_H<heads>_d<head dim>.png`` -- when efficiency
  records exist (`lra bench`): time per example and peak memory against sequence length, log-log,
  one line per attention (and backend);
* ``frontier_<preset>.png`` -- when the table has accuracies and costs (results/frontier.py): Avg
  accuracy against speed relative to full attention, circle area = peak memory relative to full
  attention, the Pareto frontier connected and labelled (the LRA paper's Figure 3), optionally one
  panel per task; the caption names where the costs come from, the machine and the lengths.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state), so plotting works
in threads, without a display, and never changes the caller's matplotlib backend.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import pandas as pd

from lra.io import atomic_path, slug

from . import frontier as frontier_
from .leaderboard import Leaderboard, build, task_title
from .records import plugin_label
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
            plugin = next((p for p in mine["plugin"] if isinstance(p, str)), None)
            ax.bar(
                xs,
                heights,
                width,
                yerr=errors,
                capsize=3,
                color=colours[label],
                label=plugin_label(label, plugin),
            )
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
            f"{plugin_label(str(label), plugin)} [{backend}]"
            if isinstance(backend, str) and backend
            else plugin_label(str(label), plugin)
            for label, plugin, backend in zip(
                efficiency["attention_label"],
                efficiency.reindex(columns=["plugin"])["plugin"],
                efficiency["backend"],
                strict=True,
            )
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


# Circle area (points²) of an attention with full attention's peak memory; areas scale linearly.
FRONTIER_AREA = 400.0
MIN_AREA = 8.0


def _ratio_tick(value: float, _position: object = None) -> str:
    return f"{value:g}×"


def _memory_legend_values(ratios: list[float]) -> list[float]:
    """Up to four powers of two spanning the memory ratios drawn (for the circle-size legend)."""
    finite = [r for r in ratios if r > 0 and not math.isnan(r)] or [1.0]
    low, high = round(math.log2(min(finite))), round(math.log2(max(finite)))
    exponents = list(range(min(low, high - 1), high + 1))
    step = max(1, math.ceil((len(exponents) - 1) / 3))
    picked = exponents[::step]
    if picked[-1] != exponents[-1]:
        picked.append(exponents[-1])
    return [2.0**e for e in picked]


def _frontier_panel(
    ax, fr: frontier_.Frontier, preset: str, panel: str, colours, chance: float
) -> list[float]:
    points = fr.panel(preset, panel)
    drawn = points[points["accuracy"].notna() & points["speed_vs_full"].notna()]
    memory = [float(m) for m in drawn["memory_vs_full"]]
    front = drawn[drawn["on_frontier"]].sort_values("speed_vs_full")
    if len(front) > 1:
        ax.plot(
            front["speed_vs_full"], front["accuracy"], color="0.35", linewidth=1.2, linestyle="--", zorder=1
        )
    ax.axvline(1.0, color="0.6", linewidth=0.8, linestyle=":", zorder=0)
    if not math.isnan(chance):
        ax.axhline(chance, color="black", linewidth=0.8, linestyle="dashed", zorder=0)
    for point in drawn.itertuples():
        colour = colours[point.attention_label]
        known = not math.isnan(point.memory_vs_full)
        area = max(MIN_AREA, FRONTIER_AREA * point.memory_vs_full) if known else MIN_AREA
        hollow = point.status == frontier_.FAIL
        ax.scatter(
            point.speed_vs_full,
            point.accuracy,
            s=area,
            facecolors="none" if hollow else [colour],
            edgecolors=[colour],
            alpha=0.55 if not hollow else 1.0,
            linewidths=1.5 if point.on_frontier else 1.0,
            marker="o" if known else "x",
            zorder=2,
        )
        ax.scatter(point.speed_vs_full, point.accuracy, s=6, color="black", zorder=3)
        text = plugin_label(point.attention_label, point.plugin) + (" (FAIL)" if hollow else "")
        if isinstance(point.cost_unreliable, str) and point.cost_unreliable:
            text += f" {frontier_.MARK}"  # an unreliable speed ratio (the caption says why)
        ax.annotate(
            text,
            (point.speed_vs_full, point.accuracy),
            xytext=(math.sqrt(area) / 2 + 3, 0),  # right of the circle's edge
            textcoords="offset points",
            va="center",
            fontsize=8,
            fontweight="bold" if point.on_frontier else "normal",
            zorder=4,
        )
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_tick))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    speeds = [float(v) for v in drawn["speed_vs_full"]] + [1.0]
    ax.set_xlim(min(speeds) / 1.6, max(speeds) * 1.9)  # room for the labels on the right
    accuracies = [float(v) for v in drawn["accuracy"]] + ([] if math.isnan(chance) else [chance])
    pad = max(2.0, 0.12 * (max(accuracies) - min(accuracies)))
    ax.set_ylim(min(accuracies) - pad, max(accuracies) + pad)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("speed relative to full attention (log scale)")
    if panel == frontier_.AVG:
        tasks = fr.tasks(preset)
        ax.set_ylabel(
            "Avg test accuracy (%)" if len(tasks) > 1 else f"{task_title(tasks[0])} test accuracy (%)"
        )
        ax.set_title(
            "Avg over " + ", ".join(task_title(t) for t in tasks) if len(tasks) > 1 else task_title(tasks[0])
        )
    else:
        ax.set_ylabel(f"{task_title(panel)} test accuracy (%)")
        ax.set_title(
            f"{task_title(panel)} (N={drawn['seq_len'].dropna().iloc[0]:.0f})"
            if drawn["seq_len"].notna().any()
            else task_title(panel)
        )
    return memory


def frontier_notes(fr: frontier_.Frontier, preset: str, panels: list[str]) -> list[str]:
    """The caption under the accuracy–cost figure: where the costs come from (machine, lengths),
    how to read it, and the attentions that could not be drawn."""
    tasks = fr.tasks(preset)
    notes = [fr.caption(preset)]
    notes.append(
        "Circle area: peak memory relative to full attention; hollow: FAIL (at chance); dashed line: the "
        "Pareto frontier (bold labels: no other attention is at least as accurate and at least as fast); "
        "dotted: full attention; black dashes: chance"
        + (" (Avg: mean over tasks)." if len(tasks) > 1 else ".")
    )
    without = {}
    for panel in panels:
        missing = fr.without_cost(preset, panel)
        if missing:
            without.setdefault(", ".join(missing), []).append(
                "Avg" if panel == frontier_.AVG else task_title(panel)
            )
    for missing, where in without.items():
        scope = f" ({', '.join(where)})" if len(panels) > 1 else ""
        notes.append(f"Without a cost{scope}, not drawn: {missing}.")
    empty = [
        "Avg" if panel == frontier_.AVG else task_title(panel)
        for panel in panels
        if not fr.panel(preset, panel)["on_frontier"].any()
    ]
    if empty:
        notes.append(
            f"{', '.join(empty)}: no attention with a cost is above chance, so there is no frontier."
        )
    if frontier_.AVG in panels:
        partial = fr.without_accuracy(preset)
        if partial:
            notes.append("Without an accuracy on every task (no Avg, not drawn): " + ", ".join(partial) + ".")
    return notes


def plot_frontier(
    fr: frontier_.Frontier, lb: Leaderboard, out_dir: str | os.PathLike[str], *, per_task: bool = False
) -> list[Path]:
    """The accuracy–cost figure of every preset table that has accuracies and costs (the LRA
    paper's Figure 3): y = Avg test accuracy (with `per_task`, one more panel per task; the tasks
    alone when no attention has an Avg), x = speed relative to full attention (log scale), circle
    area = peak memory relative to full attention, the Pareto frontier dashed and its attentions
    in bold. Hollow circles: FAIL (at chance). The caption under the figure names where the costs
    come from, the machine and the lengths, and lists the attentions without a cost."""
    from matplotlib.lines import Line2D

    paths = []
    for preset in fr.presets:
        if not fr.has_cost(preset):
            continue
        tasks = fr.tasks(preset)
        drawable = [
            p
            for p in [frontier_.AVG, *tasks]
            if not fr.panel(preset, p)[["accuracy", "speed_vs_full"]].dropna().empty
        ]
        panels = [p for p in drawable if p == frontier_.AVG or per_task or frontier_.AVG not in drawable]
        if len(tasks) == 1:
            panels = panels[:1]  # the task's panel would repeat the Avg one
        colours = _colours(lb.labels(preset))
        cells = lb.cells[lb.cells["preset"] == preset]
        chances = {t: float(cells[cells["task"] == t]["chance"].dropna().mean()) * 100 for t in tasks}
        notes = frontier_notes(fr, preset, panels)
        width = 6.0 * len(panels) + 2.2
        wrapped = [textwrap.fill(note.replace("`", ""), width=int(width * 15)) for note in notes]
        lines = sum(text.count("\n") + 1 for text in wrapped)
        caption_height = 0.16 * lines + 0.15
        height = 4.8 + caption_height
        fig, axes = _figure(width, height, ncols=len(panels))
        fig.get_layout_engine().set(rect=(0, caption_height / height, 1, 1 - caption_height / height))
        memory: list[float] = []
        for ax, panel in zip(axes, panels, strict=True):
            chance = (
                sum(chances.values()) / len(chances)
                if panel == frontier_.AVG
                else chances.get(panel, math.nan)
            )
            memory += _frontier_panel(ax, fr, preset, panel, colours, chance)
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=math.sqrt(max(MIN_AREA, FRONTIER_AREA * v)),
                markerfacecolor="0.7",
                markeredgecolor="0.4",
                label=f"{v:g}× memory",
            )
            for v in _memory_legend_values(memory)
        ]
        if (
            fr.points[(fr.points["preset"] == preset) & fr.points["panel"].isin(panels)]["on_frontier"].sum()
            > 1
        ):
            handles.append(Line2D([], [], color="0.35", linestyle="--", label="Pareto frontier"))
        fig.legend(
            handles=handles,
            loc="outside right upper",
            fontsize="small",
            title="peak memory\nvs full",
            title_fontsize="small",
            labelspacing=1.6,
            borderpad=1.0,
            handlelength=2.5,
            handletextpad=1.2,
        )
        fig.suptitle(f"Accuracy and cost, preset {preset}")
        fig.text(0.01, caption_height / height - 0.01, "\n".join(wrapped), va="top", ha="left", fontsize=8)
        paths.append(_save(fig, Path(out_dir) / f"frontier_{slug(preset)}.png"))
    return paths


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
