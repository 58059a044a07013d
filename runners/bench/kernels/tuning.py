"""`lra bench kernels --tune`: mita-triton's forward and forward+backward time per KernelConfig change
(`TUNE_CONFIGS`, one knob at a time around the defaults), with the device time per kernel, and
the table of them (`tune_markdown`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import torch

from lra.io import atomic_write_json, atomic_write_text

from ...provenance import git_commit
from ..timing import one_line
from .measure import kernel_breakdown
from .protocol import BATCH, HEAD_DIM, HEADS, format_value, mita_calls

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
                forward, forward_backward = mita_calls(q, k, v, upstream)
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
        cells = [format_value(row.get(key), ".4g") for key in keys]
        change = ", ".join(f"{k}={v}" for k, v in row["config"].items()) or "default"
        lines.append(f"| {change} | " + " | ".join(cells) + f" | {format_value(row.get('first_call_s'), '.1f')} | "
                     f"{row['status']} |")  # fmt: skip
    kernels = sorted({name for row in rows for name in row.get("kernels", {})},
                     key=lambda name: -max(row.get("kernels", {}).get(name, 0.0) for row in rows))  # fmt: skip
    if kernels:
        lines += ["", "Device ms per kernel, forward+backward at the longest length:", "",
                  "| config change | " + " | ".join(f"`{k}`" for k in kernels) + " |",
                  "|---" * (len(kernels) + 1) + "|"]  # fmt: skip
        for row in rows:
            change = ", ".join(f"{k}={v}" for k, v in row["config"].items()) or "default"
            lines.append(f"| {change} | " + " | ".join(format_value(row.get("kernels", {}).get(k), ".3g") for k in kernels)
                         + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def tune_and_write(lengths: tuple[int, ...], budget_s: float, out: Path, progress: bool = True) -> str:
    """`tune`, written as JSON to `out` (with the device, the commit and the command) and as its
    markdown table beside it (`.md`); returns the table. ValueError without a CUDA GPU."""
    if not torch.cuda.is_available():
        raise ValueError("--tune needs a CUDA GPU and none is visible; run it on a GPU machine")
    rows = tune(lengths, budget_s, progress=progress)
    command = " ".join(["lra", *sys.argv[1:]])
    summary = {
        "tune": rows,
        "device": torch.cuda.get_device_name(),
        "git_commit": git_commit(),
        "command": command,
    }
    atomic_write_json(out, summary)
    table = tune_markdown(rows)
    atomic_write_text(out.with_suffix(".md"), table)
    return table
