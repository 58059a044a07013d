"""Every report of a results folder, assembled in one place: what `lra suite` writes when its runs are
done (`write_suite_reports`), and what `lra leaderboard`, `lra compare`, `lra plot` and `lra report`
print and write (`leaderboard_report`, `comparison_report`, `frontier_report`, `figures_report`,
`html_report`).

Each builds its tables and figures from the records once and hands them on (the HTML page reuses
the leaderboard, the frontier and the figures of the same call). A report says what to print
(`Report.text`), which files it wrote (`Report.written`) and the warnings for stderr
(`Report.notes`); the command line only prints them.

No torch import: this reads records only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import compare, frontier, leaderboard, plots, report, store
from .published import load_published

# The files `write_suite_reports` writes at the top of a suite's folder.
LEADERBOARD_CSV, LEADERBOARD_MD, LONG_CSV = "leaderboard.csv", "leaderboard.md", "results_long.csv"
FRONTIER_MD, FRONTIER_CSV = "frontier.md", "frontier.csv"
PLOTS_DIR = "plots"

PathArg = str | os.PathLike[str]


@dataclass
class Report:
    """What a command prints (`text`), the files it wrote (`written`) and its warnings (`notes`)."""

    text: str = ""
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_results(root: PathArg) -> tuple[store.Store, list[str]]:
    """The records under `root` and one warning line per file skipped; ValueError (naming the command
    that writes some) when there are none."""
    st = store.load(root)
    if st.runs.empty and st.efficiency.empty:
        raise ValueError(f"no result records under {root}; run `lra suite --out {root}` first")
    return st, [f"warning: {problem}" for problem in st.problems]


def _written(*paths: PathArg | None) -> list[Path]:
    return [Path(p) for p in paths if p]


def leaderboard_report(
    st: store.Store,
    *,
    csv: PathArg | None = None,
    markdown: PathArg | None = None,
    long_csv: PathArg | None = None,
    published: bool = True,
    markdown_text: bool = False,
) -> Report:
    """The leaderboard of `st` as text (markdown with `markdown_text`), written as wide CSV, markdown
    and the long CSV of every run where asked; `published`: with the published rows of its attentions."""
    lb = leaderboard.build(st.runs)
    reference = load_published() if published else None
    text = leaderboard.render(lb, markdown=markdown_text, published=reference, skipped=st.invalid)
    leaderboard.write_all(lb, csv=csv, markdown=markdown, published=reference, skipped=st.invalid)
    if long_csv:
        store.write_long_csv(st.runs, long_csv)
    return Report(text, _written(csv, markdown, long_csv))


def comparison_report(
    st: store.Store,
    task: str,
    attentions: Sequence[str] = (),
    *,
    reference: str | None = None,
    csv: PathArg | None = None,
    markdown: PathArg | None = None,
    published: bool = True,
) -> Report:
    """Attentions compared on one task (results/compare.py), against `reference`; every attention
    with runs of the task when `attentions` is empty."""
    names = list(attentions) or compare.default_attentions(st.runs, task)
    table = compare.compare(st.runs, task, names, reference=reference)
    rows = load_published() if published else None
    text = compare.render_comparison(table, task, published=rows)
    compare.write_comparison(table, task, csv=csv, markdown=markdown, published=rows)
    return Report(text, _written(csv, markdown))


def frontier_report(
    st: store.Store,
    task: str | None = None,
    attentions: Sequence[str] = (),
    *,
    csv: PathArg | None = None,
    markdown: PathArg | None = None,
) -> Report:
    """The accuracy-cost frontier (Avg and every task, or `task` alone), written where asked."""
    text, warning = frontier.frontier_view(st, task, attentions, csv=csv, markdown=markdown)
    return Report(text, _written(csv, markdown), [warning] if warning else [])


def figures_report(st: store.Store, out_dir: PathArg, *, frontier_per_task: bool = False) -> Report:
    """Every figure of `st` (results/plots/) into `out_dir`, and the frontier's warnings (costs
    missing or unreliable)."""
    figures = plots.plot_all(st, out_dir, frontier_per_task=frontier_per_task)
    fr = frontier.build(st)
    notes = [line for line in (frontier.missing_cost_line(fr), frontier.unreliable_line(fr)) if line]
    return Report("", figures, notes)


def html_report(st: store.Store, root: PathArg, path: PathArg | None = None) -> Path:
    """The self-contained HTML page of `st` (results/report.py) at `path` (default
    `<root>/report.html`); its figures are drawn into `<root>/plots/`."""
    return report.write_report(root, st=st, path=path)


def write_suite_reports(root: PathArg, *, echo: Callable[[str], None] = print) -> list[Path]:
    """Print the leaderboard and the accuracy–cost frontier of every record under `root` and write
    leaderboard.csv, results_long.csv, leaderboard.md, frontier.md, frontier.csv, plots/ and
    report.html there (what `lra suite` does when its runs are done); returns the files written."""
    root = Path(root)
    st = store.load(root)
    for problem in st.problems:
        echo(f"warning: {problem}")
    if st.runs.empty:
        echo("no run records yet; nothing to tabulate")
        return []
    lb = leaderboard.build(st.runs)
    published = load_published()
    echo(leaderboard.render(lb, markdown=False, published=published, skipped=st.invalid))
    written = [root / LEADERBOARD_CSV, root / LEADERBOARD_MD, root / LONG_CSV]
    leaderboard.write_all(lb, csv=written[0], markdown=written[1], published=published, skipped=st.invalid)
    store.write_long_csv(st.runs, written[2])
    fr = frontier.build(st, lb)
    echo(frontier.render(fr, markdown=False, panels=[frontier.AVG]))
    warning = frontier.unreliable_line(fr)
    if warning:
        echo(warning)
    written += [root / FRONTIER_MD, root / FRONTIER_CSV]
    frontier.write_all(fr, markdown=written[-2], csv=written[-1])
    figures = plots.plot_all(st, root / PLOTS_DIR)
    written += figures
    written.append(report.write_report(root, st=st, lb=lb, fr=fr, figures=figures))
    echo("wrote " + ", ".join(str(p) for p in written))
    return written
