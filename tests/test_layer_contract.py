"""The output contract every mechanism is held to where it is called (`Mechanism.__call__`, which the
attention layer uses): shape [B, H, N, d_v], the inputs' dtype, finite where the inputs are finite.
A plugin that breaks it gets a one-line error naming it, not a silent reshape."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import attention_zoo
from attention_zoo import AttentionParams, plugins, registry
from attention_zoo.registry import OutputContractError
from runners import cli

NAME = "contract_probe"


@dataclass(frozen=True)
class ProbeParams(AttentionParams):
    """How the probe breaks the contract: "none" (softmax attention), "transpose" ([B, N, H, d]),
    "dtype" (fp16), "nan" (NaN everywhere), "tuple" (not a tensor)."""

    fault: str = "none"


def _probe(q, k, v, *, key_padding_mask=None, fault):
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if fault == "transpose":
        return out.transpose(1, 2)
    if fault == "dtype":
        return out.half()
    if fault == "nan":
        return out * float("nan")
    if fault == "tuple":
        return (out,)
    return out


@pytest.fixture
def probe():
    """The probe registered from this module, i.e. as a plugin (its registry entry names this module)."""
    attention_zoo.register(NAME, ProbeParams, summary="contract probe")(_probe)
    yield attention_zoo.get(NAME)
    registry._REGISTRY.pop(NAME, None)


def _layer(fault: str, dtype=torch.float32) -> attention_zoo.MultiHeadAttention:
    torch.manual_seed(0)
    return attention_zoo.make(NAME, 16, 2, params={"fault": fault}).to(dtype)


def test_probe_is_registered_as_a_plugin_of_this_module(probe):
    assert probe.plugin == __name__


def test_a_well_behaved_plugin_passes(probe):
    out = _layer("none")(torch.randn(2, 7, 16))
    assert out.shape == (2, 7, 16)


@pytest.mark.parametrize(
    "fault,message",
    [
        ("transpose", "returned shape (2, 7, 2, 8); the contract is [B, H, N, d_v] = (2, 2, 7, 8)"),
        ("dtype", "returned torch.float16 for torch.float32 inputs"),
        ("nan", "returned 224 non-finite values of 224 from finite inputs"),
        ("tuple", "returned tuple, not a tensor"),
    ],
)
def test_a_broken_contract_is_a_one_line_error_naming_the_plugin(probe, fault, message):
    with pytest.raises(OutputContractError) as caught:
        _layer(fault)(torch.randn(2, 7, 16))
    text = str(caught.value)
    assert text.startswith(f"attention {NAME!r} (plugin {__name__}) ") and message in text, text
    assert "\n" not in text
    assert isinstance(caught.value, ValueError)  # the CLI's one-line errors


def test_non_finite_inputs_pass_through(probe):
    """A diverging run (non-finite activations or learned inputs) is the trainer's to skip and count."""
    x = torch.randn(2, 7, 16)
    x[0, 3] = float("inf")
    out = _layer("nan")(x)
    assert not torch.isfinite(out).any()
    layer = attention_zoo.make("mita", 16, 2, params={"landmarks": "learned", "num_landmarks": 2, "topk": 2})
    with torch.no_grad():
        layer.mechanism_parameters["landmark_queries"].fill_(float("nan"))
    layer(torch.randn(2, 7, 16))  # NaN learned landmarks: no contract error


def test_autocast_dtype_is_accepted(probe):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = probe(*(torch.randn(1, 2, 5, 8) for _ in range(3)), params={"fault": "none"})
    assert out.dtype == torch.bfloat16


def test_finiteness_check_follows_its_setting(probe, monkeypatch):
    q = k = v = torch.randn(1, 2, 5, 8)
    monkeypatch.setattr(registry, "FINITE_CHECK", "never")
    assert torch.isnan(probe(q, k, v, params={"fault": "nan"})).all()
    monkeypatch.setattr(registry, "FINITE_CHECK", "always")
    with pytest.raises(OutputContractError):
        probe(q, k, v, params={"fault": "nan"})
    monkeypatch.setattr(registry, "FINITE_CHECK", "sometimes")
    with pytest.raises(ValueError, match="LRA_CHECK_FINITE='sometimes' is not one of auto, always, never"):
        probe(q, k, v, params={"fault": "nan"})


def test_check_mechanism_reports_the_contract_as_an_assertion(probe):
    from attention_zoo.testing import check_mechanism

    with pytest.raises(AssertionError, match="returned shape"):
        check_mechanism(NAME, params={"fault": "transpose"}, allow_n_by_n=True)


def test_all_finite_is_exact_where_the_sum_overflows():
    big = torch.full((4,), 3e38)
    assert registry.all_finite(big)
    assert not registry.all_finite(torch.tensor([1.0, float("nan")]))
    assert not registry.all_finite(torch.tensor([1.0, float("inf"), -float("inf")]))


PLUGIN_SOURCE = """
from dataclasses import dataclass

import torch.nn.functional as F

from attention_zoo import AttentionParams, register


@dataclass(frozen=True)
class Params(AttentionParams):
    pass


@register("heads_last", Params, summary="returns [B, N, H, d]")
def heads_last(q, k, v, *, key_padding_mask=None):
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
"""


def test_training_a_plugin_with_the_wrong_output_shape_stops_with_one_line(tmp_path, monkeypatch):
    """The run that used to train to `ok` on a silently reshaped output."""
    (tmp_path / "heads_last_plugin.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV_VAR, "1")
    saved = dict(registry._REGISTRY)
    try:
        result = CliRunner().invoke(
            cli.main,
            ["run", "--task", "listops", "--attention", "heads_last", "--plugin", "heads_last_plugin",
             "--preset", "tiny", "--max-steps", "2", "--run-dir", str(tmp_path / "run")],
        )  # fmt: skip
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)
        plugins._LOADED.pop("heads_last_plugin", None)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1, result.output
    assert "'heads_last' (plugin heads_last_plugin) returned shape" in result.output
