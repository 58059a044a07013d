"""``frontier_<preset>.png``: Avg accuracy with its 95% interval against speed relative to full
attention (results/frontier/), circle area = peak memory relative to full attention, the Pareto
frontier connected, each attention a number placed clear of the others (adjustText) and named in a
key beside the axes, optionally one panel per task; the caption names where the costs come from."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from lra.io import slug

from .. import frontier as frontier_
from ..costs import MARK
from ..leaderboard import FAIL, Leaderboard
from ..records import plugin_label
from .common import (
    label_styles,
    save_png,
)

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
        hollow = point.status == FAIL
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
            label += f" {MARK}"  # an unreliable speed ratio (the caption says why)
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
            "Avg test accuracy (%)"
            if len(tasks) > 1
            else f"{fr.order.task_title(tasks[0])} test accuracy (%)"
        )
        ax.set_title(
            "Avg over " + ", ".join(fr.order.task_title(t) for t in tasks)
            if len(tasks) > 1
            else fr.order.task_title(tasks[0])
        )
    else:
        ax.set_ylabel(f"{fr.order.task_title(panel)} test accuracy (%)")
        ax.set_title(
            f"{fr.order.task_title(panel)} (N={drawn['seq_len'].dropna().iloc[0]:.0f})"
            if drawn["seq_len"].notna().any()
            else fr.order.task_title(panel)
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
    without: dict[str, list[str]] = {}
    for panel in panels:
        missing = fr.without_cost(preset, panel)
        if missing:
            without.setdefault(", ".join(missing), []).append(
                "Avg" if panel == frontier_.AVG else fr.order.task_title(panel)
            )
    for names, where in without.items():
        scope = f" ({', '.join(where)})" if len(panels) > 1 else ""
        notes.append(f"Without a cost{scope}, not drawn: {names}.")
    empty = [
        "Avg" if panel == frontier_.AVG else fr.order.task_title(panel)
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
        styles = label_styles(lb, preset)
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
    return [save_png(fig, Path(out_dir) / name) for name, fig in frontier_figures(fr, lb, per_task=per_task)]
