r"""cosFormer (Qin et al., ICLR 2022): ReLU features with a cos-based re-weighting by position.

.. math::

    \theta_i = \frac{\pi}{2} \frac{i}{L}, \qquad
    q'_i = \begin{bmatrix} \operatorname{relu}(q_i) \sin\theta_i \\ \operatorname{relu}(q_i) \cos\theta_i \end{bmatrix},
    \quad k'_j \text{ likewise}, \qquad
    o_i = \frac{\sum_j (q'_i \cdot k'_j)\, v_j}{\max\!\left(10^{-6},\; q'_i \cdot \sum_j k'_j\right)},

where i = 1..L is the rank of a token among the L valid tokens of its row (L is the valid length, not
the padded one) and j runs over the valid keys. Since cos(theta_i - theta_j) = sin sin + cos cos, the
weight of key j for query i is relu(q_i) . relu(k_j) cos(pi/2 (i - j) / L). Feature sums are
accumulated in at least fp32; the output has the input's dtype. Cost O(N d^2) time, O(N d + d^2)
memory; no N x N tensor.

No attention dropout: kernelized, the N x N weights are never formed; the layer's
`attention_dropout` is a documented no-op here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._common import at_least_fp32, check_inputs, no_autocast, valid_lengths
from ._kernelized import valid_ranks, zero_padded
from .linear import kernel_attention
from .registry import AttentionParams, register

EPS = 1e-6


@dataclass(frozen=True)
class CosformerParams(AttentionParams):
    """cosFormer has no parameters."""


def cos_reweighted(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """[relu(x) sin(theta); relu(x) cos(theta)] along the last axis: x [B, H, N, d], theta [B, N]."""
    features = torch.relu(x)
    theta = theta[:, None, :, None].to(x.dtype)
    return torch.cat([features * torch.sin(theta), features * torch.cos(theta)], dim=-1)


@register(
    "cosformer",
    CosformerParams,
    summary="relu features re-weighted by cos(pi/2 (i - j) / L), linear in N (kernelized)",
    keys_per_query=lambda p, n: n,
)
def cosformer_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """cosFormer attention. q, k, v: [B, H, N, d]; mask [B, N], True = real."""
    check_inputs("cosformer_attention", q, k, v, key_padding_mask)
    batch, _, length, _ = q.shape
    rank, _ = valid_ranks(key_padding_mask, batch, length, q.device)
    lengths = valid_lengths(key_padding_mask, batch, length, q.device)
    # theta in fp64 (exact ranks), then cast: position i = rank + 1 of L
    theta = (math.pi / 2) * (rank + 1).double() / lengths[:, None].double()
    work = at_least_fp32(q)  # feature sums in at least fp32: they overflow half precision
    with no_autocast(q):
        q_, k_, v_ = q.to(work), k.to(work), v.to(work)
        phi_k = zero_padded(cos_reweighted(k_, theta), key_padding_mask)
        out = kernel_attention(cos_reweighted(q_, theta), phi_k, v_, EPS, clamp=True)
    return out.to(q.dtype)
