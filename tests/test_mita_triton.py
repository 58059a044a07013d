"""The MiTA Triton kernels against the PyTorch reference, on the CPU through TRITON_INTERPRET=1.

Every kernel output buffer starts as NaN (ints: -1) so an element a kernel forgot to write fails.
Small block sizes (`kernel_config`) push short sequences through the multi-tile, multi-expert,
multi-chunk and two-stage top-k paths the GPU takes at long lengths. fp32 must match the reference
to 1e-4 (forward) and 1e-3 (gradients) in fla's ||a - b|| / ||b||; fp16 is checked with the
selection held fixed (top-k and argmax flip on near-ties) against an fp64 computation here.

On a GPU machine, `LRA_TEST_DEVICE=cuda pytest tests/test_mita_triton.py` runs the same tests with
compiled kernels: the kernels get CUDA copies of the inputs and the references stay on the CPU.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest
import torch

from attention_zoo import functional as F
from attention_zoo.mita import triton_common as common
from attention_zoo.mita.launches import LaunchLog
from attention_zoo.mita.triton_ops import MitaGraph, mita_triton, mita_triton_selection
from attention_zoo.mita.triton_pooling import padding_layout
from runners.bench.kernels.checks import fixed_selection_mita, rel_err

from . import zoo_reference as ref
from .builders import make_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

pytest.importorskip("triton")

DEVICE = torch.device(os.environ.get("LRA_TEST_DEVICE", "cpu"))


def on_device(*tensors):
    """The kernels' copies of CPU test tensors (None stays None)."""
    return [None if t is None else t.to(DEVICE) for t in tensors]


@contextlib.contextmanager
def kernel_config(**changes):
    old = common.set_config(**changes)
    try:
        yield
    finally:
        common.CONFIG = old


@pytest.fixture(autouse=True)
def poisoned_buffers():
    with kernel_config(poison=True):
        yield


def reference_and_triton(q, k, v, mask, m, topk, shared, deterministic=False):
    """Outputs and gradients (one shared random upstream gradient) of both backends."""
    fn = F.mita_attention if shared else F.mita_route_attention
    leaves_ref = [t.clone().requires_grad_() for t in (q, k, v)]
    leaves_tri = [t.requires_grad_() for t in on_device(q.clone(), k.clone(), v.clone())]
    out_ref = fn(*leaves_ref, key_padding_mask=mask, num_landmarks=m, topk=topk, backend="torch")
    (mask_tri,) = on_device(mask)
    out_tri = mita_triton(*leaves_tri, mask_tri, m, topk, shared, deterministic=deterministic)
    upstream = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(1)).to(q.dtype)
    grads_ref = torch.autograd.grad(out_ref, leaves_ref, upstream)
    grads_tri = torch.autograd.grad(out_tri, leaves_tri, upstream.to(DEVICE))
    return (out_ref, grads_ref), (out_tri.cpu(), tuple(g.cpu() for g in grads_tri))


