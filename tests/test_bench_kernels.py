"""The kernel benchmark's pieces that run anywhere (runners/bench/kernels/, `lra bench kernels`):
the fixed-selection reference, the summary, records and markdown, and the verification on the
Triton interpreter (compiled on a GPU with LRA_TEST_DEVICE=cuda)."""

from __future__ import annotations

import os

import pytest
import torch

from attention_zoo import functional as F
from attention_zoo.mita import triton_common as common

from . import zoo_reference as ref
from .builders import make_inputs

pytest.importorskip("triton")

DEVICE = torch.device(os.environ.get("LRA_TEST_DEVICE", "cpu"))


@pytest.fixture(autouse=True)
def poisoned_buffers():
    """Kernel output buffers start as NaN (ints: -1), so an element a kernel forgot to write fails."""
    old = common.set_config(poison=True)
    try:
        yield
    finally:
        common.CONFIG = old


def reference_selection(q, k, mask, num_landmarks, topk):
    """Top-k experts [B, H, M, kept] and argmax routing [B, H, N] from the equations, in fp64."""
    batch, heads, n, _ = q.shape
    kept = min(topk, n)
    slots = min(num_landmarks, n)
    keys = torch.zeros(batch, heads, slots, kept, dtype=torch.long)
    routing = torch.zeros(batch, heads, n, dtype=torch.long)
    for b in range(batch):
        valid = torch.ones(n, dtype=torch.bool) if mask is None else mask[b]
        for h in range(heads):
            landmarks = ref.pool(q[b, h][valid].double(), num_landmarks)
            scores = (landmarks @ k[b, h].double().T).masked_fill(~valid, float("-inf"))
            keys[b, h, : landmarks.shape[0]] = scores.topk(kept, dim=-1).indices
            routing[b, h] = (landmarks @ q[b, h].double().T).argmax(0)
    return keys, routing


@pytest.mark.parametrize("shared", [True, False], ids=["mita", "route"])
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "padded"])
def test_bench_fixed_selection_reference_is_mita(shared, masked):
    """The benchmark's 16-bit check computes MiTA with an injected selection: given the selection
    the reference would make, it must reproduce the reference."""
    from runners.bench.kernels import fixed_selection_mita

    q, k, v, mask = make_inputs(2, 2, 45, 16, masked=masked, seed=21)
    q, k, v = q.double(), k.double(), v.double()
    keys, routing = reference_selection(q, k, mask, 6, 7)
    fn = F.mita_attention if shared else F.mita_route_attention
    expected = fn(q, k, v, key_padding_mask=mask, num_landmarks=6, topk=7, backend="torch")
    out = fixed_selection_mita(q, k, v, mask, 6, keys, routing, shared, chunk=16)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def synthetic_report():
    from runners.bench import kernels as bk

    cells = []
    for pass_ in bk.PASSES:
        for n in (4096, 65536):
            scale = (n / 4096) ** 2
            cells.append(
                bk.Cell("mita-triton", pass_, n, "ok", median_ms=0.05 * n / 4096, peak_memory_bytes=100 * n)
            )
            cells.append(
                bk.Cell("sdpa-default", pass_, n, "ok", median_ms=0.1 * scale, peak_memory_bytes=120 * n)
            )
            cells.append(bk.Cell("sdpa-flash", pass_, n, "oom", error="OutOfMemoryError: x"))
    cells.append(
        bk.Cell("mita-torch", "forward", 1 << 20, "skipped", error="needs more memory than the card")
    )
    report = {
        "environment": {"device": "NVIDIA H200", "torch_version": "2.11", "triton_version": "3.6",
                        "git_commit": "abc", "command": "lra bench kernels"},
        "verification": [{"name": "mita fp32: forward", "value": 1e-7, "limit": 1e-4, "ok": True}],
        "cells": [vars(c) for c in cells],
        "copy_bandwidth_gbps": 4000.0,
        "graph_ms": {"forward": {4096: 0.02, 65536: 0.5}},
        "launches": {"forward": {"launches": 5, "kernels": ["triton:_fwd_kernel"], "host_syncs": []}},
    }  # fmt: skip
    report.update(bk.summarise(cells, 4000.0, report["graph_ms"], {"forward N=65536": 0.2}))
    return report


