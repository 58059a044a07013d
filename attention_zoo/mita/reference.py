r"""MiTA, the readable PyTorch reference (the Triton kernels are tested against this file).

Mixture of Top-k Activations (Wen et al., arXiv 2602.01219; official code QishuaiWen/MiTA). Per
batch row and head, with L valid tokens, m = min(num_landmarks, L), k = min(topk, L), s = d^{-1/2}:

1. landmark queries   :math:`R = \operatorname{pool}_m(Q)` (adaptive average pooling of valid queries);
2. routed experts     :math:`S_j = \operatorname{TopK}_k(r_j^\top K)` over valid keys (unscaled scores);
3. shared expert      :math:`\tilde V = \operatorname{softmax}(s\, R K^\top)\, V` (landmark values);
4. routing            :math:`e(n) = \arg\max_j r_j^\top q_n` (unscaled);
5. output             one softmax over the concatenated logits

.. math::

    \ell_n = \big[\, q_n^\top r_j / d \;\;(j < m) \;\big|\; s\, q_n^\top k_t \;\;(t \in S_{e(n)}) \,\big],
    \qquad o_n = \operatorname{softmax}(\ell_n) \cdot \big[\tilde V ; V_{S_{e(n)}}\big].

The shared logits use 1/d, not 1/sqrt(d): the official code pre-scales the landmark keys by
d^{-1/2} and the attention call scales again. Top-k and argmax carry no gradient; gradients reach
Q (directly and through R, as keys and through \tilde V), K and V (densely through \tilde V and
scattered through the gathered experts).

`shared=False` gives the route-only ablation: each query attends to its routed expert alone, and R
then only chooses indices (it receives no gradient).

Cost: O(m N d) for the landmark scores, values and routing plus O(N (m + k) d) for the output;
the per-query gathers are done in query chunks so memory stays O(N (m + k) d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._common import gather_rows, landmark_pool, query_chunk_size, selection_dtype


def mita_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    num_landmarks: int,
    topk: int,
    *,
    shared: bool = True,
) -> torch.Tensor:
    """MiTA forward in plain PyTorch (autograd gives the backward). Inputs are assumed validated."""
    _, _, length, dim = q.shape
    landmarks, landmark_valid = landmark_pool(q, num_landmarks, key_padding_mask)  # [B, H, M, d], [B, M]
    kept = min(topk, length)

    with torch.no_grad():  # selection only: indices carry no gradient
        work = selection_dtype(q.dtype)
        expert_scores = torch.matmul(landmarks.to(work), k.to(work).transpose(-1, -2))  # [B, H, M, N]
        if key_padding_mask is not None:
            expert_scores = expert_scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
        expert_index = expert_scores.topk(kept, dim=-1).indices  # [B, H, M, k]
        del expert_scores
        routing = torch.matmul(q.to(work), landmarks.to(work).transpose(-1, -2))  # [B, H, N, M]
        routing = routing.masked_fill(~landmark_valid[:, None, None, :], float("-inf"))
        expert = routing.argmax(dim=-1)  # [B, H, N]
        del routing
        # Keys of each query's expert; padded keys are only picked when k exceeds the valid length.
        key_index = expert_index.gather(2, expert[..., None].expand(-1, -1, -1, kept))  # [B, H, N, k]
        key_ok = None
        if key_padding_mask is not None:
            batch = q.shape[0]
            key_ok = key_padding_mask.gather(1, key_index.reshape(batch, -1)).view(key_index.shape)

    scale = dim**-0.5
    if shared:
        key_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        shared_values = F.scaled_dot_product_attention(landmarks, k, v, attn_mask=key_mask)  # [B, H, M, d]
        invalid_landmark = ~landmark_valid[:, None, None, :]
    num_shared = landmarks.shape[2] if shared else 0

    batch, heads = q.shape[:2]
    chunk = query_chunk_size(length, batch * heads * (num_shared + 2 * kept * dim))
    outputs = []
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        queries = q[:, :, start:stop]
        index = key_index[:, :, start:stop]
        routed = torch.einsum("bhcd,bhckd->bhck", queries, gather_rows(k, index)) * scale
        if key_ok is not None:
            routed = routed.masked_fill(~key_ok[:, :, start:stop], float("-inf"))
        if shared:
            shared_logits = torch.matmul(queries, landmarks.transpose(-1, -2)) / dim  # 1/d, see docstring
            shared_logits = shared_logits.masked_fill(invalid_landmark, float("-inf"))
            probs = torch.softmax(torch.cat([shared_logits, routed], dim=-1), dim=-1)
            out = torch.matmul(probs[..., :num_shared], shared_values)
            out = out + torch.einsum("bhck,bhckd->bhcd", probs[..., num_shared:], gather_rows(v, index))
        else:
            probs = torch.softmax(routed, dim=-1)
            out = torch.einsum("bhck,bhckd->bhcd", probs, gather_rows(v, index))
        outputs.append(out)
    return torch.cat(outputs, dim=2)
