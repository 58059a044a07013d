"""Test configuration shared by the whole suite."""

from __future__ import annotations

import os

# Triton kernels run on the CPU through the interpreter; it must be set before triton is imported.
# LRA_TEST_DEVICE=cuda runs the kernel tests on a GPU instead (tests/test_mita_triton.py).
if os.environ.get("LRA_TEST_DEVICE", "cpu") == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Keep each test process to its share of a small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Attention plugins of the environment (installed entry points, LRA_PLUGINS) stay out of the tests,
# which list and parametrize over the registry; the plugin tests load their own.
os.environ.setdefault("LRA_DISABLE_PLUGIN_AUTOLOAD", "1")
os.environ.pop("LRA_PLUGINS", None)
os.environ.pop("LRA_TRUST_RECORDED_PLUGINS", None)
# The test processes (and the runs they start) keep the CPU's own instruction sets, as before the
# pinning existed and faster; tests/test_cpu_pinning.py sets the pinning of its own processes.
os.environ.setdefault("LRA_CPU_PIN", "0")
