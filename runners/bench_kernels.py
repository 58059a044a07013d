"""GPU benchmark of the MiTA Triton kernels against SDPA and the torch reference, after checking on
the same GPU that the kernels match the reference.

    lra bench kernels                      # full grid (about 4-8 minutes on an H200)
    lra bench kernels --quick              # 1K-16K only (about 1-2 minutes)
    lra bench kernels --out bench_kernels.json --records lra_runs

Protocol: B=1, H=8, d=64, bf16, MiTA with m = k = 64, N in {1K, 4K, 16K, 64K, 256K} and 1M
(forward only). Series: `mita-triton` (the kernels), `mita-torch` (the reference), `sdpa-default`
(`F.scaled_dot_product_attention` with PyTorch's own backend choice: cuDNN on Hopper) and
`sdpa-flash` (flash backend). Times are the median (with p20/p80) of `triton.testing.do_bench`,
which flushes L2 between calls; calls predicted to take over a second are timed with one warm-up
and two event-bracketed calls instead. Forward runs without autograd; forward+backward calls
backward with a fixed random upstream gradient and fresh input gradients. Peak memory is
`torch.cuda.max_memory_allocated` during one separate call minus what was allocated before it (so
the inputs are excluded, the output and any gradients included).

Before timing: fp32 Triton vs the reference (forward <= 1e-4, gradients <= 1e-3, fla's relative
error ||a - b|| / ||b||), bf16 with the kernels' own top-k and routing held fixed against an fp32
computation of the same selection (forward <= 1e-2, gradients <= 2e-2), and a bitwise-repeatable
deterministic backward. A failed check stops the run before timing (``--time-anyway`` overrides).

After the cells: mita-triton again as CUDA graph replays (`MitaGraph`, forward and forward+backward,
1K-64K: the cost once shapes are fixed, without launch overhead, against the same run's eager SDPA),
the device launches and host syncs of one eager call at 4K (`LaunchLog`), and the per-kernel device
time of ``--profile`` lengths (the HBM-floor target uses the 64K forward's).

Cells whose predicted cost would overrun ``--budget-s`` are skipped and recorded as skipped, as are
SDPA-flash at 1M (quadratic: several seconds per call) and the torch reference at 1M (its gathers
need more memory than the card has). Outputs: a JSON summary (``--out``), a markdown summary beside
it (same name, .md) and, with ``--records DIR``, one efficiency record per measurement
(results/records.py, kind="efficiency", bench="attention").
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import torch
import torch.nn.functional as F

from lra.io import atomic_write_json, atomic_write_text
from results.costs import time_spread
from results.records import SCHEMA_VERSION, write_record

from .bench_records import new_call_id
from .provenance import git_commit, installed_version, utc_now
from .timing import one_line, peak_memory

LENGTHS = (1024, 4096, 16384, 65536, 262144)
FORWARD_ONLY_LENGTHS = (1048576,)
QUICK_LENGTHS = (1024, 4096, 16384)
HEADS, HEAD_DIM, BATCH = 8, 64, 1
NUM_LANDMARKS = TOPK = 64
PASSES = ("forward", "forward_backward")
SERIES = ("mita-triton", "sdpa-default", "sdpa-flash", "mita-torch")  # measurement order: most needed first
SLOW_CALL_S = 1.0  # calls predicted above this are timed with 1 warm-up + 2 calls, not do_bench
# Exponent of the cost in N used to predict a cell from the previous length.
COST_EXPONENT = {"mita-triton": 1.0, "mita-torch": 1.0, "sdpa-default": 2.0, "sdpa-flash": 2.0}
TARGETS = (  # (pass, N, minimum speed-up of mita-triton over sdpa-default, eager calls)
    ("forward", 4096, 1.0),
    ("forward", 65536, 50.0),
    ("forward", 262144, 100.0),  # the long-length result to keep
    ("forward_backward", 4096, 1.0),
    ("forward_backward", 65536, 40.0),
)
FLOOR_LIMIT, FLOOR_LENGTH = 6.0, 65536  # forward device time within 6x of the HBM traffic floor at 64K
LAUNCH_BUDGET = {"forward": 5, "forward_backward": 10}  # device launches per call (unmasked)
GRAPH_LENGTHS = (1024, 4096, 16384, 65536)  # lengths also timed as CUDA graph replays


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One (series, pass, N) measurement or the reason it was skipped."""

    series: str
    pass_: str
    seq_len: int
    status: str  # "ok" | "oom" | "error" | "skipped"
    error: str | None = None
    median_ms: float | None = None
    p20_ms: float | None = None
    p80_ms: float | None = None
    repeats: int | None = None
    method: str | None = None  # "do_bench" | "single-shot"
    peak_memory_bytes: int | None = None
    measured_at: str = field(default_factory=utc_now)


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


