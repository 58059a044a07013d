"""Model options the sources need: pooling over the padded frame, first-token pooling, LRA's dual
head, the sources' initialisations, LayerNorm epsilon and GELU form."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from lra import models
from lra.presets import ModelConfig, get_preset

CFG = ModelConfig(dim=32, layers=2, heads=2, mlp_dim=48, dropout=0.0, fp32_attention=False)


def build(dual: bool = False, vocab: int = 20, max_len: int = 64, **overrides):
    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, **overrides)
    model = models.build(
        vocab_size=vocab, max_len=max_len, num_classes=3, dual_input=dual, model=cfg, attention="full"
    )
    return model.double().eval()


def padded_tokens() -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(1, 20, (3, 40), generator=gen)
    for row, length in enumerate((40, 25, 9)):
        tokens[row, length:] = 0
    tokens[1, 5] = 0  # and one inside, as a black pixel
    return tokens


def token_outputs(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The encoder's final-LayerNorm output at every input position (padding not dropped)."""
    model.encoder.drop_padding = False
    seen = {}
    handle = model.encoder.norm.register_forward_hook(lambda m, i, out: seen.update(out=out))
    model(tokens)
    handle.remove()
    model.encoder.drop_padding = True
    return seen["out"]


def test_mean_all_is_the_lineages_mean_over_the_zero_padded_frame():
    """mlpen/Nystromformer: X = norm(X) * mask (model.py), then X.mean(dim=1) over the whole padded
    input (model_wrapper.py); the input is padded to the frame (ListOps: 2,000 + 48 zeros)."""
    frame = 48
    model = build(pooling="mean_all", padded_length=frame, max_len=40)
    tokens = padded_tokens()
    mask = (tokens != 0).double()
    outputs = token_outputs(model, tokens) * mask[:, :, None]
    framed = F.pad(outputs, (0, 0, 0, frame - tokens.shape[1]))  # the lineage's appended zeros
    expected = model.head(framed.mean(dim=1))
    torch.testing.assert_close(model(tokens), expected, rtol=0, atol=1e-12)


def test_mean_all_is_not_padding_invariant_but_mean_is():
    """`mean_all` scales the valid-token mean by the valid fraction of the frame (by design, as in the
    lineage); the project's `mean` is the valid-token mean whatever the frame."""
    tokens = padded_tokens()
    pooled = {}
    for pooling, frame in (("mean", 0), ("mean_all", 48), ("mean_all", 96)):
        model = build(pooling=pooling, padded_length=frame, max_len=40)
        pooled[(pooling, frame)] = model.encoder(tokens)
    valid = (tokens != 0).sum(dim=1, keepdim=True).double()
    for frame in (48, 96):
        torch.testing.assert_close(pooled[("mean_all", frame)], pooled[("mean", 0)] * valid / frame)
    assert not torch.allclose(pooled[("mean_all", 48)], pooled[("mean_all", 96)])


def test_mean_all_divides_by_the_data_length_without_a_frame_and_refuses_a_short_frame():
    tokens = padded_tokens()
    model = build(pooling="mean_all", max_len=40)
    mean = build(pooling="mean", max_len=40).encoder(tokens)
    valid = (tokens != 0).sum(dim=1, keepdim=True).double()
    torch.testing.assert_close(model.encoder(tokens), mean * valid / 40)
    with pytest.raises(ValueError, match="model.padded_length=32 is shorter than the data's 64 tokens"):
        build(pooling="mean_all", padded_length=32)


def test_first_pooling_reads_the_first_token_without_a_cls_vector():
    model = build(pooling="first")
    assert model.encoder.cls is None and model.encoder.pos.shape[0] == 64
    tokens = padded_tokens()
    first = token_outputs(model, tokens)[:, 0]
    torch.testing.assert_close(model(tokens), model.head(first), rtol=0, atol=1e-12)
    cls = build(pooling="cls")
    assert cls.encoder.cls is not None and cls.encoder.pos.shape[0] == 65


