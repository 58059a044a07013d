"""`lra data generate|prepare|info` (README: Tasks and data; library: lra/data, lra/tasks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .common import UserError, apply_options, data_dir_option, preset_option, user_errors

# The preset whose data `lra data prepare|info` describe without --preset: the one `lra run` trains with.
DEFAULT_PRESET = "tiny"

_SIZE_FIELDS = ("n_train", "n_val", "n_test")


def _generator_option_specs() -> list[tuple[str, str, Any, str]]:
    """(field, owner, click type, help) for every generator parameter except the split sizes."""
    import dataclasses

    from lra.data.generate_listops import ListOpsParams
    from lra.data.generate_pathfinder import PathfinderParams

    types = {"int": int, "float": float, "bool": bool, "tuple[float, ...]": str, "tuple[str, ...]": str}
    specs = []
    for owner, cls in (("listops", ListOpsParams), ("pathfinder/pathx", PathfinderParams)):
        for f in dataclasses.fields(cls):
            if f.name not in _SIZE_FIELDS:
                kind = types[str(f.type)]
                listed = " (comma-separated)" if kind is str else ""
                specs.append((f.name, owner, kind, f"[{owner}] {f.metadata['help']}{listed}"))
    return specs


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
    """The named generator variants of every generated task (the tables of lra/data/generate_*.py)."""
    from lra.data.generate_listops import LISTOPS_VARIANTS
    from lra.data.generate_pathfinder import PATHFINDER_VARIANTS, PATHX_VARIANTS

    return {
        "listops": tuple(LISTOPS_VARIANTS),
        "pathfinder": tuple(PATHFINDER_VARIANTS),
        "pathx": tuple(PATHX_VARIANTS),
    }


def _variants_help() -> str:
    listed = "; ".join(f"{task} {', '.join(names)}" for task, names in generator_variants().items())
    return f"Variant: {listed}."


def data_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that make a DataConfig (shared by `lra data prepare` and `lra data info`): the
    preset's data with the options given applied (an option left out keeps the preset's value)."""
    options = [
        click.option("--task", required=True, help="Task name (lra list tasks)."),
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


def make_data_config(options: dict[str, Any]) -> Any:
    """The preset's DataConfig of `options["task"]` with every option given (not None) applied."""
    import dataclasses

    from lra.configs import get_preset
    from lra.tasks import DataConfig

    base = get_preset(options["task"], options["preset"]).data
    values = {k: v for k, v in options.items() if k in DataConfig.__dataclass_fields__ and v is not None}
    return dataclasses.replace(base, **values)


@click.group("data")
def data_group() -> None:
    """Generate, prepare and inspect task data."""


@data_group.command("generate")
@click.option("--task", required=True, type=click.Choice(["listops", "pathfinder", "pathx"]))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Root folder (lra_release layout)."
)
@click.option("--generator", default="lra", show_default=True, help=_variants_help())
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
    from lra.data import generate_listops, generate_pathfinder, lra_release

    owner = "listops" if task == "listops" else "pathfinder/pathx"
    given = {k: v for k, v in gen_params.items() if v is not None}
    for name, field_owner, kind, _ in _generator_option_specs():
        if name in given and field_owner != owner:
            raise UserError(
                f"--{name.replace('_', '-')} is a {field_owner} parameter, not one of --task {task}"
            )
        if name in given and kind is str:
            items = [x.strip() for x in given[name].split(",") if x.strip()]
            try:
                given[name] = tuple(items if name == "operators" else (float(x) for x in items))
            except ValueError:
                raise UserError(
                    f"--{name.replace('_', '-')} expects comma-separated numbers, got {given[name]!r}"
                ) from None
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    if task == "listops":
        listops = generate_listops.listops_params(generator, **sizes, **given)
        folder = generate_listops.write_listops(out, listops, seed, workers)
        for split, name in lra_release.LISTOPS_FILES.items():
            rows, labels = lra_release.read_listops_tsv(folder / name)
            lengths = [len(r) for r in rows] or [0]
            click.echo(
                f"{split:<5} {len(rows):>7} expressions  tokens {min(lengths)}..{max(lengths)} "
                f"(median {sorted(lengths)[len(lengths) // 2]})  labels {_label_counts(labels, 10)}"
            )
    else:
        pathfinder = generate_pathfinder.pathfinder_params(task, generator, **sizes, **given)
        folder = generate_pathfinder.write_pathfinder(out, pathfinder, seed, workers)
        entries = lra_release.read_pathfinder_index(folder)
        counts = (pathfinder.n_train, pathfinder.n_val, pathfinder.n_test)
        for split in ("train", "val", "test"):
            split_labels = [e.label for e in lra_release.split_entries(entries, split, counts)]
            click.echo(
                f"{split:<5} {len(split_labels):>7} images  {pathfinder.resolution}x{pathfinder.resolution}  "
                f"labels {_label_counts(split_labels, 2)}"
            )
    click.echo(f"wrote {folder}")
    if task != "listops":
        # The official layout names the folder; a generated one says which it is.
        how = f"--source lra_release --data-dir {out}"
        if lra_release.pathfinder_folder_name("hard") != folder.name:
            how += f" --difficulty {folder.name} (lra run / suite: --set data.difficulty={folder.name})"
        click.echo(f"read it back with {how}")


def _label_counts(labels: Any, num_classes: int) -> str:
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    return " ".join(str(int(c)) for c in counts)


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

    info = prepare(options["task"], make_data_config(options))
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

    spec = tasks.get(options["task"])
    data = make_data_config(options)
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