def _bench_inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device="cuda").manual_seed(n)
    q, k, v, upstream = (
        torch.randn(BATCH, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
        for _ in range(4)
    )
    return q, k, v, upstream


def graph_ms(n: int, pass_: str) -> float | None:
    """mita-triton replayed from a CUDA graph (`MitaGraph`: no launch overhead, the cost once shapes
    are fixed), median ms of the replays; None if capture fails (informative only)."""
    import triton.testing

    from attention_zoo.mita.triton_ops import MitaGraph

    try:
        q, k, v, upstream = _bench_inputs(n)
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

    q, k, v, upstream = _bench_inputs(n)
    forward, forward_backward = _mita_calls(q, k, v, upstream)
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
                torch.autograd.grad(mita_triton(*leaves, None, NUM_LANDMARKS, TOPK), leaves, upstream)

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


# Alternatives to the default KernelConfig that `--tune` times, one knob at a time around the
# defaults (the per-kernel table then says which kernels each knob moves). The defaults themselves
# came from such a sweep on an H200 (results/measured/h200-2026-11-28/tune.md).
TUNE_CONFIGS: tuple[dict[str, Any], ...] = (
    {},
    {"num_warps_pass": 8},
    {"num_warps_fwd": 8},
    {"num_warps_tiles": 8},
    {"num_stages": 2},
    {"block_m": 32},
    {"block_m": 128},
    {"block_k": 32},
    {"block_n": 64},
    {"block_n_bwd": 64},
    {"group": 16},
    {"split_programs": 2048},
)


def _mita_calls(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, upstream: torch.Tensor
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Forward (no autograd) and forward+backward calls of mita-triton on q, k, v."""
    from attention_zoo.mita.triton_ops import mita_triton

    leaves = [t.detach().requires_grad_() for t in (q, k, v)]

    def forward() -> Any:
        with torch.no_grad():
            return mita_triton(q, k, v, None, NUM_LANDMARKS, TOPK)

    def forward_backward() -> Any:
        return torch.autograd.grad(mita_triton(*leaves, None, NUM_LANDMARKS, TOPK), leaves, upstream)

    return forward, forward_backward


def tune(lengths: tuple[int, ...], budget_s: float, progress: bool = True) -> list[dict[str, Any]]:
    """Median forward and forward+backward ms of mita-triton per KernelConfig change in TUNE_CONFIGS
    (bf16, the benchmark shape), stopping when `budget_s` is spent; the compile time is reported."""
    import triton.testing

    from attention_zoo.mita import triton_common as common

    started = time.perf_counter()
    inputs = {}
    for n in lengths:
        gen = torch.Generator(device="cuda").manual_seed(n)
        q, k, v = (
            torch.randn(BATCH, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
            for _ in range(3)
        )
        inputs[n] = (q, k, v, torch.randn(q.shape, device="cuda", dtype=q.dtype, generator=gen))
    rows = []
    for change in TUNE_CONFIGS:
        if time.perf_counter() - started > budget_s:
            rows.append({"config": change, "status": "skipped: --budget-s spent"})
            continue
        old = common.set_config(**change)
        row: dict[str, Any] = {"config": change, "status": "ok"}
        try:
            for n, (q, k, v, upstream) in inputs.items():
                forward, forward_backward = _mita_calls(q, k, v, upstream)
                tic = time.perf_counter()
                forward_backward()
                torch.cuda.synchronize()
                row.setdefault("first_call_s", time.perf_counter() - tic)  # compile included
                row[f"forward_ms N={n}"] = triton.testing.do_bench(forward, return_mode="median")
                row[f"forward_backward_ms N={n}"] = triton.testing.do_bench(
                    forward_backward, return_mode="median"
                )
            # Which kernels the change moved: device time per kernel, forward+backward, longest N.
            breakdown = kernel_breakdown(max(lengths), "forward_backward", iterations=3)
            row["kernels"] = {r["kernel"]: r["ms_per_call"] for r in breakdown if r["kernel"].startswith("_")}
            row["kernels"]["other (torch ops)"] = sum(
                r["ms_per_call"] for r in breakdown if not r["kernel"].startswith("_")
            )
        except Exception as err:  # a config the compiler rejects is a result, not a crash
            row["status"] = one_line(err)
        finally:
            common.CONFIG = old
            torch.cuda.empty_cache()
        rows.append(row)
        if progress:
            click.echo(f"tune {change or 'default'}: " + ", ".join(
                f"{key} {value:.4g}" for key, value in row.items() if isinstance(value, float)
            ), err=True)  # fmt: skip
    return rows


def tune_markdown(rows: list[dict[str, Any]]) -> str:
    keys = sorted({key for row in rows for key in row if key.endswith("ms") or " N=" in key},
                  key=lambda key: (not key.startswith("forward_ms"), int(key.split("N=")[1])))  # fmt: skip
    lines = ["| config change | " + " | ".join(keys) + " | first call s | status |",
             "|---" * (len(keys) + 3) + "|"]  # fmt: skip
    for row in rows:
        cells = [_fmt(row.get(key), ".4g") for key in keys]
        change = ", ".join(f"{k}={v}" for k, v in row["config"].items()) or "default"
        lines.append(f"| {change} | " + " | ".join(cells) + f" | {_fmt(row.get('first_call_s'), '.1f')} | "
                     f"{row['status']} |")  # fmt: skip
    kernels = sorted({name for row in rows for name in row.get("kernels", {})},
                     key=lambda name: -max(row.get("kernels", {}).get(name, 0.0) for row in rows))  # fmt: skip
    if kernels:
        lines += ["", "Device ms per kernel, forward+backward at the longest length:", "",
                  "| config change | " + " | ".join(f"`{k}`" for k in kernels) + " |",
                  "|---" * (len(kernels) + 1) + "|"]  # fmt: skip
        for row in rows:
            change = ", ".join(f"{k}={v}" for k, v in row["config"].items()) or "default"
            lines.append(f"| {change} | " + " | ".join(_fmt(row.get("kernels", {}).get(k), ".3g") for k in kernels)
                         + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Correctness on the GPU
# ---------------------------------------------------------------------------------------------


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """fla's ||a - b|| / ||b|| in fp64 (inf if `actual` has a non-finite value)."""
    if not torch.isfinite(actual).all():
        return math.inf
    diff = actual.double() - expected.double()
    return (diff.norm() / expected.double().norm().clamp_min(1e-30)).item()


def fixed_selection_mita(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    num_landmarks: int,
    expert_keys: torch.Tensor,
    routing: torch.Tensor,
    shared: bool = True,
    chunk: int = 4096,
) -> torch.Tensor:
    """MiTA in the precision of q, k, v with the top-k experts [B, H, M, kept] and routing [B, H, N]
    given (the equations of reference.py with the selection injected); autograd gives gradients."""
    from attention_zoo._common import gather_rows, landmark_pool

    batch, heads, n, d = q.shape
    kept = expert_keys.shape[-1]
    landmarks, landmark_valid = landmark_pool(q, num_landmarks, key_padding_mask)
    index = expert_keys.gather(2, routing[..., None].expand(-1, -1, -1, kept))  # [B, H, N, kept]
    if shared:
        key_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        values = F.scaled_dot_product_attention(landmarks, k, v, attn_mask=key_mask)
    outputs = []
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        idx = index[:, :, rows]
        routed = torch.einsum("bhcd,bhckd->bhck", q[:, :, rows], gather_rows(k, idx)) / d**0.5
        if key_padding_mask is not None:
            key_ok = key_padding_mask.gather(1, idx.reshape(batch, -1)).view(idx.shape)
            routed = routed.masked_fill(~key_ok, float("-inf"))
        routed_values = gather_rows(v, idx)
        if shared:
            shared_logits = (q[:, :, rows] @ landmarks.transpose(-1, -2)) / d
            shared_logits = shared_logits.masked_fill(~landmark_valid[:, None, None, :], float("-inf"))
            probs = torch.softmax(torch.cat([shared_logits, routed], -1), -1)
            m = landmarks.shape[2]
            out = probs[..., :m] @ values + torch.einsum("bhck,bhckd->bhcd", probs[..., m:], routed_values)
        else:
            out = torch.einsum("bhck,bhckd->bhcd", torch.softmax(routed, -1), routed_values)
        outputs.append(out)
    return torch.cat(outputs, dim=2)


@dataclass
class Check:
    name: str
    value: float
    limit: float

    @property
    def ok(self) -> bool:
        return self.value <= self.limit


def batch_inputs(batch: int, heads: int, n: int, d: int, dtype: torch.dtype, device: torch.device, seed: int):
    gen = torch.Generator(device=device).manual_seed(seed)
    return [torch.randn(batch, heads, n, d, generator=gen, device=device).to(dtype) for _ in range(3)]


def _padding(batch: int, n: int, device: torch.device, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    mask = torch.rand(batch, n, generator=gen, device=device) > 0.3
    mask[:, 0] = True
    return mask


def _grads(out: torch.Tensor, leaves: list[torch.Tensor], seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator(device=out.device).manual_seed(seed)
    upstream = torch.randn(out.shape, generator=gen, device=out.device).to(out.dtype)
    return torch.autograd.grad(out, leaves, upstream)


def verify(device: torch.device, *, n32: int = 4096, n16: int = 16384, heads: int = HEADS) -> list[Check]:
    """The correctness checks run before timing (sizes are parameters so CPU tests can shrink them)."""
    from attention_zoo import functional as zoo
    from attention_zoo.mita.triton_ops import mita_triton, mita_triton_selection

    checks: list[Check] = []
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for shared in (True, False):
            name = "mita" if shared else "mita_route"
            fn = zoo.mita_attention if shared else zoo.mita_route_attention
            for padded in (False, True):
                batch = 2 if padded else 1
                n = n32 // 4 + 3 if padded else n32  # odd padded length
                base = batch_inputs(batch, heads, n, HEAD_DIM, torch.float32, device, seed=n)
                mask = _padding(batch, n, device, seed=n) if padded else None
                ref_leaves = [t.clone().requires_grad_() for t in base]
                tri_leaves = [t.clone().requires_grad_() for t in base]
                expected = fn(
                    *ref_leaves,
                    key_padding_mask=mask,
                    num_landmarks=NUM_LANDMARKS,
                    topk=TOPK,
                    backend="torch",
                )
                out = mita_triton(*tri_leaves, mask, NUM_LANDMARKS, TOPK, shared)
                label = f"{name} fp32 N={n}{' padded' if padded else ''}"
                checks.append(Check(f"{label}: forward", rel_err(out, expected), 1e-4))
                for axis, g, g_ref in zip(
                    "qkv", _grads(out, tri_leaves, 1), _grads(expected, ref_leaves, 1), strict=True
                ):
                    checks.append(Check(f"{label}: d{axis}", rel_err(g, g_ref), 1e-3))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32

    # 16-bit: the kernels' own selection, held fixed, against fp32 arithmetic on the same inputs.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float16  # the interpreter's bf16 is broken
    q, k, v = batch_inputs(BATCH, heads, n16, HEAD_DIM, dtype, device, seed=16)
    selection = mita_triton_selection(q, k, None, NUM_LANDMARKS, TOPK)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = mita_triton(*leaves, None, NUM_LANDMARKS, TOPK, selection=selection)
    with torch.no_grad():
        same = mita_triton(q, k, v, None, NUM_LANDMARKS, TOPK)
    checks.append(Check(f"{dtype} N={n16}: own selection == held selection (max abs diff)",
                        (same.float() - out.float()).abs().max().item(), 0.0))  # fmt: skip
    exact = [t.float().requires_grad_() for t in (q, k, v)]
    expected = fixed_selection_mita(*exact, None, NUM_LANDMARKS, *selection)
    label = f"mita {dtype} N={n16} selection held"
    checks.append(Check(f"{label}: forward", rel_err(out, expected), 1e-2))
    for axis, g, g_ref in zip("qkv", _grads(out, leaves, 2), _grads(expected, exact, 2), strict=True):
        checks.append(Check(f"{label}: d{axis}", rel_err(g, g_ref), 2e-2))

    # Deterministic backward: bitwise repeatable.
    runs = []
    for _ in range(2):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        runs.append(_grads(mita_triton(*leaves, None, NUM_LANDMARKS, TOPK, deterministic=True), leaves, 3))
    worst = max((a.float() - b.float()).abs().max().item() for a, b in zip(*runs, strict=True))
    checks.append(Check(f"{dtype} N={n16}: deterministic backward, run-to-run max abs diff", worst, 0.0))
    return checks


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def floor_ms(pass_: str, n: int, bandwidth_gbps: float) -> float:
    """HBM traffic floor: read Q, K, V and write O (forward); plus read O, dO, write dQ, dK, dV."""
    tensors = 4 if pass_ == "forward" else 12
    return tensors * BATCH * HEADS * n * HEAD_DIM * 2 / (bandwidth_gbps * 1e9) * 1e3


def summarise(
    cells: list[Cell],
    bandwidth_gbps: float | None,
    graph: dict[str, dict[int, float | None]] | None = None,
    device_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Ratios per (pass, N) and the targets, from the measured cells; `graph` adds the CUDA graph
    replays ({pass: {N: ms}}) against the same run's eager SDPA, `device_ms` the profiled device
    time per call ({"forward N=65536": ms}) for the HBM floor target."""
    graph = graph or {}
    by_key = {(c.series, c.pass_, c.seq_len): c for c in cells}

    def ok(series: str, pass_: str, n: int) -> Cell | None:
        cell = by_key.get((series, pass_, n))
        return cell if cell is not None and cell.status == "ok" else None

    rows = []
    for pass_ in PASSES:
        for n in sorted({c.seq_len for c in cells if c.pass_ == pass_}):
            mita = ok("mita-triton", pass_, n)
            row: dict[str, Any] = {"pass": pass_, "seq_len": n}
            for other in ("sdpa-default", "sdpa-flash", "mita-torch"):
                base = ok(other, pass_, n)
                row[f"speedup_vs_{other}"] = base.median_ms / mita.median_ms if mita and base else None
                row[f"memory_vs_{other}"] = (
                    mita.peak_memory_bytes / base.peak_memory_bytes
                    if mita and base and base.peak_memory_bytes
                    else None
                )
            row["x_floor"] = (
                mita.median_ms / floor_ms(pass_, n, bandwidth_gbps) if mita and bandwidth_gbps else None
            )
            replay, sdpa = graph.get(pass_, {}).get(n), ok("sdpa-default", pass_, n)
            row["graph_ms"] = replay
            row["graph_speedup_vs_sdpa-default"] = sdpa.median_ms / replay if replay and sdpa else None
            rows.append(row)
    ratio = {(r["pass"], r["seq_len"]): r for r in rows}
    targets = []
    for pass_, n, minimum in TARGETS:
        value = ratio.get((pass_, n), {}).get("speedup_vs_sdpa-default")
        targets.append({"target": f"{pass_} >= {minimum:g}x SDPA at N={n}", "value": value,
                        "met": None if value is None else value >= minimum})  # fmt: skip
    memory = [r["memory_vs_sdpa-default"] for r in rows if r["memory_vs_sdpa-default"] is not None]
    targets.append({"target": "peak memory <= SDPA's at every N", "value": max(memory) if memory else None,
                    "met": None if not memory else max(memory) <= 1.0})  # fmt: skip
    for pass_, n, minimum in TARGETS:
        value = ratio.get((pass_, n), {}).get("graph_speedup_vs_sdpa-default")
        if value is not None:
            targets.append({"target": f"{pass_} >= {minimum:g}x SDPA at N={n} (CUDA graph replay)",
                            "value": value, "met": value >= minimum})  # fmt: skip
    floor_value = None
    device = (device_ms or {}).get(f"forward N={FLOOR_LENGTH}")
    if device and bandwidth_gbps:
        floor_value = device / floor_ms("forward", FLOOR_LENGTH, bandwidth_gbps)
    else:
        floor_value = ratio.get(("forward", FLOOR_LENGTH), {}).get("x_floor")
    targets.append({"target": f"forward within {FLOOR_LIMIT:g}x of the HBM floor at N={FLOOR_LENGTH} "
                    + ("(profiled device time)" if device else "(median call)"),
                    "value": floor_value,
                    "met": None if floor_value is None else floor_value <= FLOOR_LIMIT})  # fmt: skip
    return {"ratios": rows, "targets": targets}


def _fmt(value: float | None, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    """The human-readable summary (tables of times, memory, ratios, targets and checks)."""
    env = report["environment"]
    lines = [
        "# MiTA Triton kernels vs SDPA",
        "",
        f"{env['device']}, torch {env['torch_version']}, triton {env['triton_version']}, commit {env['git_commit']}; "
        f"B={BATCH}, H={HEADS}, d={HEAD_DIM}, bf16, m=k={NUM_LANDMARKS}; command `{env['command']}`.",
        f"Copy bandwidth {_fmt(report.get('copy_bandwidth_gbps'), '.0f')} GB/s (used for the HBM floor).",
        "",
        "## Correctness (before timing)",
        "",
        "| check | value | limit | ok |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c['name']} | {c['value']:.3g} | {c['limit']:.3g} | {'yes' if c['ok'] else '**NO**'} |"
              for c in report["verification"]]  # fmt: skip
    cells = {(c["series"], c["pass_"], c["seq_len"]): c for c in report["cells"]}
    ratios = {(r["pass"], r["seq_len"]): r for r in report["ratios"]}
    for pass_ in PASSES:
        lengths = sorted({c["seq_len"] for c in report["cells"] if c["pass_"] == pass_})
        if not lengths:
            continue
        lines += ["", f"## {pass_.replace('_', '+')}: median ms (peak MiB)", ""]
        lines.append("| N | " + " | ".join(SERIES) + " | vs sdpa-default | vs sdpa-flash | x HBM floor |")
        lines.append("|---" * (len(SERIES) + 4) + "|")
        for n in lengths:
            entries = []
            for series in SERIES:
                c = cells.get((series, pass_, n))
                if c is None:
                    entries.append("–")
                elif c["status"] == "ok":
                    entries.append(f"{c['median_ms']:.3g} ({(c['peak_memory_bytes'] or 0) / 2**20:.0f})")
                else:
                    entries.append(f"{c['status']}: {c['error'] or ''}".strip())
            r = ratios.get((pass_, n), {})
            lines.append(
                f"| {n} | " + " | ".join(entries) + f" | {_fmt(r.get('speedup_vs_sdpa-default'))}x | "
                f"{_fmt(r.get('speedup_vs_sdpa-flash'))}x | {_fmt(r.get('x_floor'))} |"
            )
    for key, rows in (report.get("kernel_breakdown") or {}).items():
        total = sum(r["ms_per_call"] for r in rows)
        lines += ["", f"### mita-triton {key}: device time per kernel (torch.profiler), {total:.3g} ms in all",
                  "", "| kernel | ms per call | launches per call | share |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| `{r['kernel']}` | {r['ms_per_call']:.4g} | {r['launches_per_call']:g} | "
                  f"{r['ms_per_call'] / total:.0%} |" for r in rows]  # fmt: skip
    graph_rows = [r for r in report["ratios"] if r.get("graph_ms") is not None]
    if graph_rows:
        lines += ["", "## mita-triton replayed from a CUDA graph (`MitaGraph`), against eager SDPA", "",
                  "| pass | N | graph replay ms | eager ms | vs sdpa-default |", "|---|---|---|---|---|"]  # fmt: skip
        for r in graph_rows:
            eager = cells.get(("mita-triton", r["pass"], r["seq_len"]), {}).get("median_ms")
            lines.append(f"| {r['pass'].replace('_', '+')} | {r['seq_len']} | {_fmt(r['graph_ms'])} | "
                         f"{_fmt(eager)} | {_fmt(r.get('graph_speedup_vs_sdpa-default'))}x |")  # fmt: skip
    for pass_, count in (report.get("launches") or {}).items():
        lines += ["", f"Device launches per eager {pass_.replace('_', '+')} call at N=4096: {count['launches']} "
                  f"(budget {LAUNCH_BUDGET[pass_]}), host syncs: {len(count['host_syncs'])}; "
                  + ", ".join(f"`{k}`" for k in count["kernels"])]  # fmt: skip
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    for t in report["targets"]:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_fmt(t['value'])} | {met} |")
    return "\n".join(lines) + "\n"


def efficiency_records(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One kind="efficiency", bench="attention" record per attempted cell (skips live in the summary)."""
    env = report["environment"]
    call_id = env.get("bench_call_id") or new_call_id()  # one call: the report's cells form ratios together
    records = []
    for c in report["cells"]:
        if c["status"] == "skipped":
            continue
        mita = c["series"].startswith("mita")
        params = {"num_landmarks": NUM_LANDMARKS, "topk": TOPK} if mita else {}
        backend = c["series"].removeprefix("mita-")
        if mita:
            params["backend"] = backend
        median = c["median_ms"]
        records.append({
            "schema_version": SCHEMA_VERSION,
            "kind": "efficiency",
            "bench": "attention",
            "attention": "mita" if mita else "full",
            "attention_params": params,
            "attention_label": f"mita(num_landmarks={NUM_LANDMARKS},topk={TOPK})" if mita else "full",
            "backend": backend,
            "pass": c["pass_"],
            "seq_len": c["seq_len"],
            "batch": BATCH,
            "heads": HEADS,
            "head_dim": HEAD_DIM,
            "dtype": "bfloat16",
            "device": env["device"],
            "status": c["status"],
            "error": c["error"],
            "time_ms_median": median,
            "time_ms_p20": c["p20_ms"],
            "time_ms_p80": c["p80_ms"],
            "steps_per_s": 1000.0 / median if median else None,
            "peak_memory_bytes": c["peak_memory_bytes"],
            "repeats": c["repeats"],
            "time_method": c["method"],
            "memory_method": "cuda-allocator",
            "torch_version": env["torch_version"],
            "triton_version": env["triton_version"],
            "git_commit": env["git_commit"],
            "measured_at": c["measured_at"],
            "bench_call_id": call_id,
            "time_spread": time_spread(c["p20_ms"], c["p80_ms"]),
        })  # fmt: skip
    return records


def write_outputs(report: dict[str, Any], out: Path, records_dir: Path | None) -> None:
    atomic_write_json(out, report)
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    if records_dir is not None:
        device = "".join(ch if ch.isalnum() else "-" for ch in report["environment"]["device"])
        for rec in efficiency_records(report):
            path = (
                records_dir
                / "efficiency"
                / "kernels"
                / device
                / rec["backend"]
                / f"{rec['pass']}-N{rec['seq_len']}.json"
            )
            write_record(path, rec)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


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
            if cell.status == "ok":
                last[(series, pass_)] = (n, cell.median_ms)
            bar.set_postfix_str(f"{series} {pass_} N={n}: {cell.status} {_fmt(cell.median_ms)} ms")
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
