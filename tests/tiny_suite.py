"""A tiny suite with TensorBoard logging, run once per pytest process (the `tiny_suite` fixture of
tests/conftest.py) and shared by the tests of what a suite leaves behind (event files, report.html):
`lra suite` with its real runner on ListOps, full attention against the example plugin, four steps.
Imported by test modules, never collected."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from attention_zoo import plugins, registry
from runners import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "windowed_landmarks.py"
ARGS = ("--preset", "tiny", "--tasks", "listops", "--attentions", "full,windowed_landmarks",
        "--plugin", "windowed_landmarks", "--max-steps", "4", "--set", "train.eval_every=2",
        "--set", "data.n_train=96", "--set", "data.n_val=32", "--set", "data.n_test=32",
        "--log", "tensorboard", "--jobs", "2")  # fmt: skip


@contextlib.contextmanager
def isolated_registry() -> Iterator[None]:
    """Plugins loaded inside stay out of the other tests' registry, sys.path and sys.modules."""
    saved, loaded, path = dict(registry._REGISTRY), dict(plugins._LOADED), list(sys.path)
    try:
        yield
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)
        plugins._LOADED.clear()
        plugins._LOADED.update(loaded)
        sys.path[:] = path
        sys.modules.pop("windowed_landmarks", None)


def run_tiny_suite(tmp_path_factory: pytest.TempPathFactory, data_dir: str) -> tuple[Path, str]:
    """(the suite's --out, its output), reading and writing generated data in `data_dir`."""
    work = tmp_path_factory.mktemp("tiny_suite")
    shutil.copy(EXAMPLE, work / "windowed_landmarks.py")
    out = work / "out"
    with pytest.MonkeyPatch.context() as patch, isolated_registry():
        patch.chdir(work)  # the plugin is a file in the working directory, as a user's would be
        args = ["suite", "--out", str(out), "--data-dir", data_dir, *ARGS]
        result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    return out, result.output
