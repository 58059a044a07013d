"""Shared pieces of the MiTA Triton kernels: tuning knobs, buffer allocation, block-size helpers.

`CONFIG` holds the knobs every launcher reads (tile sizes, the top-k group size, how many programs
the split-N passes aim for, the deterministic backward). Tests swap it to push small inputs through
the multi-tile, multi-chunk and multi-expert paths; tuning on a GPU can change it without editing
kernels. With `poison=True` every buffer a kernel must write starts as NaN (floats) or -1 (ints), so
an element a kernel forgot to write fails the comparison instead of passing by luck.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import triton

LOG2E = 1.4426950408889634
# Masked logits: finite so that a row whose logits are all masked so far gives exp2(0) = 1 garbage
# weights (wiped by the first real logit, exp2(NEG - real) == 0) instead of NaN from -inf - -inf.
NEG = -1.0e30
FLT_MAX = 3.4028234663852886e38


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class KernelConfig:
    """Tuning knobs of the MiTA kernels (block sizes are clamped to the problem inside launchers)."""

    block_m: int = 64  # sorted queries per tile of the fused attention kernels (>= 16)
    block_n: int = 128  # keys per block of the landmark pass (>= 16)
    block_n_bwd: int = 32  # keys per block of the key-major backward (>= 16)
    block_k: int = 64  # routed keys per inner step (>= 16)
    block_lm: int = 64  # landmarks per inner step (>= 16)
    group: int = 32  # keys per group of the exact two-stage top-k at long N (power of two, <= block_n)
    # Longest row the selection kernel's top-k holds in registers (power of two): up to this many keys
    # the top-k is one stage over the scores; longer rows use the smallest group whose maxima fit.
    select_row: int = 4096
    split_programs: int = 1024  # split-N passes aim for this many programs over all (b, h)
    # Fixed-order reductions in the backward; default from the environment (MITA_DETERMINISTIC=1).
    deterministic: bool = field(default_factory=lambda: _env_flag("MITA_DETERMINISTIC"))
    poison: bool = False  # fill kernel outputs with NaN / -1 before launches (tests)
    num_warps: int = 4  # streaming and bookkeeping kernels
    num_warps_tiles: int = 4  # backward kernels holding several [block, head_dim] fp32 tiles (no spills)
    num_warps_pass: int = 4  # the landmark pass (at head dims <= 64; doubled per doubling past 64, <= 8)
    num_warps_fwd: int = 4  # the fused forward attention (likewise)
    num_stages: int = 3
    fp32_block: int = 32  # fp32 inputs cap every block: exact ("ieee") fp32 dots run on CUDA cores

    def __post_init__(self) -> None:
        for name in ("block_m", "block_n", "block_n_bwd", "block_k", "block_lm", "fp32_block", "select_row"):
            value = getattr(self, name)
            if value < 16 or value & (value - 1):
                raise ValueError(f"KernelConfig.{name} must be a power of two >= 16; got {value}")
        if self.group < 1 or self.group & (self.group - 1) or self.group > self.block_n:
            raise ValueError(
                f"KernelConfig.group must be a power of two <= block_n ({self.block_n}); got {self.group}"
            )
        counts = (
            "split_programs",
            "num_warps",
            "num_warps_tiles",
            "num_warps_pass",
            "num_warps_fwd",
            "num_stages",
        )
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"KernelConfig.{name} must be >= 1; got {getattr(self, name)}")


CONFIG = KernelConfig()


def set_config(**changes: Any) -> KernelConfig:
    """Replace knobs of the module-wide config (e.g. ``set_config(deterministic=True)``); returns the old one."""
    global CONFIG
    old = CONFIG
    CONFIG = replace(CONFIG, **changes)
    return old


def new_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised buffer a kernel must fill completely (poisoned when CONFIG.poison)."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if CONFIG.poison:
        out.fill_(float("nan") if dtype.is_floating_point else -1)
    return out


def warps(base: int, head_dim: int, dtype: torch.dtype) -> int:
    """Warps of a tile kernel: `base` for 16-bit inputs up to head dim 64, doubled per doubling past
    it and for fp32 inputs, at most 8 (wider tiles need more registers: fewer warps spill)."""
    scale = head_block(head_dim) // 64 * (2 if dtype == torch.float32 else 1)
    return max(base, min(8, base * max(1, scale)))


def pow2_block(n: int, cap: int, floor: int = 16) -> int:
    """The power-of-two block covering n, between floor and cap (tl.dot needs every side >= 16)."""
    return max(floor, min(cap, triton.next_power_of_2(max(1, n))))


def tile(size: int, head_dim: int, dtype: torch.dtype) -> int:
    """A configured block size for tiles of [size, head_dim]: halved per doubling of the head dim
    past 64 (the fp32 accumulators must fit in registers), capped for fp32 inputs, at least 16."""
    size = size * 64 // max(64, head_block(head_dim))
    return max(16, min(size, CONFIG.fp32_block) if dtype == torch.float32 else size)


def rows_per_block(head_dim: int) -> int:
    """Rows of a streaming [rows, head_dim] tile: about 4096 elements, 16 to 64 rows."""
    return max(16, min(64, 4096 // head_block(head_dim)))


def head_block(head_dim: int) -> int:
    """Head dims are padded to a power of two >= 16 inside the kernels (masked loads keep dots exact)."""
    return max(16, triton.next_power_of_2(head_dim))


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs run exact fp32 dots (Triton's GPU default, tf32, misses the 1e-4 fp32 tolerance),
    unless torch's fp32 matmuls may use tf32 (`torch.backends.cuda.matmul.allow_tf32 = True`, or
    `torch.set_float32_matmul_precision("high")`): then tf32 on tensor cores, as torch's own matmuls."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def split_chunk(length: int, heads: int, block: int) -> int:
    """Keys (or queries) per program of a split-N pass: a multiple of `block` giving about
    CONFIG.split_programs programs over all `heads` (b, h) pairs."""
    per_head = max(1, CONFIG.split_programs // max(1, heads))
    return block * max(1, triton.cdiv(triton.cdiv(length, per_head), block))
