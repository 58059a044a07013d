"""The MiTA experiment commands: sweep mk, swap, sweep scaling, sweep s / landmarks.

Checkpoints come from real (tiny) training runs; evaluations are checked against independent
definitions: the runner's own test accuracy, a model rebuilt here from the checkpoint, route-only
MiTA holding every key (which is full attention), and the diagnostics collected here directly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import attention_zoo
from attention_zoo.mita import diagnostics
from lra import models, tasks
from lra.tasks.base import DataConfig
from results import store
from results.cost_tables import ratio_table
from results.records import EVAL_FIELDS, check_record, load_records, read_record
from runners import cli, experiments
from runners.experiments import EvalOptions
from runners.specs import parse_spec
from runners.train import RunConfig, run
from runners.train.checkpoints import load_checkpoint

SMALL = {
    "data.n_train": "256",
    "data.n_val": "64",
    "data.n_test": "64",
    "train.batch_size": "16",
    "train.eval_every": "5",
}
SMALL_SET = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
RUNS = {  # directory name -> (attention, parameters, steps)
    "mita": ("mita", {"num_landmarks": "8", "topk": "8"}, 20),
    "full": ("full", {}, 20),
    "learned": ("mita", {"num_landmarks": "4", "landmarks": "learned"}, 10),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lra_data"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Three finished ListOps runs in a suite-like layout: <root>/runs/listops/<name>/0."""
    root = tmp_path_factory.mktemp("trained")
    out = {"root": root}
    for name, (attention, params, steps) in RUNS.items():
        run_dir = root / "runs" / "listops" / name / "0"
        cfg = RunConfig(
            task="listops",
            attention=attention,
            attn_params=params,
            preset="tiny",
            overrides=dict(SMALL),
            data_dir=data_dir,
            run_dir=str(run_dir),
            max_steps=steps,
            device="cpu",
            quiet=True,
        )
        assert run(cfg)["status"] == "ok"
        out[name] = run_dir
    return out


def invoke(args: list[str]):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def is_png(path: Path) -> bool:
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def independent_accuracy(run_dir: Path, data_dir: str, attention: str, params: dict) -> float:
    """Test accuracy of the run's best checkpoint with another attention, computed from scratch."""
    config = json.loads((run_dir / "config.json").read_text())
    preset = config["preset"]
    data = DataConfig(**{**preset["data"], "data_dir": data_dir})
    ds = tasks.get("listops").load("test", data)
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt", remedy="")["model"]
    from lra.presets import ModelConfig

    model = models.build(
        vocab_size=state["encoder.embed.weight"].shape[0],
        max_len=ds.seq_len,
        num_classes=10,
        dual_input=False,
        model=ModelConfig(**preset["model"]),
        attention=attention,
        attn_params=params,
    )
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        predictions = torch.cat(
            [model(ds.inputs[i : i + 16].long()).argmax(-1) for i in range(0, len(ds), 16)]
        )
    return float((predictions == ds.labels).float().mean())


# ----------------------------------------------------------------------------------------------
# lra sweep mk
# ----------------------------------------------------------------------------------------------


