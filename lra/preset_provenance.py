"""The provenance table of the presets that name a source (`pytorch`, `lra`), built from their code.

One row per field of `ModelConfig`, `TrainConfig` and `DataConfig`, per preset and task: the value
the preset holds (`lra.presets.get_preset`) and where it comes from (`lra.presets.source_preset`):
"= source" with the file, its commit and what it says, or "ours" with the reason. A field without
a provenance is an error, so a field added to the configs must say where its value comes from.

`markdown()` renders the table for the README (`lra readme`) and `lra list presets --provenance`;
rows that agree across tasks are merged, and `config[task]` stands for lra_config.py's task keys
(listops, text, retrieval, image, pathfinder32).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import tasks as task_registry
from .presets import SOURCE_PRESETS, get_preset, preset_tasks, source_preset
from .sources import Cite, Ours, Provenance

SECTIONS = ("model", "train", "data")
# Values that depend on the machine rather than on the preset, shown as what decides them.
_DISPLAYED = {"data.data_dir": "$LRA_DATA_DIR or lra_data"}


@dataclass(frozen=True)
class Row:
    """One field of one preset and task, with its provenance."""

    preset: str
    task: str
    field: str  # "section.name", e.g. "model.dim"
    value: Any
    provenance: Provenance

    @property
    def value_text(self) -> str:
        if self.field in _DISPLAYED:
            return _DISPLAYED[self.field]
        if isinstance(self.value, str):
            return repr(self.value) if self.value == "" else self.value
        return f"{self.value:g}" if isinstance(self.value, float) else str(self.value)

    @property
    def provenance_text(self) -> str:
        return provenance_text(self.provenance)


def provenance_text(provenance: Provenance, link: bool = False) -> str:
    """'= <file>: <where> (<note>)' or 'ours: <why>'."""
    if isinstance(provenance, Ours):
        return f"ours: {provenance.why}"
    name = f"[{provenance.file}]({provenance.file.url})" if link else f"{provenance.file}"
    return f"= {name}: {provenance.where}" + (f" ({provenance.note})" if provenance.note else "")


def field_names() -> list[str]:
    """Every configurable field, "section.name", in declaration order."""
    preset = get_preset(task_registry.names()[0], "tiny")
    return [f"{s}.{f.name}" for s in SECTIONS for f in dataclasses.fields(getattr(preset, s))]


def rows(presets: Sequence[str] = SOURCE_PRESETS, tasks: Sequence[str] = ()) -> list[Row]:
    """The provenance rows of `presets` x `tasks` (default: every task the preset has settings for);
    ValueError when a field has none."""
    out = []
    names = field_names()
    for name in presets:
        for task in tasks or preset_tasks(name):
            built, provenance = source_preset(name, task)
            preset = get_preset(task, name)
            if preset != dataclasses.replace(
                built, data=dataclasses.replace(built.data, data_dir=preset.data.data_dir)
            ):
                raise ValueError(f"preset {name}/{task} differs from the values its provenance describes")
            missing = [key for key in names if key not in provenance]
            if missing:
                raise ValueError(f"preset {name}/{task}: no provenance for {', '.join(missing)}")
            for key in names:
                section, _, attr = key.partition(".")
                value = getattr(getattr(preset, section), attr)
                out.append(Row(name, task, key, value, provenance[key]))
    return out


def _task_list(tasks: Iterable[str], every: Sequence[str]) -> str:
    """'all', 'all but pathx' or the tasks by name (of `every` task the preset has)."""
    tasks = list(tasks)
    others = [t for t in every if t not in tasks]
    if not others:
        return "all"
    return f"all but {', '.join(others)}" if len(tasks) > 3 else ", ".join(tasks)


def markdown(presets: Sequence[str] = SOURCE_PRESETS, tasks: Sequence[str] = ()) -> str:
    """One markdown table per preset: field, tasks, value, provenance (rows equal across tasks merged)."""
    all_rows = rows(presets, tasks)
    parts = []
    for name in presets:
        merged: dict[tuple[str, str, str], list[str]] = {}
        for row in all_rows:
            if row.preset == name:
                merged.setdefault(
                    (row.field, row.value_text, provenance_text(row.provenance, link=True)), []
                ).append(row.task)
        shown = list(tasks or preset_tasks(name))
        description = get_preset(shown[0], name).description if len(shown) == 1 else ""
        lines = [
            f"**`{name}`**" + (f" ({description})" if description else ""),
            "",
            "| field | tasks | value | provenance |",
            "|---|---|---|---|",
        ]
        for (key, value, text), on in merged.items():
            cell = text.replace("|", "\\|")
            lines.append(f"| `{key}` | {_task_list(on, preset_tasks(name))} | `{value}` | {cell} |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def counts(all_rows: Sequence[Row]) -> dict[str, int]:
    """How many rows follow a source and how many are the project's own choices."""
    cited = sum(isinstance(r.provenance, Cite) for r in all_rows)
    return {"source": cited, "ours": len(all_rows) - cited}
