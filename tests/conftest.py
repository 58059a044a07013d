"""Test configuration shared by the whole suite."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

# Triton kernels run on the CPU through the interpreter; it must be set before triton is imported.
# LRA_TEST_DEVICE=cuda runs the kernel tests on a GPU instead (tests/test_mita_triton.py).
if os.environ.get("LRA_TEST_DEVICE", "cpu") == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Keep each test process to its share of a small CI machine: pytest-xdist's workers (`-n auto` in
# pyproject.toml) already take a core each, and a second thread per worker would only contend.
# (The controlling process sets its own default first, which the workers inherit: they override it.)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
else:
    os.environ.setdefault("OMP_NUM_THREADS", "2")
# Attention plugins of the environment (installed entry points, LRA_PLUGINS) stay out of the tests,
# which list and parametrize over the registry; the plugin tests load their own.
os.environ.setdefault("LRA_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.pop("LRA_PLUGINS", None)
os.environ.pop("LRA_TRUST_RECORDED_PLUGINS", None)
# The test processes (and the runs they start) keep the CPU's own instruction sets, as before the
# pinning existed and faster; tests/test_cpu_pinning.py sets the pinning of its own processes.
os.environ.setdefault("LRA_CPU_PIN", "0")


@pytest.fixture(scope="module")
def one_torch_thread():
    """The zoo's tests (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`) compute on small
    tensors, where a second intra-op thread costs more in synchronisation than it computes: measured
    on the 2-core machine, 3 to 8 times the CPU time of one thread, and as much wall time when other
    processes share the cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> str:
    """One data folder for the tests that only read generated data: each variant is generated once per
    pytest process (deterministic by variant, sizes and seed) instead of once per module. Tests that
    damage or inspect data files make their own."""
    return str(tmp_path_factory.mktemp("shared_lra_data"))


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory, shared_data_dir) -> tuple[Path, str]:
    """(--out, output) of the tiny suite of tests/tiny_suite.py, run once per pytest process (each
    xdist worker); the tests only read what it wrote."""
    from .tiny_suite import run_tiny_suite

    return run_tiny_suite(tmp_path_factory, shared_data_dir)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection made (thousands of test items) lives to the end: `gc.freeze()` moves it out
    of the collector's sight, so that code calling `gc.collect()` (the benchmarks between lengths,
    statsmodels) pays for its own objects only, as it would in a command of its own."""
    gc.freeze()
