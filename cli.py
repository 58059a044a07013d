"""`lra`: the command line of the LRA arena -- a thin click layer over library functions.

Every command parses and validates its options, then calls one library function. Bad input ends
with a one-line `Error: ...` naming the problem and the fix, and exit code 2 (no traceback).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

# ---------------------------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------------------------


class UserError(click.UsageError):
    """A problem with the user's input: printed as one line, exit code 2."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's ValueError / FileNotFoundError into a one-line usage error (exit code 2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError, KeyError) as err:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise UserError(message.splitlines()[0] if message else type(err).__name__) from None

    return wrapper


def parse_key_values(values: tuple[str, ...], option: str) -> dict[str, str]:
    """`key=value` pairs from a repeated option; a malformed one is a usage error."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="lra-arena", prog_name="lra")
def main() -> None:
    """LRA arena: which attention for long sequences, at what accuracy and what cost.

    \b
    lra run         train one task with one attention
    lra suite       run task x attention x seed grids and build the leaderboard
    lra list        the registered attentions and tasks
    """


# ---------------------------------------------------------------------------------------------
# lra list / lra info
# ---------------------------------------------------------------------------------------------


@main.group("list")
def list_group() -> None:
    """List what is registered."""


@list_group.command("attentions")
def list_attentions() -> None:
    """Registered attention mechanisms with their parameters."""
    import attention_zoo

    for name in attention_zoo.names():
        mech = attention_zoo.get(name)
        click.echo(f"{name:<12} {mech.summary}")
        click.echo(f"{'':<12} params: {mech.parameter_help()}")


# ---------------------------------------------------------------------------------------------
# lra data: generate / prepare / info   (library: lra/data, lra/tasks)
# ---------------------------------------------------------------------------------------------

# [section: data]

# ---------------------------------------------------------------------------------------------
# lra run   (library: runners/train.py)
# ---------------------------------------------------------------------------------------------

# [section: run]


@main.command("run")
@click.option("--task", default="listops", show_default=True, help="Task name (lra list tasks).")
@click.option("--attention", default="mita", show_default=True, help="Attention name (lra list attentions).")
@click.option("--attn-param", "attn_params", multiple=True, metavar="KEY=VALUE",
              help="Attention parameter, repeatable: --attn-param num_landmarks=64 --attn-param topk=64.")
@click.option("--preset", default="tiny", show_default=True, help="Preset: tiny, quick, pytorch or lra.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a preset field, repeatable: --set model.layers=3 --set train.lr=1e-3.")
@click.option("--data-dir", default=None, help="Data root (default $LRA_DATA_DIR or ./lra_data).")
@click.option("--source", default=None, help="Data source of the task (e.g. generated, lra_release, hf, tfds).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--max-steps", default=None, type=int, help="Total optimizer steps (the schedule follows).")
@click.option("--run-dir", default="", help="Output directory [default: lra_runs/runs/<task>/<attention>/<seed>].")
@click.option("--checkpoint-every", default=None, type=int, help="Steps between resumable checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--amp/--no-amp", default=None, help="Autocast on CUDA [default: as the preset says].")
@click.option("--nproc", default=1, show_default=True, type=int, help="DDP processes (launched with torchrun).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def run_command(task, attention, attn_params, preset, overrides, data_dir, source, seed, max_steps, run_dir,
                checkpoint_every, resume, device, amp, nproc, quiet) -> None:
    """Train TASK with one ATTENTION and report test accuracy (best-validation and last checkpoints).

    Without options: MiTA on generated ListOps with the tiny preset (a minute or two on a CPU).
    """
    from runners.train import RunConfig, launch, resolve, run

    cfg = RunConfig(
        task=task, attention=attention, attn_params=parse_key_values(attn_params, "--attn-param"),
        preset=preset, overrides=parse_key_values(overrides, "--set"), seed=seed, run_dir=run_dir,
        max_steps=max_steps, checkpoint_every=checkpoint_every, resume=resume, device=device, amp=amp,
        data_dir=data_dir, source=source, quiet=quiet,
    )
    resolved = resolve(cfg)
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1; got {nproc}")
    record = run(cfg) if nproc == 1 else launch(cfg, nproc)
    click.echo(format_run_summary(record, resolved.run_dir))
    if record["status"] != "ok":
        sys.exit(1)


def format_run_summary(record: dict[str, Any], run_dir: Any) -> str:
    """A few lines a person reads after a run."""

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.2f}%"

    lines = [
        f"{record['task']} / {record['attention_label']} / seed {record['seed']}: {record['status']}"
        + (f" ({record['error']})" if record.get("error") else ""),
        f"  test acc {pct(record['test_acc'])} (best val {pct(record['best_val_acc'])} at step {record['best_step']}); "
        f"last checkpoint: test {pct(record['test_acc_last'])}, val {pct(record['val_acc_last'])}",
        f"  chance {pct(record['chance_acc'])} · {record['steps']} steps · {record['params']} params · "
        f"{(record['train_tokens_per_s'] or 0):,.0f} tokens/s · {record['wall_time_s'] or 0:.0f} s",
        f"  record: {run_dir}/result.json",
    ]
    return "\n".join(lines)

# ---------------------------------------------------------------------------------------------
# lra suite / leaderboard / compare / plot   (library: runners/suite.py, results/)
# ---------------------------------------------------------------------------------------------

# [section: suite]

SUITE_OUT = "lra_runs"

runs_dir_option = click.option(
    "--runs",
    "runs_dir",
    default=SUITE_OUT,
    show_default=True,
    type=click.Path(file_okay=False),
    help="A suite's --out directory, or any directory of result records (read recursively).",
)


def parse_seeds(text: str) -> tuple[int, ...]:
    """`0,1,2` or `0-2` (or a mix, `0-2,7`) -> (0, 1, 2, ...); a malformed list is a usage error."""
    seeds: list[int] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        first, dash, last = item.partition("-")
        try:
            seeds += list(range(int(first), int(last) + 1)) if dash else [int(item)]
        except ValueError:
            raise UserError(f"--seeds expects integers or ranges like 0,1,2 or 0-4; got {item!r}") from None
    if not seeds:
        raise UserError("--seeds is empty; pass e.g. --seeds 0 or --seeds 0-2")
    return tuple(dict.fromkeys(seeds))


def parse_attn_params(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Repeated `NAME.KEY=VALUE` -> {name: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for item, value in parse_key_values(values, "--attn-param").items():
        name, dot, key = item.partition(".")
        if not dot or not name or not key:
            raise UserError(f"--attn-param expects NAME.KEY=VALUE (e.g. mita.topk=64); got {item}={value}")
        out.setdefault(name, {})[key] = value
    return out


def load_results(runs_dir: str) -> Any:
    """The results store of `runs_dir`; skipped files are reported as warnings on stderr."""
    from results import store

    st = store.load(runs_dir)
    for problem in st.problems:
        click.echo(f"warning: {problem}", err=True)
    if st.runs.empty and st.efficiency.empty:
        raise UserError(f"no result records under {runs_dir}; run `lra suite --out {runs_dir}` first")
    return st


@main.command("suite")
@click.option("--tasks", default="", help="Comma-separated tasks [default: listops,pathfinder for the tiny and "
              "quick presets (generated data), every task otherwise].")
@click.option("--attentions", default="", help="Comma-separated attentions, each optionally with parameters: "
              "full,mita(num_landmarks=64,topk=64) [default: every registered attention].")
@click.option("--seeds", default="0", show_default=True, help="Seeds: 0,1,2 or 0-2.")
@click.option("--preset", default="quick", show_default=True, help="Preset of every run: tiny, quick, pytorch or lra.")
@click.option("--out", default=SUITE_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output directory: runs in OUT/runs/<task>/<attention>/<seed>, tables and plots in OUT.")
@click.option("--jobs", default=1, show_default=True, type=int,
              help="Local runs in parallel, one process each; the CPU cores are split between them.")
@click.option("--launcher", type=click.Choice(["local", "submitit"]), default="local", show_default=True,
              help="local processes, or one SLURM job per run through submitit (pip install 'lra-arena[slurm]').")
@click.option("--attn-param", "attn_params", multiple=True, metavar="NAME.KEY=VALUE",
              help="Parameter of one attention for every run of it, repeatable: --attn-param mita.topk=64.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a preset field of every run, repeatable: --set train.steps=200.")
@click.option("--max-steps", default=None, type=int, help="Optimizer steps of every run (the schedule follows).")
@click.option("--checkpoint-every", default=None, type=int, help="Steps between resumable checkpoints.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--data-dir", default=None, help="Data root (default $LRA_DATA_DIR or ./lra_data).")
@click.option("--source", default=None, help="Data source of every task (e.g. generated, lra_release).")
@click.option("--dry-run", is_flag=True, help="Print the planned runs and what would happen to each; run nothing.")
@click.option("--slurm-partition", default=None, help="submitit: SLURM partition [default: the cluster's].")
@click.option("--slurm-time", default=240, show_default=True, type=int, help="submitit: minutes per run.")
@click.option("--slurm-gpus", default=1, show_default=True, type=int,
              help="submitit: GPUs per run (more than one: DDP with one process per GPU).")
@click.option("--slurm-mem", default=None, type=int, help="submitit: memory per run, GB [default: the cluster's].")
@click.option("--slurm-cpus", default=None, type=int, help="submitit: CPU cores per run [default: 4 per GPU].")
@user_errors
def suite_command(
    tasks: str, attentions: str, seeds: str, preset: str, out: str, jobs: int, launcher: str,
    attn_params: tuple[str, ...], overrides: tuple[str, ...], max_steps: int | None,
    checkpoint_every: int | None, device: str, data_dir: str | None, source: str | None, dry_run: bool,
    slurm_partition: str | None, slurm_time: int, slurm_gpus: int, slurm_mem: int | None,
    slurm_cpus: int | None,
) -> None:
    """Run every TASK x ATTENTION x SEED combination and build the leaderboard.

    Finished runs are skipped, failed or interrupted ones resume from their checkpoint, a crashed
    run is recorded as failed and the others go on; the exit code is 1 if any run failed. Safe to
    interrupt (Ctrl-C) and re-run. At the end: the leaderboard is printed and OUT/leaderboard.csv,
    OUT/leaderboard.md, OUT/results_long.csv and OUT/plots/*.png are written.

    \b
    lra suite --preset quick                                   # every attention, ListOps + Pathfinder
    lra suite --attentions full,mita --seeds 0-2 --jobs 2
    lra suite --preset pytorch --tasks listops --attentions 'mita(topk=64)' --launcher submitit --slurm-gpus 1
    """
    from runners import suite

    cfg = suite.SuiteConfig(
        tasks=tuple(suite.split_list(tasks)), attentions=tuple(suite.split_list(attentions)),
        seeds=parse_seeds(seeds), preset=preset, out=out, jobs=jobs, launcher=launcher,
        attn_params=parse_attn_params(attn_params), overrides=parse_key_values(overrides, "--set"),
        max_steps=max_steps, checkpoint_every=checkpoint_every, device=device, data_dir=data_dir, source=source,
        slurm=suite.SlurmOptions(partition=slurm_partition, time_min=slurm_time, gpus_per_run=slurm_gpus,
                                 mem_gb=slurm_mem, cpus_per_run=slurm_cpus),
    )
    if dry_run:
        cells = suite.plan(cfg)
        for cell in cells:
            click.echo(f"{suite.cell_state(cell):<9} {cell.run_id:<48} {cell.run_dir}")
        click.echo(f"{len(cells)} runs (done/diverged: skipped; resume/retry/new: run; stale: moved aside and rerun)")
        return
    try:
        result = suite.run_suite(cfg, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("\nInterrupted; the same command resumes where the runs stopped.", err=True)
        sys.exit(130)
    counts = result.counts()
    click.echo("runs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if result.exit_code:
        click.echo("some runs failed (see the table above and each run's log.txt); re-run to retry them", err=True)
    sys.exit(result.exit_code)


@main.command("leaderboard")
@runs_dir_option
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="Write the wide leaderboard (one row per attention, columns per task) as CSV.")
@click.option("--markdown", "markdown_path", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the markdown leaderboard (best per column in bold); '-' prints it instead of the text table.")
@click.option("--long-csv", "long_csv_path", default=None, type=click.Path(dir_okay=False),
              help="Write one row per run with every recorded field.")
@click.option("--published/--no-published", default=True, show_default=True,
              help="Show the published softmax rows (LRA paper, Nystromformer, Skyformer) in a separate block.")
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
        click.echo(leaderboard.render(lb, markdown=True, published=reference), nl=False)
        markdown_path = None
    else:
        click.echo(leaderboard.render(lb, markdown=False, published=reference), nl=False)
    leaderboard.write_all(lb, csv=csv_path, markdown=markdown_path, published=reference)
    if long_csv_path:
        store.write_long_csv(st.runs, long_csv_path)
    for path in (csv_path, markdown_path, long_csv_path):
        if path:
            click.echo(f"wrote {path}")


@main.command("compare")
@click.option("--task", required=True, help="Task to compare on.")
@click.option("--attentions", default="", help="Comma-separated attention labels or names, the first is the "
              "reference of the ratios [default: every attention with runs of the task].")
@runs_dir_option
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False), help="Write the numbers as CSV.")
@click.option("--markdown", "markdown_path", default=None, type=click.Path(dir_okay=False), help="Write a markdown table.")
@user_errors
def compare_command(task: str, attentions: str, runs_dir: str, csv_path: str | None, markdown_path: str | None) -> None:
    """Accuracy, throughput, peak memory, parameters and keys per query of attentions on one task."""
    from results import compare
    from runners.suite import split_list

    st = load_results(runs_dir)
    names = split_list(attentions) or compare.default_attentions(st.runs, task)
    table = compare.compare(st.runs, task, names)
    click.echo(compare.render_comparison(table, task), nl=False)
    compare.write_comparison(table, task, csv=csv_path, markdown=markdown_path)
    for path in (csv_path, markdown_path):
        if path:
            click.echo(f"wrote {path}")


@main.command("plot")
@runs_dir_option
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Output directory [default: RUNS/plots].")
@user_errors
def plot_command(runs_dir: str, out: str | None) -> None:
    """PNG figures: accuracy per task and attention, validation curves, and speed / memory against
    sequence length when efficiency records (lra bench) are present."""
    from results import plots

    st = load_results(runs_dir)
    for path in plots.plot_all(st, out or f"{runs_dir}/plots"):
        click.echo(f"wrote {path}")


# ---------------------------------------------------------------------------------------------
# lra bench   (library: runners/bench.py)
# ---------------------------------------------------------------------------------------------

# [section: bench]

# ---------------------------------------------------------------------------------------------
# lra sweep / swap: MiTA experiments   (library: runners/experiments.py)
# ---------------------------------------------------------------------------------------------

# [section: experiments]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
