"""MiTA experiments as commands: sweeps and checkpoint swaps whose results land in the results store.

* `sweep_mk` (``lra sweep mk``) -- evaluate one trained MiTA checkpoint at other numbers of
  landmarks m and keys per expert k, without retraining ("train small, infer large"): one
  ``kind="eval"`` record per grid cell, a table and a heat map of accuracy over the grid with the
  trained (m, k) outlined.
* `swap_run` / `swap_matrix` (``lra swap``) -- evaluate a checkpoint trained with one attention using
  another. Weights transfer because the layer's projections are the same for every mechanism and
  MiTA adds no parameters; parameters an evaluation attention has and the checkpoint lacks (learned
  landmark queries) are initialised with the run's seed and named in the records and the table,
  parameters it does not use are dropped and named too. Over a set of runs of one task: the matrix
  train attention x evaluation attention.
* `sweep_scaling` (``lra sweep scaling``) -- forward and forward + backward time of every attention
  (and MiTA backend) against N on log-log axes, the paper's wall-clock figure: `runners.bench`
  measures and writes the efficiency records; this adds the figure and the length from which each
  attention is faster than full attention.
* `sweep_variants` (``lra sweep s``, ``lra sweep landmarks``) -- train MiTA variants on one task with
  everything else fixed (one `runners.suite` grid, so finished runs are reused and interrupted ones
  resume), then tabulate accuracy, keys per query, parameters and throughput with the routing
  diagnostics of each trained model (`attention_zoo.mita.diagnostics`: expert-load entropy, pruned
  fraction, overlap with full-attention top-k) on a few validation batches.

Everything goes under one results root, `out` (default ``lra_experiments``, kept apart from the
suite's ``lra_runs`` so that short sweep runs never mix into its leaderboard)::

    mk/<task>/<run tag>/<checkpoint>-<split>/m<M>-k<K>.json    mk-<checkpoint>-<split>.{md,csv,png}
    swap/<task>/<run tag>/<checkpoint>-<split>/<attention>.json  swap-<checkpoint>-<split>.{md,csv,png}
    swap/<task>/matrix-<checkpoint>-<split>.{md,csv,png}
    scaling/efficiency/...  (records of runners.bench)           scaling/scaling-<device>-<config>.{md,png}
    <s|landmarks>/<task>/runs/<task>/<attention>/<seed>/ (runs)   diagnostics/...  sweep-<name>.{md,csv,png}

A run tag is ``<attention slug>-seed<seed>-<configuration hash prefix>``. Records are rewritten when
the same cell is evaluated again; every table and figure is written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

import attention_zoo
from attention_zoo.mita import diagnostics
from attention_zoo.module import MultiHeadAttention
from lra import models, tasks
from lra.configs import ModelConfig, Preset, TrainConfig
from lra.io import atomic_path, atomic_write, atomic_write_text
from lra.tasks.base import DataConfig, LRADataset
from results.records import RECORD_NAME, SCHEMA_VERSION, load_records, read_record, write_record

from . import bench, suite
from .timing import device_name, resolve_device
from .train import Dist, batch_inputs, evaluate, evaluated_indices, git_commit

EXPERIMENTS_OUT = "lra_experiments"
CHECKPOINTS = ("best", "last")
SPLITS = ("val", "test")
# The grid; the trained values are added to each axis (see `sweep_mk`).
DEFAULT_GRID = {"num_landmarks": (8, 16, 32, 64), "topk": (8, 16, 32, 64)}
GRID_AXES = {"m": "num_landmarks", "k": "topk", "num_landmarks": "num_landmarks", "topk": "topk"}
# Parameters whose values are learned weights of a given shape: m cannot change at evaluation.
LEARNED_LANDMARKS = ("learned", "avgpool+learned")
# Lengths of `lra sweep scaling`: 2^10..2^20 on CUDA (as far as memory allows), reduced on CPU.
SCALING_LENGTHS = {"cuda": tuple(2**e for e in range(10, 21)), "cpu": tuple(2**e for e in range(10, 13))}
# `lra sweep <name>`: the swept MiTA parameter and its default values.
VARIANT_SWEEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "s": ("num_routed", ("1", "2", "4")),
    "landmarks": ("landmarks", ("avgpool", "learned", "random", "kmeans")),
}
DIAGNOSTIC_KEYS = ("load_entropy", "load_max", "pruned_fraction", "overlap")
DPI = 150

Echo = Callable[[str], None]


def _quiet_echo(_: str) -> None:
    """An `echo` that prints nothing."""


# ----------------------------------------------------------------------------------------------
# Parsing command-line lists
# ----------------------------------------------------------------------------------------------


def parse_grid(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """`["m=8,16", "k=8,16"]` (or one item "m=8,16 k=8,16") -> {"num_landmarks": (8, 16), "topk": (8, 16)}.

    An axis that is not given is left out (the caller fills it). ValueError, one line, on an unknown
    or repeated axis, a value that is not a positive integer, or no axis at all.
    """
    example = "e.g. --grid m=8,16,32,64 k=8,16,32,64"
    grid: dict[str, tuple[int, ...]] = {}
    for item in (part for text in items for part in text.split()):
        axis, sep, values = item.partition("=")
        name = GRID_AXES.get(axis.strip())
        if not sep or name is None:
            raise ValueError(f"--grid takes AXIS=VALUES with axes m and k ({example}); got {item!r}")
        if name in grid:
            raise ValueError(f"--grid names axis {axis.strip()!r} twice ({example})")
        parsed = []
        for value in values.split(","):
            if not re.fullmatch(r"\s*\d+\s*", value) or int(value) < 1:
                raise ValueError(
                    f"--grid {axis.strip()} values must be positive integers ({example}); got {values!r}"
                )
            parsed.append(int(value))
        grid[name] = tuple(sorted(set(parsed)))
    if not grid:
        raise ValueError(f"--grid is empty ({example})")
    return grid


def parse_scaling_lengths(text: str) -> tuple[int, ...]:
    """`2^10..2^20` (every power of two in between), `2^10,2^12`, or `1024,4K` -> sorted lengths."""
    problem = f"--lengths expects powers of two 2^10..2^20, a list 2^10,2^12 or lengths 1K,4K; got {text!r}"
    lengths: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        span = re.fullmatch(r"2\^(\d+)\s*\.\.\s*2\^(\d+)", part)
        power = re.fullmatch(r"2\^(\d+)", part)
        if span:
            low, high = int(span.group(1)), int(span.group(2))
            if low > high or high > 30:
                raise ValueError(problem)
            lengths += [2**e for e in range(low, high + 1)]
        elif power:
            if int(power.group(1)) > 30:
                raise ValueError(problem)
            lengths.append(2 ** int(power.group(1)))
        else:
            try:
                lengths += list(bench.parse_lengths(part))
            except ValueError:
                raise ValueError(problem) from None
    return tuple(sorted(set(lengths)))


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
    attn_params = dict(attn_params or {})
    preset_attention = preset_attention or {}
    parsed = [suite.parse_attention(spec) for spec in specs]
    names = {name for name, _ in parsed}
    for name in [name for name, _ in parsed] + list(attn_params):
        attention_zoo.get(name)
    unknown = sorted(set(attn_params) - names)
    if unknown:
        raise ValueError(
            f"--attn-param names attention {unknown[0]!r}, which is not among --attention ({', '.join(sorted(names))})"
        )
    out: dict[str, Attention] = {}
    for name, inline in parsed:
        mechanism = attention_zoo.get(name)
        params = mechanism.params(**{**preset_attention.get(name, {}), **attn_params.get(name, {}), **inline})
        out.setdefault(mechanism.label(params), (mechanism, params))
    return list(out.values())


# ----------------------------------------------------------------------------------------------
# Trained runs
# ----------------------------------------------------------------------------------------------


def resolve_one(
    spec: str,
    attn_params: Mapping[str, Mapping[str, Any]] | None,
    preset_attention: Mapping[str, Mapping[str, Any]] | None,
) -> Attention:
    """`resolve_attentions` for one spec (the `attn_params` of other names are ignored)."""
    name = suite.parse_attention(spec)[0]
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
        return _slug(f"{self.mechanism.slug(self.params)}-seed{self.seed}-{self.config_hash[:8]}")


def _config_hash(config: Mapping[str, Any]) -> str:
    """The hash `runners.train` gives the configuration stored in a run's config.json."""
    canonical = json.dumps(
        {k: v for k, v in config.items() if k != "run_config"}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_path}: unreadable ({err})") from None
    if not isinstance(config, dict) or not {"task", "attention", "attention_params", "preset", "seed"} <= set(
        config
    ):
        raise ValueError(f"{config_path} is not the configuration of a run (written by lra run)")
    run_config = config.get("run_config") or {}
    task = config["task"]
    tasks.get(task)
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
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or "model" not in saved:
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


