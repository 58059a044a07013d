"""MiTA Triton kernels, part 4: the backward of the fused attention over [shared landmarks ++ routed
keys] (the forward is `triton_attention.py`).

* `_bwd_query_kernel`      dQ (direct part), Delta = rowsum(dO * O), and per-program partial sums of
                           dR (landmarks as keys) and dLv; programs own consecutive tiles.
* `_bwd_routed_kv_kernel`  expert-space dK_e, dV_e [M, kept, d]: one program per piece of at most
                           `piece_len` queries of one expert (fp32 atomics, or per-piece partials
                           summed in a fixed order by `_piece_reduce_kernel` when deterministic).
* `_bwd_key_kernel`        key-major: the landmark attention backward (dense dK, dV for every key,
                           dR partials) plus the scatter of dK_e, dV_e onto the selected keys through
                           a key-sorted entry list (one writer per key row, no atomics).

The pooling backward (dQ += dR / |window|) is `triton_pooling.pool_backward`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import triton_common as common
from .triton_attention import Blocks, expert_of
from .triton_pooling import pool_backward
from .triton_selection import Selection

_NEG = tl.constexpr(common.NEG)
_INT_MAX = tl.constexpr(2**31 - 1)


@triton.jit
def _load_rows(ptr, row0, lc, M, head_dim, BLOCK_LM: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Landmark rows [lc * BLOCK_LM, +BLOCK_LM) of a [M, head_dim] matrix starting at row row0 (0 past M)."""
    lm = lc * BLOCK_LM + tl.arange(0, BLOCK_LM)
    cols = tl.arange(0, HEAD_DIM)
    mask = (lm < M)[:, None] & (cols < head_dim)[None, :]
    return tl.load(ptr + (row0 + lm)[:, None] * head_dim + cols[None, :], mask=mask, other=0.0)


@triton.jit
def _piece_table(offs_ptr, bh, M, piece_len, M_PAD: tl.constexpr):
    """Each expert's queries [start, end) in sorted order, cut into pieces of <= piece_len queries:
    (expert ids, valid, start, end, number of pieces, index of the expert's first piece)."""
    e = tl.arange(0, M_PAD)
    e_ok = e < M
    start = tl.load(offs_ptr + bh * (M + 1) + e, mask=e_ok, other=0)
    end = tl.load(offs_ptr + bh * (M + 1) + e + 1, mask=e_ok, other=0)
    pieces = (end - start + piece_len - 1) // piece_len
    return e, e_ok, start, end, pieces, tl.cumsum(pieces, axis=0) - pieces


