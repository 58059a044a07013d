"""`lra suite` and `lra run` say, before anything trains, how finely the configured test set resolves
accuracy: the half-width of the 95% Clopper–Pearson interval at chance and at 50%."""

from __future__ import annotations

import re

from click.testing import CliRunner
from scipy.stats import binomtest

from runners import cli
from runners.train import RunConfig, planned_test_examples, resolve


def half_width(k, n):
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"±{100 * (ci.high - ci.low) / 2:.1f} points"


def test_the_planned_test_set_is_known_before_loading_data(tmp_path):
    def planned(preset, **overrides):
        cfg = RunConfig(
            task="listops", attention="full", preset=preset, overrides=overrides, data_dir=str(tmp_path)
        )
        return planned_test_examples(resolve(cfg))

    assert planned("quick") == 500  # the generator's count
    assert planned("tiny", **{"data.n_test": "48"}) == 48
    assert planned("pytorch", **{"data.source": "lra_release"}) == 2000  # the canonical split
    assert planned("pytorch", **{"data.source": "lra_release", "data.n_test": "300"}) == 300


def test_suite_prints_the_resolution_of_every_task_before_training(tmp_path):
    result = CliRunner().invoke(cli.main, ["suite", "--preset", "quick", "--attentions", "full", "--dry-run",
                                           "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        f"resolution: listops: 500 test examples resolve accuracy to {half_width(50, 500)} at chance (10%) and "
        f"{half_width(250, 500)} at 50% (half-widths of one cell's 95% Clopper–Pearson interval; a difference "
        "between two cells needs about 1.4 times that unpaired, often less paired on the same examples)"
    )
    assert lines[1].startswith(
        f"resolution: pathfinder: 500 test examples resolve accuracy to {half_width(250, 500)}"
    )


def test_run_prints_the_resolution_before_the_first_step(tmp_path):
    args = ["run", "--preset", "tiny", "--attention", "full", "--max-steps", "2", "--set", "train.eval_every=1",
            "--set", "data.n_train=32", "--set", "data.n_val=16", "--set", "data.n_test=48",
            "--data-dir", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert f"resolution: listops: 48 test examples resolve accuracy to {half_width(5, 48)}" in result.output
    assert result.output.index("resolution:") < result.output.index("step 1/2")
    # and the summary gives the test accuracy with its interval on those examples
    accuracy = float(re.search(r"test acc (\d+\.\d+)%", result.output).group(1))
    ci = binomtest(round(accuracy * 48 / 100), 48).proportion_ci(0.95, method="exact")
    assert (
        f"test acc {accuracy:.2f}% [{100 * ci.low:.1f}, {100 * ci.high:.1f}] of 48 (best val" in result.output
    )
