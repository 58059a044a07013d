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
    """Turn the library's ValueError / OSError (a missing file, a file where a folder should be, no
    permission, a full disk) / KeyError into a one-line usage error (exit code 2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError, KeyError) as err:
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


def apply_options(fn: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    """Decorate `fn` with click options, listed in the order they should appear in --help."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def with_options(options: list[Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`apply_options` as a decorator: @with_options(SHARED_OPTIONS)."""
    return lambda fn: apply_options(fn, options)


device_option = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    help="auto = CUDA when available.",
)
data_dir_option = click.option("--data-dir", default=None, help="Data root (default $LRA_DATA_DIR or ./lra_data).")


def preset_option(default: str) -> Callable[..., Any]:
    return click.option("--preset", default=default, show_default=True, help="Preset: tiny, quick, pytorch or lra.")


def training_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How runs are configured beyond the preset; shared by `lra run`, `lra suite` and the sweeps."""
    return apply_options(fn, [
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a preset field, repeatable: --set model.layers=3 --set train.lr=1e-3."),
        click.option("--max-steps", default=None, type=int, help="Total optimizer steps (the schedule follows)."),
        device_option,
        data_dir_option,
        click.option("--source", default=None, help="Data source (e.g. generated, lra_release, hf, tfds)."),
    ])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="lra-arena", prog_name="lra")
def main() -> None:
    """LRA arena: which attention for long sequences, at what accuracy and what cost.

    \b
    lra suite --preset quick   every attention on generated ListOps + Pathfinder, then the leaderboard
    lra run                    train one task with one attention
    lra leaderboard / compare / plot   tables and figures from result records
    lra bench attention|model  speed and memory against sequence length
    lra sweep mk|s|landmarks|scaling, lra swap   MiTA experiments
    lra data generate|prepare|info               task data
    lra list attentions|tasks                    what is registered
    lra info                                     versions, devices, backends, data locations
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


@main.command("info")
def info_command() -> None:
    """Versions, devices, attention backends and data locations (paste it into bug reports)."""
    from runners.info import environment_info

    for key, value in environment_info().items():
        click.echo(f"{key:<34} {value}")


# ---------------------------------------------------------------------------------------------
# lra data: generate / prepare / info   (library: lra/data, lra/tasks)
# ---------------------------------------------------------------------------------------------

# [section: data]

_SIZE_FIELDS = ("n_train", "n_val", "n_test")


def _generator_option_specs() -> list[tuple[str, str, Any, str]]:
    """(field, owner, click type, help) for every generator parameter except the split sizes."""
    import dataclasses

    from lra.data.generate_listops import ListOpsParams
    from lra.data.generate_pathfinder import PathfinderParams

    types = {"int": int, "float": float, "tuple[float, ...]": str, "tuple[str, ...]": str}
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
        fn = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None, help=help_text)(fn)
    return fn


