"""What a newcomer runs first: a positional task for `lra run`, `lra data info` that describes the
preset's data without generating them, generated 16x16 Pathfinder read back through the official
layout, `lra data generate --help` naming every variant, and default output folders kept out of git."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lra.data.generate_listops import LISTOPS_VARIANTS
from lra.data.generate_pathfinder import PATHFINDER_VARIANTS, PATHX_VARIANTS
from lra.tasks.base import DEFAULT_DATA_DIR
from runners.cli import main

from .builders import run_record

REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


# --- lra run TASK ------------------------------------------------------------------------------


@pytest.fixture
def trained_tasks(monkeypatch):
    """Replace the training by a stub that records which task it was asked for."""
    import runners.train

    asked: list[str] = []

    def fake_run(resolved):  # `lra run` hands over the run it resolved
        asked.append(resolved.cfg.task)
        return run_record(
            task=resolved.cfg.task, attention=resolved.attention.name, steps=1, params=1, wall_time_s=1.0
        )

    monkeypatch.setattr(runners.train, "run", fake_run)
    return asked


def test_run_takes_the_task_as_an_argument_or_as_task_option(trained_tasks, tmp_path):
    common = ("--attention", "full", "--run-dir", str(tmp_path / "r"))
    assert invoke("run", "pathfinder", *common).exit_code == 0
    assert invoke("run", "--task", "pathfinder", *common).exit_code == 0
    assert invoke("run", "pathfinder", "--task", "pathfinder", *common).exit_code == 0
    assert invoke("run", *common).exit_code == 0  # the default task
    assert trained_tasks == ["pathfinder", "pathfinder", "pathfinder", "listops"]


def test_run_with_two_different_tasks_is_a_one_line_error(trained_tasks):
    result = invoke("run", "listops", "--task", "pathfinder")
    assert result.exit_code == 2 and trained_tasks == []
    assert result.output.strip().splitlines() == [
        "Error: the TASK argument 'listops' and --task 'pathfinder' differ; give one of them"
    ]
    unknown = invoke("run", "nosuchtask")
    assert unknown.exit_code == 2 and "unknown task 'nosuchtask'" in unknown.output


# --- lra data info -----------------------------------------------------------------------------


def test_data_info_describes_the_presets_variant_and_generates_nothing(tmp_path):
    result = invoke("data", "info", "--task", "listops", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "preset tiny: generated, variant short (seed 0), 2,000 / 200 / 200 examples" in result.output
    assert "min_length=20 max_length=100 max_depth=4" in result.output  # the `short` variant's own settings
    assert "add --generate" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing generated, nothing cached
    quick = invoke("data", "info", "--task", "pathfinder", "--preset", "quick", "--data-dir", str(tmp_path))
    assert "variant quick (seed 0), 4,000 / 250 / 500 examples" in quick.output
    assert list(tmp_path.iterdir()) == []


def test_data_info_generate_flag_generates_and_then_describes_the_splits(tmp_path):
    args = ("data", "info", "--task", "listops", "--data-dir", str(tmp_path), "--n-train", "30",
            "--n-val", "10", "--n-test", "10", "--split", "val")  # fmt: skip
    result = invoke(*args, "--generate")
    assert result.exit_code == 0, result.output
    assert "source: generated:listops/short/seed0" in result.output and "n=10" in result.output
    assert "add --generate" not in result.output
    again = invoke(*args)  # generated now: described without the flag
    assert again.exit_code == 0 and "n=10" in again.output and "add --generate" not in again.output


# --- generated 16x16 Pathfinder through the official layout --------------------------------------


def test_generated_16x16_pathfinder_reads_back_with_the_lra_release_source(tmp_path):
    generated = invoke("data", "generate", "--task", "pathfinder", "--generator", "easy", "--n-train", "8",
                       "--n-val", "2", "--n-test", "4", "--workers", "1", "--out", str(tmp_path))  # fmt: skip
    assert generated.exit_code == 0, generated.output
    assert "--difficulty curv_contour_length_3" in generated.output  # how to read it back
    read = ("data", "info", "--task", "pathfinder", "--source", "lra_release", "--data-dir", str(tmp_path),
            "--split", "test")  # fmt: skip
    result = invoke(*read, "--difficulty", "curv_contour_length_3")
    assert result.exit_code == 0, result.output
    assert "source: generated-files:" in result.output
    assert "n=4 " in result.output and "seq_len=256 " in result.output  # 16x16 images, the generated sizes
    missing = invoke(*read)  # the default difficulty is LRA's 32x32 hard folder, which is not there
    assert missing.exit_code == 2
    assert (
        "generated folders there: pathfinder16/curv_contour_length_3 (--difficulty curv_contour_length_3)"
        in (missing.output)
    )


def test_the_config_hash_of_a_generated_16x16_folder_follows_its_files(tmp_path):
    from lra.data.identity import data_identity
    from lra.tasks import DataConfig

    invoke("data", "generate", "--task", "pathfinder", "--generator", "easy", "--n-train", "4", "--n-val", "2",
           "--n-test", "2", "--workers", "1", "--out", str(tmp_path))  # fmt: skip
    data = DataConfig(source="lra_release", data_dir=str(tmp_path), difficulty="curv_contour_length_3")
    before = data_identity("pathfinder", data)
    assert before["content"] != "missing"
    metadata = tmp_path / "pathfinder16" / "curv_contour_length_3" / "metadata" / "0.npy"
    metadata.write_text(metadata.read_text() + "\n")
    assert data_identity("pathfinder", data)["content"] != before["content"]


# --- lra data generate --help ------------------------------------------------------------------


def test_generate_help_lists_every_variant_of_the_generators_and_of_the_readme():
    help_text = " ".join(invoke("data", "generate", "--help").output.split())
    for task, variants in (("listops", LISTOPS_VARIANTS), ("pathfinder", PATHFINDER_VARIANTS),
                           ("pathx", PATHX_VARIANTS)):  # fmt: skip
        assert f"{task} {', '.join(variants)}" in help_text
    readme_rows = re.findall(
        r"^\| (listops|pathfinder|pathx) \| `(\w+)` \|", (REPO / "README.md").read_text(), re.M
    )
    assert len(readme_rows) >= 8
    for task, variant in readme_rows:
        assert re.search(rf"{task} [\w, ]*\b{variant}\b", help_text), (task, variant)


# --- default output folders --------------------------------------------------------------------


def _default_outputs(command: click.Command) -> set[str]:
    """The relative paths every command writes to by default (options named out / runs / records)."""
    found = set()
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found |= _default_outputs(sub)
        return found
    for param in command.params:
        named = isinstance(param, click.Option) and param.name in ("out", "runs_dir", "records_dir")
        if named and isinstance(param.default, str) and param.default:
            found.add(param.default)
    return found


def test_every_default_output_folder_is_ignored_by_git():
    outputs = _default_outputs(main) | {DEFAULT_DATA_DIR}
    assert {"lra_runs", "lra_experiments", "lra_data", "bench_kernels.json"} <= outputs
    outputs |= {str(Path(o).with_suffix(".md")) for o in outputs if o.endswith(".json")}  # its markdown
    for path in sorted(outputs):
        probe = path if "." in Path(path).name else f"{path}/result.json"
        checked = subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO, check=False)
        assert checked.returncode == 0, f"{path} is not in .gitignore"
