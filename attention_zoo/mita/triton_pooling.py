"""MiTA Triton kernels, part 1: the padding layout, the landmarks R (adaptive average pooling of the
valid queries) and the pooling's backward.

Per batch row b with L valid tokens and m = min(num_landmarks, L) landmarks, landmark j is the mean of
the valid queries whose rank lies in [floor(j L / m), ceil((j + 1) L / m)) (`reference.py`,
`_common.landmark_pool`):

* `_padding_layout_kernel`    (masked inputs) valid counts, the uint8 mask, valid positions first.
* `_pool_kernel`              R = adaptive average pool of the valid queries (fp32 sums).
* `_pool_backward_kernel`     dQ += dR / |window| for each window holding the query.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import triton_common as common


@triton.jit
def _padding_layout_kernel(kpm_ptr, len_ptr, order_ptr, mask_ptr, N, BLOCK: tl.constexpr):
    # One program per batch row: the valid count, the uint8 mask the other kernels read, and the
    # permutation `order` with the valid positions first (rank = number of valid positions before),
    # then the padded ones in position order.
    b = tl.program_id(0).to(tl.int64)
    lane = tl.arange(0, BLOCK)
    total = tl.zeros([], tl.int32)
    for n0 in range(0, N, BLOCK):
        pos = n0 + lane
        ok = pos < N
        valid = (tl.load(kpm_ptr + b * N + pos, mask=ok, other=0) != 0) & ok
        tl.store(mask_ptr + b * N + pos, valid.to(tl.uint8), mask=ok)
        total += tl.sum(valid.to(tl.int32), axis=0)
    tl.store(len_ptr + b, total)
    seen = tl.zeros([], tl.int32)  # valid positions before this block
    for n0 in range(0, N, BLOCK):
        pos = n0 + lane
        ok = pos < N
        valid = (tl.load(kpm_ptr + b * N + pos, mask=ok, other=0) != 0) & ok
        before = seen + tl.cumsum(valid.to(tl.int32), axis=0) - valid.to(tl.int32)
        dest = tl.where(valid, before, total + pos - before)
        tl.store(order_ptr + b * N + dest, pos.to(tl.int32), mask=ok)
        seen += tl.sum(valid.to(tl.int32), axis=0)


@triton.jit
def _pool_kernel(
    q_ptr, order_ptr, len_ptr, r_ptr,
    N, H, M, num_landmarks, head_dim,
    HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    bh = pid // M
    j = pid % M
    b = bh // H
    if HAS_MASK:
        length = tl.load(len_ptr + b).to(tl.int64)
    else:  # every token is valid: this kernel fills the lengths the later kernels read
        length = N + tl.zeros([], tl.int64)
        tl.store(len_ptr + b, length.to(tl.int32), mask=(j == 0) & (bh % H == 0))
    m_b = tl.minimum(length, num_landmarks)
    valid = j < m_b
    start = tl.where(valid, j * length // m_b, 0)
    end = tl.where(valid, ((j + 1) * length + m_b - 1) // m_b, 0)
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    acc = tl.zeros([HEAD_DIM], tl.float32)
    for r0 in range(start, end, BLOCK_N):
        rank = r0 + tl.arange(0, BLOCK_N)
        inside = rank < end
        if HAS_MASK:
            pos = tl.load(order_ptr + b * N + rank, mask=inside, other=0).to(tl.int64)
        else:
            pos = rank
        x = tl.load(q_ptr + (bh * N + pos)[:, None] * head_dim + cols[None, :],
                    mask=inside[:, None] & d_ok[None, :], other=0.0)  # fmt: skip
        acc += tl.sum(x.to(tl.float32), axis=0)
    r = acc / tl.maximum(end - start, 1).to(tl.float32)
    tl.store(r_ptr + (bh * M + j) * head_dim + cols, r.to(r_ptr.dtype.element_ty), mask=d_ok)


@triton.jit
def _sum_parts(parts_ptr, bh, j, M, num_parts, head_dim, BLOCK_P: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Row j of the per-program partials [BH, num_parts, M, head_dim] summed over the parts (fixed order)."""
    cols = tl.arange(0, HEAD_DIM)
    acc = tl.zeros([HEAD_DIM], tl.float32)
    for p0 in range(0, num_parts, BLOCK_P):
        parts = p0 + tl.arange(0, BLOCK_P)
        off = ((bh * num_parts + parts) * M + j)[:, None] * head_dim + cols[None, :]
        acc += tl.sum(tl.load(parts_ptr + off, mask=(parts < num_parts)[:, None] & (cols < head_dim)[None, :],
                              other=0.0), axis=0)  # fmt: skip
    return acc


