"""Peak memory of a training run, as its record reports it (`peak_memory_bytes`).

    baseline = memory_baseline(device)      # before the model is built
    ...                                     # build, train, evaluate
    peak = peak_memory_growth(device, baseline)

The record holds the growth of the peak over a baseline taken just before the model is built: what
the model, its optimizer state, activations and training added, not the interpreter, torch itself
or the loaded data.

* CUDA: the baseline resets the caching allocator's peak statistics (`torch.cuda.reset_peak_memory_stats`)
  and is 0; the peak is `torch.cuda.max_memory_allocated` since then.
* CPU (Linux): torch's one-time initialisation is run first on a throwaway model, memory that malloc
  holds free is returned to the system (glibc's `malloc_trim`), and the process's peak resident size
  is reset to its current resident size (`/proc/self/clear_refs`, value 5); the baseline is the
  resident size (`VmRSS`) then, and the peak is the peak resident size (`VmHWM`) at the end minus
  the baseline. Where the peak cannot be reset (no /proc, or it is read-only) the growth is unknown
  and reported as None.

This is process-level memory for a whole run; the benchmarks measure one call instead, by the
tensors its operators allocate (`runners.bench.timing.peak_memory`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io

import torch
import torch.nn.functional as F
from torch import nn


def _proc_status_bytes(field_name: str) -> int | None:
    """A memory line of /proc/self/status (e.g. VmRSS, VmHWM) in bytes; None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError):
        return None
    return None


def _warm_up_cpu_runtime() -> None:
    """Run torch's one-time initialisation on first use (kernels, thread pools, the first optimizer
    step and save: about 200 MB of resident memory) on a throwaway model, so that it is not counted
    as the memory of the run's model."""
    model = nn.Sequential(nn.Embedding(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters())
    logits = model(torch.zeros(2, 3, dtype=torch.long)).softmax(-1).mean(1)
    F.cross_entropy(logits, torch.zeros(2, dtype=torch.long)).backward()
    optimizer.step()
    torch.save(model.state_dict(), io.BytesIO())


def _release_free_heap() -> None:
    """Return memory that malloc holds free to the system (glibc's malloc_trim), so that the resident
    size counts live memory only: otherwise later allocations can reuse freed pages that are still
    resident and the growth over the baseline reads too low. A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def memory_baseline(device: torch.device) -> int | None:
    """Taken before the model is built. CUDA: resets the allocator's peak (returns 0). CPU: resets
    the process's peak resident memory (Linux: /proc/self/clear_refs) and returns the resident
    memory now, so the record holds what the model and training added, not the interpreter, torch
    (warmed up first) and the loaded data; None where the peak cannot be reset (the growth is then
    unknown)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return 0
    _warm_up_cpu_runtime()
    _release_free_heap()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # resets VmHWM to the current resident size
    except OSError:
        return None
    return _proc_status_bytes("VmRSS")


def peak_memory_growth(device: torch.device, baseline: int | None) -> int | None:
    """Peak CUDA memory allocated, or on CPU the growth of the peak resident memory over `baseline`
    (None when the baseline or the peak is unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = _proc_status_bytes("VmHWM")
    if baseline is None or peak is None:
        return None
    return max(0, peak - baseline)
