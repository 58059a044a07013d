"""An attention spec travels one way: parsed once on the command line, resolved once per run into one
typed `AttentionSpec` (runners/specs.py) that carries its validated parameters, its label and its
plugin down to the record; the layer binds the parameters once when the model is built, and a
forward neither validates nor converts them again."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import attention_zoo
from attention_zoo.registry import AttentionParams, Mechanism
from results.records import read_record
from runners import cli
from runners.specs import AttentionSpec, attention_spec
from runners.train import config as train_config
from runners.train import resolve, run, runner

from .test_train import config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lra_data"))


def counted(monkeypatch, owner, name: str) -> list[int]:
    """Count the calls of `owner.name` (the original still runs)."""
    calls: list[int] = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_attention_spec_is_validated_once_with_its_label_and_slug():
    spec = attention_spec("mita", {"topk": "8", "num_landmarks": 4})
    assert isinstance(spec, AttentionSpec) and spec.name == "mita" and spec.plugin is None
    assert spec.params == attention_zoo.get("mita").params(topk=8, num_landmarks=4)
    assert spec.label == "mita(num_landmarks=4,topk=8)" and spec.slug == "mita-num_landmarks=4-topk=8"
    with pytest.raises(ValueError, match="has no parameter 'topkk'"):
        attention_spec("mita", {"topkk": "8"})


def test_lra_run_resolves_its_run_once_and_labels_its_attention_once(data_dir, tmp_path, monkeypatch):
    import runners.train

    resolutions = counted(monkeypatch, train_config, "resolve")
    for module in (runners.train, runner):  # where `lra run` and `run` find it
        monkeypatch.setattr(module, "resolve", train_config.resolve)
    labels = counted(monkeypatch, Mechanism, "label")
    args = ["run", "listops", "--attention", "mita(num_landmarks=8,topk=8)", "--max-steps", "2", "--quiet"]
    args += ["--data-dir", data_dir, "--run-dir", str(tmp_path / "run")]
    args += [
        arg
        for key, value in config(data_dir, tmp_path).overrides.items()
        for arg in ("--set", f"{key}={value}")
    ]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert len(resolutions) == 1
    assert len(labels) == 1
    record = read_record(tmp_path / "run" / "result.json")
    assert record["attention_label"] == "mita(num_landmarks=8,topk=8)"
    assert record["run_id"] == "listops/mita(num_landmarks=8,topk=8)/0"


def test_a_library_run_carries_the_resolved_spec_to_its_record(data_dir, tmp_path):
    r = resolve(config(data_dir, tmp_path / "run", max_steps=2))
    record = run(r)
    assert record["attention"] == r.attention.name and record["attention_label"] == r.attention.label
    assert record["attention_params"] == r.attention.params.to_dict()
    assert record["plugin"] is None and r.plugins == ()


@pytest.mark.parametrize("name, params", [("full", {}), ("mita", {"num_landmarks": 4, "topk": 4})])
def test_a_forward_neither_validates_nor_converts_the_parameters(name, params, monkeypatch):
    layer = attention_zoo.make(name, 16, 2, params=params)
    validations = counted(monkeypatch, Mechanism, "params")
    conversions = counted(monkeypatch, AttentionParams, "to_dict")
    x = torch.randn(2, 9, 16)
    for _ in range(3):
        layer(x)
    assert validations == [] and conversions == []
    assert layer.attend.params is layer.params


def test_assigning_the_layers_parameters_binds_them():
    layer = attention_zoo.make("mita", 16, 2, params={"num_landmarks": 4, "topk": 4})
    x = torch.randn(1, 9, 16)
    other = attention_zoo.get("mita").params(num_landmarks=4, topk=2)
    layer.params = other
    assert layer.attend.params is other and layer.attend.keywords["topk"] == 2
    reference = attention_zoo.make("mita", 16, 2, params=other)
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x), reference(x))
    with pytest.raises(ValueError, match="expects MitaParams"):
        layer.params = attention_zoo.get("full").params()


def _tiny_model(attn_params):
    from lra import models
    from lra.presets import ModelConfig

    cfg = ModelConfig(dim=16, heads=2, mlp_dim=32, layers=3)
    return models.build(
        vocab_size=11,
        max_len=12,
        num_classes=3,
        dual_input=False,
        model=cfg,
        attention="mita",
        attn_params=attn_params,
    )


def test_a_model_build_validates_its_parameters_once_and_its_forwards_never(monkeypatch):
    """A resolved spec's dataclass reaches every layer as it is; a mapping is validated once per build,
    not once per layer; two forwards validate, check and convert nothing."""
    mechanism = attention_zoo.get("mita")
    resolutions = counted(monkeypatch, train_config, "resolve")
    validations = counted(monkeypatch, Mechanism, "params")
    checks = counted(monkeypatch, mechanism.params_cls, "check")
    spec = attention_spec("mita", {"num_landmarks": "4", "topk": "4"})
    assert (len(validations), len(checks)) == (1, 1)

    model = _tiny_model(spec.params)
    layers = [m for m in model.modules() if isinstance(m, attention_zoo.MultiHeadAttention)]
    assert len(layers) == 3 and all(layer.params is spec.params for layer in layers)
    assert (len(validations), len(checks)) == (1, 1)

    conversions = counted(monkeypatch, AttentionParams, "to_dict")
    tokens = torch.randint(1, 11, (2, 12))
    tokens[1, 7:] = 0
    for _ in range(2):
        model(tokens)
    assert (len(validations), len(checks), len(conversions)) == (1, 1, 0)

    from_mapping = _tiny_model({"num_landmarks": 4, "topk": 4})
    assert (len(validations), len(checks)) == (2, 2)
    assert all(
        m.params == spec.params
        for m in from_mapping.modules()
        if isinstance(m, attention_zoo.MultiHeadAttention)
    )
    assert resolutions == []
