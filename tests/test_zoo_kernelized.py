"""Kernelized and low-rank baselines beyond the shared zoo tests: the limits each approximation must
reach, the inputs the layer supplies (Linformer's projections, Nyström's convolution, Performer's
redrawn features), Skyformer's sampling, precision under autocast and the one-line errors."""

from __future__ import annotations

import pytest
import torch

import attention_zoo
from attention_zoo import functional as F
from attention_zoo.performer import orthogonal_features

from . import zoo_reference as ref
from .builders import random_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


def test_linformer_with_identity_projections_of_full_size_is_full_attention():
    q, k, v, _ = random_inputs(2, 3, 37, 16, masked=False)
    eye = torch.eye(37, dtype=torch.float64)
    out = F.linformer_attention(q, k, v, proj_dim=37, proj_k=eye, proj_v=eye)
    torch.testing.assert_close(out, F.full_attention(q, k, v), rtol=0, atol=1e-12)


@pytest.mark.parametrize("per_head", [False, True], ids=["shared", "per-head"])
def test_linformer_given_projections_match_the_definition_on_valid_tokens(per_head):
    q, k, v, mask = random_inputs(2, 3, 45, 8, masked=True, seed=5)
    gen = torch.Generator().manual_seed(1)
    shape = (3, 6, 50) if per_head else (6, 50)  # N_max = 50 > N = 45
    proj_k, proj_v = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(2))
    out = F.linformer_attention(q, k, v, key_padding_mask=mask, proj_dim=6, proj_k=proj_k, proj_v=proj_v)

    def head_inputs(b, h):
        return {"proj_k": proj_k[h] if per_head else proj_k, "proj_v": proj_v[h] if per_head else proj_v}

    expected = ref.apply_removing_padding("linformer", q, k, v, mask, per_head=head_inputs, proj_dim=6)
    sel = mask[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[sel], expected[sel], rtol=0, atol=1e-10)


def test_linformer_input_longer_than_its_projections_is_a_clear_error():
    q, k, v, _ = random_inputs(1, 2, 12, 8, masked=False)
    proj = torch.randn(4, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"input length 12 exceeds the maximum length 10"):
        F.linformer_attention(q, k, v, proj_dim=4, proj_k=proj, proj_v=proj)
    with pytest.raises(ValueError, match=r"proj_k must have shape \[proj_dim, N_max\]"):
        F.linformer_attention(q, k, v, proj_dim=5, proj_k=proj, proj_v=proj)
    with pytest.raises(ValueError, match="both proj_k and proj_v"):
        F.linformer_attention(q, k, v, proj_dim=4, proj_k=proj)
    with pytest.raises(ValueError, match="max_length"):
        attention_zoo.make("linformer", dim=16, num_heads=2)


def test_linformer_layer_learns_its_projections_per_head_sized_by_max_length():
    layer = attention_zoo.make("linformer", dim=16, num_heads=2, params={"proj_dim": 8}, max_length=40)
    assert layer.mechanism_parameters["proj_k"].shape == (2, 8, 40)
    out = layer(torch.randn(3, 33, 16))
    out.sum().backward()
    assert layer.mechanism_parameters["proj_k"].grad[..., :33].abs().sum() > 0
    assert layer.mechanism_parameters["proj_k"].grad[..., 33:].abs().sum() == 0  # columns past N unused
    with pytest.raises(ValueError, match="exceeds the maximum length 40"):
        layer(torch.randn(1, 41, 16))


def test_nystrom_with_a_landmark_per_token_converges_to_full_attention():
    q, k, v, mask = random_inputs(2, 2, 40, 8, masked=True, seed=2)
    full = F.full_attention(q, k, v, key_padding_mask=mask)
    errors = [
        _max_error(
            F.nystrom_attention(
                q, k, v, key_padding_mask=mask, num_landmarks=40, pinv_iters=it, conv_kernel=0
            )[mask[:, None, :, None].expand_as(full)],
            full[mask[:, None, :, None].expand_as(full)],
        )
        for it in (1, 4, 8, 30)
    ]
    assert errors[0] > errors[1] > errors[2] > 0 or errors[2] < 1e-9
    assert errors[-1] < 1e-9, errors


