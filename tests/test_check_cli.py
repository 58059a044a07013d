"""`lra check`: the attention contract as one line per check, and the smoke check that runs before a
plugin attention trains (`lra run`, `lra suite`).

Plugins are files in a temporary working directory, as a user's own would be; the registry, the loaded
plugins and sys.path are restored after each test (test_plugins.restore_registry).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import attention_zoo
from attention_zoo import plugins
from attention_zoo.testing import CHECK_NAMES, check_mechanism, mechanism_checks, run_checks
from runners import cli, plugin_checks

from .builders import run_record
from .test_plugins import restore_registry, write_plugin  # noqa: F401  (autouse fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "windowed_landmarks.py"

# Softmax attention over the valid keys whose output drops the last feature: [B, H, N, d - 1].
WRONG_SHAPE = """
from dataclasses import dataclass

import torch.nn.functional as F

from attention_zoo import AttentionParams, register


@register("narrow", AttentionParams, summary="drops the last feature")
def narrow(q, k, v, *, key_padding_mask=None):
    mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)[..., :-1]
"""

# Correct softmax attention that forms the N x N scores: fails only the memory check.
DENSE = """
import torch

from attention_zoo import AttentionParams, register


@register("dense_softmax", AttentionParams, summary="every score formed")
def dense_softmax(q, k, v, *, key_padding_mask=None):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if key_padding_mask is not None:
        scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, -1) @ v
"""


def invoke(*args: str):
    return CliRunner().invoke(cli.main, list(args))


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working directory with the example plugin and two faulty ones."""
    directory = tmp_path / "work"
    directory.mkdir()
    shutil.copy(EXAMPLE, directory / "windowed_landmarks.py")
    write_plugin(directory, "narrow_attn", WRONG_SHAPE)
    write_plugin(directory, "dense_attn", DENSE)
    monkeypatch.chdir(directory)
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV_VAR, "1")
    monkeypatch.delenv(plugin_checks.SKIP_ENV_VAR, raising=False)
    plugin_checks._PASSED.clear()
    return directory


def _lines(output: str, mark: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip().startswith(mark)]


def test_check_passes_the_example_plugin_one_line_per_check_with_its_number(work):
    result = invoke("check", "--plugin", "windowed_landmarks")
    assert result.exit_code == 0, result.output
    passed = _lines(result.output, "pass")
    assert [line.split()[1] for line in passed] == [n for n in CHECK_NAMES if n != "reference"]
    assert not _lines(result.output, "FAIL") and not _lines(result.output, "skip")
    memory = next(line for line in passed if line.split()[1] == "memory")
    assert "elements at N=4096, under N^2/16 = 1048576" in memory
    assert "outputs differ by" in next(line for line in passed if line.split()[1] == "padding")
    assert result.output.strip().splitlines()[-1] == "windowed_landmarks: 8 passed, 0 failed"


def test_check_fails_a_wrong_shaped_plugin_in_one_line_without_a_traceback(work):
    result = invoke("check", "--plugin", "narrow_attn")
    assert result.exit_code == 2
    (failed,) = _lines(result.output, "FAIL")
    assert failed.split()[:2] == ["FAIL", "shape"]
    # the layer's output contract (attention_zoo.registry) fires first, naming the plugin
    assert "attention 'narrow' (plugin narrow_attn) returned shape (2, 2, 1, 7)" in failed
    assert "[B, H, N, d_v] = (2, 2, 1, 8)" in failed
    assert len(_lines(result.output, "skip")) == len(CHECK_NAMES) - 2  # all after shape, no reference
    assert "Traceback" not in result.output
    # The Python API still raises the check's AssertionError.
    with pytest.raises(
        AssertionError, match=r"check_mechanism\('narrow'\): attention 'narrow' .* returned shape"
    ):
        check_mechanism("narrow")


def test_a_failed_check_other_than_shape_leaves_the_others_running(work):
    attention_zoo.load_plugins(["dense_attn"])
    results = {r.name: r for r in run_checks(mechanism_checks("dense_softmax"))}
    assert [name for name, r in results.items() if not r.passed] == ["memory"]
    assert results["memory"].status == "fail"
    assert "built a tensor of 16777216 elements at N=4096" in results["memory"].detail
    dense = invoke("check", "--plugin", "dense_attn", "--dense")  # a dense attention opts out
    assert dense.exit_code == 0 and "memory" not in dense.output


def test_check_needs_something_to_check_and_names_bad_input_in_one_line(work):
    nothing = invoke("check")
    assert nothing.exit_code == 2 and "name a plugin (--plugin MODULE) or an attention" in nothing.output
    unknown = invoke("check", "--attention", "nosuch")
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output
    bad = invoke("check", "--plugin", "windowed_landmarks", "--attention", "windowed_landmarks(window=-1)")
    assert bad.exit_code == 2 and "need window >= 0" in bad.output


def test_check_takes_parameters_and_the_smoke_subset(work):
    result = invoke(
        "check", "--plugin", "windowed_landmarks", "--attention", "windowed_landmarks(window=2)", "--smoke"
    )
    assert result.exit_code == 0, result.output
    assert (
        result.output.splitlines()[0]
        == "windowed_landmarks(window=2) (plugin: windowed_landmarks) -- smoke checks"
    )
    assert [line.split()[1] for line in _lines(result.output, "pass")] == list(plugin_checks.SMOKE_CHECKS)


# --- the smoke check before training ------------------------------------------------------------


@pytest.fixture
def trained(monkeypatch):
    """`runners.train.run` replaced by a stub that records the attentions it was asked to train."""
    import runners.train

    asked: list[str] = []

    def fake_run(resolved):  # `lra run` hands over the run it resolved
        asked.append(resolved.attention.name)
        return run_record(attention=resolved.attention.name, steps=1, params=1, wall_time_s=1.0)

    monkeypatch.setattr(runners.train, "run", fake_run)
    return asked


def test_run_checks_a_plugin_attention_before_training_it(work, trained, monkeypatch):
    refused = invoke("run", "listops", "--plugin", "narrow_attn", "--attention", "narrow", "--run-dir", "r")
    assert refused.exit_code == 2 and trained == []
    (line,) = refused.output.strip().splitlines()
    assert line.startswith(
        "Error: attention narrow (plugin narrow_attn) fails the shape check, so it is not trained"
    )
    assert "`lra check --plugin narrow_attn --attention 'narrow'`" in line
    ok = invoke("run", "listops", "--plugin", "windowed_landmarks", "--attention", "windowed_landmarks")
    assert ok.exit_code == 0, ok.output
    monkeypatch.setenv(plugin_checks.SKIP_ENV_VAR, "1")
    skipped = invoke("run", "listops", "--plugin", "narrow_attn", "--attention", "narrow", "--run-dir", "r")
    assert skipped.exit_code == 0, skipped.output
    assert trained == ["windowed_landmarks", "narrow"]


def test_suite_checks_its_plugin_attentions_before_any_run_starts(work):
    out = work / "suite"
    result = invoke("suite", "--plugin", "narrow_attn", "--attentions", "full,narrow", "--tasks", "listops",
                    "--preset", "tiny", "--out", str(out))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "attention narrow (plugin narrow_attn) fails the shape check" in result.output
    assert not list(out.rglob("result.json")) and not (out / "runs").exists()  # nothing trained, full neither