def data_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that make a DataConfig (shared by `lra data prepare` and `lra data info`)."""
    options = [
        click.option("--task", required=True, help="Task name (lra list tasks)."),
        click.option("--source", default="auto", show_default=True, help="lra_release, generated, hf, tfds or auto."),
        click.option("--data-dir", default=None, help="Data root (default $LRA_DATA_DIR or ./lra_data)."),
        click.option("--generator", default="lra", show_default=True, help="Generator variant of the generated source."),
        click.option("--n-train", default=0, type=int, help="Examples to generate / keep (0 = default)."),
        click.option("--n-val", default=0, type=int, help="Validation examples (0 = default)."),
        click.option("--n-test", default=0, type=int, help="Test examples (0 = default)."),
        click.option("--seed", "gen_seed", default=0, show_default=True, type=int, help="Generator seed."),
        click.option("--seq-len", default=0, type=int, help="Tokens per input (0 = the task's or variant's)."),
        click.option("--pixel-zero-is-padding", is_flag=True, help="Legacy LRA pixel ids (black = padding)."),
        click.option("--hf-repo", default="", help="Hugging Face repo owner/name[/folder][@rev] or a local folder."),
        click.option("--cache-dir", default="", help="Tensor cache [default: $LRA_CACHE_DIR or <data-dir>/cache]."),
        click.option("--difficulty", default="hard", show_default=True,
                     help="Pathfinder folder of the official data: easy, intermediate, hard or a folder name."),
    ]
    return apply_options(fn, options)


def make_data_config(options: dict[str, Any]) -> Any:
    from lra.tasks import DataConfig

    values = {k: v for k, v in options.items() if k in DataConfig.__dataclass_fields__ and v is not None}
    return DataConfig(**values)


@main.group("data")
def data_group() -> None:
    """Generate, prepare and inspect task data."""


@data_group.command("generate")
@click.option("--task", required=True, type=click.Choice(["listops", "pathfinder", "pathx"]))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Root folder (lra_release layout).")
@click.option("--generator", default="lra", show_default=True, help="Variant: listops lra/medium/short, "
              "pathfinder lra/easy, pathx lra.")
@click.option("--n-train", default=None, type=int, help="Training examples [default: the variant's].")
@click.option("--n-val", default=None, type=int, help="Validation examples [default: the variant's].")
@click.option("--n-test", default=None, type=int, help="Test examples [default: the variant's].")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=0, show_default=True, type=int, help="Processes (0 = all cores, up to 8).")
@generator_options
@user_errors
def data_generate(task: str, out: str, generator: str, n_train: int | None, n_val: int | None,
                  n_test: int | None, seed: int, workers: int, **gen_params: Any) -> None:
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
            raise UserError(f"--{name.replace('_', '-')} is a {field_owner} parameter, not one of --task {task}")
        if name in given and kind is str:
            items = [x.strip() for x in given[name].split(",") if x.strip()]
            try:
                given[name] = tuple(items if name == "operators" else (float(x) for x in items))
            except ValueError:
                raise UserError(f"--{name.replace('_', '-')} expects comma-separated numbers, got {given[name]!r}") from None
    sizes = {"n_train": n_train, "n_val": n_val, "n_test": n_test}
    if task == "listops":
        params = generate_listops.listops_params(generator, **sizes, **given)
        folder = generate_listops.write_listops(out, params, seed, workers)
        for split, name in lra_release.LISTOPS_FILES.items():
            rows, labels = lra_release.read_listops_tsv(folder / name)
            lengths = [len(r) for r in rows] or [0]
            click.echo(f"{split:<5} {len(rows):>7} expressions  tokens {min(lengths)}..{max(lengths)} "
                       f"(median {sorted(lengths)[len(lengths) // 2]})  labels {_label_counts(labels, 10)}")
    else:
        params = generate_pathfinder.pathfinder_params(task, generator, **sizes, **given)
        folder = generate_pathfinder.write_pathfinder(out, params, seed, workers)
        entries = lra_release.read_pathfinder_index(folder)
        counts = (params.n_train, params.n_val, params.n_test)
        for split in ("train", "val", "test"):
            labels = [e.label for e in lra_release.split_entries(entries, split, counts)]
            click.echo(f"{split:<5} {len(labels):>7} images  {params.resolution}x{params.resolution}  "
                       f"labels {_label_counts(labels, 2)}")
    click.echo(f"wrote {folder}")


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
    lra data prepare --task listops --source generated --generator short
    lra data prepare --task retrieval --source lra_release --data-dir /data/lra_release
    """
    from lra.data import prepare

    info = prepare(options["task"], make_data_config(options))
    click.echo(f"{info['task']}: {info['data_source']}  seq_len {info['seq_len']}")
    for split, item in info["splits"].items():
        click.echo(f"  {split:<5} {item['n']:>7}  {item['cache'] or '(not cached: cache dir not writable)'}")


@data_group.command("info")
@data_options
@click.option("--split", "splits", multiple=True, type=click.Choice(["train", "val", "test"]),
              help="Splits to describe [default: all].")
@user_errors
def data_info(splits: tuple[str, ...], **options: Any) -> None:
    """Sizes, token lengths, label balance and a decoded example of a task's data."""
    from lra import tasks
    from lra.data import summarize

    spec = tasks.get(options["task"])
    summary = summarize(spec.name, make_data_config(options), splits)
    click.echo(f"{spec.title} ({spec.name}): {spec.description}")
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


