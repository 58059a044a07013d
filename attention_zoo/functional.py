"""The zoo's functional API: every function takes q, k, v of shape [B, H, N, d], keyword-only
parameters and an optional `key_padding_mask` [B, N] (bool, True = real token), and returns
[B, H, N, d] in the inputs' dtype. The mechanisms that form attention probabilities also take
`dropout_p` (attention dropout, 0 = none; `attention_zoo.get(name).attention_dropout`). See each
mechanism's module docstring for its equation."""

from .agent import agent_attention
from .full import full_attention
from .mita import mita_attention, mita_route_attention
from .moba import moba_attention
from .topk import topk_attention

# isort: split
# Kernelized and low-rank baselines.
# Classic LRA baselines with fixed and learned sparsity patterns.
from .bigbird import bigbird_attention
from .cosformer import cosformer_attention
from .linear import linear_attention
from .linformer import linformer_attention
from .local import local_attention
from .longformer import longformer_attention
from .nystrom import nystrom_attention
from .performer import performer_attention
from .reformer import reformer_attention
from .sinkhorn import sinkhorn_attention
from .skyformer import skyformer_attention
from .sparse_transformer import sparse_attention
from .synthesizer import synthesizer_attention

__all__ = [
    "agent_attention",
    "full_attention",
    "mita_attention",
    "mita_route_attention",
    "moba_attention",
    "topk_attention",
    # Kernelized and low-rank baselines.
    "cosformer_attention",
    "linear_attention",
    "linformer_attention",
    "nystrom_attention",
    "performer_attention",
    "skyformer_attention",
]
__all__ += [
    "bigbird_attention",
    "local_attention",
    "longformer_attention",
    "reformer_attention",
    "sinkhorn_attention",
    "sparse_attention",
    "synthesizer_attention",
]
