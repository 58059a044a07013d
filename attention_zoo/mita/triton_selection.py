"""MiTA Triton kernels, part 2: landmark values, exact top-k experts and query routing.

Per (batch row b, head h) with L valid tokens, m = min(num_landmarks, L) landmarks and
kept = min(topk, N) keys per expert (see reference.py for the equations), after the padding layout
and the landmarks R of `triton_pooling.py`:

* `_landmark_pass_kernel`     one split-N pass over K, V and Q: per chunk of keys the landmark
                              attention partials (online softmax of s R K^T over V), per-row maxima
                              of R K^T over groups of `group` consecutive keys (the scores
                              themselves when group = 1), the routing argmax of each query over the
                              m valid landmarks and per-chunk expert counts.
* `_select_kernel`            per landmark: the log-sum-exp merge of the partials (Lv and its LSE)
                              and the exact top-k keys (below).
* `_route_sort_kernel`        stable counting sort of the queries by expert (no host sync).

The top-k is exact without an m x N score matrix at long N: the k largest group maxima are k
distinct key scores, so every key at least as large as the k-th largest score lies in one of those
k groups (ties aside, which are order-free); the selection kernel keeps the k best groups, rescores
their keys exactly and keeps the k best keys. Up to `CONFIG.select_row` keys the group is 1 and one
stage suffices. Each stage finds the k-th largest value by bisection on the int32 images of the
fp32 scores (no sort) and compacts the winners with a prefix sum; rows of maxima longer than
`select_row` take their first stage from `torch.topk`. Padded keys score -FLT_MAX (picked only when
k exceeds the valid length, as in the reference) and positions past N score -inf (never picked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import triton_common as common
from .triton_pooling import landmark_pool, padding_layout

_NEG = tl.constexpr(common.NEG)
_FLT_MAX = tl.constexpr(common.FLT_MAX)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


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
            if GROUP == 1:  # short rows: the scores themselves, for a one-stage top-k
                gmax = ranked
            else:
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
def _merge_values(
    acc_ptr, max_ptr, sum_ptr, lv_ptr, lse_ptr, pid, bh, lm, M, head_dim, num_chunks,
    BLOCK_C: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    """Lv row and LSE of landmark lm from the chunk partials, BLOCK_C partials per step (a serial
    walk over the chunks would be one dependent load per chunk: latency-bound)."""
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
def _ordered(x):
    """fp32 -> int32 with the same order (negative floats: flip the magnitude bits)."""
    bits = x.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def _kth_largest(row_ptr, length, kept, ROW: tl.constexpr, ONE_BLOCK: tl.constexpr):
    """(tau, count of entries > tau): tau the kept-th largest of row_ptr[0:length] (fp32, kept <=
    length) as its `_ordered` image. Bisection over the 2^32 int32 images: 32 counting passes, over
    one register-resident block when ONE_BLOCK (length <= ROW), else streamed in blocks of ROW."""
    offs = tl.arange(0, ROW)
    if ONE_BLOCK:
        keys = _ordered(tl.load(row_ptr + offs, mask=offs < length, other=0.0))
    lo = tl.zeros([], tl.int64) - 2147483648  # count(x >= lo) >= kept throughout
    hi = tl.zeros([], tl.int64) + 2147483647
    above_hi = tl.zeros([], tl.int32)  # count(x > hi)
    for _ in range(32):
        mid = (lo + hi + 1) >> 1
        mid32 = mid.to(tl.int32)
        if ONE_BLOCK:
            count = tl.sum(((offs < length) & (keys >= mid32)).to(tl.int32), axis=0)
        else:
            count = tl.zeros([], tl.int32)
            for r0 in range(0, length, ROW):
                ok = r0 + offs < length
                block = _ordered(tl.load(row_ptr + r0 + offs, mask=ok, other=0.0))
                count += tl.sum((ok & (block >= mid32)).to(tl.int32), axis=0)
        enough = count >= kept
        lo = tl.where(enough, mid, lo)
        above_hi = tl.where(enough, above_hi, count)
        hi = tl.where(enough, hi, mid - 1)
    return lo.to(tl.int32), above_hi


@triton.jit
def _compact_top(
    row_ptr, length, kept, tau, above, out_ptr, groups_ptr,
    ROW: tl.constexpr, GROUP: tl.constexpr, FROM_GROUPS: tl.constexpr,
):  # fmt: skip
    """Write the ids of the kept largest entries of row_ptr[0:length] to out_ptr[0:kept] (in row
    order): every entry > tau, then the first (kept - above) entries equal to tau. The id of entry c
    is c, or, FROM_GROUPS, the key c % GROUP of the group groups_ptr[c // GROUP]."""
    offs = tl.arange(0, ROW)
    ties_left = kept - above
    base = tl.zeros([], tl.int32)
    for r0 in range(0, length, ROW):
        c = r0 + offs
        ok = c < length
        keys = _ordered(tl.load(row_ptr + c, mask=ok, other=0.0))
        tie = ok & (keys == tau)
        tie_rank = tl.cumsum(tie.to(tl.int32), axis=0)  # 1-based among this block's ties
        chosen = (ok & (keys > tau)) | (tie & (tie_rank <= ties_left))
        slot = base + tl.cumsum(chosen.to(tl.int32), axis=0) - 1
        if FROM_GROUPS:
            ident = tl.load(groups_ptr + c // GROUP, mask=ok, other=0) * GROUP + c % GROUP
        else:
            ident = c
        tl.store(out_ptr + slot, ident.to(tl.int32), mask=chosen)
        base += tl.sum(chosen.to(tl.int32), axis=0)
        ties_left -= tl.sum(tie.to(tl.int32), axis=0)


@triton.jit
def _select_kernel(
    acc_ptr, max_ptr, sum_ptr, lv_ptr, lse_ptr,
    k_ptr, r_ptr, mask_ptr, gmax_ptr, groups_ptr, score_ptr, keys_ptr,
    N, H, M, head_dim, num_chunks, num_groups, kept,
    WANT_VALUES: tl.constexpr, SELECT: tl.constexpr, STAGE1: tl.constexpr, FROM_GROUPS: tl.constexpr,
    HAS_MASK: tl.constexpr, GROUP: tl.constexpr, BLOCK_C: tl.constexpr, STAGE1_ROW: tl.constexpr,
    STAGE1_ONE_BLOCK: tl.constexpr, CAND_ROW: tl.constexpr, CAND_ONE_BLOCK: tl.constexpr,
    BLOCK_CAND: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    # One program per (bh, landmark), after the landmark pass: merge the Lv partials, then the exact
    # top-`kept` keys in two stages. Stage 1 (STAGE1) keeps the kept groups of largest maximum (with
    # GROUP == 1 these are the keys: done). Stage 2 rescores every key of the kept groups
    # (FROM_GROUPS: chosen here or by torch.topk, in groups_ptr) or of all groups (<= kept of them)
    # and keeps the kept best.
    pid = tl.program_id(0).to(tl.int64)
    bh = pid // M
    b = bh // H
    if WANT_VALUES:
        _merge_values(acc_ptr, max_ptr, sum_ptr, lv_ptr, lse_ptr, pid, bh, pid % M, M, head_dim, num_chunks,
                      BLOCK_C, HEAD_DIM)  # fmt: skip
    if SELECT:
        if STAGE1:
            row = gmax_ptr + pid * num_groups
            tau, above = _kth_largest(row, num_groups, kept, STAGE1_ROW, STAGE1_ONE_BLOCK)
            out = keys_ptr if GROUP == 1 else groups_ptr
            _compact_top(row, num_groups, kept, tau, above, out + pid * kept, row, STAGE1_ROW, 1, False)
            if GROUP > 1:
                tl.debug_barrier()  # every thread reads the kept groups back
        if (not STAGE1) or (GROUP > 1):
            if FROM_GROUPS:
                num_cand = kept * GROUP
            else:
                num_cand = num_groups * GROUP
            cols = tl.arange(0, HEAD_DIM)
            d_ok = cols < head_dim
            r = tl.load(r_ptr + pid * head_dim + cols, mask=d_ok, other=0.0).to(tl.float32)
            cand_row = score_ptr + pid * num_cand
            for c0 in range(0, num_cand, BLOCK_CAND):
                cand = c0 + tl.arange(0, BLOCK_CAND)
                cand_ok = cand < num_cand
                if FROM_GROUPS:
                    group = tl.load(groups_ptr + pid * kept + cand // GROUP, mask=cand_ok, other=0)
                    key = group.to(tl.int64) * GROUP + cand % GROUP
                else:
                    key = cand.to(tl.int64)
                in_range = cand_ok & (key < N)
                kt = tl.load(k_ptr + (bh * N + key)[:, None] * head_dim + cols[None, :],
                             mask=in_range[:, None] & d_ok[None, :], other=0.0)  # fmt: skip
                score = tl.sum(kt.to(tl.float32) * r[None, :], axis=1)
                key_ok = in_range
                if HAS_MASK:
                    key_ok = key_ok & (tl.load(mask_ptr + b * N + key, mask=in_range, other=0) != 0)
                score = tl.where(key_ok, score, -_FLT_MAX)
                score = tl.where(in_range, score, float("-inf"))  # never kept: >= kept keys are in range
                tl.store(cand_row + cand, score, mask=cand_ok)
            tl.debug_barrier()  # every thread reads all candidate scores
            tau, above = _kth_largest(cand_row, num_cand, kept, CAND_ROW, CAND_ONE_BLOCK)
            _compact_top(cand_row, num_cand, kept, tau, above, keys_ptr + pid * kept, groups_ptr + pid * kept,
                         CAND_ROW, GROUP, FROM_GROUPS)  # fmt: skip


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
    group = group_size(n, block_n)
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
    if fixed is None:
        expert_keys = common.new_buffer((bh, m, kept), torch.int32, device)
    else:
        expert_keys = fixed[0].reshape(bh, m, kept).to(device=device, dtype=torch.int32).contiguous()
        expert = fixed[1].reshape(bh, n).to(device=device, dtype=torch.int32).contiguous()
        hist = histogram_of(expert, m, chunk, num_chunks)
    if want_values or fixed is None:
        _merge_and_select(
            k, landmarks, mask, lengths, gmax, (part_acc, part_max, part_sum), landmark_values, landmark_lse,
            expert_keys, heads, group, want_values=want_values, select=fixed is None,
        )  # fmt: skip
    del part_acc, part_max, part_sum, gmax

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


def group_size(n: int, block_n: int) -> int:
    """Keys per top-k group: the smallest power of two whose N / group maxima fit one in-register row
    of the selection kernel (1 up to `CONFIG.select_row` keys: a one-stage top-k of the scores
    themselves), at most `CONFIG.group` and the landmark pass's key block."""
    cfg = common.CONFIG
    need = triton.next_power_of_2(triton.cdiv(n, cfg.select_row))
    return max(1, min(cfg.group, block_n, need))


def _merge_and_select(
    k: torch.Tensor,
    landmarks: torch.Tensor,
    mask: torch.Tensor | None,
    lengths: torch.Tensor,
    gmax: torch.Tensor,
    partials: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    landmark_values: torch.Tensor | None,
    landmark_lse: torch.Tensor | None,
    expert_keys: torch.Tensor,
    heads: int,
    group: int,
    *,
    want_values: bool,
    select: bool,
) -> None:
    """One launch: Lv and its LSE from the partials (want_values) and the exact top-`kept` keys per
    landmark into expert_keys [BH, M, kept] (select). Rows of group maxima longer than
    `CONFIG.select_row` (N > select_row * group) take their first stage from `torch.topk`."""
    cfg = common.CONFIG
    bh, n, d = k.shape
    m, num_groups = gmax.shape[1], gmax.shape[2]
    kept = expert_keys.shape[2]
    num_chunks = partials[1].shape[1] if want_values else 1
    stage1 = select and kept < num_groups <= cfg.select_row
    from_groups = select and num_groups > kept
    groups = expert_keys  # stage 1 writes the kept groups here (scratch), or torch.topk's are read
    if from_groups and not stage1:
        groups = gmax.topk(kept, dim=-1, sorted=False).indices  # int64, read as is
    elif stage1 and group > 1:
        groups = common.new_buffer((bh, m, kept), torch.int32, k.device)
    num_cand = (kept if from_groups else num_groups) * group
    scores = expert_keys
    if select and not (stage1 and group == 1):
        scores = common.new_buffer((bh, m, num_cand), torch.float32, k.device)
    stage1_row = common.pow2_block(num_groups, cfg.select_row)
    cand_row = common.pow2_block(num_cand, cfg.select_row)
    values, lse = (landmark_values, landmark_lse) if want_values else (landmarks, gmax)  # unused then
    _select_kernel[(bh * m,)](
        *partials, values, lse,
        k, landmarks, mask if mask is not None else lengths, gmax, groups, scores, expert_keys,
        n, heads, m, d, num_chunks, num_groups, kept,
        WANT_VALUES=want_values, SELECT=select, STAGE1=stage1, FROM_GROUPS=from_groups,
        HAS_MASK=mask is not None, GROUP=group, BLOCK_C=common.pow2_block(num_chunks, 64),
        STAGE1_ROW=stage1_row, STAGE1_ONE_BLOCK=num_groups <= stage1_row, CAND_ROW=cand_row,
        CAND_ONE_BLOCK=num_cand <= cand_row, BLOCK_CAND=common.pow2_block(num_cand, common.rows_per_block(d)),
        HEAD_DIM=common.head_block(d), num_warps=8 if max(stage1_row, cand_row) >= 2048 else cfg.num_warps,
    )  # fmt: skip