# (B, H, N, d, m, k, masked, shared, config); small blocks exercise the long-sequence paths.
# select_row=32: rows of more than 32 scores go through group maxima (in-kernel or torch.topk first
# stage, register-resident or streamed candidate rows) instead of the one-stage top-k.
TILED = {
    "block_m": 16,
    "block_n": 16,
    "block_n_bwd": 16,
    "block_k": 16,
    "block_lm": 16,
    "group": 4,
    "select_row": 32,
}
SLOW = pytest.mark.slow
# The fast cases reach every line and branch of the kernels and launchers that the slow ones reach
# (traced under the interpreter): n = 1, m and k > N, one landmark, head dims padded to 64 and 128,
# two landmark chunks, the one-stage top-k, the in-kernel and the torch.topk first stage of the
# two-stage top-k, programs owning several tiles, route-only. The slow ones are larger forms of them.
FP32_CASES = [
    (1, 1, 1, 16, 4, 4, False, True, {}),
    (2, 1, 7, 16, 3, 2, True, True, {}),
    (1, 2, 7, 32, 16, 16, True, True, {}),  # m, k > N
    (1, 1, 40, 16, 17, 6, True, True, TILED),  # 2 landmark chunks
    (1, 1, 65, 16, 4, 16, True, True, TILED),  # in-kernel two-stage top-k over groups of 4
    (1, 1, 100, 128, 6, 5, False, True, {}),
    (1, 1, 257, 32, 6, 5, False, True, {**TILED, "split_programs": 2}),  # programs own many tiles
    (1, 2, 63, 16, 1, 1, True, True, {}),  # one landmark, one key per expert
    (2, 1, 50, 80, 4, 6, True, True, {}),  # head dim padded to 128 inside the kernels
    (1, 1, 63, 48, 5, 7, True, False, TILED),  # route-only
    (1, 1, 257, 16, 5, 40, False, False, {"group": 4}),
]
FP32_CASES_SLOW = [
    (2, 2, 63, 64, 8, 8, True, True, TILED),
    (1, 1, 100, 16, 40, 30, True, True, TILED),  # 3 landmark chunks, k spans 2 key chunks
    (1, 2, 257, 64, 8, 16, True, True, TILED),  # torch.topk first stage over groups of 4
    (2, 1, 100, 32, 6, 8, True, False, TILED),  # route-only
]


def case_id(case):
    b, h, n, d, m, k, masked, shared, cfg = case
    name = "mita" if shared else "route"
    tiled = "-tiled" if cfg else ""
    return f"{name}-B{b}H{h}-N{n}-d{d}-m{m}-k{k}-{'padded' if masked else 'dense'}{tiled}"


def fast_and_slow(fast, slow):
    """Parameters of a test: the cases of `fast` ({id: args}), then those of `slow`, marked slow."""
    return [pytest.param(*args, id=name) for name, args in fast.items()] + [
        pytest.param(*args, id=name, marks=SLOW) for name, args in slow.items()
    ]


@pytest.mark.parametrize(
    "case",
    fast_and_slow({case_id(c): (c,) for c in FP32_CASES}, {case_id(c): (c,) for c in FP32_CASES_SLOW}),
)
def test_fp32_matches_reference(case):
    batch, heads, n, d, m, topk, masked, shared, cfg = case
    q, k, v, mask = make_inputs(batch, heads, n, d, masked=masked, seed=n * 31 + d)
    with kernel_config(**cfg):
        (out_ref, grads_ref), (out_tri, grads_tri) = reference_and_triton(q, k, v, mask, m, topk, shared)
    assert out_tri.shape == q.shape and out_tri.dtype == q.dtype
    assert rel_err(out_tri, out_ref) < 1e-4
    for name, g_tri, g_ref in zip("qkv", grads_tri, grads_ref, strict=True):
        assert rel_err(g_tri, g_ref) < 1e-3, f"d{name}"


# (deterministic, N, d): the atomic mode is every fp32 case's.
BACKWARD_CASES = {"deterministic-N40-d16": (True, 40, 16)}
BACKWARD_CASES_SLOW = {
    "atomic-N40-d16": (False, 40, 16),
    "deterministic-N100-d32": (True, 100, 32),
    "atomic-N100-d32": (False, 100, 32),
}


@pytest.mark.parametrize("deterministic,n,d", fast_and_slow(BACKWARD_CASES, BACKWARD_CASES_SLOW))
def test_backward_modes_match_and_deterministic_is_bitwise_stable(deterministic, n, d):
    q, k, v, mask = make_inputs(1, 2, n, d, masked=True, seed=5)
    with kernel_config(**TILED, split_programs=8):  # several pieces per expert
        (_, grads_ref), (_, grads_a) = reference_and_triton(q, k, v, mask, 5, 8, True, deterministic)
        _, (_, grads_b) = reference_and_triton(q, k, v, mask, 5, 8, True, deterministic)
    for g_a, g_b, g_ref in zip(grads_a, grads_b, grads_ref, strict=True):
        assert rel_err(g_a, g_ref) < 1e-3
        if deterministic:
            assert torch.equal(g_a, g_b)


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_env_flag_sets_the_deterministic_default(monkeypatch, value, expected):
    monkeypatch.setenv("MITA_DETERMINISTIC", value)
    assert common.KernelConfig().deterministic is expected


