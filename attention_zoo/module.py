"""The multi-head attention layer the task models use: projections, heads, any registered mechanism.

Every call's output is held to the mechanism contract (`Mechanism.check_output`: shape
[B, H, N, d_v], the inputs' dtype, finite where the inputs are), plugins included. The parameters
are validated once, when the layer is built, and bound to the mechanism then (`Mechanism.bind`):
a forward neither validates nor converts them again. The mechanism is
chosen by name and parameters only; nothing else in the layer depends on it, so
swapping `full` for `mita` changes the attention and nothing else (MiTA adds no parameters, so a
checkpoint trained with one mechanism loads into a layer running another).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .registry import AttentionParams, BoundMechanism, get


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention running a registered mechanism.

    Args:
        dim: model width (input and output of the layer).
        num_heads: number of heads; must divide the attention width (`qkv_dim`, default `dim`).
        attention: registry name of the mechanism (`attention_zoo.names()`).
        params: mechanism parameters (a mapping, validated here, or the mechanism's dataclass, taken
            as it is); defaults otherwise. `layer.params` is the dataclass; assigning another one
            binds it instead.
        dropout: dropout on the output projection.
        qkv_bias: bias in the fused q/k/v projection.
        fp32_attention: run the mechanism in fp32 even under autocast (as the PyTorch LRA ports do).
        qkv_dim: total width of q, k and v (split over the heads); 0 = `dim`. The LRA configs use a
            narrower attention than the model for some tasks (Image: dim 128, qkv 64).
        max_length: the longest sequence the layer will see; mechanisms whose learned inputs are sized
            by it (Linformer's projections, Synthesizer's logits) need it, others ignore it.
        attention_dropout: dropout rate on the attention probabilities, in training mode only (masks
            from torch's global RNG). Applied by the mechanisms registered with `attention_dropout`
            (those that form attention probabilities); for the others -- the kernelized and low-rank
            ones, which form none, as in their sources, and plugins that do not declare it -- a
            non-zero rate is a no-op, said once as a warning when the layer is built and shown in
            the layer's repr.

    Mechanisms with `buffer_redraw_interval` (Performer) have their buffers redrawn from the global RNG
    every that many calls in training mode (`redraw_buffers()` does it by hand).

    Mechanisms with `shared_qk` (Reformer) use the query projection for the keys too; the key slice
    of the fused projection then goes unused, so state dicts stay interchangeable across mechanisms.
    """

    training_calls: torch.Tensor  # a buffer of the mechanisms whose buffers are redrawn

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attention: str = "full",
        params: Mapping[str, Any] | AttentionParams | None = None,
        *,
        dropout: float = 0.0,
        qkv_bias: bool = True,
        fp32_attention: bool = False,
        qkv_dim: int = 0,
        max_length: int = 0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= attention_dropout < 1.0:
            raise ValueError(f"attention_dropout must be in [0, 1); got {attention_dropout}")
        qkv_dim = qkv_dim or dim
        if qkv_dim < 1 or num_heads < 1 or qkv_dim % num_heads:
            raise ValueError(
                f"attention width {qkv_dim} must be a positive multiple of num_heads {num_heads}"
            )
        self.mechanism = get(attention)
        if isinstance(params, AttentionParams):
            if not isinstance(params, self.mechanism.params_cls):
                raise ValueError(f"attention {attention!r} expects {self.mechanism.params_cls.__name__}")
            self.params = params
        else:
            self.params = self.mechanism.params(**dict(params or {}))  # validated once, here
        self.num_heads = num_heads
        self.head_dim = qkv_dim // num_heads
        self.qkv_dim = qkv_dim
        self.fp32_attention = fp32_attention
        self.qkv = nn.Linear(dim, 3 * qkv_dim, bias=qkv_bias)
        self.proj = nn.Linear(qkv_dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.max_length = max_length
        self.attention_dropout = attention_dropout
        if attention_dropout and not self.mechanism.attention_dropout:
            warnings.warn(
                f"attention {self.mechanism.name!r} forms no attention probabilities to drop "
                f"(kernelized, low-rank or a plugin without attention_dropout); attention_dropout="
                f"{attention_dropout} does not apply to it",
                stacklevel=2,
            )
        # Learnable inputs some mechanisms declare (e.g. MiTA's learned landmark queries).
        extra = {}
        if self.mechanism.module_parameters is not None:
            extra = self.mechanism.module_parameters(self.params, num_heads, self.head_dim, max_length)
        self.mechanism_parameters = nn.ParameterDict({k: nn.Parameter(v) for k, v in extra.items()})
        # Fixed (saved, not learned) inputs, e.g. random features.
        self.mechanism_buffers: list[str] = []
        if self.mechanism.module_buffers is not None:
            for name, tensor in self.mechanism.module_buffers(
                self.params, num_heads, self.head_dim, max_length
            ).items():
                self.register_buffer(f"buffer_{name}", tensor)
                self.mechanism_buffers.append(name)
        # Buffers redrawn every `redraw_interval` training calls (Performer's features); the count is
        # saved with the model so a resumed run keeps the schedule.
        self.redraw_interval = 0
        if self.mechanism.buffer_redraw_interval is not None and self.mechanism_buffers:
            self.redraw_interval = self.mechanism.buffer_redraw_interval(self.params)
        if self.redraw_interval:
            self.register_buffer("training_calls", torch.zeros((), dtype=torch.long))

    @property
    def params(self) -> AttentionParams:
        """The mechanism's parameters (its dataclass)."""
        return self.attend.params

    @params.setter
    def params(self, params: AttentionParams) -> None:
        self.attend: BoundMechanism = self.mechanism.bind(params)

    def redraw_buffers(self) -> None:
        """Replace the mechanism's buffers by a fresh draw (from the global RNG)."""
        draw = self.mechanism.module_buffers
        if draw is None:  # a mechanism without buffers: nothing to redraw
            return
        fresh = draw(self.params, self.num_heads, self.head_dim, self.max_length)
        with torch.no_grad():
            for name in self.mechanism_buffers:
                getattr(self, f"buffer_{name}").copy_(fresh[name])

    def _count_training_call(self) -> None:
        calls = int(self.training_calls)
        if calls and calls % self.redraw_interval == 0:
            self.redraw_buffers()
        self.training_calls += 1

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, N, dim]; key_padding_mask: [B, N] bool, True = real token. Returns [B, N, dim]."""
        batch, length, dim = x.shape
        if self.training and self.redraw_interval:
            self._count_training_call()
        q, k, v = (
            self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        )
        if self.mechanism.shared_qk:
            k = q
        runtime = dict(self.mechanism_parameters.items())
        runtime.update({name: getattr(self, f"buffer_{name}") for name in self.mechanism_buffers})
        if "training" in self.mechanism.runtime_inputs:
            runtime["training"] = self.training
        if self.training and self.attention_dropout and self.mechanism.attention_dropout:
            runtime["dropout_p"] = self.attention_dropout  # a runtime input of the mechanisms with dropout
        if self.fp32_attention and x.device.type in ("cuda", "cpu"):
            runtime = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in runtime.items()}
            with torch.autocast(device_type=x.device.type, enabled=False):
                out = self.attend(
                    q.float(), k.float(), v.float(), key_padding_mask=key_padding_mask, **runtime
                )
        else:
            out = self.attend(q, k, v, key_padding_mask=key_padding_mask, **runtime)
        # Mechanism.__call__ has checked the output: [B, H, N, head_dim], the inputs' dtype, finite
        out = out.transpose(1, 2).reshape(batch, length, self.qkv_dim).to(x.dtype)
        return self.dropout(self.proj(out))

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.to_dict().items())
        dropout = ""
        if self.attention_dropout:
            dropout = f", attention_dropout={self.attention_dropout}" + (
                "" if self.mechanism.attention_dropout else " (not applied: no attention probabilities)"
            )
        return (
            f"attention={self.mechanism.name!r}, heads={self.num_heads}, head_dim={self.head_dim}"
            + (f", {params}" if params else "")
            + dropout
        )
