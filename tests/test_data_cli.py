"""`lra data generate / prepare / info` and `lra list tasks` through click's runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner

from lra.data import lra_release
from runners.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_list_tasks():
    result = invoke("list", "tasks")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [
        "listops",
        "text",
        "retrieval",
        "image",
        "pathfinder",
        "pathx",
    ]
    assert "16384" in lines[-1] and "lra_release, generated" in lines[-1]


def test_generate_listops_then_read_it_through_the_official_layout(tmp_path: Path):
    result = invoke(
        "data", "generate", "--task", "listops", "--generator", "short", "--n-train", "40", "--n-val", "10",
        "--n-test", "10", "--max-depth", "3", "--workers", "1", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "train      40 expressions" in result.output and f"wrote {tmp_path / 'listops-1000'}" in result.output
    )
    rows, _ = lra_release.read_listops_tsv(tmp_path / "listops-1000" / "basic_test.tsv")
    assert len(rows) == 10 and max(len(r) for r in rows) < 100
    info = invoke("data", "info", "--task", "listops", "--source", "lra_release", "--data-dir", str(tmp_path),
                  "--split", "val", "--seq-len", "100")  # fmt: skip
    assert info.exit_code == 0, info.output
    # read through the official layout, but recorded as generated (the marker generate writes)
    assert f"source: generated-files:{tmp_path / 'listops-1000'}" in info.output and "n=10" in info.output
    assert "example (label" in info.output and "[M" in info.output
    again = invoke("data", "generate", "--task", "listops", "--generator", "short", "--out", str(tmp_path))
    assert again.exit_code == 2 and "already holds ListOps data" in again.output  # never overwritten


def test_generated_pathfinder_files_keep_their_split_sizes_and_an_interrupted_set_is_refused(tmp_path: Path):
    args = ("data", "generate", "--task", "pathfinder", "--n-train", "10", "--n-val", "3", "--n-test", "3",
            "--workers", "1", "--out", str(tmp_path))  # fmt: skip
    assert invoke(*args).exit_code == 0
    info = ("data", "info", "--task", "pathfinder", "--source", "lra_release", "--data-dir", str(tmp_path))
    result = invoke(*info, "--split", "test")
    assert result.exit_code == 0, result.output
    assert "source: generated-files:" in result.output and "n=3" in result.output  # not 80/10/10 of 16
    marker = tmp_path / "pathfinder32" / "curv_contour_length_14" / lra_release.GENERATED_MARKER
    marker.write_text(marker.read_text().replace('"complete": true', '"complete": false'))
    result = CliRunner().invoke(main, [*info, "--split", "test", "--cache-dir", str(tmp_path / "fresh")])
    assert result.exit_code == 2 and "left incomplete by an interrupted `lra data generate`" in result.output


def test_generate_pathfinder_with_parameters(tmp_path: Path):
    result = invoke(
        "data", "generate", "--task", "pathfinder", "--generator", "easy", "--n-train", "8", "--n-val", "2",
        "--n-test", "2", "--paddle-margin", "1.0,1.5", "--workers", "1", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "train       8 images  16x16  labels 4 4" in result.output
    margins = {
        line.split()[9] for line in (tmp_path / "pathfinder16/curv_contour_length_3/metadata/0.npy").open()
    }
    assert margins <= {"1", "1.5"}


def test_generate_pathfinder_binary_flag(tmp_path: Path):
    """`--binary` draws three pixel values; `--no-binary` turns the `quick` variant's binary off."""
    from PIL import Image

    common = ("data", "generate", "--task", "pathfinder", "--generator", "quick", "--n-train", "6", "--n-val",
              "0", "--n-test", "0", "--workers", "1")  # fmt: skip
    values = {}
    for flag in ("--binary", "--no-binary"):
        out = tmp_path / flag
        assert invoke(*common, flag, "--out", str(out)).exit_code == 0
        pngs = sorted(out.glob("pathfinder16/*/imgs/0/*.png"))
        values[flag] = set(np.unique(np.stack([np.asarray(Image.open(p)) for p in pngs])).tolist())
    assert values["--binary"] <= {0, 128, 255}
    assert len(values["--no-binary"]) > 3  # antialiased


def test_prepare_generated_and_info(tmp_path: Path):
    args = ["--task", "pathfinder", "--source", "generated", "--generator", "easy", "--n-train", "8", "--n-val",
            "2", "--n-test", "2", "--data-dir", str(tmp_path)]  # fmt: skip
    result = invoke("data", "prepare", *args)
    assert result.exit_code == 0, result.output
    assert "pathfinder: generated:pathfinder/easy/seed0  seq_len 256" in result.output
    info = invoke("data", "info", *args)
    assert "majority 50.0%" in info.output and "@" in info.output  # the ASCII image shows the markers


def test_bad_input_is_one_line_with_exit_code_2(tmp_path: Path):
    runner = CliRunner()
    cases = [
        (["data", "prepare", "--task", "listops", "--source", "lra_release", "--data-dir", str(tmp_path)],
         "listops-1000/basic_train.tsv not found"),
        (["data", "info", "--task", "nope"], "unknown task 'nope'"),
        (["data", "generate", "--task", "pathfinder", "--max-depth", "3", "--out", str(tmp_path)],
         "--max-depth is a listops parameter"),
        (["data", "generate", "--task", "listops", "--generator", "tiny", "--out", str(tmp_path)],
         "unknown ListOps generator 'tiny'"),
        (["data", "generate", "--task", "pathx", "--paddle-margin", "a,b", "--out", str(tmp_path)],
         "--paddle-margin expects comma-separated numbers"),
        (["data", "prepare", "--task", "image", "--source", "generated"], "no source 'generated'"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(error_lines) == 1 and message in error_lines[0], result.output
        assert "Traceback" not in result.output


def test_a_file_where_the_data_folder_should_be_is_a_one_line_error(tmp_path):
    not_a_folder = tmp_path / "afile"
    not_a_folder.write_text("")
    result = CliRunner().invoke(
        main,
        ["data", "prepare", "--task", "listops", "--source", "generated", "--data-dir", str(not_a_folder)],
    )
    assert result.exit_code == 2 and "Error:" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