@pytest.mark.parametrize(
    "change", [{"block_m": 24}, {"block_k": 8}, {"group": 3}, {"group": 256}, {"num_warps_fwd": 0}]
)
def test_bad_kernel_config_is_a_clear_error(change):
    with pytest.raises(ValueError, match="KernelConfig"):
        common.set_config(**change)


def test_public_api_dispatches_to_triton():
    q, k, v, mask = make_inputs(1, 2, 40, 16, masked=True, seed=11)
    q_dev, k_dev, v_dev, mask_dev = on_device(q, k, v, mask)
    out = F.mita_attention(q_dev, k_dev, v_dev, key_padding_mask=mask_dev, num_landmarks=5, topk=6,
                           backend="triton").cpu()  # fmt: skip
    expected = F.mita_attention(q, k, v, key_padding_mask=mask, num_landmarks=5, topk=6, backend="torch")
    assert rel_err(out, expected) < 1e-4


def test_padding_is_removed_not_zeroed():
    """Valid outputs with random padding equal the kernels on the valid subsequence alone."""
    n_valid, n_total, d = 37, 64, 16
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 1, n_valid, d, generator=gen) for _ in range(3))
    positions = torch.randperm(n_total, generator=gen)[:n_valid].sort().values
    mask = torch.zeros(1, n_total, dtype=torch.bool)
    mask[0, positions] = True
    big = [torch.randn(1, 1, n_total, d, generator=gen) * 5 for _ in range(3)]
    for small, padded in zip((q, k, v), big, strict=True):
        padded[:, :, positions] = small
    with kernel_config(**TILED):
        out_small = mita_triton(*on_device(q, k, v), None, 6, 9).cpu()
        out_big = mita_triton(*on_device(*big, mask), 6, 9).cpu()[:, :, positions]
    assert rel_err(out_big, out_small) < 1e-5


# ---------------------------------------------------------------------------------------------
# Selection, compared by value (ties may legitimately pick different keys)
# ---------------------------------------------------------------------------------------------


# (N, m, k, masked, duplicate keys, config)
SELECTION_CASES = {
    "N63": (63, 6, 5, True, False, TILED),
    "N65-two-stage-ties": (65, 4, 16, False, True, TILED),  # exact ties in the scores
    "N20-k-exceeds-valid": (20, 6, 16, True, False, {}),  # k > L: padded keys fill the tail
}
SELECTION_CASES_SLOW = {
    "N257-two-stage": (257, 8, 16, True, False, TILED),
    "N257-ties": (257, 8, 16, False, True, TILED),
    "N100-all-groups": (100, 12, 7, False, False, {"group": 16}),
    "N30-k-exceeds-valid": (30, 50, 40, True, False, {}),
}


