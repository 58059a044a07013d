"""Efficiency benchmarks: the cost side of "which attention, at what accuracy and what cost".

Two benchmarks write efficiency records (results/records.py, ``kind="efficiency"``) into the same
results store as the training runs, one JSON file per measurement::

    <out>/efficiency/<bench>/<device>/<config>/<attention slug>-<backend>/<pass>-N<length>.json

* `bench_attention` (``lra bench attention``) -- one attention call on random q, k, v of shape
  [B, H, N, d]: ``forward`` (under `torch.no_grad`) and ``forward_backward`` (forward plus the
  gradients of q, k and v for a random output gradient), time and peak memory, for every
  selected attention and every backend of it that applies (torch everywhere; FlexAttention and
  Triton on CUDA only; the readable `reference` forms only when named), at lengths
  from 1K up to the largest that fits. Peak memory is what the call allocates beyond its inputs.
* `bench_model` (``lra bench model``) -- the LRA Table-2 protocol: one training step (forward,
  backward, AdamW) of the Text task model of the released LRA config (4 layers, 256-d, 4 heads,
  MLP 1024, byte vocabulary, 2 classes) on random tokens, batch 32 or, where that runs out of
  memory, the largest power-of-two fraction of it that fits. Steps/s and peak memory of the
  whole step (weights, optimizer state, gradients, activations and inputs).

Once a series (attention x backend x pass) runs out of memory at some length, its longer lengths
are recorded as ``oom`` ("skipped: ...") without being tried; once its median call is slower than
`max_call_s`, its longer lengths are skipped (listed in the tables, not recorded). Both write a
markdown table and a CSV with ratios against full attention (speed-up = full time / time, per
example; memory ratio = memory / full memory) beside the records, and return the markdown.

Long grids survive being stopped. Every record is written (atomically) as soon as its cell is
measured, so a killed run keeps what it finished; with `resume`, a cell whose record is already in
the store and was measured with the same device, shape, settings, code (`code_hash`) and versions
is read back instead of measured again (`reusable_record`). `max_minutes` starts no new measurement after that many minutes: the
remaining cells appear in the tables as "not run", and the same command with `resume` measures them.

On CPU the reduced grid is the default (`quick`): a few short lengths, a small batch, few repeats.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import re
import sys
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import attention_zoo
from attention_zoo.plugins import provenance_of
from lra import models
from lra.configs import get_preset
from lra.io import slug
from results.records import SCHEMA_VERSION, plugin_fields, read_record, write_record

from .bench_tables import (  # noqa: F401  (re-exported: the tables are part of the bench's interface)
    NOT_RUN,
    PASSES,
    REFERENCE,
    TABLE_COLUMNS,
    bench_title,
    format_length,
    format_number,
    markdown_tables,
    ratio_table,
    write_tables,
)
from .defaults import DEFAULT_RUNS_DIR
from .provenance import code_hash, git_commit, installed_version, utc_now
from .specs import parse_specs
from .timing import (
    CPU_LIMIT_MESSAGE,
    Measurement,
    device_name,
    is_oom,
    measure,
    one_line,
    release_memory,
    resolve_device,
)
from .train import make_optimizer

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Backends that only run on CUDA (on CPU Triton needs its interpreter and FlexAttention runs an
# unfused eager form without backward: neither is a cost worth timing).
CUDA_ONLY_BACKENDS = frozenset({"triton", "flex"})
# Readable forms that the fast paths are tested against: timed only when the parameters name them.
REFERENCE_BACKENDS = frozenset({"reference"})
# The implementation behind mechanisms without a `backend` parameter.
IMPLEMENTATION = {"full": "sdpa"}
# The LRA Text task: byte-level tokens (ids 1..256, 0 = padding) and two classes.
TEXT_VOCAB, TEXT_CLASSES = 257, 2
INPUT_SEED = 0


@dataclass(frozen=True)
class Grid:
    """Default sizes of one benchmark on one device class; explicit options override each field."""

    lengths: tuple[int, ...]
    batch: int
    heads: int
    head_dim: int
    dtype: str
    warmup: int
    repeats: int
    time_budget_s: float
    max_call_s: float


def _powers(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2**e for e in range(lo, hi + 1))


# (bench, device type, quick) -> lengths, batch, heads, head_dim, dtype, warmup, repeats, time budget
# per measurement (s), longest median call before longer lengths are skipped (s).
GRIDS: dict[tuple[str, str, bool], Grid] = {
    ("attention", "cuda", False): Grid(_powers(10, 20), 1, 8, 64, "bfloat16", 3, 20, 2.0, 20.0),
    ("attention", "cuda", True): Grid(_powers(10, 14), 1, 8, 64, "bfloat16", 2, 10, 1.0, 5.0),
    ("attention", "cpu", False): Grid(_powers(8, 13), 1, 8, 64, "float32", 1, 5, 5.0, 20.0),
    ("attention", "cpu", True): Grid(_powers(8, 11), 1, 4, 32, "float32", 1, 3, 1.0, 5.0),
    ("model", "cuda", False): Grid(
        (1024, 2048, 3072, 4096, 8192, 16384), 32, 4, 256, "bfloat16", 3, 10, 5.0, 60.0
    ),
    ("model", "cuda", True): Grid((1024, 2048, 4096), 32, 4, 256, "bfloat16", 2, 5, 2.0, 20.0),
    ("model", "cpu", False): Grid((1024, 2048, 3072, 4096), 32, 4, 256, "float32", 1, 3, 30.0, 300.0),
    ("model", "cpu", True): Grid((256, 512, 1024), 2, 4, 256, "float32", 1, 3, 2.0, 20.0),
}


@dataclass
class BenchConfig:
    """One `lra bench` invocation; None fields take the grid's default for the device.

    Attributes:
        attentions: attentions to benchmark, names or specs with parameters ("mita(topk=64)");
            empty = every registered one. Full attention, the reference of every ratio, is
            always included.
        attn_params: parameters for every spec of a name, {"mita": {"topk": "64"}} (strings are
            converted; a spec's own parameters win).
        lengths: sequence lengths.
        batch: batch size (bench="model": the requested batch, halved on out-of-memory).
        heads, head_dim: attention shape (bench="attention" only; the model's are fixed).
        dtype: "float32", "float16" or "bfloat16" (bench="attention"; the model bench trains in
            float32 with bf16 autocast on CUDA, as `lra run` does).
        device: "auto", "cpu" or "cuda".
        warmup, repeats: untimed and timed calls per measurement.
        quick: the reduced grid (None = reduced on CPU, full on CUDA).
        time_budget_s: seconds of timed calls per measurement; repeats are lowered to fit.
        max_call_s: skip a series' longer lengths once its median call takes longer (0 = never).
        memory_limit_gb: on CPU, calls whose tensors exceed this many GiB end as "oom" (None =
            half the memory available at start; 0 = no limit). Ignored on CUDA.
        out: results directory (records under <out>/efficiency/).
        quiet: no progress bar or per-measurement lines.
        resume: reuse the records of cells already measured under `out` with the same device,
            shape, settings, code and versions instead of measuring them again.
        max_minutes: start no new measurement after this many minutes (None = no limit); the
            cells left are reported as "not run" and not recorded.
        compile: bench="model" only: run the model under `torch.compile(mode=compile)`, e.g.
            "reduce-overhead" (CUDA graphs of the compiled steps), the same for every attention;
            None = eager. Recorded in every record and in the configuration's directory name.
    """

    attentions: tuple[str, ...] = ()
    attn_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    lengths: tuple[int, ...] | None = None
    batch: int | None = None
    heads: int | None = None
    head_dim: int | None = None
    dtype: str | None = None
    device: str = "auto"
    warmup: int | None = None
    repeats: int | None = None
    quick: bool | None = None
    time_budget_s: float | None = None
    max_call_s: float | None = None
    memory_limit_gb: float | None = None
    out: str = DEFAULT_RUNS_DIR
    quiet: bool = False
    resume: bool = False
    max_minutes: float | None = None
    compile: str | None = None


# torch.compile modes `lra bench model --compile` accepts.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


# ----------------------------------------------------------------------------------------------
# Parsing and validation
# ----------------------------------------------------------------------------------------------


def parse_lengths(text: str) -> tuple[int, ...]:
    """ "1024,2048" or "1K,2K,1M" (K = 1024) -> sorted unique lengths; ValueError on anything else."""
    lengths = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", item)
        value = int(match.group(1)) * {"": 1, "k": 2**10, "m": 2**20}[match.group(2).lower()] if match else 0
        if value < 1:
            raise ValueError(
                f"--lengths expects comma-separated positive integers such as 1024,2048 or 1K,2K; got {text!r}"
            )
        lengths.append(value)
    return tuple(sorted(set(lengths)))


# ----------------------------------------------------------------------------------------------
# What is measured: series of (attention, parameters, backend)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line of a table: a mechanism with its parameters, run by one backend.

    `label` is the mechanism's label without the backend (which has its own field), so the
    plots' series names read `mita [torch]`, `mita [triton]`, `full [sdpa]`.
    """

    mechanism: attention_zoo.Mechanism
    params: attention_zoo.AttentionParams
    backend: str
    label: str
    applicable: bool = True

    @property
    def name(self) -> str:
        return f"{self.label} [{self.backend}]"

    @property
    def slug(self) -> str:
        return re.sub(
            r"[^A-Za-z0-9_.=,-]+", "-", f"{self.mechanism.slug(self._display_params())}-{self.backend}"
        )

    def _display_params(self) -> attention_zoo.AttentionParams:
        if "backend" in self.params.to_dict():
            default = self.mechanism.params().to_dict()["backend"]
            return dataclasses.replace(self.params, backend=default)
        return self.params


def _backend_choices(mechanism: attention_zoo.Mechanism) -> tuple[str, ...]:
    """The values of a mechanism's `backend` parameter other than "auto" and the readable references
    (empty if it has none)."""
    hints = typing.get_type_hints(mechanism.params_cls)
    if "backend" not in hints:
        return ()
    return tuple(b for b in typing.get_args(hints["backend"]) if b != "auto" and b not in REFERENCE_BACKENDS)


def build_series(
    attentions: Sequence[str], attn_params: dict[str, dict[str, Any]], device: torch.device
) -> list[Series]:
    """Every series to run, full attention first; CUDA-only backends on CPU are marked not applicable.

    `attentions` are names or specs with parameters, as `lra suite` takes them: "mita",
    "mita(topk=64)" (empty = every registered attention). `attn_params` apply to every spec of
    that name; a spec's own parameters win. A mechanism with a `backend` parameter runs once per
    backend (its readable reference only when named) unless the parameters name one. ValueError on unknown names or parameters.
    """
    specs = parse_specs(attentions or attention_zoo.names(), attn_params)
    if REFERENCE not in [name for name, _ in specs]:
        specs.insert(0, (REFERENCE, {}))
    series: dict[str, Series] = {}
    for name, given in specs:
        mechanism = attention_zoo.get(name)
        mechanism.params(**given)  # validate before anything runs
        backends = _backend_choices(mechanism)
        if not backends:
            params = mechanism.params(**given)
            one = Series(mechanism, params, IMPLEMENTATION.get(name, "torch"), mechanism.label(params))
            series.setdefault(one.name, one)
            continue
        chosen = [given["backend"]] if given.get("backend", "auto") != "auto" else list(backends)
        for backend in chosen:
            params = mechanism.params(**{**given, "backend": backend})
            applicable = device.type == "cuda" or backend not in CUDA_ONLY_BACKENDS
            display = dataclasses.replace(params, backend=mechanism.params().to_dict()["backend"])
            one = Series(mechanism, params, backend, mechanism.label(display), applicable)
            series.setdefault(one.name, one)
    return list(series.values())


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every record of one invocation shares."""

    bench: str
    device: torch.device
    device_name: str
    dtype: str
    heads: int
    head_dim: int
    warmup: int
    repeats: int
    time_budget_s: float
    memory_limit_bytes: int | None
    out: Path
    config_slug: str
    provenance: dict[str, Any]
    resume: bool = False
    deadline: float | None = None  # time.monotonic() after which no new measurement starts

    @property
    def directory(self) -> Path:
        return self.out / "efficiency" / self.bench / slug(self.device_name) / self.config_slug

    def settings(self) -> dict[str, Any]:
        """The record fields that must match for `resume` to reuse a record (beyond its path,
        which already names the bench, device, shape, attention parameters, backend, pass and N;
        the CPU memory limit is compared by what it changes, in `reusable_record`). "Same code" is
        the hash of the package's sources, not the commit, which cannot tell two dirty trees apart."""
        cpu = self.device.type == "cpu"
        return {
            "device": self.device_name,
            "cpu_model": _cpu_model() if cpu else None,
            "cpu_threads": torch.get_num_threads() if cpu else None,
            "dtype": self.dtype,
            "warmup_requested": self.warmup,
            "repeats_requested": self.repeats,
            "time_budget_s": self.time_budget_s,
            **{k: v for k, v in self.provenance.items() if k != "git_commit"},
        }

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def make_record(
    ctx: Context,
    series: Series,
    pass_: str,
    seq_len: int,
    batch: int,
    m: Measurement,
    *,
    peak_memory_bytes: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An efficiency record with every schema field, plus the method fields and `extra`."""
    median = m.median_ms
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": "efficiency",
        "bench": ctx.bench,
        "attention": series.mechanism.name,
        "attention_params": series.params.to_dict(),
        "attention_label": series.label,
        **plugin_fields(provenance_of(series.mechanism)),
        "backend": series.backend,
        "pass": pass_,
        "seq_len": seq_len,
        "batch": batch,
        "heads": ctx.heads,
        "head_dim": ctx.head_dim,
        "dtype": ctx.dtype,
        "device": ctx.device_name,
        "status": m.status,
        "error": m.error,
        "time_ms_median": median,
        "time_ms_p20": m.p20_ms,
        "time_ms_p80": m.p80_ms,
        "steps_per_s": 1000.0 / median if median else None,
        "peak_memory_bytes": m.peak_memory_bytes if peak_memory_bytes is None else peak_memory_bytes,
        "repeats": m.repeats,
        "warmup": m.warmup,
        "time_method": m.time_method,
        "memory_method": m.memory_method,
        "memory_limit_bytes": ctx.memory_limit_bytes if ctx.device.type == "cpu" else None,
        "measured_at": utc_now(),
        "git_commit": ctx.provenance["git_commit"],
        **ctx.settings(),
    }
    record.update(extra)
    return record


def record_path(ctx: Context, series: Series, pass_: str, seq_len: int) -> Path:
    return ctx.directory / series.slug / f"{pass_}-N{seq_len}.json"


def reusable_record(ctx: Context, series: Series, pass_: str, seq_len: int) -> dict[str, Any] | None:
    """With `resume`: the cell's record if it holds a measurement (ok or oom, not an error and not
    a skipped cell) taken with this invocation's settings; else None (the cell is measured)."""
    path = record_path(ctx, series, pass_, seq_len)
    if not ctx.resume or not path.is_file():
        return None
    try:
        record = read_record(path)
    except ValueError:  # torn or of another schema: measure again
        return None
    if record["status"] not in ("ok", "oom") or (record["error"] or "").startswith("skipped"):
        return None
    expected = {**ctx.settings(), "attention_params": json.loads(json.dumps(series.params.to_dict()))}
    if any(record.get(name) != value for name, value in expected.items()):
        return None
    # The CPU memory limit (by default half the free memory, so it moves between runs) only
    # matters where it would change the outcome: a measurement that now exceeds it, or an OOM
    # under a tighter limit than now.
    limit = ctx.memory_limit_bytes if ctx.device.type == "cpu" else None
    was_limit = record.get("memory_limit_bytes")
    # what the limit was checked against: the call's own allocations (the model bench's
    # peak_memory_bytes adds the weights, optimizer state and inputs held before the step)
    tracked = record.get("step_peak_memory_bytes", record["peak_memory_bytes"]) or 0
    if record["status"] == "ok" and limit is not None and tracked > limit:
        return None
    looser = was_limit is not None and (limit is None or limit > was_limit)
    if looser and record["status"] == "oom" and CPU_LIMIT_MESSAGE in (record["error"] or ""):
        return None
    if looser and record.get("batch_halved_by_cpu_limit"):
        return None  # the batch was halved under a tighter limit: a larger one may fit now
    return record


def _as_measurement(record: dict[str, Any]) -> Measurement:
    """The part of a reused record that decides whether longer lengths run."""
    median = record["time_ms_median"]
    times = (median,) if record["status"] == "ok" and median is not None else ()
    return Measurement(record["status"], times_ms=times, error=record["error"])


def _provenance() -> dict[str, Any]:
    return {
        "torch_version": torch.__version__,
        "triton_version": installed_version("triton"),
        "git_commit": git_commit(),
        "code_hash": code_hash(),
    }


@functools.cache
def _cpu_model() -> str:
    """The processor's name ("model name" in /proc/cpuinfo), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _default_memory_limit() -> int | None:
    """Half of MemAvailable (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        return None
    return None


def _resolve(cfg: BenchConfig, bench: str) -> tuple[torch.device, Grid, int | None]:
    """Device, the grid with explicit options applied, and the CPU memory limit; ValueError on bad input."""
    device = resolve_device(cfg.device)
    quick = device.type == "cpu" if cfg.quick is None else cfg.quick
    grid = GRIDS[(bench, device.type, quick)]
    overrides = {
        name: value
        for name, value in {
            "lengths": cfg.lengths,
            "batch": cfg.batch,
            "heads": cfg.heads,
            "head_dim": cfg.head_dim,
            "dtype": cfg.dtype,
            "warmup": cfg.warmup,
            "repeats": cfg.repeats,
            "time_budget_s": cfg.time_budget_s,
            "max_call_s": cfg.max_call_s,
        }.items()
        if value is not None
    }
    grid = dataclasses.replace(grid, **overrides)
    if not grid.lengths or min(grid.lengths) < 1:
        raise ValueError("--lengths must list positive lengths, e.g. 1024,2048")
    for name in ("batch", "heads", "head_dim", "repeats"):
        if getattr(grid, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(grid, name)}")
    if grid.warmup < 0:
        raise ValueError(f"--warmup must be >= 0; got {grid.warmup}")
    if grid.time_budget_s <= 0:
        raise ValueError(f"--time-budget must be > 0 seconds; got {grid.time_budget_s:g}")
    if grid.max_call_s < 0:
        raise ValueError(f"--max-call-s must be >= 0 seconds (0 = no limit); got {grid.max_call_s:g}")
    if grid.dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}; got {grid.dtype!r}")
    if device.type == "cpu" and grid.dtype == "float16":
        raise ValueError(
            "--dtype float16 is not supported on CPU by every attention; use float32 or bfloat16"
        )
    if cfg.max_minutes is not None and not cfg.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0; got {cfg.max_minutes:g}")
    if cfg.memory_limit_gb is not None and cfg.memory_limit_gb < 0:
        raise ValueError(f"--memory-limit must be >= 0 GiB; got {cfg.memory_limit_gb}")
    if cfg.memory_limit_gb is None:
        limit = _default_memory_limit()
    else:
        limit = int(cfg.memory_limit_gb * 2**30) or None
    return device, grid, limit


# ----------------------------------------------------------------------------------------------
# The run loop shared by both benchmarks
# ----------------------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar on a terminal; one line per measurement in logs; nothing when quiet."""

    def __init__(self, total: int, desc: str, quiet: bool) -> None:
        tty = sys.stderr.isatty()
        self.lines = not quiet and not tty
        self.bar = tqdm(total=total, desc=desc, unit="run", disable=quiet or not tty, dynamic_ncols=True)

    def done(self, text: str) -> None:
        self.bar.update(1)
        self.bar.set_postfix_str(text[:60], refresh=False)
        if self.lines:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def _describe(record: dict[str, Any]) -> str:
    head = f"{record['attention_label']} [{record['backend']}] {record['pass']} N={record['seq_len']} B={record['batch']}"
    if record["status"] != "ok":
        return f"{head}: {record['status']} ({record['error']})"
    memory = record["peak_memory_bytes"]
    mem = "" if memory is None else f", {memory / 2**20:.1f} MiB"
    return f"{head}: {record['time_ms_median']:.3f} ms{mem}"


def _skipped_row(
    ctx: Context, series: Series, pass_: str, seq_len: int, batch: int, why: str, status: str | None = None
) -> dict[str, Any]:
    """A table row for a cell that was not measured (and is not recorded)."""
    return {
        "bench": ctx.bench,
        "attention": series.mechanism.name,
        "attention_label": series.label,
        **plugin_fields(provenance_of(series.mechanism)),
        "backend": series.backend,
        "pass": pass_,
        "seq_len": seq_len,
        "batch": batch,
        "status": status or ("skipped" if series.applicable else "n/a"),
        "error": why,
    }


def _not_run_row(ctx: Context, series: Series, pass_: str, seq_len: int, batch: int) -> dict[str, Any]:
    return _skipped_row(ctx, series, pass_, seq_len, batch, "the --max-minutes limit was reached", NOT_RUN)


def _context(
    cfg: BenchConfig, bench: str, device: torch.device, grid: Grid, limit: int | None, **fields: Any
) -> Context:
    """The Context of one invocation; `fields` are the bench-specific ones (dtype, shape, slug)."""
    deadline = None if cfg.max_minutes is None else time.monotonic() + 60.0 * cfg.max_minutes
    return Context(
        bench=bench,
        device=device,
        device_name=device_name(device),
        warmup=grid.warmup,
        repeats=grid.repeats,
        time_budget_s=grid.time_budget_s,
        memory_limit_bytes=limit,
        out=Path(cfg.out),
        provenance=_provenance(),
        resume=cfg.resume,
        deadline=deadline,
        **fields,
    )


class _Tally:
    """Counts of reused and not-run cells, for the lines under the tables."""

    def __init__(self) -> None:
        self.reused = self.not_run = self.total = 0

    def add(self, row: dict[str, Any], reused: bool = False) -> None:
        self.total += row["status"] != "n/a"  # cells that could run here
        self.reused += reused
        self.not_run += row["status"] == NOT_RUN

    def notes(self, max_minutes: float | None) -> list[str]:
        lines = []
        if self.reused:
            lines.append(f"{self.reused} of {self.total} cells reused from earlier records (--resume).")
        if self.not_run:
            lines.append(
                f"{self.not_run} of {self.total} cells not run: --max-minutes {max_minutes:g} was reached; "
                "the same command with --resume measures them."
            )
        return lines


# ----------------------------------------------------------------------------------------------
# lra bench attention
# ----------------------------------------------------------------------------------------------


def _attention_call(
    series: Series, pass_: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor
) -> Callable[[], Any]:
    """The measured call: inference forward, or forward plus the input gradients.

    Mechanisms with learned or fixed inputs (Synthesizer's logits, Sinkhorn's sorting network) get
    them at their initial values, sized for this length, as a layer with max_length = N would hold."""
    mechanism, params = series.mechanism, series.params
    _, heads, length, head_dim = q.shape
    runtime: dict[str, Any] = {}
    for make in (mechanism.module_parameters, mechanism.module_buffers):
        if make is not None:
            made = make(params, heads, head_dim, length).items()
            runtime.update({name: t.to(device=q.device, dtype=q.dtype) for name, t in made})
    if "training" in mechanism.runtime_inputs:
        runtime["training"] = pass_ != "forward"
    if pass_ == "forward":

        def forward() -> torch.Tensor:
            with torch.no_grad():
                return mechanism(q, k, v, params=params, **runtime)

        return forward

    def forward_backward() -> tuple[torch.Tensor, ...]:
        out = mechanism(q, k, v, params=params, **runtime)
        return torch.autograd.grad(out, (q, k, v), grad_out)

    return forward_backward


def batch_inputs(
    batch: int, heads: int, length: int, head_dim: int, dtype: torch.dtype, device: torch.device
) -> list[torch.Tensor]:
    """q, k, v (requiring grad) and an output gradient, N(0, 1), seeded per length."""
    gen = torch.Generator(device=device).manual_seed(INPUT_SEED + length)
    shape = (batch, heads, length, head_dim)
    tensors = [torch.randn(shape, generator=gen, device=device, dtype=dtype) for _ in range(4)]
    for t in tensors[:3]:
        t.requires_grad_(True)
    return tensors


def bench_attention(cfg: BenchConfig) -> tuple[list[dict[str, Any]], str]:
    """Run the attention benchmark; returns (table rows: records and skipped cells, markdown)."""
    if cfg.compile is not None:
        raise ValueError("--compile applies to `lra bench model` (a compiled training step)")
    device, grid, limit = _resolve(cfg, "attention")
    series = build_series(cfg.attentions, cfg.attn_params, device)
    dtype = DTYPES[grid.dtype]
    ctx = _context(
        cfg,
        "attention",
        device,
        grid,
        limit,
        dtype=grid.dtype,
        heads=grid.heads,
        head_dim=grid.head_dim,
        config_slug=f"{grid.dtype}-B{grid.batch}-H{grid.heads}-d{grid.head_dim}",
    )
    rows: list[dict[str, Any]] = []
    tally = _Tally()
    stopped: dict[tuple[str, str], tuple[str, str]] = {}  # (series, pass) -> (status, reason)
    progress = _Progress(len(series) * len(PASSES) * len(grid.lengths), "lra bench attention", cfg.quiet)
    try:
        for length in grid.lengths:
            inputs = _LazyInputs(ctx, grid, length, dtype)  # made for the first cell that is measured
            for s in series:
                for pass_ in PASSES:
                    row, reused = _attention_cell(ctx, grid, s, pass_, length, stopped, inputs)
                    rows.append(row)
                    tally.add(row, reused)
                    progress.done(_describe(row) + (" (reused)" if reused else ""))
            del inputs
            release_memory(device)
    finally:
        progress.close()
    return rows, write_tables(rows, ctx, grid, tally.notes(cfg.max_minutes))


class _LazyInputs:
    """The inputs of one length, created on first use: lengths whose cells are all reused,
    skipped or out of time allocate nothing."""

    def __init__(self, ctx: Context, grid: Grid, length: int, dtype: torch.dtype) -> None:
        self.ctx, self.grid, self.length, self.dtype = ctx, grid, length, dtype
        self.made: tuple[list[torch.Tensor] | None, Measurement | None] | None = None

    def get(self) -> tuple[list[torch.Tensor] | None, Measurement | None]:
        """(q, k, v, grad_out), or the failure every call at this length then records."""
        if self.made is None:
            ctx, grid = self.ctx, self.grid
            try:
                tensors = batch_inputs(
                    grid.batch, grid.heads, self.length, grid.head_dim, self.dtype, ctx.device
                )
                self.made = (tensors, None)
            except Exception as err:  # the inputs alone do not fit
                release_memory(ctx.device)
                self.made = (
                    None,
                    Measurement("oom" if is_oom(err) else "error", error=f"inputs: {one_line(err)}"),
                )
        return self.made


def _attention_cell(
    ctx: Context,
    grid: Grid,
    s: Series,
    pass_: str,
    length: int,
    stopped: dict[tuple[str, str], tuple[str, str]],
    inputs: _LazyInputs,
) -> tuple[dict[str, Any], bool]:
    """Measure and record one cell, reuse its record, or return the row of a skipped one.

    Returns (row, whether the row is a reused record)."""
    if not s.applicable:
        return _skipped_row(ctx, s, pass_, length, grid.batch, f"the {s.backend} backend needs CUDA"), False
    key = (s.name, pass_)
    if key in stopped and stopped[key][0] == "skipped":
        return _skipped_row(ctx, s, pass_, length, grid.batch, stopped[key][1]), False
    reused = None if key in stopped else reusable_record(ctx, s, pass_, length)
    if reused is not None:
        _stop_longer(stopped, s, pass_, length, _as_measurement(reused), grid.max_call_s)
        return reused, True
    if key in stopped:
        m = Measurement("oom", error=f"skipped: {stopped[key][1]}")
    elif ctx.out_of_time():
        return _not_run_row(ctx, s, pass_, length, grid.batch), False
    else:
        tensors, failure = inputs.get()
        if failure is not None or tensors is None:
            m = failure or Measurement("error", error="inputs were not created")
        else:
            m = measure(
                _attention_call(s, pass_, *tensors),
                ctx.device,
                warmup=grid.warmup,
                repeats=grid.repeats,
                time_budget_s=grid.time_budget_s,
                memory_limit_bytes=ctx.memory_limit_bytes,
            )
    record = make_record(ctx, s, pass_, length, grid.batch, m)
    write_record(record_path(ctx, s, pass_, length), record)
    _stop_longer(stopped, s, pass_, length, m, grid.max_call_s)
    return record, False


def _stop_longer(
    stopped: dict[tuple[str, str], tuple[str, str]],
    s: Series,
    pass_: str,
    length: int,
    m: Measurement,
    max_call_s: float,
) -> None:
    """After an out-of-memory or an over-long call, stop this pass (and, after the forward, both)."""
    passes = PASSES if pass_ == "forward" else (pass_,)
    if m.status == "oom" and not (m.error or "").startswith("skipped"):
        for p in passes:
            stopped.setdefault((s.name, p), ("oom", f"out of memory at N={length}"))
    elif m.status == "ok" and max_call_s and m.median_ms is not None and m.median_ms > 1e3 * max_call_s:
        reason = f"slower than --max-call-s {max_call_s:g} s at N={length} ({m.median_ms / 1e3:.1f} s)"
        for p in passes:
            stopped.setdefault((s.name, p), ("skipped", reason))


# ----------------------------------------------------------------------------------------------
# lra bench model
# ----------------------------------------------------------------------------------------------


def _storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]


def bench_model(cfg: BenchConfig) -> tuple[list[dict[str, Any]], str]:
    """Run the LRA Table-2 model benchmark; returns (table rows, markdown)."""
    if cfg.heads is not None or cfg.head_dim is not None or cfg.dtype is not None:
        raise ValueError(
            "--heads, --head-dim and --dtype apply to `lra bench attention`; the model bench uses the Text model"
        )
    if cfg.compile is not None and cfg.compile not in COMPILE_MODES:
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_MODES)}; got {cfg.compile!r}")
    device, grid, limit = _resolve(cfg, "model")
    preset = get_preset("text", "lra")
    model_cfg, train_cfg = preset.model, preset.train
    amp = device.type == "cuda" and train_cfg.amp != "none"
    amp_dtype = torch.float16 if train_cfg.amp == "fp16" else torch.bfloat16
    series = build_series(cfg.attentions, cfg.attn_params, device)
    ctx = _context(
        cfg,
        "model",
        device,
        grid,
        limit,
        dtype=str(amp_dtype).removeprefix("torch.") if amp else "float32",
        heads=model_cfg.heads,
        head_dim=model_cfg.dim,
        config_slug=f"text-lra-B{grid.batch}" + (f"-{train_cfg.amp}" if amp else "")
        + (f"-compile-{cfg.compile}" if cfg.compile else ""),
    )
    extra = {
        "compile": cfg.compile,  # torch.compile mode of the model, None = eager
        "task": "text",
        "layers": model_cfg.layers,
        "mlp_dim": model_cfg.mlp_dim,
        "batch_requested": grid.batch,
        "amp": train_cfg.amp if amp else None,
        "fp32_attention": model_cfg.fp32_attention,
    }
    rows: list[dict[str, Any]] = []
    tally = _Tally()
    progress = _Progress(len(series) * len(grid.lengths), "lra bench model", cfg.quiet)
    try:
        for s in series:
            rows += _model_series(ctx, grid, s, extra, amp, amp_dtype, progress, tally, cfg.compile)
            release_memory(device)
    finally:
        progress.close()
    return rows, write_tables(rows, ctx, grid, tally.notes(cfg.max_minutes))


