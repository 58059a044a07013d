"""The suite's plan: a grid of runs (`SuiteConfig`) resolved into cells, one per (task x attention x
seed), each with its run directory and configuration hash (`plan`), and what a cell's directory
holds before anything runs (`cell_state`).

Torch-free at import: `lra suite --help` and `--dry-run` start quickly (planning imports the zoo).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lra.io import atomic_write_json
from results.records import RECORD_NAME, read_record

from ..defaults import DEFAULT_RUNS_DIR
from ..provenance import utc_now
from ..specs import parse_spec, parse_specs

if TYPE_CHECKING:
    from lra.presets import DataConfig

    from ..train import RunConfig

DEFAULT_OUT = DEFAULT_RUNS_DIR
LAUNCHERS = ("local", "submitit")
DAMAGED = "damaged"  # the cell state of a run whose checkpoint fails its integrity check


@dataclass(frozen=True)
class SlurmOptions:
    """Executor options of `--launcher submitit` (one SLURM job per run).

    Attributes:
        partition: SLURM partition (None = the cluster default).
        time_min: wall-time limit per run, minutes.
        gpus_per_run: GPUs per run; more than one runs the run with DDP (torchrun, one process per GPU).
        mem_gb: memory per run in GB (None = the cluster default).
        cpus_per_run: CPU cores per run (None = 4 per GPU, at least 4).
        cluster: submitit cluster: None = SLURM (an error when `sbatch` is not available),
            "local" or "debug" to try the launcher on one machine.
    """

    partition: str | None = None
    time_min: int = 240
    gpus_per_run: int = 1
    mem_gb: int | None = None
    cpus_per_run: int | None = None
    cluster: str | None = None


@dataclass(frozen=True)
class SuiteConfig:
    """A grid of runs.

    Attributes:
        tasks: task names; empty = listops and pathfinder for the tiny / quick presets (generated
            data), every registered task otherwise.
        attentions: attention specs, a registry name optionally with parameters
            (`mita(num_landmarks=64,topk=64)`); empty = every registered attention with defaults.
        seeds: random seeds; every (task, attention) runs once per seed.
        preset: preset name of every run (`lra.presets.PRESET_NAMES`).
        out: output directory (runs under `<out>/runs`, tables and plots at the top).
        jobs: local runs in parallel.
        launcher: "local" or "submitit".
        attn_params: per-attention parameters for every spec of that name, {name: {key: value}}.
        overrides: dotted preset overrides for every run ({"train.steps": "200"}).
        max_steps, checkpoint_every, device, amp, data_dir, source: passed to every RunConfig.
        slurm: executor options of the submitit launcher.
        max_minutes: start no new run after this many minutes from the start of the suite (data
            preparation included; None = no limit). Runs in progress finish; the runs left are
            reported as "not run" and the same command continues with them.
        log: loggers of every run's training curves (`RunConfig.log`, e.g. ("tensorboard",)).
    """

    tasks: tuple[str, ...] = ()
    attentions: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    preset: str = "quick"
    out: str = DEFAULT_OUT
    jobs: int = 1
    launcher: str = "local"
    attn_params: dict[str, dict[str, str]] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    max_steps: int | None = None
    checkpoint_every: int | None = None
    device: str = "auto"
    amp: bool | None = None
    data_dir: str | None = None
    source: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    max_minutes: float | None = None
    log: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cell:
    """One planned run: its configuration, where it lives, and what the runner will call it.

    Plain values only (a cell travels to a SLURM job): the attention as its name, label and
    parameters of the run's `AttentionSpec`, resolved once by `plan`."""

    run_id: str
    task: str
    attention: str
    label: str
    seed: int
    run_dir: Path
    config: RunConfig
    config_hash: str
    resolved_config: dict[str, Any]
    attention_params: dict[str, Any]
    max_steps: int
    num_classes: int
    data: DataConfig  # the resolved preset's data settings (the suite prepares each task's data once)
    test_examples: int = 0  # the test examples it will be scored on (`runners.train.planned_test_examples`)


