r"""MiTA's torch fast path (``backend="torch"``): the reference's selection, then a chunked attention
that recomputes instead of saving each query's gathered keys.

Same equation and selection as `reference.mita_reference` (fp32-at-least landmark scores with
`torch.topk` per landmark row, routing by argmax -- first maximum on ties -- or a sorted top-s):

.. math::

    o_n = \operatorname{softmax}\big([\, q_n^\top R^\top / d \;|\; s\, q_n^\top K_{S_{e}}^\top,\ e \in E(n) \,]\big)
          \cdot [\tilde V ; V_{S_e}].

What changes is the memory. The reference hands per-query key lists [B, H, N, s k] to
`_selected_keys.attend_selected`, whose gathered keys autograd keeps: O(N s k d). Here the experts' key
lists stay per expert (an int32 table [B, H, m, k]), each query keeps only its expert ids, and
`_selected_keys.SelectedAttention` gathers a query chunk's keys when it needs them, in the forward and
again in the backward, with the shared expert (R, \tilde V) as a prefix of the same softmax. Beyond
the inputs and outputs this costs O(m N) for the landmark scores and O(N s) for the routing.
Cost: O(m N d) for the landmark scores, values and routing and O(N (m + s k) d) for the attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._common import at_least_fp32, no_autocast, selection_dtype
from .._selected_keys import attend_slots, chunks
from . import diagnostics


def expert_selection(
    q: torch.Tensor,
    k: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    landmarks: torch.Tensor,
    landmark_valid: torch.Tensor,
    kept: int,
    routed_experts: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(expert keys int32 [B, H, m, kept], each query's experts int32 [B, H, N, s], whether each of
    them is a valid landmark [B, H, N, s]), computed as `mita_reference` does, in chunks."""
    batch, heads, length, dim = q.shape
    slots = landmarks.shape[2]
    rows = batch * heads
    work = selection_dtype(q.dtype)
    with torch.no_grad():
        lm = landmarks.detach().to(work).expand(batch, heads, slots, dim).reshape(rows, slots, dim)
        k3 = k.detach().reshape(rows, length, dim)
        q3 = q.detach().reshape(rows, length, dim)
        invalid_key = None if key_padding_mask is None else ~key_padding_mask.repeat_interleave(heads, dim=0)
        expert_index = torch.empty(rows, slots, kept, dtype=torch.int32, device=q.device)
        for g, j in chunks(rows, slots, length, q.device):
            scores = torch.matmul(lm[g, j], k3[g].to(work).transpose(-1, -2))  # [G, c, N]
            if invalid_key is not None:
                scores = scores.masked_fill(invalid_key[g, None, :], float("-inf"))
            expert_index[g, j] = scores.topk(kept, dim=-1, sorted=False).indices.to(torch.int32)
        invalid_landmark = ~landmark_valid.repeat_interleave(heads, dim=0)[:, None, :]  # [BH, 1, m]
        expert = torch.empty(rows, length, routed_experts, dtype=torch.int32, device=q.device)
        expert_ok = torch.empty(rows, length, routed_experts, dtype=torch.bool, device=q.device)
        for g, n in chunks(rows, length, slots, q.device):
            routing = torch.matmul(q3[g, n].to(work), lm[g].transpose(-1, -2))  # [G, C, m]
            routing = routing.masked_fill(invalid_landmark[g], float("-inf"))
            if routed_experts == 1:  # the paper's argmax (first maximum on ties)
                chosen = routing.argmax(dim=-1, keepdim=True)
                scores = routing.gather(-1, chosen)
            else:
                scores, chosen = routing.topk(routed_experts, dim=-1, sorted=True)
            expert[g, n] = chosen.to(torch.int32)
            expert_ok[g, n] = torch.isfinite(scores)
    shape = (batch, heads)
    return (
        expert_index.view(*shape, slots, kept),
        expert.view(*shape, length, -1),
        expert_ok.view(*shape, length, -1),
    )


def mita_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    landmarks: torch.Tensor,
    landmark_valid: torch.Tensor,
    topk: int,
    *,
    num_routed: int = 1,
    shared: bool = True,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """MiTA forward from given landmarks, same arguments and result as `mita_reference` (dropout
    masks drawn differently: the same distribution, not the same draws)."""
    batch, heads, length, dim = q.shape
    kept = min(topk, length)
    routed_experts = min(num_routed, landmarks.shape[2])
    expert_index, expert, expert_ok = expert_selection(
        q, k, key_padding_mask, landmarks, landmark_valid, kept, routed_experts
    )
    if diagnostics.active():
        _record(q, k, key_padding_mask, expert_index, expert, expert_ok, landmark_valid)
    prefix = None
    if shared:
        key_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        work = at_least_fp32(q)  # landmark values in at least fp32, as the attention below
        landmarks = landmarks.to(work)
        with no_autocast(q):
            shared_values = F.scaled_dot_product_attention(
                landmarks, k.to(work), v.to(work), attn_mask=key_mask, dropout_p=dropout_p
            )  # [B, H, m, d]
        # shared logits use 1/d (see reference.py); invalid landmarks are masked
        prefix = (landmarks.expand(batch, heads, -1, -1), shared_values, 1.0 / dim, landmark_valid)
    return attend_slots(
        q,
        k,
        v,
        expert,
        dim**-0.5,
        table=expert_index,
        key_valid=key_padding_mask,
        slot_ok=None if bool(expert_ok.all()) else expert_ok,
        prefix=prefix,
        dropout_p=dropout_p,
    )


def _record(q, k, key_padding_mask, expert_index, expert, expert_ok, landmark_valid) -> None:
    """Hand the selection to the active diagnostics collectors in the reference's layout."""
    batch, heads, length, _ = q.shape
    kept = expert_index.shape[-1]
    index, chosen = expert_index.long(), expert.long()
    key_index = index.gather(2, chosen.reshape(batch, heads, -1, 1).expand(-1, -1, -1, kept)).reshape(
        batch, heads, length, -1
    )
    key_ok = expert_ok.repeat_interleave(kept, dim=-1)
    if key_padding_mask is not None:
        key_ok &= key_padding_mask.gather(1, key_index.reshape(batch, -1)).view(key_index.shape)
    diagnostics.record(q, k, key_padding_mask, index, chosen, key_index, key_ok, landmark_valid)
