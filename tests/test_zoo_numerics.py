"""Every mechanism at large but finite inputs, in fp32, bf16 and fp16.

A finite output is not enough: each output must match an fp64 evaluation of the same mechanism on the
same inputs (the low-precision inputs and learned or fixed inputs, upcast), within a tolerance that
fits the dtype. The scales are those at which the mechanisms used to fail: q and k with a standard
deviation of 30 (Performer's features underflowed to 0/0 in fp32), keys scaled by 1e4 (Skyformer's
kernel lost its diagonal to cancellation), and logits far beyond fp16's exp range (half-precision
feature sums, scores and softmax statistics overflowed). Every registered built-in is covered, with
its default backend and, where it has one, its readable `reference` backend (and MiTA's Triton
kernels, through the interpreter, in fp32 and fp16: the interpreter's bf16 is broken).
"""

from __future__ import annotations

import pytest
import torch

import attention_zoo
from attention_zoo.mita import triton_usable

BATCH, HEADS, LENGTH, HEAD_DIM = 2, 2, 128, 32
VALID_IN_SECOND_ROW = 90  # trailing padding: every mechanism, positional ones included, removes it
# The Triton interpreter runs every program instance in Python: the kernels get a small input with
# padding and a second batch row (the scales are what matter).
TRITON_LENGTH, TRITON_VALID_IN_SECOND_ROW = 40, 29

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# (std of q, std of k) per dtype; v has unit scale.
SCALES = {
    torch.float32: [(30.0, 30.0), (1.0, 1e4)],
    torch.bfloat16: [(30.0, 30.0), (1.0, 1e4)],
    torch.float16: [(30.0, 30.0), (100.0, 100.0)],
}
# Largest error against the fp64 evaluation, relative to the output's scale (the larger of its own
# magnitude and that of v). Half precision: twice the output's rounding (2^-8 for bf16, 2^-11 for
# fp16), which holds once logits, softmax statistics and sums are computed in fp32. fp32: its own
# rounding of logits of magnitude ~1e3 reaches the softmax weights at ~1e-4. (Measured, largest
# over the grid: fp32 3.2e-4, bf16 2.6e-3, fp16 3.5e-4.)
TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 8e-3, torch.float16: 1e-3}


def _cases():
    for name in attention_zoo.names():
        mechanism = attention_zoo.get(name)
        if mechanism.plugin is not None:
            continue
        backends = [{}]
        if "backend" in mechanism.params().to_dict():
            backends.append({"backend": "reference"})
        for params in backends:
            yield pytest.param(name, params, id=f"{name}{'-reference' if params else ''}")
    yield pytest.param("synthesizer", {"factorized": True}, id="synthesizer-factorized")
    for name in ("mita", "mita_route"):  # few landmarks: the interpreter's cost grows with them
        small = {"backend": "triton", "num_landmarks": 4, "topk": 8}
        yield pytest.param(name, small, id=f"{name}-triton")


def _runtime_inputs(mechanism, params, dtype) -> dict[str, torch.Tensor]:
    """The mechanism's learned and fixed inputs as a layer would own them (seeded), in `dtype`."""
    made: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for factory in (mechanism.module_parameters, mechanism.module_buffers):
            if factory is not None:
                made.update(factory(params, HEADS, HEAD_DIM, LENGTH))
    return {name: tensor.to(dtype) for name, tensor in made.items()}


def _call(mechanism, params, q, k, v, mask, runtime):
    extra = dict(runtime)
    if "training" in mechanism.runtime_inputs:
        extra["training"] = False
    if mechanism.shared_qk:
        k = q
    return mechanism(q, k, v, key_padding_mask=mask, params=params, **extra)


