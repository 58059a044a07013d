"""The task model: padding never changes a prediction, dropping padded tokens is exact, heads work."""

from __future__ import annotations

import pytest
import torch

import attention_zoo
from lra import models
from lra.presets import CPU_BUDGET, ModelConfig

CFG = ModelConfig(dim=32, layers=2, heads=2, mlp_dim=48, dropout=0.0, fp32_attention=False)  # fp64 throughout


def build(attention, **overrides):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**CFG.__dict__, **overrides})
    return (
        models.build(
            vocab_size=20,
            max_len=64,
            num_classes=3,
            dual_input=False,
            model=cfg,
            attention=attention,
            attn_params=CPU_BUDGET.get(attention, {}),
        )
        .double()
        .eval()
    )  # evaluation mode: sampling attentions (Skyformer) redraw at every training call


def scattered_tokens(seed=0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, 20, (4, 48), generator=gen)
    tokens[torch.rand(4, 48, generator=gen) < 0.6] = 0  # scattered padding, as black pixels
    tokens[:, 0] = 5
    return tokens


@pytest.mark.parametrize("attention", attention_zoo.names())
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_dropping_padded_tokens_is_exact(attention, pooling):
    model = build(attention, pooling=pooling)
    assert model.encoder.drop_padding == attention_zoo.get(attention).padding_invariant
    tokens = scattered_tokens()
    with_drop = model(tokens)
    model.encoder.drop_padding = False
    torch.testing.assert_close(with_drop, model(tokens), rtol=0, atol=1e-10)


def test_drop_padding_keeps_order_and_cuts_to_the_longest_row():
    x = torch.arange(12.0).view(2, 6, 1)
    valid = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    out, out_valid = models.drop_padding(x, valid)
    assert out.shape == (2, 3, 1)
    assert out[0, :, 0].tolist() == [0.0, 2.0, 5.0] and out[1, 0, 0] == 7.0
    assert out_valid.tolist() == [[True, True, True], [True, False, False]]


@pytest.mark.parametrize("attention", attention_zoo.names())
def test_trailing_padding_never_changes_predictions(attention):
    model = build(attention)
    tokens = torch.randint(1, 20, (3, 30), generator=torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(tokens, (0, 20))
    torch.testing.assert_close(model(tokens), model(padded), rtol=0, atol=1e-10)


def test_dual_classifier_is_symmetric_in_shape_and_shares_the_encoder():
    torch.manual_seed(0)
    model = models.build(
        vocab_size=20,
        max_len=64,
        num_classes=2,
        dual_input=True,
        model=CFG,
        attention="mita",
        attn_params=CPU_BUDGET["mita"],
    ).double()
    a = torch.randint(1, 20, (3, 40))
    b = torch.randint(1, 20, (3, 25))
    logits = model(a, b)
    assert logits.shape == (3, 2)
    # Each document is encoded as it would be alone: padding b to a's length changes nothing.
    torch.testing.assert_close(logits, model(a, torch.nn.functional.pad(b, (0, 15))), rtol=0, atol=1e-10)
    enc_a = model.encoder(a)
    features = torch.cat([enc_a, model.encoder(b), enc_a * model.encoder(b), enc_a - model.encoder(b)], -1)
    torch.testing.assert_close(logits, model.head(features), rtol=0, atol=1e-10)


def test_longer_input_than_the_position_table_is_a_clear_error():
    with pytest.raises(ValueError, match="exceeds the model's maximum length 64"):
        build("full")(torch.ones(1, 65, dtype=torch.long))


def test_sinusoidal_positions_match_the_formula():
    table = models.sinusoidal_positions(10, 8)
    pos, i = 7, 3
    assert table[pos, 2 * i] == pytest.approx(torch.sin(torch.tensor(pos / 10000 ** (2 * i / 8))).item())
    assert table[pos, 2 * i + 1] == pytest.approx(torch.cos(torch.tensor(pos / 10000 ** (2 * i / 8))).item())


@pytest.mark.parametrize("task", ["listops", "text", "retrieval", "image", "pathfinder", "pathx"])
def test_lra_preset_projections_have_no_bias_as_in_the_jax_models(task):
    from lra.presets import get_preset

    preset = get_preset(task, "lra")
    model = models.build(
        vocab_size=10, max_len=16, num_classes=2, dual_input=False, model=preset.model, attention="full"
    )
    projections = [m for name, m in model.named_modules() if name.endswith("attn.qkv")]
    assert projections and all(m.bias is None for m in projections)


def test_layer_passes_learned_and_fixed_inputs_sized_by_max_length_and_shares_qk():
    """The layer owns what a mechanism declares (sized by `max_length`) and ties keys to queries on request."""
    from dataclasses import dataclass

    from attention_zoo import registry

    seen = {}

    @dataclass(frozen=True)
    class Params(registry.AttentionParams):
        rank: int = 3

    def fn(q, k, v, *, key_padding_mask=None, rank, weights, features):
        seen.update(q=q, k=k, weights=weights, features=features)
        return v

    registry.register(
        "_layer_inputs_probe",
        Params,
        summary="probe",
        runtime_inputs=("weights", "features"),
        module_parameters=lambda p, h, d, n: {"weights": torch.zeros(h, n, p.rank)},
        module_buffers=lambda p, h, d, n: {"features": torch.ones(p.rank, d)},
        shared_qk=True,
    )(fn)
    try:
        layer = attention_zoo.make("_layer_inputs_probe", dim=8, num_heads=2, max_length=11)
        layer(torch.randn(2, 5, 8))
    finally:
        del registry._REGISTRY["_layer_inputs_probe"]
    assert seen["weights"].shape == (2, 11, 3) and seen["features"].shape == (3, 4)
    assert seen["k"] is seen["q"]
    state = layer.state_dict()
    assert "buffer_features" in state and "mechanism_parameters.weights" in state
    assert [name for name, _ in layer.named_parameters()].count("mechanism_parameters.weights") == 1
