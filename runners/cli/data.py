"""`lra data generate|prepare|info` (README: Tasks and data; library: lra/data, lra/tasks)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from .common import UserError, apply_options, data_dir_option, preset_option, user_errors

# The preset whose data `lra data prepare|info` describe without --preset: the one `lra run` trains with.
DEFAULT_PRESET = "tiny"

_SIZE_FIELDS = ("n_train", "n_val", "n_test")


def _generator_option_specs() -> list[tuple[str, str, Any, str]]:
    """(field, owner, click type, help) for every generator parameter except the split sizes; the
    owner names the tasks whose generator has the parameter ("pathfinder/pathx")."""
    import dataclasses

    from lra import tasks

    types = {"int": int, "float": float, "bool": bool, "tuple[float, ...]": str, "tuple[str, ...]": str}
    owners: dict[type, list[str]] = {}
    for name in tasks.generated_task_names():
        owners.setdefault(tasks.get(name).require_generator().params_type, []).append(name)
    specs = []
    for cls, task_names in owners.items():
        owner = "/".join(task_names)
        for f in dataclasses.fields(cls):
            if f.name not in _SIZE_FIELDS:
                kind = types[str(f.type)]
                listed = " (comma-separated)" if kind is str else ""
                specs.append((f.name, owner, kind, f"[{owner}] {f.metadata['help']}{listed}"))
    return specs


def _list_parameter_types(task: str) -> dict[str, str]:
    """The element type ("str" or "float") of every comma-separated generator parameter of `task`."""
    import dataclasses

    from lra import tasks

    cls = tasks.get(task).require_generator().params_type
    return {
        f.name: "str" if str(f.type) == "tuple[str, ...]" else "float"
        for f in dataclasses.fields(cls)
        if str(f.type).startswith("tuple[")
    }


def generator_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One `--<param>` option per generator parameter, collected into `gen_params`."""
    for name, _, kind, help_text in reversed(_generator_option_specs()):
        flag = name.replace("_", "-")
        if kind is bool:  # --binary / --no-binary; unset keeps the variant's value
            fn = click.option(f"--{flag}/--no-{flag}", name, default=None, help=help_text)(fn)
        else:
            fn = click.option(f"--{flag}", name, type=kind, default=None, help=help_text)(fn)
    return fn


def generator_variants() -> dict[str, tuple[str, ...]]:
    """The named generator variants of every task with a generator (`TaskSpec.generator`)."""
    from lra import tasks

    return {
        name: tuple(tasks.get(name).require_generator().variants) for name in tasks.generated_task_names()
    }


def _variants_help() -> str:
    listed = "; ".join(f"{task} {', '.join(names)}" for task, names in generator_variants().items())
    return f"Variant: {listed}."


class _VariantOption(click.Option):
    """`--generator`, whose help lists the registry's variants when help is shown: the task registry
    imports torch, which `lra` must not import to start."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = _variants_help()
        return super().get_help_record(ctx)


def data_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that make a DataConfig (shared by `lra data prepare` and `lra data info`): the
    preset's data with the options given applied (an option left out keeps the preset's value)."""
    options = [
        click.argument("task_argument", metavar="[TASK]", required=False, default=None),
        click.option(
            "--task", default=None, help="Task name (lra list tasks), the same as the TASK argument."
        ),
        preset_option(DEFAULT_PRESET),
        click.option(
            "--source", default=None, help="lra_release, generated, hf, tfds or auto [default: the preset's]."
        ),
        data_dir_option(),
        click.option(
            "--generator",
            default=None,
            help="Generator variant of the generated source [default: the preset's].",
        ),
        click.option("--n-train", default=None, type=int, help="Examples to generate / keep (0 = all)."),
        click.option("--n-val", default=None, type=int, help="Validation examples (0 = all)."),
        click.option("--n-test", default=None, type=int, help="Test examples (0 = all)."),
        click.option("--seed", "gen_seed", default=None, type=int, help="Generator seed [default: 0]."),
        click.option(
            "--seq-len", default=None, type=int, help="Tokens per input (0 = the task's or variant's)."
        ),
        click.option(
            "--pixel-zero-is-padding/--no-pixel-zero-is-padding",
            default=None,
            help="Legacy LRA pixel ids (black = padding) [default: the preset's].",
        ),
        click.option(
            "--hf-repo", default=None, help="Hugging Face repo owner/name[/folder][@rev] or a local folder."
        ),
        click.option(
            "--cache-dir", default=None, help="Tensor cache [default: $LRA_CACHE_DIR or <data-dir>/cache]."
        ),
        click.option(
            "--difficulty",
            default=None,
            help="Pathfinder folder of the official data: easy, intermediate, hard or a folder name "
            "[default: hard].",
        ),
    ]
    return apply_options(fn, options)