@pytest.mark.parametrize("dtype", list(SCALES), ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("name,overrides", list(_cases()))
def test_large_inputs_match_an_fp64_evaluation(name, overrides, dtype):
    if overrides.get("backend") == "triton":
        if dtype == torch.bfloat16:
            pytest.skip("the Triton interpreter's bf16 is broken; the kernels are checked in fp32 and fp16")
        if not triton_usable(torch.device("cpu")):
            pytest.skip("needs triton with TRITON_INTERPRET=1")
    mechanism = attention_zoo.get(name)
    params = mechanism.params(**overrides)
    # The kernels take no fp64: their definition is evaluated by the reference backend.
    params64 = mechanism.params(**{**overrides, "backend": "reference"}) if "backend" in overrides else params
    runtime = _runtime_inputs(mechanism, params, dtype)
    runtime64 = {key: t.double() for key, t in runtime.items()}
    triton = overrides.get("backend") == "triton"
    length = TRITON_LENGTH if triton else LENGTH
    mask = torch.ones(BATCH, length, dtype=torch.bool)
    mask[1, TRITON_VALID_IN_SECOND_ROW if triton else VALID_IN_SECOND_ROW :] = False
    valid = mask[:, None, :, None].expand(BATCH, HEADS, length, HEAD_DIM)
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(BATCH, HEADS, length, HEAD_DIM, generator=gen) for _ in range(3)]
    for q_scale, k_scale in SCALES[dtype]:
        q, k, v = ((t * s).to(dtype) for t, s in zip(base, (q_scale, k_scale, 1.0), strict=True))
        where = f"{name}{overrides or ''} in {dtype}, q std {q_scale:g}, k std {k_scale:g}"
        with torch.no_grad():
            out = _call(mechanism, params, q, k, v, mask, runtime)
            expected = _call(mechanism, params64, q.double(), k.double(), v.double(), mask, runtime64)
        assert out.dtype == dtype, f"{where}: output dtype {out.dtype}"
        assert torch.isfinite(out).all(), f"{where}: non-finite outputs"
        assert torch.isfinite(expected).all(), f"{where}: the fp64 evaluation itself is not finite"
        scale = max(expected[valid].abs().max().item(), v.double().abs().max().item())
        error = (out.double() - expected)[valid].abs().max().item() / scale
        assert error <= TOLERANCE[dtype], (
            f"{where}: differs from the fp64 evaluation by {error:.2e} of the output scale "
            f"(tolerance {TOLERANCE[dtype]:g})"
        )


@pytest.mark.parametrize("name", [n for n in attention_zoo.names() if attention_zoo.get(n).plugin is None])
def test_gradients_stay_finite_at_large_fp32_inputs(name):
    """The backward at the same scales: finite gradients for q, k and v."""
    mechanism = attention_zoo.get(name)
    params = mechanism.params()
    runtime = _runtime_inputs(mechanism, params, torch.float32)
    mask = torch.ones(BATCH, LENGTH, dtype=torch.bool)
    mask[1, VALID_IN_SECOND_ROW:] = False
    gen = torch.Generator().manual_seed(1)
    for q_scale, k_scale in SCALES[torch.float32]:
        q, k, v = (
            (torch.randn(BATCH, HEADS, LENGTH, HEAD_DIM, generator=gen) * s).requires_grad_()
            for s in (q_scale, k_scale, 1.0)
        )
        out = _call(mechanism, params, q, k, v, mask, runtime)
        out.backward(torch.randn(out.shape, generator=gen))
        for label, t in (("q", q), ("k", k), ("v", v)):
            if t.grad is not None:
                assert torch.isfinite(t.grad).all(), (
                    f"{name}: non-finite gradient of {label} at q std {q_scale:g}, k std {k_scale:g}"
                )


def test_skyformer_kernel_is_accurate_far_from_the_origin():
    """Queries and keys sharing a large offset: distances stay small while norms are huge, so a
    kernel taken from the expansion a.b - |a|^2/2 - |b|^2/2 about the origin loses everything to
    cancellation."""
    gen = torch.Generator().manual_seed(2)
    offset = 300.0 * torch.randn(HEAD_DIM, generator=gen)
    q, k, v = (torch.randn(1, HEADS, LENGTH, HEAD_DIM, generator=gen) for _ in range(3))
    q, k = q + offset, k + offset
    out = attention_zoo.functional.skyformer_attention(q, k, v, num_samples=16)
    expected = attention_zoo.functional.skyformer_attention(
        q.double(), k.double(), v.double(), num_samples=16
    )
    error = (out.double() - expected).abs().max().item() / expected.abs().max().item()
    assert error < 1e-3, f"skyformer far from the origin: relative error {error:.2e} against fp64"
