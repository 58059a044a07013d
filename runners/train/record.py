"""A run's record (results/records.py, ``kind="run"``): the blank record of the schema's field lists,
the record a run starts with (`new_record`), reading the one a run directory holds, and the one
line an error leaves in it (`error_line`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import attention_zoo
from lra import tasks
from results.records import (
    OPTIONAL_RUN_FIELDS,
    PLUGIN_FIELDS,
    RECORD_NAME,
    RUN_FIELDS,
    SCHEMA_VERSION,
    plugin_fields,
    read_record,
)

from ..cpu_pinning import cpu_isa, cpu_model
from ..devices import device_name
from ..provenance import git_commit, installed_version, utc_now
from .config import Resolved
from .rundir import RunDirBusy

# Every field a run record carries, in the order it is written: the schema's required fields, then
# the plugin's and the optional ones.
RECORD_FIELDS: tuple[str, ...] = (*RUN_FIELDS, *PLUGIN_FIELDS, *OPTIONAL_RUN_FIELDS)

# The `attention_order` of a plugin's attention: after every registered one (plugins register in
# whatever order they load, so their position in the registry says nothing).
PLUGIN_ATTENTION_ORDER = 10_000


def attention_order(name: str, plugin: object | None) -> int:
    """The table position of attention `name`: its index in `attention_zoo.names()` for a built-in,
    `PLUGIN_ATTENTION_ORDER` for a plugin's or an unregistered one."""
    registered = attention_zoo.names()
    if plugin is not None or name not in registered:
        return PLUGIN_ATTENTION_ORDER
    return registered.index(name)


def blank_record() -> dict[str, Any]:
    """A run record with every field of `RECORD_FIELDS` None (an empty history)."""
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    record.update(schema_version=SCHEMA_VERSION, kind="run", history=[])
    return record


def new_record(r: Resolved) -> dict[str, Any]:
    """The record of run `r` as it starts (status ``running``): what is known before any data are
    loaded; the trainer fills in the rest."""
    cpu = r.device.type == "cpu"
    amp = r.preset.train.amp
    spec = tasks.get(r.cfg.task)
    record = blank_record()
    record.update(
        run_id=f"{r.cfg.task}/{r.attention.label}/{r.cfg.seed}",
        task=r.cfg.task,
        attention=r.attention.name,
        attention_params=r.attention.params.to_dict(),
        attention_label=r.attention.label,
        **plugin_fields(r.attention.plugin),
        preset=r.preset.name,
        seed=r.cfg.seed,
        status="running",
        steps=0,
        max_steps=r.preset.train.steps,
        num_classes=spec.num_classes,
        task_title=spec.title,
        task_order=spec.order,
        attention_order=attention_order(r.attention.name, r.attention.plugin),
        device=device_name(r.device),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        amp=amp if r.device.type == "cuda" and amp != "none" else None,
        git_commit=git_commit(),
        config_hash=r.config_hash,
        config=r.compared_config(),
        cpu_model=cpu_model() if cpu else None,
        cpu_isa=cpu_isa() if cpu else None,
        torch_version=torch.__version__,
        triton_version=installed_version("triton"),
        package_version=installed_version("lra-arena"),
        started_at=utc_now(),
    )
    return record


def existing_record(run_dir: Path) -> dict[str, Any] | None:
    """The record in `run_dir`; None when there is none or it is torn (an interrupted run: its
    checkpoint decides)."""
    path = run_dir / RECORD_NAME
    if not path.exists():
        return None
    try:
        return read_record(path)
    except ValueError:
        return None


def error_line(err: BaseException) -> str:
    """The one line a record's `error` field and the command line show for `err`: the message of
    an error meant for the user (a bad value, a damaged file, a full disk), otherwise the
    exception's type and the first line of its message."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, (ValueError, OSError, RunDirBusy)) and message:
        return message
    return f"{type(err).__name__}: {message}" if message else type(err).__name__