@list_group.command("tasks")
def list_tasks() -> None:
    """Registered tasks: length, vocabulary, classes, splits and sources."""
    from lra import tasks

    click.echo(f"{'name':<11} {'title':<11} {'seq_len':>7} {'vocab':>5} {'classes':>7}  {'dual':<5} "
               f"{'train/val/test':<22} sources")
    for name in tasks.names():
        s = tasks.get(name)
        splits = "/".join(str(n) for n in s.splits.values())
        click.echo(f"{name:<11} {s.title:<11} {s.seq_len:>7} {s.vocab_size:>5} {s.num_classes:>7}  "
                   f"{'yes' if s.dual_input else 'no':<5} {splits:<22} {', '.join(s.sources)}")

# ---------------------------------------------------------------------------------------------
# lra run   (library: runners/train.py)
# ---------------------------------------------------------------------------------------------

# [section: run]


@main.command("run")
@click.option("--task", default="listops", show_default=True, help="Task name (lra list tasks).")
@click.option("--attention", default="mita", show_default=True, help="Attention name (lra list attentions).")
@click.option("--attn-param", "attn_params", multiple=True, metavar="KEY=VALUE",
              help="Attention parameter, repeatable: --attn-param num_landmarks=64 --attn-param topk=64.")
@preset_option("tiny")
@training_options
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--run-dir", default="", help="Output directory [default: lra_runs/runs/<task>/<attention>/<seed>].")
@click.option("--checkpoint-every", default=None, type=int, help="Steps between resumable checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last checkpoint.")
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
@preset_option("quick")
@click.option("--out", default=SUITE_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output directory: runs in OUT/runs/<task>/<attention>/<seed>, tables and plots in OUT.")
@click.option("--jobs", default=1, show_default=True, type=int,
              help="Local runs in parallel, one process each; the CPU cores are split between them.")
@click.option("--launcher", type=click.Choice(["local", "submitit"]), default="local", show_default=True,
              help="local processes, or one SLURM job per run through submitit (pip install 'lra-arena[slurm]').")
@click.option("--attn-param", "attn_params", multiple=True, metavar="NAME.KEY=VALUE",
              help="Parameter of one attention for every run of it, repeatable: --attn-param mita.topk=64.")
@training_options
@click.option("--checkpoint-every", default=None, type=int, help="Steps between resumable checkpoints.")
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


# How each cell is measured; shared by `lra bench attention|model` and `lra sweep scaling`.
MEASUREMENT_OPTIONS = [
    device_option,
    click.option("--warmup", default=None, type=int, help="Untimed calls per measurement."),
    click.option("--repeats", default=None, type=int, help="Timed calls per measurement (median, p20, p80)."),
    click.option("--time-budget", "time_budget_s", default=None, type=float, metavar="S",
                 help="Seconds of timed calls per measurement; fewer repeats when calls are slow."),
    click.option("--max-call-s", default=None, type=float, metavar="S",
                 help="Skip a series' longer lengths once one call takes longer (0 = never)."),
    click.option("--memory-limit", "memory_limit_gb", default=None, type=float, metavar="GIB",
                 help="CPU only: calls allocating more are recorded as OOM [default: half the free RAM; 0 = none]."),
    click.option("--resume", is_flag=True,
                 help="Reuse the records of cells already in --out that were measured with the same device, "
                 "settings, code and versions; continues a killed or time-limited run."),
    click.option("--max-minutes", default=None, type=float, metavar="M",
                 help="Start no new measurement after M minutes; the cells left are listed as not run "
                 "(the same command with --resume measures them)."),
    click.option("--quiet", is_flag=True, help="No progress bar or per-measurement lines."),
]
# The shape of one attention call; `lra bench attention` and `lra sweep scaling`.
ATTENTION_SHAPE_OPTIONS = [
    click.option("--heads", default=None, type=int, help="Heads H [default: 8; 4 in the CPU reduced grid]."),
    click.option("--head-dim", default=None, type=int,
                 help="Head dimension d [default: 64; 32 in the CPU reduced grid]."),
    click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default=None,
                 help="[default: bfloat16 on CUDA, float32 on CPU]"),
]


