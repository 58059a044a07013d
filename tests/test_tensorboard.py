"""`--log tensorboard`: the event files a run and a suite write, read back with TensorBoard's own reader
(`EventAccumulator`), and a resumed run whose curves hold every step once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from lra.presets import get_preset
from results.records import read_record
from runners import cli
from runners.train import KILL_AFTER_STEP_ENV, RunConfig, lr_multiplier, run, run_logging
from runners.train.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# Small and fast: generated short ListOps, a 1-layer model with dropout (so that a resume must restore
# the RNG to give the same curve).
FAST = {
    "data.n_train": "256",
    "data.n_val": "64",
    "data.n_test": "64",
    "train.batch_size": "16",
    "train.eval_every": "5",
    "model.dropout": "0.1",
}
SCALARS = {
    "train/loss",
    "train/lr",
    "train/grad_norm",
    "val/acc",
    "val/loss",
    "train/loss_interval",
    "throughput/tokens_per_s",
    "throughput/steps_per_s",
    "memory/peak_bytes",
    "test/acc",
    "test/acc_last",
}


@pytest.fixture(scope="module")
def data_dir(shared_data_dir: str) -> str:
    return shared_data_dir


def config(data_dir: str, run_dir: Path, **kwargs: Any) -> RunConfig:
    base: dict[str, Any] = {
        "task": "listops",
        "attention": "full",
        "preset": "tiny",
        "overrides": dict(FAST),
        "data_dir": data_dir,
        "run_dir": str(run_dir),
        "max_steps": 12,
        "checkpoint_every": 4,
        "quiet": True,
        "log": ["tensorboard"],
    }
    base.update(kwargs)
    return RunConfig(**base)


def curves(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag as (step, value) in the order TensorBoard's reader returns them."""
    reader = EventAccumulator(str(log_dir))
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def test_a_run_logs_its_curves_the_configuration_and_the_result(data_dir, tmp_path):
    record = run(config(data_dir, tmp_path / "run"))
    log_dir = tmp_path / "run" / "tensorboard"
    scalars = curves(log_dir)
    assert set(scalars) == SCALARS
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, 13))
    # The learning rate is the schedule's, step by step.
    train = get_preset("listops", "tiny").train
    expected_lr = [
        train.lr * lr_multiplier(train.__class__(**{**train.__dict__, "steps": 12}), s) for s in range(1, 13)
    ]
    assert [v for _, v in scalars["train/lr"]] == pytest.approx(expected_lr, rel=1e-6)
    # Evaluations: the record's history, every 5 steps and at the end.
    history = record["history"]
    assert [s for s, _ in scalars["val/acc"]] == [h["step"] for h in history] == [5, 10, 12]
    assert [v for _, v in scalars["val/acc"]] == pytest.approx([h["val_acc"] for h in history])
    assert [v for _, v in scalars["train/loss_interval"]] == pytest.approx([h["train_loss"] for h in history])
    assert all(v > 0 for _, v in scalars["throughput/tokens_per_s"] + scalars["memory/peak_bytes"])
    assert all(v > 0 for _, v in scalars["train/grad_norm"])
    assert scalars["test/acc"] == [(12, pytest.approx(record["test_acc"]))]
    assert scalars["test/acc_last"] == [(12, pytest.approx(record["test_acc_last"]))]
    reader = EventAccumulator(str(log_dir))
    reader.Reload()
    (config_text,) = reader.Tensors("config/text_summary")
    assert record["config_hash"] in config_text.tensor_proto.string_val[0].decode()


def _subprocess_run(cfg: RunConfig, path: Path, kill_after_step: int | None = None) -> int:
    path.write_text(cfg.to_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(KILL_AFTER_STEP_ENV, None)
    if kill_after_step is not None:
        env[KILL_AFTER_STEP_ENV] = str(kill_after_step)
    done = subprocess.run(
        [sys.executable, "-m", "runners.train", str(path)], cwd=REPO, env=env, capture_output=True
    )
    return done.returncode


def _orphans(log_dir: Path, steps: range, tags: tuple[str, ...]) -> None:
    """Events a killed process had flushed after its last checkpoint, with values no run produces."""
    writer = SummaryWriter(str(log_dir))
    for step in steps:
        for tag in tags:
            writer.add_scalar(tag, 999.0, global_step=step)
    writer.close()


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory) -> Path:
    """The uninterrupted run the resumed ones are compared with, in its own process with one thread
    (as every attempt below), so that the numbers can be compared bit for bit."""
    root = tmp_path_factory.mktemp("straight_run")
    assert _subprocess_run(config(data_dir, root / "straight"), root / "straight.json") == 0
    return root / "straight"


