r"""Nyströmformer (Xiong et al., AAAI 2021): softmax attention through m pooled landmarks.

.. math::

    A_1 = \operatorname{softmax}(s\, Q \tilde K^\top), \quad
    A_2 = \operatorname{softmax}(s\, \tilde Q \tilde K^\top), \quad
    A_3 = \operatorname{softmax}(s\, \tilde Q K^\top), \qquad
    O = A_1\, Z\, (A_3 V) + \operatorname{conv}(V), \qquad s = d^{-1/2},

with Q~, K~ the m = min(`num_landmarks`, L) landmark means of the L valid queries and keys over
the adaptive-pool windows of `_common.landmark_pool` (ranks [floor(jL/m), ceil((j+1)L/m))), A_3
over the valid keys only, and Z the Newton--Schulz pseudo-inverse of A_2:

.. math::

    Z_0 = \frac{A_2^\top}{\lVert A_2 \rVert_1 \lVert A_2 \rVert_\infty}, \qquad
    Z \leftarrow \tfrac14 Z \left(13 I - A_2 Z \left(15 I - A_2 Z (7 I - A_2 Z)\right)\right)
    \quad (\text{`pinv_iters` times}),

the norms (max column sum, max row sum) taken per matrix, i.e. per row and head (the published
code takes them over the whole batch, so a row's output depends on its batch neighbours). conv is a
depthwise convolution of V along the valid tokens (per head, shared across channels, zero
beyond the valid tokens; `conv_kernel` taps, 0 = none), whose weight [H, conv_kernel] the attention
layer learns; without one the functional uses a fixed seeded weight with PyTorch's default
convolution initialisation. Everything is computed in at least fp32, with autocast off.

Attention dropout (`dropout_p`): on A_1 and A_3, the softmax factors that weigh values; never on
A_2, whose pseudo-inverse a dropped entry would throw off. (The PyTorch LRA lineage's Nyströmformer
applies none; its softmax baseline applies `attention_dropout` to its attention matrix.)
Cost O(N m d + m^3) time, O(N m) memory; no N x N tensor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._common import at_least_fp32, check_inputs, landmark_pool, no_autocast, valid_lengths
from ._dropout import check_p
from ._kernelized import newton_schulz_pinv, valid_first
from .registry import AttentionParams, register

# Seed of the fixed convolution weight the functional uses when given none.
DEFAULT_CONV_SEED = 0


@dataclass(frozen=True)
class NystromParams(AttentionParams):
    # 64 landmarks and a 35-tap convolution: the Nyströmformer PyTorch LRA configs ("nystrom-64",
    # conv_kernel_size 35), the setting of its Table 3.
    num_landmarks: int = 64
    # Six Newton--Schulz iterations, as in the paper and its code.
    pinv_iters: int = 6
    conv_kernel: int = 35

    def check(self) -> None:
        if self.num_landmarks < 1:
            raise ValueError(f"num_landmarks must be >= 1; got {self.num_landmarks}")
        if self.pinv_iters < 1:
            raise ValueError(f"pinv_iters must be >= 1; got {self.pinv_iters}")
        if self.conv_kernel < 0:
            raise ValueError(f"conv_kernel must be >= 0 (0 = no convolution); got {self.conv_kernel}")


def _conv_init(num_heads: int, conv_kernel: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """PyTorch's default depthwise-convolution init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = taps."""
    bound = conv_kernel**-0.5
    return (torch.rand(num_heads, conv_kernel, generator=generator) * 2 - 1) * bound


@functools.lru_cache(maxsize=8)
def _default_conv_weight(num_heads: int, conv_kernel: int) -> torch.Tensor:
    return _conv_init(num_heads, conv_kernel, torch.Generator().manual_seed(DEFAULT_CONV_SEED))


def default_conv_weight(num_heads: int, conv_kernel: int) -> torch.Tensor:
    """The fixed seeded weight [num_heads, conv_kernel] used when none is given."""
    return _default_conv_weight(num_heads, conv_kernel).clone()


def _layer_conv(params: NystromParams, num_heads: int, head_dim: int, max_length: int) -> dict:
    return {"conv_weight": _conv_init(num_heads, params.conv_kernel)} if params.conv_kernel else {}


