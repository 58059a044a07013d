"""Optional MiTA diagnostics, off by default: what the routing actually does.

    with attention_zoo.mita.diagnostics.collect() as calls:
        model(tokens)
    calls[0]["pruned_fraction"], calls[0]["overlap"], calls[0]["expert_load"]

One dict per MiTA call (per layer, in call order), averaged over batch rows and heads:

* ``expert_load``: fraction of the valid queries whose first-choice expert is each landmark [M];
  ``load_max`` its maximum and ``load_entropy`` its entropy normalised by log(m) (1 = balanced).
* ``pruned_fraction``: fraction of valid keys selected by no expert -- tokens that reach the
  output only through the compressed landmark values (the paper's "token pruning").
* ``overlap``: for each valid query, the fraction of its own full-attention top-k keys (k = the
  expert size) that are among the keys it attends through its routed experts.

Collecting costs an extra O(N^2 d) score pass for the overlap; it never changes outputs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

_COLLECTORS: list[list[dict[str, Any]]] = []


@contextlib.contextmanager
def collect() -> Iterator[list[dict[str, Any]]]:
    """Record diagnostics of every MiTA call (torch backend) inside the block."""
    calls: list[dict[str, Any]] = []
    _COLLECTORS.append(calls)
    try:
        yield calls
    finally:
        _COLLECTORS.remove(calls)


def active() -> bool:
    return bool(_COLLECTORS)


@torch.no_grad()
def record(
    q: torch.Tensor,
    k: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    expert_index: torch.Tensor,
    expert: torch.Tensor,
    key_index: torch.Tensor,
    key_ok: torch.Tensor,
    landmark_valid: torch.Tensor,
) -> None:
    """Compute one call's statistics and append them to every active collector."""
    batch, heads, length, _ = q.shape
    num_landmarks, kept = expert_index.shape[2], expert_index.shape[3]
    token_ok = (
        torch.ones(batch, length, dtype=torch.bool, device=q.device)
        if key_padding_mask is None
        else key_padding_mask
    )
    valid_queries = token_ok[:, None, :].expand(batch, heads, length).float()

    first = torch.nn.functional.one_hot(expert[..., 0], num_landmarks).float()  # [B, H, N, M]
    load = (first * valid_queries[..., None]).sum(2) / valid_queries.sum(-1, keepdim=True)  # [B, H, M]
    mean_load = load.mean(dim=(0, 1))
    m_valid = landmark_valid.sum(-1).float()  # [B]
    entropy = -(load * load.clamp(min=1e-12).log()).sum(-1)  # [B, H]
    norm = torch.where(m_valid > 1, m_valid.log(), torch.ones_like(m_valid))[:, None]

    # Keys chosen by at least one valid expert.
    usable = landmark_valid[:, None, :, None].expand(batch, heads, num_landmarks, kept).long()
    chosen = torch.zeros(batch, heads, length, dtype=torch.long, device=q.device)
    chosen = chosen.scatter_reduce(2, expert_index.flatten(2), usable.flatten(2), reduce="amax").bool()
    pruned = ((~chosen) & token_ok[:, None, :]).sum(-1).float() / token_ok.sum(-1)[:, None].float()

    # Overlap of attended routed keys with each query's own top-k (chunked over queries).
    overlap_sum = torch.zeros(batch, heads, device=q.device)
    chunk = max(1, (1 << 22) // max(1, batch * heads * length))
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        scores = torch.matmul(q[:, :, start:stop].float(), k.float().transpose(-1, -2))
        scores = scores.masked_fill(~token_ok[:, None, None, :], float("-inf"))
        own = torch.zeros_like(scores, dtype=torch.bool)
        own.scatter_(-1, scores.topk(kept, dim=-1).indices, True)
        own &= token_ok[:, None, None, :]
        attended = (
            torch.zeros_like(own, dtype=torch.long)
            .scatter_reduce(-1, key_index[:, :, start:stop], key_ok[:, :, start:stop].long(), reduce="amax")
            .bool()
        )
        hits = (own & attended).sum(-1).float() / own.sum(-1).clamp(min=1).float()  # [B, H, C]
        overlap_sum += (hits * valid_queries[:, :, start:stop]).sum(-1)
    overlap = float((overlap_sum / valid_queries.sum(-1)).mean())

    stats = {
        "num_landmarks": num_landmarks,
        "topk": kept,
        "expert_load": mean_load.cpu().tolist(),
        "load_max": float(load.max(-1).values.mean()),
        "load_entropy": float((entropy / norm).mean()) if num_landmarks > 1 else 1.0,
        "pruned_fraction": float(pruned.mean()),
        "overlap": overlap if math.isfinite(overlap) else float("nan"),
        "length": length,
    }
    for calls in _COLLECTORS:
        calls.append(dict(stats))