def test_bench_summary_ratios_and_targets():
    report = synthetic_report()
    ratios = {(r["pass"], r["seq_len"]): r for r in report["ratios"]}
    assert ratios[("forward", 4096)]["speedup_vs_sdpa-default"] == pytest.approx(2.0)
    assert ratios[("forward", 65536)]["speedup_vs_sdpa-default"] == pytest.approx(0.1 * 256 / 0.8)
    assert ratios[("forward", 65536)]["speedup_vs_sdpa-flash"] is None  # the flash cell ran out of memory
    assert ratios[("forward", 4096)]["memory_vs_sdpa-default"] == pytest.approx(100 / 120)
    floor = 4 * 8 * 65536 * 64 * 2 / 4000e9 * 1e3  # read Q, K, V and write O at 4000 GB/s, in ms
    assert ratios[("forward", 65536)]["x_floor"] == pytest.approx(0.8 / floor)
    assert ratios[("forward", 4096)]["graph_speedup_vs_sdpa-default"] == pytest.approx(0.1 / 0.02)
    met = {t["target"]: t["met"] for t in report["targets"]}
    assert met["forward >= 1x SDPA at N=4096"] is True
    assert met["forward >= 50x SDPA at N=65536"] is False  # 32x
    assert met["forward >= 50x SDPA at N=65536 (CUDA graph replay)"] is True  # 25.6 / 0.5 = 51x
    assert met["forward >= 100x SDPA at N=262144"] is None  # not measured
    assert met["forward_backward >= 40x SDPA at N=65536"] is False
    floor_target = next(t for t in report["targets"] if "HBM floor" in t["target"])
    assert floor_target["value"] == pytest.approx(0.2 / floor) and floor_target["met"] is True
    assert met["peak memory <= SDPA's at every N"] is True


def test_bench_outputs_are_valid_records_and_markdown(tmp_path):
    from results.records import load_records
    from runners.bench import kernels as bk

    report = synthetic_report()
    out = tmp_path / "bench.json"
    bk.write_outputs(report, out, tmp_path / "runs")
    text = out.with_suffix(".md").read_text()
    assert "| 4096 | 0.05 (0) | 0.1 (0) | oom: OutOfMemoryError: x | – |" in text
    assert "skipped: needs more memory than the card" in text
    records, problems = load_records(tmp_path / "runs", kind="efficiency")
    assert not problems
    assert len(records) == 12  # every attempted cell; the skipped one lives in the summary only
    mita = [r for r in records if r["backend"] == "triton"]
    assert {r["attention"] for r in mita} == {"mita"} and all(r["bench"] == "attention" for r in records)


@pytest.mark.slow
def test_bench_verification_passes_on_the_interpreter():
    """The GPU checks the benchmark runs before timing, at toy sizes (fp16 instead of bf16)."""
    from runners.bench.kernels import verify

    checks = verify(DEVICE, n32=32, n16=64, heads=1)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_bench_markdown_lists_device_time_per_kernel():
    report = synthetic_report()
    report["kernel_breakdown"] = {
        "forward N=65536": [
            {"kernel": "_fwd_kernel", "ms_per_call": 0.3, "launches_per_call": 1.0},
            {"kernel": "gatherTopK", "ms_per_call": 0.1, "launches_per_call": 2.0},
        ]
    }
    from runners.bench.kernels import markdown

    text = markdown(report)
    assert "### mita-triton forward N=65536: device time per kernel (torch.profiler), 0.4 ms in all" in text
    assert "| `_fwd_kernel` | 0.3 | 1 | 75% |" in text
    assert "| `gatherTopK` | 0.1 | 2 | 25% |" in text


def test_tune_table_orders_lengths_and_kernels():
    from runners.bench.kernels import tune_markdown

    rows = [
        {"config": {}, "status": "ok", "first_call_s": 2.0, "forward_ms N=65536": 0.5,
         "forward_ms N=4096": 0.2, "forward_backward_ms N=4096": 0.9,
         "kernels": {"_fwd_kernel": 0.2, "_bwd_query_kernel": 0.7}},
        {"config": {"num_warps_fwd": 4, "block_n": 128}, "status": "ValueError: bad"},
    ]  # fmt: skip
    lines = tune_markdown(rows).splitlines()
    assert lines[0] == ("| config change | forward_ms N=4096 | forward_ms N=65536 | forward_backward_ms N=4096 "
                        "| first call s | status |")  # fmt: skip
    assert lines[2] == "| default | 0.2 | 0.5 | 0.9 | 2.0 | ok |"
    assert lines[3] == "| num_warps_fwd=4, block_n=128 | – | – | – | – | ValueError: bad |"
    # kernels: the slowest first; a config without a breakdown shows dashes
    assert "| config change | `_bwd_query_kernel` | `_fwd_kernel` |" in lines
    assert "| num_warps_fwd=4, block_n=128 | – | – |" in lines


@pytest.mark.parametrize(
    "args, message",
    [
        (["--profile", "64K"], "Error: --profile takes comma-separated integers"),
        (["--quick"], "Error: lra bench kernels needs a CUDA GPU and none is visible"),
        (["--tune", "4096"], "Error: --tune needs a CUDA GPU and none is visible"),
    ],
)
def test_lra_bench_kernels_without_a_gpu_is_a_one_line_error(tmp_path, args, message):
    if torch.cuda.is_available():
        pytest.skip("checks the errors of a machine without CUDA")
    from click.testing import CliRunner

    from runners import cli

    result = CliRunner().invoke(cli.main, ["bench", "kernels", *args, "--out", str(tmp_path / "k.json")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "k.json").exists()
