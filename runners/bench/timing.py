"""Timing and peak-memory measurement of one callable, shared by the efficiency benchmarks.

    m = measure(lambda: attention(q, k, v), torch.device("cuda"), warmup=3, repeats=20)
    m.status, m.median_ms, m.p20_ms, m.p80_ms, m.peak_memory_bytes

How a call is timed:

* CUDA: each timed call is bracketed by CUDA events, with the L2 cache cleared (a 256 MiB buffer
  is zeroed) before it, as `triton.testing.do_bench` does; the events are read after one final
  synchronisation, so no host sync sits between calls.
* CPU: `time.perf_counter` around each call.

Both run `warmup` untimed calls first (compilation, autotuning, allocator warm-up), then `repeats`
timed calls, and report the median with the 20th and 80th percentiles. A per-measurement time
budget lowers the repeats (to at least one) when single calls are slow.

How peak memory is measured:

* CUDA: `torch.cuda.max_memory_allocated` over the timed calls (the statistics are reset just
  before them), minus what was allocated before (method ``cuda-allocator``); reading the
  allocator's counters costs nothing, so no extra call is made;
* CPU: in one separate call that also serves as the first warm-up, `TensorMemoryTracker`, a `TorchDispatchMode` that adds up the bytes of every tensor storage
  an operator allocates during the call (forward and backward) and subtracts them when they are
  freed (method ``cpu-dispatch-tensors``). Scratch memory inside a kernel that never becomes a
  tensor is not seen; process-level RSS is not used because the allocator keeps freed pages.
  Optionally the tracker enforces a limit and raises `torch.OutOfMemoryError` past it, so a CPU
  run can end as "oom" instead of exhausting the machine.

A call that runs out of memory (`torch.OutOfMemoryError` / `torch.cuda.OutOfMemoryError`, or the
CPU allocator's "can't allocate memory") gives status ``"oom"``; any other exception gives
``"error"``; neither propagates.

How busy the machine was (`MachineLoad`, in `Measurement.load`): the CPU time that every process
but this one used while `measure` ran (Linux `/proc/stat` minus this process's own CPU time, CPU
steal of a virtual machine counted as others'), as a fraction of all cores, and the 1-minute load
average per core before and after (which includes this process). Windows shorter than
`MIN_LOAD_WINDOW_S` leave the fraction unknown (the kernel counts CPU time in 10 ms ticks). The
GPU's use by other processes is not measured: NVML's per-process view is wrong inside containers
(other PID namespaces) and its utilisation includes this process's own kernels; on CUDA the spread
of the timed calls is what shows contention.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from results.costs import time_spread

Status = Literal["ok", "oom", "error"]

TIME_METHODS = {"cuda": "cuda-events", "cpu": "wall-clock"}
MEMORY_METHODS = {"cuda": "cuda-allocator", "cpu": "cpu-dispatch-tensors"}
L2_FLUSH_BYTES = 256 * 2**20

# torch < 2.5 only has the CUDA name; later versions alias it to torch.OutOfMemoryError.
OutOfMemoryError: type[RuntimeError] = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
# In the error of a call that the CPU memory limit stopped (bench --resume tells it from a real OOM).
CPU_LIMIT_MESSAGE = "CPU memory limit"
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


# Shorter windows give the others' CPU share no meaning: /proc/stat counts in ticks of 10 ms.
MIN_LOAD_WINDOW_S = 0.1


@dataclass(frozen=True)
class CpuCounters:
    """One reading of the machine's CPU counters (Linux /proc/stat) and of this process's CPU time.

    Attributes:
        wall_s: `time.monotonic()` at the reading.
        busy_s: CPU seconds all cores spent running anything since boot (user, nice, system, irq, softirq).
        steal_s: CPU seconds a hypervisor gave to other machines while this one's cores wanted them.
        own_s: CPU seconds this process used (every thread; `time.process_time()`).
        cores: the machine's cores (/proc/stat counts them all, whatever the affinity).
        load_avg_1m: the 1-minute load average, None where the system has none.
    """

    wall_s: float
    busy_s: float
    steal_s: float
    own_s: float
    cores: int
    load_avg_1m: float | None


def read_cpu_counters() -> CpuCounters | None:
    """The machine's CPU counters now; None where /proc/stat cannot be read (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
            cores = sum(1 for line in fh if line.startswith("cpu") and line[3].isdigit())
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    steal = int(fields[8]) if len(fields) > 8 else 0
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    return CpuCounters(
        wall_s=time.monotonic(),
        busy_s=(user + nice + system + irq + softirq) / tick,
        steal_s=steal / tick,
        own_s=time.process_time(),
        cores=max(1, cores or (os.cpu_count() or 1)),
        load_avg_1m=load,
    )