def test_sweep_mk_writes_a_record_per_cell_a_table_and_a_heat_map(trained, data_dir, tmp_path):
    out = tmp_path / "exp"
    result = invoke(["sweep", "mk", "--run", trained["mita"], "--grid", "m=4,16", "k=4", "--out", out])
    assert result.exit_code == 0, result.output
    records, problems = load_records(out, kind="eval")
    assert not problems
    cells = {(r["attention_params"]["num_landmarks"], r["attention_params"]["topk"]): r for r in records}
    assert set(cells) == {(m, k) for m in (4, 8, 16) for k in (4, 8)}  # the trained m=8, k=8 added
    for record in records:
        check_record(record)
        assert set(EVAL_FIELDS) <= set(record)
        assert record["experiment"] == "mk" and record["split"] == "test" and record["n_examples"] == 64
        assert (
            record["attention_params"]["num_routed"] == 1
            and record["attention_params"]["landmarks"] == "avgpool"
        )
        assert record["keys_per_query"] == record["attention_params"]["num_landmarks"] + min(
            record["attention_params"]["topk"], record["seq_len"]
        )
    # The trained cell reproduces the runner's own test evaluation of the same checkpoint ...
    run_record = read_record(trained["mita"] / "result.json")
    assert cells[(8, 8)]["accuracy"] == run_record["test_acc"]
    # ... and another cell matches a model rebuilt here from the checkpoint.
    expected = independent_accuracy(trained["mita"], data_dir, "mita", {"num_landmarks": 4, "topk": 4})
    assert abs(cells[(4, 4)]["accuracy"] - expected) <= 1 / 64 + 1e-9
    folder = out / "mk" / "listops" / experiments.load_run(trained["mita"]).tag
    markdown = (folder / "mk-best-test.md").read_text()
    assert "| m=16" in markdown and "**" in markdown and "the run's own record" in markdown
    assert len((folder / "mk-best-test.csv").read_text().strip().splitlines()) == 1 + 6
    assert is_png(folder / "mk-best-test.png")
    # Eval records live in the same store as runs without disturbing the leaderboard.
    st = store.load(out)
    assert st.runs.empty and st.efficiency.empty and not st.problems


def test_sweep_mk_diagnostics_match_a_direct_collection(trained, data_dir, tmp_path):
    opts = EvalOptions(out=str(tmp_path), diag_batches=1, batch_size=16, limit=16, quiet=True)
    result = experiments.sweep_mk(
        trained["mita"], {"num_landmarks": (4,), "topk": (4,)}, opts, include_trained=False
    )
    (record,) = result.records
    diag = record["diagnostics"]
    assert diag["batches"] == 1 and diag["examples"] == 16 and len(diag["layers"]) == 1
    config = json.loads((trained["mita"] / "config.json").read_text())
    ds = tasks.get("listops").load("test", DataConfig(**{**config["preset"]["data"], "data_dir": data_dir}))
    state = load_checkpoint(trained["mita"] / "checkpoints" / "best.pt", remedy="")["model"]
    from lra.presets import ModelConfig

    model = models.build(
        vocab_size=state["encoder.embed.weight"].shape[0],
        max_len=ds.seq_len,
        num_classes=10,
        dual_input=False,
        model=ModelConfig(**config["preset"]["model"]),
        attention="mita",
        attn_params={"num_landmarks": 4, "topk": 4, "backend": "torch"},
    )
    model.load_state_dict(state)
    model.eval()
    tokens = ds.inputs[:16].long()
    tokens = tokens[:, : int((tokens != 0).any(0).nonzero().max()) + 1]
    with torch.no_grad(), diagnostics.collect() as calls:
        model(tokens)
    (call,) = calls
    for key in experiments.DIAGNOSTIC_KEYS:
        assert diag[key] == pytest.approx(call[key], abs=1e-6), key
        assert 0.0 <= diag[key] <= 1.0
    assert "pruned fraction" in result.markdown and len(result.paths) == 3


def test_sweep_mk_default_grid_keeps_learned_landmarks_at_the_trained_m(trained, tmp_path):
    run = experiments.load_run(trained["learned"])
    m_values, k_values = experiments.mk_grid(run, None)
    assert m_values == (4,) and k_values == (8, 16, 32, 64)
    with pytest.raises(ValueError, match="m cannot change without retraining"):
        experiments.mk_grid(run, {"num_landmarks": (8,)})


