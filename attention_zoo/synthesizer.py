r"""Synthesizer attention (Tay et al., 2021), the variant LRA ran: learned per-head logits added to s q.k.

Each head h owns a learned matrix R_h of size N_max x N_max (the layer's `max_length`), or with
`factorized` its rank-r product R_h = R1_h R2_h (R1_h: N_max x r, R2_h: r x N_max):

.. math::

    o_i = \sum_j \operatorname{softmax}_j\!\left(s\, q_i^\top k_j + R_{h,ij}\right) v_j,
    \qquad s = d^{-1/2},

over valid keys only, R cut to the first N rows and columns. Positions are token indices, so
trailing padding leaves valid outputs unchanged; a padded key is masked. With R = 0 it is full
attention. LRA's JAX code calls this "random" (or "factorized_random") Synthesizer mixed with dot
products, initialises R with the layer's kernel initialiser (LeCun normal), and uses rank 32 when
factorized.

Half-precision inputs are computed in fp32 (scores, softmax and the weighted sum); the output has
the input's dtype. Attention dropout (`dropout_p`): on the softmax probabilities, as LRA's JAX Synthesizer applies it.
Cost O(N^2 d) time and O(N^2) memory (the logits are N x N by construction); parameters H N_max^2,
or 2 H N_max r factorized.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import at_least_fp32, check_inputs, no_autocast
from ._dropout import check_p, drop
from .registry import AttentionParams, register


@dataclass(frozen=True)
class SynthesizerParams(AttentionParams):
    factorized: bool = False
    rank: int = 32  # LRA's factorized_random k = 32 (lra_benchmarks/models/synthesizer)

    def check(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1; got {self.rank}")


def _learned_logits(
    params: SynthesizerParams, num_heads: int, head_dim: int, max_length: int
) -> dict[str, torch.Tensor]:
    if max_length < 1:
        raise ValueError(
            "synthesizer learns logits for every (query, key) position pair: build the layer with "
            "max_length = the longest sequence (the task models do)"
        )
    # LeCun normal over the key axis: std = fan_in^-1/2, as LRA's kernel_init.
    if params.factorized:
        return {
            "logits_left": torch.randn(num_heads, max_length, params.rank) * max_length**-0.5,
            "logits_right": torch.randn(num_heads, params.rank, max_length) * params.rank**-0.5,
        }
    return {"logits": torch.randn(num_heads, max_length, max_length) * max_length**-0.5}


def _check_logits(
    name: str, tensor: torch.Tensor | None, heads: int, length: int, shape: str
) -> torch.Tensor:
    if tensor is None:
        raise ValueError(f"synthesizer_attention needs `{name}` {shape} (the layer's learned parameters)")
    if tensor.dim() != 3 or tensor.shape[0] != heads:
        raise ValueError(
            f"synthesizer_attention: `{name}` must have shape {shape}; got {tuple(tensor.shape)}"
        )
    return tensor


@register(
    "synthesizer",
    SynthesizerParams,
    summary="dense Synthesizer: softmax(s q K^T + R_h) V with learned per-head logits R (LRA's variant)",
    keys_per_query=lambda p, n: n,
    runtime_inputs=("logits", "logits_left", "logits_right"),
    module_parameters=_learned_logits,
    padding_invariant=False,
    attention_dropout=True,
)
def synthesizer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    factorized: bool,
    rank: int,
    logits: torch.Tensor | None = None,
    logits_left: torch.Tensor | None = None,
    logits_right: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Synthesizer. q, k, v: [B, H, N, d]; mask [B, N], True = real. `logits` [H, N_max, N_max], or
    with `factorized` `logits_left` [H, N_max, rank] and `logits_right` [H, rank, N_max], N_max >= N."""
    check_inputs("synthesizer_attention", q, k, v, key_padding_mask)
    check_p("synthesizer_attention", dropout_p)
    _, heads, length, dim = q.shape
    if factorized:
        left = _check_logits("logits_left", logits_left, heads, length, "[H, N_max, rank]")
        right = _check_logits("logits_right", logits_right, heads, length, "[H, rank, N_max]")
        if left.shape[1] < length or right.shape[2] < length or left.shape[2] != right.shape[1]:
            raise ValueError(
                f"synthesizer_attention: factors {tuple(left.shape)} x {tuple(right.shape)} do not cover "
                f"N = {length}; build the layer with max_length >= {length}"
            )
        work = at_least_fp32(q)
        bias = torch.matmul(left[:, :length].to(work), right[:, :, :length].to(work))
    else:
        full = _check_logits("logits", logits, heads, length, "[H, N_max, N_max]")
        if full.shape[1] < length or full.shape[2] < length:
            raise ValueError(
                f"synthesizer_attention: logits {tuple(full.shape)} do not cover N = {length}; build the "
                f"layer with max_length >= {length}"
            )
        bias = full[:, :length, :length]
    work = at_least_fp32(q)
    with no_autocast(q):
        q_, k_, v_ = q.to(work), k.to(work), v.to(work)
        scores = torch.matmul(q_ * dim**-0.5, k_.transpose(-1, -2)) + bias.to(work)  # scaled first
        if key_padding_mask is not None:
            scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
        out = torch.matmul(drop(torch.softmax(scores, dim=-1), dropout_p), v_)
    return out.to(q.dtype)
