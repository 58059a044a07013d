"""What a run reports while it trains, to loggers chosen with `--log` (`RunConfig.log`).

The trainer (runners/train/trainer.py) calls a `RunLogger` where it already keeps its numbers: after every
optimizer step (`train_step`), at every evaluation (`evaluation`), just before every resumable
checkpoint (`checkpoint`) and at the end (`end`). `open_run_logger` returns the loggers named in
`RunConfig.log` behind one object; with none it is `RunLogger`, which records nothing.

``tensorboard`` (`TensorBoardLogger`, the optional dependency ``tensorboard``, imported only when
chosen) writes event files under ``<run_dir>/tensorboard/``, so ``tensorboard --logdir <out>`` lists a
suite's runs as ``runs/<task>/<attention>/<seed>/tensorboard``:

* ``train/loss``, ``train/lr``, ``train/grad_norm`` at every step;
* ``val/acc``, ``val/loss``, ``train/loss_interval`` (mean over the steps since the last
  evaluation), ``throughput/tokens_per_s``, ``throughput/steps_per_s`` (of that interval) and
  ``memory/peak_bytes`` (the run's peak memory so far, as its record measures it) at every evaluation;
* ``test/acc`` (best-validation checkpoint) and ``test/acc_last`` at the last step;
* the configuration as text (``config``, at step 0) and the final record's summary (``result``).

Resuming continues the curves without a step twice. The writer flushes its events just before every
resumable checkpoint is written, so a checkpoint's steps are on disk before it is; a resumed run first
rewrites the event files of earlier attempts without the events after its checkpoint's step (written
by a process killed before its next checkpoint, about to be trained again), so that every reader sees
each step once, and opens its writer with TensorBoard's ``purge_step`` at the step after the
checkpoint as well. A run that starts from step 0 deletes the event files of attempts that failed
before their first checkpoint.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOG_DIR_NAME = "tensorboard"
LOGGERS = ("tensorboard",)
EVENT_FILE_PATTERN = "events.out.tfevents.*"
# Written at the end, after the last checkpoint: a resumed run always writes them again.
END_TAGS = frozenset({"test/acc", "test/acc_last", "result/text_summary"})


def check_loggers(kinds: Sequence[str]) -> None:
    """ValueError (one line) for an unknown logger or one whose package is not installed."""
    unknown = sorted(set(kinds) - set(LOGGERS))
    if unknown:
        raise ValueError(f"unknown --log {', '.join(unknown)}; valid loggers: {', '.join(LOGGERS)}")
    if "tensorboard" in kinds:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise ValueError(
                "--log tensorboard needs the tensorboard package: pip install 'lra-arena[tensorboard]'"
            ) from None


class RunLogger:
    """What the trainer reports; this base class records nothing (no logger chosen)."""

    def train_step(self, step: int, *, loss: float, lr: float, grad_norm: Any) -> None:
        """After optimizer step `step` (1-based) with a finite loss; `grad_norm` may be a tensor."""

    def evaluation(
        self,
        step: int,
        *,
        val_acc: float,
        val_loss: float,
        train_loss: float,
        tokens_per_s: float | None,
        steps_per_s: float | None,
        peak_memory_bytes: int | None,
    ) -> None:
        """At an evaluation after step `step`: validation numbers and those of the training interval."""

    def checkpoint(self, step: int) -> None:
        """Just before the resumable checkpoint of step `step` is written."""

    def end(self, record: dict[str, Any]) -> None:
        """After the final evaluation, with the run's record (test accuracies, status)."""

    def close(self) -> None:
        """Flush and release files."""


