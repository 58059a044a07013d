"""The run configuration and its presets, under their historical name: everything here is
`lra.presets` (the dataclasses in `lra.presets.schema`, the source presets `pytorch` and `lra` with
their provenance, the CPU presets `tiny` and `quick`).
"""

from __future__ import annotations

from .presets import (
    CPU_BUDGET,
    CPU_TASKS,
    FIELDS_ADDED_LATER,
    PRESET_NAMES,
    SOURCE_PRESETS,
    CpuTask,
    DataConfig,
    ModelConfig,
    Preset,
    TrainConfig,
    apply_overrides,
    get_preset,
    preset_identity,
    preset_tasks,
    source_preset,
    validate,
)

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
    "validate",
]
