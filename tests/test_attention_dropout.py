"""Attention-probability dropout: every mechanism that forms attention probabilities drops them in
training (each probability zeroed with probability p, the rest scaled by 1/(1 - p)), reproducibly under
the seed, with gradients that match its own masks; evaluation and `dropout_p=0` are the exact paths.

The registry-wide tests loop over the registered built-ins, so a new mechanism that declares
`attention_dropout` is covered by them.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

import attention_zoo
from attention_zoo import _block_patterns, registry
from attention_zoo.mita import triton_usable
from lra import models
from lra.presets import ModelConfig, apply_overrides, get_preset

RATE = 0.3

# The built-ins that form attention probabilities, and those that form none (kernelized, low rank).
DROPPING = {
    "full", "agent", "topk", "moba", "mita", "mita_route", "linformer", "nystrom", "local",
    "longformer", "bigbird", "sparse", "reformer", "sinkhorn", "synthesizer",
}  # fmt: skip
NOT_DROPPING = {"linear", "performer", "cosformer", "skyformer"}

# Parameters small enough that the test lengths exercise each pattern and selection.
PARAMS = {
    "agent": {"num_agents": 3},
    "topk": {"topk": 5},
    "moba": {"block_size": 4, "topk_blocks": 2},
    "mita": {"num_landmarks": 3, "topk": 4},
    "mita_route": {"num_landmarks": 3, "topk": 4},
    "linformer": {"proj_dim": 5},
    "nystrom": {"num_landmarks": 3, "conv_kernel": 3},
    "local": {"window": 3},
    "longformer": {"window": 2, "num_global": 2},
    "bigbird": {"block_size": 4, "num_global_blocks": 1, "num_random_blocks": 1},
    "sparse": {"block_size": 4, "num_summary": 1},
    "reformer": {"bucket_size": 4, "num_hashes": 2},
    "sinkhorn": {"block_size": 4},
}


def _builtins() -> list[str]:
    return [n for n in attention_zoo.names() if attention_zoo.get(n).plugin is None]


def _cases(names=None):
    """(name, params) for every dropping built-in and each of its backends that runs on the CPU with
    gradients (the default, and `reference` / `torch` where there is a choice)."""
    for name in names or _builtins():
        mechanism = attention_zoo.get(name)
        if not mechanism.attention_dropout:
            continue
        params = PARAMS.get(name, {})
        yield pytest.param(name, params, id=name)
        if "backend" in mechanism.params().to_dict():
            for backend in ("reference", "torch"):
                yield pytest.param(name, {**params, "backend": backend}, id=f"{name}-{backend}")


def _runtime(mechanism, params, heads: int, dim: int, length: int) -> dict[str, torch.Tensor]:
    made: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for factory in (mechanism.module_parameters, mechanism.module_buffers):
            if factory is not None:
                made.update(factory(params, heads, dim, length))
    return {k: t.double() for k, t in made.items()}


def _caller(name, params, batch=2, heads=2, length=24, dim=8, seed=0, identity_values=False):
    """(call(dropout_p, q=None, k=None, v=None), (q, k, v, mask)): the mechanism in fp64 on fixed
    inputs with trailing padding in the last row; `identity_values` makes v the identity (dim =
    length), so each output row is that query's (dropped) probability row over the keys."""
    mechanism = attention_zoo.get(name)
    validated = mechanism.params(**params)
    if identity_values:
        dim = length
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, length, dim, generator=gen, dtype=torch.float64) for _ in range(3))
    if identity_values:
        v = torch.eye(length, dtype=torch.float64).expand(batch, heads, length, length).clone()
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[-1, length - 5 :] = False
    runtime = _runtime(mechanism, validated, heads, dim, length)
    if "training" in mechanism.runtime_inputs:
        runtime["training"] = False

    def call(dropout_p: float, q_=None, k_=None, v_=None) -> torch.Tensor:
        q_ = q if q_ is None else q_
        k_ = k if k_ is None else k_
        v_ = v if v_ is None else v_
        if mechanism.shared_qk:
            k_ = q_
        return mechanism(q_, k_, v_, key_padding_mask=mask, params=validated, dropout_p=dropout_p, **runtime)

    return call, (q, k, v, mask)