def bench_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options `lra bench attention` and `lra bench model` share."""
    options = [
        click.option("--attentions", default=None, metavar="A,B,...",
                     help="Attentions to measure, names or name(key=value,...), e.g. 'full,mita(topk=64)' "
                     "[default: all]; full attention, the reference, is always included."),
        click.option("--attn-param", "attn_params", multiple=True, metavar="NAME.KEY=VALUE",
                     help="Attention parameter, repeatable: --attn-param mita.topk=64 --attn-param mita.backend=torch."),
        click.option("--lengths", default=None, metavar="N,N,...",
                     help="Sequence lengths, e.g. 1024,2048 or 1K,2K [default: the grid's]."),
        click.option("--batch", default=None, type=int, help="Batch size [default: the grid's]."),
        click.option("--quick/--full-grid", "quick", default=None,
                     help="Reduced grid (few short lengths, small batch, few repeats) or the full one "
                     "[default: reduced on CPU, full on CUDA]."),
        *MEASUREMENT_OPTIONS,
        click.option("--out", default="lra_runs", show_default=True,
                     help="Results directory: records under OUT/efficiency/ (lra plot --runs OUT draws them)."),
    ]
    return apply_options(fn, options)


def _bench_config(attentions: str | None, attn_params: tuple[str, ...], lengths: str | None, **kwargs: Any) -> Any:
    """The `runners.bench.BenchConfig` of the parsed options (ValueError on bad lists)."""
    from runners.bench import BenchConfig, parse_lengths
    from runners.suite import split_list

    return BenchConfig(
        attentions=tuple(split_list(attentions or "")),
        attn_params=parse_attn_params(attn_params),
        lengths=parse_lengths(lengths) if lengths is not None else None,
        **kwargs,
    )


@main.group("bench")
def bench_group() -> None:
    """Efficiency: time and peak memory per attention, as records in the results store.

    \b
    lra bench attention   one attention call (forward, forward + backward) from 1K tokens up
    lra bench model       LRA Table 2: training steps/s and memory of the Text model at 1K-4K (16K)
    """


@bench_group.command("attention")
@bench_options
@with_options(ATTENTION_SHAPE_OPTIONS)
@user_errors
def bench_attention_command(**kwargs: Any) -> None:
    """Forward and forward + backward time and peak memory of every attention (and MiTA backend).

    \b
    Inputs are random q, k, v of shape [B, H, N, d]. Full grid: N = 1K..1M on CUDA, 256..8K on CPU.
    Writes one record per measurement and a table of ratios to full attention (.md, .csv), printed too.
    Example: lra bench attention --attentions full,mita --lengths 1K,4K,16K --dtype bfloat16
    """
    from runners.bench import bench_attention

    _, markdown = bench_attention(_bench_config(**kwargs))
    click.echo(markdown)


@bench_group.command("model")
@bench_options
@click.option("--compile", "compile", default=None, flag_value="reduce-overhead", is_flag=False,
              metavar="[MODE]", help="Train the model under torch.compile (every attention alike); MODE "
              "defaults to reduce-overhead (CUDA graphs; on CPU inductor without graphs). Recorded in the "
              "records and their directory name.")
@user_errors
def bench_model_command(**kwargs: Any) -> None:
    """LRA Table 2: training steps/s and peak memory of the Text task model, relative to full attention.

    \b
    The released LRA Text config (4 layers, 256-d, 4 heads, MLP 1024), batch 32 or the largest
    power-of-two fraction of it that fits, at N = 1K, 2K, 3K, 4K, 8K, 16K on CUDA.
    Example: lra bench model --attentions full,mita --lengths 1K,2K,3K,4K --batch 32
    """
    from runners.bench import bench_model

    _, markdown = bench_model(_bench_config(**kwargs))
    click.echo(markdown)

# ---------------------------------------------------------------------------------------------
# lra sweep / swap: MiTA experiments   (library: runners/experiments.py)
# ---------------------------------------------------------------------------------------------

# [section: experiments]

EXPERIMENTS_OUT = "lra_experiments"


def eval_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of commands that evaluate trained checkpoints (`lra sweep mk`, `lra swap`)."""
    options = [
        click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
                     help="Split to evaluate on."),
        click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True,
                     help="best: the best-validation checkpoint (LRA convention); last: the end of training."),
        click.option("--limit", default=0, type=int, help="Evaluate N examples of the split only (a fixed random subset; 0 = all)."),
        click.option("--batch-size", default=0, type=int, help="Examples per forward [default: the run's evaluation batch]."),
        click.option("--diag-batches", default=0, type=int, metavar="N",
                     help="Also record MiTA's routing diagnostics (expert load, pruned fraction, overlap with "
                     "full-attention top-k) on N batches of the split."),
        device_option,
        click.option("--data-dir", default=None, help="Data root, if the run's data moved [default: where the run found them]."),
        click.option("--out", default=EXPERIMENTS_OUT, show_default=True, type=click.Path(file_okay=False),
                     help="Experiments root: records, tables (.md, .csv) and figures (.png) below it."),
        click.option("--quiet", is_flag=True, help="No progress bar or per-evaluation lines."),
    ]
    return apply_options(fn, options)