@pytest.mark.parametrize(
    "n,m,topk,masked,duplicate_keys,cfg", fast_and_slow(SELECTION_CASES, SELECTION_CASES_SLOW)
)
def test_selection_by_value(n, m, topk, masked, duplicate_keys, cfg):
    d = 16
    q, k, _, mask = make_inputs(2, 2, n, d, masked=masked, seed=n + m, duplicate_keys=duplicate_keys)
    with kernel_config(**cfg):
        keys, routing = (t.cpu() for t in mita_triton_selection(*on_device(q, k, mask), m, topk))
    kept = min(topk, n)
    assert keys.shape == (2, 2, min(m, n), kept) and routing.shape == (2, 2, n)
    eps = 1e-4
    for b in range(2):
        valid = torch.ones(n, dtype=torch.bool) if mask is None else mask[b]
        length = int(valid.sum())
        for h in range(2):
            landmarks = ref.pool(q[b, h][valid].double(), m)  # [m_b, d]
            scores = landmarks @ k[b, h].double().T  # [m_b, N]
            for j in range(landmarks.shape[0]):
                chosen = keys[b, h, j]
                assert len(set(chosen.tolist())) == kept, "an expert repeats a key"
                chosen_valid = chosen[valid[chosen]]
                if kept <= length:
                    assert len(chosen_valid) == kept, "a padded key was chosen over a valid one"
                    kth = scores[j][valid].sort(descending=True).values[kept - 1]
                    assert (scores[j][chosen] >= kth - eps).all()
                else:
                    assert set(chosen_valid.tolist()) == set(valid.nonzero().flatten().tolist())
            routed = landmarks @ q[b, h].double().T  # [m_b, N]
            expert = routing[b, h]
            assert (expert < landmarks.shape[0]).all(), "a query was routed to an invalid landmark"
            best = routed.max(0).values
            assert (routed.gather(0, expert[None]).squeeze(0) >= best - eps).all()


# ---------------------------------------------------------------------------------------------
# fp16 with the selection held fixed
# ---------------------------------------------------------------------------------------------


# (N, d, m, k, masked, shared)
FP16_CASES = {
    "mita-N63-d32-padded": (63, 32, 6, 8, True, True),
    "mita-N33-d16-dense": (33, 16, 4, 8, False, True),
    "route-N63-d16-padded": (63, 16, 4, 8, True, False),
}
FP16_CASES_SLOW = {"mita-N100-d64-dense": (100, 64, 5, 12, False, True)}


@pytest.mark.parametrize("n,d,m,topk,masked,shared", fast_and_slow(FP16_CASES, FP16_CASES_SLOW))
def test_fp16_with_fixed_selection(n, d, m, topk, masked, shared):
    q, k, v, mask = make_inputs(1, 2, n, d, masked=masked, seed=n + d, dtype=torch.float16)
    q_dev, k_dev, v_dev, mask_dev = on_device(q, k, v, mask)
    with kernel_config(**TILED):
        selection = mita_triton_selection(q_dev, k_dev, mask_dev, m, topk)
        leaves = [t.clone().requires_grad_() for t in (q_dev, k_dev, v_dev)]
        out = mita_triton(*leaves, mask_dev, m, topk, shared, selection=selection)
        same = mita_triton(q_dev, k_dev, v_dev, mask_dev, m, topk, shared)
        assert torch.equal(out, same), "selection hook changes results"
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(q.dtype)
        grads = [g.cpu() for g in torch.autograd.grad(out, leaves, upstream.to(DEVICE))]
    out, selection = out.cpu(), tuple(t.cpu() for t in selection)
    exact = [t.double().requires_grad_() for t in (q, k, v)]
    expected = fixed_selection_mita(*exact, mask, m, *selection, shared)
    expected_grads = torch.autograd.grad(expected, exact, upstream.double())
    assert out.dtype == torch.float16
    assert rel_err(out, expected) < 1e-2
    for name, g, g_ref in zip("qkv", grads, expected_grads, strict=True):
        assert g.dtype == torch.float16
        assert rel_err(g, g_ref) < 2e-2, f"d{name}"


# ---------------------------------------------------------------------------------------------
# Launch budget, host syncs, graph replay
# ---------------------------------------------------------------------------------------------

# Device launches (Triton kernels plus torch ops that run a kernel) per call; a padding mask adds
# one (its layout kernel). Short sequences are bound by launches, and CUDA graphs need no host sync.
FORWARD_LAUNCHES, TRAINING_LAUNCHES = 5, 10


@contextlib.contextmanager
def sync_errors():
    """On a GPU, any synchronising CUDA call raises too (torch's own detector)."""
    if DEVICE.type != "cuda":
        yield
        return
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