def test_registry_records_which_mechanisms_drop_attention_probabilities():
    builtins = set(_builtins())
    assert {n for n in builtins if attention_zoo.get(n).attention_dropout} == DROPPING
    assert {n for n in builtins if not attention_zoo.get(n).attention_dropout} == NOT_DROPPING


def test_list_attentions_shows_the_flag():
    from click.testing import CliRunner

    from runners import cli

    result = CliRunner().invoke(cli.main, ["list", "attentions"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in _builtins():
        params_line = lines[lines.index(next(line for line in lines if line.startswith(f"{name} "))) + 1]
        expected = "attention dropout: yes" if name in DROPPING else "attention dropout: no"
        assert expected in params_line, params_line


@pytest.mark.parametrize("name,params", list(_cases()))
def test_zero_rate_is_the_exact_path(name, params):
    call, (q, k, v, mask) = _caller(name, params)
    mechanism = attention_zoo.get(name)
    runtime = _runtime(mechanism, mechanism.params(**params), 2, 8, 24)
    if "training" in mechanism.runtime_inputs:
        runtime["training"] = False
    plain = mechanism(q, q if mechanism.shared_qk else k, v, key_padding_mask=mask, params=params, **runtime)
    assert torch.equal(call(0.0), plain)


@pytest.mark.parametrize("name,params", list(_cases()))
def test_the_seed_fixes_the_draw(name, params):
    call, _ = _caller(name, params)
    torch.manual_seed(3)
    first = call(RATE)
    torch.manual_seed(3)
    again = call(RATE)
    fresh = call(RATE)  # the stream has moved on
    assert torch.equal(first, again)
    assert not torch.equal(first, fresh)
    assert not torch.allclose(first, call(0.0))


@pytest.mark.parametrize("name,params", list(_cases()))
def test_the_expected_output_is_the_exact_one(name, params):
    """Averaged over draws, the dropped output is the exact output (survivors scaled by 1/(1 - p)):
    every element within 6 standard errors of the mean."""
    call, _ = _caller(name, params, batch=1, length=16)
    exact = call(0.0)
    torch.manual_seed(0)
    draws = torch.stack([call(RATE) for _ in range(300)])
    mean, spread = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    z = (mean - exact).abs() / (spread + 1e-12)  # padded query rows included: the same law holds there
    assert z.max() < 6, (
        f"{name}{params}: the mean of 300 draws is {z.max():.1f} standard errors from the exact output"
    )


SINGLE_STAGE = [
    "full",
    "topk",
    "moba",
    "mita_route",
    "local",
    "longformer",
    "bigbird",
    "sparse",
    "synthesizer",
]


@pytest.mark.parametrize(
    "name,params",
    [
        *_cases(SINGLE_STAGE),
        pytest.param("reformer", {"bucket_size": 4, "num_hashes": 1}, id="reformer-1-hash"),
    ],
)
def test_each_probability_is_dropped_or_scaled(name, params):
    """With v = I the output row of a query is its probability row: in training every entry is either 0
    or the exact probability / (1 - p), padded keys stay 0, and about p of the entries are dropped."""
    call, (_, _, _, mask) = _caller(name, params, identity_values=True)
    valid_queries = mask[:, None, :, None].expand(-1, 2, -1, mask.shape[1])  # padded rows are unspecified
    probs = call(0.0)[valid_queries]
    torch.manual_seed(1)
    dropped = call(RATE)[valid_queries]
    positive = probs > 1e-12
    zeroed = dropped.abs() <= 1e-12
    scaled = (dropped - probs / (1 - RATE)).abs() <= 1e-9 * (1 + probs.abs())
    assert (zeroed | scaled)[positive].all(), (
        f"{name}{params}: entries neither dropped nor scaled by 1/(1 - p)"
    )
    assert zeroed[~positive].all(), f"{name}{params}: an entry of probability 0 became non-zero"
    count = int(positive.sum())
    fraction = float(zeroed[positive].float().mean())
    assert abs(fraction - RATE) < 5 * math.sqrt(RATE * (1 - RATE) / count), (
        f"{name}{params}: dropped {fraction:.3f} of {count} probabilities at p = {RATE}"
    )


@pytest.mark.parametrize("name,params", list(_cases()))
def test_gradients_match_finite_differences_under_fixed_masks(name, params):
    """The backward sees the forward's masks (the chunked paths draw them again): gradcheck of the
    dropped output with the seed fixed at every call."""
    call, (q, k, v, _) = _caller(name, params, batch=1, length=11, dim=4, seed=5)
    inputs = [t.clone().requires_grad_() for t in (q, k, v)]

    def seeded(q_, k_, v_):
        torch.manual_seed(7)
        return call(RATE, q_, k_, v_)

    assert torch.autograd.gradcheck(seeded, inputs, eps=1e-6, atol=1e-7, fast_mode=True)
    seeded(*inputs).sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in inputs[:1])


@pytest.mark.parametrize("name", ["topk", "moba"])
def test_flex_runs_the_torch_path_with_dropout(name):
    call_flex, (q, k, v, _) = _caller(name, {**PARAMS[name], "backend": "flex"})
    call_torch, _ = _caller(name, {**PARAMS[name], "backend": "torch"})
    q = q.clone().requires_grad_()  # FlexAttention has no CPU backward: the fallback must not need it
    torch.manual_seed(2)
    out = call_flex(RATE, q_=q)
    torch.manual_seed(2)
    assert torch.equal(out, call_torch(RATE, q_=q))


@pytest.mark.parametrize("name", ["mita", "mita_route"])
def test_triton_runs_the_torch_path_with_dropout(name):
    if not triton_usable(torch.device("cpu")):
        pytest.skip("needs triton with TRITON_INTERPRET=1")
    params = PARAMS[name]
    call_triton, (q, k, v, mask) = _caller(name, {**params, "backend": "triton"})
    call_torch, _ = _caller(name, {**params, "backend": "torch"})
    q32, k32, v32 = (t.float() for t in (q, k, v))
    torch.manual_seed(2)
    out = call_triton(RATE, q32, k32, v32)
    torch.manual_seed(2)
    assert torch.equal(out, call_torch(RATE, q32, k32, v32))
    triton_exact = call_triton(0.0, q32, k32, v32)  # without dropout the kernels run, close to torch
    assert torch.allclose(triton_exact, call_torch(0.0, q32, k32, v32), atol=1e-5)


@pytest.mark.parametrize("name", ["local", "longformer", "bigbird", "sparse"])
def test_flex_mask_form_runs_the_block_form_with_dropout(name, monkeypatch):
    call, _ = _caller(name, PARAMS[name])
    monkeypatch.setattr(_block_patterns, "PATH", "blocks")
    torch.manual_seed(4)
    blocks = call(RATE)
    monkeypatch.setattr(_block_patterns, "PATH", "flex")
    torch.manual_seed(4)
    assert torch.equal(call(RATE), blocks)


def _layers(name, rate, **kwargs):
    """Two layers with the same weights, with and without attention dropout."""
    params = PARAMS.get(name, {})
    torch.manual_seed(0)
    plain = attention_zoo.make(name, 16, 2, params=params, max_length=20, **kwargs)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dropping = attention_zoo.make(
            name, 16, 2, params=params, max_length=20, attention_dropout=rate, **kwargs
        )
    dropping.load_state_dict(plain.state_dict())
    return plain.double(), dropping.double()


@pytest.mark.parametrize("name", ["full", "mita", "local", "performer"])
def test_layer_drops_in_training_only_and_only_where_probabilities_exist(name):
    plain, dropping = _layers(name, RATE)
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 14:] = False
    for layer in (plain, dropping):
        layer.eval()
    assert torch.equal(dropping(x, key_padding_mask=mask), plain(x, key_padding_mask=mask))
    for layer in (plain, dropping):
        layer.train()
    torch.manual_seed(5)
    trained = dropping(x, key_padding_mask=mask)
    torch.manual_seed(5)
    reference = plain(x, key_padding_mask=mask)
    if name in DROPPING:
        assert not torch.allclose(trained, reference)
        torch.manual_seed(5)
        assert torch.equal(dropping(x, key_padding_mask=mask), trained)
    else:
        assert torch.equal(trained, reference)
        assert "(not applied: no attention probabilities)" in repr(dropping)