@dataclass(frozen=True)
class MachineLoad:
    """How busy the machine was while a measurement ran (see the module docstring).

    Attributes:
        other_cpu_load: fraction of all cores (0..1) busy with other processes, CPU steal included;
            None when unknown (no /proc/stat, or a window under `MIN_LOAD_WINDOW_S`).
        cpu_steal: fraction of all cores stolen by the hypervisor (included in `other_cpu_load`).
        load_per_core_before, load_per_core_after: 1-minute load average / cores, this process included.
        cpu_cores: cores of the machine.
        window_s: seconds between the two readings.
    """

    other_cpu_load: float | None = None
    cpu_steal: float | None = None
    load_per_core_before: float | None = None
    load_per_core_after: float | None = None
    cpu_cores: int | None = None
    window_s: float = 0.0

    @classmethod
    def between(cls, before: CpuCounters | None, after: CpuCounters | None) -> MachineLoad:
        """The load between two readings (every field None when either is missing)."""
        if before is None or after is None:
            return cls()
        window = after.wall_s - before.wall_s
        capacity = window * after.cores
        other = steal = None
        if window >= MIN_LOAD_WINDOW_S:
            steal = max(0.0, after.steal_s - before.steal_s) / capacity
            others_busy = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
            other = min(1.0, max(0.0, others_busy / capacity) + steal)
        return cls(other, steal, _per_core(before), _per_core(after), after.cores, window)

    def record_fields(self) -> dict[str, float | int | None]:
        """The fields an efficiency record keeps."""
        return {
            "other_cpu_load": self.other_cpu_load,
            "cpu_steal": self.cpu_steal,
            "load_per_core_before": self.load_per_core_before,
            "load_per_core_after": self.load_per_core_after,
            "cpu_cores": self.cpu_cores,
        }


def _per_core(counters: CpuCounters) -> float | None:
    return None if counters.load_avg_1m is None else counters.load_avg_1m / counters.cores


@dataclass(frozen=True)
class Measurement:
    """The outcome of `measure`.

    Attributes:
        status: "ok", "oom" (the call ran out of memory) or "error" (any other exception).
        times_ms: the timed calls in ms (empty unless status is "ok").
        peak_memory_bytes: peak bytes allocated during one call beyond what was live before it,
            None if not measured.
        baseline_memory_bytes: bytes allocated before that call (CUDA allocator only; None on CPU,
            where tensors allocated before the call are not visible to the tracker).
        error: one-line "ExceptionType: message" for oom / error, else None.
        time_method: "cuda-events" or "wall-clock".
        memory_method: "cuda-allocator", "cpu-dispatch-tensors" or None (not measured).
        warmup: untimed calls that were made.
        load: how busy the machine was while the measurement ran (memory call, warm-up and timed calls).
    """

    status: Status
    times_ms: tuple[float, ...] = ()
    peak_memory_bytes: int | None = None
    baseline_memory_bytes: int | None = None
    error: str | None = None
    time_method: str = "wall-clock"
    memory_method: str | None = None
    warmup: int = 0
    load: MachineLoad = MachineLoad()

    @property
    def repeats(self) -> int:
        return len(self.times_ms)

    @property
    def median_ms(self) -> float | None:
        return percentile(self.times_ms, 50)

    @property
    def p20_ms(self) -> float | None:
        return percentile(self.times_ms, 20)

    @property
    def p80_ms(self) -> float | None:
        return percentile(self.times_ms, 80)

    @property
    def spread(self) -> float | None:
        """p80 / p20 of the timed calls (1 = every call alike); None with fewer than two calls."""
        return time_spread(self.p20_ms, self.p80_ms) if self.repeats > 1 else None


