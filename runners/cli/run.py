"""`lra run` (README: Training one run; library: runners/train.py)."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from ..defaults import DEFAULT_RUNS_DIR
from ..specs import parse_attn_params, parse_key_values, parse_spec, parse_specs
from .common import UserError, attn_param_option, plugin_option, preset_option, training_options, user_errors


@click.command("run")
@click.option("--task", default="listops", show_default=True, help="Task name (lra list tasks).")
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
@user_errors
def run_command(
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
) -> None:
    """Train TASK with one ATTENTION and report test accuracy (best-validation and last checkpoints).

    Without options: MiTA on generated ListOps with the tiny preset (a minute or two on a CPU).
    """
    from pathlib import Path

    from attention_zoo.plugins import require_plugins
    from runners.rundir import BUSY_EXIT_CODE, RunDirBusy
    from runners.train import RunConfig, launch, recorded_plugins, resolve, run

    if resume and run_dir:  # the plugin the run was trained with: named (--plugin) or trusted
        with warnings.catch_warnings():  # a changed plugin: `resolve` below warns, once
            warnings.simplefilter("ignore")
            require_plugins(recorded_plugins(Path(run_dir)), source=f"the run in {run_dir}")
    ((name, params),) = parse_specs([attention], parse_attn_params(attn_params, [parse_spec(attention)[0]]))
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
    )
    resolved = resolve(cfg)
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1; got {nproc}")
    try:
        record = run(cfg) if nproc == 1 else launch(cfg, nproc)
    except RunDirBusy as err:  # another process writes that directory: this one wrote nothing
        click.echo(str(err), err=True)
        sys.exit(BUSY_EXIT_CODE)
    click.echo(format_run_summary(record, resolved.run_dir))
    if record["status"] != "ok":
        sys.exit(1)


def format_run_summary(record: dict[str, Any], run_dir: Any) -> str:
    """A few lines a person reads after a run."""
    from results.records import VAL_IS_TEST_TASKS

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.2f}%"

    val_is_test = record["task"] in VAL_IS_TEST_TASKS

    lines = [
        f"{record['task']} / {record['attention_label']} / seed {record['seed']}: {record['status']}"
        + (f" ({record['error']})" if record.get("error") else ""),
        f"  test acc {pct(record['test_acc'])} (best val {pct(record['best_val_acc'])} at step {record['best_step']}"
        + ("; chosen on the test set, which is this task's validation set" if val_is_test else "")
        + f"); last checkpoint: test {pct(record['test_acc_last'])}, val {pct(record['val_acc_last'])}"
        + (" (the number the tables report)" if val_is_test else ""),
        f"  chance {pct(record['chance_acc'])} · {record['steps']} steps · {record['params']} params · "
        f"{(record['train_tokens_per_s'] or 0):,.0f} tokens/s · {record['wall_time_s'] or 0:.0f} s",
        f"  record: {run_dir}/result.json",
    ]
    return "\n".join(lines)