def data_task(options: dict[str, Any]) -> str:
    """The task named by the TASK argument or --task (a registered one); UserError otherwise."""
    from lra import tasks

    argument, option = options.pop("task_argument", None), options.get("task")
    if argument and option and argument != option:
        raise UserError(f"the TASK argument {argument!r} and --task {option!r} differ; give one of them")
    name = argument or option
    if not name:
        raise UserError("name a task: lra data info TASK (or --task TASK); lra list tasks lists them")
    options["task"] = tasks.get(name).name
    return name


def make_data_config(options: dict[str, Any]) -> Any:
    """The preset's DataConfig of the task of `options` with every option given (not None) applied."""
    import dataclasses

    from lra.presets import get_preset
    from lra.tasks import DataConfig

    base = get_preset(data_task(options), options["preset"]).data
    values = {k: v for k, v in options.items() if k in DataConfig.__dataclass_fields__ and v is not None}
    return dataclasses.replace(base, **values)


class _DataGroup(click.Group):
    """`lra data`, whose `generate` command is made when it is asked for: its options come from the
    task registry, which imports torch, and `lra` must start without it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "generate"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "generate":
            return generate_command()
        return super().get_command(ctx, cmd_name)


@click.group("data", cls=_DataGroup)
def data_group() -> None:
    """Generate, prepare and inspect task data."""


@functools.cache
def generate_command() -> click.Command:
    """`lra data generate`, built on first use: its options come from the task registry's generators."""

    @click.command("generate")
    @click.option(
        "--task", required=True, help="A task with an offline generator (their variants: --generator)."
    )
    @click.option(
        "--out", required=True, type=click.Path(file_okay=False), help="Root folder (lra_release layout)."
    )
    @click.option("--generator", default="lra", show_default=True, cls=_VariantOption)
    @click.option("--n-train", default=None, type=int, help="Training examples [default: the variant's].")
    @click.option("--n-val", default=None, type=int, help="Validation examples [default: the variant's].")
    @click.option("--n-test", default=None, type=int, help="Test examples [default: the variant's].")
    @click.option("--seed", default=0, show_default=True, type=int)
    @click.option("--workers", default=0, show_default=True, type=int, help="Processes (0 = every core).")
    @generator_options
    @user_errors
    def data_generate(
        task: str,
        out: str,
        generator: str,
        n_train: int | None,
        n_val: int | None,
        n_test: int | None,
        seed: int,
        workers: int,
        **gen_params: Any,
    ) -> None:
        """Write generated data in the official layout: listops-1000/, pathfinder32/ or pathfinder128/.

        \b
        lra data generate --task listops --generator short --out data
        lra data generate --task pathfinder --generator easy --n-train 800 --n-val 100 --n-test 100 --out data
        """
        from pathlib import Path

        from lra import tasks

        task_generator = tasks.get(task).require_generator()
        list_types = _list_parameter_types(task)
        given = {k: v for k, v in gen_params.items() if v is not None}
        for name, field_owner, _, _ in _generator_option_specs():
            if name in given and task not in field_owner.split("/"):
                raise UserError(
                    f"--{name.replace('_', '-')} is a {field_owner} parameter, not one of --task {task}"
                )
            if name in given and name in list_types:
                items = [x.strip() for x in given[name].split(",") if x.strip()]
                try:
                    given[name] = tuple(items if list_types[name] == "str" else (float(x) for x in items))
                except ValueError:
                    raise UserError(
                        f"--{name.replace('_', '-')} expects comma-separated numbers, got {given[name]!r}"
                    ) from None
        sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
        params = task_generator.make_params(generator, **sizes, **given)
        folder = task_generator.write(Path(out), params, seed, workers)
        for line in task_generator.report(folder, params):
            click.echo(line)
        click.echo(f"wrote {folder}")
        if task_generator.read_back is not None:
            click.echo(f"read it back with {task_generator.read_back(folder, out)}")

    return data_generate


