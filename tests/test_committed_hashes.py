"""The configuration hash identifies a run across versions: every committed record of the quick suite
(results/measured/cpu-quick), its configuration resolved today, gives the configuration and the hash
it was recorded with. A change that moves the configuration around must keep them, or `lra suite`
would take every finished run for another configuration and train it again."""

from __future__ import annotations

from pathlib import Path

import pytest

from results.records import load_records
from runners.train import RunConfig, resolve

QUICK = Path(__file__).resolve().parents[1] / "results" / "measured" / "cpu-quick"


def _records() -> list[dict]:
    records, problems = load_records(QUICK, kind="run")
    assert records and not problems
    return records


@pytest.mark.parametrize("record", _records(), ids=lambda record: record["run_id"])
def test_a_committed_record_keeps_its_configuration_and_hash(record, tmp_path):
    cfg = RunConfig(
        task=record["task"],
        attention=record["attention"],
        attn_params=record["attention_params"],
        preset=record["preset"],
        seed=record["seed"],
        device=record["config"]["device_type"],
        data_dir=str(tmp_path),  # no official files: generated data, as the suite had
        max_steps=record["config"]["preset"]["train"]["steps"],
    )
    resolved = resolve(cfg)
    recorded = {key: value for key, value in record["config"].items() if key != "cpu_numerics"}
    assert resolved.config_dict() == recorded
    assert resolved.config_hash == record["config_hash"]
    assert resolved.attention.label == record["attention_label"]