def _eval_config(**kwargs: Any) -> Any:
    from runners.experiments import EvalOptions

    return EvalOptions(**kwargs)


def _echo_unless(quiet: bool) -> Callable[[str], None]:
    return (lambda _: None) if quiet else (lambda line: click.echo(line, err=True))


def _report(result: Any) -> None:
    click.echo(result.markdown)
    for path in result.paths:
        click.echo(f"wrote {path}")


@main.group("sweep")
def sweep_group() -> None:
    """MiTA experiments: evaluate at other (m, k), time against N, train variants.

    \b
    lra sweep mk --run DIR --grid m=8,16,32,64 k=8,16,32,64   one checkpoint at other (m, k), no retraining
    lra sweep scaling                                        forward / forward+backward time against N
    lra sweep s --task listops --values 1,2,4                train MiTA with s routed experts per query
    lra sweep landmarks --task listops                       train each landmark construction
    """


@sweep_group.command("mk")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Directory of a run trained with MiTA (lra run --run-dir, or OUT/runs/<task>/<attention>/<seed>).")
@click.option("--grid", "grid", multiple=True, metavar="AXIS=VALUES",
              help="Grid axes m (num_landmarks) and k (topk): --grid m=8,16,32,64 k=8,16,32,64 [default: that "
              "grid; m fixed at the trained value for learned landmarks].")
@click.argument("grid_rest", nargs=-1, metavar="")
@click.option("--include-trained/--no-include-trained", default=True, show_default=True,
              help="Add the trained m and k to the axes, so the run's own configuration is the reference cell.")
@eval_options
@user_errors
def sweep_mk_command(run_dir: str, grid: tuple[str, ...], grid_rest: tuple[str, ...], include_trained: bool,
                     **options: Any) -> None:
    """Evaluate a trained MiTA checkpoint at other (m, k) without retraining ("train small, infer large").

    \b
    One eval record per (m, k) and a table and heat map of accuracy over the grid, trained cell marked,
    under OUT/mk/<task>/<run>/. Every other MiTA parameter stays as trained.
    Example: lra sweep mk --run lra_runs/runs/listops/mita/0 --grid m=8,16,32,64 k=8,16,32,64
    """
    from runners.experiments import parse_grid, sweep_mk

    items = grid + grid_rest
    parsed = parse_grid(items) if items else None
    result = sweep_mk(run_dir, parsed, _eval_config(**options), include_trained=include_trained,
                      echo=_echo_unless(options["quiet"]))
    _report(result)


@sweep_group.command("scaling")
@click.option("--attentions", default=None, metavar="A,B,...",
              help="Attentions, names or name(key=value,...) [default: every registered one; MiTA once per "
              "backend]; full attention, the reference, is always included.")
@click.option("--attn-param", "attn_params", multiple=True, metavar="NAME.KEY=VALUE",
              help="Attention parameter, repeatable: --attn-param mita.topk=64.")
