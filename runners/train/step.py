"""The arithmetic of one training step, shared by the trainer and `lra bench model` (which times the
step the trainer takes): the preset's mixed precision (`Autocast`) and the loss (`classification_loss`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Autocast:
    """The preset's mixed precision on a device: autocast to bf16 (or fp16 when `train.amp` says so)
    on CUDA, full precision on the CPU or with `train.amp = "none"`. Calling it opens the context."""

    device_type: str
    dtype: torch.dtype | None  # None: full precision

    @classmethod
    def of(cls, device: torch.device, amp: str) -> Autocast:
        if device.type != "cuda" or amp == "none":
            return cls(device.type, None)
        return cls(device.type, torch.float16 if amp == "fp16" else torch.bfloat16)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        """Whether gradients need loss scaling (fp16 autocast)."""
        return self.dtype == torch.float16

    def __call__(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def classification_loss(
    model: nn.Module, inputs: Sequence[torch.Tensor], labels: torch.Tensor, autocast: Autocast
) -> torch.Tensor:
    """Mean cross-entropy of the model's logits (taken in fp32) on one batch, the forward under `autocast`."""
    with autocast():
        return F.cross_entropy(model(*inputs).float(), labels)
