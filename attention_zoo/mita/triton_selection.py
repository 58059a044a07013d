"""MiTA Triton kernels, part 1: landmarks, landmark values, exact top-k experts and query routing.

Per (batch row b, head h) with L valid tokens, m = min(num_landmarks, L) landmarks and
kept = min(topk, N) keys per expert (see reference.py for the equations):

* `_pool_kernel`              R = adaptive average pool of the valid queries (fp32 sums).
* `_landmark_pass_kernel`     one split-N pass over K, V and Q: per chunk of keys the landmark
                              attention partials (online softmax of s R K^T over V), per-row maxima
                              of R K^T over groups of `group` consecutive keys, the routing argmax
                              of each query over the m valid landmarks and per-chunk expert counts.
* `_landmark_merge_kernel`    log-sum-exp merge of the partials: Lv and its per-landmark LSE.
* `_rescore_kernel`           exact scores of the candidate keys (every key of the selected groups).
* `_route_sort_kernel`        stable counting sort of the queries by expert (no host sync).
* `_pool_backward_kernel`     dQ += dR / |window| for each window holding the query.

The top-k is exact without an m x N score matrix: the k largest group maxima are k distinct key
scores, so every key at least as large as the k-th largest score lies in one of those k groups
(ties aside, which are order-free); `torch.topk` runs on the N/group maxima, the candidates are
rescored exactly and `torch.topk` picks the final k. Padded keys score -FLT_MAX (picked only when
k exceeds the valid length, as in the reference) and positions past N score -inf (never picked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import triton_common as common

_NEG = tl.constexpr(common.NEG)
_FLT_MAX = tl.constexpr(common.FLT_MAX)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


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
    length = tl.load(len_ptr + b).to(tl.int64)
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
def _landmark_pass_kernel(
    q_ptr, k_ptr, v_ptr, r_ptr, mask_ptr, len_ptr,
    acc_ptr, max_ptr, sum_ptr, gmax_ptr, expert_ptr, hist_ptr,
    N, H, M, num_groups, num_landmarks, head_dim, chunk, num_chunks, lm_scale,
    HAS_MASK: tl.constexpr, WANT_VALUES: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_LM: tl.constexpr,
    NUM_LM_CHUNKS: tl.constexpr, GROUP: tl.constexpr, M_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    c = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b = bh // H
    length = tl.load(len_ptr + b)
    m_b = tl.minimum(length, num_landmarks)
    n_lo = c * chunk
    n_hi = tl.minimum(n_lo + chunk, N)
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    GROUPS_PER_BLOCK: tl.constexpr = BLOCK_N // GROUP

    # Landmark scores R K^T: group maxima for the top-k, online softmax partials for Lv.
    for lc in range(NUM_LM_CHUNKS):
        lm = lc * BLOCK_LM + tl.arange(0, BLOCK_LM)
        lm_ok = lm < M
        r = tl.load(r_ptr + (bh * M + lm)[:, None] * head_dim + cols[None, :],
                    mask=lm_ok[:, None] & d_ok[None, :], other=0.0)  # fmt: skip
        m_i = tl.full([BLOCK_LM], _NEG, tl.float32)
        l_i = tl.zeros([BLOCK_LM], tl.float32)
        acc = tl.zeros([BLOCK_LM, HEAD_DIM], tl.float32)
        for n0 in range(n_lo, n_hi, BLOCK_N):
            keys = n0 + tl.arange(0, BLOCK_N)
            in_range = keys < N
            key_ok = in_range
            if HAS_MASK:
                key_ok = key_ok & (tl.load(mask_ptr + b * N + keys, mask=in_range, other=0) != 0)
            kv_off = (bh * N + keys)[:, None] * head_dim + cols[None, :]
            kv_mask = in_range[:, None] & d_ok[None, :]
            kt = tl.load(k_ptr + kv_off, mask=kv_mask, other=0.0)
            s = tl.dot(r, tl.trans(kt), input_precision=PRECISION)  # [BLOCK_LM, BLOCK_N], unscaled
            ranked = tl.where(key_ok[None, :], s, -_FLT_MAX)
            ranked = tl.where(in_range[None, :], ranked, float("-inf"))
            gmax = tl.max(tl.reshape(ranked, [BLOCK_LM, GROUPS_PER_BLOCK, GROUP]), axis=2)
            gcols = n0 // GROUP + tl.arange(0, GROUPS_PER_BLOCK)
            tl.store(gmax_ptr + (bh * M + lm)[:, None] * num_groups + gcols[None, :], gmax,
                     mask=lm_ok[:, None] & (gcols < num_groups)[None, :])  # fmt: skip
            if WANT_VALUES:
                vt = tl.load(v_ptr + kv_off, mask=kv_mask, other=0.0)
                logits = tl.where(key_ok[None, :], s * lm_scale, _NEG)
                m_new = tl.maximum(m_i, tl.max(logits, axis=1))
                alpha = tl.exp2(m_i - m_new)
                p = tl.exp2(logits - m_new[:, None])
                l_i = l_i * alpha + tl.sum(p, axis=1)
                acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision=PRECISION)
                m_i = m_new
        if WANT_VALUES:
            part = (bh * num_chunks + c) * M + lm
            tl.store(acc_ptr + part[:, None] * head_dim + cols[None, :], acc,
                     mask=lm_ok[:, None] & d_ok[None, :])  # fmt: skip
            tl.store(max_ptr + part, m_i, mask=lm_ok)
            tl.store(sum_ptr + part, l_i, mask=lm_ok)

    # Routing: each query goes to the first valid landmark of largest (unscaled) score.
    bins = tl.arange(0, M_PAD)
    counts = tl.zeros([M_PAD], tl.int32)
    if NUM_LM_CHUNKS == 1:
        lm = tl.arange(0, BLOCK_LM)
        r_all = tl.load(r_ptr + (bh * M + lm)[:, None] * head_dim + cols[None, :],
                        mask=(lm < M)[:, None] & d_ok[None, :], other=0.0)  # fmt: skip
    for n0 in range(n_lo, n_hi, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        in_range = rows < N
        qt = tl.load(q_ptr + (bh * N + rows)[:, None] * head_dim + cols[None, :],
                     mask=in_range[:, None] & d_ok[None, :], other=0.0)  # fmt: skip
        best = tl.full([BLOCK_N], float("-inf"), tl.float32)
        best_idx = tl.zeros([BLOCK_N], tl.int32)
        for lc in range(NUM_LM_CHUNKS):
            lm = lc * BLOCK_LM + tl.arange(0, BLOCK_LM)
            if NUM_LM_CHUNKS == 1:
                r = r_all  # loaded once per program
            else:
                r = tl.load(r_ptr + (bh * M + lm)[:, None] * head_dim + cols[None, :],
                            mask=(lm < M)[:, None] & d_ok[None, :], other=0.0)  # fmt: skip
            g = tl.dot(qt, tl.trans(r), input_precision=PRECISION)  # [BLOCK_N, BLOCK_LM]
            g = tl.where((lm < m_b)[None, :], g, float("-inf"))
            chunk_best = tl.max(g, axis=1)
            chunk_idx = tl.argmax(g, axis=1, tie_break_left=True).to(tl.int32) + lc * BLOCK_LM
            better = chunk_best > best
            best = tl.where(better, chunk_best, best)
            best_idx = tl.where(better, chunk_idx, best_idx)
        tl.store(expert_ptr + bh * N + rows, best_idx, mask=in_range)
        hit = (best_idx[:, None] == bins[None, :]) & in_range[:, None]
        counts += tl.sum(hit.to(tl.int32), axis=0)
    tl.store(hist_ptr + (bh * num_chunks + c) * M + bins, counts, mask=bins < M)


@triton.jit
def _landmark_merge_kernel(
    acc_ptr, max_ptr, sum_ptr, lv_ptr, lse_ptr,
    M, head_dim, num_chunks,
    BLOCK_C: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    # One program per (bh, landmark), reading BLOCK_C chunk partials per step: a serial walk over the
    # chunks would be one dependent load per chunk (latency-bound, about 0.1 ms at 128 chunks).
    pid = tl.program_id(0).to(tl.int64)
    bh = pid // M
    lm = pid % M
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    m_run = tl.full([BLOCK_C], _NEG, tl.float32)
    for c0 in range(0, num_chunks, BLOCK_C):
        cc = c0 + tl.arange(0, BLOCK_C)
        m_run = tl.maximum(m_run, tl.load(max_ptr + (bh * num_chunks + cc) * M + lm, mask=cc < num_chunks,
                                          other=_NEG))  # fmt: skip
    m_all = tl.max(m_run, axis=0)
    l_run = tl.zeros([BLOCK_C], tl.float32)
    acc = tl.zeros([HEAD_DIM], tl.float32)
    for c0 in range(0, num_chunks, BLOCK_C):
        cc = c0 + tl.arange(0, BLOCK_C)
        c_ok = cc < num_chunks
        part = (bh * num_chunks + cc) * M + lm
        # Chunks whose keys were all padding carry max _NEG: weight exp2(_NEG - m_all) = 0.
        weight = tl.exp2(tl.load(max_ptr + part, mask=c_ok, other=_NEG) - m_all)
        weight = tl.where(c_ok, weight, 0.0)
        l_run += tl.load(sum_ptr + part, mask=c_ok, other=0.0) * weight
        a_c = tl.load(acc_ptr + part[:, None] * head_dim + cols[None, :], mask=c_ok[:, None] & d_ok[None, :],
                      other=0.0)  # fmt: skip
        acc += tl.sum(a_c * weight[:, None], axis=0)
    l_all = tl.sum(l_run, axis=0)
    l_safe = tl.where(l_all > 0, l_all, 1.0)
    tl.store(lv_ptr + pid * head_dim + cols, (acc / l_safe).to(lv_ptr.dtype.element_ty), mask=d_ok)
    tl.store(lse_ptr + pid, m_all + tl.log2(l_safe))


@triton.jit
def _rescore_kernel(
    k_ptr, r_ptr, mask_ptr, groups_ptr, score_ptr, key_ptr,
    N, H, M, head_dim, num_sel_groups,
    HAS_MASK: tl.constexpr, ALL_GROUPS: tl.constexpr, GROUP: tl.constexpr, BLOCK_C: tl.constexpr,
    HEAD_DIM: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    bh = pid // M
    b = bh // H
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    r = tl.load(r_ptr + pid * head_dim + cols, mask=d_ok, other=0.0).to(tl.float32)
    num_cand = num_sel_groups * GROUP
    for c0 in range(0, num_cand, BLOCK_C):
        cand = c0 + tl.arange(0, BLOCK_C)
        cand_ok = cand < num_cand
        if ALL_GROUPS:
            group = cand // GROUP
        else:
            group = tl.load(groups_ptr + pid * num_sel_groups + cand // GROUP, mask=cand_ok, other=0)
        key = group.to(tl.int64) * GROUP + cand % GROUP
        in_range = cand_ok & (key < N)
        kt = tl.load(k_ptr + (bh * N + key)[:, None] * head_dim + cols[None, :],
                     mask=in_range[:, None] & d_ok[None, :], other=0.0)  # fmt: skip
        s = tl.sum(kt.to(tl.float32) * r[None, :], axis=1)
        key_ok = in_range
        if HAS_MASK:
            key_ok = key_ok & (tl.load(mask_ptr + b * N + key, mask=in_range, other=0) != 0)
        s = tl.where(key_ok, s, -_FLT_MAX)
        s = tl.where(in_range, s, float("-inf"))
        tl.store(score_ptr + pid * num_cand + cand, s, mask=cand_ok)
        tl.store(key_ptr + pid * num_cand + cand, tl.where(in_range, key, 0).to(tl.int32), mask=cand_ok)


@triton.jit
def _route_sort_kernel(
    expert_ptr, hist_ptr, perm_ptr, offs_ptr,
    N, M, chunk, num_chunks,
    BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, M_PAD: tl.constexpr,
):  # fmt: skip
    c = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    bins = tl.arange(0, M_PAD)  # M_PAD > M: bin M holds the end of the last expert
    # Expert totals and this chunk's counts before it, from the per-chunk histograms.
    total = tl.zeros([M_PAD], tl.int32)
    before = tl.zeros([M_PAD], tl.int32)
    for c0 in range(0, num_chunks, BLOCK_C):
        cc = c0 + tl.arange(0, BLOCK_C)
        h = tl.load(hist_ptr + (bh * num_chunks + cc)[:, None] * M + bins[None, :],
                    mask=(cc < num_chunks)[:, None] & (bins < M)[None, :], other=0)  # fmt: skip
        total += tl.sum(h, axis=0)
        before += tl.sum(tl.where((cc < c)[:, None], h, 0), axis=0)
    start = tl.cumsum(total, axis=0) - total  # first sorted position of each expert
    tl.store(offs_ptr + bh * (M + 1) + bins, start, mask=(bins <= M) & (c == 0))
    next_pos = start + before
    lane = tl.arange(0, BLOCK_N)
    earlier = lane[None, :] < lane[:, None]
    n_lo = c * chunk
    n_hi = tl.minimum(n_lo + chunk, N)
    for n0 in range(n_lo, n_hi, BLOCK_N):
        rows = n0 + lane
        in_range = rows < N
        e = tl.load(expert_ptr + bh * N + rows, mask=in_range, other=-1)
        hit = e[:, None] == bins[None, :]  # [BLOCK_N, M_PAD]
        first = tl.sum(tl.where(hit, next_pos[None, :], 0), axis=1)
        rank = tl.sum(((e[:, None] == e[None, :]) & earlier).to(tl.int32), axis=1)
        tl.store(perm_ptr + bh * N + first + rank, rows.to(tl.int32), mask=in_range)
        next_pos += tl.sum(hit.to(tl.int32), axis=0)


@triton.jit
def _pool_backward_kernel(
    dr_ptr, order_ptr, len_ptr, dq_ptr,
    N, H, M, num_landmarks, head_dim,
    HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
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
    grad = tl.load(dr_ptr + (bh * M + j) * head_dim + cols, mask=d_ok, other=0.0) / (end - start).to(
        tl.float32
    )
    prev_j = tl.maximum(j - 1, 0)
    grad_prev = tl.load(dr_ptr + (bh * M + prev_j) * head_dim + cols, mask=d_ok & shared_first, other=0.0)
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


@dataclass
class Selection:
    """Everything the fused attention kernels need besides q, k, v (all per flattened (b, h))."""

    landmarks: torch.Tensor  # R [BH, M, d], input dtype
    landmark_values: torch.Tensor | None  # Lv [BH, M, d], input dtype (None for route-only)
    landmark_lse: torch.Tensor | None  # [BH, M] fp32, log2 domain
    expert_keys: torch.Tensor  # [BH, M, kept] int32 key positions of each landmark's expert
    perm: torch.Tensor  # [BH, N] int32 query positions sorted by expert (stable)
    offsets: torch.Tensor  # [BH, M + 1] int32 start of each expert's queries in `perm`
    lengths: torch.Tensor  # [B] int32 valid tokens per row
    order: torch.Tensor | None  # [B, N] int32 valid positions first (None without a mask)
    mask: torch.Tensor | None  # [B, N] uint8 key padding mask (None without a mask)
    num_landmarks: int
    kept: int


def padding_layout(
    key_padding_mask: torch.Tensor | None, batch: int, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(lengths [B] int32, order [B, N] int32 with the valid positions first in order, mask as uint8)."""
    if key_padding_mask is None:
        return torch.full((batch,), length, dtype=torch.int32, device=device), None, None
    valid = key_padding_mask.to(device=device, dtype=torch.bool)
    count = valid.long().cumsum(1)  # inclusive count of valid tokens
    lengths = count[:, -1:]
    positions = torch.arange(length, device=device).expand(batch, length)
    # Valid token -> its rank; padding -> after all valid tokens, in position order (a permutation).
    dest = torch.where(valid, count - 1, lengths + positions - count)
    order = torch.empty(batch, length, dtype=torch.int32, device=device)
    order.scatter_(1, dest, positions.to(torch.int32))
    return lengths.view(batch).to(torch.int32), order, valid.to(torch.uint8).contiguous()


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
    dr: torch.Tensor,
    lengths: torch.Tensor,
    order: torch.Tensor | None,
    num_landmarks: int,
    heads: int,
) -> None:
    """dq [BH, N, d] += the pooling gradient of dR [BH, M, d] (fp32), in place."""
    bh, n, d = dq.shape
    _pool_backward_kernel[(bh * dr.shape[1],)](
        dr, order if order is not None else lengths, lengths, dq,
        n, heads, dr.shape[1], num_landmarks, d,
        HAS_MASK=order is not None, BLOCK_N=common.rows_per_block(d), HEAD_DIM=common.head_block(d),
        num_warps=common.CONFIG.num_warps,
    )  # fmt: skip


