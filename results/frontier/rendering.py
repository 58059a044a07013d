"""The frontier as people read it: one table per panel with the caption of its costs, the footnotes,
the missing-cost hint, `frontier.csv` / `frontier.md` and `lra compare --frontier`."""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence

import pandas as pd

from lra.io import atomic_write, atomic_write_text

from ..costs import MARK, unreliable_warning
from ..leaderboard import FAIL, accuracy_text
from ..records import plugin_label
from ..store import Store
from .pareto import is_missing
from .points import AVG, Frontier, build

FOOTNOTES = (
    "Speed: examples per second relative to full attention on the same machine (> 1 is faster); memory: peak "
    "memory relative to full attention (< 1 is less). Avg: accuracy as in the leaderboard; speed and memory "
    "as geometric means of the per-task ratios.",
    "Frontier (✓): no other attention is at least as accurate and at least as fast while better on one of the "
    "two (accuracy compared at 0.01 points, speed at three significant digits; exact ties are all on it). "
    "FAIL points (at chance; in Avg: every task FAIL) and points without a cost take no part.",
    "Accuracy: mean [95% interval] as in the leaderboard. ✓ within noise: on the frontier, but an attention "
    "at least as fast cannot be told apart from it in accuracy, so with noise it may be dominated; within "
    "noise (no ✓): off the frontier, but no attention that dominates it is resolved as more accurate. Tests "
    "as the leaderboard's bold (paired where both kept per-example predictions), Holm over the attentions a "
    "point is compared with, at 0.05; speeds as measured.",
)


def ratio_text(value: float) -> str:
    """A relative speed or memory as the tables show it: three significant digits."""
    if is_missing(value):
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:#.3g}"


def _accuracy_text(value: float, status: str, low: float = math.nan, high: float = math.nan) -> str:
    if is_missing(value):
        return "–"
    return (f"{FAIL} " if status == FAIL else "") + accuracy_text(value, low, high)  # as the leaderboard


def frontier_mark(on_frontier: bool, within_noise: bool) -> str:
    """The Frontier column of the tables: "✓", "✓ within noise", "within noise" or ""."""
    if on_frontier:
        return "✓ within noise" if within_noise else "✓"
    return "within noise" if within_noise else ""


def panel_title(fr: Frontier, preset: str, panel: str) -> str:
    """The heading of a panel of a preset's frontier: "Avg over ListOps, Text" or the task's title."""
    title, tasks = fr.order.task_title, fr.tasks(preset)
    if panel != AVG:
        return title(panel)
    return "Avg over " + ", ".join(title(t) for t in tasks) if len(tasks) > 1 else title(tasks[0])


def table(fr: Frontier, preset: str, panel: str = AVG) -> pd.DataFrame:
    """The display table of one panel: Attention, accuracy, speed and memory vs full, frontier."""
    points = fr.panel(preset, panel)
    tasks = fr.tasks(preset)
    title = (
        "Avg" if panel == AVG and len(tasks) > 1 else fr.order.task_title(tasks[0] if panel == AVG else panel)
    )
    out = pd.DataFrame(
        {
            "Attention": [
                plugin_label(label, plugin)
                for label, plugin in zip(points["attention_label"], points["plugin"], strict=True)
            ],
            f"{title} accuracy (%) [95% CI]": [
                _accuracy_text(a, s, lo, hi)
                for a, s, lo, hi in zip(
                    points["accuracy"], points["status"], points["ci_low"], points["ci_high"], strict=True
                )
            ],
            "Speed vs full (×)": [
                ratio_text(v) + (MARK if isinstance(why, str) and why and not is_missing(v) else "")
                for v, why in zip(points["speed_vs_full"], points["cost_unreliable"], strict=True)
            ],
            "Memory vs full (×)": [ratio_text(v) for v in points["memory_vs_full"]],
            "Frontier": [
                frontier_mark(bool(on), bool(noise))
                for on, noise in zip(points["on_frontier"], points["within_noise"], strict=True)
            ],
        }
    )
    return out.reset_index(drop=True)


