r"""Per-query top-k attention (Gupta et al., 2021): each query keeps only its k largest scores.

.. math::

    a_n = s\, q_n^\top K^\top, \qquad T_n = \operatorname{TopK}_k(a_n), \qquad
    o_n = \sum_{t \in T_n} \frac{e^{a_{nt}}}{\sum_{u \in T_n} e^{a_{nu}}}\, v_t, \qquad s = d^{-1/2},

over valid keys only, with k clamped to the number of valid keys (k >= N is full attention). All
N^2 scores are still formed -- this saves memory, not FLOPs -- in query chunks, so only a
[chunk, N] score block exists at a time; the attention over the kept keys then costs O(N k d)
memory (`_common.attend_selected`). Gradients reach the selected scores only; the selection
itself is not differentiable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import attend_selected, check_inputs, query_chunk_size, selection_dtype
from .registry import AttentionParams, register


@dataclass(frozen=True)
class TopkParams(AttentionParams):
    topk: int = 64

    def check(self) -> None:
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1; got {self.topk}")


@register(
    "topk",
    TopkParams,
    summary="per-query softmax over its top-k scores only (all N^2 scores formed, chunked)",
    keys_per_query=lambda p, n: min(p.topk, n),
)
def topk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    topk: int,
) -> torch.Tensor:
    """Per-query top-`topk` softmax attention. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("topk_attention", q, k, v, key_padding_mask)
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
    return attend_selected(q, k, v, torch.cat(indices, dim=2), torch.cat(oks, dim=2), scale)
