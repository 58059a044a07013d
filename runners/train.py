"""Train one task with one attention: `run(RunConfig) -> result record`.

One function a script, the suite, `lra run` or torchrun can call::

    python -m runners.train RUN_CONFIG.json                       # one process
    torchrun --nproc-per-node 2 -m runners.train RUN_CONFIG.json  # DDP (gloo on CPU, nccl on CUDA)

What a run does:

* resolves the preset (lra/configs.py) with the run's overrides and the attention's parameters;
* trains with AdamW, the preset's warmup/decay schedule (a function of the step, or torch's own
  `OneCycleLR` for "onecycle"), gradient clipping, gradient accumulation to the preset batch, and
  autocast on CUDA (attention kept in fp32 where the preset says so);
* evaluates on the validation split every `train.eval_every` steps and at the end, keeps the
  best-validation and the last checkpoints, and reports the test accuracy of both: `test_acc` of
  the best-validation checkpoint (what the PyTorch lineage tests) and `test_acc_last` of the last
  (what LRA's JAX code tests); `train.report_checkpoint` says which one the tables report;
* checkpoints model, optimizer, AMP scaler, learning-rate scheduler, step, data position and
  every RNG state,
  atomically, so a run killed at any point and resumed (`resume=True`) finishes with exactly the
  same metrics as an uninterrupted one (same device, same seed);
* skips and counts non-finite losses / gradients, and stops as `diverged` after
  `train.max_bad_steps` of them;
* writes `<run_dir>/result.json` (see results/records.py): status `running` at the start, then
  `ok`, `diverged` or `failed` (with the error) at the end; a run that ends `ok` also writes
  `<run_dir>/predictions.npz`, the predicted class of every test example for the best-validation
  and the last checkpoint (results/predictions.py), named in the record with its sha256.
"""

from __future__ import annotations

# `python -m runners.train` (also under torchrun): pin the CPU's floating-point order before torch is
# imported below (runners/cpu_pinning.py); imported as a library, the process decides.
if __name__ == "__main__":
    from runners.cpu_pinning import apply_cpu_pinning

    apply_cpu_pinning()

import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import attention_zoo
from attention_zoo.plugins import child_env, provenance_of, require_plugins
from lra import models, tasks
from lra.configs import Preset, TrainConfig, apply_overrides, get_preset, preset_identity
from lra.data.cache import subset_indices
from lra.data.identity import data_identity
from lra.io import atomic_write_json, atomic_write_text
from lra.tasks.base import LRADataset
from results import schema
from results.predictions import write_predictions
from results.records import RECORD_NAME, SCHEMA_VERSION, plugin_fields, read_record, write_record
from results.stats import resolution_line

from .checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .cpu_pinning import cpu_isa, cpu_model, cpu_numerics
from .defaults import DEFAULT_RUNS_DIR
from .memory import memory_baseline, peak_memory_growth
from .provenance import config_hash, git_commit, installed_version, utc_now
from .rng import rng_state, seed_everything, set_rng_state
from .run_logging import RunLogger, check_loggers, open_run_logger
from .rundir import BUSY_EXIT_CODE, RunDirBusy, remove_stale_temporaries, run_dir_lock
from .timing import device_name
from .validation import check_preset_numbers, check_run_options, check_seed

# Fault injection for resume tests: with this variable set to N, the process kills itself with SIGKILL
# right after step N (after that step's checkpoint, if it writes one), exactly where an outside kill
# would land, without depending on how fast the run goes.
KILL_AFTER_STEP_ENV = "LRA_KILL_AFTER_STEP"


