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