@pytest.mark.e2e
@pytest.mark.parametrize("kill_after_step", [6, 12])
def test_a_resumed_run_continues_its_curves_without_a_step_twice(
    data_dir, straight_run, tmp_path, kill_after_step
):
    """Killed after step 6 (checkpoint at 4, events of steps 5-7 already flushed) or after the last
    checkpoint (the end's test accuracy already flushed), then resumed: every tag holds each step
    once, with the values of the uninterrupted run."""
    straight = read_record(straight_run / "result.json")
    killed = config(data_dir, tmp_path / "killed", resume=True)
    assert _subprocess_run(killed, tmp_path / "killed.json", kill_after_step) == -signal.SIGKILL
    checkpoint = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt", remedy="")
    log_dir = tmp_path / "killed" / "tensorboard"
    if kill_after_step == 6:
        assert checkpoint["step"] == 4
        _orphans(log_dir, range(5, 8), ("train/loss", "val/acc"))
    else:
        assert checkpoint["step"] == 12
        _orphans(log_dir, range(12, 13), ("test/acc",))
    assert _subprocess_run(killed, tmp_path / "killed.json") == 0
    resumed = read_record(tmp_path / "killed" / "result.json")
    assert {k: resumed[k] for k in ("test_acc", "history")} == {
        k: straight[k] for k in ("test_acc", "history")
    }
    before, after = curves(straight_run / "tensorboard"), curves(log_dir)
    assert set(after) == SCALARS
    for tag in (
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "val/acc",
        "val/loss",
        "test/acc",
        "test/acc_last",
    ):
        steps = [step for step, _ in after[tag]]
        assert steps == sorted(set(steps)), (tag, steps)  # each step once, in order
        assert after[tag] == before[tag], tag  # the uninterrupted run's values, the orphans gone
    assert resumed["status"] == "ok"


def test_truncating_event_files_keeps_the_checkpoints_steps_and_drops_the_end(tmp_path):
    _orphans(tmp_path, range(1, 7), ("train/loss",))
    _orphans(tmp_path, range(6, 7), ("test/acc",))
    dropped = run_logging.truncate_event_files(tmp_path, 4)
    assert dropped == 3  # steps 5 and 6 of train/loss, the test accuracy of step 6
    assert curves(tmp_path) == {"train/loss": [(s, 999.0) for s in range(1, 5)]}
    assert len(run_logging.event_files(tmp_path)) == 1  # the file holding only the end is gone


def test_unknown_or_missing_loggers_are_one_line_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown --log wandb; valid loggers: tensorboard"):
        run_logging.check_loggers(["wandb"])
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(
        ValueError, match=r"needs the tensorboard package: pip install 'lra-arena\[tensorboard\]'"
    ):
        run_logging.check_loggers(["tensorboard"])
    result = CliRunner().invoke(cli.main, ["run", "listops", "--log", "tensorboard", "--max-steps", "1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: --log tensorboard needs the tensorboard")


def test_without_log_a_run_writes_no_event_files(data_dir, tmp_path):
    run(config(data_dir, tmp_path / "run", max_steps=2, checkpoint_every=None, log=[]))
    assert not (tmp_path / "run" / "tensorboard").exists()


@pytest.mark.e2e
def test_a_tiny_suite_logs_every_run_grouped_by_task_and_attention(tiny_suite):
    out, _ = tiny_suite
    reader = EventAccumulator(str(out))  # what `tensorboard --logdir OUT` lists
    runs = {}
    for run_dir in sorted((out / "runs").glob("*/*/*/tensorboard")):
        runs[run_dir.relative_to(out).as_posix()] = curves(run_dir)
    assert set(runs) == {"runs/listops/full/0/tensorboard", "runs/listops/windowed_landmarks/0/tensorboard"}
    for scalars in runs.values():
        assert set(scalars) == SCALARS
        assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3, 4]
        assert [step for step, _ in scalars["val/acc"]] == [2, 4]
    del reader
