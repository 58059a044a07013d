r"""Agent attention (Han et al., ECCV 2024): compression only, two softmax stages through pooled agents.

.. math::

    A = \operatorname{pool}_m(Q), \qquad
    \tilde V = \operatorname{softmax}\!\left(s\, A K^\top\right) V, \qquad
    O = \operatorname{softmax}\!\left(s\, Q A^\top\right) \tilde V, \qquad s = d^{-1/2},

with `pool_m` the landmark pooling of the valid queries (see `_common.landmark_pool`), m clamped to
the number of valid tokens, and padded keys excluded from the first softmax. This is the plain
two-softmax form (no agent bias, no depthwise convolution): the bias is tied to a fixed 2-D grid and
has no meaning for variable-length sequences. Half-precision inputs are computed in fp32 (pooled agents
rounded to half precision would round every logit). Cost O(N m d) time and memory.

Attention dropout (`dropout_p`): on the probabilities of both softmax stages, as the authors' code
applies its `attn_drop` to the agent and the query attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import at_least_fp32, check_inputs, landmark_pool, no_autocast
from ._dropout import check_p
from .registry import AttentionParams, register


@dataclass(frozen=True)
class AgentParams(AttentionParams):
    num_agents: int = 64

    def check(self) -> None:
        if self.num_agents < 1:
            raise ValueError(f"num_agents must be >= 1; got {self.num_agents}")


@register(
    "agent",
    AgentParams,
    summary="pooled agents: softmax(s q A^T) softmax(s A K^T) V (compression only)",
    keys_per_query=lambda p, n: min(p.num_agents, n),
    attention_dropout=True,
)
def agent_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_agents: int,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Agent attention with `num_agents` pooled agents. q, k, v: [B, H, N, d]; mask [B, N], True = real;
    `dropout_p`: dropout on both softmax stages."""
    check_inputs("agent_attention", q, k, v, key_padding_mask)
    check_p("agent_attention", dropout_p)
    work = at_least_fp32(q)
    with no_autocast(q):
        q_, k_, v_ = q.to(work), k.to(work), v.to(work)
        agents, agent_valid = landmark_pool(q_, num_agents, key_padding_mask)
        key_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        agent_values = F.scaled_dot_product_attention(agents, k_, v_, attn_mask=key_mask, dropout_p=dropout_p)
        out = F.scaled_dot_product_attention(
            q_, agents, agent_values, attn_mask=agent_valid[:, None, None, :], dropout_p=dropout_p
        )
    return out.to(q.dtype)
