"""`lra bench model`: the LRA Table-2 protocol -- steps/s and peak memory of one training step
(forward, backward, AdamW) of the Text task model of the released LRA config (4 layers, 256-d,
4 heads, MLP 1024, byte vocabulary, 2 classes) on random tokens, for every series
(runners/bench/series.py) at every length of the grid, written as efficiency records
(runners/bench/records.py). The step is the trainer's (runners/train/step.py: the same loss under
the same mixed precision, then AdamW).

The batch is the requested one (32) or, where that runs out of memory, the largest power-of-two
fraction of it that fits; a halved batch carries on to the longer lengths. The model of a series
is built, and primed with one tiny step (so the optimizer state exists), for the first cell that
is measured. Peak memory is that of the whole step: weights, optimizer state, gradients,
activations and inputs. With `compile` the model runs under `torch.compile(mode=compile)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lra import models
from lra.presets import get_preset
from results.records import write_record

from ..train.schedule import make_optimizer
from ..train.step import Autocast, classification_loss
from .options import INPUT_SEED, BenchConfig, Grid, resolve_grid
from .records import (
    Context,
    Progress,
    Tally,
    describe,
    make_record,
    new_context,
    not_run_row,
    record_path,
    resumed_call,
    reusable_record,
    skipped_row,
)
from .series import Series, build_series
from .tables import write_tables
from .timing import CPU_LIMIT_MESSAGE, Measurement, is_oom, measure, one_line, release_memory

# The LRA Text task: byte-level tokens (ids 1..256, 0 = padding) and two classes.
TEXT_VOCAB, TEXT_CLASSES = 257, 2

# torch.compile modes `lra bench model --compile` accepts.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


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
    device, grid, limit = resolve_grid(cfg, "model")
    preset = get_preset("text", "lra")
    model_cfg, train_cfg = preset.model, preset.train
    autocast = Autocast.of(device, train_cfg.amp)  # the trainer's mixed precision
    amp = autocast.enabled
    series = build_series(cfg.attentions, cfg.attn_params, device)
    ctx = new_context(
        cfg,
        "model",
        device,
        grid,
        limit,
        dtype=str(autocast.dtype).removeprefix("torch.") if amp else "float32",
        heads=model_cfg.heads,
        head_dim=model_cfg.dim,
        config_slug=f"text-lra-B{grid.batch}"
        + (f"-{train_cfg.amp}" if amp else "")
        + (f"-compile-{cfg.compile}" if cfg.compile else ""),
    )
    ctx = resumed_call(ctx, [(s, "train_step", n) for s in series if s.applicable for n in grid.lengths])
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
    tally = Tally()
    progress = Progress(len(series) * len(grid.lengths), "lra bench model", cfg.quiet)
    try:
        for s in series:
            rows += _model_series(ctx, grid, s, extra, autocast, progress, tally, cfg.compile)
            release_memory(device)
    finally:
        progress.close()
    return rows, write_tables(rows, ctx, grid, tally.notes(cfg.max_minutes))


def _model_series(
    ctx: Context,
    grid: Grid,
    s: Series,
    extra: dict[str, Any],
    autocast: Autocast,
    progress: Progress,
    tally: Tally,
    compile_mode: str | None = None,
) -> list[dict[str, Any]]:
    """Every length of one series: batch halved on out-of-memory, longer lengths start from there.

    The model is built for the first cell that is measured (not at all when every cell is reused).
    """
    pass_, rows = "train_step", []

    def add(row: dict[str, Any], reused: bool = False) -> None:
        rows.append(row)
        tally.add(row, reused)
        progress.done(describe(row) + (" (reused)" if reused else ""))

    if not s.applicable:
        for length in grid.lengths:
            add(skipped_row(ctx, s, pass_, length, grid.batch, f"the {s.backend} backend needs CUDA"))
        return rows
    trainer: tuple[torch.nn.Module, torch.optim.Optimizer] | None = None
    batch = grid.batch
    stop: tuple[str, str] | None = None  # (status, why) of the lengths left after a failure
    halved_by_limit = False  # the CPU memory limit (not the machine) made the batch smaller
    for length in grid.lengths:
        if stop is not None and stop[0] == "skipped":
            add(skipped_row(ctx, s, pass_, length, batch, stop[1]))
            continue
        reused = None if stop is not None else reusable_record(ctx, s, pass_, length)
        if reused is not None:
            record = reused
            batch = record["batch"]  # a halved batch carries on to longer lengths, as when measured
            halved_by_limit = bool(record.get("batch_halved_by_cpu_limit"))
            add(record, reused=True)
        elif stop is None and ctx.out_of_time():
            add(not_run_row(ctx, s, pass_, length, batch))
            continue
        else:
            total = None
            if stop is None and trainer is None:
                trainer, primed = _trainer(ctx, grid, s, compile_mode)
                if primed.status != "ok":  # the attention cannot train at all: every length records why
                    stop = (primed.status, f"the first training step failed: {primed.error}")
            if stop is not None:  # "oom" or "error": a "skipped" length never gets here
                m = Measurement("oom" if stop[0] == "oom" else "error", error=f"skipped: {stop[1]}")
            else:
                assert trainer is not None
                while True:
                    m, total = _measure_step(ctx, grid, *trainer, batch, length, autocast)
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
        attn_params=s.params,
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
    autocast: Autocast,
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
        loss = classification_loss(model, (tokens,), labels, autocast)
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
