"""Per-example test predictions of a run: ``<run_dir>/predictions.npz``, written with its record.

A run stores, for the checkpoint its tables report and for the last one, the predicted class of
every test example, with the example's index in the evaluated test split and its label
(`write_predictions`, called by `runners.train`). The record names the file
(`predictions_file`), its sha256 (`predictions_sha256`) and a digest of the examples it was
evaluated on (`test_set_sha256`: the data identity, the indices and the labels). Two runs with
equal `test_set_sha256` were scored on the same examples, so their accuracies are compared
paired (results/stats.py: McNemar's exact test, a paired bootstrap).

`read_predictions` checks the file against its record before anything uses it -- the sha256, the
run and configuration it names, its size against `n_test`, its accuracies against `test_acc` and
`test_acc_last`, its examples against `test_set_sha256` -- and raises `lra.io.IntegrityError`
(one line, naming the file and what to do) when any differs: a predictions file that does not
match its record is never used silently. Records without predictions (written before they were
kept, or runs that diverged) still load; their cells get intervals from the counts alone.

The file: ``np.savez_compressed`` arrays (no pickles): ``index`` [n] int32, ``label`` [n],
``pred_last`` [n] and, when the run has a best-validation checkpoint, ``pred_best`` [n] (the
smallest integer type that holds the classes), ``run_id`` and ``config_hash`` (strings) and
``format``. Reading needs numpy only (no torch).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

from lra.io import IntegrityError, atomic_write, sha256_file, verify_sha256

from .records import report_checkpoint, reported_accuracy_field
from .stats import Sample

PREDICTIONS_NAME = "predictions.npz"
PREDICTIONS_FORMAT = 1
BEST, LAST = "best", "last"


@dataclass(frozen=True)
class RunPredictions:
    """The predictions file of one run, checked against its record.

    Attributes:
        index: [n] position of each example in the evaluated test split.
        label: [n] its label.
        best: [n] predicted class of the best-validation checkpoint (None without one).
        last: [n] predicted class of the last checkpoint.
    """

    index: np.ndarray
    label: np.ndarray
    best: np.ndarray | None
    last: np.ndarray

    def correct(self, checkpoint: str) -> np.ndarray:
        """[n] bool: whether the `checkpoint` ("best" or "last") got each example right."""
        predicted = self.best if checkpoint == BEST else self.last
        if predicted is None:
            raise ValueError("the run has no best-validation checkpoint's predictions")
        return predicted == self.label


def reported_checkpoint(record: Mapping[str, Any]) -> str:
    """The checkpoint whose accuracy the tables report for a run ("best", or "last" where the validation
    set is the test set or the run's preset reports the last one, as `records.reported_accuracy_field`
    says)."""
    field = reported_accuracy_field(str(record.get("task")), report_checkpoint(record))
    return LAST if field == "test_acc_last" else BEST


def test_set_digest(data_identity: Any, index: np.ndarray, label: np.ndarray) -> str:
    """sha256 of the examples a run was evaluated on: its data identity (`config["data_identity"]`:
    the resolved source and a signature of its content), the example indices and their labels."""
    digest = hashlib.sha256(json.dumps(data_identity, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(index, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(label, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _class_dtype(*arrays: np.ndarray) -> type[np.integer[Any]]:
    top = max((int(a.max()) for a in arrays if a.size), default=0)
    return np.int8 if top < 2**7 else np.int16 if top < 2**15 else np.int32


def write_predictions(
    run_dir: str | os.PathLike[str],
    *,
    index: np.ndarray,
    label: np.ndarray,
    last: np.ndarray,
    best: np.ndarray | None,
    run_id: str,
    config_hash: str,
    data_identity: Any,
) -> dict[str, str]:
    """Atomically write ``<run_dir>/predictions.npz``; returns the record fields that name it
    (`predictions_file`, `predictions_sha256`, `test_set_sha256`)."""
    index, label, last = (np.asarray(a) for a in (index, label, last))
    if not (index.shape == label.shape == last.shape) or (best is not None and np.shape(best) != label.shape):
        raise ValueError("index, label and predictions must have one value per test example")
    dtype = _class_dtype(label, last, *([np.asarray(best)] if best is not None else []))
    arrays: dict[str, Any] = {  # Any: savez's keyword arrays share its signature with allow_pickle
        "format": np.asarray(PREDICTIONS_FORMAT),
        "run_id": np.asarray(run_id),
        "config_hash": np.asarray(config_hash),
        "index": index.astype(np.int32),
        "label": label.astype(dtype),
        "pred_last": last.astype(dtype),
    }
    if best is not None:
        arrays["pred_best"] = np.asarray(best).astype(dtype)
    path = Path(run_dir) / PREDICTIONS_NAME
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays), binary=True)
    return {
        "predictions_file": PREDICTIONS_NAME,
        "predictions_sha256": sha256_file(path),
        "test_set_sha256": test_set_digest(data_identity, index, label),
    }


def predictions_path(record: Mapping[str, Any], record_path: str | os.PathLike[str]) -> Path | None:
    """Where a record's predictions file lies (beside its result.json), or None when it has none."""
    name = record.get("predictions_file")
    if not isinstance(name, str) or not name:
        return None
    return Path(record_path).parent / name


def _remedy(path: Path) -> str:
    return (
        f"its run is compared unpaired (from its counts) until the file is restored, or delete {path.parent} "
        "and run it again"
    )


