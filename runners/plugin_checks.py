"""The attention contract as a report (`lra check`) and as a gate before a plugin attention trains.

    for result in check_attention("windowed_landmarks", {"window": 4}):
        print(result.status, result.name, result.detail)

    smoke_check(attention_spec("windowed_landmarks", {"window": 4}))   # ValueError (one line) when it fails

Both run `attention_zoo.testing`'s named checks (shape, dtype, finite outputs, determinism, padding,
the multi-head layer, gradients, memory). `smoke_check` runs the fast subset
(`attention_zoo.testing.SMOKE_CHECKS`, well under a second) that `lra run` and `lra suite` run before
training an attention that a plugin registered, once per attention and parameters in a process; the
built-ins are tested by the package's own tests and are not checked again. Setting
``LRA_SKIP_PLUGIN_CHECK=1`` trains without it (e.g. a plugin whose kernels do not run in float64).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from attention_zoo.testing import SMOKE_CHECKS, CheckResult, mechanism_checks, run_checks

from .specs import AttentionSpec

SKIP_ENV_VAR = "LRA_SKIP_PLUGIN_CHECK"
# Lengths of the smoke check's shape and finiteness steps (the full check adds 100).
SMOKE_LENGTHS = (1, 7, 33)

_PASSED: set[tuple[str, str, str]] = set()  # (attention, parameters, device) that passed in this process


def check_device(device: str | torch.device) -> torch.device:
    """Where the checks run: the run's device, or the CPU when that is CUDA and none is visible here
    (a SLURM login node planning GPU runs)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return device


def check_attention(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    smoke: bool = False,
    dense: bool = False,
    device: str | torch.device = "cpu",
) -> Iterator[CheckResult]:
    """Run the contract's checks on attention `name` with `params`, yielding one result per check as
    it finishes. `smoke`: only the fast subset that runs before training; `dense`: skip the memory
    check (a mechanism that forms N x N scores by design). ValueError for unknown names or parameters."""
    sizes: dict[str, Any] = {"lengths": SMOKE_LENGTHS} if smoke else {}
    checks = mechanism_checks(
        name,
        params=params,
        allow_n_by_n=dense,
        device=check_device(device),
        only=SMOKE_CHECKS if smoke else None,
        **sizes,
    )
    yield from run_checks(checks)


def smoke_check(attention: AttentionSpec, device: str | torch.device = "cpu") -> None:
    """Before a plugin attention trains: the fast checks of the contract; ValueError (one line) naming
    the first failed check and the command that shows them all. No-op for built-in attentions, for an
    attention and parameters that passed earlier in this process, and with LRA_SKIP_PLUGIN_CHECK=1."""
    mechanism, label = attention.mechanism, attention.label
    if mechanism.plugin is None or os.environ.get(SKIP_ENV_VAR, "") not in ("", "0"):
        return
    where = check_device(device)
    params = attention.params.to_dict()
    key = (attention.name, json.dumps(params, sort_keys=True, default=str), str(where))
    if key in _PASSED:
        return
    checks = check_attention(attention.name, params, smoke=True, device=where)
    failed = [r for r in checks if r.status == "fail"]
    if failed:
        raise ValueError(
            f"attention {label} (plugin {mechanism.plugin}) fails the {failed[0].name} check, so it is not "
            f"trained: {failed[0].detail}; `lra check --plugin {mechanism.plugin} --attention '{label}'` runs "
            f"every check ({SKIP_ENV_VAR}=1 trains anyway)"
        )
    _PASSED.add(key)
