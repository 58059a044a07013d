"""How a plugin author tests a mechanism: the zoo's checks plus a dense fp64 definition of their own.

Run with `pytest examples/test_windowed_landmarks.py` (pytest puts this directory on sys.path).
"""

import pytest
import torch

from attention_zoo import load_plugins
from attention_zoo.testing import check_mechanism


def dense_windowed_landmarks(q, k, v, key_padding_mask, *, window, num_landmarks):
    """The definition, one row at a time on its valid tokens, with every score formed."""
    out = torch.zeros_like(q)
    for b in range(q.shape[0]):
        keep = torch.arange(q.shape[2]) if key_padding_mask is None else key_padding_mask[b].nonzero()[:, 0]
        qb, kb, vb = q[b][:, keep], k[b][:, keep], v[b][:, keep]  # [H, L, d]
        length = len(keep)
        rank = torch.arange(length)
        in_window = (rank[:, None] - rank[None, :]).abs() <= window  # [L, L]
        segments = [rank * num_landmarks // length == j for j in range(num_landmarks)]
        k_bar = torch.stack([kb[:, s].mean(1) for s in segments if s.any()], 1)  # [H, m', d]
        v_bar = torch.stack([vb[:, s].mean(1) for s in segments if s.any()], 1)
        scores = torch.cat([(qb @ kb.mT).masked_fill(~in_window, float("-inf")), qb @ k_bar.mT], -1)
        probs = torch.softmax(scores / q.shape[-1] ** 0.5, dim=-1)
        out[b][:, keep] = probs @ torch.cat([vb, v_bar], 1)
    return out


# Defaults, the smallest window and landmark count, and more landmarks than tokens.
PARAMS = [{}, {"window": 0, "num_landmarks": 1}, {"window": 2, "num_landmarks": 3}, {"num_landmarks": 50}]


@pytest.mark.parametrize("params", PARAMS)
def test_windowed_landmarks(params):
    load_plugins(["windowed_landmarks"])
    check_mechanism("windowed_landmarks", reference=dense_windowed_landmarks, params=params)
