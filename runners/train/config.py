"""A run's configuration (`RunConfig`, what a user, the suite or a child process writes) and its
resolution against the preset and the registry (`resolve` -> `Resolved`), done once per run.

`Resolved` is everything a run is: the preset with the run's overrides, the attention as one typed
`AttentionSpec` (runners/specs.py), the device and the run directory; it says what the results
depend on (`config_dict`, hashed into `config_hash`) and what the record compares across runs
(`compared_config`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import attention_zoo
from attention_zoo.plugins import require_plugins
from lra import tasks
from lra.data.identity import data_identity
from lra.presets import Preset, apply_overrides, get_preset, preset_identity
from results import schema
from results.stats import resolution_line

from ..cpu_pinning import cpu_numerics
from ..defaults import DEFAULT_RUNS_DIR
from ..devices import resolve_device
from ..provenance import config_hash
from ..specs import AttentionSpec, attention_spec
from .run_logging import check_loggers
from .validation import check_preset_numbers, check_run_options, check_seed


@dataclass
class RunConfig:
    """One run: a task, an attention, a preset, a seed, and where to write.

    Attributes:
        task: task name (`lra.tasks.names()`).
        attention: attention name (`attention_zoo.names()`).
        attn_params: the attention's parameters (strings from the CLI are converted).
        preset: preset name (`lra.presets.PRESET_NAMES`).
        overrides: dotted-key preset overrides, e.g. {"model.layers": "3", "train.lr": "1e-3"}.
        seed: random seed (weights, dropout, data order).
        run_dir: output directory; "" = lra_runs/runs/<task>/<attention slug>/<seed>.
        max_steps: total optimizer steps (overrides train.steps; the schedule follows).
        checkpoint_every: steps between resumable checkpoints (overrides train.checkpoint_every).
        resume: continue from <run_dir>/checkpoints/last.pt if present; a finished run is returned as is.
        device: "auto" (CUDA if available), "cpu" or "cuda".
        amp: force autocast on (bf16 unless the preset says fp16) or off on CUDA; None = preset.
        data_dir / source: override the preset's data location / source.
        quiet: no progress bar (used by the suite's parallel children).
        plugins: attention plugins to import before anything is resolved: module names, or the
            provenance entries (`PluginInfo.to_dict()`) a run records. A run stores its attention's
            plugin here (run_config in config.json, run_config.json), so that its child processes,
            torchrun workers, SLURM jobs and a resume import it by themselves.
        log: loggers of the training curves (runners/train/run_logging.py), e.g. ["tensorboard"]; they
            change no result (not in the configuration hash).
    """

    task: str = "listops"
    attention: str = "mita"
    attn_params: dict[str, Any] = field(default_factory=dict)
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    run_dir: str = ""
    max_steps: int | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    device: str = "auto"
    amp: bool | None = None
    data_dir: str | None = None
    source: str | None = None
    quiet: bool = False
    plugins: list[Any] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """Parse a run configuration file; ValueError (one line: the key or field at fault) otherwise."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"the run configuration is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError("the run configuration is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run config keys {unknown}; valid keys: {', '.join(sorted(known))}")
        try:
            schema.validate(schema.RunConfigEntry, data)
        except ValueError as err:
            raise ValueError(f"invalid run configuration: {err}") from None
        return cls(**data)


@dataclass(frozen=True)
class Resolved:
    """A RunConfig resolved against the preset and the registry.

    Attributes:
        cfg: the configuration as given.
        preset: the preset with the configuration's overrides and explicit options applied.
        attention: the attention, its parameters (the preset's under the configuration's) validated.
        device: where the run trains.
        run_dir: where it writes.
    """

    cfg: RunConfig
    preset: Preset
    attention: AttentionSpec
    device: torch.device
    run_dir: Path

    @property
    def plugins(self) -> tuple[dict[str, Any], ...]:
        """The provenance of the plugin providing the attention; () for a built-in."""
        return (self.attention.plugin,) if self.attention.plugin is not None else ()

    def config_dict(self) -> dict[str, Any]:
        """The configuration that determines the results (paths and bookkeeping excluded)."""
        preset = preset_identity(self.preset)  # fields added later are absent at their old behaviour
        for path_field in ("data_dir", "cache_dir"):  # where data lives does not change results
            preset["data"].pop(path_field, None)
        preset["train"].pop("checkpoint_every", None)  # how often to save does not either
        # "auto" picks the official files when present, else generated data: hash what it picked
        preset["data"]["source"] = tasks.get(self.cfg.task).resolve_source(
            self.preset.data.source, self.preset.data
        )
        return {
            "task": self.cfg.task,
            "attention": self.attention.name,
            "attention_params": self.attention.params.to_dict(),
            "preset": preset,
            "seed": self.cfg.seed,
            "device_type": self.device.type,
            # Which data, not where they lie: different data under one path never share a hash.
            "data_identity": data_identity(self.cfg.task, self.preset.data),
            # The plugin's module names, not its source hash: editing a plugin keeps the run
            # resumable (with a warning, see plugins.require_plugins). Absent for built-ins, whose
            # hashes stay what they were.
            **({"plugins": [p["module"] for p in self.plugins]} if self.plugins else {}),
        }

    @property
    def config_hash(self) -> str:
        return config_hash(self.config_dict())

    def numerics(self) -> dict[str, Any] | None:
        """What a CPU run's floating-point order depends on in this process (`cpu_pinning`); None on CUDA."""
        return cpu_numerics() if self.device.type == "cpu" else None

    def compared_config(self) -> dict[str, Any]:
        """The configuration a run record carries, which the tables compare across runs: the hashed
        `config_dict()` plus, on the CPU, `cpu_numerics` (kept out of the hash, so that a finished
        suite moved to another machine is not retrained, but shown where cells differ in it)."""
        numerics = self.numerics()
        return {**self.config_dict(), **({"cpu_numerics": numerics} if numerics is not None else {})}

    def with_plugins(self) -> RunConfig:
        """The run's configuration naming the plugin its attention comes from (what children and a
        resume read)."""
        return dataclasses.replace(self.cfg, plugins=[*self.plugins]) if self.plugins else self.cfg

    def logged_config(self) -> dict[str, Any]:
        """The configuration a logger shows: what the results depend on, and how the run was started."""
        return {
            "config_hash": self.config_hash,
            **self.config_dict(),
            "run_config": dataclasses.asdict(self.cfg),
        }


def planned_test_examples(r: Resolved) -> int:
    """The test examples the run will be scored on, known before any data are loaded: the
    generator's count for generated data, else the preset's cap (`data.n_test`) or the task's
    canonical test split."""
    spec = tasks.get(r.cfg.task)
    data = r.preset.data
    if spec.resolve_source(data.source, data) == "generated":
        from lra.data.generated import generator_params

        return int(generator_params(r.cfg.task, data).n_test)
    full = int(spec.splits["test"])
    return min(data.n_test, full) if data.n_test > 0 else full


def resolution(task: str, test_examples: int) -> str:
    """The line `lra run` and `lra suite` print before training: how finely `test_examples` test
    examples resolve accuracy, at chance (1 / classes) and at 50% (results/stats.py)."""
    chance = 1.0 / tasks.get(task).num_classes
    return "resolution: " + resolution_line(test_examples, chance, what=task)


def default_run_dir(task: str, slug: str, seed: int, root: str = DEFAULT_RUNS_DIR) -> Path:
    return Path(root) / "runs" / task / slug / str(seed)


def resolve(cfg: RunConfig, *, elsewhere: bool = False) -> Resolved:
    """Validate the run configuration; ValueError with a one-line message on bad input.

    `elsewhere`: the run will execute on another machine (a SLURM job), so device "cuda" is not
    checked against this one."""
    check_seed(cfg.seed)
    check_run_options(cfg.max_steps, cfg.checkpoint_every)
    load_run_plugins(cfg)
    check_loggers(cfg.log)
    attention_zoo.get(cfg.attention)  # a clear error for an unknown attention before anything else
    tasks.get(cfg.task)  # likewise for unknown tasks, before presets are looked up
    preset = apply_overrides(get_preset(cfg.task, cfg.preset), dict(cfg.overrides))
    attention = attention_spec(cfg.attention, {**preset.attention.get(cfg.attention, {}), **cfg.attn_params})
    explicit: dict[str, Any] = {}
    if cfg.max_steps is not None:
        explicit["train.steps"] = cfg.max_steps
    if cfg.checkpoint_every is not None:
        explicit["train.checkpoint_every"] = cfg.checkpoint_every
    if cfg.data_dir is not None:
        explicit["data.data_dir"] = cfg.data_dir
    if cfg.source is not None:
        explicit["data.source"] = cfg.source
    if cfg.amp is False:
        explicit["train.amp"] = "none"
    elif cfg.amp is True and preset.train.amp == "none":
        explicit["train.amp"] = "bf16"
    preset = apply_overrides(preset, explicit)
    check_preset_numbers(preset)
    tasks.get(cfg.task).resolve_source(preset.data.source)
    device = resolve_device(cfg.device, elsewhere=elsewhere)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg.task, attention.slug, cfg.seed)
    return Resolved(cfg, preset, attention, device, run_dir)


def load_run_plugins(cfg: RunConfig) -> None:
    """Check that the plugins `cfg` names -- or, resuming a run directory, those its config.json
    recorded -- are loaded (`plugins.require_plugins`: named by the user, or trusted): a run
    configuration is a record and never imports code by itself. PluginError (one line: which plugin,
    how to allow it or what to install) otherwise."""
    recorded = list(cfg.plugins)
    source = "this run configuration"
    if not recorded and cfg.resume and cfg.run_dir:
        recorded, source = recorded_plugins(Path(cfg.run_dir)), f"the run in {cfg.run_dir}"
    if recorded:
        require_plugins(recorded, source=source)


def recorded_plugins(run_dir: Path) -> list[Any]:
    """The plugins a run directory's config.json records (empty when there is none); ValueError
    naming the file and the field when it is not a valid run configuration."""
    path = run_dir / "config.json"
    if not path.exists():
        return []
    config = schema.read_run_config_file(path)
    return list((config.get("run_config") or {}).get("plugins") or [])
