"""`lra suite`, `lra leaderboard`, `lra compare`, `lra plot` (README: The suite, the leaderboard and
plots; library: runners/suite.py, results/).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..defaults import DEFAULT_RUNS_DIR
from ..specs import parse_key_values, parse_seeds, split_specs
from .common import (
    UserError,
    attn_param_option,
    attn_params_of,
    log_option,
    plugin_option,
    preset_option,
    training_options,
    user_errors,
)

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
    from results import store

    st = store.load(runs_dir)
    for problem in st.problems:
        click.echo(f"warning: {problem}", err=True)
    if st.runs.empty and st.efficiency.empty:
        raise UserError(f"no result records under {runs_dir}; run `lra suite --out {runs_dir}` first")
    return st


@click.command("suite")
@click.option(
    "--tasks",
    default="",
    help="Comma-separated tasks [default: listops,pathfinder for the tiny and "
    "quick presets (generated data), every task otherwise].",
)
@click.option(
    "--attentions",
    default="",
    help="Comma-separated attentions, each optionally with parameters: "
    "full,mita(num_landmarks=64,topk=64) [default: every registered attention].",
)
@click.option("--seeds", default="0", show_default=True, help="Seeds: 0,1,2 or 0-2.")
@preset_option("quick")
@click.option(
    "--out",
    default=DEFAULT_RUNS_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output directory: runs in OUT/runs/<task>/<attention>/<seed>, tables and plots in OUT.",
)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=int,
    help="Local runs in parallel, one process each; the CPU cores are split between them.",
)
@click.option(
    "--launcher",
    type=click.Choice(["local", "submitit"]),
    default="local",
    show_default=True,
    help="local processes, or one SLURM job per run through submitit (pip install 'lra-arena[slurm]').",
)
@attn_param_option("--attn-param mita.topk=64")
@plugin_option
@training_options
@click.option("--checkpoint-every", default=None, type=int, help="Steps between resumable checkpoints.")
@click.option(
    "--dry-run", is_flag=True, help="Print the planned runs and what would happen to each; run nothing."
)
@click.option(
    "--max-minutes",
    default=None,
    type=float,
    metavar="M",
    help="Start no new run after M minutes (data preparation included); runs in progress finish, "
    "the same command continues with the runs left.",
)
@click.option("--slurm-partition", default=None, help="submitit: SLURM partition [default: the cluster's].")
@click.option("--slurm-time", default=240, show_default=True, type=int, help="submitit: minutes per run.")
@click.option(
    "--slurm-gpus",
    default=1,
    show_default=True,
    type=int,
    help="submitit: GPUs per run (more than one: DDP with one process per GPU).",
)
@click.option(
    "--slurm-mem", default=None, type=int, help="submitit: memory per run, GB [default: the cluster's]."
)
@click.option(
    "--slurm-cpus", default=None, type=int, help="submitit: CPU cores per run [default: 4 per GPU]."
)
@log_option
@user_errors
def suite_command(
    tasks: str,
    attentions: str,
    seeds: str,
    preset: str,
    out: str,
    jobs: int,
    launcher: str,
    attn_params: tuple[str, ...],
    overrides: tuple[str, ...],
    max_steps: int | None,
    checkpoint_every: int | None,
    device: str,
    data_dir: str | None,
    source: str | None,
    dry_run: bool,
    max_minutes: float | None,
    slurm_partition: str | None,
    slurm_time: int,
    slurm_gpus: int,
    slurm_mem: int | None,
    slurm_cpus: int | None,
    log: tuple[str, ...],
) -> None:
    """Run every TASK x ATTENTION x SEED combination and build the leaderboard.

    Finished runs are skipped, failed or interrupted ones resume from their checkpoint, a crashed
    run is recorded as failed and the others go on; the exit code is 1 if any run failed, else 75
    if runs were left to another process writing them (another suite on the same OUT). Safe to
    interrupt (Ctrl-C) and re-run. At the end: the leaderboard is printed and OUT/leaderboard.csv,
    OUT/leaderboard.md, OUT/results_long.csv, OUT/plots/*.png and OUT/report.html are written.

    \b
    lra suite --preset quick                                   # every attention, ListOps + Pathfinder
    lra suite --attentions full,mita --seeds 0-2 --jobs 2
    lra suite --preset pytorch --tasks listops --attentions 'mita(topk=64)' --launcher submitit --slurm-gpus 1
    """
    from runners import suite

    specs = split_specs(attentions)
    cfg = suite.SuiteConfig(
        tasks=tuple(split_specs(tasks)),
        attentions=tuple(specs),
        seeds=parse_seeds(seeds),
        preset=preset,
        out=out,
        jobs=jobs,
        launcher=launcher,
        attn_params=attn_params_of(attn_params, specs),
        overrides=parse_key_values(overrides, "--set"),
        max_steps=max_steps,
        checkpoint_every=checkpoint_every,
        device=device,
        data_dir=data_dir,
        source=source,
        slurm=suite.SlurmOptions(
            partition=slurm_partition,
            time_min=slurm_time,
            gpus_per_run=slurm_gpus,
            mem_gb=slurm_mem,
            cpus_per_run=slurm_cpus,
        ),
        max_minutes=max_minutes,
        log=tuple(log),
    )
    if dry_run:
        cells = suite.plan(cfg)
        for line in suite.resolution_lines(cells):
            click.echo(line)
        for cell in cells:
            click.echo(f"{suite.cell_state(cell):<9} {cell.run_id:<48} {cell.run_dir}")
        click.echo(
            f"{len(cells)} runs (done/diverged: skipped; resume/retry/new: run; stale (another configuration) "
            "and damaged (a checkpoint failing its integrity check): moved aside and rerun)"
        )
        return
    try:
        result = suite.run_suite(cfg, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("\nInterrupted; the same command resumes where the runs stopped.", err=True)
        sys.exit(130)
    counts = result.counts()
    click.echo("runs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if counts.get(suite.NOT_RUN):
        click.echo(
            f"{counts[suite.NOT_RUN]} runs not started: --max-minutes {max_minutes:g} was reached; "
            "the same command continues with them"
        )
    if counts.get("busy"):
        click.echo(
            f"{counts['busy']} runs are being written by another process (another lra suite or lra run on "
            f"{out}): left to it; run this command again once it is done to tabulate them",
            err=True,
        )
    if counts.get("failed"):
        click.echo(
            "some runs failed (see the table above and each run's log.txt); re-run to retry them", err=True
        )
    sys.exit(result.exit_code)


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
    from results import leaderboard, store
    from results.published import load_published

    st = load_results(runs_dir)
    lb = leaderboard.build(st.runs)
    reference = load_published() if published else None
    if markdown_path == "-":
        click.echo(leaderboard.render(lb, markdown=True, published=reference, skipped=st.invalid), nl=False)
        markdown_path = None
    else:
        click.echo(leaderboard.render(lb, markdown=False, published=reference, skipped=st.invalid), nl=False)
    leaderboard.write_all(lb, csv=csv_path, markdown=markdown_path, published=reference, skipped=st.invalid)
    if long_csv_path:
        store.write_long_csv(st.runs, long_csv_path)
    for path in (csv_path, markdown_path, long_csv_path):
        if path:
            click.echo(f"wrote {path}")


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
    from results import compare

    st = load_results(runs_dir)
    if frontier:
        from results.frontier import frontier_view

        text, warning = frontier_view(st, task, split_specs(attentions), csv=csv_path, markdown=markdown_path)
        click.echo(text, nl=False)
        if warning:
            click.echo(warning, err=True)
        return
    if task is None:
        raise UserError("--task is required (or --frontier for every task and attention)")
    from results.published import load_published

    names = split_specs(attentions) or compare.default_attentions(st.runs, task)
    table = compare.compare(st.runs, task, names, reference=reference)
    reference = load_published() if published else None
    click.echo(compare.render_comparison(table, task, published=reference), nl=False)
    compare.write_comparison(table, task, csv=csv_path, markdown=markdown_path, published=reference)
    for path in (csv_path, markdown_path):
        if path:
            click.echo(f"wrote {path}")


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
    from results import frontier, plots

    st = load_results(runs_dir)
    for path in plots.plot_all(st, out or f"{runs_dir}/plots", frontier_per_task=frontier_per_task):
        click.echo(f"wrote {path}")
    fr = frontier.build(st)
    for line in (frontier.missing_cost_line(fr), frontier.unreliable_line(fr)):
        if line:
            click.echo(line, err=True)


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
    from results.report import write_report

    st = load_results(runs_dir)
    click.echo(f"wrote {write_report(runs_dir, st=st, path=out)}")


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