@triton.jit
def _pool_backward_kernel(
    dr_ptr, order_ptr, len_ptr, dq_ptr,
    N, H, M, num_landmarks, head_dim, num_parts,
    HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_P: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    # Program j owns the ranks [start_j, start_{j+1}): all lie in window j, and only the first can
    # also lie in window j - 1 (adaptive windows overlap by at most one token). One writer per row.
    pid = tl.program_id(0).to(tl.int64)
    bh = pid // M
    j = pid % M
    b = bh // H
    length = tl.load(len_ptr + b).to(tl.int64)
    m_b = tl.minimum(length, num_landmarks)
    start = j * length // m_b
    own_end = tl.where(j + 1 < m_b, (j + 1) * length // m_b, length)
    own_end = tl.where(j < m_b, own_end, start)  # landmarks past m_b pool nothing
    end = ((j + 1) * length + m_b - 1) // m_b
    prev_start = (j - 1) * length // m_b
    prev_end = (j * length + m_b - 1) // m_b  # end of window j - 1
    shared_first = (j > 0) & (prev_end > start)
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    grad = _sum_parts(dr_ptr, bh, j, M, num_parts, head_dim, BLOCK_P, HEAD_DIM) / (end - start).to(tl.float32)
    prev_j = tl.maximum(j - 1, 0)
    grad_prev = _sum_parts(
        dr_ptr, bh, prev_j, M, tl.where(shared_first, num_parts, 0), head_dim, BLOCK_P, HEAD_DIM
    )
    grad_prev = grad_prev / tl.maximum(prev_end - prev_start, 1).to(tl.float32)
    for r0 in range(start, own_end, BLOCK_N):
        rank = r0 + tl.arange(0, BLOCK_N)
        inside = rank < own_end
        if HAS_MASK:
            pos = tl.load(order_ptr + b * N + rank, mask=inside, other=0).to(tl.int64)
        else:
            pos = rank
        add = grad[None, :] + tl.where((rank == start)[:, None], grad_prev[None, :], 0.0)
        ptrs = dq_ptr + (bh * N + pos)[:, None] * head_dim + cols[None, :]
        io_mask = inside[:, None] & d_ok[None, :]
        dq = tl.load(ptrs, mask=io_mask, other=0.0).to(tl.float32)
        tl.store(ptrs, (dq + add).to(dq_ptr.dtype.element_ty), mask=io_mask)


# ---------------------------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------------------------


_LAYOUT_KERNEL_MAX = 65536  # longest rows whose padding layout is one Triton launch


def padding_layout(
    key_padding_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(lengths [B] int32, order [B, N] int32 with the valid positions first in order, mask as uint8)."""
    if key_padding_mask is None:  # filled by the pooling kernel (no launch of its own)
        return common.new_buffer((batch,), torch.int32, device), None, None
    valid = key_padding_mask.to(device=device, dtype=torch.bool).contiguous()
    if length > _LAYOUT_KERNEL_MAX:  # one program per row walks it serially: parallel torch ops instead
        count = valid.long().cumsum(1)  # inclusive count of valid tokens
        lengths = count[:, -1:]
        positions = torch.arange(length, device=device).expand(batch, length)
        # Valid token -> its rank; padding -> after all valid tokens, in position order (a permutation).
        dest = torch.where(valid, count - 1, lengths + positions - count)
        order = torch.empty(batch, length, dtype=torch.int32, device=device)
        order.scatter_(1, dest, positions.to(torch.int32))
        return lengths.view(batch).to(torch.int32), order, valid.to(torch.uint8)
    lengths = common.new_buffer((batch,), torch.int32, device)
    order = common.new_buffer((batch, length), torch.int32, device)
    mask = common.new_buffer((batch, length), torch.uint8, device)
    _padding_layout_kernel[(batch,)](
        valid, lengths, order, mask, length,
        BLOCK=common.pow2_block(length, 1024), num_warps=common.CONFIG.num_warps,
    )  # fmt: skip
    return lengths, order, mask


def landmark_pool(
    q: torch.Tensor, lengths: torch.Tensor, order: torch.Tensor | None, num_landmarks: int, heads: int
) -> torch.Tensor:
    """R [BH, M, d] from q [BH, N, d]: means of the valid queries over adaptive windows."""
    bh, n, d = q.shape
    m = min(num_landmarks, n)
    out = common.new_buffer((bh, m, d), q.dtype, q.device)
    _pool_kernel[(bh * m,)](
        q, order if order is not None else lengths, lengths, out,
        n, heads, m, num_landmarks, d,
        HAS_MASK=order is not None, BLOCK_N=common.rows_per_block(d), HEAD_DIM=common.head_block(d),
        num_warps=common.CONFIG.num_warps,
    )  # fmt: skip
    return out


def pool_backward(
    dq: torch.Tensor,
    dr_parts: torch.Tensor,
    lengths: torch.Tensor,
    order: torch.Tensor | None,
    num_landmarks: int,
    heads: int,
) -> None:
    """dq [BH, N, d] += the pooling gradient of dR, given as its partials dr_parts [BH, parts, M, d] (fp32) that
    the kernel sums, in place."""
    bh, n, d = dq.shape
    num_parts, m = dr_parts.shape[1], dr_parts.shape[2]
    _pool_backward_kernel[(bh * m,)](
        dr_parts, order if order is not None else lengths, lengths, dq,
        n, heads, m, num_landmarks, d, num_parts,
        HAS_MASK=order is not None, BLOCK_N=common.rows_per_block(d),
        BLOCK_P=common.pow2_block(num_parts, max(16, 4096 // common.head_block(d))), HEAD_DIM=common.head_block(d),
        num_warps=common.CONFIG.num_warps,
    )  # fmt: skip
