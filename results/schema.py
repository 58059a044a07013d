"""The schema of every JSON file a results folder holds, applied on every read (pydantic).

* result records (`result.json` and the bench / eval records): `RunRecord`, `EfficiencyRecord`,
  `EvalRecord`, checked by `results.records.check_record` after it has checked that every field of
  the kind is present (`RUN_FIELDS`, ...);
* a run's `config.json`: `RunConfigFile` (`read_run_config_file`);
* a suite's `suite.json`: `SuiteFile` (`read_suite_file`).

Types are strict (a number is a JSON number, never a string; a count is an integer, never a bool),
accuracies are fractions in [0, 1], counts are non-negative (`n_test` positive: it divides), plugin
entries name a module, not a path. A file that fails is a `ValueError` naming the file and each
offending field with its value; readers skip it with that line as a warning (`load_records`), and
the leaderboard counts it under the table. Fields beyond the schema are kept as they are.

Adding a field to a record:

* an optional field (records written before it lack it): one line in the model,
  ``new_field: float | None = None`` (with its constraints: `Fraction`, `Count`, `Finite`, ...);
* a field every record of the kind must carry: one line in `RUN_FIELDS` (or `EVAL_FIELDS`,
  `EFFICIENCY_FIELDS`) in results/records.py, and, to constrain its type, one in the model.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# A fraction: an accuracy, a chance level.
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
# A count of things (steps, examples, bytes, parameters).
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
# A finite non-negative measurement (seconds, rates).
Finite = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
# A hex sha256 digest.
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
# A module name as `--plugin` takes it (dotted identifiers; never a path).
ModuleName = Annotated[str, Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")]


class _Model(BaseModel):
    """Strict types; fields beyond the schema are kept (newer writers, other tools)."""

    model_config = ConfigDict(extra="allow", strict=True)


class _PluginFields(_Model):
    """`results.records.PLUGIN_FIELDS`: optional in every kind of record."""

    plugin: ModuleName | None = None
    plugin_distribution: str | None = None
    plugin_version: str | None = None
    plugin_sha256: str | None = None


class HistoryEntry(_Model):
    """One evaluation of a run (`RunRecord.history`). Losses may be NaN: an evaluation interval in
    which every step was non-finite has no mean training loss."""

    step: Count
    train_loss: float | None = None
    val_acc: Fraction | None = None
    val_loss: float | None = None
    lr: float | None = None


class RunRecord(_PluginFields):
    """`kind = "run"`: one training run (`results.records.RUN_FIELDS` says what each field means)."""

    schema_version: Literal[1]
    kind: Literal["run"]
    run_id: str
    task: str
    attention: str
    attention_params: dict[str, Any]
    attention_label: str
    keys_per_query: Finite | None = None
    preset: str
    seed: Count
    status: Literal["ok", "failed", "diverged", "running"]
    error: str | None = None
    steps: Count | None = None
    max_steps: Positive | None = None
    best_step: Count | None = None
    best_val_acc: Fraction | None = None
    test_acc: Fraction | None = None
    test_acc_last: Fraction | None = None
    val_acc_last: Fraction | None = None
    final_train_loss: float | None = None
    chance_acc: Fraction | None = None
    num_classes: Positive | None = None
    n_train: Count | None = None
    n_val: Count | None = None
    n_test: Positive | None = None
    seq_len: Positive | None = None
    data_source: str | None = None
    params: Count | None = None
    train_tokens_per_s: Finite | None = None
    train_steps_per_s: Finite | None = None
    peak_memory_bytes: Finite | None = None
    wall_time_s: Finite | None = None
    device: str | None = None
    world_size: Positive | None = None
    amp: str | None = None
    git_commit: str | None = None
    config_hash: str | None = None
    config: dict[str, Any] | None = None
    torch_version: str | None = None
    triton_version: str | None = None
    package_version: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    history: list[HistoryEntry]
    # Optional (absent from records written before them; results.records.OPTIONAL_RUN_FIELDS):
    predictions_file: str | None = None
    predictions_sha256: Sha256 | None = None
    test_set_sha256: Sha256 | None = None
    cpu_model: str | None = None
    cpu_isa: str | None = None
    task_title: str | None = None
    task_order: Count | None = None
    attention_order: Count | None = None


class EfficiencyRecord(_PluginFields):
    """`kind = "efficiency"`: one timing / memory measurement (`EFFICIENCY_FIELDS`)."""

    schema_version: Literal[1]
    kind: Literal["efficiency"]
    bench: str
    attention: str
    attention_params: dict[str, Any]
    attention_label: str
    backend: str | None = None
    pass_: str = Field(alias="pass")
    seq_len: Positive | None = None
    batch: Positive | None = None
    heads: Positive | None = None
    head_dim: Positive | None = None
    dtype: str | None = None
    device: str | None = None
    status: Literal["ok", "oom", "error"]
    error: str | None = None
    time_ms_median: Finite | None = None
    time_ms_p20: Finite | None = None
    time_ms_p80: Finite | None = None
    steps_per_s: Finite | None = None
    peak_memory_bytes: Finite | None = None
    repeats: Count | None = None


class EvalRecord(_PluginFields):
    """`kind = "eval"`: one evaluation of a trained checkpoint (`EVAL_FIELDS`)."""

    schema_version: Literal[1]
    kind: Literal["eval"]
    experiment: str
    run_id: str
    task: str
    preset: str
    seed: Count
    checkpoint: Literal["best", "last"]
    checkpoint_step: Count | None = None
    attention: str
    attention_params: dict[str, Any]
    split: Literal["val", "test"]
    n_examples: Positive | None = None
    accuracy: Fraction | None = None
    loss: float | None = None
    chance_acc: Fraction | None = None
    seq_len: Positive | None = None


RECORD_MODELS: dict[str, type[_Model]] = {
    "run": RunRecord,
    "efficiency": EfficiencyRecord,
    "eval": EvalRecord,
}


class PluginEntry(_Model):
    """A plugin as runs and suites record it (`attention_zoo.plugins.PluginInfo.to_dict()`)."""

    module: ModuleName
    mechanisms: list[str] = []
    distribution: str | None = None
    version: str | None = None
    source_sha256: str | None = None
    loaded_via: str | None = None


class RunConfigEntry(_Model):
    """`runners.train.RunConfig` as config.json and run_config.json hold it."""

    task: str = "listops"
    attention: str = "mita"
    attn_params: dict[str, Any] = {}
    preset: str = "tiny"
    overrides: dict[str, Any] = {}
    seed: Count = 0
    run_dir: str = ""
    max_steps: Positive | None = None
    checkpoint_every: Count | None = None
    resume: bool = False
    device: str = "auto"
    amp: bool | None = None
    data_dir: str | None = None
    source: str | None = None
    quiet: bool = False
    plugins: list[ModuleName | PluginEntry] = []


class RunConfigFile(_Model):
    """A run's `config.json`: the `RunConfig` it ran with and the resolved configuration it hashed."""

    run_config: RunConfigEntry | None = None
    task: str
    attention: str
    attention_params: dict[str, Any]
    preset: dict[str, Any]
    seed: Count
    device_type: str | None = None
    plugins: list[ModuleName] = []


