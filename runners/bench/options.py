"""What one `lra bench attention|model` invocation is: its options (`BenchConfig`), the default grids
per benchmark and device class (`GRIDS`), and the grid with the options applied and checked
(`resolve_grid`). On CPU the reduced grid is the default (`quick`): a few short lengths, a small
batch, few repeats.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..defaults import DEFAULT_RUNS_DIR
from ..devices import resolve_device

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Seed of the random inputs of both benchmarks (plus the length, so each length has its own).
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


def default_memory_limit() -> int | None:
    """Half of MemAvailable (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        return None
    return None


def resolve_grid(cfg: BenchConfig, bench: str) -> tuple[torch.device, Grid, int | None]:
    """Device, the grid with explicit options applied, and the CPU memory limit; ValueError on bad input."""
    device = resolve_device(cfg.device)
    quick = device.type == "cpu" if cfg.quick is None else cfg.quick
    grid = GRIDS[(bench, device.type, quick)]
    overrides: dict[str, Any] = {
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
        limit = default_memory_limit()
    else:
        limit = int(cfg.memory_limit_gb * 2**30) or None
    return device, grid, limit