def test_nystrom_convolution_runs_over_the_valid_tokens():
    q, k, v, mask = random_inputs(2, 3, 30, 8, masked=True, seed=9)
    weight = torch.randn(3, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    params = {"num_landmarks": 4, "pinv_iters": 6, "conv_kernel": 5}
    out = F.nystrom_attention(q, k, v, key_padding_mask=mask, conv_weight=weight, **params)
    expected = ref.apply_removing_padding(
        "nystrom", q, k, v, mask, per_head=lambda b, h: {"conv_weight": weight[h]}, **params
    )
    sel = mask[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[sel], expected[sel], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match=r"conv_weight must have shape \[H, conv_kernel\]"):
        F.nystrom_attention(q, k, v, conv_weight=weight[:, :4], **params)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # even taps on purpose
def test_nystrom_gradcheck_through_the_convolution_weight():
    q, k, v, mask = random_inputs(1, 2, 9, 4, masked=True, seed=3)
    weight = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    inputs = (q.requires_grad_(), v.requires_grad_(), weight)
    assert torch.autograd.gradcheck(
        lambda q_, v_, w_: F.nystrom_attention(
            q_, k, v_, key_padding_mask=mask, num_landmarks=3, pinv_iters=6, conv_kernel=4, conv_weight=w_
        ),
        inputs,
        eps=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("name", ["nystrom", "skyformer"])
def test_pseudo_inverse_scale_is_per_matrix_so_batch_neighbours_do_not_matter(name):
    q, k, v, mask = random_inputs(2, 2, 33, 8, masked=True, seed=11)
    params = {"nystrom": {"num_landmarks": 6, "conv_kernel": 0}, "skyformer": {"num_samples": 8}}[name]
    fn = getattr(F, f"{name}_attention")
    alone = fn(q[:1], k[:1], v[:1], key_padding_mask=mask[:1], **params)
    loud = [torch.cat([t[:1], 9 * t[1:]]) for t in (q, k, v)]  # a neighbour with much larger scores
    together = fn(*loud, key_padding_mask=mask, **params)
    torch.testing.assert_close(together[:1], alone, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["nystrom", "skyformer"])
def test_pseudo_inverse_runs_in_fp32_under_bf16_autocast(name):
    q, k, v, mask = random_inputs(2, 2, 64, 16, masked=True, seed=1, dtype=torch.float32)
    fn = getattr(F, f"{name}_attention")
    expected = fn(q, k, v, key_padding_mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(q, k, v, key_padding_mask=mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    half = fn(q.bfloat16(), k.bfloat16(), v.bfloat16(), key_padding_mask=mask)
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    assert _max_error(half.float(), expected) < 0.1


def test_performer_approaches_softmax_attention_as_features_grow():
    q, k, v, mask = random_inputs(2, 2, 40, 8, masked=True, seed=6)
    q, k = q * 0.5, k * 0.5  # moderate scores: the estimator's variance grows with exp(|q|^2 + |k|^2)
    full = F.full_attention(q, k, v, key_padding_mask=mask)
    sel = mask[:, None, :, None].expand_as(full)
    errors = []
    for r in (8, 64, 512, 8192):
        features = orthogonal_features(r, 8, torch.Generator().manual_seed(r)).double()
        out = F.performer_attention(q, k, v, key_padding_mask=mask, num_features=r, features=features)
        errors.append(float((out - full)[sel].abs().mean()))
    assert errors[0] > errors[1] > errors[2] > errors[3], errors
    assert errors[-1] < errors[0] / 8 and errors[-1] < 0.02, errors


def test_performer_orthogonal_features_are_orthogonal_within_blocks():
    omega = orthogonal_features(20, 8, torch.Generator().manual_seed(0)).double()
    assert omega.shape == (20, 8)
    directions = omega / omega.norm(dim=1, keepdim=True)
    for block in (directions[:8], directions[8:16]):
        torch.testing.assert_close(block @ block.T, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-6)


def test_performer_features_of_the_wrong_shape_are_a_clear_error():
    q, k, v, _ = random_inputs(1, 2, 9, 8, masked=False)
    with pytest.raises(ValueError, match=r"features must have shape \[num_features, d\] = \(16, 8\)"):
        F.performer_attention(q, k, v, num_features=16, features=torch.randn(16, 4))


def test_performer_layer_redraws_its_features_every_interval_training_calls():
    torch.manual_seed(0)
    layer = attention_zoo.make(
        "performer", dim=16, num_heads=2, params={"num_features": 8, "redraw_interval": 2}
    )
    x = torch.randn(2, 9, 16)
    seen = [layer.buffer_features.clone()]
    for _ in range(5):
        layer(x)
        seen.append(layer.buffer_features.clone())
    # calls 0 and 1 use the first draw, call 2 redraws (used by calls 2 and 3), call 4 redraws again
    same = [torch.equal(a, b) for a, b in zip(seen[:-1], seen[1:], strict=True)]
    assert same == [True, True, False, True, False]
    assert int(layer.training_calls) == 5 and "training_calls" in layer.state_dict()
    layer.eval()
    before = layer.buffer_features.clone()
    for _ in range(3):
        layer(x)
    assert torch.equal(layer.buffer_features, before) and int(layer.training_calls) == 5
    fixed = attention_zoo.make("performer", dim=16, num_heads=2, params={"num_features": 8})
    assert "training_calls" not in fixed.state_dict()  # redraw_interval = 0: never redrawn
    first = fixed.buffer_features.clone()
    for _ in range(3):
        fixed(x)
    assert torch.equal(fixed.buffer_features, first)


def test_skyformer_converges_to_the_kernel_nystrom_solution_with_exact_inverse():
    q, k, v, _ = random_inputs(1, 1, 30, 8, masked=False, seed=8)
    d = 8
    uniforms = torch.rand(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ranks = [int(u * 30) for u in uniforms]
    qs, ks = q[0, 0] / d**0.25, k[0, 0] / d**0.25
    samples = torch.stack([qs[r] for r in ranks[:3]] + [ks[r] for r in ranks[3:]])

    def kernel(a, b):
        return torch.exp(-(torch.cdist(a, b) ** 2) / 2)

    gram = kernel(samples, samples) + 0.1 * torch.eye(6, dtype=torch.float64)
    exact = kernel(qs, samples) @ torch.linalg.inv(gram) @ kernel(samples, ks) @ v[0, 0]
    out = F.skyformer_attention(q, k, v, num_samples=6, pinv_iters=40)
    torch.testing.assert_close(out[0, 0], exact, rtol=0, atol=1e-9)


def test_skyformer_samples_valid_tokens_afresh_in_training_and_fixed_at_evaluation():
    q, k, v, mask = random_inputs(2, 2, 40, 8, masked=True, seed=12)
    params = {"num_samples": 10, "pinv_iters": 6}
    evaluation = F.skyformer_attention(q, k, v, key_padding_mask=mask, **params)
    torch.testing.assert_close(F.skyformer_attention(q, k, v, key_padding_mask=mask, **params), evaluation)
    torch.manual_seed(3)
    first = F.skyformer_attention(q, k, v, key_padding_mask=mask, training=True, **params)
    second = F.skyformer_attention(q, k, v, key_padding_mask=mask, training=True, **params)
    assert _max_error(first, second) > 1e-3 and _max_error(first, evaluation) > 1e-3
    # training draws depend on the valid tokens only: row 0 alone, same RNG state, same output
    torch.manual_seed(3)
    keep = mask[0]
    alone = F.skyformer_attention(q[:1, :, keep], k[:1, :, keep], v[:1, :, keep], training=True, **params)
    torch.testing.assert_close(first[:1, :, keep], alone, rtol=0, atol=1e-12)


def test_skyformer_layer_samples_in_training_mode_only():
    torch.manual_seed(0)
    layer = attention_zoo.make("skyformer", dim=16, num_heads=2, params={"num_samples": 8})
    x = torch.randn(2, 20, 16)
    assert _max_error(layer(x), layer(x)) > 0
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name,bad",
    [
        ("performer", {"num_features": 0}),
        ("performer", {"redraw_interval": -1}),
        ("linformer", {"proj_dim": 0}),
        ("nystrom", {"num_landmarks": 0}),
        ("nystrom", {"pinv_iters": 0}),
        ("nystrom", {"conv_kernel": -1}),
        ("skyformer", {"num_samples": 0}),
    ],
)
def test_bad_parameters_are_one_line_errors(name, bad):
    with pytest.raises(ValueError, match=next(iter(bad))) as err:
        attention_zoo.get(name).params(**bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["performer", "linformer", "nystrom", "skyformer"])
def test_cpu_presets_give_the_matched_budget_of_16_per_query(name):
    from lra.presets import get_preset

    preset = get_preset("listops", "quick")
    mechanism = attention_zoo.get(name)
    params = mechanism.params(**preset.attention[name])
    assert mechanism.keys_per_query(params, 512) == 16