class SuiteRun(_Model):
    run_id: str
    run_dir: str
    config_hash: str


class SuiteFile(_Model):
    """A suite's `suite.json`: its configuration, the plugins of its runs and the planned runs."""

    suite: dict[str, Any]
    written_at: str | None = None
    plugins: list[PluginEntry] = []
    runs: list[SuiteRun] = []


def describe(err: ValidationError, limit: int = 4) -> str:
    """The errors of a validation as one line: 'test_acc: Input should be ... (got 5.0); ...'."""
    parts = []
    for item in err.errors()[:limit]:
        where = ".".join(str(part) for part in item["loc"]) or "(the whole file)"
        got = f" (got {item['input']!r})" if item["type"] != "missing" and "input" in item else ""
        parts.append(f"{where}: {item['msg']}{got}")
    more = err.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate(model: type[_Model], data: Any) -> dict[str, Any]:
    """`data` checked against `model`; ValueError (one line, each failing field) otherwise."""
    try:
        model.model_validate(data)
    except ValidationError as err:
        raise ValueError(describe(err)) from None
    return data


def validate_record(record: dict[str, Any]) -> None:
    """Check a record of a known kind against its model; ValueError naming each failing field."""
    validate(RECORD_MODELS[record["kind"]], record)


def read_json_file(path: str | os.PathLike[str], model: type[_Model], what: str) -> dict[str, Any]:
    """Read and validate one JSON file (`what` it should be, for the message); ValueError naming the
    file and the failing fields otherwise."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({err})") from None
    try:
        return validate(model, data)
    except ValueError as err:
        raise ValueError(f"{path} is not a valid {what}: {err}") from None


def read_run_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's `config.json`, validated (`RunConfigFile`)."""
    return read_json_file(path, RunConfigFile, "run configuration (config.json of lra run)")


def read_suite_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A suite's `suite.json`, validated (`SuiteFile`)."""
    return read_json_file(path, SuiteFile, "suite plan (suite.json of lra suite)")
