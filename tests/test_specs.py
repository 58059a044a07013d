"""The command-line grammar of attention specs, --attn-param and seeds (runners/specs.py)."""

from __future__ import annotations

import pytest

from runners.specs import (
    check_attn_params,
    parse_attn_params,
    parse_key_values,
    parse_seeds,
    parse_spec,
    parse_specs,
    split_specs,
)


def test_parse_spec_and_split_specs():
    assert parse_spec("mita(num_landmarks=64, topk=64)") == (
        "mita",
        {"num_landmarks": "64", "topk": "64"},
    )
    assert parse_spec("full") == ("full", {})
    with pytest.raises(ValueError, match="malformed attention"):
        parse_spec("mita(topk")
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("mita(64)")
    assert split_specs("full, mita(num_landmarks=64,topk=64),agent") == [
        "full",
        "mita(num_landmarks=64,topk=64)",
        "agent",
    ]
    assert split_specs("") == []


def test_attn_params_name_their_attention_unless_one_is_named():
    assert parse_attn_params(["mita.topk=3", "agent.num_agents=5", "mita.topk=7"], ["mita", "agent"]) == {
        "mita": {"topk": "7"},
        "agent": {"num_agents": "5"},
    }
    assert parse_attn_params(["topk=3", "mita.num_landmarks=5"], ["mita"]) == {
        "mita": {"topk": "3", "num_landmarks": "5"}
    }
    with pytest.raises(ValueError, match=r"expects NAME\.KEY=VALUE .* ambiguous"):
        parse_attn_params(["topk=3"], ["mita", "agent"])
    with pytest.raises(ValueError, match=r"expects NAME\.KEY=VALUE"):
        parse_attn_params(["topk=3"], [])
    for bad in ("topk", "mita.=3", ".topk=3", "=3"):
        with pytest.raises(ValueError, match=r"expects \[NAME\.\]KEY=VALUE"):
            parse_attn_params([bad], ["mita"])


def test_specs_take_attn_params_under_their_own_values():
    specs = parse_specs(["mita(topk=8)", "full", "mita"], {"mita": {"topk": "2", "num_landmarks": "4"}})
    assert specs == [
        ("mita", {"topk": "8", "num_landmarks": "4"}),
        ("full", {}),
        ("mita", {"topk": "2", "num_landmarks": "4"}),
    ]
    with pytest.raises(ValueError, match="unknown attention 'nope'"):
        parse_specs(["nope"])
    with pytest.raises(
        ValueError, match=r"names attention 'agent', which is not among the attentions run \(mita\)"
    ):
        check_attn_params({"agent": {"num_agents": "3"}}, ["mita"])


def test_key_values_and_seeds():
    assert parse_key_values(["model.layers=3", " train.lr = 1e-3 "], "--set") == {
        "model.layers": "3",
        "train.lr": "1e-3",
    }
    with pytest.raises(ValueError, match="--set expects key=value"):
        parse_key_values(["model.layers"], "--set")
    assert parse_seeds("0-2,7,1") == (0, 1, 2, 7)
    assert parse_seeds("5") == (5,)
    with pytest.raises(ValueError, match="--seeds expects integers"):
        parse_seeds("a")
    with pytest.raises(ValueError, match="--seeds is empty"):
        parse_seeds(" , ")