def default_tasks(preset: str) -> list[str]:
    from lra.presets import suite_tasks

    return suite_tasks(preset)


def plan(cfg: SuiteConfig) -> list[Cell]:
    """Validate the grid and resolve every run, once; ValueError (one line) on any bad name or value."""
    import attention_zoo
    from lra import tasks

    from ..train import RunConfig, planned_test_examples, resolve

    if cfg.jobs < 1:
        raise ValueError(f"--jobs must be at least 1; got {cfg.jobs}")
    if cfg.max_minutes is not None and not cfg.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0; got {cfg.max_minutes:g}")
    if cfg.max_minutes is not None and cfg.launcher != "local":
        raise ValueError("--max-minutes applies to local runs; with --launcher submitit use --slurm-time")
    if cfg.launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {cfg.launcher!r}; valid launchers: {', '.join(LAUNCHERS)}")
    if not cfg.seeds:
        raise ValueError("no seeds given; pass --seeds 0 (or 0,1,2)")
    task_names = list(dict.fromkeys(cfg.tasks)) or default_tasks(cfg.preset)
    load_suite_plugins(Path(cfg.out), cfg.attentions)
    specs = parse_specs(cfg.attentions or attention_zoo.names(), cfg.attn_params)
    out = Path(cfg.out)
    # SLURM jobs with GPUs run on CUDA whatever this (login) machine has: settle "auto" here, so
    # that the configuration hash planned here is the one the job computes and records.
    slurm_gpus = cfg.launcher == "submitit" and cfg.slurm.gpus_per_run > 0
    device = "cuda" if slurm_gpus and cfg.device == "auto" else cfg.device
    cells: dict[str, Cell] = {}
    for task in task_names:
        for name, params in specs:
            for seed in cfg.seeds:
                run_cfg = RunConfig(
                    task=task,
                    attention=name,
                    attn_params=params,
                    preset=cfg.preset,
                    overrides=dict(cfg.overrides),
                    seed=seed,
                    max_steps=cfg.max_steps,
                    checkpoint_every=cfg.checkpoint_every,
                    resume=True,
                    device=device,
                    amp=cfg.amp,
                    data_dir=cfg.data_dir,
                    source=cfg.source,
                    quiet=True,
                    log=list(cfg.log),
                )
                r = resolve(run_cfg, elsewhere=slurm_gpus)
                run_dir = out / "runs" / task / r.attention.slug / str(seed)
                # The run's own configuration names its attention's plugin: the child process, a
                # torchrun worker or a SLURM job imports it from there.
                run_cfg = dataclasses.replace(run_cfg, run_dir=str(run_dir), plugins=list(r.plugins))
                run_id = f"{task}/{r.attention.label}/{seed}"
                if run_id in cells:
                    continue
                cells[run_id] = Cell(
                    run_id=run_id,
                    task=task,
                    attention=r.attention.name,
                    label=r.attention.label,
                    seed=seed,
                    run_dir=run_dir,
                    config=run_cfg,
                    config_hash=r.config_hash,
                    resolved_config=r.config_dict(),
                    attention_params=r.attention.params.to_dict(),
                    max_steps=r.preset.train.steps,
                    num_classes=tasks.get(task).num_classes,
                    test_examples=planned_test_examples(r),
                    data=r.preset.data,
                )
    return list(cells.values())


def load_suite_plugins(out: Path, attentions: Sequence[str]) -> None:
    """Re-running a suite: check that the plugins its suite.json records, whose attentions are asked
    for (all of them when every attention is), are loaded -- named with --plugin / LRA_PLUGINS or
    trusted with --trust-recorded-plugins (`plugins.require_plugins`); a PluginError (one line) says
    which plugin and how to allow it otherwise. The file is validated (results/schema.py)."""
    path = out / "suite.json"
    if not path.exists():
        return
    from results.schema import read_suite_file

    try:
        recorded = read_suite_file(path).get("plugins") or []
    except ValueError as err:
        raise ValueError(f"{err}; delete it (the suite writes it again) or choose another --out") from None
    from attention_zoo.plugins import require_plugins

    names = {parse_spec(spec)[0] for spec in attentions}
    wanted = [p for p in recorded if not names or names & set(p.get("mechanisms", ()))]
    require_plugins(wanted, source=f"the suite in {out} (its suite.json)")


