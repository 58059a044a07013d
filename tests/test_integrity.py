"""Nothing silently wrong: damaged checkpoints and data caches, forged records, a full disk.

Every case ends in one line naming the file and what to do (exit code 2 on the command line), never
in a silent load, a traceback or a final `diverged`.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lra.data.cache import cached_split
from lra.io import DiskFullError, IntegrityError
from lra.tasks.base import DataConfig
from results import leaderboard, store
from results.records import read_record, write_record
from runners import cli
from runners.train import RunConfig, run, trainer

from .builders import run_record

FAST = {
    "data.n_train": "256",
    "data.n_val": "64",
    "data.n_test": "64",
    "train.batch_size": "16",
    "train.eval_every": "4",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lra_data"))


def config(data_dir: str, run_dir: Path, **kwargs) -> RunConfig:
    base = {
        "task": "listops",
        "attention": "full",
        "preset": "tiny",
        "overrides": dict(FAST),
        "data_dir": data_dir,
        "run_dir": str(run_dir),
        "max_steps": 8,
        "quiet": True,
    }
    base.update(kwargs)
    return RunConfig(**base)


def cli_args(data_dir: str, run_dir: Path, *extra: str) -> list[str]:
    sets = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    return [
        "run", "--attention", "full", "--max-steps", "8", "--data-dir", data_dir, "--run-dir", str(run_dir),
        "--quiet", *sets, *extra,
    ]  # fmt: skip


def flip_middle(path: Path, count: int = 64) -> None:
    """Change `count` bytes in the middle of a file, keeping its size (not a truncation)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = bytes(b ^ 0xFF for b in data[middle : middle + count])
    path.write_bytes(bytes(data))


def one_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def test_a_byte_flipped_last_checkpoint_is_refused_not_loaded_and_never_ends_as_diverged(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    run(config(data_dir, run_dir))
    (run_dir / "result.json").unlink()  # as if killed after its last checkpoint: a resume loads it
    last = run_dir / "checkpoints" / "last.pt"
    flip_middle(last)
    result = CliRunner().invoke(cli.main, cli_args(data_dir, run_dir, "--resume"))
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"Error: {last} is corrupt: its sha256 ")
    assert line.endswith("delete it to train the run from the start, or choose another --run-dir")
    assert not (run_dir / "result.json").exists()  # refused before anything was written


def test_a_damaged_best_checkpoint_fails_the_final_test_with_the_line_in_the_record(
    data_dir, tmp_path, monkeypatch
):
    save = trainer.save_checkpoint

    def save_then_damage(path, obj):
        save(path, obj)
        if path.name == "best.pt":
            flip_middle(path)

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_damage)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli.main, cli_args(data_dir, run_dir))
    assert result.exit_code == 2
    line = one_line(result)
    best = run_dir / "checkpoints" / "best.pt"
    assert line.startswith(f"Error: {best} is corrupt") and line.endswith(
        f"delete {run_dir} and train the run again"
    )
    record = read_record(run_dir / "result.json")
    assert record["status"] == "failed" and record["error"] == line.removeprefix("Error: ")


def test_a_checkpoint_of_the_old_format_gets_its_own_line(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"format": 1, "step": 3}, run_dir / "checkpoints" / "last.pt")  # what format 1 was
    result = CliRunner().invoke(cli.main, cli_args(data_dir, run_dir, "--resume"))
    assert result.exit_code == 2
    assert "is a checkpoint of format 1, written by an older version without a content digest" in one_line(
        result
    )