def _model_series(
    ctx: Context,
    grid: Grid,
    s: Series,
    extra: dict[str, Any],
    amp: bool,
    amp_dtype: torch.dtype,
    progress: _Progress,
    tally: _Tally,
    compile_mode: str | None = None,
) -> list[dict[str, Any]]:
    """Every length of one series: batch halved on out-of-memory, longer lengths start from there.

    The model is built for the first cell that is measured (not at all when every cell is reused).
    """
    pass_, rows = "train_step", []

    def add(row: dict[str, Any], reused: bool = False) -> None:
        rows.append(row)
        tally.add(row, reused)
        progress.done(_describe(row) + (" (reused)" if reused else ""))

    if not s.applicable:
        for length in grid.lengths:
            add(_skipped_row(ctx, s, pass_, length, grid.batch, f"the {s.backend} backend needs CUDA"))
        return rows
    trainer: tuple[torch.nn.Module, torch.optim.Optimizer] | None = None
    batch, stop = grid.batch, None
    halved_by_limit = False  # the CPU memory limit (not the machine) made the batch smaller
    for length in grid.lengths:
        if stop is not None and stop[0] == "skipped":
            add(_skipped_row(ctx, s, pass_, length, batch, stop[1]))
            continue
        reused = None if stop is not None else reusable_record(ctx, s, pass_, length)
        if reused is not None:
            record = reused
            batch = record["batch"]  # a halved batch carries on to longer lengths, as when measured
            halved_by_limit = bool(record.get("batch_halved_by_cpu_limit"))
            add(record, reused=True)
        elif stop is None and ctx.out_of_time():
            add(_not_run_row(ctx, s, pass_, length, batch))
            continue
        else:
            total = None
            if stop is None and trainer is None:
                trainer, primed = _trainer(ctx, grid, s, compile_mode)
                if primed.status != "ok":  # the attention cannot train at all: every length records why
                    stop = (primed.status, f"the first training step failed: {primed.error}")
            if stop is not None:
                m = Measurement(stop[0], error=f"skipped: {stop[1]}")
            else:
                assert trainer is not None
                while True:
                    m, total = _measure_step(ctx, grid, *trainer, batch, length, amp, amp_dtype)
                    if m.status != "oom" or batch == 1:
                        break
                    halved_by_limit |= CPU_LIMIT_MESSAGE in (m.error or "")
                    batch //= 2
            examples_per_s = 1000.0 * batch / m.median_ms if m.median_ms else None
            record = make_record(
                ctx,
                s,
                pass_,
                length,
                batch,
                m,
                peak_memory_bytes=total,
                examples_per_s=examples_per_s,
                step_peak_memory_bytes=m.peak_memory_bytes,
                batch_halved_by_cpu_limit=halved_by_limit,
                **extra,
            )
            write_record(record_path(ctx, s, pass_, length), record)
            add(record)
        median = record["time_ms_median"]
        if stop is not None:
            continue
        if record["status"] == "oom":
            stop = ("oom", f"out of memory at N={length} with batch 1")
        elif record["status"] == "ok" and grid.max_call_s and median > 1e3 * grid.max_call_s:
            stop = ("skipped", f"slower than --max-call-s {grid.max_call_s:g} s at N={length}")
    return rows


