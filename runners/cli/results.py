"""`lra leaderboard`, `lra compare`, `lra plot`, `lra report`, `lra readme` (README: The suite, the
leaderboard and plots; library: results/reports.py assembles every report, results/readme.py the
README's tables).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..defaults import DEFAULT_RUNS_DIR
from ..specs import split_specs
from .common import UserError, user_errors

runs_dir_option = click.option(
    "--runs",
    "runs_dir",
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="A suite's --out directory, or any directory of result records (read recursively).",
)


def load_results(runs_dir: str) -> Any:
    """The results store of `runs_dir`; skipped files are reported as warnings on stderr."""
    from results.reports import load_results as load

    st, warnings = load(runs_dir)
    for line in warnings:
        click.echo(line, err=True)
    return st


def show(report: Any) -> None:
    """Print a report (results/reports.py): its text, the files it wrote, its warnings on stderr."""
    if report.text:
        click.echo(report.text, nl=False)
    for path in report.written:
        click.echo(f"wrote {path}")
    for line in report.notes:
        click.echo(line, err=True)


@click.command("leaderboard")
@runs_dir_option
@click.option(
    "--csv",
    "csv_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the wide leaderboard (one row per attention, columns per task) as CSV.",
)
@click.option(
    "--markdown",
    "markdown_path",
    default=None,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the markdown leaderboard (best per column in bold); '-' prints it instead of the text table.",
)
@click.option(
    "--long-csv",
    "long_csv_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write one row per run with every recorded field.",
)
@click.option(
    "--published/--no-published",
    default=True,
    show_default=True,
    help="Show the published rows (LRA paper, Nystromformer, Skyformer) of the attentions on the table in a separate block.",
)
@user_errors
def leaderboard_command(
    runs_dir: str, csv_path: str | None, markdown_path: str | None, long_csv_path: str | None, published: bool
) -> None:
    """Attentions x tasks: mean test accuracy over seeds (± std), FAIL at chance level, – when missing."""
    from results.reports import leaderboard_report

    to_stdout = markdown_path == "-"
    show(
        leaderboard_report(
            load_results(runs_dir),
            csv=csv_path,
            markdown=None if to_stdout else markdown_path,
            long_csv=long_csv_path,
            published=published,
            markdown_text=to_stdout,
        )
    )


@click.command("compare")
@click.option("--task", default=None, help="Task to compare on (required without --frontier).")
@click.option(
    "--attentions",
    default="",
    help="Comma-separated attention labels or names [default: every attention with runs of the task].",
)
@click.option(
    "--reference",
    default=None,
    metavar="ATTENTION",
    help="Label or name the ratios and the tests are against [default: full when it has runs of the "
    "task, else the first of --attentions].",
)
@runs_dir_option
@click.option(
    "--csv", "csv_path", default=None, type=click.Path(dir_okay=False), help="Write the numbers as CSV."
)
@click.option(
    "--markdown",
    "markdown_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write a markdown table.",
)
@click.option(
    "--frontier",
    is_flag=True,
    help="The accuracy-cost frontier instead: Avg (or --task) accuracy, speed "
    "and memory relative to full attention, Pareto frontier, per preset.",
)
@click.option(
    "--published/--no-published",
    default=True,
    show_default=True,
    help="Show the published accuracies of the compared attentions on the task in a separate block.",
)
@user_errors
def compare_command(
    task: str | None,
    attentions: str,
    reference: str | None,
    runs_dir: str,
    csv_path: str | None,
    markdown_path: str | None,
    frontier: bool,
    published: bool,
) -> None:
    """Accuracy (with 95% intervals), throughput, peak memory, parameters and keys per query of
    attentions on one task, and each attention's accuracy difference from the reference with its
    interval and p-value (paired tests where the runs kept per-example predictions, Holm-corrected);
    with --frontier, accuracy against speed and memory relative to full attention (Pareto frontier)."""
    from results.reports import comparison_report, frontier_report

    st = load_results(runs_dir)
    names = split_specs(attentions)
    if frontier:
        report = frontier_report(st, task, names, csv=csv_path, markdown=markdown_path)
        click.echo(report.text, nl=False)  # names the files it wrote
        for line in report.notes:
            click.echo(line, err=True)
        return
    if task is None:
        raise UserError("--task is required (or --frontier for every task and attention)")
    show(
        comparison_report(
            st, task, names, reference=reference, csv=csv_path, markdown=markdown_path, published=published
        )
    )


@click.command("plot")
@runs_dir_option
@click.option(
    "--out", default=None, type=click.Path(file_okay=False), help="Output directory [default: RUNS/plots]."
)
@click.option(
    "--frontier-per-task", is_flag=True, help="Also one panel per task in the accuracy-cost figure."
)
@user_errors
def plot_command(runs_dir: str, out: str | None, frontier_per_task: bool) -> None:
    """PNG figures: accuracy per task and attention, validation curves, speed / memory against
    sequence length when efficiency records (lra bench) are present, and accuracy against cost."""
    from results.reports import figures_report

    st = load_results(runs_dir)
    show(figures_report(st, out or f"{runs_dir}/plots", frontier_per_task=frontier_per_task))


@click.command("report")
@runs_dir_option
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="The HTML file to write [default: RUNS/report.html].",
)
@user_errors
def report_command(runs_dir: str, out: str | None) -> None:
    """One self-contained HTML page to send: the leaderboard (sortable), the accuracy-cost frontier,
    every figure, the cost tables, each run's configuration and provenance, and the commands that
    reproduce them. Opens offline (figures inlined, no external scripts); `lra suite` writes it too."""
    from results.reports import html_report

    st = load_results(runs_dir)
    click.echo(f"wrote {html_report(st, runs_dir, out)}")


@click.command("readme")
@click.option("--check", is_flag=True, help="Only check: exit 1 when a table differs from its records.")
@user_errors
def readme_command(check: bool) -> None:
    """Render the README's tables of measured numbers from the records they name (run it in the repository).

    Each table sits between `<!-- table NAME: rendered by `lra readme` from FOLDER -->` and
    `<!-- end table NAME -->`; a folder without records leaves its table as written.
    """
    from results.readme import update

    current, notes = update(".", check=check)
    for note in notes:
        click.echo(note, err=True)
    if check and not current:
        click.echo("README.md differs from its records; run `lra readme`", err=True)
        sys.exit(1)
    click.echo("README.md is up to date" if current else "README.md updated")
