"""runners/bench/timing.py: percentiles, the CPU tensor-memory tracker, time budgets and the oom / error path."""

from __future__ import annotations

import pytest
import torch

from runners.bench import timing
from runners.bench.timing import Measurement, TensorMemoryTracker, measure, peak_memory, time_calls
from runners.devices import resolve_device

CPU = torch.device("cpu")
F32 = 4  # bytes per float32


def test_percentiles_interpolate_linearly():
    m = Measurement("ok", times_ms=(5.0, 1.0, 4.0, 2.0, 3.0))
    # sorted 1..5: rank q/100 * (n - 1) between neighbours
    assert m.median_ms == 3.0
    assert m.p20_ms == pytest.approx(1.8)
    assert m.p80_ms == pytest.approx(4.2)
    assert m.repeats == 5
    assert Measurement("oom").median_ms is None


def test_tracker_counts_new_storages_until_freed():
    with TensorMemoryTracker() as tracker:
        a = torch.empty(1000)
        b = torch.empty(500)
        del a
        c = torch.empty(250)
        live_now = tracker.live_bytes
    assert tracker.peak_bytes == 1500 * F32
    assert live_now == 750 * F32
    del b, c


def test_tracker_ignores_views_inplace_results_and_earlier_tensors():
    base = torch.zeros(1000)
    with TensorMemoryTracker() as tracker:
        view = base.view(10, 100)
        base.add_(1.0)
        view.mul_(2.0)
        col = view[:, 0]
    assert tracker.peak_bytes == 0
    del col


def test_tracker_sees_the_backward_pass():
    n = 64
    x = torch.randn(n, n, requires_grad=True)
    with TensorMemoryTracker() as tracker:
        (grad,) = torch.autograd.grad((x @ x).sum(), x)
    # The backward allocates grad @ x^T and x^T @ grad (n^2 each) and their sum, the gradient.
    assert 3 * n * n * F32 <= tracker.peak_bytes < 4 * n * n * F32
    assert tracker.live_bytes == n * n * F32  # the returned gradient
    del grad


def test_tracker_limit_raises_out_of_memory():
    with (
        pytest.raises(timing.OutOfMemoryError, match="CPU memory limit"),
        TensorMemoryTracker(limit_bytes=1000),
    ):
        torch.empty(1000)


def test_peak_memory_of_a_quadratic_call():
    n = 128
    q = torch.randn(n, 16)
    peak, baseline = peak_memory(lambda: torch.softmax(q @ q.T, dim=-1), CPU)
    assert peak == 2 * n * n * F32 and baseline is None  # scores and their softmax, both n x n


class FakeClock:
    """Stands in for the `time` module in runners.bench.timing: time moves only when a timed call says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    return clock


def test_time_calls_counts_calls_and_respects_the_budget(clock):
    calls = []

    def fn():
        calls.append(1)
        clock.advance(0.02)

    times, made = time_calls(fn, CPU, warmup=2, repeats=4)
    assert (len(times), made, len(calls)) == (4, 2, 6)
    assert times == pytest.approx([20.0] * 4)

    calls.clear()
    times, made = time_calls(fn, CPU, warmup=1, repeats=50, time_budget_s=0.07)
    assert made == 1 and len(times) == 3  # floor(0.07 s / 0.02 s per call), lowered from 50

    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_calls(fn, CPU, warmup=0, repeats=0)


def test_a_slow_first_call_neither_ends_the_warm_up_nor_sets_the_repeats(clock):
    """The first call compiles or initialises; the budget and the speed estimate use warm calls."""
    calls = []

    def fn():
        clock.advance(0.3 if not calls else 0.01)
        calls.append(1)

    times, made = time_calls(fn, CPU, warmup=3, repeats=8, time_budget_s=0.2)
    assert made == 3 and len(times) == 8  # 0.2 s of budget fits 8 warm calls of 0.01 s
    assert times == pytest.approx([10.0] * 8)


@pytest.mark.parametrize(
    "exc, status",
    [
        (timing.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
        (
            RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
            "oom",
        ),
        (ValueError("bad shape\nsecond line"), "error"),
    ],
)
def test_measure_turns_failures_into_a_status(exc, status):
    def fn():
        raise exc

    m = measure(fn, CPU, warmup=1, repeats=3)
    assert m.status == status
    assert m.times_ms == () and m.peak_memory_bytes is None
    assert m.error == f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


def test_measure_ok_on_cpu_reports_memory_and_method():
    x = torch.randn(256, 256)
    m = measure(lambda: x @ x, CPU, warmup=2, repeats=3)
    assert m.status == "ok" and m.repeats == 3 and m.warmup == 2
    assert m.peak_memory_bytes == 256 * 256 * F32
    assert (m.time_method, m.memory_method) == ("wall-clock", "cpu-dispatch-tensors")
    assert m.p20_ms <= m.median_ms <= m.p80_ms


def test_measure_memory_limit_gives_oom_before_timing():
    calls = []

    def fn():
        calls.append(1)
        return torch.empty(10_000)

    m = measure(fn, CPU, warmup=2, repeats=3, memory_limit_bytes=1000)
    assert m.status == "oom" and "CPU memory limit" in m.error
    assert len(calls) == 1  # stopped at the guarded memory call


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    with pytest.raises(ValueError, match="device must be auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
        assert resolve_device("auto") == CPU


class FakeCuda:
    """Just enough of torch.cuda for the CUDA branch of `measure` on a machine without a GPU:
    events read a fake clock that each call advances by 5 ms, the allocator counters are scripted."""

    def __init__(self) -> None:
        self.clock_ms = 0.0
        self.allocated, self.peak = 1000, 1000

    def install(self, monkeypatch) -> None:
        fake = self

        class Event:
            def __init__(self, enable_timing: bool = False) -> None:
                self.at = None

            def record(self) -> None:
                self.at = fake.clock_ms

            def elapsed_time(self, end) -> float:
                return end.at - self.at

        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: fake.allocated)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: fake.peak)
        monkeypatch.setattr(
            torch.cuda, "reset_peak_memory_stats", lambda device=None: setattr(fake, "peak", 0)
        )
        monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)

    def call(self) -> None:
        self.clock_ms += 5.0
        self.peak = max(self.peak, self.allocated + 300)


def test_measure_cuda_branch_reads_events_and_the_allocator(monkeypatch):
    fake = FakeCuda()
    fake.install(monkeypatch)
    m = measure(fake.call, torch.device("cuda"), warmup=2, repeats=4, flush_l2=False)
    assert m.status == "ok" and m.times_ms == (5.0, 5.0, 5.0, 5.0) and m.warmup == 2
    assert (m.peak_memory_bytes, m.baseline_memory_bytes) == (300, 1000)
    assert (m.time_method, m.memory_method) == ("cuda-events", "cuda-allocator")
    peak, baseline = peak_memory(fake.call, torch.device("cuda"))
    assert (peak, baseline) == (300, 1000)


def test_measure_cuda_out_of_memory(monkeypatch):
    FakeCuda().install(monkeypatch)

    def fn():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")

    m = measure(fn, torch.device("cuda"), warmup=1, repeats=2, flush_l2=False)
    assert m.status == "oom" and m.error.startswith("OutOfMemoryError: CUDA out of memory")
