"""Trained runs for the experiments: attention specs resolved under a run's preset, a run directory
loaded with its checkpoint, model and data, and the finished runs under a folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import attention_zoo
from attention_zoo.plugins import require_plugins
from lra import tasks
from lra.io import slug
from lra.presets import ModelConfig, Preset, TrainConfig
from lra.tasks.base import DataConfig
from results.records import RECORD_NAME, load_records, read_record
from results.schema import read_run_config_file

from ..provenance import config_hash
from ..specs import parse_spec, parse_specs
from ..train.checkpoints import load_checkpoint

CHECKPOINTS = ("best", "last")
SPLITS = ("val", "test")
Echo = Callable[[str], None]


def quiet_echo(_: str) -> None:
    """An `echo` that prints nothing."""


# An evaluation attention: a mechanism and its resolved parameters.
Attention = tuple[attention_zoo.Mechanism, attention_zoo.AttentionParams]


def resolve_attentions(
    specs: Sequence[str],
    attn_params: Mapping[str, Mapping[str, Any]] | None = None,
    preset_attention: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Attention]:
    """Attention specs (`full`, `mita(topk=64)`) plus per-name parameters -> validated (mechanism,
    params), duplicates removed. Parameters: the registry's defaults, then the preset's
    per-mechanism defaults (`Preset.attention`: the budget `lra suite` trains that mechanism with),
    then `attn_params`, then the spec's own -- never inherited from a checkpoint's attention."""
    preset_attention = preset_attention or {}
    out: dict[str, Attention] = {}
    for name, given in parse_specs(specs, attn_params):
        mechanism = attention_zoo.get(name)
        params = mechanism.params(**{**preset_attention.get(name, {}), **given})
        out.setdefault(mechanism.label(params), (mechanism, params))
    return list(out.values())


def resolve_one(
    spec: str,
    attn_params: Mapping[str, Mapping[str, Any]] | None,
    preset_attention: Mapping[str, Mapping[str, Any]] | None,
) -> Attention:
    """`resolve_attentions` for one spec (the `attn_params` of other names are ignored)."""
    name = parse_spec(spec)[0]
    params = {name: (attn_params or {}).get(name, {})}
    return resolve_attentions([spec], params, preset_attention)[0]


def spec_under_preset(
    mechanism: attention_zoo.Mechanism,
    params: attention_zoo.AttentionParams,
    preset_attention: Mapping[str, Mapping[str, Any]],
) -> str:
    """The shortest spec that resolves to `params` under a preset: the name plus the parameters
    that differ from the preset's budget, e.g. tiny's mita(num_landmarks=8,topk=8) -> "mita"."""
    base = mechanism.params(**preset_attention.get(mechanism.name, {})).to_dict()
    changed = [f"{k}={v}" for k, v in params.to_dict().items() if v != base[k]]
    return f"{mechanism.name}({','.join(changed)})" if changed else mechanism.name


def is_mita(mechanism: attention_zoo.Mechanism) -> bool:
    """Mechanisms with MiTA's landmark / top-k parameters (`mita`, `mita_route`)."""
    fields = {f.name for f in dataclasses.fields(mechanism.params_cls)}
    return {"num_landmarks", "topk"} <= fields


@dataclass(frozen=True)
class TrainedRun:
    """A run directory with its configuration and one checkpoint's weights.

    Attributes:
        run_dir: the directory (`config.json`, `checkpoints/`, `result.json`).
        task: task name.
        preset: the resolved preset the run trained with (from its config.json, data dir applied).
        mechanism, params: the attention it was trained with.
        seed: its seed.
        config_hash: hash of its configuration; the checkpoint carries the same.
        checkpoint: "best" or "last".
        checkpoint_path: the checkpoint file.
        step: optimizer step of the checkpoint.
        state: the model's state dict.
        record: its result record (None if absent or unreadable).
    """

    run_dir: Path
    task: str
    preset: Preset
    mechanism: attention_zoo.Mechanism
    params: attention_zoo.AttentionParams
    seed: int
    config_hash: str
    checkpoint: str
    checkpoint_path: Path
    step: int | None
    state: dict[str, torch.Tensor]
    record: dict[str, Any] | None

    @property
    def label(self) -> str:
        return self.mechanism.label(self.params)

    @property
    def run_id(self) -> str:
        return f"{self.task}/{self.label}/{self.seed}"

    @property
    def tag(self) -> str:
        """Directory name of this run's experiment outputs."""
        return slug(f"{self.mechanism.slug(self.params)}-seed{self.seed}-{self.config_hash[:8]}")


