"""The kernel benchmark's protocol: the shape and the series it measures, the targets it holds the
kernels to, one measured cell (`Cell`), its inputs and the mita-triton calls, and the HBM traffic
floor (`floor_ms`). See runners/bench/kernels/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ...provenance import utc_now

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


def bench_inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v and an upstream gradient of the protocol's shape at length n, bf16 on CUDA, seeded by n."""
    gen = torch.Generator(device="cuda").manual_seed(n)
    q, k, v, upstream = (
        torch.randn(BATCH, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
        for _ in range(4)
    )
    return q, k, v, upstream


def mita_calls(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, upstream: torch.Tensor
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Forward (no autograd) and forward+backward calls of mita-triton on q, k, v."""
    from attention_zoo.mita.triton_ops import mita_triton

    leaves = [t.detach().requires_grad_() for t in (q, k, v)]

    def forward() -> Any:
        with torch.no_grad():
            return mita_triton(q, k, v, None, NUM_LANDMARKS, TOPK)

    def forward_backward() -> Any:
        q_leaf, k_leaf, v_leaf = leaves
        out = mita_triton(q_leaf, k_leaf, v_leaf, None, NUM_LANDMARKS, TOPK)
        return torch.autograd.grad(out, leaves, upstream)

    return forward, forward_backward


def floor_ms(pass_: str, n: int, bandwidth_gbps: float) -> float:
    """HBM traffic floor: read Q, K, V and write O (forward); plus read O, dO, write dQ, dK, dV."""
    tensors = 4 if pass_ == "forward" else 12
    return tensors * BATCH * HEADS * n * HEAD_DIM * 2 / (bandwidth_gbps * 1e9) * 1e3


def format_value(value: float | None, spec: str = ".3g") -> str:
    """A number for the summaries, "–" for none."""
    return "–" if value is None else format(value, spec)
