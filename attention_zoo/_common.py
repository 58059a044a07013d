"""What every mechanism shares: input validation at the functional boundary, the working precision
(`at_least_fp32`, `no_autocast`, `selection_dtype`), valid-token counts, row gathering, landmark pooling.

Landmark pooling (agent attention's agents, MiTA's landmark queries): with L valid tokens in a row
and m = min(num_landmarks, L) landmarks, landmark j is the mean of the valid tokens whose rank among
the valid tokens lies in [floor(j L / m), ceil((j + 1) L / m)) -- PyTorch's adaptive-pool windows,
which overlap by one token when m does not divide L. Padding is removed, not zeroed, so a padded
row pools exactly like its valid subsequence alone.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def check_inputs(
    name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> None:
    """Validate shapes and the padding mask at the functional boundary; ValueError with the fix."""
    for label, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name}: {label} must have shape [B, H, N, d]; got {tuple(t.shape)}")
    if q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"{name}: q, k, v must have the same shape [B, H, N, d]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[2] == 0:
        raise ValueError(f"{name}: sequence length must be at least 1")
    if key_padding_mask is None:
        return
    batch, _, length, _ = q.shape
    if key_padding_mask.dtype != torch.bool:
        raise ValueError(
            f"{name}: key_padding_mask must be a bool tensor (True = real token); got {key_padding_mask.dtype}"
        )
    if tuple(key_padding_mask.shape) != (batch, length):
        raise ValueError(
            f"{name}: key_padding_mask must have shape [B, N] = {(batch, length)}; got {tuple(key_padding_mask.shape)}"
        )
    if torch.compiler.is_compiling() or (
        key_padding_mask.is_cuda and torch.cuda.is_current_stream_capturing()
    ):
        return  # the check below reads a device value on the host: impossible inside a graph
    empty = ~key_padding_mask.any(dim=1)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"{name}: key_padding_mask rows {rows[:8]} have no valid token; every sequence needs at least "
            "one real token (True)"
        )


def valid_lengths(
    key_padding_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
) -> torch.Tensor:
    """Number of valid tokens per row, int64 [B]."""
    if key_padding_mask is None:
        return torch.full((batch,), length, dtype=torch.long, device=device)
    return key_padding_mask.sum(dim=1)


def landmark_pool(
    x: torch.Tensor, num_landmarks: int, key_padding_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive average pooling of the valid tokens of x [B, H, N, d] into landmarks.

    Returns (landmarks [B, H, M, d], landmark_valid [B, M] bool) with M = min(num_landmarks, N).
    Row b has min(num_landmarks, L_b) valid landmarks; the others are zero and marked invalid.
    """
    batch, _, length, _ = x.shape
    slots = min(num_landmarks, length)
    device = x.device
    lengths = valid_lengths(key_padding_mask, batch, length, device)  # [B]
    counts = torch.clamp(lengths, max=num_landmarks)  # landmarks per row, m_b = min(m, L_b) >= 1
    j = torch.arange(slots, device=device)
    landmark_valid = j[None, :] < counts[:, None]  # [B, M]
    safe_counts = counts[:, None]
    start = torch.div(j[None, :] * lengths[:, None], safe_counts, rounding_mode="floor")
    end = torch.div((j[None, :] + 1) * lengths[:, None] + safe_counts - 1, safe_counts, rounding_mode="floor")
    if key_padding_mask is None:
        rank = torch.arange(length, device=device).expand(batch, length)
        valid = torch.ones(batch, length, dtype=torch.bool, device=device)
    else:
        rank = torch.cumsum(key_padding_mask.long(), dim=1) - 1
        valid = key_padding_mask
    inside = (
        (rank[:, None, :] >= start[:, :, None]) & (rank[:, None, :] < end[:, :, None]) & valid[:, None, :]
    )
    inside &= landmark_valid[:, :, None]
    weights = inside.to(x.dtype) / (end - start).clamp(min=1).to(x.dtype)[:, :, None]  # [B, M, N]
    return torch.matmul(weights[:, None], x), landmark_valid


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of x [B, H, N, d] at index [B, H, ...] (values in [0, N)) -> [B, H, ..., d].

    A flat `index_select` rather than `gather` on an expanded view: its backward is an `index_add`
    into [B*H*N, d] instead of a dense [B, H, ..., N, d] zero tensor.
    """
    batch, heads, length, dim = x.shape
    offsets = (torch.arange(batch * heads, device=x.device) * length).view(
        batch, heads, *([1] * (index.dim() - 2))
    )
    flat = (index + offsets).reshape(-1)
    return x.reshape(batch * heads * length, dim).index_select(0, flat).view(*index.shape, dim)


def selection_dtype(dtype: torch.dtype) -> torch.dtype:
    """Scores that only choose indices (top-k, argmax) are computed in at least fp32: ties multiply in bf16."""
    return torch.promote_types(dtype, torch.float32)


def at_least_fp32(x: torch.Tensor) -> torch.dtype:
    """The working dtype of a mechanism's logits, softmax statistics and feature sums: half-precision
    inputs are computed in fp32 (as fused attention kernels accumulate), fp32 and fp64 as they are."""
    return torch.promote_types(x.dtype, torch.float32)


def no_autocast(x: torch.Tensor) -> AbstractContextManager[None]:
    """Autocast off on x's device, so an fp32 step stays fp32 under bf16/fp16 autocast."""
    if x.device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return nullcontext()
