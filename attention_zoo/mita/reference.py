r"""MiTA, the readable PyTorch reference (the Triton kernels are tested against this file).

Mixture of Top-k Activations (Wen et al., arXiv 2602.01219; official code QishuaiWen/MiTA). Per
batch row and head, with L valid tokens, m landmarks, k = min(topk, L), s = d^{-1/2}:

1. landmark queries   :math:`R = [r_1; \dots; r_m]`, by default :math:`\operatorname{pool}_m(Q)`
   (adaptive average pooling of the valid queries, m clamped to L; see `make_landmarks` for the
   learned, random and k-means variants);
2. routed experts     :math:`S_j = \operatorname{TopK}_k(r_j^\top K)` over valid keys (unscaled scores);
3. shared expert      :math:`\tilde V = \operatorname{softmax}(s\, R K^\top)\, V` (landmark values);
4. routing            :math:`E(n) = \operatorname{TopK}_{s_r}(R\, q_n)` (unscaled; s_r = `num_routed`,
   1 in the paper: the argmax);
5. output             one softmax over the concatenated logits

.. math::

    \ell_n = \big[\, q_n^\top r_j / d \;\;(j \le m) \;\big|\; s\, q_n^\top k_t \;\;(t \in S_e,\ e \in E(n)) \,\big],
    \qquad o_n = \operatorname{softmax}(\ell_n) \cdot \big[\tilde V ; V_{S_e}, e \in E(n)\big].

The shared logits use 1/d, not 1/sqrt(d): the official code pre-scales the landmark keys by
d^{-1/2} and the attention call scales again. With several routed experts their key sets are
concatenated, so a key chosen by two of them counts twice (as in the official `router_topk=2`
code). Top-k and the routing carry no gradient; gradients reach Q (directly and through R, as keys
and through \tilde V), K and V (densely through \tilde V and scattered through the gathered experts).

`shared=False` gives the route-only ablation: each query attends to its routed experts alone, and R
then only chooses indices (it receives no gradient).

Cost: O(m N d) for the landmark scores, values and routing plus O(N (m + k) d) for the output;
the output is computed in query chunks so memory stays O(N (m + k) d) (`_selected_keys.attend_selected`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._common import at_least_fp32, landmark_pool, no_autocast, selection_dtype, valid_lengths
from .._selected_keys import attend_selected
from . import diagnostics

LANDMARK_MODES = ("avgpool", "learned", "avgpool+learned", "random", "kmeans")
RANDOM_EVAL_SEED = 20_260_201  # fixed landmark draw in evaluation, so eval is deterministic


def make_landmarks(
    q: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    num_landmarks: int,
    mode: str = "avgpool",
    *,
    landmark_queries: torch.Tensor | None = None,
    training: bool = False,
    kmeans_iters: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmark queries R [B, H, M, d] and their validity [B, M] for the given construction.

    * ``avgpool``: adaptive average pooling of the valid queries (the paper's choice); m clamped to L.
    * ``learned``: m learned vectors `landmark_queries` [H, m, d] (parameters of the layer).
    * ``avgpool+learned``: the pooled landmarks plus the learned vectors.
    * ``random``: m distinct random valid tokens' queries, redrawn at every training forward and
      drawn with a fixed seed in evaluation (the draw depends only on the valid tokens, so padding
      stays invisible); m clamped to L.
    * ``kmeans``: `kmeans_iters` Lloyd iterations (Euclidean) on each head's valid queries,
      initialised from the pooled landmarks; the final centroids are means of their assigned
      queries (differentiable, assignments fixed); an emptied cluster keeps its previous centroid.
    """
    if mode in ("avgpool", "avgpool+learned", "kmeans"):
        landmarks, valid = landmark_pool(q, num_landmarks, key_padding_mask)
        if mode == "avgpool+learned":
            landmarks = landmarks + _learned(landmark_queries, q, num_landmarks)[:, :, : landmarks.shape[2]]
        elif mode == "kmeans":
            landmarks = _kmeans(q, key_padding_mask, landmarks, valid, kmeans_iters)
        return landmarks, valid
    if mode == "learned":
        landmarks = _learned(landmark_queries, q, num_landmarks).expand(q.shape[0], -1, -1, -1)
        return landmarks, torch.ones(q.shape[0], num_landmarks, dtype=torch.bool, device=q.device)
    if mode == "random":
        return _random_landmarks(q, key_padding_mask, num_landmarks, training)
    raise ValueError(f"unknown landmark construction {mode!r}; valid: {', '.join(LANDMARK_MODES)}")


def _learned(landmark_queries: torch.Tensor | None, q: torch.Tensor, num_landmarks: int) -> torch.Tensor:
    heads, dim = q.shape[1], q.shape[3]
    if landmark_queries is None or tuple(landmark_queries.shape) != (heads, num_landmarks, dim):
        got = None if landmark_queries is None else tuple(landmark_queries.shape)
        raise ValueError(
            f"learned landmarks need landmark_queries of shape [H, m, d] = {(heads, num_landmarks, dim)}; got {got} "
            "(the MultiHeadAttention layer creates them)"
        )
    return landmark_queries.to(q.dtype)[None]