def percentile(values: tuple[float, ...] | list[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, numpy's default); None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def is_oom(err: BaseException) -> bool:
    """Whether an exception means the call ran out of memory."""
    if isinstance(err, OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _OOM_MESSAGES)


def one_line(err: BaseException) -> str:
    """`ExceptionType: first line of the message`."""
    message = str(err).strip().splitlines()
    return f"{type(err).__name__}: {message[0]}" if message else type(err).__name__


def release_memory(device: torch.device) -> None:
    """Free what an interrupted call left behind (collect cycles, empty the CUDA cache)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TensorMemoryTracker(TorchDispatchMode):
    """Live and peak bytes of the tensor storages allocated by operators while the mode is active.

    Storages that an operator returns but did not allocate (views and in-place results of its
    inputs) are not counted; each new storage is counted once, until it is freed. Tensors that
    existed before the mode was entered are not counted at all.

    Args:
        limit_bytes: raise `OutOfMemoryError` as soon as the live bytes exceed this (None = no limit).
    """

    def __init__(self, limit_bytes: int | None = None) -> None:
        super().__init__()
        self.limit_bytes = limit_bytes
        self.live_bytes = 0
        self.peak_bytes = 0
        self._tracked: dict[int, weakref.ref[Any]] = {}

    def _freed(self, key: int, nbytes: int, _storage: object = None) -> None:
        if self._tracked.pop(key, None) is not None:
            self.live_bytes -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {
            id(t.untyped_storage())
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor) and t.layout == torch.strided
        }
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.layout != torch.strided:
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in inputs or key in self._tracked:
                continue
            nbytes = storage.nbytes()
            # Storage Python objects live exactly as long as the storage, so the callback marks the free.
            self._tracked[key] = weakref.ref(storage, functools.partial(self._freed, key, nbytes))
            self.live_bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        if self.limit_bytes is not None and self.live_bytes > self.limit_bytes:
            raise OutOfMemoryError(
                f"tensor allocations reached {self.live_bytes / 2**30:.2f} GiB, over the {CPU_LIMIT_MESSAGE} of "
                f"{self.limit_bytes / 2**30:.2f} GiB"
            )
        return out


def peak_memory(
    fn: Callable[[], Any], device: torch.device, *, limit_bytes: int | None = None
) -> tuple[int, int | None]:
    """(peak bytes allocated during one call of `fn` beyond what was allocated before it, the bytes
    allocated before it -- CUDA only, None on CPU).

    On CPU, `limit_bytes` makes the call raise `OutOfMemoryError` once its live tensors exceed it.
    """
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        synchronize(device)
        del result
        return int(torch.cuda.max_memory_allocated(device) - before), int(before)
    with TensorMemoryTracker(limit_bytes) as tracker:
        result = fn()
        del result
    return int(tracker.peak_bytes), None


def _warm_up(
    fn: Callable[[], Any],
    device: torch.device,
    warmup: int,
    time_budget_s: float | None,
    estimate_s: float | None,
    cold_first: bool = True,
) -> tuple[int, float | None]:
    """Run up to `warmup` calls (fewer once they have used the time budget); returns (calls made,
    seconds of the last call, or `estimate_s` if none was made).

    With `cold_first`, the first call (compilation, autotuning, library plans, lazy initialisation:
    seen taking over a second for a 0.2 ms SDPA backward) is not charged to the budget, so a second
    call always follows it when `warmup` >= 2 and the speed estimate comes from a warm call."""
    spent_s, made = 0.0, 0
    for _ in range(warmup):
        if time_budget_s is not None and spent_s >= time_budget_s:
            break
        start = time.perf_counter()
        fn()
        synchronize(device)
        estimate_s = time.perf_counter() - start
        if not (cold_first and made == 0):
            spent_s += estimate_s
        made += 1
    return made, estimate_s


def _fit_repeats(repeats: int, time_budget_s: float | None, estimate_s: float | None) -> int:
    if time_budget_s is None or not estimate_s:
        return repeats
    return max(1, min(repeats, math.floor(time_budget_s / estimate_s)))


def _timed_loop(
    fn: Callable[[], Any], device: torch.device, repeats: int, flush_l2: bool, memory: bool
) -> tuple[list[float], int | None, int | None]:
    """(times in ms, CUDA peak bytes beyond what was allocated before, bytes allocated before);
    the memory values are None on CPU or without `memory`."""
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            fn()
            times.append((time.perf_counter() - began) * 1e3)
        return times, None, None
    cache = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device=device) if flush_l2 else None
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    if memory:
        torch.cuda.reset_peak_memory_stats(device)
    for start, end in zip(starts, ends, strict=True):
        if cache is not None:
            cache.zero_()
        start.record()
        fn()
        end.record()
    synchronize(device)
    times = [float(start.elapsed_time(end)) for start, end in zip(starts, ends, strict=True)]
    if not memory:
        return times, None, None
    peak = int(torch.cuda.max_memory_allocated(device) - before)
    return times, peak, int(before - (cache.numel() if cache is not None else 0))


def time_calls(
    fn: Callable[[], Any],
    device: torch.device,
    *,
    warmup: int,
    repeats: int,
    time_budget_s: float | None = None,
    flush_l2: bool = True,
    estimate_s: float | None = None,
) -> tuple[list[float], int]:
    """Time `repeats` calls of `fn` after `warmup` untimed ones; returns (times in ms, warm-up calls made).

    With `time_budget_s`, the repeats are lowered (to at least 1) so that they fit the budget at
    the speed of the last warm-up call (or `estimate_s`, seconds per call, without warm-up), and
    warm-up stops early once it has used the budget. Exceptions from `fn` propagate.
    """
    _check_counts(warmup, repeats)
    made, estimate_s = _warm_up(fn, device, warmup, time_budget_s, estimate_s)
    times, _, _ = _timed_loop(fn, device, _fit_repeats(repeats, time_budget_s, estimate_s), flush_l2, False)
    return times, made


def _check_counts(warmup: int, repeats: int) -> None:
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")


def measure(
    fn: Callable[[], Any],
    device: torch.device,
    *,
    warmup: int = 2,
    repeats: int = 10,
    time_budget_s: float | None = None,
    memory: bool = True,
    memory_limit_bytes: int | None = None,
    flush_l2: bool = True,
) -> Measurement:
    """Time `fn` and measure its peak memory on `device`; out-of-memory and errors become a status.

    On CPU the memory call comes first (it counts as the first warm-up, and with
    `memory_limit_bytes` it stops an oversized call before any unguarded one runs); on CUDA the
    peak is read over the timed calls, after the warm-up, so one-off allocations of compilation
    and autotuning are not counted.
    """
    _check_counts(warmup, repeats)
    time_method = TIME_METHODS[device.type]
    memory_method = MEMORY_METHODS[device.type] if memory else None
    peak, baseline, made, estimate_s = None, None, 0, None
    counters = read_cpu_counters()
    failure: tuple[Status, str] | None = None
    try:
        if memory and device.type == "cpu":
            start = time.perf_counter()
            peak, baseline = peak_memory(fn, device, limit_bytes=memory_limit_bytes)
            estimate_s = time.perf_counter() - start
            made, warmup = 1, max(0, warmup - 1)
        # On CPU the memory call above was the cold one.
        warmed, estimate_s = _warm_up(fn, device, warmup, time_budget_s, estimate_s, cold_first=made == 0)
        made += warmed
        repeats = _fit_repeats(repeats, time_budget_s, estimate_s)
        times, cuda_peak, cuda_baseline = _timed_loop(fn, device, repeats, flush_l2, memory)
        if device.type == "cuda":
            peak, baseline = cuda_peak, cuda_baseline
    except Exception as err:  # every failure of the measured call becomes a status, never a crash
        failure = ("oom" if is_oom(err) else "error", one_line(err))
    load = MachineLoad.between(counters, read_cpu_counters())
    if failure is not None:
        release_memory(device)  # outside the except block, so the traceback's tensors are gone
        return Measurement(
            failure[0],
            error=failure[1],
            time_method=time_method,
            memory_method=memory_method,
            warmup=made,
            load=load,
        )
    return Measurement(
        "ok",
        times_ms=tuple(times),
        peak_memory_bytes=peak,
        baseline_memory_bytes=baseline,
        time_method=time_method,
        memory_method=memory_method,
        warmup=made,
        load=load,
    )
