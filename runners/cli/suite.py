"""`lra suite` (README: The suite, the leaderboard and plots; library: runners/suite/, its reports
results/reports.py).
"""

from __future__ import annotations

import sys

import click

from ..defaults import DEFAULT_RUNS_DIR
from ..specs import parse_key_values, parse_seeds, split_specs
from .common import (
    attn_param_option,
    attn_params_of,
    log_option,
    plugin_option,
    preset_option,
    training_options,
    user_errors,
)


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