@click.option("--lengths", default=None, metavar="2^A..2^B",
              help="Sequence lengths: 2^10..2^20, 2^10,2^14 or 1K,4K [default: 2^10..2^20 on CUDA, 2^10..2^12 on CPU].")
@click.option("--batch", default=None, type=int, help="Batch size B [default: 1].")
@with_options([*ATTENTION_SHAPE_OPTIONS, *MEASUREMENT_OPTIONS])
@click.option("--out", default=EXPERIMENTS_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Experiments root: efficiency records under OUT/scaling/efficiency/, table and figure in OUT/scaling/.")
@user_errors
def sweep_scaling_command(attentions: str | None, attn_params: tuple[str, ...], lengths: str | None,
                          out: str, **options: Any) -> None:
    """Forward and forward + backward time of every attention against N, log-log (the wall-clock figure).

    \b
    Measured by `lra bench attention` (same records, same method) as far as memory allows; adds the
    length from which each attention is faster than full attention, and the figure.
    Example: lra sweep scaling --device cuda --lengths 2^10..2^20 --attentions full,mita,agent
    """
    from runners.bench import BenchConfig
    from runners.experiments import parse_scaling_lengths, sweep_scaling
    from runners.suite import split_list

    cfg = BenchConfig(
        attentions=tuple(split_list(attentions or "")), attn_params=parse_attn_params(attn_params),
        lengths=parse_scaling_lengths(lengths) if lengths is not None else None, out=f"{out}/scaling", **options,
    )
    _report(sweep_scaling(cfg, echo=_echo_unless(options["quiet"])))


def variant_sweep_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options `lra sweep s` and `lra sweep landmarks` share (training as in `lra suite`)."""
    options = [
        click.option("--task", required=True, help="Task to train on (lra list tasks)."),
        click.option("--values", default=None, help="Comma-separated values of the swept parameter."),
        click.option("--attention", default="mita", show_default=True, help="mita or mita_route."),
        click.option("--attn-param", "attn_params", multiple=True, metavar="KEY=VALUE",
                     help="Other attention parameters, fixed for every run: --attn-param num_landmarks=64."),
        preset_option("quick"),
        click.option("--seeds", default="0", show_default=True, help="Seeds: 0,1,2 or 0-2."),
        training_options,
        click.option("--jobs", default=1, show_default=True, type=int, help="Runs in parallel (cores split between them)."),
        click.option("--diag-batches", default=4, show_default=True, type=int,
                     help="Validation batches for the routing diagnostics of each trained model (0 = none)."),
        click.option("--out", default=EXPERIMENTS_OUT, show_default=True, type=click.Path(file_okay=False),
                     help="Experiments root: runs, records, table and figure under OUT/<sweep>/<task>/."),
    ]
    return apply_options(fn, options)


def _variant_sweep(sweep: str, values: str | None, attn_params: tuple[str, ...], seeds: str,
                   overrides: tuple[str, ...], **options: Any) -> None:
    from runners.experiments import VariantSweepConfig, sweep_variants
    from runners.suite import split_list

    cfg = VariantSweepConfig(
        sweep=sweep, values=tuple(split_list(values or "")), attn_params=parse_key_values(attn_params, "--attn-param"),
        seeds=parse_seeds(seeds), overrides=parse_key_values(overrides, "--set"), **options,
    )
    try:
        result = sweep_variants(cfg, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("\nInterrupted; the same command resumes where the runs stopped.", err=True)
        sys.exit(130)
    _report(result)
    if result.exit_code:
        click.echo("some runs failed (see the list above and each run's log.txt); re-run to retry them", err=True)
    sys.exit(result.exit_code)


@sweep_group.command("s")
@variant_sweep_options
@click.option("--equal-budget", is_flag=True,
              help="topk = topk // s, so the routed keys per query stay about constant (as the official s=2 code).")
@user_errors
def sweep_s_command(**options: Any) -> None:
    """Train MiTA with s = 1, 2, 4 routed experts per query (num_routed), everything else fixed.

    \b
    Table and figure: accuracy (mean ± std over seeds), keys per query, parameters, throughput, and the
    routing diagnostics of each trained model. Finished runs are reused when the command is repeated.
    Example: lra sweep s --task listops --values 1,2,4 --preset quick --seeds 0-2
    """
    _variant_sweep("s", **options)


@sweep_group.command("landmarks")
@variant_sweep_options
@user_errors
def sweep_landmarks_command(**options: Any) -> None:
    """Train MiTA with each landmark construction (avgpool, learned, random, kmeans), everything else fixed.

    \b
    Table and figure as `lra sweep s`. Values: avgpool, learned, avgpool+learned, random, kmeans.
    Example: lra sweep landmarks --task listops --values avgpool,learned,random,kmeans --seeds 0-2
    """
    _variant_sweep("landmarks", equal_budget=False, **options)


def _swap_attn_params(values: tuple[str, ...], specs: list[str]) -> dict[str, dict[str, str]]:
    """`NAME.KEY=VALUE`, or `KEY=VALUE` when a single attention is named, -> {name: {key: value}}."""
    from runners.suite import parse_attention

    names = list(dict.fromkeys(parse_attention(spec)[0] for spec in specs))
    out: dict[str, dict[str, str]] = {}
    for item, value in parse_key_values(values, "--attn-param").items():
        name, dot, key = item.rpartition(".")
        if not dot:
            if len(names) != 1:
                raise UserError(f"--attn-param {item}={value} is ambiguous with several attentions; write NAME.{item}={value}")
            name = names[0]
        out.setdefault(name, {})[key] = value
    return out


@main.command("swap")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False),
              help="One run directory: its checkpoint evaluated with each --attention.")
@click.option("--runs", "runs_dir", default=None, type=click.Path(file_okay=False),
              help="A directory of finished runs of one task (e.g. a suite's --out): the train x eval matrix.")
@click.option("--task", default=None, help="With --runs: the task whose runs to use (needed when there are several).")
@click.option("--attention", "attentions", multiple=True, metavar="A[,B,...]",
              help="Attention(s) to evaluate with, names or name(key=value,...), repeatable or comma-separated "
              "[with --runs, default: the attentions the runs were trained with].")
@click.option("--attn-param", "attn_params", multiple=True, metavar="[NAME.]KEY=VALUE",
              help="Parameter of an evaluation attention, repeatable; KEY=VALUE when one attention is given.")
@eval_options
@user_errors
def swap_command(run_dir: str | None, runs_dir: str | None, task: str | None, attentions: tuple[str, ...],
                 attn_params: tuple[str, ...], **options: Any) -> None:
    """Evaluate checkpoints trained with one attention using another (weights transfer: MiTA adds no parameters).

    An evaluation attention's parameters start from the budget of the run's preset (as `lra suite`
    trains that attention), then --attn-param and the spec's own values.

    \b
    Parameters an evaluation attention needs and the checkpoint lacks (learned landmark queries) are
    initialised with the run's seed, and listed; checkpoint parameters it does not use are listed as dropped.
    lra swap --run lra_runs/runs/listops/full/0 --attention mita --attn-param num_landmarks=64
    lra swap --run DIR --attention 'mita(topk=16),mita(topk=64),agent'
    lra swap --runs lra_runs --task listops                      # matrix over every finished run
    """
    from runners.experiments import resolve_attentions, swap_matrix, swap_run
    from runners.suite import split_list

    if (run_dir is None) == (runs_dir is None):
        raise UserError("give exactly one of --run DIR (one checkpoint) or --runs DIR (the matrix over its runs)")
    if task is not None and run_dir is not None:
        raise UserError("--task selects runs under --runs; with --run the task is the run's own")
    specs = [spec for text in attentions for spec in split_list(text)]
    if attn_params and not specs:
        raise UserError("--attn-param sets parameters of an --attention; give the attention too, e.g. --attention mita")
    params = _swap_attn_params(attn_params, specs)
    resolve_attentions(specs, params)  # bad names and parameters fail here, before any run is loaded
    opts, echo = _eval_config(**options), _echo_unless(options["quiet"])
    if run_dir is not None:
        result = swap_run(run_dir, specs, opts, attn_params=params, echo=echo)
    else:
        result = swap_matrix(runs_dir, specs or None, opts, attn_params=params, task=task, echo=echo)
    _report(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