def test_a_rate_a_mechanism_cannot_apply_is_said_once_not_ignored_silently():
    with pytest.warns(UserWarning, match="'performer' forms no attention probabilities to drop"):
        attention_zoo.make("performer", 16, 2, attention_dropout=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attention_zoo.make("full", 16, 2, attention_dropout=0.1)
        attention_zoo.make("performer", 16, 2)


def test_bad_rates_are_one_line_errors():
    with pytest.raises(ValueError, match=r"attention_dropout must be in \[0, 1\); got 1.0"):
        attention_zoo.make("full", 16, 2, attention_dropout=1.0)
    q = k = v = torch.randn(1, 1, 4, 8)
    with pytest.raises(ValueError, match=r"topk_attention: dropout_p must be in \[0, 1\); got -0.1"):
        attention_zoo.functional.topk_attention(q, k, v, topk=2, dropout_p=-0.1)
    with pytest.raises(ValueError, match="'linear' applies no attention-probability dropout"):
        attention_zoo.get("linear")(q, k, v, dropout_p=0.1)
    preset = get_preset("listops", "tiny")
    with pytest.raises(ValueError, match=r"model.attention_dropout must be in \[0, 1\); got 1.5"):
        apply_overrides(preset, {"model.attention_dropout": "1.5"})


def test_model_config_reaches_every_block():
    preset = apply_overrides(get_preset("listops", "tiny"), {"model.attention_dropout": "0.2"})
    model = models.build(
        vocab_size=20, max_len=32, num_classes=3, dual_input=False, model=preset.model, attention="mita"
    )
    layers = [m for m in model.modules() if isinstance(m, attention_zoo.MultiHeadAttention)]
    assert layers and all(layer.attention_dropout == 0.2 for layer in layers)
    assert ModelConfig().attention_dropout == 0.0


def test_example_plugin_keeps_working_without_the_keyword(monkeypatch):
    examples = str(Path(__file__).resolve().parents[1] / "examples")
    monkeypatch.syspath_prepend(examples)
    saved = dict(registry._REGISTRY)
    try:
        attention_zoo.load_plugins(["windowed_landmarks"])
        assert not attention_zoo.get("windowed_landmarks").attention_dropout
        with pytest.warns(UserWarning, match="does not apply"):
            layer = attention_zoo.make("windowed_landmarks", 16, 2, attention_dropout=0.1)
        layer.train()
        layer(torch.randn(2, 9, 16)).sum().backward()
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)
        attention_zoo.plugins._LOADED.pop("windowed_landmarks", None)
        sys.modules.pop("windowed_landmarks", None)


