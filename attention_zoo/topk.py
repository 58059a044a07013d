r"""Per-query top-k attention (Gupta et al., 2021): each query keeps only its k largest scores.

.. math::

    a_n = s\, q_n^\top K^\top, \qquad T_n = \operatorname{TopK}_k(a_n), \qquad
    o_n = \sum_{t \in T_n} \frac{e^{a_{nt}}}{\sum_{u \in T_n} e^{a_{nu}}}\, v_t, \qquad s = d^{-1/2},

over valid keys only, with k clamped to the number of valid keys (k >= N is full attention). All
N^2 scores are still formed for the selection -- this saves memory, not FLOPs -- in query chunks,
so only a [chunk, N] score block exists at a time. Gradients reach the selected scores only; the
selection itself is not differentiable.

Backends (`backend`), all exact and selecting the same keys (the same fp32 scores and `torch.topk`
on each query's row, so ties resolve alike):

* ``reference``: the readable form; autograd keeps each query's gathered keys, O(N k d) memory.
* ``torch``: the selection keeps only the int32 indices; `_selected_keys.SelectedAttention` attends over
  them in chunks and recomputes the gathered keys in the backward, O(N k) memory beyond the
  inputs and outputs.
* ``flex``: `torch.nn.attention.flex_attention` with a mask read from a per-query bitmap of the
  selected keys (N^2 / 8 bytes); CUDA (on CPU only without gradients, in eager mode).
* ``auto``: torch. (The flex mask keeps nearly every tile -- top-k keys are scattered -- so it does
  the full N^2 attention work on top of the selection; the torch path's gathers do O(N k d).)

Attention dropout (`dropout_p`, training only): on the probabilities over each query's selected
keys. The reference and torch paths apply it; FlexAttention has no dropout, so `flex` runs the
torch path when `dropout_p > 0`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from . import _flex_attention
from ._common import check_inputs, selection_dtype
from ._dropout import check_p
from ._flex_attention import resolve_backend
from ._selected_keys import attend_selected, attend_slots, chunks, query_chunk_size
from .registry import AttentionParams, register

Backend = Literal["auto", "torch", "flex", "reference"]


@dataclass(frozen=True)
class TopkParams(AttentionParams):
    topk: int = 64
    backend: Backend = "auto"

    def check(self) -> None:
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1; got {self.topk}")


@register(
    "topk",
    TopkParams,
    summary="per-query softmax over its top-k scores only (all N^2 scores formed, chunked)",
    keys_per_query=lambda p, n: min(p.topk, n),
    attention_dropout=True,
)
def topk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    topk: int,
    backend: Backend = "auto",
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Per-query top-`topk` softmax attention. q, k, v: [B, H, N, d]; mask [B, N], True = real;
    `dropout_p`: dropout on the attention probabilities (flex then runs the torch path)."""
    check_inputs("topk_attention", q, k, v, key_padding_mask)
    check_p("topk_attention", dropout_p)
    # FlexAttention has no dropout
    path = resolve_backend(
        "topk_attention", "torch" if backend == "flex" and dropout_p > 0 else backend, (q, k, v)
    )
    if path == "reference":
        return topk_reference(q, k, v, key_padding_mask, topk, dropout_p)
    index = topk_indices(q, k, key_padding_mask, min(topk, q.shape[2]))
    if path == "flex":
        return _flex_attention.attend_indices(q, k, v, index, key_padding_mask)
    return attend_slots(q, k, v, index, q.shape[-1] ** -0.5, key_valid=key_padding_mask, dropout_p=dropout_p)


def topk_indices(
    q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None, kept: int
) -> torch.Tensor:
    """Each query's `kept` highest-scoring valid keys, int32 [B, H, N, kept] (padded keys only when
    kept exceeds the valid length). The scores are the reference's: fp32 (at least) q . k rows."""
    batch, heads, length, dim = q.shape
    work = selection_dtype(q.dtype)
    q3, k3 = q.detach().reshape(batch * heads, length, dim), k.detach().reshape(batch * heads, length, dim)
    index = torch.empty(batch * heads, length, kept, dtype=torch.int32, device=q.device)
    invalid = None if key_padding_mask is None else ~key_padding_mask.repeat_interleave(heads, dim=0)
    for g, n in chunks(batch * heads, length, length, q.device):
        scores = torch.matmul(q3[g, n].to(work), k3[g].to(work).transpose(-1, -2))
        if invalid is not None:
            scores = scores.masked_fill(invalid[g, None, :], float("-inf"))
        index[g, n] = scores.topk(kept, dim=-1, sorted=False).indices.to(torch.int32)
    return index.view(batch, heads, length, kept)


def topk_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    topk: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """The readable form: chunked selection, then `attend_selected` (autograd saves gathered keys)."""
    batch, heads, length, dim = q.shape
    kept = min(topk, length)
    scale = dim**-0.5
    chunk = query_chunk_size(length, batch * heads * length)
    indices, oks = [], []
    with torch.no_grad():  # selection only; the attention below recomputes the kept scores
        for start in range(0, length, chunk):
            # selection scores in at least fp32 (ties and near-ties multiply in bf16)
            work = selection_dtype(q.dtype)
            scores = torch.matmul(q[:, :, start : start + chunk].to(work), k.to(work).transpose(-1, -2))
            if key_padding_mask is not None:
                scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
            values, index = scores.topk(kept, dim=-1, sorted=False)
            indices.append(index)
            # Padded keys are only "selected" when k exceeds the valid length; they get weight 0.
            oks.append(torch.isfinite(values))
    return attend_selected(
        q, k, v, torch.cat(indices, dim=2), torch.cat(oks, dim=2), scale, dropout_p=dropout_p
    )
