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
* ``frontier_<preset>.png`` -- when the table has accuracies and costs (results/frontier.py): Avg
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

import hashlib
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import atomic_path, slug

from . import frontier as frontier_
from .leaderboard import ATTENTION_ORDER, FAIL, Leaderboard, average_tasks, build, task_title
from .records import plugin_label
from .store import Store

DPI = 150
# Markers telling apart several labels of one attention (same colour), in table order.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def _figure(width: float, height: float, ncols: int = 1, **kwargs: Any):  # -> (Figure, list[Axes])
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, **kwargs)[0]
    return fig, list(axes)


def _save(fig, path: Path) -> Path:  # fig: matplotlib Figure
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def attention_colour(attention: str) -> tuple[float, ...]:
    """The colour of an attention (registry name) in every figure: the registry's order through
    tab20, its ten dark shades first, then the light ones (neighbours in the tables differ in hue);
    attentions outside the registry (plugins) from tab20b, by a stable hash of the name."""
    from matplotlib import colormaps

    if attention in ATTENTION_ORDER:
        i = ATTENTION_ORDER.index(attention)
        return tuple(colormaps["tab20"]((2 * i) % 20 + (i // 10) % 2))
    digest = int(hashlib.sha256(attention.encode()).hexdigest(), 16)
    return tuple(colormaps["tab20b"](digest % 20))


def _styles(pairs: Sequence[tuple[str, str]]) -> dict[str, tuple[tuple[float, ...], str]]:
    """(colour, marker) per label, from its (attention, label) pair: the attention's colour, and a
    marker per label of that attention in the order given."""
    seen: dict[str, int] = {}
    out = {}
    for attention, label in pairs:
        if label in out:
            continue
        k = seen.get(attention, 0)
        seen[attention] = k + 1
        out[label] = (attention_colour(attention), MARKERS[k % len(MARKERS)])
    return out


def _label_styles(lb: Leaderboard, preset: str) -> dict[str, tuple[tuple[float, ...], str]]:
    cells = lb.cells[lb.cells["preset"] == preset]
    attention_of = dict(zip(cells["attention_label"], cells["attention"], strict=True))
    return _styles([(attention_of[label], label) for label in lb.labels(preset)])


def _chance_and_fail(cells: pd.DataFrame) -> tuple[float, float]:
    """A column's chance level and FAIL line in % (their medians over its cells)."""
    chance = pd.to_numeric(cells["chance"], errors="coerce").dropna()
    threshold = pd.to_numeric(cells["threshold"], errors="coerce").dropna()
    return (
        float(chance.median()) * 100 if len(chance) else math.nan,
        float(threshold.median()) * 100 if len(threshold) else math.nan,
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
        styles = _label_styles(lb, preset)
        panels = _accuracy_panels(lb, preset)
        averaged = lb.stats[preset].averages["avg"]
        longest = max(len(plugin_label(label, None)) for label in labels)
        fig, axes = _figure(
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
                chances = [_chance_and_fail(cells[cells["task"] == t])[0] for t in average_tasks(lb, preset)]
                chance, fail_line = (sum(chances) / len(chances) if chances else math.nan), math.nan
            else:
                chance, fail_line = _chance_and_fail(cells[cells["task"] == panel])
            if not math.isnan(chance):
                ax.axvline(chance, color="black", linestyle="dashed", linewidth=1, zorder=1)
                values.append(chance)
            if not math.isnan(fail_line):
                ax.axvline(fail_line, color="tab:red", linestyle="dotted", linewidth=1.2, zorder=1)
                values.append(fail_line)
            if values:
                pad = max(1.0, 0.06 * (max(values) - min(values)))
                ax.set_xlim(min(values) - pad, max(values) + pad)
            ax.set_title("Avg over " + ", ".join(task_title(t) for t in average_tasks(lb, preset))
                         if panel == frontier_.AVG else task_title(panel), fontsize="medium")  # fmt: skip
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
    return [_save(fig, Path(out_dir) / name) for name, fig in accuracy_figures(lb)]


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
        styles = _label_styles(lb, preset)
        fig, (ax,) = _figure(7.0 + 0.06 * max(len(label) for label in labels), 4.5)
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
            f"{task_title(task)}, preset {preset}: validation accuracy"
            + (f" (mean over {seeds} seeds, shaded: their range)" if seeds > 1 else " (one seed)"),
            fontsize="medium",
        )
        ax.grid(True, alpha=0.3)
        fig.legend(loc="outside right upper", fontsize="small", frameon=False)
        figures.append((f"curves_{slug(preset)}_{slug(task)}.png", fig))
    return figures


def plot_curves(runs: pd.DataFrame, lb: Leaderboard, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Validation accuracy against step per task (`curve_figures`), written under `out_dir`."""
    return [_save(fig, Path(out_dir) / name) for name, fig in curve_figures(runs, lb)]


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
        attention_of = dict(zip(group["series"], group["attention"].astype(str), strict=False))
        styles = _styles([(attention_of[name], name) for name in series])
        colours = {name: colour for name, (colour, _) in styles.items()}
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
        fig.legend(
            *ax_time.get_legend_handles_labels(), loc="outside right upper", fontsize="x-small", frameon=False
        )
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
    ax, fr: frontier_.Frontier, preset: str, panel: str, styles, numbers: dict[str, int], chance: float
) -> tuple[list[float], list[Any]]:
    """Draw one panel; returns the memory ratios drawn and the number labels (placed later)."""
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
    texts = []
    for point in drawn.itertuples():
        colour, _ = styles[point.attention_label]
        known = not math.isnan(point.memory_vs_full)
        area = max(MIN_AREA, FRONTIER_AREA * point.memory_vs_full) if known else MIN_AREA
        hollow = point.status == frontier_.FAIL
        if not (math.isnan(point.ci_low) or math.isnan(point.ci_high)):
            ax.errorbar(
                point.speed_vs_full,
                point.accuracy,
                yerr=[[point.accuracy - point.ci_low], [point.ci_high - point.accuracy]],
                fmt="none",
                ecolor=colour,
                elinewidth=1.2,
                capsize=2.5,
                zorder=2,
            )
        ax.scatter(
            point.speed_vs_full,
            point.accuracy,
            s=area,
            facecolors="none" if hollow else [colour],
            edgecolors=[colour],
            alpha=0.35 if not hollow else 1.0,
            linewidths=1.5 if point.on_frontier else 1.0,
            marker="o" if known else "x",
            zorder=2,
        )
        ax.scatter(point.speed_vs_full, point.accuracy, s=6, color="black", zorder=3)
        label = str(numbers[point.attention_label])
        if isinstance(point.cost_unreliable, str) and point.cost_unreliable:
            label += f" {frontier_.MARK}"  # an unreliable speed ratio (the caption says why)
        texts.append(
            ax.text(
                point.speed_vs_full,
                point.accuracy,
                label,
                fontsize=7.5,
                fontweight="bold" if point.on_frontier else "normal",
                ha="center",
                va="center",
                zorder=4,
            )
        )
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(_ratio_tick))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    speeds = [float(v) for v in drawn["speed_vs_full"]] + [1.0]
    ax.set_xlim(min(speeds) / 1.35, max(speeds) * 1.35)
    # the accuracies and their intervals fill the axis; chance is drawn when it falls inside
    accuracies = [float(v) for column in ("accuracy", "ci_low", "ci_high") for v in drawn[column].dropna()]
    pad = max(1.0, 0.06 * (max(accuracies) - min(accuracies)))
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
    return memory, texts


def frontier_notes(fr: frontier_.Frontier, preset: str, panels: list[str]) -> list[str]:
    """The caption under the accuracy–cost figure: where the costs come from (machine, lengths),
    how to read it, and the attentions that could not be drawn."""
    tasks = fr.tasks(preset)
    notes = [fr.caption(preset)]
    notes.append(
        "Numbers: the attentions of the key (bold: on the Pareto frontier, no other attention at least as "
        "accurate and at least as fast). Bars: 95% intervals of the accuracy (Clopper–Pearson for one seed, "
        "bootstrap over seeds and examples for several"
        + ("; Avg: each task resampled independently" if len(tasks) > 1 else "")
        + "). Key: ✓ on the frontier; ✓≈ on it only within noise (an attention at least as fast cannot be told "
        "apart in accuracy); ≈ off it only within noise (no attention dominating it is resolved as more "
        "accurate). Circle area: peak memory relative to full attention; hollow: FAIL (at chance); dashed "
        "line: the frontier; dotted: full attention; black dashes: chance, where it falls in view"
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


def _key_mark(points: pd.DataFrame) -> str:
    """The frontier mark of one attention in the key, from its point of the first panel."""
    if points.empty:
        return ""
    point = points.iloc[0]
    if bool(point["on_frontier"]):
        return " ✓≈" if bool(point["within_noise"]) else " ✓"
    return " ≈" if bool(point["within_noise"]) else ""


def _make_room(fig, grid, upper, lower, margin_px: float = 12.0) -> None:
    """Grow the figure's first grid row until legend `upper` clears legend `lower` below it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    for _ in range(4):
        canvas.draw()
        renderer = canvas.get_renderer()
        gap = upper.get_window_extent(renderer).y0 - lower.get_window_extent(renderer).y1
        if gap >= margin_px:
            return
        width, height = fig.get_size_inches()
        extra = (margin_px - gap) / fig.dpi + 0.05
        ratios = grid.get_height_ratios()
        grid.set_height_ratios([ratios[0] + extra, *ratios[1:]])
        fig.set_size_inches(width, height + extra)


def _place_numbers(fig, texts_by_axis: list[tuple[Any, list[Any]]]) -> None:
    """Move each panel's numbers clear of one another and of the points (adjustText), with a thin
    line to the point where one had to move, once the layout is final; then freeze the layout."""
    from adjustText import adjust_text

    fig.draw_without_rendering()  # the constrained layout settles the axes first
    for ax, texts in texts_by_axis:
        if not texts:
            continue
        xs = [t.get_position()[0] for t in texts]
        ys = [t.get_position()[1] for t in texts]
        adjust_text(
            texts,
            x=xs,
            y=ys,
            ax=ax,
            expand=(1.4, 1.6),
            force_text=(0.3, 0.5),
            force_static=(0.2, 0.4),
            arrowprops={"arrowstyle": "-", "color": "0.45", "linewidth": 0.5},
            min_arrow_len=4,
        )
    fig.set_layout_engine("none")  # keep the positions the numbers were placed for


def frontier_figures(
    fr: frontier_.Frontier, lb: Leaderboard, *, per_task: bool = False
) -> list[tuple[str, Any]]:
    """(file name, Figure) of the accuracy–cost figure of every preset table that has accuracies and
    costs (the LRA paper's Figure 3): y = Avg test accuracy with its 95% interval (with `per_task`,
    one more panel per task; the tasks alone when no attention has an Avg), x = speed relative to
    full attention (log scale), circle area = peak memory relative to full attention, the Pareto
    frontier dashed. Each attention is a number (bold on the frontier), named in the key beside the
    axes with its frontier mark. Hollow circles: FAIL (at chance). The caption under the figure names
    where the costs come from, the machine and the lengths, and lists the attentions without a cost."""
    from matplotlib.lines import Line2D

    figures = []
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
        styles = _label_styles(lb, preset)
        shown = fr.points[(fr.points["preset"] == preset) & fr.points["panel"].isin(panels)]
        drawn_labels = set(
            shown[shown["accuracy"].notna() & shown["speed_vs_full"].notna()]["attention_label"]
        )
        ordered = [label for label in lb.labels(preset) if label in drawn_labels]
        numbers = {label: k for k, label in enumerate(ordered, start=1)}
        cells = lb.cells[lb.cells["preset"] == preset]
        chances = {t: float(cells[cells["task"] == t]["chance"].dropna().mean()) * 100 for t in tasks}
        notes = frontier_notes(fr, preset, panels)
        longest = max((len(plugin_label(label, None)) for label in ordered), default=10)
        key_width = 1.2 + 0.075 * longest
        width = 6.0 * len(panels) + key_width
        wrapped = [textwrap.fill(note.replace("`", ""), width=int(width * 14)) for note in notes]
        lines = sum(text.count("\n") + 1 for text in wrapped)
        caption_height = 0.14 * lines + 0.1
        # the key's column holds the attentions' key above the circle sizes: room for both
        size_values = _memory_legend_values(
            [float(m) for m in shown["memory_vs_full"].dropna()]
            if shown["memory_vs_full"].notna().any()
            else [1.0]
        )
        biggest = max(math.sqrt(max(MIN_AREA, FRONTIER_AREA * v)) for v in size_values)  # marker, points
        rows = len(size_values) + 2  # circles, the interval, the frontier line
        sizes_height = 0.4 + rows * (max(biggest, 10.0) + 4.0) / 72
        main_height = max(5.6, 0.55 + 0.205 * len(ordered) + sizes_height)
        from matplotlib.figure import Figure

        # panels | key, over a caption row: every part is an axes, so the layout keeps them apart
        fig = Figure(figsize=(width, main_height + caption_height), layout="constrained")
        grid = fig.add_gridspec(
            2, len(panels) + 1, width_ratios=[6.0] * len(panels) + [key_width],
            height_ratios=[main_height, caption_height],
        )  # fmt: skip
        axes = [fig.add_subplot(grid[0, i]) for i in range(len(panels))]
        key_ax, caption_ax = fig.add_subplot(grid[0, -1]), fig.add_subplot(grid[1, :])
        key_ax.axis("off")
        caption_ax.axis("off")
        memory: list[float] = []
        texts_by_axis = []
        for ax, panel in zip(axes, panels, strict=True):
            chance = (
                sum(chances.values()) / len(chances)
                if panel == frontier_.AVG
                else chances.get(panel, math.nan)
            )
            drawn_memory, texts = _frontier_panel(ax, fr, preset, panel, styles, numbers, chance)
            memory += drawn_memory
            texts_by_axis.append((ax, texts))
        first = fr.panel(preset, panels[0])
        key = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=6,
                markerfacecolor=styles[label][0],
                markeredgecolor=styles[label][0],
                label=f"{numbers[label]:>2}  {plugin_label(label, None)}"
                + _key_mark(first[first["attention_label"] == label]),
            )
            for label in ordered
        ]
        key_legend = key_ax.legend(
            handles=key,
            loc="upper left",
            fontsize="small",
            title="attention (number on the plot)",
            title_fontsize="small",
            frameon=False,
            borderaxespad=0.0,
        )
        key_ax.add_artist(key_legend)
        sizes = [
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
        sizes.append(
            Line2D([], [], color="0.3", marker="_", markersize=8, linewidth=1.2, label="95% interval")
        )
        if shown["on_frontier"].sum() > 1:
            sizes.append(Line2D([], [], color="0.35", linestyle="--", label="Pareto frontier"))
        sizes_legend = key_ax.legend(
            handles=sizes,
            loc="lower left",
            fontsize=8,
            title="peak memory vs full",
            title_fontsize="small",
            frameon=False,
            labelspacing=max(1.0, (biggest - 8.0) / 8.0 + 0.5),  # in font sizes: rows clear of the circles
            borderaxespad=0.0,
            handlelength=max(2.0, biggest / 8.0),
            handletextpad=1.0,
        )
        fig.suptitle(f"Accuracy and cost, preset {preset}")
        caption_ax.text(
            0.0, 1.0, "\n".join(wrapped), va="top", ha="left", fontsize=8, transform=caption_ax.transAxes
        )
        _make_room(fig, grid, key_legend, sizes_legend)
        _place_numbers(fig, texts_by_axis)
        figures.append((f"frontier_{slug(preset)}.png", fig))
    return figures


def plot_frontier(
    fr: frontier_.Frontier, lb: Leaderboard, out_dir: str | os.PathLike[str], *, per_task: bool = False
) -> list[Path]:
    """The accuracy–cost figures (`frontier_figures`), written under `out_dir`."""
    return [_save(fig, Path(out_dir) / name) for name, fig in frontier_figures(fr, lb, per_task=per_task)]


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
