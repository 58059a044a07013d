"""attention_zoo: a registry of attention mechanisms with exact, tested semantics.

    >>> import attention_zoo
    >>> attention_zoo.names()[:6]
    ['full', 'agent', 'topk', 'moba', 'mita', 'mita_route']
    >>> len(attention_zoo.names())  # and the classic LRA baselines: linear, performer, ..., synthesizer
    19
    >>> layer = attention_zoo.make("mita", dim=64, num_heads=2, params={"num_landmarks": 16, "topk": 16})

Mechanisms of other packages load as plugins (`attention_zoo.plugins`): entry points of the group
`lra.attentions` and the modules in LRA_PLUGINS at the first use of the registry, others through
`load_plugins`. The package imports only torch (and triton lazily, for the MiTA kernels).
"""

from __future__ import annotations

from typing import Any

from torch import nn

# isort: off
# Registration order is the display order of tables: the baseline, compression, routing, MiTA.
from . import full, agent, topk, moba, mita  # noqa: F401

# Kernelized and low-rank baselines.
from . import linear, performer, cosformer, linformer, nystrom, skyformer  # noqa: F401

# Classic LRA baselines with fixed and learned sparsity patterns.
from . import local, longformer, bigbird, sparse_transformer, reformer, sinkhorn, synthesizer  # noqa: F401

# isort: on
from . import functional
from .module import MultiHeadAttention
from .plugins import PluginError, load_plugins
from .registry import AttentionParams, Mechanism, get, names, register


def make(name: str, dim: int, num_heads: int, **kwargs: Any) -> nn.Module:
    """Multi-head attention layer running mechanism `name` (see `MultiHeadAttention` for kwargs)."""
    return MultiHeadAttention(dim, num_heads, attention=name, **kwargs)


__all__ = [
    "AttentionParams",
    "Mechanism",
    "MultiHeadAttention",
    "PluginError",
    "functional",
    "get",
    "load_plugins",
    "make",
    "names",
    "register",
]
