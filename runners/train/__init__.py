"""Train one task with one attention: `run(RunConfig) -> result record`.

One function a script, the suite, `lra run` or torchrun can call::

    from runners.train import RunConfig, run
    record = run(RunConfig(task="listops", attention="mita", preset="tiny"))

    python -m runners.train RUN_CONFIG.json                       # one process
    torchrun --nproc-per-node 2 -m runners.train RUN_CONFIG.json  # DDP (gloo on CPU, nccl on CUDA)

The rooms: `config` (RunConfig, `resolve` -> Resolved, once per run), `runner` (`run` in this
process, `launch` over DDP processes, the process entry), `trainer` (the Trainer: step, evaluate,
checkpoint, train, finish), `step` (mixed precision and the loss, shared with `lra bench model`),
`schedule` (optimizer, learning rate, example order), `evaluation` (batches, scoring, predictions),
`distributed`, `record` (the run record from the schema's field lists), `checkpoints` (digested
files), `rundir` (one writer per run directory), `validation`, `rng`, `memory` and `run_logging`.

This face imports nothing until one of its names is used, so that `python -m runners.train` pins the
CPU's floating-point order before torch is imported (runners/train/__main__.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Resolved, RunConfig, planned_test_examples, recorded_plugins, resolution, resolve
    from .record import error_line
    from .runner import launch, main, run, runner_command
    from .schedule import lr_multiplier, make_optimizer, make_scheduler
    from .trainer import KILL_AFTER_STEP_ENV, Trainer

# name -> the module of this package that defines it
_EXPORTS = {
    "RunConfig": "config",
    "Resolved": "config",
    "resolve": "config",
    "planned_test_examples": "config",
    "recorded_plugins": "config",
    "resolution": "config",
    "run": "runner",
    "launch": "runner",
    "runner_command": "runner",
    "main": "runner",
    "Trainer": "trainer",
    "KILL_AFTER_STEP_ENV": "trainer",
    "lr_multiplier": "schedule",
    "make_optimizer": "schedule",
    "make_scheduler": "schedule",
    "error_line": "record",
}

__all__ = [
    "KILL_AFTER_STEP_ENV",
    "Resolved",
    "RunConfig",
    "Trainer",
    "error_line",
    "launch",
    "lr_multiplier",
    "main",
    "make_optimizer",
    "make_scheduler",
    "planned_test_examples",
    "recorded_plugins",
    "resolution",
    "resolve",
    "run",
    "runner_command",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value
