"""The presets that name a source equal it field by field, or say why not, in a table built from
their code (lra/presets/, lra.preset_provenance), rendered into the README and printed by the CLI."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from lra import preset_provenance
from lra.presets import FIELDS_ADDED_LATER, get_preset, preset_identity, source_preset
from lra.sources import LRA_REPO, NYSTROM_REPO, SKYFORMER_REPO, Cite, Ours
from lra.tasks import names as task_names
from results import readme
from runners import cli

KNOWN_REPOS = {LRA_REPO, NYSTROM_REPO, SKYFORMER_REPO, "google/flax"}


def test_every_field_of_every_source_preset_has_a_provenance():
    rows = preset_provenance.rows()
    fields = preset_provenance.field_names()
    assert len(rows) == 2 * len(task_names()) * len(fields)
    for row in rows:
        if isinstance(row.provenance, Cite):
            assert row.provenance.file.repo in KNOWN_REPOS and len(row.provenance.file.commit) == 40
            assert row.provenance.where
        else:
            assert isinstance(row.provenance, Ours) and len(row.provenance.why) > 10
        preset = get_preset(row.task, row.preset)
        section, _, name = row.field.partition(".")
        assert getattr(getattr(preset, section), name) == row.value


def test_a_field_without_provenance_is_an_error(monkeypatch):
    from lra import presets

    def without_dim(name, task):
        preset, provenance = source_preset(name, task)
        return preset, {k: v for k, v in provenance.items() if k != "model.dim"}

    monkeypatch.setattr(preset_provenance, "source_preset", without_dim)
    with pytest.raises(ValueError, match="no provenance for model.dim"):
        preset_provenance.rows(["lra"], ["listops"])
    assert presets.source_preset is source_preset  # the presets themselves are untouched


# Values read in the sources, file by file (the rows cite where).
PYTORCH = {  # mlpen/Nystromformer LRA/code/lra_config.py, run_tasks.py, model*.py, LRA/datasets/*.py
    "listops": {
        "train.warmup_steps": 1000,
        "train.steps": 5000,
        "train.eval_every": 50,
        "model.padded_length": 2048,
    },
    "text": {"train.warmup_steps": 8000, "train.steps": 20000, "train.eval_every": 500, "data.seq_len": 4000},
    "retrieval": {
        "train.warmup_steps": 800,
        "train.steps": 30000,
        "train.eval_every": 300,
        "model.padded_length": 4096,
    },
    "image": {
        "train.batch_size": 256,
        "train.warmup_steps": 175,
        "train.steps": 35000,
        "train.eval_every": 175,
    },
    "pathfinder": {
        "train.batch_size": 256,
        "train.warmup_steps": 312,
        "train.steps": 62400,
        "train.eval_every": 312,
    },
}
PYTORCH_ALL = {
    "model.dim": 64,
    "model.layers": 2,
    "model.heads": 2,
    "model.mlp_dim": 128,
    "model.dropout": 0.1,
    "model.attention_dropout": 0.1,
    "model.pooling": "mean_all",
    "model.init": "nystromformer",
    "train.lr": 1e-4,
    "train.schedule": "onecycle",
    "train.beta2": 0.999,
    "train.eps": 1e-6,
    "train.amp": "fp16",
    "train.grad_clip": 0.0,
}
LRA = {  # google-research/long-range-arena configs, train scripts and models
    "listops": {
        "model.dim": 512,
        "model.layers": 4,
        "train.lr": 0.05,
        "train.schedule": "rsqrt",
        "model.pooling": "cls",
    },
    "text": {"data.seq_len": 1000, "train.warmup_steps": 8000, "train.steps": 20000, "train.eval_every": 100},
    "retrieval": {
        "model.pooling": "first",
        "model.dual_head": "concat",
        "train.steps": 5000,
        "train.warmup_steps": 8000,
    },
    "image": {
        "model.dropout": 0.3,
        "model.attention_dropout": 0.2,
        "model.pos_emb": "learned",
        "model.qkv_dim": 64,
        "train.schedule": "cosine",
        "data.pixel_zero_is_padding": True,
    },
    "pathfinder": {
        "model.dropout": 0.2,
        "model.pos_emb": "sinusoidal",
        "train.batch_size": 512,
        "model.pooling": "mean",
    },
    "pathx": {
        "train.grad_clip": 1.0,
        "train.batch_size": 64,
        "train.steps": 500000,
        "model.pos_emb": "learned",
    },
}
LRA_ALL = {
    "model.qkv_bias": False,
    "model.init": "lra",
    "model.layer_norm_eps": 1e-6,
    "model.gelu": "tanh",
    "train.beta2": 0.98,
    "train.eps": 1e-9,
    "train.report_checkpoint": "last",
    "train.amp": "none",
}


def _value(task: str, name: str, key: str):
    section, _, field_name = key.partition(".")
    return getattr(getattr(get_preset(task, name), section), field_name)


@pytest.mark.parametrize("task", task_names())
def test_source_presets_hold_the_sources_values(task):
    for key, value in {**PYTORCH_ALL, **PYTORCH.get(task, {})}.items():
        assert _value(task, "pytorch", key) == value, key
    for key, value in {**LRA_ALL, **LRA[task]}.items():
        assert _value(task, "lra", key) == value, key


def test_pathx_of_the_pytorch_preset_says_no_source_defines_it():
    built, provenance = source_preset("pytorch", "pathx")
    assert all(isinstance(p, Ours) for p in provenance.values())
    assert "no PyTorch-lineage source defines Path-X" in built.description


@pytest.mark.parametrize("name", ["tiny", "quick"])
@pytest.mark.parametrize("task", task_names())
def test_cpu_presets_keep_the_earlier_behaviour_and_configuration_identity(name, task):
    """Every field added for the sources holds its earlier behaviour in the CPU presets, so their
    configuration hashes (and measured numbers) stay what they were."""
    preset = get_preset(task, name)
    for section, defaults in FIELDS_ADDED_LATER.items():
        for field_name, value in defaults.items():
            assert getattr(getattr(preset, section), field_name) == value
    identity = preset_identity(preset)
    assert not any(k in identity[s] for s, defaults in FIELDS_ADDED_LATER.items() for k in defaults)
    changed = dataclasses.replace(preset, model=dataclasses.replace(preset.model, init="lra"))
    assert preset_identity(changed)["model"]["init"] == "lra"  # a changed value is part of the identity


def test_the_markdown_table_merges_tasks_and_names_files_with_commits():
    text = preset_provenance.markdown(["pytorch"], ["listops", "text"])
    assert (
        "| `train.schedule` | listops, text | `onecycle` | = [mlpen/Nystromformer@5689313:LRA/code/run_tasks.py]"
        in text
    )
    assert (
        "| `model.padded_length` | listops | `2048` |" in text
        and "| `model.padded_length` | text | `4096` |" in text
    )
    assert "ours: " in text and "$LRA_DATA_DIR or lra_data" in text


def test_the_readme_table_is_rendered_from_the_presets_code(tmp_path):
    marker = "<!-- table preset-provenance: rendered by `lra readme` from lra/presets/ -->\n"
    text = "Intro\n\n" + marker + "| stale |\n<!-- end table preset-provenance -->\n"
    rendered, notes = readme.render(text, tmp_path)
    assert notes == []
    assert (
        rendered
        == "Intro\n\n" + marker + preset_provenance.markdown() + "<!-- end table preset-provenance -->\n"
    )
    assert readme.render(rendered, tmp_path) == (rendered, [])


def test_lra_list_presets_prints_the_provenance_and_refuses_presets_without_sources():
    runner = CliRunner()
    result = runner.invoke(
        cli.main, ["list", "presets", "--provenance", "--preset", "lra", "--task", "image"]
    )
    assert result.exit_code == 0, result.output
    assert "lra_benchmarks/image/configs/cifar10/base_cifar10_config.py" in result.output
    assert "| `model.attention_dropout` | image | `0.2` |" in result.output
    listed = runner.invoke(cli.main, ["list", "presets", "--task", "pathx"])
    assert listed.exit_code == 0 and "no PyTorch-lineage source defines Path-X" in listed.output
    refused = runner.invoke(cli.main, ["list", "presets", "--provenance", "--preset", "tiny"])
    assert refused.exit_code == 2 and "preset 'tiny' names no source" in refused.output
