"""`lra bench attention`: time and peak memory of one attention call, forward and forward +
backward, on random q, k, v of shape [B, H, N, d], for every series (runners/bench/series.py) at
every length of the grid, written as efficiency records (runners/bench/records.py).

Lengths run in order; at each, every series and pass in turn, on the same seeded inputs. After an
out-of-memory at some length the series' pass (and, after a forward, both passes) is recorded as
``oom`` at the longer lengths without a call; after a median call slower than `max_call_s` its
longer lengths are skipped (in the tables, not recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from results.cost_tables import PASSES
from results.records import write_record

from .options import DTYPES, INPUT_SEED, BenchConfig, Grid, resolve_grid
from .records import (
    Context,
    Progress,
    Tally,
    describe,
    make_record,
    measurement_of,
    new_context,
    not_run_row,
    record_path,
    resumed_call,
    reusable_record,
    skipped_row,
)
from .series import Series, build_series
from .tables import write_tables
from .timing import Measurement, is_oom, measure, one_line, release_memory


def _attention_call(
    series: Series, pass_: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor
) -> Callable[[], Any]:
    """The measured call: inference forward, or forward plus the input gradients.

    Mechanisms with learned or fixed inputs (Synthesizer's logits, Sinkhorn's sorting network) get
    them at their initial values, sized for this length, as a layer with max_length = N would hold.
    The parameters are bound once, as the multi-head layer binds them (`Mechanism.bind`): what is
    timed is the call a model's forward makes."""
    mechanism, params = series.mechanism, series.params
    attend = mechanism.bind(params)
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
                return attend(q, k, v, **runtime)

        return forward

    def forward_backward() -> tuple[torch.Tensor, ...]:
        out = attend(q, k, v, **runtime)
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
    device, grid, limit = resolve_grid(cfg, "attention")
    series = build_series(cfg.attentions, cfg.attn_params, device)
    dtype = DTYPES[grid.dtype]
    ctx = new_context(
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
    ctx = resumed_call(ctx, [(s, p, n) for n in grid.lengths for s in series if s.applicable for p in PASSES])
    rows: list[dict[str, Any]] = []
    tally = Tally()
    stopped: dict[tuple[str, str], tuple[str, str]] = {}  # (series, pass) -> (status, reason)
    progress = Progress(len(series) * len(PASSES) * len(grid.lengths), "lra bench attention", cfg.quiet)
    try:
        for length in grid.lengths:
            inputs = _LazyInputs(ctx, grid, length, dtype)  # made for the first cell that is measured
            for s in series:
                for pass_ in PASSES:
                    row, reused = _attention_cell(ctx, grid, s, pass_, length, stopped, inputs)
                    rows.append(row)
                    tally.add(row, reused)
                    progress.done(describe(row) + (" (reused)" if reused else ""))
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
        return skipped_row(ctx, s, pass_, length, grid.batch, f"the {s.backend} backend needs CUDA"), False
    key = (s.name, pass_)
    if key in stopped and stopped[key][0] == "skipped":
        return skipped_row(ctx, s, pass_, length, grid.batch, stopped[key][1]), False
    reused = None if key in stopped else reusable_record(ctx, s, pass_, length)
    if reused is not None:
        _stop_longer(stopped, s, pass_, length, measurement_of(reused), grid.max_call_s)
        return reused, True
    if key in stopped:
        m = Measurement("oom", error=f"skipped: {stopped[key][1]}")
    elif ctx.out_of_time():
        return not_run_row(ctx, s, pass_, length, grid.batch), False
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