@pytest.fixture(scope="module")
def trained_mita(data_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "mita"
    cfg = config(data_dir, run_dir, attention="mita", attn_params={"num_landmarks": 4, "topk": 4})
    assert run(cfg)["status"] == "ok"
    return run_dir


@pytest.mark.parametrize("damage", ["truncate", "not a checkpoint"])
@pytest.mark.parametrize("command", ["swap", "sweep mk"])
def test_swap_and_sweep_mk_on_a_damaged_best_checkpoint_are_one_line(trained_mita, tmp_path, damage, command):
    run_dir = tmp_path / "copy"
    run_dir.mkdir()
    for name in ("config.json", "result.json"):
        (run_dir / name).write_bytes((trained_mita / name).read_bytes())
    (run_dir / "checkpoints").mkdir()
    best = run_dir / "checkpoints" / "best.pt"
    original = (trained_mita / "checkpoints" / "best.pt").read_bytes()
    best.write_bytes(original[: len(original) // 2] if damage == "truncate" else b"<html>not found</html>")
    args = ["--attention", "full"] if command == "swap" else ["--grid", "m=4", "k=4"]
    result = CliRunner().invoke(
        cli.main,
        [
            *command.split(),
            "--run",
            str(run_dir),
            *args,
            "--limit",
            "8",
            "--out",
            str(tmp_path / "x"),
            "--quiet",
        ],
    )
    assert result.exit_code == 2
    line = one_line(result)
    expected = "is truncated or corrupt" if damage == "truncate" else "is not a checkpoint written by lra"
    assert line.startswith(f"Error: {best} {expected}") and "pass --checkpoint last" in line


# ---------------------------------------------------------------------------------------------
# Data caches
# ---------------------------------------------------------------------------------------------


def _build() -> dict[str, np.ndarray]:
    return {"inputs": np.arange(60, dtype=np.int16).reshape(20, 3) % 7, "labels": np.arange(20) % 2}


def test_token_ids_overwritten_in_a_data_cache_are_refused(tmp_path):
    data = DataConfig(data_dir=str(tmp_path))
    _, meta = cached_split(data, "t", "src", "train", 3, {}, _build)
    inputs = Path(meta["cache"]) / "inputs.npy"
    raw = bytearray(inputs.read_bytes())
    raw[-6:] = np.array([999, 999, 999], dtype=np.int16).tobytes()  # ids beyond the vocabulary, same size
    inputs.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError) as err:
        cached_split(data, "t", "src", "train", 3, {}, _build)
    message = str(err.value)
    assert message.startswith(f"{inputs} is corrupt: its sha256 ") and "\n" not in message
    assert message.endswith(f"delete the folder {meta['cache']} and it is rebuilt")


def test_a_full_disk_while_caching_data_says_so(tmp_path, monkeypatch):
    def short_write(fh, array, *args, **kwargs):  # numpy's own message for a short write
        raise OSError(f"{array.nbytes} requested and {array.nbytes // 2} written")

    monkeypatch.setattr(np, "save", short_write)
    with pytest.raises(DiskFullError) as err:
        cached_split(DataConfig(data_dir=str(tmp_path)), "t", "src", "train", 3, {}, _build)
    assert str(err.value).startswith(f"no space left on the device holding {tmp_path / 'cache' / 't'}")
    left = [p.name for p in (tmp_path / "cache" / "t").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # nothing half-written left behind


# ---------------------------------------------------------------------------------------------
# A full disk while checkpointing
# ---------------------------------------------------------------------------------------------


def test_a_full_disk_while_checkpointing_is_one_readable_line_in_the_output_and_the_record(
    data_dir, tmp_path, monkeypatch
):
    fsync = os.fsync

    def no_room_for_checkpoints(fd):
        if "/checkpoints/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", no_room_for_checkpoints)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli.main, cli_args(data_dir, run_dir))
    assert result.exit_code == 2
    line = one_line(result)
    assert line == (
        f"Error: no space left on the device holding {run_dir / 'checkpoints'} while writing best.pt; "
        "free space there (or write elsewhere) and run the command again"
    )
    record = read_record(run_dir / "result.json")
    assert record["status"] == "failed" and record["error"] == line.removeprefix("Error: ")
    assert (
        not list((run_dir / "checkpoints").glob("*.tmp"))
        and not (run_dir / "checkpoints" / "best.pt").exists()
    )


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------

FORGED = {
    "above one": ({"test_acc": 5.0}, "test_acc: Input should be less than or equal to 1 (got 5.0)"),
    "negative": ({"test_acc": -0.3}, "test_acc: Input should be greater than or equal to 0 (got -0.3)"),
    "text chance": ({"chance_acc": "high"}, "chance_acc: Input should be a valid number (got 'high')"),
    "no preset": ({"preset": None}, "preset: Input should be a valid string (got None)"),
    "text accuracy": ({"test_acc": "abc"}, "test_acc: Input should be a valid number (got 'abc')"),
    "no test examples": ({"n_test": 0}, "n_test: Input should be greater than or equal to 1 (got 0)"),
}


def _forge(path: Path, record: dict) -> None:
    """Write a record as someone else's tool or a hand edit would: no validation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_forged_records_are_skipped_naming_file_and_field_and_counted_under_the_table(tmp_path):
    good = run_record(attention="full", test_acc=0.61)
    write_record(tmp_path / "runs" / "good" / "result.json", good)
    for index, (name, (fields, _)) in enumerate(FORGED.items()):
        forged = run_record(attention=f"forged{index}", test_acc=0.5)
        forged.update(fields)
        _forge(tmp_path / "runs" / name.replace(" ", "_") / "result.json", forged)
    result = CliRunner().invoke(cli.main, ["leaderboard", "--runs", str(tmp_path), "--markdown", "-"])
    assert result.exit_code == 0, result.output
    for name, (_, field_message) in FORGED.items():
        path = tmp_path / "runs" / name.replace(" ", "_") / "result.json"
        assert f"warning: {path}: invalid run record: {field_message}, skipped" in result.output
    table = result.output.split("## Leaderboard")[1]
    assert "| full " in table and "forged" not in table and "500.00" not in table
    assert "6 record files were skipped as unreadable or invalid" in result.output
    st = store.load(tmp_path)
    assert list(st.runs["attention"]) == ["full"] and len(st.invalid) == 6
    rendered = leaderboard.render(leaderboard.build(st.runs), skipped=st.invalid)
    assert "6 record files were skipped" in rendered


def test_a_record_that_fails_its_schema_is_never_written(tmp_path):
    with pytest.raises(ValueError, match=r"invalid run record: .*test_acc: Input should be less than"):
        write_record(tmp_path / "result.json", run_record(test_acc=1.5))
    assert not (tmp_path / "result.json").exists()


def test_a_forged_run_configuration_is_one_line_naming_file_and_field(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    run(config(data_dir, run_dir))
    (run_dir / "result.json").unlink()
    config_path = run_dir / "config.json"
    forged = json.loads(config_path.read_text())
    forged["run_config"]["plugins"] = ["../../elsewhere/evil"]
    config_path.write_text(json.dumps(forged))
    result = CliRunner().invoke(cli.main, cli_args(data_dir, run_dir, "--resume"))
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"Error: {config_path} is not a valid run configuration")
    assert "run_config.plugins.0" in line


def test_a_full_disk_while_generating_data_says_so(tmp_path):
    from lra.data.cache import build_once

    def generator(folder: Path) -> None:  # what an image writer raises on a full disk
        (folder / "0.png").write_bytes(b"\x89PNG")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DiskFullError) as err:
        build_once(tmp_path / "pathfinder" / "quick", generator)
    assert str(err.value).startswith(f"no space left on the device holding {tmp_path / 'pathfinder'}")
    assert not (tmp_path / "pathfinder" / "quick").exists()