# ----------------------------------------------------------------------------------------------
# Evaluating a checkpoint with any attention
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalOptions:
    """How checkpoints are evaluated (`lra sweep mk`, `lra swap`).

    Attributes:
        split: "test" or "val".
        checkpoint: "best" (best validation, the LRA convention) or "last".
        device: "auto", "cpu" or "cuda".
        batch_size: examples per forward (0 = the run's evaluation batch).
        limit: evaluate `limit` examples of the split only (a fixed random subset; 0 = all).
        data_dir: data root, if the data are no longer where the run found them.
        diag_batches: > 0 records MiTA's routing diagnostics on that many batches of the split
            (an extra O(N^2) pass per layer; torch backend for that pass).
        out: experiments root (records, tables and figures below it).
        quiet: no progress bar.
    """

    split: str = "test"
    checkpoint: str = "best"
    device: str = "auto"
    batch_size: int = 0
    limit: int = 0
    data_dir: str | None = None
    diag_batches: int = 0
    out: str = EXPERIMENTS_OUT
    quiet: bool = False

    def check(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"--split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"--checkpoint must be one of {', '.join(CHECKPOINTS)}; got {self.checkpoint!r}")
        for name in ("batch_size", "limit", "diag_batches"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0; got {getattr(self, name)}")
        resolve_device(self.device)


@dataclass
class Evaluation:
    """What one evaluation measured."""

    accuracy: float
    loss: float
    n_examples: int
    chance_acc: float
    diagnostics: dict[str, Any] | None = None


class Evaluator:
    """Evaluates checkpoints with any attention; loads each split once."""

    def __init__(self, opts: EvalOptions) -> None:
        opts.check()
        self.opts = opts
        self.device = resolve_device(opts.device)
        self.device_name = device_name(self.device)
        self.provenance = {"torch_version": torch.__version__, "git_commit": git_commit()}
        self._splits: dict[tuple[str, DataConfig], LRADataset] = {}

    def dataset(self, run: TrainedRun) -> LRADataset:
        key = (run.task, run.preset.data)
        if key not in self._splits:
            self._splits[key] = tasks.get(run.task).load(self.opts.split, run.preset.data)
        return self._splits[key]

    def model(
        self, run: TrainedRun, mechanism: attention_zoo.Mechanism, params: attention_zoo.AttentionParams
    ) -> tuple[nn.Module, list[str], list[str]]:
        """The run's model with `mechanism(params)` in every layer and the checkpoint's weights.

        Returns (model in eval mode, parameters initialised because the checkpoint lacks them,
        checkpoint parameters dropped because the model has no place for them), each as
        'name [shape]'. ValueError when the checkpoint does not fit the run's model otherwise.
        """
        spec = tasks.get(run.task)
        embed = run.state.get("encoder.embed.weight")
        if embed is None:
            raise ValueError(f"{run.checkpoint_path} holds no task model (no encoder.embed.weight)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(run.seed)  # parameters the checkpoint lacks are initialised reproducibly
            model = models.build(
                vocab_size=int(embed.shape[0]),
                max_len=self.dataset(run).seq_len,
                num_classes=spec.num_classes,
                dual_input=spec.dual_input,
                model=run.preset.model,
                attention=mechanism.name,
                attn_params=params.to_dict(),
            )
        own = model.state_dict()
        # Attention-owned parameters of another shape (learned landmarks of another m) are replaced:
        # listed as dropped from the checkpoint and initialised in the model.
        reshaped = [k for k, v in run.state.items() if k in own and own[k].shape != v.shape]
        foreign = [k for k in reshaped if not _attention_owned(k)]
        if foreign:
            key = foreign[0]
            raise ValueError(
                f"{run.checkpoint_path} does not fit the model of {run.run_dir / 'config.json'}: {key} has shape "
                f"{list(run.state[key].shape)}, the model {list(own[key].shape)}"
            )
        missing = [k for k in own if k not in run.state or k in reshaped]
        unused = [k for k in run.state if k not in own or k in reshaped]
        foreign = [k for k in missing + unused if not _attention_owned(k)]
        if foreign:
            raise ValueError(
                f"{run.checkpoint_path} does not fit the model of {run.run_dir / 'config.json'} "
                f"({len(foreign)} parameters differ, e.g. {foreign[0]})"
            )
        model.load_state_dict(
            {k: v for k, v in run.state.items() if k in own and k not in reshaped}, strict=False
        )
        describe = lambda keys, source: [f"{k} {list(source[k].shape)}" for k in keys]
        return model.to(self.device).eval(), describe(missing, own), describe(unused, run.state)

    def batch_size(self, run: TrainedRun) -> int:
        if self.opts.batch_size:
            return self.opts.batch_size
        train = run.preset.train
        return max(1, min(train.micro_batch_size or train.batch_size, train.batch_size))

    def evaluate(self, run: TrainedRun, model: nn.Module, limit: int | None = None) -> Evaluation:
        """Accuracy and loss on the split (`limit` of its examples, a fixed subset; default: the options'),
        and the routing diagnostics when the options ask for them."""
        ds = self.dataset(run)
        batch = self.batch_size(run)
        limit = self.opts.limit if limit is None else limit
        accuracy, loss = evaluate(model, ds, batch, self.device, Dist(), self._autocast(run), limit)
        labels = ds.labels[evaluated_indices(len(ds), limit)]  # exactly the examples scored
        n = len(labels)
        chance = float(torch.bincount(labels).max()) / max(1, n)
        diag = None
        if self.opts.diag_batches:
            diag = routing_diagnostics(model, ds, batch, self.device, self.opts.diag_batches, self.opts.split)
        return Evaluation(accuracy, loss, n, chance, diag)

    def _autocast(self, run: TrainedRun) -> Callable[[], Any]:
        amp = run.preset.train.amp
        use = self.device.type == "cuda" and amp != "none"
        dtype = torch.float16 if amp == "fp16" else torch.bfloat16
        return lambda: torch.autocast(self.device.type, dtype=dtype) if use else contextlib.nullcontext()

    def record(
        self,
        experiment: str,
        run: TrainedRun,
        mechanism: attention_zoo.Mechanism,
        params: attention_zoo.AttentionParams,
        result: Evaluation,
        missing: list[str],
        unused: list[str],
    ) -> dict[str, Any]:
        """The eval record of one evaluation (results/records.py EVAL_FIELDS)."""
        seq_len = self.dataset(run).seq_len
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "eval",
            "experiment": experiment,
            "run_id": run.run_id,
            "run_dir": str(run.run_dir),
            "run_config_hash": run.config_hash,
            "task": run.task,
            "preset": run.preset.name,
            "seed": run.seed,
            "checkpoint": run.checkpoint,
            "checkpoint_step": run.step,
            "train_attention": run.mechanism.name,
            "train_attention_params": run.params.to_dict(),
            "train_attention_label": run.label,
            "attention": mechanism.name,
            "attention_params": params.to_dict(),
            "attention_label": mechanism.label(params),
            "keys_per_query": mechanism.keys_per_query(params, seq_len) if mechanism.keys_per_query else None,
            "split": self.opts.split,
            "n_examples": result.n_examples,
            "accuracy": result.accuracy,
            "loss": result.loss,
            "chance_acc": result.chance_acc,
            "missing_parameters": missing,
            "unused_parameters": unused,
            "diagnostics": result.diagnostics,
            "seq_len": seq_len,
            "device": self.device_name,
            "measured_at": _now(),
            **self.provenance,
        }

    def run_eval(
        self,
        experiment: str,
        run: TrainedRun,
        mechanism: attention_zoo.Mechanism,
        params: attention_zoo.AttentionParams,
        path: Path,
    ) -> dict[str, Any]:
        """Evaluate `run` with `mechanism(params)`, write the record to `path` and return it."""
        model, missing, unused = self.model(run, mechanism, params)
        record = self.record(experiment, run, mechanism, params, self.evaluate(run, model), missing, unused)
        write_record(path, record)
        return record


def _attention_owned(key: str) -> bool:
    """Parameters a mechanism adds to the attention layer (e.g. learned landmark queries)."""
    return ".mechanism_parameters." in key


@contextlib.contextmanager
def _torch_backend(model: nn.Module) -> Iterator[None]:
    """Run every attention layer with backend="torch" inside the block (diagnostics see only that)."""
    changed = []
    for module in model.modules():
        if isinstance(module, MultiHeadAttention) and "backend" in module.params.to_dict():
            changed.append((module, module.params))
            module.params = dataclasses.replace(module.params, backend="torch")
    try:
        yield
    finally:
        for module, params in changed:
            module.params = params


@torch.no_grad()
def routing_diagnostics(
    model: nn.Module, ds: LRADataset, batch_size: int, device: torch.device, batches: int, split: str = "val"
) -> dict[str, Any] | None:
    """MiTA routing statistics of `model` on the first `batches` batches of `ds` (None without MiTA).

    Means over batches, batch rows and heads of `attention_zoo.mita.diagnostics` per layer
    (`layers`, in call order) and over the layers (top level): `load_entropy` (normalised, 1 =
    balanced experts), `load_max`, `pruned_fraction` (keys no expert selects), `overlap` (share of a
    query's own full-attention top-k it attends through its routed experts).
    """
    was_training = model.training
    model.eval()
    count = min(len(ds), batches * batch_size)
    per_batch: list[list[dict[str, Any]]] = []
    try:
        with _torch_backend(model):
            for start in range(0, count, batch_size):
                with diagnostics.collect() as calls:
                    model(*batch_inputs(ds, torch.arange(start, min(start + batch_size, count)), device))
                per_batch.append(list(calls))
    finally:
        model.train(was_training)
    if not per_batch or not per_batch[0]:
        return None
    layers = []
    for index in range(len(per_batch[0])):
        calls = [batch[index] for batch in per_batch if len(batch) > index]
        layer = {key: _mean([c[key] for c in calls]) for key in DIAGNOSTIC_KEYS}
        loads = [c["expert_load"] for c in calls]
        layer["expert_load"] = (
            [_mean(column) for column in zip(*loads, strict=True)]
            if len({len(x) for x in loads}) == 1
            else None
        )
        layer["num_landmarks"] = calls[0]["num_landmarks"]
        layer["topk"] = calls[0]["topk"]
        layers.append(layer)
    summary: dict[str, Any] = {key: _mean([layer[key] for layer in layers]) for key in DIAGNOSTIC_KEYS}
    summary.update(split=split, batches=len(per_batch), examples=count, layers=layers)
    return summary


def _mean(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else float("nan")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "-", text).strip("-") or "none"


def _progress(total: int, desc: str, quiet: bool) -> tqdm:
    return tqdm(
        total=total, desc=desc, unit="eval", disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True
    )


def _pct(value: float | None, digits: int = 1) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.{digits}f}"
    )


