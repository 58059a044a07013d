"""Which device a command runs on, and its name in records: one place for `lra run`, the benchmarks
and the experiments."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, *, elsewhere: bool = False) -> torch.device:
    """ "auto" (CUDA if available), "cpu" or "cuda"; ValueError otherwise, or for "cuda" without
    CUDA here unless the work runs `elsewhere` (a SLURM job on another machine)."""
    if name not in DEVICES:
        raise ValueError(f"device must be auto, cpu or cuda; got {name!r}")
    if name == "cuda" and not elsewhere and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use --device cpu")
    use_cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


def device_name(device: torch.device) -> str:
    """`torch.cuda.get_device_name` on CUDA (e.g. "NVIDIA H200"), else "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
