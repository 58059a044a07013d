r"""Attention over per-query selected keys: the readable form and the chunked fast path beside it.

Query n of row (b, h) attends to the key rows named by its slots: slot j of query n names

* rows ``slots[n, j] * slot_size + [0, slot_size)`` (top-k: slot_size 1; MoBA: a key block), or,
  with a ``table`` [B, H, E, t], the rows ``table[e, :]`` for ``e = slots[n, j]`` (MiTA: an expert's
  top-k keys),

with logits :math:`s\, q_n^\top k_t`, masked where the key is padding (``key_valid``) or the slot is
unusable (``slot_ok``); a row listed twice counts twice. An optional shared prefix adds logits
:math:`s_p\, q_n^\top r_j` over values :math:`u_j` (MiTA's shared expert) to the same softmax:

.. math::

    o_n = \operatorname{softmax}\big([\, s_p\, q_n^\top R^\top \;|\; s\, q_n^\top K_{T_n}^\top \,]\big)
          \cdot [U ; V_{T_n}].

`SelectedAttention` evaluates this in chunks of queries whose gathered keys stay around
`CHUNK_ELEMENTS` elements, and saves only the slots, the output and the per-query log-sum-exp: the
backward gathers each chunk's keys again (the flash-attention idea), so memory is O(N d + N |slots|)
however many keys a query sees, instead of the O(N T d) gathered copies autograd would keep. Time
is O(N T d) for the gathers and products. Gradients reach q, k, v and the prefix keys and values;
the slots carry none.

`attend_selected` is the readable form the mechanisms' ``reference`` backends use: each query's
gathered keys (or all scores, masked, when that is smaller), kept by autograd.

Attention dropout (`dropout_p`): each chunk's probabilities (prefix and selected keys alike) are
multiplied by a dropout mask drawn from a generator seeded per (call, chunk) (`_dropout.MaskStream`),
and the backward draws the same masks again, so nothing beyond the seed is saved.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import at_least_fp32, gather_rows, no_autocast
from ._dropout import MaskStream, drop

# Gathered keys (and each other chunk temporary) of one chunk stay around this many elements: small
# on CPU (cache-sized temporaries, peak memory), large on CUDA, where each chunk costs launches.
CHUNK_ELEMENTS = 1 << 20
CHUNK_ELEMENTS_CUDA = 1 << 26

# The readable form's query chunks are sized so that one chunk's gathered keys stay around this many elements.
_REFERENCE_CHUNK_ELEMENTS = 1 << 24

# How `attend_selected` evaluates: "auto" picks the cheaper exact form; tests force each one.
SELECTED_PATH = "auto"


def chunks(rows: int, length: int, per_query: int, device: torch.device):
    """(row slice, query slice) pairs covering [rows, length] so a chunk holds about
    `CHUNK_ELEMENTS` (on CUDA `CHUNK_ELEMENTS_CUDA`) elements when each query needs `per_query` of
    them: whole rows grouped when a row fits, else query ranges."""
    budget = CHUNK_ELEMENTS_CUDA if device.type == "cuda" else CHUNK_ELEMENTS
    per_query = max(1, per_query)
    queries = max(1, min(length, budget // per_query))
    group = max(1, min(rows, budget // (queries * per_query)))
    for r0 in range(0, rows, group):
        for q0 in range(0, length, queries):
            yield slice(r0, min(r0 + group, rows)), slice(q0, min(q0 + queries, length))


class _Layout:
    """The selection of one call, flattened to rows g = b * H + h, and how to read one chunk of it."""

    def __init__(self, batch, heads, length, slots, slot_size, table, key_valid, slot_ok):
        self.batch, self.heads, self.length = batch, heads, length
        self.slots = slots.reshape(batch * heads, length, slots.shape[-1])  # int32 or int64
        self.slot_size = slot_size
        self.table = None if table is None else table.reshape(batch * heads, *table.shape[2:])
        self.key_valid = key_valid  # [B, N'] bool (N' >= N for positional blocks), or None
        self.slot_ok = None if slot_ok is None else slot_ok.reshape(batch * heads, length, -1)
        width = table.shape[-1] if table is not None else slot_size
        self.width = slots.shape[-1] * width  # keys per query

    def rows(self, g: slice, n: slice) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flat key rows [G, C, T] (int64, into the [B*H*N, d] view) and their usability (or None)."""
        slots = self.slots[g, n].long()
        device = slots.device
        group = torch.arange(g.start, g.stop, device=device)
        if self.table is not None:
            table = self.table[g]  # [G, E, t]
            picked = table.gather(1, slots.reshape(slots.shape[0], -1, 1).expand(-1, -1, table.shape[-1]))
            keys = picked.long().view(*slots.shape[:2], -1)  # [G, C, S * t]
        elif self.slot_size == 1:
            keys = slots
        else:
            offsets = torch.arange(self.slot_size, device=device)
            keys = (slots[..., None] * self.slot_size + offsets).flatten(-2)
        ok = None
        if self.key_valid is not None:
            batch_of = torch.div(group, self.heads, rounding_mode="floor")
            ok = self.key_valid[batch_of[:, None, None], keys]
        if self.slot_ok is not None:
            slot_ok = self.slot_ok[g, n]
            repeat = keys.shape[-1] // slot_ok.shape[-1]
            slot_ok = slot_ok.repeat_interleave(repeat, dim=-1)
            ok = slot_ok if ok is None else ok & slot_ok
        if keys.shape[-1] and self.key_valid is not None and self.key_valid.shape[1] > self.length:
            keys = keys.clamp(max=self.length - 1)  # positions past the end are masked above
        return keys + (group * self.length)[:, None, None], ok