@pytest.mark.parametrize("masked", [False, True], ids=["dense", "padded"])
@pytest.mark.parametrize("shared", [True, False], ids=["mita", "route"])
def test_launch_budget_and_no_host_sync(shared, masked):
    # Launches depend on the shapes only past N = 32 * select_row (torch.topk's first stage): a
    # short input counts what every length below that launches.
    q, k, v, mask = on_device(*make_inputs(2, 1, 20, 16, masked=masked, seed=11))
    extra = 1 if masked else 0
    upstream = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    with kernel_config(poison=False), sync_errors():  # poisoning fills buffers: launches of the tests' own
        with torch.no_grad(), LaunchLog() as forward:
            mita_triton(q, k, v, mask, 3, 4, shared)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        with LaunchLog() as training:
            out = mita_triton(*leaves, mask, 3, 4, shared)
            torch.autograd.grad(out, leaves, upstream)
    assert forward.syncs == [] and training.syncs == []
    assert len(forward.launches) <= FORWARD_LAUNCHES + extra, forward.launches
    assert len(training.launches) <= TRAINING_LAUNCHES + extra, training.launches
    assert sum(name.startswith("triton:") for name in forward.launches) >= 4  # the kernels ran


def test_launch_log_counts_kernels_and_catches_host_syncs():
    x = torch.arange(6.0)
    with kernel_config(poison=False), LaunchLog() as log:
        y = (x * 2).view(2, 3)  # one kernel; the view is free
        torch.empty(4)
        padding_layout(torch.tensor([[True, False, True]]), 1, 3, x.device)  # one Triton launch
    assert log.launches == ["torch:mul", "triton:_padding_layout_kernel"] and log.syncs == []
    with LaunchLog() as log:
        y.sum().item()
        bool(y[0, 0])
        y.nonzero()
        y.tolist()
    assert log.syncs == ["_local_scalar_dense", "_local_scalar_dense", "nonzero", "tolist"]