def write_plan(cfg: SuiteConfig, cells: Sequence[Cell], out: Path) -> None:
    """`<out>/suite.json`: the grid, its runs and the plugins they need (a re-run imports them)."""
    atomic_write_json(
        out / "suite.json",
        {
            "suite": dataclasses.asdict(cfg),
            "written_at": utc_now(),
            # The attention plugins of the runs: a re-run of the suite imports them by itself.
            "plugins": list({p["module"]: p for c in cells for p in c.config.plugins}.values()),
            "runs": [
                {"run_id": c.run_id, "run_dir": str(c.run_dir), "config_hash": c.config_hash} for c in cells
            ],
        },
    )


def resolution_lines(cells: Sequence[Cell]) -> list[str]:
    """One line per task of the plan: the resolution its test set gives (`runners.train.resolution`),
    printed before anything trains."""
    from ..train import resolution

    sizes = dict.fromkeys((cell.task, cell.test_examples) for cell in cells if cell.test_examples > 0)
    return [resolution(task, n) for task, n in sizes]


# ----------------------------------------------------------------------------------------------
# What a cell's directory holds
# ----------------------------------------------------------------------------------------------


def read_record_or_none(path: Path) -> dict[str, Any] | None:
    """The record at `path`; None when it cannot be read (torn, another schema)."""
    try:
        return read_record(path)
    except ValueError:
        return None


def _stored_config_hash(run_dir: Path) -> str | None:
    """The configuration hash the directory's record or checkpoint belongs to (None if neither;
    `DAMAGED` for a checkpoint, without a record, that fails its integrity check)."""
    record_path = run_dir / RECORD_NAME
    if record_path.exists():
        with contextlib.suppress(ValueError):
            return read_record(record_path).get("config_hash")
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if checkpoint.exists():
        from ..train.checkpoints import CheckpointError, load_checkpoint

        try:
            return load_checkpoint(checkpoint, remedy="").get("config_hash")
        except (OSError, CheckpointError):  # a checkpoint that cannot be read cannot be resumed either
            return DAMAGED
    return None


def cell_state(cell: Cell) -> str:
    """'done' | 'diverged' (final results of this configuration), 'stale' (another configuration),
    'damaged' (its checkpoint fails its integrity check), 'resume' (interrupted or failed, continues
    from its checkpoint), 'retry' (failed before its first checkpoint) or 'new'."""
    stored = _stored_config_hash(cell.run_dir)
    if stored is None:
        return "new"
    if stored == DAMAGED:
        return DAMAGED
    if stored != cell.config_hash:
        return "stale"
    record = read_record_or_none(cell.run_dir / RECORD_NAME)
    status = record.get("status") if record else None
    if status in ("ok", "diverged"):
        return "done" if status == "ok" else "diverged"
    checkpoint = cell.run_dir / "checkpoints" / "last.pt"
    if not checkpoint.exists():
        return "retry"
    # A torn, bit-flipped or old-format checkpoint cannot be resumed (the runner would refuse it at
    # every try): the directory is set aside and the run starts again. Its digest is checked here;
    # nothing is unpickled.
    from ..train.checkpoints import checkpoint_problem

    return "resume" if checkpoint_problem(checkpoint) is None else DAMAGED


def damage(cell: Cell) -> str:
    """What is wrong with the checkpoint of a `damaged` cell, in one line."""
    from ..train.checkpoints import checkpoint_problem

    return checkpoint_problem(cell.run_dir / "checkpoints" / "last.pt") or "its checkpoint cannot be read"


def archive(cell: Cell, out: Path, stamp: str) -> Path:
    """Move a run directory of another configuration out of the way (hidden from the store)."""
    target = out / ".replaced" / stamp / cell.run_dir.relative_to(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(cell.run_dir), str(target))
    return target