def histogram_of(expert: torch.Tensor, num_experts: int, chunk: int, num_chunks: int) -> torch.Tensor:
    """Per-chunk counts [BH, C, M] of given expert ids [BH, N] (used when the routing is supplied)."""
    bh, n = expert.shape
    chunk_id = (torch.arange(n, device=expert.device) // chunk).expand(bh, n)
    flat = (chunk_id * num_experts + expert.long()).reshape(bh, n)
    hist = torch.zeros(bh, num_chunks * num_experts, dtype=torch.int32, device=expert.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.int32))
    return hist.view(bh, num_chunks, num_experts)


def select(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    num_landmarks: int,
    topk: int,
    heads: int,
    *,
    want_values: bool,
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Selection:
    """Landmarks, landmark values, experts and the expert-sorted query order for q, k, v [BH, N, d].

    `fixed = (expert_keys [BH, M, kept], routing [BH, N])` replaces the selection (top-k and argmax)
    by given indices: 16-bit results are checked against the reference with the indices held fixed,
    because near-ties flip them legitimately.
    """
    cfg = common.CONFIG
    bh, n, d = q.shape
    batch = bh // heads
    device = q.device
    lengths, order, mask = padding_layout(key_padding_mask, batch, n, device)
    landmarks = landmark_pool(q, lengths, order, num_landmarks, heads)
    m = landmarks.shape[1]
    kept = min(topk, n)

    block_n = common.tile(cfg.block_n, d, q.dtype)
    group = min(cfg.group, block_n)
    block_lm = common.pow2_block(m, common.tile(cfg.block_lm, d, q.dtype))
    num_lm_chunks = triton.cdiv(m, block_lm)
    chunk = common.split_chunk(n, bh, block_n)
    num_chunks = triton.cdiv(n, chunk)
    num_groups = triton.cdiv(n, group)
    head_dim = common.head_block(d)
    f32 = torch.float32

    if want_values:
        part_acc = common.new_buffer((bh, num_chunks, m, d), f32, device)
        part_max = common.new_buffer((bh, num_chunks, m), f32, device)
        part_sum = common.new_buffer((bh, num_chunks, m), f32, device)
    else:
        part_acc = part_max = part_sum = landmarks  # never touched
    gmax = common.new_buffer((bh, m, num_groups), f32, device)
    expert = common.new_buffer((bh, n), torch.int32, device)
    hist = common.new_buffer((bh, num_chunks, m), torch.int32, device)
    _landmark_pass_kernel[(num_chunks, bh)](
        q, k, v, landmarks, mask if mask is not None else lengths, lengths,
        part_acc, part_max, part_sum, gmax, expert, hist,
        n, heads, m, num_groups, num_landmarks, d, chunk, num_chunks, common.LOG2E / d**0.5,
        HAS_MASK=mask is not None, WANT_VALUES=want_values, BLOCK_N=block_n, BLOCK_LM=block_lm,
        NUM_LM_CHUNKS=num_lm_chunks, GROUP=group, M_PAD=triton.next_power_of_2(m), HEAD_DIM=head_dim,
        PRECISION=common.dot_precision(q.dtype), num_warps=common.warps(cfg.num_warps_pass, d, q.dtype),
        num_stages=cfg.num_stages,
    )  # fmt: skip

    landmark_values = landmark_lse = None
    if want_values:
        landmark_values = common.new_buffer((bh, m, d), q.dtype, device)
        landmark_lse = common.new_buffer((bh, m), f32, device)
        _landmark_merge_kernel[(bh * m,)](
            part_acc, part_max, part_sum, landmark_values, landmark_lse, m, d, num_chunks,
            BLOCK_C=common.pow2_block(num_chunks, 64), HEAD_DIM=head_dim, num_warps=cfg.num_warps,
        )  # fmt: skip
        del part_acc, part_max, part_sum

    if fixed is None:
        expert_keys = _top_keys(k, landmarks, mask, gmax, kept, group, heads)
    else:
        expert_keys = fixed[0].reshape(bh, m, kept).to(device=device, dtype=torch.int32).contiguous()
        expert = fixed[1].reshape(bh, n).to(device=device, dtype=torch.int32).contiguous()
        hist = histogram_of(expert, m, chunk, num_chunks)
    del gmax

    perm = common.new_buffer((bh, n), torch.int32, device)
    offsets = common.new_buffer((bh, m + 1), torch.int32, device)
    _route_sort_kernel[(num_chunks, bh)](
        expert, hist, perm, offsets, n, m, chunk, num_chunks,
        BLOCK_N=block_n, BLOCK_C=common.pow2_block(num_chunks, 64),
        M_PAD=triton.next_power_of_2(m + 1), num_warps=cfg.num_warps,
    )  # fmt: skip
    return Selection(
        landmarks=landmarks,
        landmark_values=landmark_values,
        landmark_lse=landmark_lse,
        expert_keys=expert_keys,
        perm=perm,
        offsets=offsets,
        lengths=lengths,
        order=order,
        mask=mask,
        num_landmarks=num_landmarks,
        kept=kept,
    )


def _top_keys(
    k: torch.Tensor,
    landmarks: torch.Tensor,
    mask: torch.Tensor | None,
    gmax: torch.Tensor,
    kept: int,
    group: int,
    heads: int,
) -> torch.Tensor:
    """Exact top-`kept` keys per landmark [BH, M, kept] int32 from the group maxima (two stages)."""
    bh, n, d = k.shape
    m, num_groups = gmax.shape[1], gmax.shape[2]
    all_groups = num_groups <= kept
    if all_groups:
        num_sel, groups = num_groups, gmax  # every group is a candidate; `groups` is not read
    else:
        num_sel = kept
        groups = gmax.topk(kept, dim=-1, sorted=False).indices  # int64, read as is
    num_cand = num_sel * group
    scores = common.new_buffer((bh, m, num_cand), torch.float32, k.device)
    keys = common.new_buffer((bh, m, num_cand), torch.int32, k.device)
    _rescore_kernel[(bh * m,)](
        k, landmarks, mask if mask is not None else groups, groups, scores, keys,
        n, heads, m, d, num_sel,
        HAS_MASK=mask is not None, ALL_GROUPS=all_groups, GROUP=group,
        BLOCK_C=common.pow2_block(num_cand, common.rows_per_block(d)), HEAD_DIM=common.head_block(d),
        num_warps=common.CONFIG.num_warps,
    )  # fmt: skip
    top = scores.topk(kept, dim=-1, sorted=False).indices
    return keys.gather(-1, top).contiguous()
