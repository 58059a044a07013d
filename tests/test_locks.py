"""One writer per run directory: a second writer gets one "busy" line and writes nothing.

"Another process" is played by an exclusive `flock` this test process takes on the run directory's
lock file through its own file descriptor (flock locks belong to an open file, so the code under test
cannot take it either), held for as long as the test needs: nothing depends on timing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from results.records import read_record
from runners import cli, suite
from runners.train import run
from runners.train.rundir import BUSY_EXIT_CODE

from .test_integrity import FAST, cli_args, config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lra_data"))


@contextlib.contextmanager
def held_by_another_process(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_lra_run_into_a_busy_directory_says_busy_and_writes_nothing(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    run(config(data_dir, run_dir))
    (run_dir / "result.json").unlink()  # a run in progress, as far as the files say
    before = files_under(run_dir)
    for extra in ((), ("--resume",)):
        with held_by_another_process(run_dir):
            result = CliRunner().invoke(cli.main, cli_args(data_dir, run_dir, *extra))
        assert result.exit_code == BUSY_EXIT_CODE, result.output
        assert result.output == f"busy: {run_dir} is being written by another process\n"
        assert files_under(run_dir) == before


def test_the_runner_process_says_busy_with_its_own_exit_code(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    path = tmp_path / "run_config.json"
    path.write_text(config(data_dir, run_dir).to_json())
    with held_by_another_process(run_dir):
        done = subprocess.run(
            [sys.executable, "-m", "runners.train", str(path)], cwd=REPO, capture_output=True, text=True
        )
    assert done.returncode == BUSY_EXIT_CODE, done.stderr
    assert done.stderr.strip().splitlines() == [f"busy: {run_dir} is being written by another process"]
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]


def test_a_resume_removes_what_a_killed_writer_left_half_written(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    run(config(data_dir, run_dir))
    (run_dir / "result.json").unlink()
    leftovers = [run_dir / ".result.json.k2j4h1.tmp", run_dir / "checkpoints" / ".last.pt.a8d9c0.tmp"]
    for path in leftovers:
        path.write_bytes(b"half of a file")
    record = run(config(data_dir, run_dir, resume=True))
    assert record["status"] == "ok"
    assert not any(path.exists() for path in leftovers)


@pytest.mark.e2e
def test_a_suite_leaves_a_run_written_elsewhere_to_that_process_and_says_so(data_dir, tmp_path):
    out = tmp_path / "out"
    args = ["suite", "--out", str(out), "--preset", "tiny", "--tasks", "listops", "--attentions", "full",
            "--max-steps", "2", "--data-dir", data_dir]  # fmt: skip
    args += [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    (cell,) = suite.plan(
        suite.SuiteConfig(
            tasks=("listops",), attentions=("full",), preset="tiny", out=str(out), max_steps=2,
            data_dir=data_dir, overrides=dict(FAST),
        )
    )  # fmt: skip
    with held_by_another_process(cell.run_dir):
        result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == BUSY_EXIT_CODE, result.output
    assert "runs: 1 busy" in result.output and "failed" not in result.output
    assert "1 runs are being written by another process" in result.output
    assert not (cell.run_dir / "result.json").exists()  # the suite wrote nothing there either
    # Once the other process is done, the same command runs it.
    again = CliRunner().invoke(cli.main, args)
    assert again.exit_code == 0, again.output
    assert read_record(cell.run_dir / "result.json")["status"] == "ok"


def test_a_dead_run_is_recorded_failed_only_while_nobody_else_holds_its_directory(tmp_path):
    cfg = suite.SuiteConfig(tasks=("listops",), attentions=("full",), preset="tiny", out=str(tmp_path / "o"))
    (cell,) = suite.plan(cfg)
    cell.run_dir.mkdir(parents=True)
    with held_by_another_process(cell.run_dir):  # another process took the run over once it died
        outcome = suite.conclude(cell, -9)
    assert outcome.status == "busy" and not (cell.run_dir / "result.json").exists()
    outcome = suite.conclude(cell, -9)
    assert outcome.status == "failed" and read_record(cell.run_dir / "result.json")["status"] == "failed"
    assert os.path.exists(cell.run_dir / ".lock")