def _suptitle(fig: Any, text: str) -> None:
    """A figure title wrapped to the figure's width (long run labels would be cut off)."""
    width = max(40, int(fig.get_figwidth() * 9))
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")))


def _save_figure(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _write_table(frame: pd.DataFrame, markdown: str, stem: Path) -> list[Path]:
    atomic_write_text(stem.with_suffix(".md"), markdown)
    atomic_write(stem.with_suffix(".csv"), lambda fh: frame.to_csv(fh, index=False))
    return [stem.with_suffix(".md"), stem.with_suffix(".csv")]


@dataclass
class ExperimentResult:
    """Records written, the markdown printed, the files written (tables, figures)."""

    records: list[dict[str, Any]]
    markdown: str
    paths: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# lra sweep mk: one checkpoint at other (m, k)
# ----------------------------------------------------------------------------------------------


def mk_grid(
    run: TrainedRun, grid: Mapping[str, Sequence[int]] | None, include_trained: bool = True
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (m values, k values) to evaluate `run` at; ValueError where the run cannot take them."""
    if not is_mita(run.mechanism):
        mita_like = ", ".join(n for n in attention_zoo.names() if is_mita(attention_zoo.get(n)))
        raise ValueError(
            f"lra sweep mk needs a run trained with MiTA ({mita_like}); {run.run_dir} was trained with {run.label}"
        )
    trained = run.params.to_dict()
    learned = trained.get("landmarks") in LEARNED_LANDMARKS
    grid = dict(grid or {})
    m_values = tuple(
        grid.get("num_landmarks")
        or ((trained["num_landmarks"],) if learned else DEFAULT_GRID["num_landmarks"])
    )
    k_values = tuple(grid.get("topk") or DEFAULT_GRID["topk"])
    if learned and set(m_values) != {trained["num_landmarks"]}:
        raise ValueError(
            f"this run's landmark queries are learned parameters (landmarks={trained['landmarks']}, m="
            f"{trained['num_landmarks']}); m cannot change without retraining: --grid m={trained['num_landmarks']} k=..."
        )
    if include_trained:
        m_values += (trained["num_landmarks"],)
        k_values += (trained["topk"],)
    return tuple(sorted(set(m_values))), tuple(sorted(set(k_values)))


def sweep_mk(
    run_dir: str | Path,
    grid: Mapping[str, Sequence[int]] | None = None,
    opts: EvalOptions | None = None,
    *,
    include_trained: bool = True,
    echo: Echo = _quiet_echo,
) -> ExperimentResult:
    """Evaluate a trained MiTA checkpoint at every (m, k) of the grid, without retraining.

    `grid` is {"num_landmarks": values, "topk": values} (`parse_grid`); a missing axis takes the
    issue's values 8, 16, 32, 64 (m stays at the trained value when the landmarks are learned).
    With `include_trained` the trained m and k are added to the axes, so the grid holds the run's
    own configuration as the reference. Every other parameter (routing, landmark construction,
    backend) stays as trained. Writes one eval record per cell, `mk-<checkpoint>-<split>.{md,csv}`
    and the heat map `mk-<checkpoint>-<split>.png` (trained cell outlined).
    """
    opts = opts or EvalOptions()
    evaluator = Evaluator(opts)
    run = load_run(run_dir, checkpoint=opts.checkpoint, data_dir=opts.data_dir)
    m_values, k_values = mk_grid(run, grid, include_trained)
    where = Path(opts.out) / "mk" / run.task / run.tag
    cells = [(m, k) for m in m_values for k in k_values]
    records = []
    with _progress(len(cells), f"sweep mk {run.label}", opts.quiet) as bar:
        for m, k in cells:
            params = dataclasses.replace(run.params, num_landmarks=m, topk=k)
            path = where / f"{opts.checkpoint}-{opts.split}" / f"m{m}-k{k}.json"
            record = evaluator.run_eval("mk", run, run.mechanism, params, path)
            records.append(record)
            bar.update()
            echo(
                f"m={m} k={k}: {opts.split} accuracy {_pct(record['accuracy'], 2)}% (n={record['n_examples']})"
            )
    frame = mk_frame(records)
    markdown = mk_markdown(frame, run, opts)
    stem = where / f"mk-{opts.checkpoint}-{opts.split}"
    paths = _write_table(frame, markdown, stem)
    paths.append(plot_mk(frame, run, opts, stem.with_suffix(".png")))
    return ExperimentResult(records, markdown, paths)


def _trained_value(run: TrainedRun, name: str) -> Any:
    return run.params.to_dict()[name]


def mk_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per grid cell: m, k, keys per query, accuracy, loss, and the diagnostics if recorded."""
    rows = []
    for r in records:
        row = {
            "num_landmarks": r["attention_params"]["num_landmarks"],
            "topk": r["attention_params"]["topk"],
            "trained": r["attention_params"] == r["train_attention_params"],
            "attention_label": r["attention_label"],
            "keys_per_query": r["keys_per_query"],
            "accuracy": r["accuracy"],
            "loss": r["loss"],
            "n_examples": r["n_examples"],
            "chance_acc": r["chance_acc"],
        }
        diag = r.get("diagnostics") or {}
        row.update({key: diag.get(key) for key in DIAGNOSTIC_KEYS})
        rows.append(row)
    return pd.DataFrame(rows)


def mk_markdown(frame: pd.DataFrame, run: TrainedRun, opts: EvalOptions) -> str:
    m0, k0 = _trained_value(run, "num_landmarks"), _trained_value(run, "topk")
    n = int(frame["n_examples"].iloc[0])
    table = _grid_table(frame, "accuracy", lambda v: _pct(v))
    lines = [
        f"## {run.task}: {run.label} (seed {run.seed}) at other (m, k) -- {opts.split} accuracy (%)",
        "",
        f"Checkpoint `{run.checkpoint_path}` ({opts.checkpoint}, step {run.step}), trained at m={m0}, k={k0} "
        f"(**bold**); rows m = num_landmarks, columns k = topk; {n} {opts.split} examples, chance "
        f"{_pct(float(frame['chance_acc'].iloc[0]))}%. Every other parameter as trained.",
        "",
        table.to_markdown(disable_numparse=True),
        "",
    ]
    trained = frame[frame["trained"]]
    reference = (run.record or {}).get("test_acc" if opts.checkpoint == "best" else "test_acc_last")
    if not trained.empty and opts.split == "test" and not opts.limit and reference is not None:
        lines.append(
            f"Trained (m, k) here: {_pct(float(trained['accuracy'].iloc[0]), 2)}%; the run's own record: "
            f"{_pct(reference, 2)}%."
        )
    if frame["pruned_fraction"].notna().any():
        for key, title in (
            ("pruned_fraction", "pruned fraction (%)"),
            ("overlap", "overlap with own top-k (%)"),
        ):
            lines += [
                "",
                f"### {title}",
                "",
                _grid_table(frame, key, lambda v: _pct(v)).to_markdown(disable_numparse=True),
            ]
    return "\n".join(lines).rstrip() + "\n"


def _grid_table(frame: pd.DataFrame, value: str, render: Callable[[float], str]) -> pd.DataFrame:
    ms, ks = sorted(frame["num_landmarks"].unique()), sorted(frame["topk"].unique())
    table = pd.DataFrame("", index=[f"m={m}" for m in ms], columns=[f"k={k}" for k in ks], dtype=object)
    for row in frame.itertuples():
        text = render(getattr(row, value))
        table.loc[f"m={row.num_landmarks}", f"k={row.topk}"] = f"**{text}**" if row.trained else text
    table.index.name = "m \\ k"
    return table


def plot_mk(frame: pd.DataFrame, run: TrainedRun, opts: EvalOptions, path: Path) -> Path:
    """Heat map of accuracy over (m, k), trained cell outlined; pruned fraction and overlap beside
    it when diagnostics were recorded."""
    panels = [("accuracy", f"{opts.split} accuracy (%)")]
    if frame["pruned_fraction"].notna().any():
        panels += [("pruned_fraction", "pruned fraction (%)"), ("overlap", "overlap with own top-k (%)")]
    ms, ks = sorted(frame["num_landmarks"].unique()), sorted(frame["topk"].unique())
    fig, axes = _figure(
        1.0 + len(panels) * max(3.5, 0.8 * len(ks) + 1.5), max(3.5, 0.6 * len(ms) + 1.8), len(panels)
    )
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = (
            frame.pivot(index="num_landmarks", columns="topk", values=key).reindex(index=ms, columns=ks) * 100
        )
        _heatmap(ax, fig, values.to_numpy(dtype=float), [str(k) for k in ks], [str(m) for m in ms], title)
        ax.set_xlabel("k (topk, keys per expert)")
        ax.set_ylabel("m (num_landmarks)")
        for row in frame[frame["trained"]].itertuples():
            _outline(ax, ks.index(row.topk), ms.index(row.num_landmarks), "trained")
    _suptitle(
        fig,
        f"{run.task}: {run.label}, seed {run.seed}, evaluated at other (m, k) ({opts.checkpoint} checkpoint, "
        f"n={int(frame['n_examples'].iloc[0])}; red box: trained)",
    )
    return _save_figure(fig, path)


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _heatmap(ax: Any, fig: Any, values: Any, xlabels: list[str], ylabels: list[str], title: str) -> None:
    import numpy as np

    image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    fig.colorbar(image, ax=ax, shrink=0.9)
    ax.set_xticks(
        range(len(xlabels)),
        xlabels,
        rotation=30 if max(map(len, xlabels)) > 6 else 0,
        ha="right" if max(map(len, xlabels)) > 6 else "center",
    )
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_title(title)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(
                j,
                i,
                f"{value:.1f}",
                ha="center",
                va="center",
                fontsize="small",
                color="black" if value > middle else "white",
            )


def _outline(ax: Any, x: int, y: int, label: str | None = None) -> None:
    """A red box inside cell (x, y); inset, so that boxes of neighbouring cells stay apart."""
    from matplotlib.patches import Rectangle

    box = Rectangle((x - 0.44, y - 0.44), 0.88, 0.88, fill=False, edgecolor="red", linewidth=2.0, label=label)
    ax.add_patch(box)


# ----------------------------------------------------------------------------------------------
# lra swap: checkpoints evaluated with other attentions
# ----------------------------------------------------------------------------------------------


def _swap_path(opts: EvalOptions, run: TrainedRun, mechanism: attention_zoo.Mechanism, params: Any) -> Path:
    return (
        Path(opts.out)
        / "swap"
        / run.task
        / run.tag
        / f"{opts.checkpoint}-{opts.split}"
        / f"{_slug(mechanism.slug(params))}.json"
    )


def swap_run(
    run_dir: str | Path,
    attentions: Sequence[str],
    opts: EvalOptions | None = None,
    *,
    attn_params: Mapping[str, Mapping[str, Any]] | None = None,
    echo: Echo = _quiet_echo,
) -> ExperimentResult:
    """Evaluate one checkpoint with each of `attentions` (specs such as `mita(topk=64)`, with
    `attn_params` per name, resolved against the run's preset: see `resolve_attentions`) and,
    first, with the attention it was trained with (the reference of the differences).

    Writes one eval record per attention and `swap-<checkpoint>-<split>.{md,csv,png}` in the run's
    folder under `<out>/swap/<task>/`: accuracy, the difference to the trained attention, keys
    per query, and the parameters that were initialised or dropped.
    """
    opts = opts or EvalOptions()
    if not attentions:
        raise ValueError("lra swap needs at least one --attention to evaluate with, e.g. --attention full")
    evaluator = Evaluator(opts)
    run = load_run(run_dir, checkpoint=opts.checkpoint, data_dir=opts.data_dir)
    todo, notes = [(run.mechanism, run.params)], []
    for spec in attentions:
        mechanism, params = resolve_one(spec, attn_params, run.preset.attention)
        if mechanism.label(params) == run.label:
            notes.append(f"- {spec} in preset {run.preset.name} is {run.label}, the trained attention.")
        elif all(mechanism.label(params) != m.label(p) for m, p in todo):
            todo.append((mechanism, params))
    for note in notes:
        echo(note[2:])
    records = []
    with _progress(len(todo), f"swap {run.label}", opts.quiet) as bar:
        for mechanism, params in todo:
            record = evaluator.run_eval(
                "swap", run, mechanism, params, _swap_path(opts, run, mechanism, params)
            )
            records.append(record)
            bar.update()
            echo(_describe_swap(record))
    frame = swap_frame(records)
    markdown = swap_markdown(frame, records, run, opts, notes)
    stem = Path(opts.out) / "swap" / run.task / run.tag / f"swap-{opts.checkpoint}-{opts.split}"
    paths = _write_table(frame, markdown, stem)
    paths.append(plot_swap(frame, run, opts, stem.with_suffix(".png")))
    return ExperimentResult(records, markdown, paths)


def _describe_swap(record: dict[str, Any]) -> str:
    text = (
        f"{record['train_attention_label']} -> {record['attention_label']}: {record['split']} accuracy "
        f"{_pct(record['accuracy'], 2)}% (n={record['n_examples']})"
    )
    if record["missing_parameters"]:
        text += f"; initialised {len(record['missing_parameters'])} parameters the checkpoint lacks"
    if record["unused_parameters"]:
        text += f"; dropped {len(record['unused_parameters'])} checkpoint parameters"
    return text


def swap_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per evaluation: training and evaluation attention, accuracy, loss, keys per query,
    the initialised / dropped parameters (';'-joined), and the difference to the same run
    evaluated with its own attention (percentage points) where that is among the records."""
    rows = []
    for r in records:
        rows.append(
            {
                "run_id": r["run_id"],
                "preset": r["preset"],
                "seed": r["seed"],
                "train_attention_label": r["train_attention_label"],
                "attention_label": r["attention_label"],
                "trained": r["attention_label"] == r["train_attention_label"],
                "accuracy": r["accuracy"],
                "loss": r["loss"],
                "keys_per_query": r["keys_per_query"],
                "n_examples": r["n_examples"],
                "chance_acc": r["chance_acc"],
                "missing_parameters": "; ".join(r["missing_parameters"]),
                "unused_parameters": "; ".join(r["unused_parameters"]),
                "run_dir": r["run_dir"],
            }
        )
    frame = pd.DataFrame(rows)
    own = frame[frame["trained"]].set_index("run_dir")["accuracy"]
    frame["delta_vs_trained_pp"] = [
        100 * (acc - own[d]) if d in own.index else float("nan")
        for acc, d in zip(frame["accuracy"], frame["run_dir"], strict=True)
    ]
    return frame


def _parameter_notes(records: Sequence[dict[str, Any]]) -> list[str]:
    notes, seen = [], set()
    for r in records:
        for key, verb in (("missing_parameters", "initialised (not in the checkpoint; seeded with the run's seed)"),
                          ("unused_parameters", "dropped (in the checkpoint, not used by this attention)")):  # fmt: skip
            names = r[key]
            if names and (r["attention_label"], key, tuple(names)) not in seen:
                seen.add((r["attention_label"], key, tuple(names)))
                notes.append(
                    f"- {r['train_attention_label']} -> {r['attention_label']}: {verb}: {', '.join(names)}"
                )
    return notes


def swap_markdown(
    frame: pd.DataFrame,
    records: Sequence[dict[str, Any]],
    run: TrainedRun,
    opts: EvalOptions,
    notes: Sequence[str] = (),
) -> str:
    table = pd.DataFrame(
        {
            "evaluated with": [
                f"{label} (trained)" if t else label
                for label, t in zip(frame["attention_label"], frame["trained"], strict=True)
            ],
            f"{opts.split} acc (%)": [_pct(v, 2) for v in frame["accuracy"]],
            "Δ vs trained (pp)": [
                "" if t else f"{d:+.2f}"
                for d, t in zip(frame["delta_vs_trained_pp"], frame["trained"], strict=True)
            ],
            "loss": [f"{v:.4f}" for v in frame["loss"]],
            "keys/query": [_count(v) for v in frame["keys_per_query"]],
            "initialised": [str(len(r["missing_parameters"])) for r in records],
            "dropped": [str(len(r["unused_parameters"])) for r in records],
        }
    )
    if any(r["diagnostics"] for r in records):  # MiTA routing on the first --diag-batches batches
        for key, title in (("pruned_fraction", "pruned (%)"), ("overlap", "overlap (%)")):
            table[title] = [_pct((r["diagnostics"] or {}).get(key)) for r in records]
    lines = [
        f"## {run.task}: checkpoint trained with {run.label} (seed {run.seed}), evaluated with other attentions",
        "",
        f"Checkpoint `{run.checkpoint_path}` ({opts.checkpoint}, step {run.step}); {int(frame['n_examples'].iloc[0])} "
        f"{opts.split} examples, chance {_pct(float(frame['chance_acc'].iloc[0]))}%. Only the attention changes; "
        "every weight comes from the checkpoint except the ones listed below.",
        "",
        table.to_markdown(index=False, disable_numparse=True),
    ]
    notes = [*notes, *_parameter_notes(records)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines).rstrip() + "\n"


def _count(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{int(value)}"


def plot_swap(frame: pd.DataFrame, run: TrainedRun, opts: EvalOptions, path: Path) -> Path:
    """Horizontal bars: accuracy with each evaluation attention, the trained one highlighted."""
    fig, (ax,) = _figure(8.0, max(2.5, 0.45 * len(frame) + 1.5))
    labels = list(frame["attention_label"])
    values = list(frame["accuracy"] * 100)
    colours = ["tab:orange" if t else "tab:blue" for t in frame["trained"]]
    ax.barh(range(len(labels)), values, color=colours)
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:.1f}", va="center", fontsize="small")
    ax.set_yticks(
        range(len(labels)),
        [f"{x} (trained)" if t else x for x, t in zip(labels, frame["trained"], strict=True)],
    )
    ax.invert_yaxis()
    chance = float(frame["chance_acc"].iloc[0]) * 100
    ax.axvline(chance, color="black", linestyle="dashed", linewidth=1, label="chance")
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"{opts.split} accuracy (%)")
    ax.legend(fontsize="small", loc="lower right")
    _suptitle(fig, f"{run.task}: trained with {run.label} (seed {run.seed}), evaluated with other attentions")
    return _save_figure(fig, path)


def swap_matrix(
    runs_root: str | Path,
    attentions: Sequence[str] | None = None,
    opts: EvalOptions | None = None,
    *,
    attn_params: Mapping[str, Mapping[str, Any]] | None = None,
    task: str | None = None,
    echo: Echo = _quiet_echo,
) -> ExperimentResult:
    """Every finished run of one task under `runs_root`, evaluated with every attention: the matrix
    train attention x evaluation attention.

    Rows and columns are attention specs relative to each run's preset (`spec_under_preset`):
    column `mita` is MiTA with the budget of each run's own preset, so every run is evaluated with
    every column and a run trained with a column's attention is on the diagonal. The columns
    default to the attentions the runs were trained with (a square matrix). A cell is the mean
    over the seeds of that training attention; a list under the table says what each spec is in
    each preset where that is not the spec itself. Writes one eval record per (run, attention) and
    `<out>/swap/<task>/matrix-<checkpoint>-<split>.{md,csv,png}`.
    """
    opts = opts or EvalOptions()
    evaluator = Evaluator(opts)
    runs = [
        load_run(d, checkpoint=opts.checkpoint, data_dir=opts.data_dir) for d in find_runs(runs_root, task)
    ]
    runs.sort(key=lambda r: (r.preset.name, r.label, r.seed))
    own = {run.run_dir: spec_under_preset(run.mechanism, run.params, run.preset.attention) for run in runs}
    columns = list(attentions) if attentions else list(dict.fromkeys(own.values()))
    several_presets = len({run.preset.name for run in runs}) > 1
    records, cells, legend = [], [], {}
    with _progress(len(runs) * len(columns), "swap matrix", opts.quiet) as bar:
        for run in runs:
            row = f"{own[run.run_dir]} [{run.preset.name}]" if several_presets else own[run.run_dir]
            for column in columns:
                mechanism, params = resolve_one(column, attn_params, run.preset.attention)
                if mechanism.label(params) != column:
                    legend[(run.preset.name, column)] = mechanism.label(params)
                path = _swap_path(opts, run, mechanism, params)
                record = evaluator.run_eval("swap", run, mechanism, params, path)
                records.append(record)
                cells.append((row, column))
                bar.update()
                echo(_describe_swap(record) + f" [{run.run_dir}]")
    frame = swap_frame(records)
    frame["row"], frame["column"] = [row for row, _ in cells], [column for _, column in cells]
    matrix = matrix_table(frame, columns)
    notes = [f"- {column} in preset {preset}: {label}" for (preset, column), label in legend.items()]
    markdown = matrix_markdown(matrix, frame, records, runs[0].task, opts, notes)
    stem = Path(opts.out) / "swap" / runs[0].task / f"matrix-{opts.checkpoint}-{opts.split}"
    paths = _write_table(frame, markdown, stem)
    paths.append(plot_matrix(matrix, frame, runs[0].task, opts, stem.with_suffix(".png")))
    return ExperimentResult(records, markdown, paths)


def matrix_table(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean, std and count of accuracy per (training row, evaluation column)."""
    stats = frame.groupby(["row", "column"], sort=False)["accuracy"].agg(["mean", "std", "count"])
    rows = list(dict.fromkeys(frame["row"]))
    return stats.reindex(pd.MultiIndex.from_product([rows, list(columns)], names=["row", "column"]))


def _diagonal(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """(row, column) cells where runs were evaluated with their own attention."""
    own = frame[frame["trained"]]
    return set(zip(own["row"], own["column"], strict=True))


def matrix_markdown(
    matrix: pd.DataFrame,
    frame: pd.DataFrame,
    records: Sequence[dict[str, Any]],
    task: str,
    opts: EvalOptions,
    legend: Sequence[str] = (),
) -> str:
    rows = list(dict.fromkeys(matrix.index.get_level_values("row")))
    columns = list(dict.fromkeys(matrix.index.get_level_values("column")))
    table = pd.DataFrame("", index=rows, columns=columns, dtype=object)
    for (row, column), stat in matrix.iterrows():
        if pd.isna(stat["mean"]):
            text = "–"
        else:
            text = _pct(stat["mean"])
            if stat["count"] > 1:
                text += f" ± {100 * stat['std']:.1f}"
        table.loc[row, column] = f"**{text}**" if (row, column) in _diagonal(frame) else text
    table.index.name = "trained with \\ evaluated with"
    seeds = frame.groupby("row")["seed"].nunique()
    lines = [
        f"## {task}: accuracy (%) of checkpoints trained with one attention and evaluated with another",
        "",
        f"{opts.split} split ({int(frame['n_examples'].iloc[0])} examples), {opts.checkpoint} checkpoints; rows: training "
        "attention, columns: evaluation attention, **bold**: the training attention itself; mean ± std over seeds "
        f"({', '.join(f'{row}: {n}' for row, n in seeds.items())}). Attentions are written relative to the "
        "budget of each run's preset (e.g. `mita` is MiTA as that preset trains it); the exact parameters follow.",
        "",
        table.to_markdown(disable_numparse=True),
    ]
    notes = [*legend, *_parameter_notes(records)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines).rstrip() + "\n"


def plot_matrix(matrix: pd.DataFrame, frame: pd.DataFrame, task: str, opts: EvalOptions, path: Path) -> Path:
    """Heat map train attention x evaluation attention, the diagonal (own attention) outlined."""
    rows = list(dict.fromkeys(matrix.index.get_level_values("row")))
    columns = list(dict.fromkeys(matrix.index.get_level_values("column")))
    values = matrix["mean"].to_numpy(dtype=float).reshape(len(rows), len(columns)) * 100
    fig, (ax,) = _figure(max(5.0, 1.4 * len(columns) + 3.5), max(3.0, 0.6 * len(rows) + 2.2))
    _heatmap(ax, fig, values, columns, rows, f"{opts.split} accuracy (%), mean over seeds")
    ax.invert_yaxis()
    for row, column in _diagonal(frame):
        _outline(ax, columns.index(column), rows.index(row))
    ax.set_xlabel("evaluated with")
    ax.set_ylabel("trained with")
    _suptitle(
        fig,
        f"{task}: checkpoints evaluated with other attentions ({opts.checkpoint} checkpoints; red box: own attention)",
    )
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# lra sweep scaling: time against N, through runners.bench
# ----------------------------------------------------------------------------------------------


def sweep_scaling(cfg: bench.BenchConfig, *, echo: Echo = _quiet_echo) -> ExperimentResult:
    """Forward and forward + backward time of every attention against N (the paper's wall-clock figure).

    `runners.bench.bench_attention` measures and writes the efficiency records under
    `<cfg.out>/efficiency/` (lengths default to `SCALING_LENGTHS`: 2^10..2^20 on CUDA, where memory
    allows; 2^10..2^12 on CPU). This adds `<cfg.out>/scaling-<device>-<setting>.{md,png}`: the
    bench tables plus, per attention and pass, the length from which it is faster than full
    attention, and the log-log figure; the `.csv` holds those crossovers.
    """
    device = resolve_device(cfg.device)
    if cfg.lengths is None:
        cfg = dataclasses.replace(cfg, lengths=SCALING_LENGTHS[device.type])
    rows, bench_markdown = bench.bench_attention(cfg)
    records = [r for r in rows if r.get("kind") == "efficiency"]
    if not records and any(r["status"] == bench.NOT_RUN for r in rows):
        raise ValueError("nothing was measured before --max-minutes ran out; give it more minutes")
    if not records:
        raise ValueError(
            "nothing was measured: every attention needs CUDA on this machine; add --attentions full,mita"
        )
    first = records[0]
    setting = f"{first['dtype']}-B{first['batch']}-H{first['heads']}-d{first['head_dim']}"
    frame = bench.ratio_table(rows)
    crossovers = crossover_table(frame)
    title = (
        f"Attention time against sequence length on {first['device']}: B={first['batch']}, H={first['heads']}, "
        f"d={first['head_dim']}, {first['dtype']}"
    )
    markdown = "\n".join(
        [
            f"# {title}",
            "",
            "## Where each attention becomes faster than full attention",
            "",
            "From N: the shortest length from which it is faster at every longer length measured (median time per "
            "call); speed-up: full attention's time / this time at the longest length both ran.",
            "",
            crossover_markdown(crossovers),
            "",
            re.sub(r"^(#+) ", r"#\1 ", bench_markdown, flags=re.MULTILINE).strip(),
        ]
    )
    stem = Path(cfg.out) / f"scaling-{_slug(first['device'])}-{setting}"
    paths = _write_table(crossovers, markdown.rstrip() + "\n", stem)
    paths.append(plot_scaling(frame, title, stem.with_suffix(".png")))
    echo(f"wrote {len(records)} efficiency records under {Path(cfg.out) / 'efficiency'}")
    return ExperimentResult(records, markdown.rstrip() + "\n", paths)


def crossover_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per series and pass (full attention excluded): the shortest N from which the series is faster
    than full attention at every longer N both measured (`faster_from`, None if it never is), the
    speed-up at the longest N both measured, and the longest N each one measured.

    `frame` is `runners.bench.ratio_table` output.
    """
    rows = []
    ok = frame[frame["status"] == "ok"]
    for (series, pass_), group in frame.groupby(["series", "pass"], sort=False):
        if group["attention"].iloc[0] == bench.REFERENCE:
            continue
        full_longest = ok[(ok["attention"] == bench.REFERENCE) & (ok["pass"] == pass_)]["seq_len"].max()
        mine = ok[(ok["series"] == series) & (ok["pass"] == pass_)]
        both = mine[mine["speedup_vs_full"].notna()].sort_values("seq_len")
        faster_from = None
        for n, speedup in zip(both["seq_len"][::-1], both["speedup_vs_full"][::-1], strict=True):
            if speedup < 1:
                break
            faster_from = int(n)
        rows.append(
            {
                "series": series,
                "pass": pass_,
                "faster_from": faster_from,
                "speedup_at_longest_common": float(both["speedup_vs_full"].iloc[-1]) if len(both) else None,
                "longest_common": int(both["seq_len"].iloc[-1]) if len(both) else None,
                "longest_measured": int(mine["seq_len"].max()) if len(mine) else None,
                "full_longest_measured": None if pd.isna(full_longest) else int(full_longest),
                "status": "ok" if len(mine) else str(group["status"].iloc[0]),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "series", "pass", "faster_from", "speedup_at_longest_common", "longest_common", "longest_measured",
            "full_longest_measured", "status",
        ],
    )  # fmt: skip


def crossover_markdown(crossovers: pd.DataFrame) -> str:
    def length(value: Any) -> str:
        return "–" if value is None or pd.isna(value) else bench.format_length(int(value))

    table = pd.DataFrame(
        {
            "attention": crossovers["series"],
            "pass": crossovers["pass"].str.replace("_", " + "),
            "faster from N": [
                "never" if s == "ok" and (f is None or pd.isna(f)) else (length(f) if s == "ok" else s)
                for f, s in zip(crossovers["faster_from"], crossovers["status"], strict=True)
            ],
            "speed-up (at N)": [
                "–" if pd.isna(v) else f"{v:.2f}× ({length(n)})"
                for v, n in zip(
                    crossovers["speedup_at_longest_common"], crossovers["longest_common"], strict=True
                )
            ],
            "longest N run": [length(v) for v in crossovers["longest_measured"]],
            "full's longest N": [length(v) for v in crossovers["full_longest_measured"]],
        }
    )
    return table.to_markdown(index=False, disable_numparse=True)


def plot_scaling(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Median time per call against N, log-log, forward and forward + backward side by side;
    dotted guides ∝ N and ∝ N^2 through full attention's shortest point."""
    import numpy as np

    passes = [p for p in bench.PASSES if (frame["pass"] == p).any()]
    fig, axes = _figure(6.0 * len(passes) + 1.0, 4.8, len(passes))
    series = list(dict.fromkeys(frame["series"]))
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(series) <= 10 else "tab20"]
    colours = {name: cmap(i % cmap.N) for i, name in enumerate(series)}
    for ax, pass_ in zip(axes, passes, strict=True):
        part = frame[frame["pass"] == pass_]
        for name in series:
            mine = part[part["series"] == name]
            ok = mine[(mine["status"] == "ok") & mine["time_ms_median"].notna()].sort_values("seq_len")
            if ok.empty:
                continue
            stopped = mine[mine["status"].isin(["oom", "skipped"])]
            legend = name + (
                f" ({stopped['status'].iloc[0]} from {bench.format_length(int(stopped['seq_len'].min()))})"
                if len(stopped)
                else ""
            )
            ax.plot(
                ok["seq_len"],
                ok["time_ms_median"],
                marker="o",
                markersize=3,
                color=colours[name],
                label=legend,
            )
        full = part[(part["attention"] == bench.REFERENCE) & (part["status"] == "ok")].sort_values("seq_len")
        if len(full):
            n0, t0 = float(full["seq_len"].iloc[0]), float(full["time_ms_median"].iloc[0])
            ns = np.array(sorted(part["seq_len"].unique()), dtype=float)
            ax.plot(ns, t0 * ns / n0, color="grey", linestyle="dotted", linewidth=1, label="∝ N")
            ax.plot(ns, t0 * (ns / n0) ** 2, color="grey", linestyle="dashdot", linewidth=1, label="∝ N²")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length N")
        ax.set_ylabel("median time per call (ms)")
        ax.set_title(pass_.replace("_", " + "))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
    _suptitle(fig, title)
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# lra sweep s / lra sweep landmarks: train MiTA variants, all else fixed
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantSweepConfig:
    """Train one MiTA parameter at several values on one task, everything else fixed.

    Attributes:
        sweep: "s" (num_routed, experts per query) or "landmarks" (landmark construction).
        task: the task.
        values: the values of the swept parameter (empty = `VARIANT_SWEEPS` defaults).
        attention: "mita" or "mita_route".
        attn_params: the other parameters of the attention, fixed for every run.
        equal_budget: sweep "s" only: topk = max(1, topk // s), so the routed keys per query stay
            about constant (the official router_topk=2 code halves kv_topk the same way).
        preset, seeds, overrides, max_steps, jobs, device, data_dir, source: as for `lra suite`.
        diag_batches: validation batches for the routing diagnostics of each trained model (0 = none).
        out: experiments root; the runs go to `<out>/<sweep>/<task>/runs/...` (the suite layout).
    """

    sweep: str
    task: str
    values: tuple[str, ...] = ()
    attention: str = "mita"
    attn_params: dict[str, str] = field(default_factory=dict)
    equal_budget: bool = False
    preset: str = "quick"
    seeds: tuple[int, ...] = (0,)
    overrides: dict[str, str] = field(default_factory=dict)
    max_steps: int | None = None
    jobs: int = 1
    device: str = "auto"
    data_dir: str | None = None
    source: str | None = None
    diag_batches: int = 4
    out: str = EXPERIMENTS_OUT

    @property
    def parameter(self) -> str:
        if self.sweep not in VARIANT_SWEEPS:
            raise ValueError(f"unknown sweep {self.sweep!r}; valid sweeps: {', '.join(VARIANT_SWEEPS)}")
        return VARIANT_SWEEPS[self.sweep][0]


@dataclass
class SweepResult(ExperimentResult):
    """An `ExperimentResult` plus the per-value table, the runs without a result (run id, status,
    error) and the suite's exit code (1 when a run failed)."""

    failed: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    exit_code: int = 0


def variant_specs(cfg: VariantSweepConfig) -> list[tuple[str, str, str]]:
    """(value, attention spec for the suite, label) per swept value, validated by the registry."""
    tasks.get(cfg.task)
    parameter = cfg.parameter
    mechanism = attention_zoo.get(cfg.attention)
    if not is_mita(mechanism) or parameter not in {f.name for f in dataclasses.fields(mechanism.params_cls)}:
        mita_like = ", ".join(n for n in attention_zoo.names() if is_mita(attention_zoo.get(n)))
        raise ValueError(
            f"lra sweep {cfg.sweep} sweeps a MiTA parameter; --attention must be one of {mita_like}"
        )
    if parameter in cfg.attn_params:
        raise ValueError(f"--attn-param {parameter} is what this sweep varies; give its values with --values")
    if cfg.equal_budget and cfg.sweep != "s":
        raise ValueError("--equal-budget applies to lra sweep s only")
    if cfg.diag_batches < 0:
        raise ValueError(f"--diag-batches must be >= 0; got {cfg.diag_batches}")
    values = list(dict.fromkeys(v.strip() for v in (cfg.values or VARIANT_SWEEPS[cfg.sweep][1]) if v.strip()))
    if not values:
        raise ValueError(f"--values is empty; e.g. --values {','.join(VARIANT_SWEEPS[cfg.sweep][1])}")
    base = mechanism.params(**cfg.attn_params)
    out = []
    for value in values:
        given = {**cfg.attn_params, parameter: value}
        if cfg.equal_budget:
            routed = mechanism.params(**given).num_routed
            given["topk"] = str(max(1, base.topk // routed))
        params = mechanism.params(**given)
        spec = f"{mechanism.name}({','.join(f'{k}={v}' for k, v in given.items())})"
        out.append((value, spec, mechanism.label(params)))
    return out


def sweep_variants(
    cfg: VariantSweepConfig, *, echo: Echo = print, command: Sequence[str] | None = None
) -> SweepResult:
    """Train every value of the swept parameter (one `runners.suite` grid in
    `<out>/<sweep>/<task>`; finished runs are reused, interrupted ones resume), then collect the
    routing diagnostics of each finished run's best checkpoint on `diag_batches` validation batches
    (torch backend) into eval records, and write `sweep-<sweep>.{md,csv,png}` there: accuracy
    (mean ± std over seeds), keys per query, parameters, throughput and the diagnostics per value.

    `command` replaces the training command (`runners.suite.run_suite`).
    """
    specs = variant_specs(cfg)
    where = Path(cfg.out) / cfg.sweep / cfg.task
    suite_cfg = suite.SuiteConfig(
        tasks=(cfg.task,),
        attentions=tuple(spec for _, spec, _ in specs),
        seeds=tuple(cfg.seeds),
        preset=cfg.preset,
        out=str(where),
        jobs=cfg.jobs,
        overrides=dict(cfg.overrides),
        max_steps=cfg.max_steps,
        device=cfg.device,
        data_dir=cfg.data_dir,
        source=cfg.source,
    )
    outcome = suite.run_suite(suite_cfg, command=command, echo=echo, reports=False)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for _, _, label in specs}
    failed = []
    for item in outcome.outcomes:
        record = item.record or {}
        status = record.get("status") if item.status == "skipped" else item.status
        if status in ("ok", "diverged"):
            runs.setdefault(item.cell.label, []).append({"record": record, "run_dir": item.cell.run_dir})
        if status != "ok":
            error = item.error or record.get("error") or "no record"
            failed.append(f"{item.cell.run_id}: {status} ({error})")
    evals = _variant_diagnostics(cfg, runs, where, echo) if cfg.diag_batches else []
    frame = variant_frame(cfg, specs, runs, evals)
    markdown = variant_markdown(cfg, frame, failed)
    stem = where / f"sweep-{cfg.sweep}"
    paths = _write_table(frame, markdown, stem)
    paths.append(plot_variants(cfg, frame, runs, stem.with_suffix(".png")))
    return SweepResult(evals, markdown, paths, failed=failed, table=frame, exit_code=outcome.exit_code)


def _variant_diagnostics(
    cfg: VariantSweepConfig, runs: Mapping[str, list[dict[str, Any]]], where: Path, echo: Echo
) -> list[dict[str, Any]]:
    """One eval record (split val, `diag_batches` batches) with diagnostics per finished run."""
    evaluator = Evaluator(
        EvalOptions(
            split="val", device=cfg.device, data_dir=cfg.data_dir, diag_batches=cfg.diag_batches, quiet=True
        )
    )
    records = []
    for entries in runs.values():
        for entry in entries:
            if entry["record"].get("status") != "ok":
                continue
            run = load_run(entry["run_dir"], checkpoint="best", data_dir=cfg.data_dir)
            model, missing, unused = evaluator.model(run, run.mechanism, run.params)
            limit = cfg.diag_batches * evaluator.batch_size(run)
            result = evaluator.evaluate(run, model, limit=limit)
            record = evaluator.record(cfg.sweep, run, run.mechanism, run.params, result, missing, unused)
            write_record(where / "diagnostics" / run.tag / "best-val.json", record)
            records.append(record)
            diag = result.diagnostics or {}
            echo(
                f"{run.run_id}: load entropy {diag.get('load_entropy', float('nan')):.3f}, pruned "
                f"{_pct(diag.get('pruned_fraction'))}%, overlap {_pct(diag.get('overlap'))}% "
                f"({result.n_examples} val examples)"
            )
    return records


def variant_frame(
    cfg: VariantSweepConfig,
    specs: Sequence[tuple[str, str, str]],
    runs: Mapping[str, list[dict[str, Any]]],
    evals: Sequence[dict[str, Any]],
) -> pd.DataFrame:
    """One row per swept value: accuracy over the seeds that finished ok, cost, diagnostics."""
    by_run = {r["run_id"]: r for r in evals}
    rows = []
    for value, _, label in specs:
        entries = runs.get(label, [])
        ok = [e["record"] for e in entries if e["record"].get("status") == "ok"]
        diags = [(by_run.get(r["run_id"]) or {}).get("diagnostics") or {} for r in ok]
        test = [r["test_acc"] for r in ok if r.get("test_acc") is not None]
        row = {
            cfg.parameter: value,
            "attention_label": label,
            "seeds_ok": len(ok),
            "seeds": len(cfg.seeds),
            "diverged": sum(e["record"].get("status") == "diverged" for e in entries),
            "test_acc": _mean(test) if test else float("nan"),
            "test_acc_std": float(pd.Series(test).std()) if len(test) > 1 else float("nan"),
            "best_val_acc": _mean([r.get("best_val_acc") for r in ok]),
            "chance_acc": _mean([r.get("chance_acc") for r in ok]),
            "keys_per_query": ok[0].get("keys_per_query") if ok else None,
            "seq_len": ok[0].get("seq_len") if ok else None,
            "params": ok[0].get("params") if ok else None,
            "train_tokens_per_s": _mean([r.get("train_tokens_per_s") for r in ok]),
            "train_steps_per_s": _mean([r.get("train_steps_per_s") for r in ok]),
        }
        row.update({key: _mean([d.get(key) for d in diags]) for key in DIAGNOSTIC_KEYS})
        row["test_acc_per_seed"] = json.dumps([r.get("test_acc") for r in ok])
        rows.append(row)
    return pd.DataFrame(rows)


def variant_markdown(cfg: VariantSweepConfig, frame: pd.DataFrame, failed: Sequence[str]) -> str:
    def acc(row: Any) -> str:
        if not row["seeds_ok"]:
            return "diverged" if row["diverged"] else "–"
        text = _pct(row["test_acc"], 2)
        return text + (f" ± {100 * row['test_acc_std']:.2f}" if row["seeds_ok"] > 1 else "")

    table = pd.DataFrame(
        {
            cfg.parameter: frame[cfg.parameter],
            "attention": frame["attention_label"],
            "test acc (%)": [acc(row) for _, row in frame.iterrows()],
            "seeds": [f"{a}/{b}" for a, b in zip(frame["seeds_ok"], frame["seeds"], strict=True)],
            "keys/query": [_count(v) for v in frame["keys_per_query"]],
            "params": [_count(v) for v in frame["params"]],
            "tokens/s": ["–" if pd.isna(v) else f"{v:,.0f}" for v in frame["train_tokens_per_s"]],
            "load entropy": ["–" if pd.isna(v) else f"{v:.3f}" for v in frame["load_entropy"]],
            "max load (%)": [_pct(v) for v in frame["load_max"]],
            "pruned (%)": [_pct(v) for v in frame["pruned_fraction"]],
            "overlap (%)": [_pct(v) for v in frame["overlap"]],
        }
    )
    chance = frame["chance_acc"].dropna()
    what = {"s": "experts per query (num_routed)", "landmarks": "landmark construction"}[cfg.sweep]
    lines = [
        f"## {cfg.task}: MiTA {what}, everything else fixed (preset {cfg.preset})",
        "",
        "Test accuracy of the best-validation checkpoint, mean ± std over the seeds that finished"
        + (f"; chance {_pct(float(chance.iloc[0]))}%" if len(chance) else "")
        + ". keys/query at the task's length; tokens/s: training throughput. Routing diagnostics of each "
        f"trained model on {cfg.diag_batches} validation batches, mean over layers and seeds: load entropy "
        "(1 = balanced experts), max load (share of queries on the busiest expert), pruned (keys no expert "
        "selects), overlap (share of a query's own full-attention top-k it attends)."
        + (" With --equal-budget, topk = topk // s." if cfg.equal_budget else ""),
        "",
        table.to_markdown(index=False, disable_numparse=True),
    ]
    if failed:
        lines += ["", "Runs without a result:", *(f"- {line}" for line in failed)]
    return "\n".join(lines).rstrip() + "\n"


def plot_variants(
    cfg: VariantSweepConfig, frame: pd.DataFrame, runs: Mapping[str, list[dict[str, Any]]], path: Path
) -> Path:
    """Accuracy per value (bars: mean, dots: seeds, dashed: chance) and the routing diagnostics."""
    diag_keys = [k for k in DIAGNOSTIC_KEYS if frame[k].notna().any()]
    fig, axes = _figure(5.5 + (5.5 if diag_keys else 0) + 0.3 * len(frame), 4.5, 2 if diag_keys else 1)
    values = [str(v) for v in frame[cfg.parameter]]
    ax = axes[0]
    ax.bar(range(len(values)), frame["test_acc"] * 100, color="tab:blue", alpha=0.8)
    for i, label in enumerate(frame["attention_label"]):
        seeds = [
            e["record"]["test_acc"] for e in runs.get(label, []) if e["record"].get("test_acc") is not None
        ]
        ax.scatter([i] * len(seeds), [100 * s for s in seeds], color="black", s=12, zorder=3)
    chance = frame["chance_acc"].dropna()
    if len(chance):
        ax.axhline(
            float(chance.iloc[0]) * 100, color="black", linestyle="dashed", linewidth=1, label="chance"
        )
        ax.legend(fontsize="small")
    ax.set_xticks(range(len(values)), values)
    ax.set_xlabel(cfg.parameter)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("accuracy (bars: mean, dots: seeds)")
    if diag_keys:
        ax = axes[1]
        width = 0.8 / len(diag_keys)
        for j, key in enumerate(diag_keys):
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(values))]
            label = "load entropy (normalised, x100)" if key == "load_entropy" else key.replace("_", " ")
            ax.bar(xs, frame[key] * 100, width, label=label)
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(cfg.parameter)
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
        ax.set_title(f"routing diagnostics ({cfg.diag_batches} validation batches)")
        ax.legend(fontsize="x-small")
    _suptitle(fig, f"{cfg.task}: MiTA {cfg.parameter} sweep, preset {cfg.preset}")
    return _save_figure(fig, path)
