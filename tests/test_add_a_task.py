"""A task added the way README "Add a task" says (its module, tests/toy_parity_task.py, and its entry
in the CPU presets) runs through every layer: loader, data identity, presets, `lra data` and
`lra run`; an unknown task is a one-line error with exit code 2 everywhere."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import attention_zoo
from lra import tasks
from lra.data import decode_example, describe
from lra.data.identity import data_identity
from lra.presets import CPU_TASKS, CpuTask, get_preset, preset_identity, preset_tasks, suite_tasks
from runners import cli

TOY_MODULE = "tests.toy_parity_task"


@pytest.fixture
def parity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tasks.TaskSpec]:
    """The parity task registered (its module imported) with its CPU presets entry, for one test."""
    monkeypatch.setenv("LRA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(CPU_TASKS, "parity", CpuTask(data={"source": "generated", "generator": "short"}))
    module = importlib.import_module(TOY_MODULE)
    try:
        yield module.SPEC
    finally:
        tasks.unregister_task("parity")
        sys.modules.pop(TOY_MODULE, None)


def test_the_registry_lists_the_new_task_after_lras_six_and_forgets_it_after(parity: tasks.TaskSpec) -> None:
    assert tasks.names()[-1] == "parity" and tasks.names()[:6] == [
        "listops",
        "text",
        "retrieval",
        "image",
        "pathfinder",
        "pathx",
    ]
    assert "parity" in tasks.generated_task_names()
    assert tasks.get("parity") is parity


def test_the_registry_is_back_to_lras_six_without_the_fixture() -> None:
    assert "parity" not in tasks.names()
    with pytest.raises(ValueError, match="unknown task 'parity'; valid tasks: listops"):
        tasks.get("parity")


def test_the_new_task_loads_renders_and_has_a_data_identity_and_presets(
    parity: tasks.TaskSpec, tmp_path
) -> None:
    preset = get_preset("parity", "tiny")
    assert preset.data.source == "generated" and preset.data.n_train == 2000
    assert preset_identity(preset)["task"] == "parity"
    data = preset.data
    assert describe("parity", data)["generated"]["params"] == {"length": 6}
    train = parity.load("train", data)
    assert len(train) == 2000 and train.seq_len == 6
    # The label is the parity of the 2-tokens, computed here independently of the generator.
    assert train.labels.tolist() == [int((row == 2).sum()) % 2 for row in train.inputs]
    assert set(decode_example("parity", train, 0)) <= {"a", "b"}
    identity = data_identity("parity", data)
    assert identity["source"] == "generated" and identity == data_identity("parity", data)
    reseeded = data_identity("parity", data.__class__(**{**data.__dict__, "gen_seed": 1}))
    assert reseeded["content"] != identity["content"]
    with pytest.raises(ValueError, match="preset 'lra' has no settings for task 'parity'"):
        get_preset("parity", "lra")
    # Not in the CPU presets' default suite unless its entry says so.
    assert suite_tasks("quick") == ["listops", "pathfinder"]


def test_a_cpu_presets_entry_puts_a_task_in_the_default_suite(
    parity: tasks.TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CPU_TASKS, "parity", replace(CPU_TASKS["parity"], in_default_suite=True))
    assert suite_tasks("tiny") == ["listops", "pathfinder", "parity"]
    assert suite_tasks("lra") == preset_tasks("lra") and "parity" not in suite_tasks("lra")


def test_lra_data_and_lra_run_take_the_new_task(parity: tasks.TaskSpec, tmp_path: Path) -> None:
    runner = CliRunner()
    info = runner.invoke(cli.main, ["data", "info", "parity", "--generate", "--split", "test"])
    assert info.exit_code == 0, info.output
    assert info.output.startswith("Parity (parity): Random sequences")
    run_dir = tmp_path / "run"
    result = runner.invoke(
        cli.main,
        ["run", "parity", "--attention", "full", "--max-steps", "2", "--run-dir", str(run_dir), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["task"] == "parity" and record["num_classes"] == 2
    assert record["task_title"] == "Parity" and record["task_order"] == 6
    assert record["attention_order"] == attention_zoo.names().index("full")
    tiny_data = get_preset("parity", "tiny").data
    assert record["data_source"] == tasks.get("parity").load("test", tiny_data).info["data_source"]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--task", "nosuch"],
        ["run", "nosuch"],
        ["data", "info", "nosuch"],
        ["data", "info", "--task", "nosuch"],
        ["data", "prepare", "nosuch"],
        ["data", "generate", "--task", "nosuch", "--out", "unused"],
        ["list", "presets", "--task", "nosuch"],
    ],
)
def test_an_unknown_task_is_a_one_line_error_with_exit_code_2(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, result.output
    assert (
        "unknown task 'nosuch'; valid tasks: listops, text, retrieval, image, pathfinder, pathx"
        in result.output
    )
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_task_without_a_generator_is_a_one_line_error_for_lra_data_generate(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.main, ["data", "generate", "--task", "text", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: task 'text' has no offline generator; generated tasks: listops, pathfinder, pathx"
    )