def valid_token_conv(
    v: torch.Tensor, weight: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> torch.Tensor:
    """Depthwise convolution along the valid tokens of v [B, H, N, d] with weight [H, taps], zero
    beyond them ('same' padding: output t = sum_u w[u] v[t + u - (taps - 1) // 2])."""
    batch, heads, length, dim = v.shape
    kernel = weight.to(v.dtype)[:, None, :, None]  # [H, 1, taps, 1]: along N, shared across d
    if key_padding_mask is None:
        return F.conv2d(v, kernel, padding="same", groups=heads)
    order = valid_first(key_padding_mask)[:, None, :, None].expand(batch, heads, length, dim)
    lengths = valid_lengths(key_padding_mask, batch, length, v.device)
    in_range = (torch.arange(length, device=v.device) < lengths[:, None])[:, None, :, None]
    packed = torch.where(in_range, v.gather(2, order), torch.zeros((), dtype=v.dtype, device=v.device))
    out = F.conv2d(packed, kernel, padding="same", groups=heads)
    return torch.zeros_like(out).scatter(2, order, out)


@register(
    "nystrom",
    NystromParams,
    summary="Nystrom approximation of softmax through m pooled landmarks, pseudo-inverse (low rank)",
    keys_per_query=lambda p, n: min(p.num_landmarks, n),
    runtime_inputs=("conv_weight",),
    module_parameters=_layer_conv,
    attention_dropout=True,
)
def nystrom_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_landmarks: int = 64,
    pinv_iters: int = 6,
    conv_kernel: int = 35,
    conv_weight: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Nyström attention. q, k, v: [B, H, N, d]; mask [B, N], True = real; conv_weight [H, conv_kernel]
    (a fixed seeded one when None; unused when conv_kernel = 0)."""
    check_inputs("nystrom_attention", q, k, v, key_padding_mask)
    check_p("nystrom_attention", dropout_p)
    NystromParams(num_landmarks, pinv_iters, conv_kernel).check()
    heads = q.shape[1]
    if conv_kernel and conv_weight is None:
        conv_weight = default_conv_weight(heads, conv_kernel)
    if conv_weight is not None and conv_kernel and tuple(conv_weight.shape) != (heads, conv_kernel):
        raise ValueError(
            f"nystrom_attention: conv_weight must have shape [H, conv_kernel] = {(heads, conv_kernel)}; "
            f"got {tuple(conv_weight.shape)}"
        )
    work = at_least_fp32(q)
    with no_autocast(q):
        q_, k_, v_ = (t.to(work) for t in (q, k, v))
        scale = q.shape[-1] ** -0.5
        q_land, landmark_valid = landmark_pool(q_, num_landmarks, key_padding_mask)
        k_land, _ = landmark_pool(k_, num_landmarks, key_padding_mask)
        landmark_mask = landmark_valid[:, None, None, :]
        # A2 on the valid landmarks; rows and columns of unused landmark slots are zero, which keeps
        # Z block-diagonal with a zero block, so unused slots change nothing.
        a2 = torch.softmax(
            (q_land @ k_land.transpose(-1, -2) * scale).masked_fill(~landmark_mask, float("-inf")), -1
        )
        a2 = a2 * landmark_valid[:, None, :, None]
        col = a2.abs().sum(dim=-2).amax(dim=-1)
        row = a2.abs().sum(dim=-1).amax(dim=-1)
        z = newton_schulz_pinv(a2, pinv_iters, (1.0 / (col * row))[..., None, None])
        key_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        landmark_values = F.scaled_dot_product_attention(
            q_land, k_, v_, attn_mask=key_mask, dropout_p=dropout_p
        )  # A3 V
        out = F.scaled_dot_product_attention(
            q_, k_land, z @ landmark_values, attn_mask=landmark_mask, dropout_p=dropout_p
        )  # A1 (Z A3 V)
        if conv_kernel and conv_weight is not None:
            out = out + valid_token_conv(v_, conv_weight.to(device=q.device), key_padding_mask)
    return out.to(q.dtype)
