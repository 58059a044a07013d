"""The task model: one encoder for every task, with the attention as its only variable.

    tokens [B, L] --embed + positions--> pre-LN blocks (attention from the zoo, GELU MLP) --> final LN
    --> pooling (`ModelConfig.pooling`) --> classifier head

Pooling: "mean" over the valid tokens (the project's own; padding-invariant), "mean_all" over every
position of the padded frame with padded outputs zeroed (the PyTorch lineage: the sum over valid
tokens divided by `padded_length`, so the amount of padding changes the result by design), "cls"
(a learned vector prepended; LRA) or "first" (the first token's own output, no vector prepended:
LRA's dual encoder).

Retrieval uses the same encoder twice (shared weights); its head reads [x1, x2, x1 * x2, x1 - x2]
through one hidden layer ("nli", the PyTorch lineage) or [x1, x2] through two ("concat", LRA's
dual encoder). Token id 0 is padding: it is masked out of attention (padding is removed, not
zeroed, in every mechanism) and out of the sums of mean pooling; with every mechanism but MoBA the
padded tokens are dropped after the positions are added (`drop_padding`), which is exact and saves
the work on them. Changing the attention changes nothing else in the model.

`ModelConfig.init` chooses the initialisation: "torch" (torch's defaults, the project's own),
"nystromformer" (torch's defaults but a N(0, 0.02) token embedding) or "lra" (the Flax defaults of
the LRA JAX models: Xavier-uniform attention and MLP kernels, N(0, 1e-6) MLP biases, LeCun-normal
classifier kernels with zero biases).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import attention_zoo
from attention_zoo import AttentionParams

from .presets import ModelConfig


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed sin/cos table of "Attention is all you need", [length, dim]."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


def drop_padding(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid tokens to the front (in order) and cut the columns no row needs.

    x [B, N, C], valid [B, N] -> x [B, L, C], valid [B, L] with L the longest valid count. Exact for
    a model whose attention removes padding and whose other layers are per token; much less work
    when padding is scattered (e.g. black pixels as padding), where trimming trailing columns is not.
    """
    counts = valid.sum(dim=1)
    longest = int(counts.max())
    if longest == valid.shape[1]:
        return x, valid
    order = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)[:, :longest]
    x = x.gather(1, order[..., None].expand(-1, -1, x.shape[-1]))
    return x, torch.arange(longest, device=x.device)[None, :] < counts[:, None]


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)); x + MLP(LN(x))."""

    def __init__(
        self, cfg: ModelConfig, attention: str, attn_params: AttentionParams, max_length: int = 0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.attn = attention_zoo.make(
            attention,
            cfg.dim,
            cfg.heads,
            params=attn_params,
            dropout=cfg.dropout,
            attention_dropout=cfg.attention_dropout,
            qkv_bias=cfg.qkv_bias,
            fp32_attention=cfg.fp32_attention,
            qkv_dim=cfg.qkv_dim,
            max_length=max_length,
        )
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, cfg.mlp_dim),
            nn.GELU(approximate="tanh" if cfg.gelu == "tanh" else "none"),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.mlp_dim, cfg.dim),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_padding_mask=key_padding_mask)
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """Token ids [B, L] (0 = padding) -> one pooled vector [B, dim] per sequence."""

    def __init__(
        self, vocab_size: int, max_len: int, cfg: ModelConfig, attention: str, attn_params: AttentionParams
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_len = max_len
        if cfg.pooling == "mean_all" and cfg.padded_length and cfg.padded_length < max_len:
            raise ValueError(
                f"model.padded_length={cfg.padded_length} is shorter than the data's {max_len} tokens; "
                "raise it or set 0 (the data's length)"
            )
        # The frame "mean_all" divides by: the sources' padded input length.
        self.padded_length = cfg.padded_length or max_len
        self.embed = nn.Embedding(vocab_size, cfg.dim)
        positions = max_len + (1 if cfg.pooling == "cls" else 0)
        if cfg.pos_emb == "learned":
            self.pos = nn.Parameter(torch.randn(positions, cfg.dim) * 0.02)
        else:
            self.register_buffer("pos", sinusoidal_positions(positions, cfg.dim), persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.pooling == "cls" else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, attention, attn_params, positions) for _ in range(cfg.layers))
        # Padded tokens can be dropped after the positions are added when the attention removes
        # padding anyway (every mechanism but MoBA); the rest of the model is per token.
        self.drop_padding = attention_zoo.get(attention).padding_invariant
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape
        if length > self.max_len:
            raise ValueError(f"input length {length} exceeds the model's maximum length {self.max_len}")
        valid = tokens != 0
        x = self.embed(tokens)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(batch, -1, -1), x], dim=1)
            valid = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=tokens.device), valid], dim=1)
        x = self.dropout(x + self.pos[: x.shape[1]])
        if self.drop_padding:
            x, valid = drop_padding(x, valid)
        # No mask at all is both exact and faster when nothing is padded (e.g. shifted pixels).
        mask = None if bool(valid.all()) else valid
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        if self.cfg.pooling in ("cls", "first"):
            return x[:, 0]
        weights = valid.to(x.dtype)[..., None]
        total = (x * weights).sum(dim=1)
        if self.cfg.pooling == "mean_all":  # padded outputs count as zeros
            return total / self.padded_length
        return total / weights.sum(dim=1).clamp(min=1.0)


class Classifier(nn.Module):
    """Single-input task model: encoder + Dense(mlp_dim) -> ReLU -> Dense(classes)."""

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        num_classes: int,
        cfg: ModelConfig,
        attention: str,
        attn_params: AttentionParams,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(vocab_size, max_len, cfg, attention, attn_params)
        self.head = self.make_head(cfg, num_classes)

    @staticmethod
    def make_head(cfg: ModelConfig, num_classes: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(cfg.dim, cfg.mlp_dim), nn.ReLU(), nn.Linear(cfg.mlp_dim, num_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(tokens))


class DualClassifier(Classifier):
    """Two-document task model (retrieval): one shared encoder and a head on both encodings.

    `ModelConfig.dual_head`: "nli" reads [x1, x2, x1 * x2, x1 - x2] through Dense(mlp_dim) -> ReLU
    (the PyTorch lineage's SCHeadDual); "concat" reads [x1, x2] through Dense(mlp_dim) -> ReLU ->
    Dense(mlp_dim // 2) -> ReLU (LRA's `classifier_head_dual` with its default interaction)."""

    @staticmethod
    def make_head(cfg: ModelConfig, num_classes: int) -> nn.Sequential:
        if cfg.dual_head == "concat":
            half = cfg.mlp_dim // 2
            return nn.Sequential(
                nn.Linear(2 * cfg.dim, cfg.mlp_dim),
                nn.ReLU(),
                nn.Linear(cfg.mlp_dim, half),
                nn.ReLU(),
                nn.Linear(half, num_classes),
            )
        return nn.Sequential(
            nn.Linear(4 * cfg.dim, cfg.mlp_dim), nn.ReLU(), nn.Linear(cfg.mlp_dim, num_classes)
        )

    def forward(self, tokens: torch.Tensor, tokens2: torch.Tensor | None = None) -> torch.Tensor:
        if tokens2 is None:
            raise ValueError("the two-document model needs both documents: model(tokens, tokens2)")
        # One encoder pass over both documents (stacked on the batch), as the weights are shared.
        both = self.encoder(_stack_padded(tokens, tokens2))
        x1, x2 = both.chunk(2, dim=0)
        if self.encoder.cfg.dual_head == "concat":
            return self.head(torch.cat([x1, x2], dim=-1))
        return self.head(torch.cat([x1, x2, x1 * x2, x1 - x2], dim=-1))


def _stack_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    length = max(a.shape[1], b.shape[1])
    a = nn.functional.pad(a, (0, length - a.shape[1]))
    b = nn.functional.pad(b, (0, length - b.shape[1]))
    return torch.cat([a, b], dim=0)


def build(
    *,
    vocab_size: int,
    max_len: int,
    num_classes: int,
    dual_input: bool,
    model: ModelConfig,
    attention: str,
    attn_params: AttentionParams | Mapping[str, Any] | None = None,
) -> nn.Module:
    """The task model for a task's shape and a registered attention (name + parameters).

    `attn_params`: the mechanism's parameter dataclass (validated when it was made, e.g. a resolved
    run's `AttentionSpec.params`), taken as it is; or a mapping, validated here, once for every layer.
    """
    if isinstance(attn_params, AttentionParams):
        params = attn_params
    else:
        params = attention_zoo.get(attention).params(**dict(attn_params or {}))
    cls = DualClassifier if dual_input else Classifier
    built = cls(vocab_size, max_len, num_classes, model, attention, params)
    initialise(built, model.init)
    return built


def _lecun_normal_(weight: torch.Tensor) -> None:
    """jax.nn.initializers.lecun_normal as Flax used it in 2020: a normal truncated at two standard
    deviations, scaled so that the variance is 1 / fan_in (0.8796... is the truncated std)."""
    std = math.sqrt(1.0 / weight.shape[1]) / 0.87962566103423978
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def _submodule(module: nn.Module, name: str) -> nn.Module:
    child = getattr(module, name)
    if not isinstance(child, nn.Module):
        raise TypeError(f"{type(module).__name__}.{name} is not a module")
    return child


def _linear(module: nn.Module, name: str) -> nn.Linear:
    """`module.<name>`, which must be a Linear layer (the attention's q/k/v and output projections)."""
    child = _submodule(module, name)
    if not isinstance(child, nn.Linear):
        raise TypeError(f"{type(module).__name__}.{name} is not a Linear layer")
    return child


def initialise(model: nn.Module, init: str) -> None:
    """Re-initialise a built task model as `init` says ("torch" keeps torch's defaults).

    "nystromformer": the token embedding N(0, 0.02) (mlpen/Nystromformer LRA/code/model.py); the
    rest keeps torch's defaults, as there. "lra": the Flax initialisers of the LRA JAX models
    (models/transformer/transformer.py, models/layers/common_layers.py): token embedding N(0, 1),
    q / k / v and output projections Xavier-uniform (each of q, k and v on its own, fans dim and
    qkv_dim), MLP kernels Xavier-uniform with N(0, 1e-6) biases, classifier kernels LeCun-normal
    with zero biases. LRA's attention has no biases; the output projection's bias here starts at 0.
    """
    if init == "torch":
        return
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    with torch.no_grad():
        if init == "nystromformer":
            for encoder in encoders:
                nn.init.normal_(encoder.embed.weight, std=0.02)
            return
        if init != "lra":
            raise ValueError(f"unknown model.init {init!r}; valid: torch, nystromformer, lra")
        for encoder in encoders:
            nn.init.normal_(encoder.embed.weight, std=1.0)
            for block in encoder.blocks:
                attn = _submodule(block, "attn")
                qkv, proj = _linear(attn, "qkv"), _linear(attn, "proj")
                for part in qkv.weight.chunk(3, dim=0):  # q, k, v: [qkv_dim, dim] each
                    nn.init.xavier_uniform_(part)
                if qkv.bias is not None:
                    nn.init.zeros_(qkv.bias)
                nn.init.xavier_uniform_(proj.weight)
                nn.init.zeros_(proj.bias)
                for layer in _submodule(block, "mlp").children():
                    if isinstance(layer, nn.Linear):
                        nn.init.xavier_uniform_(layer.weight)
                        nn.init.normal_(layer.bias, std=1e-6)
        for layer in _submodule(model, "head").children():
            if isinstance(layer, nn.Linear):
                _lecun_normal_(layer.weight)
                nn.init.zeros_(layer.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