class _Many(RunLogger):
    def __init__(self, loggers: list[RunLogger]) -> None:
        self.loggers = loggers

    def train_step(self, step: int, **values: Any) -> None:
        for logger in self.loggers:
            logger.train_step(step, **values)

    def evaluation(self, step: int, **values: Any) -> None:
        for logger in self.loggers:
            logger.evaluation(step, **values)

    def checkpoint(self, step: int) -> None:
        for logger in self.loggers:
            logger.checkpoint(step)

    def end(self, record: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.end(record)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def open_run_logger(
    kinds: Sequence[str], run_dir: str | Path, *, resumed_step: int, config: dict[str, Any]
) -> RunLogger:
    """The loggers `kinds` of the run in `run_dir` behind one `RunLogger` (the base class for none).

    `resumed_step` is the step of the checkpoint the run continues from (0 for a new run);
    `config` is the configuration written as text when the run starts."""
    check_loggers(kinds)
    loggers: list[RunLogger] = []
    if "tensorboard" in kinds:
        loggers.append(
            TensorBoardLogger(Path(run_dir) / LOG_DIR_NAME, resumed_step=resumed_step, config=config)
        )
    if not loggers:
        return RunLogger()
    return loggers[0] if len(loggers) == 1 else _Many(loggers)


def event_files(log_dir: str | Path) -> list[Path]:
    """The TensorBoard event files of `log_dir`, in the order readers load them (by name)."""
    return sorted(Path(log_dir).glob(EVENT_FILE_PATTERN))


def truncate_event_files(log_dir: str | Path, last_step: int) -> int:
    """Rewrite the event files of `log_dir` without the events after `last_step` and those of the
    end (`END_TAGS`), atomically (a file left without a summary is deleted); returns how many events
    were dropped. A record cut off at the end of a file (a process killed while writing) is dropped too."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    from lra.io import atomic_write

    dropped = 0
    for path in event_files(log_dir):
        # The records as written (the parsing loaders migrate old summaries to new forms).
        records = list(RawEventFileLoader(str(path)).Load())
        events = [Event.FromString(record) for record in records]
        kept = [r for r, e in zip(records, events, strict=True) if e.step <= last_step and not _is_end(e)]
        dropped += len(records) - len(kept)
        whole = path.stat().st_size == sum(16 + len(record) for record in records)  # no torn record
        if len(kept) == len(records) and whole:
            continue
        if not any(Event.FromString(record).HasField("summary") for record in kept):
            path.unlink()
            continue

        def write(fh: Any, kept: list[bytes] = kept) -> None:
            writer = RecordWriter(fh)
            for record in kept:
                writer.write(record)

        atomic_write(path, write, binary=True)
    return dropped


def _is_end(event: Any) -> bool:
    return event.HasField("summary") and any(value.tag in END_TAGS for value in event.summary.value)


def _number(value: Any) -> float | None:
    """A finite float of a number or a 0-d tensor, else None."""
    if value is None:
        return None
    value = float(value.item() if hasattr(value, "item") else value)
    return value if math.isfinite(value) else None


class TensorBoardLogger(RunLogger):
    """Scalars and text of one run in TensorBoard event files (see the module docstring)."""

    def __init__(self, log_dir: Path, *, resumed_step: int, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        if resumed_step == 0:  # a fresh start: what attempts that failed before a checkpoint left
            for path in event_files(log_dir):
                path.unlink()
        else:
            truncate_event_files(log_dir, resumed_step)
        log_dir.mkdir(parents=True, exist_ok=True)
        purge_step = resumed_step + 1 if resumed_step else None
        self._writer: Any = SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=30)
        if resumed_step == 0:
            text = "```json\n" + json.dumps(config, indent=2, sort_keys=True, default=str) + "\n```"
            self._writer.add_text("config", text, global_step=0)

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        number = _number(value)
        if number is not None:
            self._writer.add_scalar(tag, number, global_step=step)

    def train_step(self, step: int, *, loss: float, lr: float, grad_norm: Any) -> None:
        self._scalar("train/loss", loss, step)
        self._scalar("train/lr", lr, step)
        self._scalar("train/grad_norm", grad_norm, step)

    def evaluation(
        self,
        step: int,
        *,
        val_acc: float,
        val_loss: float,
        train_loss: float,
        tokens_per_s: float | None,
        steps_per_s: float | None,
        peak_memory_bytes: int | None,
    ) -> None:
        self._scalar("val/acc", val_acc, step)
        self._scalar("val/loss", val_loss, step)
        self._scalar("train/loss_interval", train_loss, step)
        self._scalar("throughput/tokens_per_s", tokens_per_s, step)
        self._scalar("throughput/steps_per_s", steps_per_s, step)
        self._scalar("memory/peak_bytes", peak_memory_bytes, step)

    def checkpoint(self, step: int) -> None:
        """Flush: the events up to `step` are on disk before its checkpoint is."""
        self._writer.flush()

    def end(self, record: dict[str, Any]) -> None:
        step = int(record.get("steps") or 0)
        self._scalar("test/acc", record.get("test_acc"), step)
        self._scalar("test/acc_last", record.get("test_acc_last"), step)
        summary = {
            key: record.get(key)
            for key in ("status", "error", "test_acc", "test_acc_last", "best_val_acc", "best_step")
        }
        self._writer.add_text("result", json.dumps(summary, sort_keys=True, default=str), global_step=step)

    def close(self) -> None:
        self._writer.close()
