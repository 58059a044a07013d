r"""Skyformer (Chen et al., NeurIPS 2021): Nyström approximation of Gaussian-kernel attention.

Skyformer replaces softmax by the (unnormalised) Gaussian kernel and approximates the kernel matrix
of the stacked queries and keys X = [Q^; K^] with uniformly sampled columns, as in the authors' code
(pkuzengqi/Skyformer, `attention_skyformer.py`):

.. math::

    \hat x = d^{-1/4} x, \qquad \kappa(a, b) = \exp\!\left(-\tfrac12 \lVert a - b \rVert^2\right), \qquad
    O = \kappa(\hat Q, S)\; D\, \operatorname{pinv}\!\left(D\, W D\right) D\; \kappa(S, \hat K)\, V,

    W = \kappa(S, S) + 0.1\, I, \qquad D = \operatorname{diag}(W \mathbf 1)^{-1/2},

where S are m = `num_samples` sampled rows of X: floor(m/2) valid queries, then the rest valid keys,
each drawn uniformly with replacement among the L valid tokens of the row (sample t is the token of
rank floor(u_t L), u_t ~ U[0, 1), one u shared by the batch as in the authors' code). The products
run over the valid keys only. pinv is `pinv_iters` Newton--Schulz steps from Z0 = W_n^T / ||W_n||_1
(the authors' initial scale, taken per matrix rather than over the batch; W_n = D W D is symmetric
with spectral radius 1, so the iteration converges). The output is not normalised (the Gaussian
kernel replaces softmax's normalised weights; D only preconditions the inverse: D pinv(D W D) D =
W^-1). Samples are redrawn at every training call; at evaluation u comes from a fixed seed, so
evaluation is deterministic and depends on a row's valid tokens only. The authors' code scales by
32^-1/4 for its head size of 32, i.e. d^-1/4. Computed in at least fp32, with autocast off.
Cost O(N m d + m^3) time, O(N m) memory; no N x N tensor.

No attention dropout: the Nyström approximation of the kernel forms no probability matrix (the
authors' Skyformer applies none; their dense Gaussian-kernel baseline drops entries of its N x N
kernel matrix); the layer's `attention_dropout` is a documented no-op here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import at_least_fp32, check_inputs, no_autocast, valid_lengths
from ._kernelized import newton_schulz_pinv, valid_first, zero_padded
from .registry import AttentionParams, register

# Seed of the fixed samples used at evaluation.
EVAL_SAMPLES_SEED = 0
# The ridge the authors add to the sampled kernel block before inverting it.
RIDGE = 0.1


@dataclass(frozen=True)
class SkyformerParams(AttentionParams):
    # 128 samples: the Skyformer LRA configs (nb_features 128, every task); six Newton--Schulz
    # iterations as in its code.
    num_samples: int = 128
    pinv_iters: int = 6

    def check(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1; got {self.num_samples}")
        if self.pinv_iters < 1:
            raise ValueError(f"pinv_iters must be >= 1; got {self.pinv_iters}")


def sample_uniforms(num_samples: int, training: bool, device: torch.device) -> torch.Tensor:
    """u [num_samples] in [0, 1), fp64: fresh from the global RNG in training, fixed at evaluation."""
    if training:
        return torch.rand(num_samples, dtype=torch.float64, device=device)
    gen = torch.Generator().manual_seed(EVAL_SAMPLES_SEED)
    return torch.rand(num_samples, generator=gen, dtype=torch.float64).to(device)


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """exp(a b^T - |a|^2/2 - |b|^2/2) = exp(-|a - b|^2 / 2) for the rows of a [..., n, p], b [..., m, p].

    The exponent is never positive; its rounding is clamped at 0. The expansion loses what the rows
    share to cancellation, so callers measure a and b from a common centre (see the caller)."""
    half_a = 0.5 * (a * a).sum(dim=-1, keepdim=True)
    half_b = 0.5 * (b * b).sum(dim=-1, keepdim=True)
    return torch.exp((a @ b.transpose(-1, -2) - half_a - half_b.transpose(-1, -2)).clamp(max=0.0))


@register(
    "skyformer",
    SkyformerParams,
    summary="Nystrom approximation of Gaussian-kernel attention, sampled queries and keys (low rank)",
    keys_per_query=lambda p, n: p.num_samples,
    runtime_inputs=("training",),
)
def skyformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    num_samples: int = 128,
    pinv_iters: int = 6,
    training: bool = False,
) -> torch.Tensor:
    """Skyformer attention. q, k, v: [B, H, N, d]; mask [B, N], True = real; `training` redraws the
    samples (fixed seeded samples otherwise)."""
    check_inputs("skyformer_attention", q, k, v, key_padding_mask)
    SkyformerParams(num_samples, pinv_iters).check()
    batch, heads, length, dim = q.shape
    work = at_least_fp32(q)
    with no_autocast(q):
        q_, k_, v_ = q.to(work) * dim**-0.25, k.to(work) * dim**-0.25, v.to(work)
        lengths = valid_lengths(key_padding_mask, batch, length, q.device)
        u = sample_uniforms(num_samples, training, q.device)
        ranks = torch.floor(u[None, :] * lengths[:, None].double()).long()  # [B, m], < L
        positions = ranks if key_padding_mask is None else valid_first(key_padding_mask).gather(1, ranks)
        from_queries = num_samples // 2
        index = positions[:, None, :, None].expand(batch, heads, num_samples, dim)
        samples = torch.cat(
            [q_.gather(2, index[:, :, :from_queries]), k_.gather(2, index[:, :, from_queries:])], dim=2
        )  # [B, H, m, d]
        # Distances do not change under a shift: measured from the samples' mean, the kernel's
        # expansion keeps the precision a large common offset of the tokens would cancel away (keys
        # scaled by 1e4 or tokens far from the origin gave exp(+50) and NaN in fp32).
        centre = samples.mean(dim=2, keepdim=True).detach()
        q_, k_, samples = q_ - centre, k_ - centre, samples - centre
        gram = gaussian_kernel(samples, samples)
        gram = gram + RIDGE * torch.eye(num_samples, dtype=work, device=q.device)
        d_inv_sqrt = gram.sum(dim=-1).rsqrt()  # [B, H, m]
        normalised = d_inv_sqrt[..., :, None] * gram * d_inv_sqrt[..., None, :]
        initial_scale = 1.0 / normalised.abs().sum(dim=-2).amax(dim=-1)
        z = newton_schulz_pinv(normalised, pinv_iters, initial_scale[..., None, None])
        inverse = d_inv_sqrt[..., :, None] * z * d_inv_sqrt[..., None, :]  # ~ W^-1
        key_kernel = zero_padded(gaussian_kernel(k_, samples), key_padding_mask)  # [B, H, N, m]
        context = inverse @ (key_kernel.transpose(-1, -2) @ v_)  # [B, H, m, d]
        out = gaussian_kernel(q_, samples) @ context
    return out.to(q.dtype)