@triton.jit
def _bwd_query_kernel(
    q_ptr, k_ptr, v_ptr, r_ptr, lv_ptr, idx_ptr, perm_ptr, offs_ptr, mask_ptr, len_ptr,
    o_ptr, do_ptr, lse_ptr, dq_ptr, delta_ptr, dr_ptr, dlv_ptr, dke_ptr, dve_ptr,
    N, H, M, kept, num_landmarks, head_dim, sh_scale, rt_scale, inv_d, inv_sqrt_d,
    tiles_per_prog, num_tiles, num_progs, num_dr_parts, num_entries, zero_rows,
    SHARED: tl.constexpr, HAS_MASK: tl.constexpr, ZERO_EXPERT_GRADS: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_LM: tl.constexpr, NUM_LM_CHUNKS: tl.constexpr, M_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    prog = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b = bh // H
    m_b = tl.minimum(tl.load(len_ptr + b), num_landmarks)
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    if ZERO_EXPERT_GRADS:  # the next launch adds into dK_e, dV_e atomically: zero them here (no launch)
        z_lo = prog * zero_rows
        z_hi = tl.minimum(z_lo + zero_rows, num_entries)
        for z0 in range(z_lo, z_hi, BLOCK_M):
            rows = z0 + tl.arange(0, BLOCK_M)
            z_off = (bh * num_entries + rows)[:, None] * head_dim + cols[None, :]
            z_mask = (rows < z_hi)[:, None] & d_ok[None, :]
            tl.store(dke_ptr + z_off, tl.zeros([BLOCK_M, HEAD_DIM], tl.float32), mask=z_mask)
            tl.store(dve_ptr + z_off, tl.zeros([BLOCK_M, HEAD_DIM], tl.float32), mask=z_mask)
    acc_dr = tl.zeros([BLOCK_LM, HEAD_DIM], tl.float32)
    acc_dlv = tl.zeros([BLOCK_LM, HEAD_DIM], tl.float32)
    t_lo = prog * tiles_per_prog
    t_hi = tl.minimum(t_lo + tiles_per_prog, num_tiles)
    for tile in range(t_lo, t_hi):
        p = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        p_ok = p < N
        pos = tl.load(perm_ptr + bh * N + p, mask=p_ok, other=0).to(tl.int64)
        row_off = (bh * N + pos)[:, None] * head_dim + cols[None, :]
        io_mask = p_ok[:, None] & d_ok[None, :]
        qt = tl.load(q_ptr + row_off, mask=io_mask, other=0.0)
        dot_ = tl.load(do_ptr + row_off, mask=io_mask, other=0.0)
        ot = tl.load(o_ptr + row_off, mask=io_mask, other=0.0)
        lse = tl.load(lse_ptr + bh * N + pos, mask=p_ok, other=0.0)
        delta = tl.sum(dot_.to(tl.float32) * ot.to(tl.float32), axis=1)
        tl.store(delta_ptr + bh * N + pos, delta, mask=p_ok)
        dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        if SHARED:
            for lc in range(NUM_LM_CHUNKS):
                lm = lc * BLOCK_LM + tl.arange(0, BLOCK_LM)
                lm_mask = (lm < M)[:, None] & d_ok[None, :]
                # Reloaded per tile (from L2): keeping them in registers across tiles spills.
                r = _load_rows(r_ptr, bh * M, lc, M, head_dim, BLOCK_LM, HEAD_DIM)
                lv = _load_rows(lv_ptr, bh * M, lc, M, head_dim, BLOCK_LM, HEAD_DIM)
                s = tl.dot(qt, tl.trans(r), input_precision=PRECISION) * sh_scale
                pr = tl.exp2(s - lse[:, None])
                pr = tl.where(p_ok[:, None] & (lm < m_b)[None, :], pr, 0.0)
                dp = tl.dot(dot_, tl.trans(lv), input_precision=PRECISION)
                ds = pr * (dp - delta[:, None])
                dq += tl.dot(ds.to(r.dtype), r, input_precision=PRECISION) * inv_d
                dr_c = tl.dot(tl.trans(ds.to(qt.dtype)), qt, input_precision=PRECISION) * inv_d
                dlv_c = tl.dot(tl.trans(pr.to(dot_.dtype)), dot_, input_precision=PRECISION)
                if NUM_LM_CHUNKS == 1:
                    acc_dr += dr_c
                    acc_dlv += dlv_c
                else:  # partial rows of this program only: read-modify-write without races
                    dr_off = ((bh * num_dr_parts + prog) * M + lm)[:, None] * head_dim + cols[None, :]
                    dlv_off = ((bh * num_progs + prog) * M + lm)[:, None] * head_dim + cols[None, :]
                    tl.store(dr_ptr + dr_off, tl.load(dr_ptr + dr_off, mask=lm_mask) + dr_c, mask=lm_mask)
                    tl.store(
                        dlv_ptr + dlv_off, tl.load(dlv_ptr + dlv_off, mask=lm_mask) + dlv_c, mask=lm_mask
                    )

        first = tile * BLOCK_M
        last = tl.minimum(first + BLOCK_M, N) - 1
        e_lo = expert_of(offs_ptr, bh, M, first, M_PAD)
        e_hi = expert_of(offs_ptr, bh, M, last, M_PAD)
        for e in range(e_lo, e_hi + 1):
            e_start = tl.load(offs_ptr + bh * (M + 1) + e)
            e_end = tl.load(offs_ptr + bh * (M + 1) + e + 1)
            row_in = p_ok & (p >= e_start) & (p < e_end)
            kept_e = tl.where(e_end > e_start, kept, 0)
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
                pr = tl.where(row_in[:, None] & key_ok[None, :], tl.exp2(s - lse[:, None]), 0.0)
                dp = tl.dot(dot_, tl.trans(vt), input_precision=PRECISION)
                ds = pr * (dp - delta[:, None])
                dq += tl.dot(ds.to(kt.dtype), kt, input_precision=PRECISION) * inv_sqrt_d
        tl.store(dq_ptr + row_off, dq.to(dq_ptr.dtype.element_ty), mask=io_mask)

    if SHARED and NUM_LM_CHUNKS == 1:
        lm = tl.arange(0, BLOCK_LM)
        part_mask = (lm < M)[:, None] & d_ok[None, :]
        dr_off = ((bh * num_dr_parts + prog) * M + lm)[:, None] * head_dim + cols[None, :]
        tl.store(dr_ptr + dr_off, acc_dr, mask=part_mask)
        dlv_off = ((bh * num_progs + prog) * M + lm)[:, None] * head_dim + cols[None, :]
        tl.store(dlv_ptr + dlv_off, acc_dlv, mask=part_mask)


@triton.jit
def _bwd_routed_kv_kernel(
    q_ptr, k_ptr, v_ptr, idx_ptr, perm_ptr, offs_ptr, mask_ptr,
    do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr, dlv_parts_ptr, dlv_ptr,
    N, H, M, kept, head_dim, rt_scale, inv_sqrt_d, piece_len, num_k_chunks, max_pieces, num_routed,
    num_dlv_parts,
    HAS_MASK: tl.constexpr, DETERMINISTIC: tl.constexpr, SUM_DLV: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr, M_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    # Programs past num_routed sum the query-major kernel's dLv partials of one landmark (SUM_DLV), in
    # a fixed order: the key-major kernel reads dLv next, and this launch runs in between anyway.
    pid = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    if pid < num_routed:
        _routed_piece(
            q_ptr, k_ptr, v_ptr, idx_ptr, perm_ptr, offs_ptr, mask_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
            pid, bh, N, H, M, kept, head_dim, rt_scale, inv_sqrt_d, piece_len, num_k_chunks, max_pieces,
            HAS_MASK, DETERMINISTIC, BLOCK_M, BLOCK_K, M_PAD, HEAD_DIM, PRECISION,
        )  # fmt: skip
    elif SUM_DLV:
        lm = pid - num_routed
        cols = tl.arange(0, HEAD_DIM)
        d_ok = cols < head_dim
        acc = tl.zeros([HEAD_DIM], tl.float32)
        for p0 in range(0, num_dlv_parts, BLOCK_P):
            parts = p0 + tl.arange(0, BLOCK_P)
            off = ((bh * num_dlv_parts + parts) * M + lm)[:, None] * head_dim + cols[None, :]
            acc += tl.sum(tl.load(dlv_parts_ptr + off, mask=(parts < num_dlv_parts)[:, None] & d_ok[None, :],
                                  other=0.0), axis=0)  # fmt: skip
        tl.store(dlv_ptr + (bh * M + lm) * head_dim + cols, acc, mask=d_ok)


@triton.jit
def _routed_piece(
    q_ptr, k_ptr, v_ptr, idx_ptr, perm_ptr, offs_ptr, mask_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    pid, bh, N, H, M, kept, head_dim, rt_scale, inv_sqrt_d, piece_len, num_k_chunks, max_pieces,
    HAS_MASK: tl.constexpr, DETERMINISTIC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
    M_PAD: tl.constexpr, HEAD_DIM: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """dK_e, dV_e of one piece of at most piece_len sorted queries of one expert x one chunk of its keys."""
    b = bh // H
    piece = pid // num_k_chunks
    kc = pid % num_k_chunks
    ids, ids_ok, starts, ends, pieces, first_piece = _piece_table(offs_ptr, bh, M, piece_len, M_PAD)
    active = piece < tl.sum(pieces, axis=0)
    e = tl.sum(((first_piece <= piece) & ids_ok).to(tl.int32), axis=0) - 1  # expert owning this piece
    this = ids == e
    e_end = tl.sum(tl.where(this, ends, 0), axis=0)
    q_lo = (
        tl.sum(tl.where(this, starts, 0), axis=0)
        + (piece - tl.sum(tl.where(this, first_piece, 0), axis=0)) * piece_len
    )
    q_hi = tl.where(active, tl.minimum(q_lo + piece_len, e_end), q_lo)

    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    tt = kc * BLOCK_K + tl.arange(0, BLOCK_K)
    t_ok = tt < kept
    key = tl.load(idx_ptr + (bh * M + e) * kept + tt, mask=t_ok, other=0).to(tl.int64)
    kv_off = (bh * N + key)[:, None] * head_dim + cols[None, :]
    kv_mask = t_ok[:, None] & d_ok[None, :]
    kt = tl.load(k_ptr + kv_off, mask=kv_mask, other=0.0)
    vt = tl.load(v_ptr + kv_off, mask=kv_mask, other=0.0)
    key_ok = t_ok
    if HAS_MASK:
        key_ok = key_ok & (tl.load(mask_ptr + b * N + key, mask=t_ok, other=0) != 0)

    acc_dk = tl.zeros([BLOCK_K, HEAD_DIM], tl.float32)
    acc_dv = tl.zeros([BLOCK_K, HEAD_DIM], tl.float32)
    for p0 in range(q_lo, q_hi, BLOCK_M):
        p = p0 + tl.arange(0, BLOCK_M)
        p_ok = p < q_hi
        pos = tl.load(perm_ptr + bh * N + p, mask=p_ok, other=0).to(tl.int64)
        row_off = (bh * N + pos)[:, None] * head_dim + cols[None, :]
        io_mask = p_ok[:, None] & d_ok[None, :]
        qt = tl.load(q_ptr + row_off, mask=io_mask, other=0.0)
        dot_ = tl.load(do_ptr + row_off, mask=io_mask, other=0.0)
        lse = tl.load(lse_ptr + bh * N + pos, mask=p_ok, other=0.0)
        delta = tl.load(delta_ptr + bh * N + pos, mask=p_ok, other=0.0)
        s = tl.dot(qt, tl.trans(kt), input_precision=PRECISION) * rt_scale
        pr = tl.where(p_ok[:, None] & key_ok[None, :], tl.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(dot_, tl.trans(vt), input_precision=PRECISION)
        ds = pr * (dp - delta[:, None])
        acc_dv += tl.dot(tl.trans(pr.to(dot_.dtype)), dot_, input_precision=PRECISION)
        acc_dk += tl.dot(tl.trans(ds.to(qt.dtype)), qt, input_precision=PRECISION)
    acc_dk = acc_dk * inv_sqrt_d

    if DETERMINISTIC:
        out_row = (bh * max_pieces + piece) * kept + tt
        out_mask = t_ok[:, None] & d_ok[None, :]
        tl.store(dk_ptr + out_row[:, None] * head_dim + cols[None, :], acc_dk, mask=out_mask)
        tl.store(dv_ptr + out_row[:, None] * head_dim + cols[None, :], acc_dv, mask=out_mask)
    else:
        out_row = (bh * M + e) * kept + tt
        out_mask = (t_ok & active)[:, None] & d_ok[None, :]
        # Relaxed: plain sums, read only by the next kernel launch.
        tl.atomic_add(
            dk_ptr + out_row[:, None] * head_dim + cols[None, :], acc_dk, mask=out_mask, sem="relaxed"
        )
        tl.atomic_add(
            dv_ptr + out_row[:, None] * head_dim + cols[None, :], acc_dv, mask=out_mask, sem="relaxed"
        )


@triton.jit
def _piece_reduce_kernel(
    part_k_ptr, part_v_ptr, offs_ptr, dk_ptr, dv_ptr,
    M, kept, head_dim, piece_len, num_k_chunks, max_pieces,
    BLOCK_K: tl.constexpr, M_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    e = pid // num_k_chunks
    tt = (pid % num_k_chunks) * BLOCK_K + tl.arange(0, BLOCK_K)
    cols = tl.arange(0, HEAD_DIM)
    io_mask = (tt < kept)[:, None] & (cols < head_dim)[None, :]
    acc_k = tl.zeros([BLOCK_K, HEAD_DIM], tl.float32)
    acc_v = tl.zeros([BLOCK_K, HEAD_DIM], tl.float32)
    ids, _, _, _, pieces, first_piece = _piece_table(offs_ptr, bh, M, piece_len, M_PAD)
    p_lo = tl.sum(tl.where(ids == e, first_piece, 0), axis=0)
    p_hi = p_lo + tl.sum(tl.where(ids == e, pieces, 0), axis=0)
    for piece in range(p_lo, p_hi):  # fixed order: the sums do not depend on scheduling
        off = ((bh * max_pieces + piece) * kept + tt)[:, None] * head_dim + cols[None, :]
        acc_k += tl.load(part_k_ptr + off, mask=io_mask, other=0.0)
        acc_v += tl.load(part_v_ptr + off, mask=io_mask, other=0.0)
    off = ((bh * M + e) * kept + tt)[:, None] * head_dim + cols[None, :]
    tl.store(dk_ptr + off, acc_k, mask=io_mask)
    tl.store(dv_ptr + off, acc_v, mask=io_mask)


@triton.jit
def _bwd_key_kernel(
    k_ptr, v_ptr, r_ptr, lv_ptr, dlv_ptr, lse_lm_ptr, mask_ptr,
    dke_ptr, dve_ptr, ent_key_ptr, ent_src_ptr, dk_ptr, dv_ptr, dr_ptr,
    N, H, M, num_entries, head_dim, lm_scale, inv_sqrt_d, chunk, num_dr_parts, dr_part_base,
    SHARED: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_LM: tl.constexpr,
    NUM_LM_CHUNKS: tl.constexpr, BLOCK_E: tl.constexpr, BLOCKS_PAD: tl.constexpr, BLOCK_S: tl.constexpr,
    HEAD_DIM: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    prog = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b = bh // H
    cols = tl.arange(0, HEAD_DIM)
    d_ok = cols < head_dim
    acc_dr = tl.zeros([BLOCK_LM, HEAD_DIM], tl.float32)
    n_lo = prog * chunk
    n_hi = tl.minimum(n_lo + chunk, N)
    # Where each key block's entries start in the key-sorted entry list: the number of entries with
    # a smaller key, counted for all of this program's block boundaries in one scan.
    bounds_at = n_lo + tl.arange(0, BLOCKS_PAD) * BLOCK_N
    bounds = tl.zeros([BLOCKS_PAD], tl.int32)
    for s0 in range(0, num_entries, BLOCK_S):
        ent = s0 + tl.arange(0, BLOCK_S)
        ent_key = tl.load(ent_key_ptr + bh * num_entries + ent, mask=ent < num_entries, other=_INT_MAX)
        bounds += tl.sum((ent_key[None, :] < bounds_at[:, None]).to(tl.int32), axis=1)
    if SHARED and NUM_LM_CHUNKS == 1:  # the landmark side stays in registers for all key blocks
        r_all = _load_rows(r_ptr, bh * M, 0, M, head_dim, BLOCK_LM, HEAD_DIM)
        dlv_all = _load_rows(dlv_ptr, bh * M, 0, M, head_dim, BLOCK_LM, HEAD_DIM)
        lv_all = _load_rows(lv_ptr, bh * M, 0, M, head_dim, BLOCK_LM, HEAD_DIM)
        delta_all = tl.sum(dlv_all * lv_all.to(tl.float32), axis=1)  # rowsum(dLv * Lv)
        dlv_all = dlv_all.to(k_ptr.dtype.element_ty)
        lm_all = tl.arange(0, BLOCK_LM)
        lse_all = tl.load(lse_lm_ptr + bh * M + lm_all, mask=lm_all < M, other=0.0)
    for n0 in range(n_lo, n_hi, BLOCK_N):
        keys = n0 + tl.arange(0, BLOCK_N)
        in_range = keys < N
        kv_off = (bh * N + keys)[:, None] * head_dim + cols[None, :]
        kv_mask = in_range[:, None] & d_ok[None, :]
        kt = tl.load(k_ptr + kv_off, mask=kv_mask, other=0.0)
        vt = tl.load(v_ptr + kv_off, mask=kv_mask, other=0.0)
        acc_dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
        acc_dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
        if SHARED:  # Lv = softmax(s R K^T) V over the valid keys
            # Landmarks past m_b need no mask: their shared logits are masked, so their dLv rows are 0.
            key_ok = in_range
            if HAS_MASK:
                key_ok = key_ok & (tl.load(mask_ptr + b * N + keys, mask=in_range, other=0) != 0)
            for lc in range(NUM_LM_CHUNKS):
                lm = lc * BLOCK_LM + tl.arange(0, BLOCK_LM)
                lm_ok = lm < M
                lm_mask = lm_ok[:, None] & d_ok[None, :]
                if NUM_LM_CHUNKS == 1:
                    r = r_all
                    dlv = dlv_all
                    delta = delta_all
                    lse = lse_all
                else:
                    r = _load_rows(r_ptr, bh * M, lc, M, head_dim, BLOCK_LM, HEAD_DIM)
                    dlv32 = _load_rows(dlv_ptr, bh * M, lc, M, head_dim, BLOCK_LM, HEAD_DIM)
                    lv = _load_rows(lv_ptr, bh * M, lc, M, head_dim, BLOCK_LM, HEAD_DIM)
                    delta = tl.sum(dlv32 * lv.to(tl.float32), axis=1)  # rowsum(dLv * Lv)
                    dlv = dlv32.to(vt.dtype)
                    lse = tl.load(lse_lm_ptr + bh * M + lm, mask=lm_ok, other=0.0)
                s = tl.dot(r, tl.trans(kt), input_precision=PRECISION) * lm_scale  # [BLOCK_LM, BLOCK_N]
                pr = tl.where(lm_ok[:, None] & key_ok[None, :], tl.exp2(s - lse[:, None]), 0.0)
                dp = tl.dot(dlv, tl.trans(vt), input_precision=PRECISION)
                ds = pr * (dp - delta[:, None])
                acc_dv += tl.dot(tl.trans(pr.to(vt.dtype)), dlv, input_precision=PRECISION)
                acc_dk += tl.dot(tl.trans(ds.to(r.dtype)), r, input_precision=PRECISION) * inv_sqrt_d
                dr_c = tl.dot(ds.to(kt.dtype), kt, input_precision=PRECISION) * inv_sqrt_d
                if NUM_LM_CHUNKS == 1:
                    acc_dr += dr_c
                else:
                    part = bh * num_dr_parts + dr_part_base + prog
                    part_off = (part * M + lm)[:, None] * head_dim + cols[None, :]
                    tl.store(dr_ptr + part_off, tl.load(dr_ptr + part_off, mask=lm_mask) + dr_c, mask=lm_mask)

        # Routed gradients of the keys in this block: entries (expert, slot) sorted by key.
        blk = (n0 - n_lo) // BLOCK_N
        e_lo = tl.sum(tl.where(tl.arange(0, BLOCKS_PAD) == blk, bounds, 0), axis=0)
        e_hi = tl.sum(tl.where(tl.arange(0, BLOCKS_PAD) == blk + 1, bounds, 0), axis=0)
        for e0 in range(e_lo, e_hi, BLOCK_E):
            ent = e0 + tl.arange(0, BLOCK_E)
            ent_ok = ent < e_hi
            ent_key = tl.load(ent_key_ptr + bh * num_entries + ent, mask=ent_ok, other=-1)
            src = tl.load(ent_src_ptr + bh * num_entries + ent, mask=ent_ok, other=0).to(tl.int64)
            src_off = (bh * num_entries + src)[:, None] * head_dim + cols[None, :]
            src_mask = ent_ok[:, None] & d_ok[None, :]
            gk = tl.load(dke_ptr + src_off, mask=src_mask, other=0.0)
            gv = tl.load(dve_ptr + src_off, mask=src_mask, other=0.0)
            hit = (keys[:, None] == ent_key[None, :]).to(tl.float32)  # [BLOCK_N, BLOCK_E] one-hot
            acc_dk += tl.dot(hit, gk, input_precision="ieee")
            acc_dv += tl.dot(hit, gv, input_precision="ieee")
        tl.store(dk_ptr + kv_off, acc_dk.to(dk_ptr.dtype.element_ty), mask=kv_mask)
        tl.store(dv_ptr + kv_off, acc_dv.to(dv_ptr.dtype.element_ty), mask=kv_mask)

    if SHARED and NUM_LM_CHUNKS == 1:
        lm = tl.arange(0, BLOCK_LM)
        part_off = ((bh * num_dr_parts + dr_part_base + prog) * M + lm)[:, None] * head_dim + cols[None, :]
        tl.store(dr_ptr + part_off, acc_dr, mask=(lm < M)[:, None] & d_ok[None, :])


# ---------------------------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------------------------


def attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    sel: Selection,
    heads: int,
    *,
    shared: bool,
    deterministic: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dQ, dK, dV [BH, N, d] (input dtype) of the fused MiTA attention, pooling path included."""
    cfg = common.CONFIG
    bh, n, d = q.shape
    m, kept = sel.landmarks.shape[1], sel.kept
    blocks = Blocks(n, m, kept, d, bh, q.dtype)
    device, f32 = q.device, torch.float32
    precision = common.dot_precision(q.dtype)
    has_mask = sel.mask is not None
    mask_arg = sel.mask if has_mask else sel.lengths
    inv_sqrt_d = d**-0.5
    wide = {"num_warps": common.warps(cfg.num_warps_tiles, d, q.dtype), "num_stages": cfg.num_stages}
    heavy = blocks.head >= 128 or q.dtype == torch.float32  # more fp32 registers per tile
    narrow = {"num_warps": wide["num_warps"] if heavy else cfg.num_warps, "num_stages": cfg.num_stages}
    key_chunk = common.split_chunk(n, bh, blocks.n)
    key_progs = triton.cdiv(n, key_chunk)

    def partials(parts: int) -> torch.Tensor:  # RMW partials (several landmark chunks) start at zero
        shape = (bh, parts, m, d)
        return (
            common.new_buffer(shape, f32, device)
            if blocks.lm_chunks == 1
            else torch.zeros(shape, dtype=f32, device=device)
        )

    # 1. Query-major: dQ (direct), Delta, partial dR (landmarks as keys) and dLv per program; zeroes
    #    the expert-space sums the next launch adds into (atomic mode).
    entries = m * kept
    dq = common.new_buffer((bh, n, d), q.dtype, device)
    delta = common.new_buffer((bh, n), f32, device)
    if shared:  # dR partials of this kernel and of the key-major kernel share one buffer: one sum
        dr_parts, dlv_parts = partials(blocks.query_progs + key_progs), partials(blocks.query_progs)
        lv = sel.landmark_values
    else:
        dr_parts = dlv_parts = delta  # never touched
        lv = sel.landmarks
    num_dr_parts = blocks.query_progs + key_progs
    dke = common.new_buffer((bh, entries, d), f32, device)
    dve = common.new_buffer((bh, entries, d), f32, device)
    _bwd_query_kernel[(blocks.query_progs, bh)](
        q, k, v, sel.landmarks, lv, sel.expert_keys, sel.perm, sel.offsets, mask_arg, sel.lengths,
        out, grad_out, lse, dq, delta, dr_parts, dlv_parts, dke, dve,
        n, heads, m, kept, sel.num_landmarks, d, common.LOG2E / d, common.LOG2E * inv_sqrt_d, 1.0 / d,
        inv_sqrt_d, blocks.tiles_per_prog, blocks.num_tiles, blocks.query_progs, num_dr_parts, entries,
        triton.cdiv(entries, blocks.query_progs),
        SHARED=shared, HAS_MASK=has_mask, ZERO_EXPERT_GRADS=not deterministic, BLOCK_M=blocks.m,
        BLOCK_K=blocks.k, BLOCK_LM=blocks.lm, NUM_LM_CHUNKS=blocks.lm_chunks, M_PAD=blocks.m_pad,
        HEAD_DIM=blocks.head, PRECISION=precision, **wide,
    )  # fmt: skip

    # 2. Expert-space dK_e, dV_e [BH, M * kept, d] from pieces of each expert's queries; m more
    #    programs sum the dLv partials.
    dlv = common.new_buffer((bh, m, d), f32, device) if shared else dke
    num_routed = blocks.max_pieces * blocks.k_chunks
    routed_grid = (num_routed + (m if shared else 0), bh)
    routed_in = (q, k, v, sel.expert_keys, sel.perm, sel.offsets, mask_arg, grad_out, lse, delta)
    routed_dims = (n, heads, m, kept, d, common.LOG2E * inv_sqrt_d, inv_sqrt_d, blocks.piece_len, blocks.k_chunks,
                   blocks.max_pieces, num_routed, blocks.query_progs)  # fmt: skip
    routed_meta = {
        "HAS_MASK": has_mask, "SUM_DLV": shared, "BLOCK_M": blocks.m, "BLOCK_K": blocks.k,
        "BLOCK_P": common.pow2_block(blocks.query_progs, 16), "M_PAD": blocks.m_pad1, "HEAD_DIM": blocks.head,
        "PRECISION": precision, **narrow,
    }  # fmt: skip
    if deterministic:
        part_k = common.new_buffer((bh, blocks.max_pieces * kept, d), f32, device)
        part_v = common.new_buffer((bh, blocks.max_pieces * kept, d), f32, device)
        _bwd_routed_kv_kernel[routed_grid](
            *routed_in, part_k, part_v, dlv_parts, dlv, *routed_dims, DETERMINISTIC=True, **routed_meta
        )
        _piece_reduce_kernel[(m * blocks.k_chunks, bh)](
            part_k, part_v, sel.offsets, dke, dve, m, kept, d, blocks.piece_len, blocks.k_chunks, blocks.max_pieces,
            BLOCK_K=blocks.k, M_PAD=blocks.m_pad1, HEAD_DIM=blocks.head, num_warps=cfg.num_warps_tiles,
        )  # fmt: skip
        del part_k, part_v
    else:
        _bwd_routed_kv_kernel[routed_grid](
            *routed_in, dke, dve, dlv_parts, dlv, *routed_dims, DETERMINISTIC=False, **routed_meta
        )

    # 3. Key-major: landmark attention backward + scatter of the routed gradients, one writer per key.
    ent_key, ent_src = torch.sort(sel.expert_keys.view(bh, entries), dim=1, stable=True)
    dk = common.new_buffer((bh, n, d), k.dtype, device)
    dv = common.new_buffer((bh, n, d), v.dtype, device)
    _bwd_key_kernel[(key_progs, bh)](
        k, v, sel.landmarks, lv, dlv, sel.landmark_lse if shared else dke, mask_arg,
        dke, dve, ent_key, ent_src, dk, dv, dr_parts,
        n, heads, m, entries, d, common.LOG2E * inv_sqrt_d, inv_sqrt_d, key_chunk, num_dr_parts,
        blocks.query_progs,
        SHARED=shared, HAS_MASK=has_mask, BLOCK_N=blocks.n, BLOCK_LM=blocks.lm,
        NUM_LM_CHUNKS=blocks.lm_chunks, BLOCK_E=16, BLOCKS_PAD=triton.next_power_of_2(key_chunk // blocks.n + 1),
        BLOCK_S=max(16, 4096 // triton.next_power_of_2(key_chunk // blocks.n + 1)), HEAD_DIM=blocks.head,
        PRECISION=precision, **wide,
    )  # fmt: skip

    # 4. Pooling: R = pool(Q) passes dR (as keys of the queries and as queries of Lv) back to dQ; the
    #    kernel sums the dR partials itself.
    if shared:
        pool_backward(dq, dr_parts, sel.lengths, sel.order, sel.num_landmarks, heads)
    return dq, dk, dv
