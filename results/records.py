"""Result records: one JSON object per run, efficiency measurement or evaluation, written atomically.

Three kinds share the store:

* ``kind = "run"`` -- one training run (task x attention x seed), written by `runners.train` as
  ``<run_dir>/result.json``. Fields in `RUN_FIELDS`.
* ``kind = "efficiency"`` -- one timing / memory measurement, written by `runners.bench`. Fields in
  `EFFICIENCY_FIELDS`.
* ``kind = "eval"`` -- one evaluation of a trained checkpoint, possibly with another attention or
  other attention parameters than it was trained with, written by `runners.experiments`
  (``lra sweep``, ``lra swap``). Fields in `EVAL_FIELDS`. The leaderboard reads run records only.

Each kind may also carry the optional `PLUGIN_FIELDS` (the attention plugin an attention came from).

Records are flat where possible (the validation curve is the one nested field, `history`). Every
record carries `schema_version`, and every field of its kind; the values are checked against the
pydantic models of results/schema.py (types, ranges) when a record is written and whenever it is
read. Readers skip, and report by file name and field, records that are truncated, not JSON, of
another schema or with a value out of its range.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lra.io import atomic_write_json

from .schema import validate_record

SCHEMA_VERSION = 1
RECORD_NAME = "result.json"

# field -> meaning. Writers must provide every field (None where not applicable).
RUN_FIELDS: dict[str, str] = {
    "schema_version": "record schema version",
    "kind": "'run'",
    "run_id": "'<task>/<attention label>/<seed>' -- unique within a suite",
    "task": "task name (lra.tasks)",
    "attention": "registry name (attention_zoo.names())",
    "attention_params": "dict of the mechanism's parameters, defaults filled in",
    "attention_label": "attention with non-default params, e.g. 'mita(num_landmarks=64,topk=64)'",
    "keys_per_query": "keys each query attends at the task's sequence length",
    "preset": "preset name",
    "seed": "random seed",
    "status": "'ok' | 'failed' | 'diverged' | 'running'",
    "error": "one-line error for failed / diverged runs, else None",
    "steps": "optimizer steps completed",
    "max_steps": "optimizer steps planned",
    "best_step": "step of the best validation accuracy",
    "best_val_acc": "best validation accuracy (fraction 0..1)",
    "test_acc": "test accuracy of the best-validation checkpoint (what the PyTorch lineage tests)",
    "test_acc_last": "test accuracy of the last checkpoint (what LRA's JAX code tests)",
    "val_acc_last": "validation accuracy of the last checkpoint",
    "final_train_loss": "mean training loss over the last evaluation interval",
    "chance_acc": "accuracy of always predicting the most frequent test label",
    "num_classes": "number of classes",
    "n_train": "training examples",
    "n_val": "validation examples",
    "n_test": "test examples",
    "seq_len": "model sequence length per input",
    "data_source": "e.g. 'generated:listops/short/seed0' or 'lra_release:/data/lra_release'",
    "params": "trainable parameter count",
    "train_tokens_per_s": "training throughput, input tokens per second (median over intervals)",
    "train_steps_per_s": "optimizer steps per second",
    "peak_memory_bytes": "peak CUDA memory allocated, or on CPU the growth of the process's peak resident memory "
    "over its resident memory before the model was built (None where that peak cannot be reset)",
    "wall_time_s": "wall time of the run, summed over resumptions",
    "device": "e.g. 'cpu' or 'NVIDIA H200'",
    "world_size": "number of DDP processes",
    "amp": "autocast dtype or None",
    "git_commit": "commit of the code that ran (None outside a git checkout)",
    "config_hash": "sha256 prefix of the resolved configuration",
    "config": "the resolved configuration (nested dict)",
    "torch_version": "torch.__version__",
    "triton_version": "triton.__version__ or None",
    "package_version": "lra-arena version",
    "started_at": "ISO time of the first start",
    "finished_at": "ISO time of the end",
    "history": "list of {step, train_loss, val_acc, val_loss, lr} at every evaluation",
}

EFFICIENCY_FIELDS: dict[str, str] = {
    "schema_version": "record schema version",
    "kind": "'efficiency'",
    "bench": "'attention' (kernel level) | 'model' (LRA Table-2 training step)",
    "attention": "registry name",
    "attention_params": "dict of parameters",
    "attention_label": "as in run records",
    "backend": "implementation, e.g. 'torch', 'triton', 'sdpa-cudnn'",
    "pass": "'forward' | 'forward_backward' | 'train_step'",
    "seq_len": "sequence length N",
    "batch": "batch size B",
    "heads": "heads H",
    "head_dim": "head dimension d (model width for bench='model')",
    "dtype": "e.g. 'bfloat16'",
    "device": "e.g. 'cpu' or 'NVIDIA H200'",
    "status": "'ok' | 'oom' | 'error'",
    "error": "message for oom / error, else None",
    "time_ms_median": "median time per call in ms",
    "time_ms_p20": "20th percentile",
    "time_ms_p80": "80th percentile",
    "steps_per_s": "1000 / time_ms_median",
    "peak_memory_bytes": "peak memory of one call",
    "repeats": "timed repetitions",
    "torch_version": "torch.__version__",
    "triton_version": "triton.__version__ or None",
    "git_commit": "commit of the code that ran",
    "measured_at": "ISO time",
}

EVAL_FIELDS: dict[str, str] = {
    "schema_version": "record schema version",
    "kind": "'eval'",
    "experiment": "'mk' | 'swap' | 's' | 'landmarks' -- the command that wrote it (runners/experiments/)",
    "run_id": "run_id of the evaluated run ('<task>/<attention label>/<seed>')",
    "run_dir": "directory of the evaluated run",
    "run_config_hash": "configuration hash of the evaluated run (its checkpoint carries the same)",
    "task": "task name",
    "preset": "preset name of the evaluated run",
    "seed": "seed of the evaluated run",
    "checkpoint": "'best' (best validation) | 'last'",
    "checkpoint_step": "optimizer step of the checkpoint",
    "train_attention": "registry name of the attention the checkpoint was trained with",
    "train_attention_params": "its parameters",
    "train_attention_label": "its label",
    "attention": "registry name of the attention used for this evaluation",
    "attention_params": "its parameters, defaults filled in",
    "attention_label": "its label, e.g. 'mita(num_landmarks=64,topk=64)'",
    "keys_per_query": "keys each query attends at seq_len with the evaluation attention",
    "split": "'val' | 'test'",
    "n_examples": "examples evaluated",
    "accuracy": "accuracy on those examples (fraction 0..1)",
    "loss": "mean cross-entropy on those examples",
    "chance_acc": "accuracy of always predicting the most frequent label of those examples",
    "missing_parameters": "'name [shape]' of parameters the evaluation model has and the checkpoint lacks "
    "(initialised with the run's seed), e.g. learned landmark queries",
    "unused_parameters": "'name [shape]' of checkpoint parameters the evaluation model does not have (dropped)",
    "diagnostics": "MiTA routing statistics on a few batches (attention_zoo.mita.diagnostics), or None",
    "seq_len": "model sequence length per input",
    "device": "e.g. 'cpu' or 'NVIDIA H200'",
    "torch_version": "torch.__version__",
    "git_commit": "commit of the code that ran",
    "measured_at": "ISO time",
}

# Optional fields of run, efficiency and eval records (records written before them lack them; readers
# treat a missing one as None): where an attention that is not built in came from.
PLUGIN_FIELDS: dict[str, str] = {
    "plugin": "module of the attention plugin that registered the attention (lra --plugin / LRA_PLUGINS / "
    "entry point 'lra.attentions'), None for a built-in attention",
    "plugin_distribution": "installed distribution providing the plugin, None for a module on sys.path only",
    "plugin_version": "that distribution's version",
    "plugin_sha256": "sha256 of the plugin module's source file",
}


# Optional fields of run records (records written before them lack them; readers treat a missing one
# as None, and the schema, results/schema.py, types them): the per-example predictions (without them a
# cell's accuracy is compared from its counts alone, unpaired) and the machine of a CPU run (what its
# numbers depend on is `config["cpu_numerics"]`, runners/cpu_pinning.py, which the tables compare).
OPTIONAL_RUN_FIELDS: dict[str, str] = {
    "predictions_file": "name of the run's per-example test predictions file beside result.json "
    "('predictions.npz', results/predictions.py): the predicted class of every test example, with the "
    "example's index in the evaluated split and its label, for the best-validation and the last "
    "checkpoint; None when the run has none (diverged, failed, or recorded before predictions were kept)",
    "predictions_sha256": "sha256 of the predictions file when it was written (checked at every read), or None",
    "test_set_sha256": "sha256 of the evaluated test examples (the data identity, the example indices and "
    "labels): runs with equal values were evaluated on the same examples and are compared paired; None "
    "without predictions",
    "cpu_model": "the CPU's model name for CPU runs (None on CUDA)",
    "cpu_isa": "the best vector instruction set the CPU offers, e.g. 'avx512', for CPU runs (None on CUDA)",
    "task_title": "the task's display title ('ListOps', 'Path-X'; lra.tasks.TaskSpec.title), or None",
    "task_order": "the task's display position (lra.tasks.TaskSpec.order; tables sort columns by it), or None",
    "attention_order": "the attention's position in attention_zoo.names() (tables sort rows by it); a large "
    "number for plugin attentions outside the registry; None in records written before it",
}


def plugin_fields(provenance: dict[str, Any] | None) -> dict[str, Any]:
    """The `PLUGIN_FIELDS` of a record from a plugin's provenance (`PluginInfo.to_dict()`), all None
    for a built-in attention (`provenance` None)."""
    provenance = provenance or {}
    return {
        "plugin": provenance.get("module"),
        "plugin_distribution": provenance.get("distribution"),
        "plugin_version": provenance.get("version"),
        "plugin_sha256": provenance.get("source_sha256"),
    }


def plugin_label(label: str, plugin: Any) -> str:
    """A table's attention label marked as a plugin's: 'myattn (plugin: mypkg.myattn)'."""
    return f"{label} (plugin: {plugin})" if isinstance(plugin, str) and plugin else label


def val_is_test(task: str) -> bool:
    """Whether `task`'s validation set is its test set (`lra.tasks.TaskSpec.val_is_test`: Text, whose
    IMDB source has no validation split and which LRA evaluates on test): picking the best-validation
    checkpoint there would pick on the test set, so tables report the last checkpoint's test accuracy.
    False for a task the registry does not know."""
    from lra import tasks  # lazily: the registry imports torch

    try:
        return tasks.get(task).val_is_test
    except ValueError:
        return False


def report_checkpoint(record: Mapping[str, Any]) -> str:
    """The checkpoint a run's preset reports, "best" or "last": `config.preset.train.report_checkpoint`
    ("best" for records written before the field)."""
    config = record.get("config")
    preset = config.get("preset") if isinstance(config, Mapping) else None
    train = preset.get("train") if isinstance(preset, Mapping) else None
    return "last" if isinstance(train, Mapping) and train.get("report_checkpoint") == "last" else "best"


def reported_accuracy_field(task: str, checkpoint: str = "best") -> str:
    """The run-record field the tables report: `test_acc_last` for a task whose validation set is
    its test set or a preset that reports the last checkpoint (`checkpoint`, see
    `report_checkpoint`), `test_acc` (the best-validation checkpoint) otherwise."""
    return "test_acc_last" if val_is_test(task) or checkpoint == "last" else "test_acc"


def reported_accuracy_text(record: dict[str, Any]) -> str | None:
    """The accuracy a table reports for a run record, labelled: 'test 71.20%', or for the last
    checkpoint 'test 71.20% (last checkpoint; why)'; None when it has none."""
    task = str(record.get("task") or "")
    checkpoint = report_checkpoint(record)
    value = record.get(reported_accuracy_field(task, checkpoint))
    if value is None:
        return None
    text = f"test {100 * value:.2f}%"
    if val_is_test(task):
        text += " (last checkpoint: its validation set is its test set, so a best-validation checkpoint is chosen on test)"
    elif checkpoint == "last":
        text += " (last checkpoint, as the preset's source tests)"
    return text


FIELDS_BY_KIND = {"run": RUN_FIELDS, "efficiency": EFFICIENCY_FIELDS, "eval": EVAL_FIELDS}


def is_out_of_memory(error: Any) -> bool:
    """Whether a failed run's `error` says it ran out of (GPU) memory (torch's OutOfMemoryError,
    or a CUDA / cuBLAS allocation failure)."""
    text = error.lower() if isinstance(error, str) else ""
    return "outofmemoryerror" in text or "out of memory" in text or "alloc_failed" in text


def check_record(record: dict[str, Any]) -> None:
    """ValueError (one line) if the record lacks fields of its kind, has the wrong schema version or
    a value its schema (results/schema.py) refuses, naming each such field and its value."""
    kind = record.get("kind")
    if kind not in FIELDS_BY_KIND:
        raise ValueError(f"record kind must be one of {sorted(FIELDS_BY_KIND)}; got {kind!r}")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"record schema_version {record.get('schema_version')!r} != {SCHEMA_VERSION}")
    missing = [f for f in FIELDS_BY_KIND[kind] if f not in record]
    if missing:
        raise ValueError(f"{kind} record lacks fields: {', '.join(missing)}")
    try:
        validate_record(record)
    except ValueError as err:
        raise ValueError(f"invalid {kind} record: {err}") from None


def write_record(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Validate and atomically write one record as JSON."""
    check_record(record)
    atomic_write_json(path, record)


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate one record; ValueError naming the file if it is torn or invalid."""
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable record ({err})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: record is not a JSON object")
    try:
        check_record(record)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return record


def iter_record_files(root: str | os.PathLike[str]) -> Iterable[Path]:
    """Every `*.json` record file under root (recursive), sorted.

    Hidden files and everything under hidden directories (temp files, `.replaced/` archives of
    superseded runs, `.git`) are excluded.
    """
    root = Path(root)
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.json")):
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path


def load_records(
    root: str | os.PathLike[str], kind: str | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """All valid records under root (optionally of one kind) and one problem line per bad file.

    Files that are JSON but not records (no `kind`/`schema_version`, e.g. a run's config.json) are
    ignored silently; records that are torn, corrupt or incomplete are reported.
    """
    records, problems = [], []
    for path in iter_record_files(root):
        try:
            with open(path, encoding="utf-8") as fh:
                raw = fh.read()
        except OSError as err:
            problems.append(f"{path}: unreadable ({err})")
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            if path.name == RECORD_NAME or '"kind"' in raw:
                problems.append(f"{path}: truncated or corrupt JSON, skipped")
            continue
        if not isinstance(obj, dict) or "kind" not in obj or "schema_version" not in obj:
            continue
        try:
            check_record(obj)
        except ValueError as err:
            problems.append(f"{path}: {err}, skipped")
            continue
        if kind is None or obj["kind"] == kind:
            obj["_path"] = str(path)
            records.append(obj)
    return records, problems