def test_a_plugin_can_declare_dropout():
    from dataclasses import dataclass

    import torch.nn.functional as F

    @dataclass(frozen=True)
    class Params(attention_zoo.AttentionParams):
        pass

    def plugin_attention(q, k, v, *, key_padding_mask=None, dropout_p=0.0):
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)

    try:
        attention_zoo.register("dropping_probe", Params, summary="probe", attention_dropout=True)(
            plugin_attention
        )
        with pytest.raises(TypeError, match=r"runtime inputs \['dropout_p'\]"):
            attention_zoo.register("dropping_probe_2", Params, summary="probe", attention_dropout=True)(
                lambda q, k, v, *, key_padding_mask=None: q
            )
        _, dropping = _layers("dropping_probe", RATE)
        dropping.train()
        x = torch.randn(1, 20, 16, dtype=torch.float64)
        torch.manual_seed(0)
        assert not torch.equal(dropping(x), dropping.eval()(x))
    finally:
        registry._REGISTRY.pop("dropping_probe", None)
        registry._REGISTRY.pop("dropping_probe_2", None)


def test_attention_dropout_changes_training_and_repeats_under_the_seed(tmp_path, shared_data_dir):
    """A run with attention dropout repeats exactly under its seed and differs from the run without it
    (that a killed and resumed run with dropout ends bit-identically is checked with the other resume
    cases in tests/test_train.py)."""
    from runners.train import run

    from .test_train import FAST, _metrics, config

    data = shared_data_dir
    dropping = {**FAST, "train.eval_every": "4", "model.attention_dropout": "0.2"}
    a = run(config(data, tmp_path / "a", max_steps=8, overrides=dropping))
    b = run(config(data, tmp_path / "b", max_steps=8, overrides=dropping))
    assert _metrics(a) == _metrics(b)
    plain = run(
        config(data, tmp_path / "plain", max_steps=8, overrides={**dropping, "model.attention_dropout": "0"})
    )
    assert [h["train_loss"] for h in plain["history"]] != [h["train_loss"] for h in a["history"]]
