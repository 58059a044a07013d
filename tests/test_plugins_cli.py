"""Attention plugins through the command line: `--plugin`, entry points, the suite's child runs, resume,
`lra swap`, what records and tables say, and the one-line errors.

The example plugin (examples/windowed_landmarks.py) is copied into a temporary working directory, as a
user's own file would be; `forget` drops it from this process, as a new process would not have it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from attention_zoo import plugins, registry
from results import store
from runners import cli

from .test_plugins import PLUGIN_SOURCE, restore_registry, write_distribution, write_plugin  # noqa: F401

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "windowed_landmarks.py"
PLUGIN = "windowed_landmarks"
# Two short runs of one task on small generated sets (the sizes of tests/tiny_suite.py, so that one
# data folder of the pytest process, `shared_data_dir`, serves both): the example plugin against full
# attention.
SIZES = ("--set", "data.n_train=96", "--set", "data.n_val=32", "--set", "data.n_test=32")
TINY = ("--preset", "tiny", "--tasks", "listops", "--max-steps", "4", "--set", "train.eval_every=2", *SIZES)


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


def forget(module: str) -> None:
    """Unload a plugin from this process: its mechanisms, its record and its module."""
    for name, mechanism in list(registry._REGISTRY.items()):
        if mechanism.plugin == module:
            del registry._REGISTRY[name]
    plugins._LOADED.pop(module, None)
    sys.modules.pop(module, None)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A working directory holding the example plugin file, as a user's own would."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLE, work / f"{PLUGIN}.py")
    monkeypatch.chdir(work)
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV_VAR, "1")  # the environment's entry points stay out
    return work


def test_plugin_option_loads_the_example_and_marks_it_in_the_list(plugin_dir):
    result = invoke("list", "attentions", "--plugin", PLUGIN)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith(PLUGIN))
    assert line.endswith(f"[plugin: {PLUGIN}]")
    assert "[plugin:" not in next(line for line in result.output.splitlines() if line.startswith("full "))
    (info,) = plugins.loaded_plugins()
    assert info.module == PLUGIN and info.mechanisms == (PLUGIN,) and info.loaded_via == "explicit"


def test_entry_point_of_an_installed_distribution_loads_for_every_command(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE, site / f"{PLUGIN}.py")
    write_distribution(site, "windowed-attn", "0.3.1", {PLUGIN: PLUGIN})
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV_VAR, raising=False)
    result = invoke("list", "attentions")
    assert result.exit_code == 0, result.output
    assert f"[plugin: {PLUGIN}]" in result.output
    (info,) = [p for p in plugins.loaded_plugins() if p.module == PLUGIN]
    assert (info.loaded_via, info.distribution, info.version) == ("entry point", "windowed-attn", "0.3.1")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "Error: attention plugin 'absent_attn' not found: no module 'absent_attn' on sys.path"),
        (
            "raise RuntimeError('no GPU here')\n",
            "Error: attention plugin 'absent_attn' failed to import: RuntimeError: no GPU here",
        ),
        (PLUGIN_SOURCE.format(name="full"), "Error: attention plugin 'absent_attn': "),
    ],
    ids=["missing", "import-error", "clash-with-builtin"],
)
def test_plugin_errors_are_one_line_usage_errors(plugin_dir, source, message):
    if source is not None:
        write_plugin(plugin_dir, "absent_attn", source)
    for args in (("list", "attentions", "--plugin", "absent_attn"), ("run", "--plugin", "absent_attn")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(message) and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output
    if source is not None and "full" in source:  # names both sides of the clash
        assert "'full'" in result.output and "plugin absent_attn" in result.output
    assert "full" in registry._REGISTRY and registry._REGISTRY["full"].plugin is None


def test_lra_plugins_variable_errors_are_one_line_too(plugin_dir, monkeypatch):
    monkeypatch.setenv(plugins.ENV_VAR, "absent_attn")
    result = invoke("list", "attentions")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: attention plugin 'absent_attn' (from LRA_PLUGINS) not found")


def test_plugin_registering_nothing_is_a_warning_line(plugin_dir):
    write_plugin(plugin_dir, "empty_attn", "VALUE = 1\n")
    result = invoke("list", "attentions", "--plugin", "empty_attn")
    assert result.exit_code == 0
    assert "warning: attention plugin 'empty_attn' registered no attention mechanism" in result.output


@pytest.mark.e2e
def test_suite_with_a_plugin_children_resume_swap_and_tables(
    plugin_dir, tmp_path, monkeypatch, shared_data_dir
):
    out, data = tmp_path / "out", shared_data_dir
    suite = ("suite", "--out", str(out), "--data-dir", str(data), *TINY, "--attentions", f"full,{PLUGIN}",
             "--jobs", "2")  # fmt: skip
    result = invoke(*suite, "--plugin", PLUGIN)
    assert result.exit_code == 0, result.output
    # The suite's child processes trained the plugin's attention: they imported it themselves.
    runs = store.load(out).runs.set_index("attention")
    assert set(runs["status"]) == {"ok"} and list(runs.loc[PLUGIN, ["steps"]]) == [4]
    source_sha = plugins.loaded_plugins()[0].source_sha256
    assert runs.loc[PLUGIN, "plugin"] == PLUGIN and runs.loc[PLUGIN, "plugin_sha256"] == source_sha
    assert pd.isna(runs.loc[PLUGIN, "plugin_distribution"])
    assert pd.isna(runs.loc["full", "plugin"])
    run_dir = Path(runs.loc[PLUGIN, "path"]).parent
    # Its configuration names the plugin: the module in the hashed part, the provenance in run_config.
    config = json.loads((run_dir / "config.json").read_text())
    assert config["plugins"] == [PLUGIN]
    assert [p["module"] for p in config["run_config"]["plugins"]] == [PLUGIN]
    assert config["run_config"]["plugins"][0]["source_sha256"] == source_sha
    assert "plugins" not in json.loads((Path(runs.loc["full", "path"]).parent / "config.json").read_text())
    # The tables mark it.
    wide = pd.read_csv(out / "leaderboard.csv").set_index("attention_label")
    assert wide.loc[PLUGIN, "plugin"] == PLUGIN and pd.isna(wide.loc["full", "plugin"])
    assert f"| {PLUGIN} (plugin: {PLUGIN})" in (out / "leaderboard.md").read_text()
    assert f"{PLUGIN} (plugin: {PLUGIN})" in (out / "frontier.md").read_text()
    assert "§" not in (out / "leaderboard.md").read_text().split("Data:")[0]  # not another configuration

    # A new process: records never import code. Without --plugin the re-run suite stops with one line
    # naming the plugin and how to allow it; named, or with the records trusted, the suite, a resume
    # and lra swap go on.
    monkeypatch.delenv(plugins.TRUST_RECORDED_ENV_VAR, raising=False)  # restored after the test
    forget(PLUGIN)
    refused = invoke(*suite)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert f"uses the attention plugin '{PLUGIN}' ({PLUGIN}), which is not imported" in refused.output
    assert f"--plugin {PLUGIN}" in refused.output and "--trust-recorded-plugins" in refused.output
    assert PLUGIN not in sys.modules
    again = invoke(*suite, "--plugin", PLUGIN)
    assert again.exit_code == 0 and "2 skipped" in again.output, again.output
    forget(PLUGIN)
    resume = (
        "run", "--task", "listops", "--attention", PLUGIN, "--preset", "tiny", "--max-steps", "4",
        "--set", "train.eval_every=2", *SIZES, "--data-dir", str(data), "--run-dir", str(run_dir), "--resume",
        "--quiet",
    )  # fmt: skip
    resumed = invoke(*resume, "--trust-recorded-plugins")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.startswith(f"listops / {PLUGIN} / seed 0: ok")
    forget(PLUGIN)
    swapped = invoke(
        "swap",
        "--run",
        str(run_dir),
        "--attention",
        "full",
        "--limit",
        "8",
        "--out",
        str(tmp_path / "experiments"),
        "--quiet",
    )
    assert swapped.exit_code == 0, swapped.output  # trusted: the flag of the resume above holds here
    records = [json.loads(p.read_text()) for p in (tmp_path / "experiments").rglob("*.json")]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert {r["train_attention"] for r in evals} == {PLUGIN}
    assert {(r["attention"], r["plugin"]) for r in evals} >= {(PLUGIN, PLUGIN), ("full", None)}

    # An edited plugin: same configuration hash (module names only), so the run resumes, with a warning.
    forget(PLUGIN)
    with open(plugin_dir / f"{PLUGIN}.py", "a") as fh:
        fh.write("# edited\n")
    edited = invoke(*resume)
    assert edited.exit_code == 0, edited.output
    assert edited.output.startswith(
        f"warning: attention plugin '{PLUGIN}' changed since the run in {run_dir} was recorded"
    )

    # Missing at resume: stops, naming the module to install.
    forget(PLUGIN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sys.path[:] = [p for p in sys.path if p not in ("", str(plugin_dir))]
    missing = invoke(*resume)
    assert missing.exit_code == 2 and missing.output.count("\n") == 1, missing.output
    assert missing.output.startswith(
        f"Error: the run in {run_dir} uses the attention plugin '{PLUGIN}', which cannot be imported: put the "
        f"directory holding '{PLUGIN}' on PYTHONPATH"
    )


def test_torchrun_workers_get_the_plugin_in_their_config_and_environment(plugin_dir, tmp_path, monkeypatch):
    from runners import train
    from runners.train import runner

    invoke("list", "attentions", "--plugin", PLUGIN)  # loaded as `lra run --plugin` would
    started = {}

    def fake_run(argv, env, check):  # what the workers would be started with
        started.update(argv=argv, env=env)
        return SimpleNamespace(returncode=1)

    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    cfg = train.RunConfig(
        task="listops", attention=PLUGIN, run_dir=str(tmp_path / "run"), data_dir=str(tmp_path)
    )
    with pytest.raises(ValueError, match="the DDP run exited with code 1"):
        train.launch(cfg, 2)
    assert "--nproc-per-node=2" in started["argv"]
    assert started["env"][plugins.ENV_VAR] == PLUGIN
    assert started["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(plugin_dir.resolve())
    written = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert [p["module"] for p in written["plugins"]] == [PLUGIN]


def test_a_slurm_job_starts_its_run_with_the_submitting_process_plugins(plugin_dir, tmp_path):
    """`run_cell` is what a submitit job executes on its node, where no plugin is loaded."""
    from runners import suite

    invoke("list", "attentions", "--plugin", PLUGIN)
    cfg = suite.SuiteConfig(
        tasks=("listops",), attentions=(PLUGIN,), preset="tiny", out=str(tmp_path / "out")
    )
    (cell,) = suite.plan(cfg)
    assert [p["module"] for p in cell.config.plugins] == [PLUGIN]
    plugin_env = {k: v for k, v in plugins.child_env().items() if k in (plugins.ENV_VAR, "PYTHONPATH")}
    forget(PLUGIN)  # the node's process
    show = [sys.executable, "-c", "import os, sys; print('seen', os.environ['LRA_PLUGINS'], sys.path[1])"]
    outcome = suite.run_cell(cell, 1, show, plugin_env=plugin_env)
    assert outcome.status == "failed"  # the stand-in runner writes no record
    assert f"seen {PLUGIN} {plugin_dir.resolve()}" in (cell.run_dir / suite.LOG_NAME).read_text()
    written = json.loads((cell.run_dir / suite.CONFIG_NAME).read_text())
    assert [p["module"] for p in written["plugins"]] == [PLUGIN]


def test_bench_records_and_tables_mark_the_plugin(plugin_dir, tmp_path):
    out = tmp_path / "bench"
    result = invoke(
        "bench",
        "attention",
        "--plugin",
        PLUGIN,
        "--attentions",
        PLUGIN,
        "--lengths",
        "17",
        "--heads",
        "1",
        "--head-dim",
        "8",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert f"| {PLUGIN} (plugin: {PLUGIN}) [torch]" in result.output
    efficiency = store.load(out).efficiency.set_index("attention")
    assert set(efficiency.loc[PLUGIN, "plugin"]) == {PLUGIN}
    assert set(efficiency.loc[PLUGIN, "plugin_sha256"]) == {plugins.loaded_plugins()[0].source_sha256}
    assert efficiency.loc["full", "plugin"].isna().all()
