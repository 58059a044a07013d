"""The six LRA tasks, registered by name. `get(name)` -> TaskSpec, `names()` lists them."""

# ruff: noqa: I001  (the task modules are imported in LRA's display order, after base)
from __future__ import annotations

from .base import DataConfig, LRADataset, TaskSpec, default_data_dir, get, names, register_task

# Importing a task module registers it.
from . import listops, text, retrieval, image, pathfinder  # noqa: F401

__all__ = ["DataConfig", "LRADataset", "TaskSpec", "default_data_dir", "get", "names", "register_task"]