def _gather(rows: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Rows of rows [R, d] at keys [G, C, T] -> [G, C, T, d] (`embedding`: on CPU several times
    faster than `index_select` for this shape)."""
    return torch.nn.functional.embedding(keys, rows)


def _dot_rows(vectors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """vectors [G, C, d] . rows [G, C, T, d] -> [G, C, T], as a batched row-vector product (a
    batched matrix-vector product is several times slower on CPU)."""
    return torch.matmul(vectors[..., None, :], rows.transpose(-1, -2)).squeeze(-2)


def _prefix_logits(queries, prefix_keys, prefix_ok, prefix_scale):
    logits = torch.matmul(queries, prefix_keys.transpose(-1, -2)) * prefix_scale
    if prefix_ok is not None:
        logits = logits.masked_fill(~prefix_ok[:, None, :], float("-inf"))
    return logits


class SelectedAttention(torch.autograd.Function):
    """Chunked softmax over selected keys (and an optional prefix); see the module docstring."""

    @staticmethod
    def forward(ctx, q, k, v, prefix_keys, prefix_values, layout, scale, prefix_scale, prefix_ok, dropout):
        batch, heads, length, dim = q.shape
        rows = batch * heads
        work = torch.promote_types(q.dtype, torch.float32)
        q3 = q.reshape(rows, length, dim)
        k2, v2 = k.reshape(rows * length, dim), v.reshape(rows * length, dim)
        has_prefix = prefix_keys is not None
        if has_prefix:
            pk = prefix_keys.reshape(rows, -1, dim).to(work)
            pv = prefix_values.reshape(rows, -1, dim).to(work)
            pok = None if prefix_ok is None else prefix_ok.repeat_interleave(heads, dim=0)
        out = torch.empty(rows, length, dim, dtype=q.dtype, device=q.device)
        lse = torch.empty(rows, length, dtype=work, device=q.device)
        for g, n in chunks(rows, length, layout.width * dim, q.device):
            keys, ok = layout.rows(g, n)
            queries = q3[g, n].to(work)
            logits = _dot_rows(queries, _gather(k2, keys).to(work)) * scale  # [G, C, T]
            if ok is not None:
                logits = logits.masked_fill(~ok, float("-inf"))
            if has_prefix:
                logits = torch.cat(
                    [_prefix_logits(queries, pk[g], None if pok is None else pok[g], prefix_scale), logits],
                    -1,
                )
            chunk_lse = torch.logsumexp(logits, dim=-1)
            probs = torch.exp(logits - chunk_lse[..., None])
            if dropout is not None:
                probs = probs * dropout.multiplier((g.start, n.start), probs.shape, work)
            shared = pk.shape[1] if has_prefix else 0
            result = torch.matmul(probs[..., None, shared:], _gather(v2, keys).to(work)).squeeze(-2)
            if has_prefix:
                result = result + torch.matmul(probs[..., :shared], pv[g])
            out[g, n] = result.to(q.dtype)
            lse[g, n] = chunk_lse
        ctx.save_for_backward(q, k, v, prefix_keys, prefix_values, out, lse, prefix_ok)
        ctx.layout, ctx.scale, ctx.prefix_scale, ctx.dropout = layout, scale, prefix_scale, dropout
        return out.view(batch, heads, length, dim)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, prefix_keys, prefix_values, out, lse, prefix_ok = ctx.saved_tensors
        layout, scale, prefix_scale, dropout = ctx.layout, ctx.scale, ctx.prefix_scale, ctx.dropout
        batch, heads, length, dim = q.shape
        rows = batch * heads
        work = lse.dtype
        q3 = q.reshape(rows, length, dim)
        k2, v2 = k.reshape(rows * length, dim), v.reshape(rows * length, dim)
        do3 = grad_out.reshape(rows, length, dim)
        dq = torch.empty(rows, length, dim, dtype=work, device=q.device)
        dk = torch.zeros(rows * length, dim, dtype=work, device=q.device)
        dv = torch.zeros(rows * length, dim, dtype=work, device=q.device)
        has_prefix = prefix_keys is not None
        shared = prefix_keys.shape[2] if has_prefix else 0
        if has_prefix:
            pk = prefix_keys.reshape(rows, shared, dim).to(work)
            pv = prefix_values.reshape(rows, shared, dim).to(work)
            pok = None if prefix_ok is None else prefix_ok.repeat_interleave(heads, dim=0)
            dpk, dpv = torch.zeros_like(pk), torch.zeros_like(pv)
        for g, n in chunks(rows, length, layout.width * dim, q.device):
            keys, ok = layout.rows(g, n)
            queries, grads = q3[g, n].to(work), do3[g, n].to(work)
            # rowsum(dO * O): with dropout O is the dropped output, and this is still sum_t P_t dP_t
            delta = (grads * out[g, n].to(work)).sum(-1)
            d_probs = _dot_rows(grads, _gather(v2, keys).to(work))  # [G, C, T]
            gathered = _gather(k2, keys).to(work)
            logits = _dot_rows(queries, gathered) * scale
            if ok is not None:
                logits = logits.masked_fill(~ok, float("-inf"))
            probs = torch.exp(logits - lse[g, n, None])
            kept = probs  # the probabilities the forward multiplied the values by
            if dropout is not None:  # the forward's mask again: dP = dP' * mask / (1 - p)
                multiplier = dropout.multiplier(
                    (g.start, n.start), (*probs.shape[:-1], shared + probs.shape[-1]), work
                )
                p_multiplier, multiplier = multiplier[..., :shared], multiplier[..., shared:]
                d_probs = d_probs * multiplier
                kept = probs * multiplier
            d_logits = probs * (d_probs - delta[..., None])  # dS of the softmax
            dq_chunk = torch.matmul(d_logits[..., None, :], gathered).squeeze(-2) * scale
            del gathered
            if has_prefix:
                p_logits = _prefix_logits(queries, pk[g], None if pok is None else pok[g], prefix_scale)
                p_probs = torch.exp(p_logits - lse[g, n, None])
                p_dprobs = torch.matmul(grads, pv[g].transpose(-1, -2))
                p_kept = p_probs
                if dropout is not None:
                    p_dprobs = p_dprobs * p_multiplier
                    p_kept = p_probs * p_multiplier
                p_dlogits = p_probs * (p_dprobs - delta[..., None])
                dq_chunk = dq_chunk + torch.matmul(p_dlogits, pk[g]) * prefix_scale
                dpk[g] += torch.matmul(p_dlogits.transpose(-1, -2), queries) * prefix_scale
                dpv[g] += torch.matmul(p_kept.transpose(-1, -2), grads)
            dq[g, n] = dq_chunk
            flat = keys.reshape(-1)
            dk.index_add_(0, flat, (d_logits[..., None] * (queries * scale)[..., None, :]).reshape(-1, dim))
            dv.index_add_(0, flat, (kept[..., None] * grads[..., None, :]).reshape(-1, dim))
        shape = q.shape
        grads_prefix = (None, None)
        if has_prefix:
            grads_prefix = (
                dpk.view(prefix_keys.shape).to(prefix_keys.dtype),
                dpv.view(prefix_values.shape).to(prefix_values.dtype),
            )
        return (
            dq.view(shape).to(q.dtype),
            dk.view(shape).to(k.dtype),
            dv.view(shape).to(v.dtype),
            *grads_prefix,
            None,
            None,
            None,
            None,
            None,
        )


def attend_slots(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slots: torch.Tensor,
    scale: float,
    *,
    slot_size: int = 1,
    table: torch.Tensor | None = None,
    key_valid: torch.Tensor | None = None,
    slot_ok: torch.Tensor | None = None,
    prefix: tuple[torch.Tensor, torch.Tensor, float, torch.Tensor | None] | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Each query's softmax over the keys its slots name (see the module docstring), [B, H, N, d].

    slots [B, H, N, S] (int32 or int64); table [B, H, E, t] or None; key_valid [B, N'] bool with
    N' >= N (positions >= N are padding) or None; slot_ok [B, H, N, S] bool or None; prefix =
    (keys [B, H, P, d], values [B, H, P, d], scale, valid [B, P] bool or None); dropout_p: attention
    dropout on the probabilities (0 = none).
    """
    batch, heads, length, _ = q.shape
    layout = _Layout(batch, heads, length, slots, slot_size, table, key_valid, slot_ok)
    prefix_keys, prefix_values, prefix_scale, prefix_ok = (
        prefix if prefix is not None else (None, None, 1.0, None)
    )
    dropout = MaskStream(dropout_p, q.device) if dropout_p > 0 else None
    return SelectedAttention.apply(
        q, k, v, prefix_keys, prefix_values, layout, scale, prefix_scale, prefix_ok, dropout
    )


def query_chunk_size(length: int, per_query_elements: int) -> int:
    """How many queries to process at once so a chunk's temporaries stay bounded."""
    return max(1, min(length, _REFERENCE_CHUNK_ELEMENTS // max(1, per_query_elements)))


def attend_selected(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_index: torch.Tensor,
    key_ok: torch.Tensor,
    scale: float,
    prefix: tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
    repeats: bool = False,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Each query's softmax over its selected keys (and an optional shared prefix), [B, H, N, d].

    Query n attends to keys `key_index[..., n, :]` [B, H, N, T] where `key_ok` holds, with logits
    `scale * q_n . k_t`; a key listed twice counts twice. `prefix = (logits_fn, values)` adds
    `logits_fn(q_chunk)` [B, H, C, P] over `values` [B, H, P, d] to the same softmax (MiTA's
    shared expert). `repeats` says a key may be listed twice for one query (otherwise the
    dense form skips the multiplicity weighting). Two exact forms, chosen by memory:

    * gathered: the T selected keys and values of every query, O(N T d) memory;
    * dense-masked: all N scores of a query, with log(multiplicity) added (-inf where a key is not
      selected), O(N^2) memory -- no larger than the gathered form when N <= T d, and much faster
      there (one matmul instead of a gather and its scatter-add backward).

    Half-precision inputs are attended in fp32 (logits, softmax and the weighted sums, autocast
    off); the output has q's dtype. The prefix's `logits_fn` receives the fp32 queries.
    `dropout_p` drops the probabilities of the whole row (prefix and selected keys alike; see
    `_dropout`); autograd keeps the masks.
    """
    out_dtype = q.dtype
    with no_autocast(q):
        work = at_least_fp32(q)
        q, k, v = q.to(work), k.to(work), v.to(work)
        if prefix is not None:
            prefix = (prefix[0], prefix[1].to(work))
        return _attend_selected(q, k, v, key_index, key_ok, scale, prefix, repeats, dropout_p).to(out_dtype)


def _attend_selected(q, k, v, key_index, key_ok, scale, prefix, repeats, dropout_p) -> torch.Tensor:
    batch, heads, length, dim = q.shape
    per_query = key_index.shape[-1]
    dense = SELECTED_PATH == "dense" or (SELECTED_PATH == "auto" and length <= per_query * dim)
    shared = prefix[1].shape[2] if prefix is not None else 0
    width = length if dense else 2 * per_query * dim
    chunk = query_chunk_size(length, batch * heads * (shared + width))
    outputs = []
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        queries, index, ok = q[:, :, start:stop], key_index[:, :, start:stop], key_ok[:, :, start:stop]
        if dense:
            multiplicity = torch.zeros(*index.shape[:-1], length, dtype=q.dtype, device=q.device)
            multiplicity.scatter_add_(-1, index, ok.to(q.dtype))
            logits = torch.matmul(queries, k.transpose(-1, -2)) * scale
            if repeats:  # log(0) is slow on CPU: mask first, then weight repeated keys by log(count)
                logits = logits + multiplicity.clamp(min=1).log()
            logits = logits.masked_fill(multiplicity == 0, float("-inf"))
        else:
            logits = torch.einsum("bhcd,bhctd->bhct", queries, gather_rows(k, index)) * scale
            logits = logits.masked_fill(~ok, float("-inf"))
        if prefix is not None:
            logits = torch.cat([prefix[0](queries), logits], dim=-1)
        probs = drop(torch.softmax(logits, dim=-1), dropout_p)
        out = torch.matmul(probs[..., :shared], prefix[1]) if prefix is not None else 0
        selected = probs[..., shared:]
        if dense:
            out = out + torch.matmul(selected, v)
        else:
            out = out + torch.einsum("bhct,bhctd->bhcd", selected, gather_rows(v, index))
        outputs.append(out)
    return torch.cat(outputs, dim=2)