def _random_landmarks(
    q: torch.Tensor, key_padding_mask: torch.Tensor | None, num_landmarks: int, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, heads, length, dim = q.shape
    slots = min(num_landmarks, length)
    lengths = valid_lengths(key_padding_mask, batch, length, q.device)
    rank = (
        torch.arange(length, device=q.device).expand(batch, length)
        if key_padding_mask is None
        else torch.cumsum(key_padding_mask.long(), dim=1) - 1
    )
    if training:
        draws = torch.rand(batch, length, device=q.device)
    else:
        # One fixed stream, indexed by a token's rank among the valid ones: a sequence gets the
        # same landmarks whatever its padding, its row in the batch or the batch size.
        generator = torch.Generator().manual_seed(RANDOM_EVAL_SEED)
        draws = torch.rand(length, generator=generator).expand(batch, length).to(q.device)
    keys = draws.gather(1, rank.clamp(min=0))
    if key_padding_mask is not None:
        keys = keys.masked_fill(~key_padding_mask, -1.0)
    position = keys.topk(slots, dim=1).indices  # valid tokens first, in random order
    landmarks = q.gather(2, position[:, None, :, None].expand(batch, heads, slots, dim))
    valid = torch.arange(slots, device=q.device)[None, :] < torch.clamp(lengths, max=num_landmarks)[:, None]
    return landmarks, valid


def _kmeans(
    q: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    init: torch.Tensor,
    valid: torch.Tensor,
    iters: int,
) -> torch.Tensor:
    if iters == 0:
        return init
    batch, _, length, _ = q.shape
    token_ok = (
        torch.ones(batch, length, dtype=torch.bool, device=q.device)
        if key_padding_mask is None
        else key_padding_mask
    )

    def assign(centroids: torch.Tensor) -> torch.Tensor:
        dist = (
            (q * q).sum(-1, keepdim=True)
            - 2 * torch.matmul(q, centroids.transpose(-1, -2))
            + (centroids * centroids).sum(-1)[:, :, None, :]
        )
        dist = dist.masked_fill(~valid[:, None, None, :], float("inf"))
        members = F.one_hot(dist.argmin(-1), centroids.shape[2]).to(q.dtype)  # [B, H, N, M]
        return members * token_ok[:, None, :, None].to(q.dtype)

    def update(members: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        counts = members.sum(2)[..., None]  # [B, H, M, 1]
        means = torch.matmul(members.transpose(-1, -2), q) / counts.clamp(min=1)
        return torch.where(counts > 0, means, previous)

    with torch.no_grad():
        centroids = init.detach()
        for _ in range(iters - 1):
            centroids = update(assign(centroids), centroids)
        members = assign(centroids)
    # The last update with gradients: centroids are means of their (fixed) members.
    previous = init if iters == 1 else centroids
    return update(members, previous)


def mita_reference(
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
    """MiTA forward from given landmarks (autograd gives the backward). Inputs are assumed validated.
    `dropout_p` drops the probabilities of the landmark attention and of the output softmax.
    Half-precision inputs are attended in fp32 (see `attend_selected`); the output has q's dtype."""
    batch, heads, length, dim = q.shape
    kept = min(topk, length)
    routed_experts = min(num_routed, landmarks.shape[2])

    with torch.no_grad():  # selection only: indices carry no gradient
        work = selection_dtype(q.dtype)
        expert_scores = torch.matmul(landmarks.to(work), k.to(work).transpose(-1, -2))  # [B, H, M, N]
        if key_padding_mask is not None:
            expert_scores = expert_scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
        expert_index = expert_scores.topk(kept, dim=-1, sorted=False).indices  # [B, H, M, k]
        del expert_scores
        routing = torch.matmul(q.to(work), landmarks.to(work).transpose(-1, -2))  # [B, H, N, M]
        routing = routing.masked_fill(~landmark_valid[:, None, None, :], float("-inf"))
        if routed_experts == 1:  # the paper's argmax (first maximum on ties)
            expert = routing.argmax(dim=-1, keepdim=True)
            route_scores = routing.gather(-1, expert)
        else:
            # sorted: the first expert is the best one (diagnostics read it as the query's first choice)
            route_scores, expert = routing.topk(routed_experts, dim=-1, sorted=True)  # [B, H, N, s]
        del routing
        # Keys of each query's experts, concatenated; a slot is usable if its expert is a valid
        # landmark and its key is a real token (padded keys are only picked when k exceeds L).
        key_index = expert_index.gather(
            2, expert.reshape(batch, heads, -1, 1).expand(-1, -1, -1, kept)
        ).reshape(batch, heads, length, routed_experts * kept)
        key_ok = torch.isfinite(route_scores).repeat_interleave(kept, dim=-1)
        if key_padding_mask is not None:
            key_ok &= key_padding_mask.gather(1, key_index.reshape(batch, -1)).view(key_index.shape)
        if diagnostics.active():
            diagnostics.record(
                q, k, key_padding_mask, expert_index, expert, key_index, key_ok, landmark_valid
            )

    scale = dim**-0.5
    if not shared:
        return attend_selected(
            q, k, v, key_index, key_ok, scale, repeats=routed_experts > 1, dropout_p=dropout_p
        )
    key_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    work = at_least_fp32(q)
    landmarks = landmarks.to(work)
    with no_autocast(q):  # landmark values and shared logits in at least fp32, as attend_selected
        shared_values = F.scaled_dot_product_attention(
            landmarks, k.to(work), v.to(work), attn_mask=key_mask, dropout_p=dropout_p
        )
    invalid_landmark = ~landmark_valid[:, None, None, :]

    def shared_logits(queries: torch.Tensor) -> torch.Tensor:
        logits = torch.matmul(queries, landmarks.transpose(-1, -2)) / dim  # 1/d, see the docstring
        return logits.masked_fill(invalid_landmark, float("-inf"))

    return attend_selected(
        q,
        k,
        v,
        key_index,
        key_ok,
        scale,
        prefix=(shared_logits, shared_values),
        repeats=routed_experts > 1,
        dropout_p=dropout_p,
    )