def read_predictions(record: Mapping[str, Any], record_path: str | os.PathLike[str]) -> RunPredictions:
    """The predictions of a run record read from `record_path`, checked against the record (see the
    module docstring). ValueError when the record names none; `lra.io.IntegrityError` (one line)
    when the file is missing, corrupt, or does not match its record."""
    path = predictions_path(record, record_path)
    if path is None:
        raise ValueError(f"{record_path}: the run was recorded without per-example predictions")
    if Path(str(record.get("predictions_file"))).name != record.get("predictions_file"):
        raise IntegrityError(f"{record_path}: predictions_file must be a file name beside the record")
    if not path.is_file():
        raise IntegrityError(f"{path} is missing; {_remedy(path)}")
    expected = record.get("predictions_sha256")
    if not isinstance(expected, str) or not expected:
        raise IntegrityError(
            f"{record_path}: the record names {path.name} without its sha256; {_remedy(path)}"
        )
    verify_sha256(path, expected, _remedy(path))
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, KeyError) as err:
        raise IntegrityError(f"{path} cannot be read ({err}); {_remedy(path)}") from None
    problem = _mismatch(record, arrays)
    if problem:
        raise IntegrityError(f"{path} does not match its record ({problem}); {_remedy(path)}")
    return RunPredictions(
        index=arrays["index"].astype(np.int64),
        label=arrays["label"].astype(np.int64),
        best=arrays["pred_best"].astype(np.int64) if "pred_best" in arrays else None,
        last=arrays["pred_last"].astype(np.int64),
    )


def _mismatch(record: Mapping[str, Any], arrays: dict[str, np.ndarray]) -> str | None:
    """What in the predictions contradicts the record (None when nothing does)."""
    for key in ("index", "label", "pred_last", "run_id", "config_hash"):
        if key not in arrays:
            return f"no {key!r} array"
    for key in ("run_id", "config_hash"):
        if str(arrays[key]) != str(record.get(key)):
            return f"{key} {arrays[key]} vs {record.get(key)}"
    label = arrays["label"]
    n_test = record.get("n_test")
    if _number(n_test) and len(label) != int(n_test):
        return f"{len(label)} examples vs n_test {n_test}"
    for key, field in (("pred_best", "test_acc"), ("pred_last", "test_acc_last")):
        value = record.get(field)
        if not _number(value):
            continue
        if key not in arrays:
            return f"no {key!r} array for {field}"
        accuracy = float(np.mean(arrays[key] == label)) if len(label) else math.nan
        if not math.isclose(accuracy, float(value), abs_tol=1e-9):
            return f"accuracy {accuracy:.6f} vs {field} {float(value):.6f}"
    identity = (
        (record.get("config") or {}).get("data_identity") if isinstance(record.get("config"), dict) else None
    )
    digest = record.get("test_set_sha256")
    if isinstance(digest, str) and digest != test_set_digest(identity, arrays["index"], label):
        return "its examples differ from the record's test_set_sha256"
    return None


def _number(value: Any) -> TypeGuard[float | int | np.number]:
    return (
        isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and not math.isnan(value)
    )


def reported_correct(record: Mapping[str, Any], record_path: str | os.PathLike[str]) -> np.ndarray:
    """[n] bool: which test examples the checkpoint the tables report got right (checked as
    `read_predictions` does)."""
    return read_predictions(record, record_path).correct(reported_checkpoint(record))


def frame_record(row: pd.Series | Mapping[str, Any]) -> dict[str, Any]:
    """A run record from a row of `results.store.Store.runs` (NaN back to None)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _data_text(record: Mapping[str, Any]) -> str:
    """Which data a run read, for the line that says why two cells are not paired."""
    config = record.get("config")
    identity = config.get("data_identity") if isinstance(config, dict) else None
    source = record.get("data_source") or (identity or {}).get("source") or "?"
    content = (identity or {}).get("content")
    return f"{source}" + (f" [{str(content)[:12]}]" if content else "")


def cell_sample(runs: pd.DataFrame) -> tuple[Sample | None, list[str]]:
    """The statistics' view of a cell's counted runs (rows of `Store.runs`, status ok, one per seed):
    per-seed counts from the reported accuracy and `n_test`, and the per-example outcomes when every
    run kept predictions that pass `read_predictions` on one test set; plus one line per predictions
    file that failed its check (never used). None when a run lacks its accuracy or `n_test`."""
    records = [frame_record(row) for _, row in runs.iterrows()]
    accuracies, sizes = [], []
    for record in records:
        accuracy, n = record.get("reported_acc"), record.get("n_test")
        if not (_number(accuracy) and _number(n)) or int(n) <= 0:
            return None, []
        accuracies.append(float(accuracy))
        sizes.append(int(n))
    data = "; ".join(dict.fromkeys(_data_text(r) for r in records))
    problems: list[str] = []
    outcomes: list[np.ndarray] = []
    unpaired: str | None = None
    for record in records:
        if predictions_path(record, record.get("path") or "") is None:
            unpaired = unpaired or "was recorded without per-example predictions"
            continue
        try:
            outcomes.append(reported_correct(record, record["path"]))
        except IntegrityError as err:
            problems.append(str(err))
            unpaired = "has a predictions file that failed its check"
        except ValueError as err:
            problems.append(f"{record['path']}: {err}")
            unpaired = unpaired or "has predictions that cannot be used"
    digests = {r.get("test_set_sha256") for r in records}
    if unpaired is None and len(digests) != 1:
        unpaired = "has seeds evaluated on different test examples"
    if unpaired is not None:
        return Sample.from_accuracies(accuracies, sizes, data=data, unpaired=unpaired), problems
    (digest,) = digests
    return Sample.from_outcomes(np.stack(outcomes), test_set=str(digest), data=data), problems