@dataclass
class RunConfig:
    """One run: a task, an attention, a preset, a seed, and where to write.

    Attributes:
        task: task name (`lra.tasks.names()`).
        attention: attention name (`attention_zoo.names()`).
        attn_params: the attention's parameters (strings from the CLI are converted).
        preset: preset name (`lra.configs.PRESET_NAMES`).
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
        log: loggers of the training curves (runners/run_logging.py), e.g. ["tensorboard"]; they
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
    """A RunConfig resolved against the preset and the registry."""

    cfg: RunConfig
    preset: Preset
    mechanism: attention_zoo.Mechanism
    params: attention_zoo.AttentionParams
    device: torch.device
    run_dir: Path
    plugins: tuple[dict[str, Any], ...] = ()  # provenance of the plugin providing the attention

    @property
    def label(self) -> str:
        return self.mechanism.label(self.params)

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
            "attention": self.mechanism.name,
            "attention_params": self.params.to_dict(),
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
    _load_run_plugins(cfg)
    check_loggers(cfg.log)
    mechanism = attention_zoo.get(cfg.attention)
    mechanism.params(**cfg.attn_params)  # a clear error for bad parameters before anything else
    tasks.get(cfg.task)  # likewise for unknown tasks, before presets are looked up
    preset = apply_overrides(get_preset(cfg.task, cfg.preset), dict(cfg.overrides))
    params = mechanism.params(**{**preset.attention.get(mechanism.name, {}), **cfg.attn_params})
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
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {cfg.device!r}")
    if cfg.device == "cuda" and not elsewhere and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use --device cpu")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    run_dir = (
        Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg.task, mechanism.slug(params), cfg.seed)
    )
    return Resolved(cfg, preset, mechanism, params, device, run_dir, attention_plugins(mechanism))


def _load_run_plugins(cfg: RunConfig) -> None:
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


def attention_plugins(mechanism: attention_zoo.Mechanism) -> tuple[dict[str, Any], ...]:
    """The provenance (`PluginInfo.to_dict()`) of the plugin that registered `mechanism`; () for a
    built-in or a mechanism registered by a script rather than loaded as a plugin."""
    provenance = provenance_of(mechanism)
    return (provenance,) if provenance is not None else ()


# ----------------------------------------------------------------------------------------------
# Distributed helpers (single process when RANK / WORLD_SIZE are not set)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        torch_dist.all_reduce(t)
        return t.tolist()


def _init_distributed(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    return Dist(rank, world, local_rank)


# ----------------------------------------------------------------------------------------------
# Optimizer, schedule, data order, checkpoint writes
# ----------------------------------------------------------------------------------------------


def make_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the preset's betas, eps and (decoupled) weight decay on every parameter."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=train.lr,
        betas=(train.beta1, train.beta2),
        eps=train.eps,
        weight_decay=train.weight_decay,
    )


def lr_multiplier(train: TrainConfig, step: int) -> float:
    """Learning-rate factor for optimizer step `step` (1-based) under the preset's schedule
    ("onecycle" is torch's scheduler object, `make_scheduler`)."""
    warmup, total = train.warmup_steps, train.steps
    if train.schedule == "onecycle":
        raise ValueError("the onecycle schedule is torch's OneCycleLR (make_scheduler), not a multiplier")
    if train.schedule in ("rsqrt", "cosine"):
        # LRA's create_learning_rate_scheduler, evaluated at the updates done before this one.
        done = step - 1
        factor = min(1.0, done / warmup) if warmup else 1.0
        if train.schedule == "rsqrt":
            return factor / math.sqrt(max(done, warmup, 1))
        progress = max(0.0, (done - warmup) / total)  # LRA's steps_per_cycle = its step count
        return factor * 0.5 * (1.0 + math.cos(math.pi * (progress % 1.0)))
    if warmup and step < warmup:
        return step / warmup
    if train.schedule == "constant":
        return 1.0
    # Decay towards 0 at step total + 1, so that the last of the `total` steps still learns.
    progress = (step - warmup) / (total - warmup + 1)
    progress = min(max(progress, 0.0), 1.0)
    return 1.0 - progress  # linear decay to 0


def make_scheduler(
    optimizer: torch.optim.Optimizer, train: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """torch's `OneCycleLR` for the "onecycle" schedule, None for the others (`lr_multiplier`).

    The arguments are the PyTorch lineage's (mlpen/Nystromformer LRA/code/run_tasks.py, also
    pkuzengqi/Skyformer src/main.py): max_lr = lr, total_steps = steps, pct_start = warmup / steps,
    linear annealing, torch's defaults otherwise (initial lr = lr / 25, final lr = lr / 25e4, beta1
    cycled from 0.95 down to 0.85 at the peak and back). It is stepped once per optimizer step. The
    warmup is capped at steps - 1 so that a shortened run (`--max-steps` below the warmup) works.
    """
    if train.schedule != "onecycle":
        return None
    warmup = min(train.warmup_steps, train.steps - 1)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=train.lr,
        total_steps=train.steps,
        pct_start=warmup / train.steps,
        anneal_strategy="linear",
    )


class BatchOrder:
    """Deterministic example order: epoch e is a permutation drawn from (seed, e), split across DDP
    ranks; the position is (epoch, step within epoch), which is all a checkpoint needs."""

    def __init__(self, num_examples: int, local_batch: int, seed: int, dist: Dist) -> None:
        self.num_examples, self.local_batch, self.seed, self.dist = num_examples, local_batch, seed, dist
        self.steps_per_epoch = (num_examples // dist.world) // local_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"train.batch_size ({local_batch * dist.world}) exceeds the {num_examples} training examples; "
                "lower train.batch_size or use more data"
            )
        self._epoch, self._indices = -1, None

    def batch(self, epoch: int, offset: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.num_examples, generator=gen)
            self._indices = perm[self.dist.rank :: self.dist.world]
            self._epoch = epoch
        return self._indices[offset * self.local_batch : (offset + 1) * self.local_batch]


def _save(obj: Any, path: Path) -> None:
    """Write a checkpoint atomically with its digest (runners/checkpoints.py): a run killed mid-write
    keeps its previous checkpoint, and a damaged file never loads."""
    save_checkpoint(path, obj)


# ----------------------------------------------------------------------------------------------
# Batches and evaluation
# ----------------------------------------------------------------------------------------------


def _trim(tokens: torch.Tensor) -> torch.Tensor:
    """Drop trailing columns that are padding in every row: exact for every mechanism (trailing
    padding never changes valid outputs) and much faster for short sequences in a long frame."""
    used = (tokens != 0).any(dim=0).nonzero()
    return tokens[:, : int(used.max()) + 1] if used.numel() else tokens[:, :1]


def batch_inputs(ds: LRADataset, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The model inputs of examples `index` (trailing all-padding columns dropped), on `device`."""
    out = [_trim(ds.inputs[index].long())]
    if ds.inputs2 is not None:
        out.append(_trim(ds.inputs2[index].long()))
    return tuple(t.to(device, non_blocking=True) for t in out)


def evaluated_indices(n: int, limit: int = 0) -> torch.Tensor:
    """The examples of a split of `n` that `evaluate` scores with `limit` (all ranks together)."""
    return torch.as_tensor(np.arange(n)[subset_indices(n, limit)])


@dataclass(frozen=True)
class Evaluation:
    """A model scored on a split: accuracy and mean loss, and what it predicted for each example.

    Attributes:
        accuracy, loss: over the evaluated examples (all ranks together).
        index: [n] the evaluated examples' positions in the split (`evaluated_indices`).
        predicted: [n] the predicted class of each (argmax of the logits), in `index` order.
    """

    accuracy: float
    loss: float
    index: np.ndarray
    predicted: np.ndarray


@torch.no_grad()
def predict(
    model: nn.Module,
    ds: LRADataset,
    batch_size: int,
    device: torch.device,
    dist: Dist,
    autocast: Any,
    limit: int = 0,
) -> Evaluation:
    """Score the split (or `limit` of its examples: the fixed random subset of
    `lra.data.cache.subset_indices`, as capped splits are) with the examples shared across ranks;
    every rank returns the whole split's accuracy, loss and predictions."""
    was_training = model.training
    model.eval()
    everything = evaluated_indices(len(ds), limit)
    index = everything[dist.rank :: dist.world]
    correct = loss_sum = 0.0
    predicted: list[torch.Tensor] = []
    for start in range(0, len(index), batch_size):
        idx = index[start : start + batch_size]
        labels = ds.labels[idx].to(device)
        with autocast():
            logits = model(*batch_inputs(ds, idx, device)).float()
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        classes = logits.argmax(-1)
        correct += float((classes == labels).sum())
        predicted.append(classes.cpu())
    correct, loss_sum, count = dist.sum([correct, loss_sum, float(len(index))])
    mine = torch.cat(predicted).numpy() if predicted else np.zeros(0, dtype=np.int64)
    if dist.world > 1:  # every rank scored every world-th example: put them back in order
        parts: list[Any] = [None] * dist.world
        torch_dist.all_gather_object(parts, mine)
        ordered = np.zeros(len(everything), dtype=np.int64)
        for rank, part in enumerate(parts):
            ordered[rank :: dist.world] = part
        mine = ordered
    model.train(was_training)
    return Evaluation(
        accuracy=correct / max(count, 1.0),
        loss=loss_sum / max(count, 1.0),
        index=everything.numpy(),
        predicted=mine.astype(np.int64),
    )


def evaluate(
    model: nn.Module,
    ds: LRADataset,
    batch_size: int,
    device: torch.device,
    dist: Dist,
    autocast: Any,
    limit: int = 0,
) -> tuple[float, float]:
    """(accuracy, mean loss) of `predict`."""
    scored = predict(model, ds, batch_size, device, dist, autocast, limit)
    return scored.accuracy, scored.loss


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def _record(r: Resolved, **values: Any) -> dict[str, Any]:
    """A run record with every schema field; `values` fill what is known."""
    spec = tasks.get(r.cfg.task)
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "run",
        "run_id": f"{r.cfg.task}/{r.label}/{r.cfg.seed}",
        "task": r.cfg.task,
        "attention": r.mechanism.name,
        "attention_params": r.params.to_dict(),
        "attention_label": r.label,
        **plugin_fields(r.plugins[0] if r.plugins else None),
        "keys_per_query": None,
        "preset": r.preset.name,
        "seed": r.cfg.seed,
        "status": "running",
        "error": None,
        "steps": 0,
        "max_steps": r.preset.train.steps,
        "best_step": None,
        "best_val_acc": None,
        "test_acc": None,
        "test_acc_last": None,
        "val_acc_last": None,
        "final_train_loss": None,
        "chance_acc": None,
        "num_classes": spec.num_classes,
        "n_train": None,
        "n_val": None,
        "n_test": None,
        "seq_len": None,
        "data_source": None,
        "params": None,
        "train_tokens_per_s": None,
        "train_steps_per_s": None,
        "peak_memory_bytes": None,
        "wall_time_s": None,
        "device": device_name(r.device),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "amp": r.preset.train.amp if r.device.type == "cuda" and r.preset.train.amp != "none" else None,
        "git_commit": git_commit(),
        "config_hash": r.config_hash,
        "config": r.compared_config(),
        "cpu_model": cpu_model() if r.device.type == "cpu" else None,
        "cpu_isa": cpu_isa() if r.device.type == "cpu" else None,
        "torch_version": torch.__version__,
        "triton_version": installed_version("triton"),
        "package_version": installed_version("lra-arena"),
        "started_at": utc_now(),
        "finished_at": None,
        "history": [],
        "predictions_file": None,
        "predictions_sha256": None,
        "test_set_sha256": None,
    }
    record.update(values)
    return record


def _existing_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RECORD_NAME
    if not path.exists():
        return None
    try:
        return read_record(path)
    except ValueError:
        return None  # a torn record of an interrupted run: the checkpoint decides


def run(cfg: RunConfig) -> dict[str, Any]:
    """Train and evaluate one run; returns its result record (also written to <run_dir>/result.json).

    The writing process (rank 0) holds the run directory's lock throughout (`runners/rundir.py`):
    `RunDirBusy` when another process holds it, before anything is read or written."""
    r = resolve(cfg)
    writer = int(os.environ.get("RANK", "0")) == 0
    with run_dir_lock(r.run_dir) if writer else contextlib.nullcontext():
        if writer:
            remove_stale_temporaries(r.run_dir)  # left by a writer killed mid-write
        return _run_locked(r)


def _run_locked(r: Resolved) -> dict[str, Any]:
    dist = _init_distributed(r.device)
    ckpt_dir = r.run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    finished, state = _check_run_dir(r, last_path)
    if finished is not None:
        return finished

    started = time.perf_counter()
    record = _record(r)
    try:
        if dist.main:
            r.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(
                r.run_dir / "config.json",
                {"run_config": dataclasses.asdict(_with_plugins(r)), **r.config_dict()},
            )
            if state is not None:
                record["started_at"] = state["started_at"]
            write_record(r.run_dir / RECORD_NAME, record)
        return _train(r, dist, state, record, last_path, best_path, started)
    except Exception as err:
        record.update(status="failed", error=error_line(err), finished_at=utc_now())
        if dist.main:
            # On a full disk this write fails too: the error above is what the user needs to see.
            with contextlib.suppress(OSError):
                write_record(r.run_dir / RECORD_NAME, record)
        raise


def error_line(err: BaseException) -> str:
    """The one line a record's `error` field and the command line show for `err`: the message of
    an error meant for the user (a bad value, a damaged file, a full disk), otherwise the
    exception's type and the first line of its message."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, (ValueError, OSError, RunDirBusy)) and message:
        return message
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def _with_plugins(r: Resolved) -> RunConfig:
    """The run's configuration naming the plugin its attention comes from (what children and a resume read)."""
    return dataclasses.replace(r.cfg, plugins=[*r.plugins]) if r.plugins else r.cfg


def _check_run_dir(r: Resolved, last_path: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What the run directory holds: (its final record, None) for a finished run to return,
    (None, checkpoint) for one to resume, (None, None) for a new one; ValueError (one line) when
    it holds another configuration, or a run without --resume, or a checkpoint that cannot be read."""
    existing = _existing_record(r.run_dir)
    if existing is not None and existing.get("status") in ("ok", "diverged"):  # final results
        if existing.get("config_hash") != r.config_hash:
            raise ValueError(
                f"{r.run_dir} holds a finished run of a different configuration; choose another --run-dir"
            )
        if not r.cfg.resume:
            raise ValueError(
                f"{r.run_dir} already holds a finished run; pass --resume to reuse it or choose another --run-dir"
            )
        return existing, None
    if not last_path.exists():
        return None, None
    if not r.cfg.resume:
        raise ValueError(
            f"{r.run_dir} already holds a started run; pass --resume to continue it or choose another --run-dir"
        )
    state = load_checkpoint(
        last_path, remedy="delete it to train the run from the start, or choose another --run-dir"
    )
    if state.get("config_hash") != r.config_hash:
        raise ValueError(
            f"{r.run_dir} holds a checkpoint of a different configuration (hash {state.get('config_hash')} vs "
            f"{r.config_hash}); choose another --run-dir"
        )
    then, now = state.get("cpu_numerics"), r.numerics()
    if then != now:  # the steps after the resume would run in another floating-point order
        differ = ", ".join(
            f"{key} {(then or {}).get(key)} then, {(now or {}).get(key)} now"
            for key in sorted(set(then or {}) | set(now or {}))
            if (then or {}).get(key) != (now or {}).get(key)
        )
        raise ValueError(
            f"{last_path} was written under other CPU numerics ({differ}); resume with the same thread count "
            f"and CPU pinning (runners/cpu_pinning.py), or delete {r.run_dir} to train the run again"
        )
    return None, state


def _train(
    r: Resolved,
    dist: Dist,
    state: dict[str, Any] | None,
    record: dict[str, Any],
    last_path: Path,
    best_path: Path,
    started: float,
) -> dict[str, Any]:
    train_cfg, spec = r.preset.train, tasks.get(r.cfg.task)
    device = r.device

    # Data: the main process loads (and, for generated sources, generates) first.
    splits: dict[str, LRADataset] = {}
    for turn in (0, 1):
        if (turn == 0) == dist.main:
            splits = {split: spec.load(split, r.preset.data) for split in ("train", "val", "test")}
        dist.barrier()
    train_ds, val_ds, test_ds = splits["train"], splits["val"], splits["test"]
    seq_len = train_ds.seq_len
    counts = torch.bincount(test_ds.labels, minlength=spec.num_classes)
    record.update(
        n_train=len(train_ds),
        n_val=len(val_ds),
        n_test=len(test_ds),
        seq_len=seq_len,
        data_source=train_ds.info.get("data_source", train_ds.info.get("source")),
        chance_acc=float(counts.max()) / max(1, len(test_ds)),
        keys_per_query=r.mechanism.keys_per_query(r.params, seq_len) if r.mechanism.keys_per_query else None,
    )

    baseline_memory = memory_baseline(device)
    seed_everything(r.cfg.seed + 7919 * dist.rank)
    vocab = int(max(int(train_ds.inputs.max()), spec.vocab_size - 1)) + 1
    model = models.build(
        vocab_size=vocab,
        max_len=seq_len,
        num_classes=spec.num_classes,
        dual_input=spec.dual_input,
        model=r.preset.model,
        attention=r.mechanism.name,
        attn_params=r.params.to_dict(),
    ).to(device)
    record["params"] = models.count_parameters(model)
    wrapped: nn.Module = model
    if dist.world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None
        )

    optimizer = make_optimizer(model, train_cfg)
    scheduler = make_scheduler(optimizer, train_cfg)

    def set_lr(next_step: int) -> None:
        # The schedule is a pure function of the step, so the step in a checkpoint restores it
        # exactly; torch's scheduler (onecycle) is restored from its own state instead.
        if scheduler is not None:
            return
        for group in optimizer.param_groups:
            group["lr"] = train_cfg.lr * lr_multiplier(train_cfg, next_step)

    use_amp = device.type == "cuda" and train_cfg.amp != "none"
    amp_dtype = torch.float16 if train_cfg.amp == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=amp_dtype) if use_amp else contextlib.nullcontext()

    if train_cfg.batch_size % dist.world:
        raise ValueError(
            f"train.batch_size={train_cfg.batch_size} must be divisible by the {dist.world} processes"
        )
    local_batch = train_cfg.batch_size // dist.world
    micro = min(train_cfg.micro_batch_size or local_batch, local_batch)
    if local_batch % micro:
        raise ValueError(f"train.micro_batch_size={micro} must divide the per-process batch {local_batch}")
    order = BatchOrder(len(train_ds), local_batch, r.cfg.seed, dist)
    eval_batch = max(micro, 1)
    checkpoint_every = train_cfg.checkpoint_every or train_cfg.eval_every

    step, epoch, offset = 0, 0, 0
    best_val, best_step, bad_steps = -1.0, None, 0
    last_bad_step: int | None = None  # the latest step whose loss or gradients were non-finite
    history: list[dict[str, Any]] = []
    intervals: list[tuple[float, float, int]] = []  # (seconds, tokens, steps) of training between evaluations
    losses: list[float] = []  # training losses since the last evaluation
    wall_before = 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # after the scheduler set its initial values
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, offset = state["step"], state["epoch"], state["offset"]
        best_val, best_step, bad_steps = state["best_val_acc"], state["best_step"], state["bad_steps"]
        last_bad_step = state["last_bad_step"]
        history, wall_before = list(state["history"]), state["wall_time_s"]
        intervals = [tuple(x) for x in state["intervals"]]
        losses = list(state["losses"])
        set_rng_state(state["rng"][dist.rank])
    logger = (
        open_run_logger(r.cfg.log, r.run_dir, resumed_step=step, config=_logged_config(r))
        if dist.main
        else RunLogger()
    )

    numerics = r.numerics()  # a resume checks it against its own

    def checkpoint() -> None:
        rng = [rng_state()]
        if dist.world > 1:
            rng = [None] * dist.world
            torch_dist.all_gather_object(rng, rng_state())
        if dist.main:
            logger.checkpoint(step)  # the curves up to `step` are on disk before the checkpoint is
            _save(
                {
                    "format": CHECKPOINT_FORMAT,
                    "config_hash": r.config_hash,
                    "step": step,
                    "epoch": epoch,
                    "offset": offset,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict(),
                    "rng": rng,
                    "best_val_acc": best_val,
                    "best_step": best_step,
                    "bad_steps": bad_steps,
                    "last_bad_step": last_bad_step,
                    "history": history,
                    "intervals": [list(x) for x in intervals],
                    "losses": losses,
                    "wall_time_s": wall_before + time.perf_counter() - started,
                    "started_at": record["started_at"],
                    "cpu_numerics": numerics,
                },
                last_path,
            )
        dist.barrier()

    model.train()
    # A bar on a terminal; in logs (not a TTY) one line per evaluation instead; nothing when quiet.
    show_bar = not r.cfg.quiet and dist.main and sys.stderr.isatty()
    log_lines = not r.cfg.quiet and dist.main and not show_bar
    bar = tqdm(
        total=train_cfg.steps,
        initial=step,
        disable=not show_bar,
        dynamic_ncols=True,
        desc=f"{r.cfg.task}/{r.label}",
        unit="step",
    )
    interval_time = interval_tokens = 0.0
    interval_start = step
    diverged = None
    kill_after_step = int(os.environ[KILL_AFTER_STEP_ENV]) if os.environ.get(KILL_AFTER_STEP_ENV) else None
    while step < train_cfg.steps:
        tick = time.perf_counter()
        set_lr(step + 1)
        index = order.batch(epoch, offset)
        offset += 1
        if offset == order.steps_per_epoch:
            epoch, offset = epoch + 1, 0
        loss_total = torch.zeros((), device=device)
        tokens_seen = 0
        for start in range(0, local_batch, micro):
            idx = index[start : start + micro]
            inputs = batch_inputs(train_ds, idx, device)
            labels = train_ds.labels[idx].to(device)
            tokens_seen += sum(t.numel() for t in inputs)
            last_micro = start + micro >= local_batch
            sync = contextlib.nullcontext() if (last_micro or dist.world == 1) else wrapped.no_sync()
            with sync:
                with autocast():
                    loss = F.cross_entropy(wrapped(*inputs).float(), labels) * (len(idx) / local_batch)
                scaler.scale(loss).backward()
            loss_total += loss.detach()
        step += 1
        scaler.unscale_(optimizer)
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip or float("inf"))
        (loss_value,) = dist.sum([float(loss_total)])
        loss_value /= dist.world
        finite_loss = math.isfinite(loss_value)
        if not finite_loss or (not scaler.is_enabled() and not math.isfinite(float(grad_norm))):
            bad_steps, last_bad_step = bad_steps + 1, step
            optimizer.zero_grad(set_to_none=True)
            if scaler.is_enabled():
                scaler.update()
            if bad_steps > train_cfg.max_bad_steps:
                diverged = f"{bad_steps} non-finite losses or gradients (the last at step {step})"
        else:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss_value)
            logger.train_step(step, loss=loss_value, lr=optimizer.param_groups[0]["lr"], grad_norm=grad_norm)
        step_lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:  # once per step, skipped updates included, as the lineage does
            scheduler.step()
        interval_time += time.perf_counter() - tick
        interval_tokens += tokens_seen * dist.world
        bar.update(1)
        if diverged:
            break

        if step % train_cfg.eval_every == 0 or step == train_cfg.steps:
            val_acc, val_loss = evaluate(
                wrapped, val_ds, eval_batch, device, dist, autocast, train_cfg.eval_examples
            )
            train_loss = sum(losses) / len(losses) if losses else float("nan")
            losses = []
            intervals.append((interval_time, interval_tokens, step - interval_start))
            interval_time = interval_tokens = 0.0
            interval_start = step
            history.append(
                {
                    "step": step,
                    "train_loss": train_loss,
                    "val_acc": val_acc,
                    "val_loss": val_loss,
                    "lr": step_lr,
                }
            )
            seconds, tokens, steps_done = intervals[-1]
            logger.evaluation(
                step,
                val_acc=val_acc,
                val_loss=val_loss,
                train_loss=train_loss,
                tokens_per_s=tokens / seconds if seconds > 0 else None,
                steps_per_s=steps_done / seconds if seconds > 0 else None,
                peak_memory_bytes=peak_memory_growth(device, baseline_memory),
            )
            bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
            if log_lines:
                print(
                    f"step {step}/{train_cfg.steps}  train_loss {train_loss:.4f}  val_acc {val_acc:.4f}  "
                    f"val_loss {val_loss:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
            if val_acc > best_val:
                best_val, best_step = val_acc, step
                if dist.main:
                    _save(
                        {
                            "model": model.state_dict(),
                            "step": step,
                            "val_acc": val_acc,
                            "config_hash": r.config_hash,
                        },
                        best_path,
                    )
                dist.barrier()
        if step % checkpoint_every == 0 or step == train_cfg.steps:
            checkpoint()
        if kill_after_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()

    diverged = diverged or _non_finite_end(model, step, last_bad_step, bad_steps, history)
    record.update(
        steps=step,
        history=history,
        best_val_acc=best_val if best_step else None,
        best_step=best_step,
        final_train_loss=history[-1]["train_loss"] if history else None,
    )
    if diverged:
        checkpoint()
        record.update(status="diverged", error=diverged)
    else:
        record["val_acc_last"] = history[-1]["val_acc"] if history else None
        last = predict(wrapped, test_ds, eval_batch, device, dist, autocast)
        record["test_acc_last"] = last.accuracy
        test_losses = {"last": last.loss}
        best_scored = None
        if best_step is not None:
            best = load_checkpoint(best_path, remedy=f"delete {r.run_dir} and train the run again")
            if best.get("step") != best_step or best.get("config_hash") != r.config_hash:
                raise ValueError(
                    f"{best_path} holds step {best.get('step')} of configuration {best.get('config_hash')}, but "
                    f"this run's best validation step is {best_step} of configuration {r.config_hash}; delete "
                    f"{r.run_dir} and train the run again"
                )
            model.load_state_dict(best["model"])
            best_scored = predict(wrapped, test_ds, eval_batch, device, dist, autocast)
            record["test_acc"] = best_scored.accuracy
            test_losses["best-validation"] = best_scored.loss
        non_finite = [name for name, loss in test_losses.items() if not math.isfinite(loss)]
        if non_finite:
            record.update(
                status="diverged",
                error=f"non-finite test loss of the {' and the '.join(non_finite)} checkpoint after step {step}",
            )
        else:
            if dist.main:  # the predicted class of every test example, for paired comparisons
                record.update(
                    write_predictions(
                        r.run_dir,
                        index=last.index,
                        label=test_ds.labels[torch.as_tensor(last.index)].numpy(),
                        last=last.predicted,
                        best=best_scored.predicted if best_scored is not None else None,
                        run_id=record["run_id"],
                        config_hash=r.config_hash,
                        data_identity=record["config"]["data_identity"],
                    )
                )
            record["status"] = "ok"

    timed = intervals[1:] if len(intervals) > 1 else intervals  # the first interval includes warm-up
    rates = sorted(tokens / seconds for seconds, tokens, _ in timed if seconds > 0)
    step_rates = sorted(steps / seconds for seconds, _, steps in timed if seconds > 0)
    record.update(
        train_tokens_per_s=rates[len(rates) // 2] if rates else None,
        train_steps_per_s=step_rates[len(step_rates) // 2] if step_rates else None,
        peak_memory_bytes=peak_memory_growth(device, baseline_memory),
        wall_time_s=wall_before + time.perf_counter() - started,
        finished_at=utc_now(),
    )
    logger.end(record)
    logger.close()
    if dist.main:
        write_record(r.run_dir / RECORD_NAME, record)
    dist.barrier()
    return record


def _logged_config(r: Resolved) -> dict[str, Any]:
    """The configuration a logger shows: what the run's results depend on, and how it was started."""
    return {"config_hash": r.config_hash, **r.config_dict(), "run_config": dataclasses.asdict(r.cfg)}


def _non_finite_end(
    model: nn.Module, step: int, last_bad_step: int | None, bad_steps: int, history: list[dict[str, Any]]
) -> str | None:
    """Why a run that reached its last step is `diverged` although it stayed under
    `train.max_bad_steps` (None when it is not): its last step was non-finite, its weights are, or
    so is its last evaluation. Skipping and counting bad steps is for blips along the way; a run
    must end finite to count."""
    if last_bad_step is not None and last_bad_step == step:
        return f"non-finite loss or gradients at the last step ({step}; {bad_steps} non-finite steps in all)"
    for name, parameter in model.named_parameters():
        if not bool(torch.isfinite(parameter).all()):
            return f"non-finite weights after step {step} ({name})"
    last = history[-1] if history else {}
    for key in ("train_loss", "val_loss"):
        value = last.get(key)
        if value is not None and not math.isfinite(value):
            return f"non-finite {key.replace('_', ' ')} at the last evaluation (step {last['step']})"
    return None


def runner_command(config_path: Path, nproc: int = 1) -> list[str]:
    """The command that runs one RunConfig file (under torchrun when nproc > 1)."""
    if nproc > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "runners.train",
            str(config_path),
        ]
    return [sys.executable, "-m", "runners.train", str(config_path)]


def launch(cfg: RunConfig, nproc: int) -> dict[str, Any]:
    """Run `cfg` with DDP over `nproc` local processes (torchrun) and return the record."""
    r = resolve(cfg)
    config_path = r.run_dir / "run_config.json"
    # Checked and written under the lock (fail here, not in every rank); rank 0 then takes it itself.
    with run_dir_lock(r.run_dir):
        finished, _ = _check_run_dir(r, r.run_dir / "checkpoints" / "last.pt")
        if finished is not None:
            return finished
        atomic_write_text(config_path, _with_plugins(r).to_json())
    env = child_env()
    if r.device.type == "cpu":  # split the cores between the processes
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    completed = subprocess.run(runner_command(config_path, nproc), env=env, check=False)
    if completed.returncode == BUSY_EXIT_CODE:
        raise RunDirBusy(r.run_dir)
    record = _existing_record(r.run_dir)
    if record is None or record.get("config_hash") != r.config_hash:
        raise ValueError(
            f"the DDP run exited with code {completed.returncode} without a result record of this "
            f"configuration in {r.run_dir}; its processes' messages are above"
        )
    return record


def main(argv: list[str] | None = None) -> int:
    """`python -m runners.train RUN_CONFIG.json` (also under torchrun). Exit 0 iff status is ok."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m runners.train RUN_CONFIG.json", file=sys.stderr)
        return 2
    try:
        cfg = RunConfig.from_json(Path(argv[0]).read_text())
        record = run(cfg)
    except RunDirBusy as err:
        print(str(err), file=sys.stderr)
        return BUSY_EXIT_CODE
    except (ValueError, FileNotFoundError) as err:
        print(f"Error: {error_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder without permission: one line, the run's record says it too
        print(f"Error: {error_line(err)}", file=sys.stderr)
        return 1
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            json.dumps(
                {k: record[k] for k in ("status", "steps", "best_val_acc", "test_acc", "test_acc_last")}
            )
        )
    return 0 if record["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
