"""Presets: typed dataclasses for the model, the training schedule and the data, per task.

Four presets per task:

* ``lra``     -- the released LRA JAX code (`lra.presets.lra_jax`).
* ``pytorch`` -- the PyTorch lineage (mlpen/Nystromformer `LRA/code`; `lra.presets.pytorch`).

Each field of those two names its source file and commit or says why it differs
(`source_preset`, lra/sources.py; `lra list presets --provenance` prints the table).
* ``quick``   -- CPU minutes on generated data (the suite's `--preset quick`; `lra.presets.cpu`).
* ``tiny``    -- the smallest sensible run, for smoke tests and `lra run` without arguments.

The tasks come from the task registry (`lra.tasks.names()`); each preset module holds one entry
per task it has settings for (`preset_tasks` lists them). Override any field with dotted keys:
``apply_overrides(preset, {"model.layers": "3"})``; unknown keys and ill-typed values raise
ValueError naming the valid keys.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import tasks
from ..sources import Provenance
from .cpu import CPU_BUDGET, CPU_PRESETS, CPU_TASKS, CpuTask, cpu_preset
from .lra_jax import LRA_TASKS, lra_preset
from .pytorch import PYTORCH_TASKS, pytorch_preset
from .schema import (
    FIELDS_ADDED_LATER,
    DataConfig,
    ModelConfig,
    Preset,
    TrainConfig,
    apply_overrides,
    preset_identity,
    validate,
)

SOURCE_PRESETS = ("pytorch", "lra")
PRESET_NAMES = (*CPU_PRESETS, *SOURCE_PRESETS)

_SOURCE_BUILDERS: dict[str, tuple[tuple[str, ...], Callable[[str], tuple[Preset, dict[str, Provenance]]]]] = {
    "pytorch": (PYTORCH_TASKS, pytorch_preset),
    "lra": (LRA_TASKS, lra_preset),
}


def preset_tasks(name: str) -> list[str]:
    """The registered tasks that preset `name` has settings for, in display order."""
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")
    defined = _SOURCE_BUILDERS[name][0] if name in _SOURCE_BUILDERS else tuple(CPU_TASKS)
    return [task for task in tasks.names() if task in defined]


def suite_tasks(name: str) -> list[str]:
    """The tasks `lra suite --preset name` runs when no tasks are given: for the CPU presets those
    whose `CPU_TASKS` entry says `in_default_suite` (offline data at a CPU-sized length), for the
    source presets every task the preset has."""
    if name in CPU_PRESETS:
        return [task for task in preset_tasks(name) if CPU_TASKS[task].in_default_suite]
    return preset_tasks(name)


def _check_defined(name: str, task: str) -> None:
    tasks.get(task)  # one-line error for an unknown task
    if task not in preset_tasks(name):
        with_it = [n for n in PRESET_NAMES if task in preset_tasks(n)]
        raise ValueError(
            f"preset {name!r} has no settings for task {task!r}; presets of {task}: {', '.join(with_it) or 'none'}"
        )


def source_preset(name: str, task: str) -> tuple[Preset, dict[str, Provenance]]:
    """The `lra` or `pytorch` preset of `task` and the provenance of each of its fields
    ("section.field" -> Cite or Ours)."""
    if name not in _SOURCE_BUILDERS:
        raise ValueError(
            f"preset {name!r} names no source; presets with sources: {', '.join(SOURCE_PRESETS)}"
        )
    _check_defined(name, task)
    return _SOURCE_BUILDERS[name][1](task)


def get_preset(task: str, name: str) -> Preset:
    """The preset `name` of `task`; ValueError listing the valid choices otherwise."""
    if name in SOURCE_PRESETS:
        return source_preset(name, task)[0]
    _check_defined(name, task)
    return cpu_preset(task, name)


__all__ = [
    "CPU_BUDGET",
    "CPU_TASKS",
    "FIELDS_ADDED_LATER",
    "PRESET_NAMES",
    "SOURCE_PRESETS",
    "CpuTask",
    "DataConfig",
    "ModelConfig",
    "Preset",
    "TrainConfig",
    "apply_overrides",
    "get_preset",
    "preset_identity",
    "preset_tasks",
    "source_preset",
    "suite_tasks",
    "validate",
]
