"""One run from its configuration to its record, in this process (`run`) or over several local
processes with DDP (`launch`, torchrun), and the process entry both use (`main`:
``python -m runners.train RUN_CONFIG.json``).

`<run_dir>/result.json` (results/records.py) says status ``running`` at the start, then ``ok``,
``diverged`` or ``failed`` (with the error) at the end. The writing process holds the run
directory's lock throughout (runners/train/rundir.py). A run directory that holds a finished run
of the same configuration is returned as it is (with `resume`), one with a checkpoint resumes from
it, one of another configuration is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch.distributed as torch_dist

from attention_zoo.plugins import child_env
from lra.io import atomic_write_json, atomic_write_text
from results.records import RECORD_NAME, write_record

from ..provenance import utc_now
from .checkpoints import load_checkpoint
from .config import Resolved, RunConfig, resolve
from .distributed import init_distributed, is_writer
from .record import error_line, existing_record, new_record
from .rundir import BUSY_EXIT_CODE, RunDirBusy, remove_stale_temporaries, run_dir_lock
from .trainer import Trainer

RUN_CONFIG_NAME = "run_config.json"  # the configuration a run's processes read (`main`)


def run(cfg: RunConfig | Resolved) -> dict[str, Any]:
    """Train and evaluate one run; returns its result record (also written to <run_dir>/result.json).

    `cfg` is resolved here unless it already is (`resolve`, once per run). The writing process
    (rank 0) holds the run directory's lock throughout: `RunDirBusy` when another process holds
    it, before anything is read or written."""
    r = cfg if isinstance(cfg, Resolved) else resolve(cfg)
    writer = is_writer()
    with run_dir_lock(r.run_dir) if writer else contextlib.nullcontext():
        if writer:
            remove_stale_temporaries(r.run_dir)  # left by a writer killed mid-write
        return _run_locked(r)


def _run_locked(r: Resolved) -> dict[str, Any]:
    dist = init_distributed(r.device)
    finished, state = check_run_dir(r)
    if finished is not None:
        return finished
    record = new_record(r)
    try:
        if dist.main:
            r.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(
                r.run_dir / "config.json",
                {"run_config": dataclasses.asdict(r.with_plugins()), **r.config_dict()},
            )
            if state is not None:
                record["started_at"] = state["started_at"]
            write_record(r.run_dir / RECORD_NAME, record)
        trainer = Trainer(r, dist, state, record)
        return trainer.finish(trainer.train())
    except Exception as err:
        record.update(status="failed", error=error_line(err), finished_at=utc_now())
        if dist.main:
            # On a full disk this write fails too: the error above is what the user needs to see.
            with contextlib.suppress(OSError):
                write_record(r.run_dir / RECORD_NAME, record)
        raise


def check_run_dir(r: Resolved) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What the run directory holds: (its final record, None) for a finished run to return,
    (None, checkpoint) for one to resume, (None, None) for a new one; ValueError (one line) when
    it holds another configuration, or a run without --resume, or a checkpoint that cannot be read."""
    last_path = r.run_dir / "checkpoints" / "last.pt"
    existing = existing_record(r.run_dir)
    if existing is not None and existing.get("status") in ("ok", "diverged"):  # final results
        if existing.get("config_hash") != r.config_hash:
            raise ValueError(
                f"{r.run_dir} holds a finished run of a different configuration; choose another --run-dir"
            )
        if not r.cfg.resume:
            raise ValueError(
                f"{r.run_dir} already holds a finished run; pass --resume to reuse it or choose another --run-dir"
            )
        return existing, None
    if not last_path.exists():
        return None, None
    if not r.cfg.resume:
        raise ValueError(
            f"{r.run_dir} already holds a started run; pass --resume to continue it or choose another --run-dir"
        )
    state = load_checkpoint(
        last_path, remedy="delete it to train the run from the start, or choose another --run-dir"
    )
    if state.get("config_hash") != r.config_hash:
        raise ValueError(
            f"{r.run_dir} holds a checkpoint of a different configuration (hash {state.get('config_hash')} vs "
            f"{r.config_hash}); choose another --run-dir"
        )
    then, now = state.get("cpu_numerics"), r.numerics()
    if then != now:  # the steps after the resume would run in another floating-point order
        differ = ", ".join(
            f"{key} {(then or {}).get(key)} then, {(now or {}).get(key)} now"
            for key in sorted(set(then or {}) | set(now or {}))
            if (then or {}).get(key) != (now or {}).get(key)
        )
        raise ValueError(
            f"{last_path} was written under other CPU numerics ({differ}); resume with the same thread count "
            f"and CPU pinning (runners/cpu_pinning.py), or delete {r.run_dir} to train the run again"
        )
    return None, state


def runner_command(config_path: Path, nproc: int = 1) -> list[str]:
    """The command that runs one RunConfig file (under torchrun when nproc > 1)."""
    if nproc > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "runners.train",
            str(config_path),
        ]
    return [sys.executable, "-m", "runners.train", str(config_path)]


def launch(cfg: RunConfig | Resolved, nproc: int) -> dict[str, Any]:
    """Run `cfg` with DDP over `nproc` local processes (torchrun) and return the record."""
    r = cfg if isinstance(cfg, Resolved) else resolve(cfg)
    config_path = r.run_dir / RUN_CONFIG_NAME
    # Checked and written under the lock (fail here, not in every rank); rank 0 then takes it itself.
    with run_dir_lock(r.run_dir):
        finished, _ = check_run_dir(r)
        if finished is not None:
            return finished
        atomic_write_text(config_path, r.with_plugins().to_json())
    env = child_env()
    if r.device.type == "cpu":  # split the cores between the processes
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    completed = subprocess.run(runner_command(config_path, nproc), env=env, check=False)
    if completed.returncode == BUSY_EXIT_CODE:
        raise RunDirBusy(r.run_dir)
    record = existing_record(r.run_dir)
    if record is None or record.get("config_hash") != r.config_hash:
        raise ValueError(
            f"the DDP run exited with code {completed.returncode} without a result record of this "
            f"configuration in {r.run_dir}; its processes' messages are above"
        )
    return record


def main(argv: list[str] | None = None) -> int:
    """`python -m runners.train RUN_CONFIG.json` (also under torchrun). Exit 0 iff status is ok."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m runners.train RUN_CONFIG.json", file=sys.stderr)
        return 2
    try:
        cfg = RunConfig.from_json(Path(argv[0]).read_text())
        record = run(cfg)
    except RunDirBusy as err:
        print(str(err), file=sys.stderr)
        return BUSY_EXIT_CODE
    except (ValueError, FileNotFoundError) as err:
        print(f"Error: {error_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder without permission: one line, the run's record says it too
        print(f"Error: {error_line(err)}", file=sys.stderr)
        return 1
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    if is_writer():
        print(
            json.dumps(
                {k: record[k] for k in ("status", "steps", "best_val_acc", "test_acc", "test_acc_last")}
            )
        )
    return 0 if record["status"] == "ok" else 1
