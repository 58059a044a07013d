"""`lra list attentions|tasks` and `lra info`: what is registered and installed."""

from __future__ import annotations

import click

from .common import UserError, plugin_option, user_errors


@click.group("list")
def list_group() -> None:
    """List what is registered."""


@list_group.command("attentions")
@plugin_option
@user_errors
def list_attentions() -> None:
    """Registered attention mechanisms with their parameters, whether they apply attention-probability
    dropout (the model's `attention_dropout`), plugins' ones marked with their module."""
    import attention_zoo

    for name in attention_zoo.names():
        mech = attention_zoo.get(name)
        click.echo(f"{name:<12} {mech.summary}" + (f" [plugin: {mech.plugin}]" if mech.plugin else ""))
        dropout = "yes" if mech.attention_dropout else "no"
        click.echo(f"{'':<12} params: {mech.parameter_help()}; attention dropout: {dropout}")


@click.command("info")
def info_command() -> None:
    """Versions, devices, attention backends and data locations (paste it into bug reports)."""
    from runners.info import environment_info

    for key, value in environment_info().items():
        click.echo(f"{key:<34} {value}")


@list_group.command("tasks")
def list_tasks() -> None:
    """Registered tasks: length, vocabulary, classes, splits and sources."""
    from lra import tasks

    click.echo(
        f"{'name':<11} {'title':<11} {'seq_len':>7} {'vocab':>5} {'classes':>7}  {'dual':<5} "
        f"{'train/val/test':<22} sources"
    )
    for name in tasks.names():
        s = tasks.get(name)
        splits = "/".join(str(n) for n in s.splits.values())
        click.echo(
            f"{name:<11} {s.title:<11} {s.seq_len:>7} {s.vocab_size:>5} {s.num_classes:>7}  "
            f"{'yes' if s.dual_input else 'no':<5} {splits:<22} {', '.join(s.sources)}"
        )


@list_group.command("presets")
@click.option(
    "--provenance",
    is_flag=True,
    help="Print, for every field of the presets that name a source (pytorch, lra), its value and the "
    "source file and commit it equals, or why it is the project's own (markdown).",
)
@click.option("--preset", "preset_names", multiple=True, help="Only these presets (repeatable).")
@click.option("--task", "task_names", multiple=True, help="Only these tasks (repeatable).")
@user_errors
def list_presets(provenance: bool, preset_names: tuple[str, ...], task_names: tuple[str, ...]) -> None:
    """Presets per task with their description; --provenance: where each value comes from."""
    from lra.presets import PRESET_NAMES, SOURCE_PRESETS, get_preset, preset_tasks

    names = list(preset_names) or list(SOURCE_PRESETS if provenance else PRESET_NAMES)
    for name in names:
        for task in task_names:
            get_preset(task, name)  # one-line errors for unknown names
    pairs = [(name, task) for name in names for task in (task_names or preset_tasks(name))]
    if provenance:
        from lra import preset_provenance

        without = [n for n in names if n not in SOURCE_PRESETS]
        if without:
            raise UserError(
                f"preset {without[0]!r} names no source; --provenance covers {', '.join(SOURCE_PRESETS)}"
            )
        click.echo(preset_provenance.markdown(names, task_names), nl=False)
        return
    click.echo(f"{'preset':<8} {'task':<11} description")
    for name, task in pairs:
        click.echo(f"{name:<8} {task:<11} {get_preset(task, name).description}")