@data_group.command("prepare")
@data_options
@user_errors
def data_prepare(**options: Any) -> None:
    """Load every split once (generate, tokenise, cache) so that later runs start in seconds.

    \b
    lra data prepare --task listops                  # the data `lra run --task listops` trains on
    lra data prepare --task listops --preset quick   # those of `lra suite --preset quick`
    lra data prepare --task retrieval --source lra_release --data-dir /data/lra_release
    """
    from lra.data import prepare

    data = make_data_config(options)
    info = prepare(options["task"], data)
    click.echo(f"{info['task']}: {info['data_source']}  seq_len {info['seq_len']}")
    for split, item in info["splits"].items():
        click.echo(f"  {split:<5} {item['n']:>7}  {item['cache'] or '(not cached: cache dir not writable)'}")


@data_group.command("info")
@data_options
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(["train", "val", "test"]),
    help="Splits to describe [default: all].",
)
@click.option(
    "--generate",
    is_flag=True,
    help="Generate the data first when the generated source does not have them yet [default: only "
    "describe the variant].",
)
@user_errors
def data_info(splits: tuple[str, ...], generate: bool, **options: Any) -> None:
    """The data a preset trains on: source and generator variant, then sizes, token lengths, label
    balance and a decoded example. Never generates without --generate.

    \b
    lra data info --task listops                   # what `lra run --task listops` trains on
    lra data info --task pathfinder --preset quick --generate
    """
    from lra import tasks
    from lra.data import describe, summarize

    data = make_data_config(options)
    spec = tasks.get(options["task"])
    what = describe(spec.name, data)
    click.echo(f"{spec.title} ({spec.name}): {spec.description}")
    made = what["generated"]
    if made is not None:
        sizes = " / ".join(f"{n:,}" for n in made["sizes"].values())
        params = " ".join(f"{k}={_compact(v)}" for k, v in made["params"].items())
        click.echo(
            f"preset {options['preset']}: generated, variant {made['variant']} (seed {made['seed']}), "
            f"{sizes} examples (train / val / test)"
        )
        click.echo(f"  generator: {params}")
        click.echo(f"  folder: {made['folder']}")
        if not made["exists"] and not generate:
            click.echo(
                "not generated yet, nothing was written; add --generate to generate it here "
                "(or run `lra data prepare` with the same options)"
            )
            return
    summary = summarize(spec.name, data, splits)
    click.echo(f"source: {summary['data_source']}")
    for split, s in summary["splits"].items():
        click.echo(
            f"  {split:<5} n={s['n']:<7} seq_len={s['seq_len']:<6} tokens {s['length_min']}..{s['length_max']} "
            f"(median {s['length_median']:g})  labels {' '.join(map(str, s['label_counts']))} "
            f"(majority {s['majority_fraction']:.1%})"
        )
    if "example" in summary:
        click.echo(f"example (label {summary['example_label']}):")
        click.echo(summary["example"])


def _compact(value: Any) -> str:
    """A generator parameter as one token: tuples comma-separated, floats with %g."""
    if isinstance(value, (tuple, list)):
        return ",".join(_compact(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
