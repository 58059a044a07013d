"""The LRA tasks, registered by name. `get(name)` -> TaskSpec, `names()` lists them in display order.

Every module of this package but `base` declares one task (or a family, as `pathfinder` declares
Pathfinder and Path-X) and registers it on import; they are all imported here, so a task is added
by adding its module.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from .base import (
    DataConfig,
    LRADataset,
    TaskGenerator,
    TaskSpec,
    default_data_dir,
    generated_task_names,
    get,
    names,
    register_task,
    unregister_task,
)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base":
        import_module(f"{__name__}.{_module}")

__all__ = [
    "DataConfig",
    "LRADataset",
    "TaskGenerator",
    "TaskSpec",
    "default_data_dir",
    "generated_task_names",
    "get",
    "names",
    "register_task",
    "unregister_task",
]