def _config_hash(config: Mapping[str, Any]) -> str:
    """The hash `runners.train` gives the configuration stored in a run's config.json."""
    return config_hash({k: v for k, v in config.items() if k != "run_config"})


def _preset_from_config(preset: Mapping[str, Any], data_dir: str | None) -> Preset:
    data = dict(preset["data"])
    if data_dir:
        data["data_dir"] = data_dir
    try:
        return Preset(
            name=preset["name"],
            task=preset["task"],
            model=ModelConfig(**preset["model"]),
            train=TrainConfig(**preset["train"]),
            data=DataConfig(**data),
            description=preset.get("description", ""),
            attention=preset.get("attention", {}),
        )
    except TypeError as err:
        raise ValueError(f"the run's preset has settings this version does not know ({err})") from None


def load_run(run_dir: str | Path, *, checkpoint: str = "best", data_dir: str | None = None) -> TrainedRun:
    """Read a run directory written by `lra run` / `lra suite` and one of its checkpoints.

    `data_dir` replaces the data root the run used (same data, another place). FileNotFoundError
    for a missing directory, config.json or checkpoint; ValueError for a checkpoint that was not
    written by the run its config.json describes (copied from another task or run).
    """
    run_dir = Path(run_dir)
    where = "pass a run directory of `lra run` (--run-dir) or a suite's OUT/runs/<task>/<attention>/<seed>"
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist; {where}")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json); {where}")
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}; got {checkpoint!r}")
    config = read_run_config_file(config_path)  # validated: one line naming the file and the field
    run_config = config.get("run_config") or {}
    task = config["task"]
    tasks.get(task)
    # The plugin it was trained with, if the user named it (--plugin) or trusts the records.
    require_plugins(run_config.get("plugins") or [], source=f"the run in {run_dir}")
    mechanism = attention_zoo.get(config["attention"])
    params = mechanism.params(**config["attention_params"])
    preset = _preset_from_config(config["preset"], data_dir or run_config.get("data_dir"))
    config_hash = _config_hash(config)
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint {path}; the run has not reached its first evaluation -- train or resume it "
            "(lra run --resume) or pass --checkpoint last"
        )
    saved = load_checkpoint(
        path,
        remedy=f"train the run again (delete {run_dir} and rerun lra run / lra suite)"
        + (" or pass --checkpoint last" if checkpoint == "best" else ""),
    )
    if "model" not in saved:
        raise ValueError(f"{path} is not a checkpoint written by lra run (no model weights)")
    if saved.get("config_hash") != config_hash:
        raise ValueError(
            f"{path} was not written by the run its config.json describes (task {task}, attention "
            f"{mechanism.label(params)}, seed {config['seed']}): configuration {saved.get('config_hash')} != "
            f"{config_hash}; keep each checkpoint with its own run directory"
        )
    record = None
    if (run_dir / RECORD_NAME).is_file():
        with contextlib.suppress(ValueError):
            record = read_record(run_dir / RECORD_NAME)
    return TrainedRun(
        run_dir=run_dir,
        task=task,
        preset=preset,
        mechanism=mechanism,
        params=params,
        seed=int(config["seed"]),
        config_hash=config_hash,
        checkpoint=checkpoint,
        checkpoint_path=path,
        step=saved.get("step"),
        state=saved["model"],
        record=record,
    )


def find_runs(root: str | Path, task: str | None = None) -> list[Path]:
    """The run directories under `root` whose record says `ok`, all of one task.

    ValueError when there are none, or when they span several tasks and `task` is not given.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"directory {root} does not exist; pass a suite's --out directory to --runs")
    records, _ = load_records(root, kind="run")
    finished = [r for r in records if r.get("status") == "ok"]
    found = sorted({r["task"] for r in finished})
    if task is not None:
        tasks.get(task)
        finished = [r for r in finished if r["task"] == task]
        if not finished:
            raise ValueError(
                f"no finished runs of task {task!r} under {root}; tasks with finished runs: {', '.join(found) or 'none'}"
            )
    elif not finished:
        raise FileNotFoundError(f"no finished runs (result.json with status ok) under {root}")
    elif len(found) > 1:
        raise ValueError(f"{root} holds runs of several tasks ({', '.join(found)}); choose one with --task")
    return sorted({Path(r["_path"]).parent for r in finished})
