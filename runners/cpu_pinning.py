"""The same CPU run gives the same numbers on another machine: the math libraries' instruction sets
pinned before torch is imported, and recorded.

One torch build chooses its floating-point order by the CPU it finds. Measured here (Intel Xeon
with AVX-512, torch 2.14 with MKL 2024.2 and oneDNN 3.12; a 30-step tiny ListOps run, its final
weights compared), each of these alone changes the weights, and reruns of one setting agree bit
for bit:

* ATen's own vectorized kernels (softmax, layer norm, reductions, elementwise math) are compiled
  for several instruction sets and dispatched on the best the CPU has: AVX-512 and AVX2 use other
  vector widths, so other summation orders. Pinned with ``ATEN_CPU_CAPABILITY=avx2``.
* oneDNN (GELU's kernels) JIT-compiles for the best instruction set: ``ONEDNN_MAX_CPU_ISA=AVX2``.
* MKL's GEMM (every linear layer and batched matmul) dispatches on the instruction set and the
  vendor. ``MKL_CBWR=COMPATIBLE`` is MKL's conditional-numerical-reproducibility branch that gives
  the same results on Intel and AMD processors (its AVX2 branch does so on Intel only: MKL
  documents that other vendors then fall back to its automatic dispatch).
* The number of threads also changes the order of parallel reductions; it is not pinned (it is
  how fast a run goes) but recorded, so tables tell runs made with other thread counts apart.

`apply_cpu_pinning()` sets the three variables (each one the user has not set) and is called at
the very start of the `lra` command and of `python -m runners.train`, before torch is imported;
child processes inherit them. Pinning applies to x86-64 only (other architectures record their CPU
instead). It costs time, almost all of it MKL's compatible branch (SSE2 code): CPU time of one
training step of the quick preset's models, one thread, here: ListOps full attention 28 -> 70 ms,
ListOps MiTA 64 -> 97 ms, Pathfinder full attention 550 -> 1800 ms. ``LRA_CPU_PIN=0`` (or
``lra --no-cpu-pin``) opts out; a cluster of Intel CPUs only can set ``MKL_CBWR=AVX2`` itself
(35, 69 and 770 ms there; reproducible between Intel CPUs with AVX2), which the records then show.

`cpu_numerics(threads)` says what a CPU run's numbers depend on; runs record it in their
configuration (`config["cpu_numerics"]`), which is what the tables compare, so cells made under
different pinning or thread counts are marked like other mixed configurations. It is not part of
the configuration hash: moving a finished suite to another machine does not retrain it.

Torch-free at import (only `cpu_numerics` imports torch).
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Mapping, MutableMapping
from typing import Any

# variable -> pinned value
CPU_PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "COMPATIBLE",
}
OPT_OUT_ENV = "LRA_CPU_PIN"
_OFF = ("0", "off", "false", "no")
_X86_64 = ("x86_64", "amd64")


def pinning_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False when the user opted out (`LRA_CPU_PIN=0`) or the machine is not x86-64."""
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT_ENV, "").strip().lower() in _OFF:
        return False
    return platform.machine().lower() in _X86_64


def apply_cpu_pinning(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the `CPU_PINS` variables the user has not set (unless pinning is off); returns those set.

    Call it before torch is imported: the libraries read these variables when they first run.
    """
    environ = os.environ if environ is None else environ
    if not pinning_enabled(environ):
        return {}
    applied = {name: value for name, value in CPU_PINS.items() if name not in environ}
    environ.update(applied)
    return applied


def opt_out(environ: MutableMapping[str, str] | None = None) -> None:
    """Turn pinning off in this process and its children (`lra --no-cpu-pin`): remove the pinned
    values `apply_cpu_pinning` set and set `LRA_CPU_PIN=0`. Effective before torch first computes."""
    environ = os.environ if environ is None else environ
    for name, value in CPU_PINS.items():
        if environ.get(name) == value:
            del environ[name]
    environ[OPT_OUT_ENV] = "0"


@functools.cache
def cpu_model() -> str:
    """The processor's name ("model name" in /proc/cpuinfo), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def cpu_isa() -> str:
    """The best vector instruction set the CPU offers: 'avx512', 'avx2', 'avx', 'sse4_2' on x86-64
    (from /proc/cpuinfo's flags), else the architecture (e.g. 'aarch64')."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"), ("sse4_2", "sse4_2")):
        if flag in flags:
            return isa
    return platform.machine().lower() or "unknown"


def cpu_numerics(threads: int | None = None) -> dict[str, Any]:
    """What the floating-point order of a CPU run depends on, for records and table comparisons:
    whether the pins are in force, the instruction set ATen uses, MKL's and oneDNN's settings, the
    thread count (default: this process's), and the CPU when the pins are not all in force."""
    import torch

    mkl = torch.backends.mkl.is_available()
    values = {name: os.environ.get(name) for name in CPU_PINS}
    pinned = all(values[name] == value for name, value in CPU_PINS.items()) and mkl
    numerics: dict[str, Any] = {
        "pinned": pinned,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability().lower(),
        "mkl_cbwr": values["MKL_CBWR"] if mkl else "no MKL",
        "onednn_max_cpu_isa": values["ONEDNN_MAX_CPU_ISA"],
        "threads": int(threads if threads is not None else torch.get_num_threads()),
    }
    if not pinned:  # the libraries choose by the CPU: which one is part of what the numbers depend on
        numerics["cpu"] = f"{cpu_model()} ({cpu_isa()})"
    return numerics