def test_chance_is_taken_over_exactly_the_evaluated_examples():
    """On a label-sorted split (as IMDB's), a capped evaluation scores a random subset of both
    classes; chance must be that subset's majority share, not the share in the first n labels."""
    from types import SimpleNamespace

    from lra.data.cache import subset_indices
    from lra.presets import get_preset
    from lra.tasks.base import LRADataset

    n, limit = 203, 61
    labels = torch.cat([torch.zeros(150, dtype=torch.long), torch.ones(53, dtype=torch.long)])
    ds = LRADataset(torch.ones(n, 5, dtype=torch.long), labels)

    class AlwaysOne(torch.nn.Module):
        def forward(self, tokens):
            return torch.tensor([[0.0, 1.0]]).expand(len(tokens), 2)

    evaluator = experiments.Evaluator(EvalOptions(device="cpu", limit=limit, batch_size=7))
    evaluator.dataset = lambda run: ds
    result = evaluator.evaluate(SimpleNamespace(preset=get_preset("listops", "tiny")), AlwaysOne())
    kept = labels[torch.as_tensor(subset_indices(n, limit))]
    ones = int(kept.sum())
    assert 0 < ones < limit and result.n_examples == limit
    assert result.accuracy == pytest.approx(ones / limit)  # always predicting 1 scores the 1s kept
    assert result.chance_acc == pytest.approx(max(ones, limit - ones) / limit)


def test_parse_grid():
    assert experiments.parse_grid(["m=16,8", "k=4"]) == {"num_landmarks": (8, 16), "topk": (4,)}
    assert experiments.parse_grid(["m=8 k=2,2"]) == {"num_landmarks": (8,), "topk": (2,)}
    assert experiments.parse_grid(["topk=3"]) == {"topk": (3,)}
    for bad, message in [
        (["m=8,x"], "positive integers"),
        (["m=0"], "positive integers"),
        (["m="], "positive integers"),
        (["q=8"], "axes m and k"),
        (["m8"], "axes m and k"),
        (["m=8", "num_landmarks=4"], "twice"),
        ([""], "empty"),
    ]:
        with pytest.raises(ValueError, match=message):
            experiments.parse_grid(bad)


# ----------------------------------------------------------------------------------------------
# lra swap
# ----------------------------------------------------------------------------------------------


def test_swap_to_route_only_mita_holding_every_key_is_full_attention(trained, tmp_path):
    attentions = ["mita_route(num_landmarks=4,topk=100000)", "agent"]
    opts = EvalOptions(out=str(tmp_path), diag_batches=1, quiet=True)
    result = experiments.swap_run(trained["full"], attentions, opts)
    own, route, agent = result.records
    assert own["diagnostics"] is None and agent["diagnostics"] is None
    assert route["diagnostics"]["pruned_fraction"] == 0.0 and route["diagnostics"]["overlap"] == 1.0
    assert own["attention_label"] == own["train_attention_label"] == "full"
    assert own["accuracy"] == read_record(trained["full"] / "result.json")["test_acc"]
    # Each expert holds every key and the query attends one expert: exactly full attention.
    assert route["accuracy"] == own["accuracy"]
    assert route["loss"] == pytest.approx(own["loss"], abs=1e-5)
    assert (
        agent["attention"] == "agent" and not agent["missing_parameters"] and not agent["unused_parameters"]
    )
    frame = experiments.swap_frame(result.records)
    assert list(frame["delta_vs_trained_pp"].round(9))[1] == 0.0
    assert "full (trained)" in result.markdown and is_png(result.paths[-1])