def render(fr: Frontier, *, markdown: bool = True, panels: Sequence[str] | None = None) -> str:
    """The frontier tables of every preset (Avg, then each task), with captions and footnotes.
    `panels` restricts the tables to those panels ("avg" and / or task names)."""
    fmt = "github" if markdown else "simple"
    heading = "## " if markdown else ""
    sub = "### " if markdown else ""
    parts: list[str] = []
    if fr.points.empty:
        parts.append("No finished runs.")
    for preset in fr.presets:
        parts.append(f"{heading}Accuracy–cost frontier, preset {preset}")
        parts.append(fr.caption(preset))
        tasks = fr.tasks(preset)
        shown = [
            p
            for p in fr.panels(preset)
            if (panels is None or p in panels)
            and not (p != AVG and AVG in fr.panels(preset) and len(tasks) == 1)
        ]  # a single task's table would repeat the Avg one
        without: dict[str, list[str]] = {}
        for panel in shown:
            name = panel_title(fr, preset, panel)
            if len(shown) > 1 or len(tasks) > 1:
                parts.append(f"{sub}{name}")
            parts.append(
                table(fr, preset, panel).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)
            )
            if fr.has_cost(preset) and not fr.panel(preset, panel)["on_frontier"].any():
                parts.append("No attention with a cost is above chance here, so there is no frontier.")
            missing = fr.without_cost(preset, panel)
            if missing:
                without.setdefault(", ".join(missing), []).append(name)
        for names, where in without.items():
            scope = f" ({'; '.join(where)})" if len(shown) > 1 else ""
            parts.append(f"Without a cost{scope}, not on the frontier: {names}")
        hint = missing_cost_line(fr, preset)
        if hint:
            parts.append(hint)
    if not fr.points.empty:
        parts.append("\n".join(f"- {note}" for note in FOOTNOTES))
    return "\n\n".join(parts) + "\n"


def unreliable_line(fr: Frontier) -> str | None:
    """One warning line when some speed ratios of the frontier are unreliable (results/costs.py)."""
    with_cost = fr.points[fr.points["speed_vs_full"].notna()]
    return unreliable_warning(
        len(fr.unreliable()), len(with_cost), "speed ratios of the accuracy–cost frontier"
    )


def missing_cost_line(fr: Frontier, preset: str | None = None) -> str | None:
    """One line naming the command that would produce a cost, when no attention of the table(s)
    has both an accuracy and a cost; None otherwise."""
    presets = [preset] if preset is not None else fr.presets
    if not presets or any(fr.has_cost(p) for p in presets):
        return None
    sources = [s for s in fr.sources if s.preset in presets]
    points = fr.points[fr.points["preset"].isin(presets)]
    labels = list(dict.fromkeys(["full", *points["attention_label"]]))
    lengths = sorted({s.seq_len for s in sources if s.seq_len is not None})
    reasons = "; ".join(
        dict.fromkeys(f"{fr.order.task_title(s.task)}: {s.reason}" for s in sources if s.reason)
    )
    command = ["lra", "bench", "model", "--attentions", ",".join(labels)]
    if lengths:
        command += ["--lengths", ",".join(str(n) for n in lengths)]
    command += ["--out", str(fr.root) if fr.root is not None else "RESULTS_DIR"]
    return f"no cost for the accuracy–cost frontier ({reasons}); `{shlex.join(command)}` measures one"


def frontier_view(
    store: Store,
    task: str | None = None,
    attentions: Sequence[str] = (),
    *,
    csv: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
) -> tuple[str, str | None]:
    """`lra compare --frontier`: (the frontier tables as text, Avg and every task or only `task`; the
    warning line about unreliable speed ratios, None without any), optionally written as CSV /
    markdown. ValueError when the task or an attention has no runs, or when no attention has a cost
    (naming the command that would measure one)."""
    fr = build(store, attentions=attentions)
    if fr.points.empty:
        raise ValueError(f"no finished runs under {store.root}; run `lra suite --out {store.root}` first")
    if task is not None:
        tasks = list(dict.fromkeys(s.task for s in fr.sources))
        if task not in tasks:
            raise ValueError(f"no runs of task {task!r} in the results; tasks with runs: {', '.join(tasks)}")
        fr = Frontier(
            points=fr.points[fr.points["panel"] == task],
            sources=[s for s in fr.sources if s.task == task],
            root=fr.root,
            order=fr.order,
        )
    missing = missing_cost_line(fr)
    if missing:
        raise ValueError(missing)
    write_all(fr, csv=csv, markdown=markdown)
    text = render(fr, markdown=False) + "".join(f"wrote {path}\n" for path in (csv, markdown) if path)
    return text, unreliable_line(fr)


def long_table(fr: Frontier) -> pd.DataFrame:
    """`frontier.csv`: one row per (preset, panel, attention label), `POINT_COLUMNS`."""
    return fr.points.reset_index(drop=True)


def write_all(
    fr: Frontier,
    *,
    csv: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
) -> None:
    """Atomically write `frontier.csv` and / or `frontier.md`."""
    if csv is not None:
        frame = long_table(fr)
        atomic_write(csv, lambda fh: frame.to_csv(fh, index=False, float_format="%.6g"))
    if markdown is not None:
        atomic_write_text(markdown, "# Accuracy and cost\n\n" + render(fr, markdown=True))
