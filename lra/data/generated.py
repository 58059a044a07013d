"""The `generated` source: offline data of the tasks with a generator (`TaskSpec.generator`:
ListOps, Pathfinder, Path-X), made on first use.

Data are generated into `<data_dir>/generated/<task>/<variant>-seed<S>-<hash>/` in the official
`lra_release` layout and read back by the `lra_release` readers, so generated and official data
share one code path. Generation happens once per (task, variant, parameters, sizes, seed), also
when several processes ask at the same moment (`cache.build_once`: temporary folder + rename,
under a file lock).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import build_once, digest

if TYPE_CHECKING:
    from lra.tasks.base import DataConfig, TaskGenerator

GENERATED_DIR = "generated"
GENERATOR_FORMAT = 4  # bump when a generator's output changes for the same parameters
PARAMS_NAME = "generator.json"


def _sizes(data: DataConfig) -> dict[str, int | None]:
    return {"n_train": data.n_train or None, "n_val": data.n_val or None, "n_test": data.n_test or None}


def _generator(task: str) -> TaskGenerator:
    from lra import tasks

    return tasks.get(task).require_generator()


def generator_params(task: str, data: DataConfig) -> Any:
    """The generator settings of `task` for `data`: the named variant with the requested sizes."""
    return _generator(task).make_params(data.generator, **_sizes(data))


def data_source(task: str, data: DataConfig) -> str:
    """The provenance string of generated data, e.g. 'generated:listops/short/seed0'."""
    return f"generated:{task}/{data.generator}/seed{data.gen_seed}"


def generator_description(task: str, data: DataConfig) -> dict[str, Any]:
    """Everything the generated data of `task` for `data` are a function of."""
    return _description(task, data, _generator(task), generator_params(task, data))


def _description(task: str, data: DataConfig, generator: TaskGenerator, params: Any) -> dict[str, Any]:
    return {
        "task": task,
        "variant": data.generator,
        "seed": data.gen_seed,
        "format": GENERATOR_FORMAT,
        "params": generator.describe(params),
    }


def generated_folder(task: str, data: DataConfig) -> Path:
    """Where the generated data of `task` for `data` live (whether or not they exist yet)."""
    return _folder(task, data, generator_description(task, data))


def _folder(task: str, data: DataConfig, description: dict[str, Any]) -> Path:
    return (
        Path(data.data_dir)
        / GENERATED_DIR
        / task
        / f"{data.generator}-seed{data.gen_seed}-{digest(description)}"
    )


def is_generated(task: str, data: DataConfig) -> bool:
    """Whether the generated data of `task` for `data` exist (complete: they are renamed into place
    only when finished)."""
    return generated_folder(task, data).is_dir()


def ensure_generated(task: str, data: DataConfig, workers: int = 0) -> tuple[Path, Any]:
    """The folder holding `task`'s generated data for `data` (generated now if missing) and the
    generator parameters used."""
    generator = _generator(task)
    params = generator_params(task, data)
    description = _description(task, data, generator, params)
    final = _folder(task, data, description)

    def build(tmp: Path) -> None:
        generator.write(tmp, params, data.gen_seed, workers)
        (tmp / PARAMS_NAME).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")

    return build_once(final, build), params
