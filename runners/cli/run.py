"""`lra run` (README: Training one run; library: runners/train/).

The attention spec is parsed once here (runners/specs.py) and the run resolved once
(`runners.train.resolve`): the resolved run, with its `AttentionSpec`, is what the smoke check,
the resolution line and the training itself receive.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from ..defaults import DEFAULT_RUNS_DIR
from ..specs import parse_attentions, parse_key_values
from .common import (
    UserError,
    attn_param_option,
    log_option,
    plugin_option,
    preset_option,
    training_options,
    user_errors,
)

DEFAULT_TASK = "listops"


@click.command("run")
@click.argument("task_argument", metavar="[TASK]", required=False, default=None)
@click.option(
    "--task",
    default=None,
    help=f"Task name (lra list tasks), the same as the TASK argument [default: {DEFAULT_TASK}].",
)
@click.option(
    "--attention",
    default="mita",
    show_default=True,
    metavar="SPEC",
    help="Attention, a name or name(key=value,...): mita, 'mita(topk=4)' (lra list attentions).",
)
@attn_param_option("--attn-param num_landmarks=64 --attn-param topk=64")
@plugin_option
@preset_option("tiny")
@training_options
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--run-dir",
    default="",
    help=f"Output directory [default: {DEFAULT_RUNS_DIR}/runs/<task>/<attention slug>/<seed>].",
)
@click.option("--checkpoint-every", default=None, type=int, help="Steps between resumable checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
@click.option("--amp/--no-amp", default=None, help="Autocast on CUDA [default: as the preset says].")
@click.option(
    "--nproc", default=1, show_default=True, type=int, help="DDP processes (launched with torchrun)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@log_option
@user_errors
def run_command(
    task_argument,
    task,
    attention,
    attn_params,
    preset,
    overrides,
    data_dir,
    source,
    seed,
    max_steps,
    run_dir,
    checkpoint_every,
    resume,
    device,
    amp,
    nproc,
    quiet,
    log,
) -> None:
    """Train TASK with one ATTENTION and report test accuracy (best-validation and last checkpoints).

    Without options: MiTA on generated ListOps with the tiny preset (a minute or two on a CPU).

    \b
    lra run listops --attention mita
    lra run pathfinder --attention 'mita(topk=4)' --preset quick
    """
    from pathlib import Path

    from attention_zoo.plugins import require_plugins
    from runners.plugin_checks import smoke_check
    from runners.train import (
        RunConfig,
        launch,
        planned_test_examples,
        recorded_plugins,
        resolution,
        resolve,
        run,
    )
    from runners.train.rundir import BUSY_EXIT_CODE, RunDirBusy

    task = _one_task(task_argument, task)
    if resume and run_dir:  # the plugin the run was trained with: named (--plugin) or trusted
        with warnings.catch_warnings():  # a changed plugin: `resolve` below warns, once
            warnings.simplefilter("ignore")
            require_plugins(recorded_plugins(Path(run_dir)), source=f"the run in {run_dir}")
    ((name, params),) = parse_attentions([attention], attn_params)
    cfg = RunConfig(
        task=task,
        attention=name,
        attn_params=params,
        preset=preset,
        overrides=parse_key_values(overrides, "--set"),
        seed=seed,
        run_dir=run_dir,
        max_steps=max_steps,
        checkpoint_every=checkpoint_every,
        resume=resume,
        device=device,
        amp=amp,
        data_dir=data_dir,
        source=source,
        quiet=quiet,
        log=list(log),
    )
    resolved = resolve(cfg)
    smoke_check(resolved.attention, resolved.device)  # plugins only
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1; got {nproc}")
    if not quiet:  # what the test set can tell apart, before any time is spent training
        click.echo(resolution(task, planned_test_examples(resolved)), err=True)
    try:
        record = run(resolved) if nproc == 1 else launch(resolved, nproc)
    except RunDirBusy as err:  # another process writes that directory: this one wrote nothing
        click.echo(str(err), err=True)
        sys.exit(BUSY_EXIT_CODE)
    click.echo(format_run_summary(record, resolved.run_dir))
    if record["status"] != "ok":
        sys.exit(1)


def _one_task(argument: str | None, option: str | None) -> str:
    """The task named by the TASK argument or --task (the default when neither); UserError when
    they name different tasks."""
    if argument is not None and option is not None and argument != option:
        raise UserError(f"the TASK argument {argument!r} and --task {option!r} differ; give one of them")
    return argument or option or DEFAULT_TASK


def format_run_summary(record: dict[str, Any], run_dir: Any) -> str:
    """A few lines a person reads after a run."""
    from results.records import report_checkpoint
    from results.records import val_is_test as task_val_is_test
    from results.stats import binomial_interval

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.2f}%"

    def with_interval(value: float | None) -> str:
        """The accuracy with its 95% Clopper–Pearson interval on the run's test examples."""
        n = record.get("n_test")
        if value is None or not n:
            return pct(value)
        low, high = binomial_interval(round(value * n), int(n))
        return f"{pct(value)} [{100 * low:.1f}, {100 * high:.1f}] of {int(n):,}"

    val_is_test = task_val_is_test(record["task"])
    reports_last = val_is_test or report_checkpoint(record) == "last"

    lines = [
        f"{record['task']} / {record['attention_label']} / seed {record['seed']}: {record['status']}"
        + (f" ({record['error']})" if record.get("error") else ""),
        f"  test acc {(pct if reports_last else with_interval)(record['test_acc'])} (best val {pct(record['best_val_acc'])} at step {record['best_step']}"
        + ("; chosen on the test set, which is this task's validation set" if val_is_test else "")
        + f"); last checkpoint: test {(with_interval if reports_last else pct)(record['test_acc_last'])}, "
        f"val {pct(record['val_acc_last'])}" + (" (the number the tables report)" if reports_last else ""),
        f"  chance {pct(record['chance_acc'])} · {record['steps']} steps · {record['params']} params · "
        f"{(record['train_tokens_per_s'] or 0):,.0f} tokens/s · {record['wall_time_s'] or 0:.0f} s",
        f"  record: {run_dir}/result.json",
    ]
    return "\n".join(lines)