def test_swap_names_initialised_and_dropped_parameters(trained, tmp_path):
    out = tmp_path / "exp"
    result = invoke(
        ["swap", "--run", trained["full"], "--attention", "mita", "--attn-param", "landmarks=learned",
         "--attn-param", "num_landmarks=4", "--out", out]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    key = "encoder.blocks.0.attn.mechanism_parameters.landmark_queries [2, 4, 16]"
    assert f"initialised (not in the checkpoint; seeded with the run's seed): {key}" in result.output
    records, _ = load_records(out, kind="eval")
    swapped = next(r for r in records if r["attention"] == "mita")
    assert swapped["missing_parameters"] == [key] and swapped["unused_parameters"] == []
    # The other way round: the learned queries of a checkpoint are dropped by full attention.
    back = experiments.swap_run(trained["learned"], ["full"], EvalOptions(out=str(out), quiet=True))
    assert back.records[1]["unused_parameters"] == [key] and back.records[1]["missing_parameters"] == []
    assert "dropped (in the checkpoint, not used by this attention)" in back.markdown
    # Learned landmarks of another m: the checkpoint's are dropped, new ones initialised.
    other_m = experiments.swap_run(
        trained["learned"],
        ["mita(landmarks=learned,num_landmarks=8)"],
        EvalOptions(out=str(out), quiet=True),
    )
    assert other_m.records[1]["unused_parameters"] == [key]
    assert other_m.records[1]["missing_parameters"] == [key.replace("[2, 4, 16]", "[2, 8, 16]")]


def test_swap_attentions_start_from_the_runs_preset_budget(trained, tmp_path):
    # The tiny preset trains MiTA with 8 landmarks and top-8 (lra.presets.CPU_BUDGET), not the
    # registry's 32 / 32: a swapped-in attention gets the budget the suite would give it.
    opts = EvalOptions(out=str(tmp_path), quiet=True)
    result = experiments.swap_run(
        trained["full"], ["mita", "agent(num_agents=4)"], opts, attn_params={"mita": {"topk": 4}}
    )
    _, mita, agent = result.records
    assert (mita["attention_params"]["num_landmarks"], mita["attention_params"]["topk"]) == (8, 4)
    assert agent["attention_params"]["num_agents"] == 4  # the spec's own value wins over the preset's 16
    assert mita["attention_label"] == "mita(num_landmarks=8,topk=4)"
    preset = experiments.load_run(trained["full"]).preset.attention
    assert preset["mita"] == {"num_landmarks": 8, "topk": 8} and preset["agent"] == {"num_agents": 16}

    # "mita" on the run trained with the tiny preset's MiTA is that run's own attention: said, not repeated
    same = experiments.swap_run(trained["mita"], ["mita", "full"], opts)
    assert [r["attention_label"] for r in same.records] == ["mita(num_landmarks=8,topk=8)", "full"]
    assert "- mita in preset tiny is mita(num_landmarks=8,topk=8), the trained attention." in same.markdown

    matrix = experiments.swap_matrix(trained["root"], ["mita"], opts)
    assert {r["attention_label"] for r in matrix.records} == {"mita(num_landmarks=8,topk=8)"}
    # the MiTA run evaluated with "mita" is its own attention: the one bold cell
    assert matrix.markdown.count("| **") == 1 and "| mita " in matrix.markdown


def test_swap_matrix_over_the_runs_of_a_task(trained, tmp_path):
    out = tmp_path / "exp"
    result = invoke(["swap", "--runs", trained["root"], "--out", out, "--quiet"])
    assert result.exit_code == 0, result.output
    records, _ = load_records(out, kind="eval")
    assert len(records) == 3 * 3  # every run with every trained attention
    for record in records:
        if record["attention_label"] == record["train_attention_label"]:
            assert record["accuracy"] == read_record(Path(record["run_dir"]) / "result.json")["test_acc"]
    markdown = (out / "swap" / "listops" / "matrix-best-test.md").read_text()
    # Rows and columns are written relative to the tiny preset's budget (MiTA m = k = 8), and a
    # list under the table gives the exact parameters.
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    specs = ["full", "mita(num_landmarks=4,landmarks=learned)", "mita"]
    assert [cell.strip() for cell in table[0].split("|")[2:-1]] == specs
    assert [line.split("|")[1].strip() for line in table[2:]] == specs
    for i, line in enumerate(table[2:]):  # the diagonal, bold
        cells = [cell.strip() for cell in line.split("|")[2:-1]]
        assert [c.startswith("**") for c in cells] == [j == i for j in range(3)]
    assert "- mita in preset tiny: mita(num_landmarks=8,topk=8)" in markdown
    assert (
        "- mita(num_landmarks=4,landmarks=learned) in preset tiny: mita(num_landmarks=4,topk=8,landmarks=learned)"
        in markdown
    )
    assert is_png(out / "swap" / "listops" / "matrix-best-test.png")


# ----------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def foreign_checkpoint(trained, tmp_path) -> Path:
    """A copy of the MiTA run holding the full-attention run's checkpoint."""
    run_dir = tmp_path / "copied"
    shutil.copytree(trained["mita"], run_dir)
    shutil.copy(trained["full"] / "checkpoints" / "best.pt", run_dir / "checkpoints" / "best.pt")
    return run_dir


@pytest.fixture
def other_task_config(trained, tmp_path) -> Path:
    """A copy of the MiTA run whose config.json says it trained Pathfinder."""
    run_dir = tmp_path / "edited"
    shutil.copytree(trained["mita"], run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["task"] = config["preset"]["task"] = "pathfinder"
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


@pytest.fixture
def two_tasks(trained, tmp_path) -> Path:
    root = tmp_path / "mixed"
    shutil.copytree(trained["root"], root)
    record = json.loads((root / "runs" / "listops" / "full" / "0" / "result.json").read_text())
    record["task"] = "pathfinder"
    (root / "runs" / "listops" / "full" / "0" / "result.json").write_text(json.dumps(record))
    return root


@pytest.mark.parametrize(
    "args, message",
    [
        (["sweep", "mk", "--run", "{tmp}/nope"], "does not exist"),
        (["sweep", "mk", "--run", "{tmp}"], "is not a run directory (no config.json)"),
        (["sweep", "mk", "--run", "{foreign}"], "was not written by the run its config.json describes"),
        (
            ["sweep", "mk", "--run", "{other_task}"],
            "(task pathfinder, attention mita(num_landmarks=8,topk=8)",
        ),
        (["sweep", "mk", "--run", "{full}"], "needs a run trained with MiTA (mita, mita_route)"),
        (["sweep", "mk", "--run", "{mita}", "--grid", "m=8,x", "k=4"], "positive integers"),
        (["sweep", "mk", "--run", "{mita}", "--grid", "n=8"], "axes m and k"),
        (["sweep", "mk", "--run", "{mita}", "--checkpoint", "best", "--limit", "-1"], "--limit must be >= 0"),
        (["swap", "--run", "{mita}"], "at least one --attention"),
        (["swap", "--run", "{mita}", "--runs", "{root}"], "exactly one of --run"),
        (["swap", "--run", "{mita}", "--attention", "nope"], "unknown attention 'nope'"),
        (["swap", "--run", "{mita}", "--attention", "full,agent", "--attn-param", "x=1"], "ambiguous"),
        (
            ["swap", "--runs", "{root}", "--attn-param", "topk=4"],
            "give the attention too, e.g. --attention mita",
        ),
        (
            ["swap", "--run", "{mita}", "--attention", "agent", "--attn-param", "topk=1"],
            "has no parameter 'topk'",
        ),
        (["swap", "--runs", "{root}", "--task", "text"], "no finished runs of task 'text'"),
        (
            ["swap", "--runs", "{two_tasks}"],
            "runs of several tasks (listops, pathfinder); choose one with --task",
        ),
        (["sweep", "scaling", "--lengths", "2^12..2^10"], "--lengths expects"),
        (["sweep", "scaling", "--lengths", "2^x"], "--lengths expects"),
        (["sweep", "s", "--task", "listops", "--values", "0"], "num_routed must be >= 1"),
        (["sweep", "s", "--task", "listops", "--attn-param", "num_routed=2"], "is what this sweep varies"),
        (
            ["sweep", "s", "--task", "listops", "--attention", "full"],
            "--attention must be one of mita, mita_route",
        ),
        (["sweep", "landmarks", "--task", "listops", "--values", "pooled"], "must be one of 'avgpool'"),
        (["sweep", "landmarks", "--task", "nope"], "unknown task 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    trained, foreign_checkpoint, other_task_config, two_tasks, tmp_path, args, message
):
    places = {
        "tmp": tmp_path,
        "foreign": foreign_checkpoint,
        "other_task": other_task_config,
        "two_tasks": two_tasks,
        **{name: trained[name] for name in ("mita", "full", "root")},
    }
    result = invoke([arg.format(**places) for arg in args] + ["--out", tmp_path / "exp"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert message in lines[0]
    if (tmp_path / "exp").exists():  # nothing half-done was recorded
        assert load_records(tmp_path / "exp")[0] == []


# ----------------------------------------------------------------------------------------------
# lra sweep scaling
# ----------------------------------------------------------------------------------------------


def test_sweep_scaling_writes_efficiency_records_the_crossover_table_and_the_figure(tmp_path):
    out = tmp_path / "exp"
    result = invoke(
        ["sweep", "scaling", "--device", "cpu", "--lengths", "2^6..2^7", "--attentions", "full,mita",
         "--heads", "1", "--head-dim", "8", "--warmup", "0", "--repeats", "1", "--out", out, "--quiet"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    efficiency = store.load(out / "scaling").efficiency
    measured = efficiency[efficiency["status"] == "ok"]
    # full [sdpa] and mita [torch], two passes, two lengths (mita [triton] needs CUDA: not recorded)
    assert len(measured) == 2 * 2 * 2
    assert set(measured["seq_len"]) == {64, 128} and set(measured["bench"]) == {"attention"}
    markdown = (out / "scaling" / "scaling-cpu-float32-B1-H1-d8.md").read_text()
    assert "faster from N" in markdown and "| mita [torch]" in markdown and "n/a" in markdown
    assert is_png(out / "scaling" / "scaling-cpu-float32-B1-H1-d8.png")


def test_sweep_scaling_resumes_a_time_limited_run(tmp_path):
    out = tmp_path / "exp"
    args = ["sweep", "scaling", "--device", "cpu", "--lengths", "2^6", "--attentions", "full",
            "--heads", "1", "--head-dim", "8", "--warmup", "0", "--repeats", "1", "--out", out, "--quiet"]  # fmt: skip
    result = invoke([*args, "--max-minutes", "1e-9"])
    assert result.exit_code == 2 and "nothing was measured before --max-minutes ran out" in result.output
    assert invoke(args).exit_code == 0
    result = invoke([*args, "--resume"])
    assert result.exit_code == 0, result.output
    markdown = (out / "scaling" / "scaling-cpu-float32-B1-H1-d8.md").read_text()
    assert "2 of 2 cells reused from earlier records (--resume)" in markdown


def test_crossover_is_the_length_from_which_an_attention_stays_faster():
    times = {"full": (1.0, 4.0, 16.0), "a": (2.0, 3.0, 4.0), "b": (0.5, 5.0, 10.0), "c": (2.0, 8.0, 32.0)}
    rows = [
        {"attention": name, "attention_label": name, "backend": "torch", "pass": "forward", "seq_len": n,
         "batch": 1, "status": "ok", "time_ms_median": t, "peak_memory_bytes": 1}
        for name, series in times.items() for n, t in zip((1024, 2048, 4096), series, strict=True)
    ]  # fmt: skip
    rows.append(
        {"attention": "d", "attention_label": "d", "backend": "torch", "pass": "forward", "seq_len": 1024,
         "batch": 1, "status": "oom", "time_ms_median": None, "peak_memory_bytes": None}
    )  # fmt: skip
    table = experiments.crossover_table(ratio_table(rows)).set_index("series")
    assert table.loc["a [torch]", "faster_from"] == 2048  # 0.5x, 1.33x, 4x
    assert table.loc["b [torch]", "faster_from"] == 4096  # 2x, 0.8x, 1.6x
    assert pd.isna(table.loc["c [torch]", "faster_from"])  # 0.5x throughout
    assert table.loc["a [torch]", "speedup_at_longest_common"] == pytest.approx(4.0)
    assert table.loc["d [torch]", "status"] == "oom" and pd.isna(table.loc["d [torch]", "longest_measured"])
    assert "full [sdpa]" not in table.index and "full [torch]" not in table.index


def test_parse_scaling_lengths():
    assert experiments.parse_scaling_lengths("2^10..2^12") == (1024, 2048, 4096)
    assert experiments.parse_scaling_lengths("2^11,1K,2^10") == (1024, 2048)
    assert experiments.parse_scaling_lengths("4K") == (4096,)
    for bad in ("2^12..2^10", "2^x", "2^31", "", "1K..4K"):
        with pytest.raises(ValueError, match="--lengths expects"):
            experiments.parse_scaling_lengths(bad)


# ----------------------------------------------------------------------------------------------
# lra sweep s / landmarks
# ----------------------------------------------------------------------------------------------


def test_variant_specs_hold_everything_but_the_swept_parameter():
    cfg = experiments.VariantSweepConfig(
        sweep="s", task="listops", values=("1", "2", "4"), attn_params={"topk": "16"}
    )
    specs = experiments.variant_specs(cfg)
    assert [label for *_, label in specs] == [
        "mita(topk=16)",
        "mita(topk=16,num_routed=2)",
        "mita(topk=16,num_routed=4)",
    ]
    equal = experiments.variant_specs(
        experiments.VariantSweepConfig(sweep="s", task="listops", values=("1", "2", "4"), equal_budget=True)
    )
    mita = attention_zoo.get("mita")
    params = [mita.params(**parse_spec(spec)[1]) for _, spec, _ in equal]
    assert [(p.num_routed, p.topk) for p in params] == [(1, 32), (2, 16), (4, 8)]
    assert {mita.keys_per_query(p, 2000) for p in params} == {32 + 32}  # m + s * (k // s)
    assert [label for *_, label in equal] == [
        "mita",
        "mita(topk=16,num_routed=2)",
        "mita(topk=8,num_routed=4)",
    ]
    landmarks = experiments.variant_specs(experiments.VariantSweepConfig(sweep="landmarks", task="listops"))
    assert [value for value, *_ in landmarks] == ["avgpool", "learned", "random", "kmeans"]


def _sweep_args(sweep: str, values: str, data_dir: str, out: Path) -> list:
    return [
        "sweep", sweep, "--task", "listops", "--values", values, "--preset", "tiny", "--attn-param",
        "num_landmarks=4", "--attn-param", "topk=4", "--max-steps", "6", *SMALL_SET, "--data-dir", data_dir,
        "--device", "cpu", "--diag-batches", "1", "--out", out,
    ]  # fmt: skip


def check_sweep(out: Path, sweep: str, parameter: str, values: list[str], keys: list[int]) -> None:
    where = out / sweep / "listops"
    runs = store.load(where).runs
    assert len(runs) == len(values) and set(runs["status"]) == {"ok"}
    assert sorted(str(p[parameter]) for p in runs["attention_params"]) == sorted(values)
    evals, _ = load_records(where, kind="eval")
    assert len(evals) == len(values)
    for record in evals:
        assert record["experiment"] == sweep and record["split"] == "val" and record["n_examples"] == 16
        assert set(experiments.DIAGNOSTIC_KEYS) <= set(record["diagnostics"])
    csv = pd.read_csv(where / f"sweep-{sweep}.csv")
    assert [str(v) for v in csv[parameter]] == values
    assert list(csv["keys_per_query"]) == keys
    by_label = runs.set_index("attention_label")["test_acc"]
    assert list(csv["test_acc"]) == [by_label[label] for label in csv["attention_label"]]
    assert is_png(where / f"sweep-{sweep}.png")
    assert "overlap (%)" in (where / f"sweep-{sweep}.md").read_text()


@pytest.mark.e2e
def test_sweep_s_trains_each_value_and_reuses_finished_runs(data_dir, tmp_path):
    out = tmp_path / "exp"
    result = invoke(_sweep_args("s", "1,2", data_dir, out))
    assert result.exit_code == 0, result.output
    check_sweep(out, "s", "num_routed", ["1", "2"], [4 + 4, 4 + 2 * 4])
    again = invoke(_sweep_args("s", "1,2", data_dir, out))
    assert again.exit_code == 0 and "2 runs (2 already finished, 0 to run)" in again.output


@pytest.mark.slow
def test_sweep_landmarks_trains_every_construction(data_dir, tmp_path):
    out = tmp_path / "exp"
    values = ["avgpool", "learned", "random", "kmeans"]
    result = invoke(_sweep_args("landmarks", ",".join(values), data_dir, out))
    assert result.exit_code == 0, result.output
    check_sweep(out, "landmarks", "landmarks", values, [8, 8, 8, 8])
