"""Reading a results folder never imports code: plugins that records name run only when named.

The plugin here leaves a marker file when it is imported, so "was it imported" is a file on disk, not
a question about this process's module table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from attention_zoo import plugins, registry
from runners import cli

REPO = Path(__file__).resolve().parents[1]
MODULE = "recorded_attn"
SOURCE = f"""
from pathlib import Path

import torch

from attention_zoo import AttentionParams, register

Path(__file__).with_name("imported.marker").write_text("imported")


@register("{MODULE}", AttentionParams, summary="mean of the values (a recorded plugin)")
def recorded_attn(q, k, v, *, key_padding_mask=None):
    return v.mean(dim=2, keepdim=True).expand_as(q).contiguous()
"""


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A working directory holding the plugin, as a downloaded results folder's sender had it."""
    work = tmp_path / "work"
    work.mkdir()
    (work / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.chdir(work)
    monkeypatch.delenv(plugins.TRUST_RECORDED_ENV_VAR, raising=False)  # restored after the test
    yield work
    for name, mechanism in list(registry._REGISTRY.items()):
        if mechanism.plugin == MODULE:
            del registry._REGISTRY[name]
    plugins._LOADED.pop(MODULE, None)
    sys.modules.pop(MODULE, None)


ENTRY = {"module": MODULE, "mechanisms": [MODULE], "distribution": None, "version": None}


def write_suite_json(out: Path) -> None:
    out.mkdir(parents=True)
    plan = {
        "suite": {"preset": "tiny"},
        "written_at": "2026-01-01T00:00:00+00:00",
        "plugins": [ENTRY],
        "runs": [],
    }
    (out / "suite.json").write_text(json.dumps(plan))


def write_run_dir(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    run_config = {"task": "listops", "attention": MODULE, "preset": "tiny", "plugins": [ENTRY]}
    config = {"run_config": run_config, "task": "listops", "attention": MODULE, "attention_params": {},
              "preset": {}, "seed": 0, "plugins": [MODULE]}  # fmt: skip
    (run_dir / "config.json").write_text(json.dumps(config))


def refused(result, source: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0] == (
        f"Error: {source} uses the attention plugin '{MODULE}' ({MODULE}), which is not imported: records "
        f"never run code by themselves; pass --plugin {MODULE} (or set LRA_PLUGINS={MODULE}) to import it, "
        "or --trust-recorded-plugins to import the plugins records name"
    )


def test_a_suite_json_naming_a_plugin_imports_nothing_until_the_user_names_it(work, tmp_path):
    out = tmp_path / "out"
    write_suite_json(out)
    dry_run = ["suite", "--out", str(out), "--preset", "tiny", "--tasks", "listops", "--dry-run"]
    refused(CliRunner().invoke(cli.main, dry_run), f"the suite in {out} (its suite.json)")
    assert not (work / "imported.marker").exists()
    # Asking for built-in attentions only does not need it.
    result = CliRunner().invoke(cli.main, [*dry_run, "--attentions", "full"])
    assert result.exit_code == 0, result.output
    assert not (work / "imported.marker").exists()
    # Named, it is imported and planned.
    result = CliRunner().invoke(cli.main, [*dry_run, "--plugin", MODULE])
    assert result.exit_code == 0, result.output
    assert f"listops/{MODULE}/0" in result.output and (work / "imported.marker").exists()


def test_trusting_the_records_imports_what_they_name(work, tmp_path):
    out = tmp_path / "out"
    write_suite_json(out)
    dry_run = ["suite", "--out", str(out), "--preset", "tiny", "--tasks", "listops", "--dry-run"]
    result = CliRunner().invoke(cli.main, [*dry_run, "--trust-recorded-plugins"])
    assert result.exit_code == 0, result.output
    assert f"listops/{MODULE}/0" in result.output and (work / "imported.marker").exists()


def test_a_run_config_naming_a_plugin_imports_nothing_on_resume(work, tmp_path):
    run_dir = tmp_path / "run"
    write_run_dir(run_dir)
    args = ["run", "--attention", "full", "--run-dir", str(run_dir), "--resume", "--max-steps", "2"]
    refused(CliRunner().invoke(cli.main, args), f"the run in {run_dir}")
    assert not (work / "imported.marker").exists()


def test_the_runner_process_imports_no_plugin_its_config_file_names(work, tmp_path):
    path = tmp_path / "run_config.json"
    path.write_text(
        json.dumps(
            {"task": "listops", "attention": MODULE, "run_dir": str(tmp_path / "r"), "plugins": [ENTRY]}
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "runners.train", str(path)], cwd=work, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert f"Error: this run configuration uses the attention plugin '{MODULE}'" in done.stderr
    assert not (work / "imported.marker").exists()
