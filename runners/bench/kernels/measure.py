"""The kernel benchmark's measurements and its run (`run`: verify, then measure the plan): each cell
timed with `triton.testing.do_bench` (or single shots for slow calls) and its peak memory, CUDA graph
replays, device launches and host syncs of one call, and per-kernel device time (torch.profiler).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click
import torch
import torch.nn.functional as F

from ...provenance import git_commit, installed_version
from ..timing import one_line, peak_memory
from .checks import verify
from .protocol import (
    BATCH,
    COST_EXPONENT,
    FORWARD_ONLY_LENGTHS,
    GRAPH_LENGTHS,
    HEAD_DIM,
    HEADS,
    LENGTHS,
    NUM_LANDMARKS,
    PASSES,
    QUICK_LENGTHS,
    SERIES,
    SLOW_CALL_S,
    TOPK,
    Cell,
    bench_inputs,
    format_value,
    mita_calls,
)
from .report import summarise


def _time_ms(
    fn: Callable[[], Any], grads: list[torch.Tensor] | None, slow: bool
) -> tuple[list[float], int, str]:
    """(median, p20, p80 in ms; number of timed calls; method)."""
    import triton.testing

    if not slow:
        median, p20, p80 = triton.testing.do_bench(fn, grad_to_none=grads, quantiles=[0.5, 0.2, 0.8])
        return [median, p20, p80], 0, "do_bench"
    fn()
    times = []
    for _ in range(2):
        for t in grads or ():
            t.grad = None
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return [sum(times) / 2, times[0], times[1]], 2, "single-shot"


def _attention(series: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from attention_zoo import functional as zoo
    from attention_zoo.mita.triton_ops import mita_triton

    if series == "mita-triton":
        return lambda q, k, v: mita_triton(q, k, v, None, NUM_LANDMARKS, TOPK)
    if series == "mita-torch":
        return lambda q, k, v: zoo.mita_attention(
            q, k, v, num_landmarks=NUM_LANDMARKS, topk=TOPK, backend="torch"
        )
    if series == "sdpa-default":
        return F.scaled_dot_product_attention

    def flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    return flash


def measure_cell(series: str, pass_: str, n: int, slow: bool) -> Cell:
    """Time and peak memory of one series at one length (OOM and errors become the cell's status)."""
    attention = _attention(series)
    gen = torch.Generator(device="cuda").manual_seed(n)
    try:
        q, k, v = (
            torch.randn(BATCH, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
            for _ in range(3)
        )
        if pass_ == "forward":
            grads = None

            def call() -> Any:
                with torch.no_grad():
                    return attention(q, k, v)
        else:
            grads = [t.requires_grad_() for t in (q, k, v)]
            upstream = torch.randn(q.shape, device="cuda", dtype=q.dtype, generator=gen)

            def call() -> Any:
                attention(q, k, v).backward(upstream)

        (median, p20, p80), repeats, method = _time_ms(call, grads, slow)
        for t in grads or ():  # the timed calls' gradients are not part of one call's peak
            t.grad = None
        peak, _ = peak_memory(call, torch.device("cuda"))
        return Cell(series, pass_, n, "ok", None, median, p20, p80, repeats or None, method, peak)
    except torch.cuda.OutOfMemoryError as err:
        return Cell(series, pass_, n, "oom", one_line(err))
    except Exception as err:  # recorded, never fatal: the remaining cells still run
        return Cell(series, pass_, n, "error", one_line(err))
    finally:
        torch.cuda.empty_cache()


def copy_bandwidth_gbps() -> float:
    """Device-to-device copy bandwidth (read + write bytes per second, GB/s) of a 1 GiB buffer."""
    import triton.testing

    src = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    return 2 * 2**30 / (ms * 1e-3) / 1e9


def graph_ms(n: int, pass_: str) -> float | None:
    """mita-triton replayed from a CUDA graph (`MitaGraph`: no launch overhead, the cost once shapes
    are fixed), median ms of the replays; None if capture fails (informative only)."""
    import triton.testing

    from attention_zoo.mita.triton_ops import MitaGraph

    try:
        q, k, v, upstream = bench_inputs(n)
        graph = MitaGraph(q, k, v, None, NUM_LANDMARKS, TOPK, backward=pass_ != "forward")
        if pass_ != "forward":
            graph(q, k, v, upstream)
        return float(triton.testing.do_bench(graph.graph.replay, return_mode="median"))
    except Exception as err:
        click.echo(f"graph replay at N={n} ({pass_}) failed: {one_line(err)}", err=True)
        return None
    finally:
        torch.cuda.empty_cache()


def launch_counts(n: int = 4096) -> dict[str, Any]:
    """Device launches per eager call (Triton kernels and torch ops with a kernel) and host syncs,
    counted by `LaunchLog` on the GPU."""
    from attention_zoo.mita.launches import LaunchLog

    q, k, v, upstream = bench_inputs(n)
    forward, forward_backward = mita_calls(q, k, v, upstream)
    forward_backward()  # compile outside the count
    counts: dict[str, Any] = {}
    for pass_, call in (("forward", forward), ("forward_backward", forward_backward)):
        with LaunchLog() as log:
            call()
        counts[pass_] = {"launches": len(log.launches), "kernels": log.launches, "host_syncs": log.syncs}
    return counts


def kernel_breakdown(n: int, pass_: str, iterations: int = 5) -> list[dict[str, Any]]:
    """Device time per kernel of mita-triton at length n (torch.profiler, CUDA activity), per call,
    largest first: where the time goes. Empty if the profiler fails (informative only)."""
    from torch.profiler import ProfilerActivity, profile

    from attention_zoo.mita.triton_ops import mita_triton

    try:
        gen = torch.Generator(device="cuda").manual_seed(n)
        q, k, v = (
            torch.randn(BATCH, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
            for _ in range(3)
        )
        upstream = torch.randn(q.shape, device="cuda", dtype=q.dtype, generator=gen)
        leaves = [t.requires_grad_(pass_ != "forward") for t in (q, k, v)]

        def call() -> None:
            if pass_ == "forward":
                with torch.no_grad():
                    mita_triton(q, k, v, None, NUM_LANDMARKS, TOPK)
            else:
                q_leaf, k_leaf, v_leaf = leaves
                torch.autograd.grad(
                    mita_triton(q_leaf, k_leaf, v_leaf, None, NUM_LANDMARKS, TOPK), leaves, upstream
                )

        call()  # compile and warm up outside the profile
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(iterations):
                call()
            torch.cuda.synchronize()
        totals: dict[str, list[float]] = {}
        for event in prof.events():
            if event.device_type != torch.autograd.DeviceType.CUDA:
                continue
            entry = totals.setdefault(event.name[:60], [0.0, 0])
            entry[0] += event.time_range.elapsed_us() / 1e3
            entry[1] += 1
        rows = [{"kernel": name, "ms_per_call": ms / iterations, "launches_per_call": count / iterations}
                for name, (ms, count) in totals.items()]  # fmt: skip
        return sorted(rows, key=lambda r: -r["ms_per_call"])
    except Exception as err:
        click.echo(f"kernel breakdown at N={n} ({pass_}) failed: {one_line(err)}", err=True)
        return []
    finally:
        torch.cuda.empty_cache()


def plan(quick: bool) -> list[tuple[str, str, int]]:
    """(series, pass, N) in measurement order: series by SERIES, each from the shortest length up."""
    lengths = QUICK_LENGTHS if quick else LENGTHS
    cells = []
    for series in SERIES:
        for n in lengths:
            cells += [(series, pass_, n) for pass_ in PASSES]
        if not quick:
            cells += [(series, "forward", n) for n in FORWARD_ONLY_LENGTHS]
    return cells


def skip_reason(series: str, n: int) -> str | None:
    """Cells never attempted, with the reason recorded in their place."""
    if n >= 2**20 and series == "sdpa-flash":
        return "quadratic cost at 1M (several s per call); extrapolate from 256K by N^2"
    if n >= 2**20 and series == "mita-torch":
        return "the reference's per-query gathers need more memory than the card at 1M"
    return None


def run(
    quick: bool,
    budget_s: float,
    time_anyway: bool,
    progress: bool = True,
    profile_lengths: tuple[int, ...] = (),
) -> tuple[dict[str, Any], bool]:
    """Verify, then measure the plan; returns (report, verification passed)."""
    from tqdm import tqdm

    if not torch.cuda.is_available():
        raise ValueError("lra bench kernels needs a CUDA GPU and none is visible; run it on a GPU machine")
    started = time.perf_counter()
    device = torch.device("cuda")
    checks = verify(device)
    passed = all(c.ok for c in checks)
    report: dict[str, Any] = {
        "environment": {
            "device": torch.cuda.get_device_name(device),
            "torch_version": torch.__version__,
            "triton_version": installed_version("triton"),
            "cuda_version": torch.version.cuda,
            "git_commit": git_commit(),
            "command": " ".join(["lra", *sys.argv[1:]]),
            "protocol": {
                "batch": BATCH,
                "heads": HEADS,
                "head_dim": HEAD_DIM,
                "dtype": "bfloat16",
                "num_landmarks": NUM_LANDMARKS,
                "topk": TOPK,
            },  # fmt: skip
        },
        "verification": [{**asdict(c), "ok": c.ok} for c in checks],
        "verification_s": time.perf_counter() - started,
        "cells": [],
        "copy_bandwidth_gbps": None,
        "graph_ms": {},
        "launches": {},
        "kernel_breakdown": {},
    }
    cells: list[Cell] = []
    if passed or time_anyway:
        report["copy_bandwidth_gbps"] = copy_bandwidth_gbps()
        last: dict[tuple[str, str], tuple[int, float]] = {}  # (series, pass) -> (N, median ms)
        todo = plan(quick)
        bar = tqdm(todo, desc="bench_kernels", disable=not progress)
        for series, pass_, n in bar:
            reason = skip_reason(series, n)
            predicted_s = None
            if (series, pass_) in last:
                prev_n, prev_ms = last[(series, pass_)]
                predicted_s = prev_ms / 1e3 * (n / prev_n) ** COST_EXPONENT[series]
            slow = predicted_s is not None and predicted_s > SLOW_CALL_S
            calls = 5 if slow else 10  # rough count of calls a cell makes (timing + memory)
            if reason is None and predicted_s is not None:
                left = budget_s - (time.perf_counter() - started)
                if predicted_s * calls > left:
                    reason = (
                        f"predicted {predicted_s * calls:.0f} s exceeds the {left:.0f} s left of --budget-s"
                    )
            if reason is not None:
                cells.append(Cell(series, pass_, n, "skipped", reason))
                continue
            cell = measure_cell(series, pass_, n, slow)
            cells.append(cell)
            if cell.status == "ok" and cell.median_ms is not None:
                last[(series, pass_)] = (n, cell.median_ms)
            bar.set_postfix_str(f"{series} {pass_} N={n}: {cell.status} {format_value(cell.median_ms)} ms")
        for pass_ in PASSES:
            lengths = [n for n in GRAPH_LENGTHS if n in (QUICK_LENGTHS if quick else LENGTHS)]
            report["graph_ms"][pass_] = {n: graph_ms(n, pass_) for n in lengths}
        try:
            report["launches"] = launch_counts()
        except Exception as err:  # informative only
            click.echo(f"launch count failed: {one_line(err)}", err=True)
        for n in profile_lengths:
            for pass_ in PASSES:
                report["kernel_breakdown"][f"{pass_} N={n}"] = kernel_breakdown(n, pass_)
    report["cells"] = [asdict(c) for c in cells]
    device_ms = {
        key: sum(r["ms_per_call"] for r in rows) for key, rows in report["kernel_breakdown"].items() if rows
    }
    report.update(summarise(cells, report["copy_bandwidth_gbps"], report["graph_ms"], device_ms))
    report["total_s"] = time.perf_counter() - started
    return report, passed
