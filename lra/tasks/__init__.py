"""The six LRA tasks, registered by name. `get(name)` -> TaskSpec, `names()` lists them."""

from __future__ import annotations

from .base import DataConfig, LRADataset, TaskSpec, default_data_dir, get, names, register_task

__all__ = ["DataConfig", "LRADataset", "TaskSpec", "default_data_dir", "get", "names", "register_task"]
