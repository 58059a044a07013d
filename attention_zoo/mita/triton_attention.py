"""MiTA Triton kernels, part 3: the fused attention over [shared landmarks ++ routed keys], forward.

Queries are processed in tiles of the expert-sorted order (`Selection.perm`), so a tile spans one
expert or a few neighbouring ones; each query attends, in one online softmax, to the m landmark
keys R with logits q.r / d (values Lv) and to the kept keys of its expert with logits q.k / sqrt(d).

* `_fwd_kernel`   O and the per-query log-sum-exp (log2 domain) at the original positions.

`Blocks` (the block sizes of one problem) and `expert_of` (the expert of a sorted position) serve the
backward too (`triton_attention_backward.py`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import triton_common as common
from .triton_selection import Selection

_NEG = tl.constexpr(common.NEG)
_INT_MAX = tl.constexpr(2**31 - 1)


@triton.jit
def expert_of(offs_ptr, bh, M, p, M_PAD: tl.constexpr):
    """Expert of sorted position p: the last expert whose first position is <= p."""
    e = tl.arange(0, M_PAD)
    starts = tl.load(offs_ptr + bh * (M + 1) + e, mask=e < M, other=_INT_MAX)
    return tl.sum((starts <= p).to(tl.int32), axis=0) - 1


@triton.jit
def _fwd_kernel(
    q_ptr, k_ptr, v_ptr, r_ptr, lv_ptr, idx_ptr, perm_ptr, offs_ptr, mask_ptr, len_ptr, o_ptr, lse_ptr,
    N, H, M, kept, num_landmarks, head_dim, sh_scale, rt_scale,
    SHARED: tl.constexpr, HAS_MASK: tl.constexpr, STORE_LSE: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_LM: tl.constexpr, NUM_LM_CHUNKS: tl.constexpr, M_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b = bh // H
    p = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    p_ok = p < N
    pos = tl.load(perm_ptr + bh * N + p, mask=p_ok, other=0).to(tl.int64)
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    row_off = (bh * N + pos)[:, None] * head_dim + cols[None, :]
    io_mask = p_ok[:, None] & d_ok[None, :]
    qt = tl.load(q_ptr + row_off, mask=io_mask, other=0.0)

    m_i = tl.full([BLOCK_M], _NEG, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    if SHARED:
        m_b = tl.minimum(tl.load(len_ptr + b), num_landmarks)
        for lc in range(NUM_LM_CHUNKS):
            lm = lc * BLOCK_LM + tl.arange(0, BLOCK_LM)
            lm_off = (bh * M + lm)[:, None] * head_dim + cols[None, :]
            lm_mask = (lm < M)[:, None] & d_ok[None, :]
            r = tl.load(r_ptr + lm_off, mask=lm_mask, other=0.0)
            lv = tl.load(lv_ptr + lm_off, mask=lm_mask, other=0.0)
            s = tl.dot(qt, tl.trans(r), input_precision=PRECISION) * sh_scale
            s = tl.where((lm < m_b)[None, :], s, _NEG)
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            alpha = tl.exp2(m_i - m_new)
            pr = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(pr, axis=1)
            acc = acc * alpha[:, None] + tl.dot(pr.to(lv.dtype), lv, input_precision=PRECISION)
            m_i = m_new

    first = tile * BLOCK_M
    last = tl.minimum(first + BLOCK_M, N) - 1
    e_lo = expert_of(offs_ptr, bh, M, first, M_PAD)
    e_hi = expert_of(offs_ptr, bh, M, last, M_PAD)
    for e in range(e_lo, e_hi + 1):
        e_start = tl.load(offs_ptr + bh * (M + 1) + e)
        e_end = tl.load(offs_ptr + bh * (M + 1) + e + 1)
        row_in = (p >= e_start) & (p < e_end)
        kept_e = tl.where(e_end > e_start, kept, 0)  # empty experts cost nothing
        for t0 in range(0, kept_e, BLOCK_K):
            tt = t0 + tl.arange(0, BLOCK_K)
            t_ok = tt < kept
            key = tl.load(idx_ptr + (bh * M + e) * kept + tt, mask=t_ok, other=0).to(tl.int64)
            kv_off = (bh * N + key)[:, None] * head_dim + cols[None, :]
            kv_mask = t_ok[:, None] & d_ok[None, :]
            kt = tl.load(k_ptr + kv_off, mask=kv_mask, other=0.0)
            vt = tl.load(v_ptr + kv_off, mask=kv_mask, other=0.0)
            key_ok = t_ok
            if HAS_MASK:
                key_ok = key_ok & (tl.load(mask_ptr + b * N + key, mask=t_ok, other=0) != 0)
            s = tl.dot(qt, tl.trans(kt), input_precision=PRECISION) * rt_scale
            s = tl.where(row_in[:, None] & key_ok[None, :], s, _NEG)
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            alpha = tl.exp2(m_i - m_new)
            pr = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(pr, axis=1)
            acc = acc * alpha[:, None] + tl.dot(pr.to(vt.dtype), vt, input_precision=PRECISION)
            m_i = m_new

    out = acc / l_i[:, None]
    tl.store(o_ptr + row_off, out.to(o_ptr.dtype.element_ty), mask=io_mask)
    if STORE_LSE:
        tl.store(lse_ptr + bh * N + pos, m_i + tl.log2(l_i), mask=p_ok)


# ---------------------------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------------------------


class Blocks:
    """Block sizes of one problem, from CONFIG clamped to N, m and kept."""

    def __init__(self, n: int, m: int, kept: int, d: int, heads_total: int, dtype: torch.dtype) -> None:
        cfg = common.CONFIG
        # Tiles no larger than the typical expert: N / m queries per expert on average.
        self.m = common.pow2_block(max(1, n // max(1, m)), common.tile(cfg.block_m, d, dtype))
        self.k = common.pow2_block(kept, common.tile(cfg.block_k, d, dtype))
        self.lm = common.pow2_block(m, common.tile(cfg.block_lm, d, dtype))
        self.n = common.tile(cfg.block_n_bwd, d, dtype)
        self.lm_chunks = triton.cdiv(m, self.lm)
        self.k_chunks = triton.cdiv(kept, self.k)
        self.m_pad = triton.next_power_of_2(m)
        self.m_pad1 = triton.next_power_of_2(m + 1)  # expert tables with an end entry
        self.head = common.head_block(d)
        self.num_tiles = triton.cdiv(n, self.m)
        per_head = max(1, cfg.split_programs // max(1, heads_total))
        self.tiles_per_prog = triton.cdiv(self.num_tiles, per_head)
        self.query_progs = triton.cdiv(self.num_tiles, self.tiles_per_prog)
        self.piece_len = self.m * max(1, triton.cdiv(triton.cdiv(n, per_head), self.m))
        self.max_pieces = m + triton.cdiv(n, self.piece_len)


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sel: Selection,
    heads: int,
    *,
    shared: bool,
    store_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """O [BH, N, d] (input dtype) and, when store_lse, the per-query LSE [BH, N] (fp32, log2)."""
    cfg = common.CONFIG
    bh, n, d = q.shape
    m, kept = sel.landmarks.shape[1], sel.kept
    blocks = Blocks(n, m, kept, d, bh, q.dtype)
    out = common.new_buffer((bh, n, d), q.dtype, q.device)
    lse = common.new_buffer((bh, n), torch.float32, q.device) if store_lse else None
    lv = sel.landmark_values if shared else sel.landmarks
    _fwd_kernel[(blocks.num_tiles, bh)](
        q, k, v, sel.landmarks, lv, sel.expert_keys, sel.perm, sel.offsets,
        sel.mask if sel.mask is not None else sel.lengths, sel.lengths, out, lse if lse is not None else out,
        n, heads, m, kept, sel.num_landmarks, d, common.LOG2E / d, common.LOG2E / d**0.5,
        SHARED=shared, HAS_MASK=sel.mask is not None, STORE_LSE=store_lse, BLOCK_M=blocks.m,
        BLOCK_K=blocks.k, BLOCK_LM=blocks.lm, NUM_LM_CHUNKS=blocks.lm_chunks, M_PAD=blocks.m_pad,
        HEAD_DIM=blocks.head, PRECISION=common.dot_precision(q.dtype),
        num_warps=common.warps(cfg.num_warps_fwd, d, q.dtype), num_stages=cfg.num_stages,
    )  # fmt: skip
    return out, lse