def test_graph_replay_needs_cuda_and_fixed_shapes():
    q, k, v, _ = make_inputs(1, 1, 8, 16, masked=False, seed=0)
    if DEVICE.type != "cuda":
        with pytest.raises(ValueError, match="CUDA"):
            MitaGraph(q, k, v, None, 2, 2)
        return
    q, k, v = on_device(q, k, v)
    graph = MitaGraph(q, k, v, None, 2, 2)
    with pytest.raises(ValueError, match="shape"):
        graph(q[:, :, :4], k[:, :, :4], v[:, :, :4])


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "training"])
def test_graph_replay_matches_eager(backward):
    q, k, v, mask = on_device(*make_inputs(2, 2, 300, 64, masked=True, seed=4, dtype=torch.float16))
    graph = MitaGraph(q, k, v, mask, 8, 16, backward=backward)
    for seed in (1, 2):  # new inputs copied into the captured buffers, replayed twice
        q2, k2, v2, _ = on_device(*make_inputs(2, 2, 300, 64, masked=False, seed=seed, dtype=torch.float16))
        upstream = torch.randn_like(q2)
        leaves = [t.clone().requires_grad_() for t in (q2, k2, v2)]
        eager = mita_triton(*leaves, mask, 8, 16)
        if backward:
            replayed, grads = graph(q2, k2, v2, upstream)
            for g, e in zip(grads, torch.autograd.grad(eager, leaves, upstream), strict=True):
                torch.testing.assert_close(g, e)  # atomic expert-space sums: not bitwise
        else:
            replayed = graph(q2, k2, v2)
        torch.testing.assert_close(replayed, eager)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_unsupported_dtypes_are_clear_errors():
    q, k, v, _ = make_inputs(1, 1, 8, 16, masked=False, seed=0)
    with pytest.raises(ValueError, match="backend='torch'"):
        mita_triton(q.double(), k.double(), v.double(), None, 2, 2)
    with pytest.raises(ValueError, match="share one dtype"):
        mita_triton(q, k.half(), v, None, 2, 2)
    wrong = (torch.zeros(1, 1, 2, 3, dtype=torch.long), torch.zeros(1, 1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="mita_triton_selection"):
        mita_triton(q, k, v, None, 2, 2, selection=wrong)


# ---------------------------------------------------------------------------------------------
# Longer sequences at the default (GPU) block sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False], ids=["mita", "route"])
@pytest.mark.parametrize("n,masked", [(1000, True), (2049, False)], ids=["N1000-padded", "N2049-dense"])
def test_fp32_matches_reference_long(n, masked, shared):
    q, k, v, mask = make_inputs(1, 2, n, 64, masked=masked, seed=n)
    (out_ref, grads_ref), (out_tri, grads_tri) = reference_and_triton(q, k, v, mask, 16, 32, shared)
    assert rel_err(out_tri, out_ref) < 1e-4
    for g_tri, g_ref in zip(grads_tri, grads_ref, strict=True):
        assert rel_err(g_tri, g_ref) < 1e-3


@pytest.mark.slow
def test_kernels_compile_for_hopper():
    """Every kernel launch of representative shapes compiles for sm_90 (no GPU needed)."""
    from attention_zoo.mita.triton_compile_check import check

    results = check(arch=90, quick=True)
    assert results and not [r for r in results if "error" in r]


# ---------------------------------------------------------------------------------------------
# The fast cases take every path of the slow ones
# ---------------------------------------------------------------------------------------------

KERNEL_SOURCES = os.path.join("attention_zoo", "mita", "triton_")


def kernel_steps(run) -> set[tuple[str, int, int]]:
    """The steps (file, line, next line) `run()` takes through the kernels and their launchers
    (attention_zoo/mita/triton_*.py). The interpreter runs the kernels as Python, so a branch on a
    compile-time flag, a loop that is entered or skipped and a masked path each leave their steps."""
    steps: set[tuple[str, int, int]] = set()

    def enter(frame, event, arg):
        if KERNEL_SOURCES not in frame.f_code.co_filename:
            return None
        source = os.path.basename(frame.f_code.co_filename)
        last = [0]  # 0: the call itself

        def step(frame, event, arg):
            if event == "line":
                steps.add((source, last[0], frame.f_lineno))
                last[0] = frame.f_lineno
            return step

        return step

    previous = sys.gettrace()
    sys.settrace(enter)
    try:
        run()
    finally:
        sys.settrace(previous)
    return steps


@pytest.mark.slow
@pytest.mark.skipif(DEVICE.type != "cpu", reason="traces the kernels as the interpreter runs them")
def test_fast_cases_take_every_kernel_step_the_slow_cases_take():
    """The slow cases are larger forms of the fast ones: whatever they execute in the kernels and
    launchers (every line, and every line after every line) the fast cases execute too, so the fast
    set gives up no code path, only size."""
    grids = [
        (test_fp32_matches_reference, [(c,) for c in FP32_CASES], [(c,) for c in FP32_CASES_SLOW]),
        (test_backward_modes_match_and_deterministic_is_bitwise_stable, BACKWARD_CASES, BACKWARD_CASES_SLOW),
        (test_selection_by_value, SELECTION_CASES, SELECTION_CASES_SLOW),
        (test_fp16_with_fixed_selection, FP16_CASES, FP16_CASES_SLOW),
    ]
    fast, slow = set(), set()
    for test, fast_cases, slow_cases in grids:
        for cases, steps in ((fast_cases, fast), (slow_cases, slow)):
            for args in cases.values() if isinstance(cases, dict) else cases:
                steps |= kernel_steps(lambda test=test, args=args: test(*args))
    missing = sorted(slow - fast)
    assert len(fast) > 500 and not missing, f"{len(missing)} steps only slow cases take: {missing[:10]}"