def _trainer(
    ctx: Context, grid: Grid, s: Series, compile_mode: str | None = None
) -> tuple[tuple[torch.nn.Module, torch.optim.Optimizer], Measurement]:
    """The Text model with this attention and its optimizer, after one priming step; with
    `compile_mode` the model returned is `torch.compile(model, mode=compile_mode)` (static shapes:
    one compilation per length, done in the warm-up calls; the priming step stays eager)."""
    preset = get_preset("text", "lra")
    torch.manual_seed(INPUT_SEED)
    model = models.build(
        vocab_size=TEXT_VOCAB,
        max_len=max(grid.lengths),
        num_classes=TEXT_CLASSES,
        dual_input=False,
        model=preset.model,
        attention=s.mechanism.name,
        attn_params=s.params.to_dict(),
    ).to(ctx.device)
    model.train()
    optimizer = make_optimizer(model, preset.train)
    primed = measure(
        lambda: _prime(model, optimizer, ctx.device), ctx.device, warmup=0, repeats=1, memory=False
    )
    if compile_mode is not None:
        model = torch.compile(model, mode=compile_mode, dynamic=False)  # type: ignore[assignment]
    return (model, optimizer), primed


def _prime(model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """One tiny step, so that the optimizer state exists before any step is measured (and a
    mechanism that cannot train fails once, here)."""
    loss = model(torch.ones(1, 8, dtype=torch.long, device=device)).float().sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _measure_step(
    ctx: Context,
    grid: Grid,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: int,
    length: int,
    amp: bool,
    amp_dtype: torch.dtype,
) -> tuple[Measurement, int | None]:
    """Time one training step at (batch, length); returns the measurement and the whole-step peak bytes."""
    optimizer.zero_grad(set_to_none=True)  # an interrupted step may have left gradients
    gen = torch.Generator(device=ctx.device).manual_seed(INPUT_SEED + length)
    try:
        tokens = torch.randint(1, TEXT_VOCAB, (batch, length), generator=gen, device=ctx.device)
        labels = torch.randint(0, TEXT_CLASSES, (batch,), generator=gen, device=ctx.device)
    except Exception as err:  # the inputs alone do not fit
        return Measurement("oom" if is_oom(err) else "error", error=f"inputs: {one_line(err)}"), None

    def step() -> None:
        with torch.autocast(ctx.device.type, dtype=amp_dtype, enabled=amp):
            loss = F.cross_entropy(model(tokens).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    m = measure(
        step,
        ctx.device,
        warmup=grid.warmup,
        repeats=grid.repeats,
        time_budget_s=grid.time_budget_s,
        memory_limit_bytes=ctx.memory_limit_bytes,
    )
    if m.status != "ok" or m.peak_memory_bytes is None:
        return m, None
    if m.baseline_memory_bytes is not None:
        before = m.baseline_memory_bytes  # the CUDA allocator saw everything live before the step
    else:  # CPU: what a step keeps between calls -- weights, optimizer state, inputs
        before = _storage_bytes(
            [*model.parameters(), *model.buffers(), *_optimizer_tensors(optimizer), tokens, labels]
        )
    return m, before + m.peak_memory_bytes
