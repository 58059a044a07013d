"""Evaluating a trained checkpoint with any attention: `Evaluator` (accuracy on a split, cached
per run) and MiTA's routing diagnostics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

import attention_zoo
from attention_zoo.mita import diagnostics
from attention_zoo.module import MultiHeadAttention
from attention_zoo.plugins import provenance_of
from lra import models, tasks
from lra.tasks.base import DataConfig, LRADataset
from results.records import SCHEMA_VERSION, plugin_fields, write_record

from ..defaults import EXPERIMENTS_OUT
from ..devices import device_name, resolve_device
from ..provenance import git_commit, utc_now
from ..train.distributed import Dist
from ..train.evaluation import batch_inputs, evaluate, evaluated_indices
from ..train.step import Autocast
from .runs import CHECKPOINTS, SPLITS, TrainedRun

DIAGNOSTIC_KEYS = ("load_entropy", "load_max", "pruned_fraction", "overlap")


@dataclass(frozen=True)
class EvalOptions:
    """How checkpoints are evaluated (`lra sweep mk`, `lra swap`).

    Attributes:
        split: "test" or "val".
        checkpoint: "best" (best validation, what the PyTorch lineage tests) or "last" (what LRA tests).
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
                attn_params=params,
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

    def _autocast(self, run: TrainedRun) -> Autocast:
        return Autocast.of(self.device, run.preset.train.amp)  # the trainer's mixed precision

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
            **plugin_fields(provenance_of(mechanism)),
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
            "measured_at": utc_now(),
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
            module.params = dataclasses.replace(module.params, **{"backend": "torch"})
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
        layer: dict[str, Any] = {key: finite_mean([c[key] for c in calls]) for key in DIAGNOSTIC_KEYS}
        loads = [c["expert_load"] for c in calls]
        layer["expert_load"] = (
            [finite_mean(column) for column in zip(*loads, strict=True)]
            if len({len(x) for x in loads}) == 1
            else None
        )
        layer["num_landmarks"] = calls[0]["num_landmarks"]
        layer["topk"] = calls[0]["topk"]
        layers.append(layer)
    summary: dict[str, Any] = {key: finite_mean([layer[key] for layer in layers]) for key in DIAGNOSTIC_KEYS}
    summary.update(split=split, batches=len(per_batch), examples=count, layers=layers)
    return summary


def finite_mean(values: Sequence[float | None]) -> float:
    """The mean of the finite values (None and NaN left out); NaN when there is none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else float("nan")


def progress_bar(total: int, desc: str, quiet: bool) -> tqdm:
    return tqdm(
        total=total, desc=desc, unit="eval", disable=quiet or not sys.stderr.isatty(), dynamic_ncols=True
    )