def test_lra_dual_head_concatenates_into_two_hidden_layers():
    """LRA's classifier_head_dual with interaction=None: [e1, e2] -> Dense(mlp) -> relu ->
    Dense(mlp // 2) -> relu -> Dense(classes); the lineage's: [e1, e2, e1 e2, e1 - e2] -> one layer."""
    model = build(dual=True, dual_head="concat")
    shapes = [tuple(m.weight.shape) for m in model.head if isinstance(m, torch.nn.Linear)]
    assert shapes == [(48, 64), (24, 48), (3, 24)]
    assert [type(m) for m in model.head] == [
        torch.nn.Linear,
        torch.nn.ReLU,
        torch.nn.Linear,
        torch.nn.ReLU,
        torch.nn.Linear,
    ]
    a, b = padded_tokens(), padded_tokens().flip(0)
    e1, e2 = model.encoder(a), model.encoder(b)
    torch.testing.assert_close(model(a, b), model.head(torch.cat([e1, e2], dim=-1)), rtol=0, atol=1e-12)
    nli = build(dual=True)
    assert [tuple(m.weight.shape) for m in nli.head if isinstance(m, torch.nn.Linear)] == [(48, 128), (3, 48)]


def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std())


def test_nystromformer_init_draws_the_token_embedding_at_std_002():
    torch_init = build(vocab=512, dim=64, init="torch")
    lineage = build(vocab=512, dim=64, init="nystromformer")
    assert _std(lineage.encoder.embed.weight) == pytest.approx(0.02, rel=0.05)
    assert _std(torch_init.encoder.embed.weight) == pytest.approx(1.0, rel=0.05)
    # Everything else keeps torch's initialisation: Kaiming-uniform linear layers, bound 1/sqrt(fan_in).
    qkv = lineage.encoder.blocks[0].attn.qkv.weight
    assert float(qkv.detach().abs().max()) <= 1 / 64**0.5


def test_lra_init_follows_the_flax_initialisers():
    dim, qkv_dim, mlp = 256, 128, 512
    model = build(vocab=300, dim=dim, qkv_dim=qkv_dim, mlp_dim=mlp, heads=4, init="lra")
    encoder = model.encoder
    assert _std(encoder.embed.weight) == pytest.approx(1.0, rel=0.05)  # Embed normal(stddev=1.0)
    block = encoder.blocks[0]
    for part in block.attn.qkv.weight.chunk(3, dim=0):  # xavier_uniform, fans (dim, qkv_dim) each
        bound = (6 / (dim + qkv_dim)) ** 0.5
        assert float(part.detach().abs().max()) <= bound and _std(part) == pytest.approx(
            bound / 3**0.5, rel=0.05
        )
    proj = block.attn.proj
    assert _std(proj.weight) == pytest.approx((2 / (dim + qkv_dim)) ** 0.5, rel=0.05)
    assert float(proj.bias.detach().abs().max()) == 0.0  # LRA's output projection has no bias
    first, second = (m for m in block.mlp if isinstance(m, torch.nn.Linear))
    assert _std(first.weight) == pytest.approx((2 / (dim + mlp)) ** 0.5, rel=0.05)
    assert 0 < _std(first.bias) < 1e-5 and 0 < _std(second.bias) < 1e-5  # normal(stddev=1e-6)
    hidden, out = (m for m in model.head if isinstance(m, torch.nn.Linear))
    # LeCun normal: variance 1 / fan_in, truncated at two standard deviations of the underlying normal.
    assert _std(hidden.weight) == pytest.approx(dim**-0.5, rel=0.05)
    assert float(hidden.weight.detach().abs().max()) <= 2 * dim**-0.5 / 0.87962566103423978
    assert float(hidden.bias.detach().abs().max()) == 0.0 and float(out.bias.detach().abs().max()) == 0.0


def test_layer_norm_epsilon_and_gelu_form_follow_the_config():
    model = build(layer_norm_eps=1e-6, gelu="tanh")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)
    gelus = [m for m in model.modules() if isinstance(m, torch.nn.GELU)]
    assert gelus and all(m.approximate == "tanh" for m in gelus)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    tanh_form = 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))  # jax.nn.gelu
    torch.testing.assert_close(gelus[0](x), tanh_form)
    default = build()
    assert all(m.eps == 1e-5 for m in default.modules() if isinstance(m, torch.nn.LayerNorm))


@pytest.mark.parametrize("task", ["listops", "text", "retrieval", "image", "pathfinder", "pathx"])
@pytest.mark.parametrize("name", ["pytorch", "lra"])
def test_source_presets_build_and_run(task, name):
    cfg = get_preset(task, name).model
    if cfg.padded_length:
        cfg = dataclasses.replace(cfg, padded_length=32)
    model = models.build(
        vocab_size=20, max_len=32, num_classes=2, dual_input=task == "retrieval", model=cfg, attention="full"
    ).eval()
    tokens = torch.randint(1, 20, (2, 32))
    out = model(tokens, tokens) if task == "retrieval" else model(tokens)
    assert out.shape == (2, 2) and torch.isfinite(out).all()
