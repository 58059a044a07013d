"""Seeding, and the random-number state a checkpoint carries so that a resumed run draws exactly
what an uninterrupted one would.

`rng_state()` captures Python's `random`, NumPy's global generator, torch's CPU generator and every
CUDA device's generator; `set_rng_state(state)` restores them. The state is made of tensors and
plain Python values only, so a checkpoint holding it loads with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every generator `seed_everything` seeds, in a weights-only-loadable form."""
    state = np.random.get_state()
    if not isinstance(state, tuple):  # the legacy tuple (the default), not the dict of legacy=False
        raise TypeError(f"numpy's global generator state is a {type(state).__name__}, not a tuple")
    kind, keys, pos, has_gauss, cached = state
    return {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
            "kind": kind,
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured (the CUDA generators only where CUDA is available)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
