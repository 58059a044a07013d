"""ListOps: tokeniser, generator statistics (labels re-evaluated independently), TSV reader."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import numpy as np
import pytest

from lra.data import generate_listops as gl
from lra.data import progress
from lra.data.lra_release import read_listops_tsv
from lra.data.tokenizers import LISTOPS_SYMBOLS, listops_decode, listops_ids


def independent_value(expression: str) -> int:
    """Evaluate an LRA ListOps string with a stack, ignoring the bracketing parentheses."""
    stack: list[list] = []
    result = None
    for token in expression.replace("(", " ").replace(")", " ").split():
        if token.startswith("["):
            stack.append([token[1:]])
        elif token == "]":
            op, *args = stack.pop()
            if op == "MIN":
                value = min(args)
            elif op == "MAX":
                value = max(args)
            elif op == "MED":
                ordered = sorted(args)
                mid = len(ordered) // 2
                value = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2
            else:
                value = sum(args) % 10
            if stack:
                stack[-1].append(value)
            else:
                result = value
        else:
            if stack:
                stack[-1].append(int(token))
            else:
                result = int(token)
    assert not stack
    return result


def n_tokens(expression: str) -> int:
    return len(expression.replace("(", " ").replace(")", " ").split())


def test_official_example_string_form_and_value():
    tree = ("MAX", [2, 9, 4])
    assert gl.to_string(tree) == "( ( ( ( [MAX 2 ) 9 ) 4 ) ] )"
    assert gl.evaluate(tree) == 9
    assert gl.evaluate(("MED", [1, 4])) == 2  # int(median) truncates the mean of the middle pair
    assert gl.evaluate(("SM", [7, 8, 9])) == 4


def test_tokenizer_drops_parentheses_and_round_trips():
    text = "( ( ( [SM 3 ) ( ( [MIN 0 ) 9 ] ) ) ] )"
    ids = listops_ids(text)
    assert ids.dtype == np.uint8 and ids.min() >= 1 and ids.max() <= len(LISTOPS_SYMBOLS)
    assert listops_decode(ids) == "[SM 3 [MIN 0 9 ] ]"
    with pytest.raises(ValueError, match="FIRST"):
        listops_ids("( [FIRST 1 ] )")
    with pytest.raises(ValueError, match="12"):
        listops_ids("( [MAX 12 3 ] )")


@pytest.mark.parametrize("variant", ["short", "medium"])
def test_generator_statistics(variant):
    params = gl.listops_params(variant, n_train=300, n_val=50, n_test=50)
    data = gl.generate_listops(params, seed=3, workers=1)
    all_expr = [e for split in gl.SPLITS for e in data[split][0]]
    assert [len(data[s][0]) for s in gl.SPLITS] == [300, 50, 50]
    assert len(set(all_expr)) == len(all_expr), "expressions must be distinct across splits"
    lengths = [n_tokens(e) for e in all_expr]
    assert params.min_length < min(lengths) and max(lengths) < params.max_length
    for split in gl.SPLITS:
        for expression, label in zip(*data[split], strict=True):
            assert label == independent_value(expression)
    labels = [label for s in gl.SPLITS for label in data[s][1]]
    counts = np.bincount(labels, minlength=10)
    assert (counts > 0).all(), f"every value 0..9 occurs: {counts}"
    assert counts.max() / len(labels) < 0.35


def test_generator_depth_bound():
    params = gl.ListOpsParams(
        min_length=5, max_length=60, max_depth=3, max_args=4, n_train=200, n_val=0, n_test=0
    )
    expressions = gl.generate_listops(params, seed=0, workers=1)["train"][0]
    for expression in expressions:
        depth = best = 0
        for token in expression.replace("(", " ").replace(")", " ").split():
            depth += token.startswith("[")
            best = max(best, depth)
            depth -= token == "]"
        assert best <= params.max_depth - 1  # root at depth 1, leaves only at max_depth


def test_lra_variant_lengths():
    params = gl.listops_params("lra", n_train=40, n_val=0, n_test=0)
    lengths = [n_tokens(e) for e in gl.generate_listops(params, seed=1, workers=1)["train"][0]]
    assert min(lengths) > 500 and max(lengths) < 2000
    assert statistics.median(lengths) > 600


def test_generator_is_deterministic_and_worker_independent():
    params = gl.listops_params("short", n_train=1200, n_val=100, n_test=100)
    one = gl.generate_listops(params, seed=5, workers=1)
    two = gl.generate_listops(params, seed=5, workers=2)
    assert one == two
    assert gl.generate_listops(params, seed=5, workers=9) == one  # more workers than the old cap of 8
    assert gl.generate_listops(params, seed=6, workers=1) != one


def test_impossible_parameters_are_reported():
    with pytest.raises(ValueError, match="max_length"):
        gl.listops_params("short", min_length=50, max_length=40)
    with pytest.raises(ValueError, match="unknown ListOps generator"):
        gl.listops_params("huge")
    # Only "[OP d d ]" (length 4) fits: 4 operators x 100 digit pairs = 400 distinct expressions.
    small_space = gl.ListOpsParams(
        min_length=3, max_length=5, max_depth=2, max_args=2, n_train=500, n_val=0, n_test=0
    )
    with pytest.raises(ValueError, match="found only 400 of 500 distinct"):
        gl.generate_listops(small_space, workers=1)
    empty_space = dataclasses.replace(small_space, min_length=2, max_length=4)
    with pytest.raises(ValueError, match="accepts almost no trees"):
        gl.generate_listops(empty_space, workers=1)


def test_written_tsv_reads_back(tmp_path: Path):
    params = gl.listops_params("short", n_train=30, n_val=5, n_test=5)
    folder = gl.write_listops(tmp_path, params, seed=0, workers=1)
    lines = (folder / "basic_train.tsv").read_text().splitlines()
    assert lines[0] == "Source\tTarget" and len(lines) == 31
    rows, labels = read_listops_tsv(folder / "basic_train.tsv")
    expressions = [line.split("\t")[0] for line in lines[1:]]
    assert [listops_decode(r) for r in rows] == [listops_decode(listops_ids(e)) for e in expressions]
    assert labels.tolist() == [independent_value(e) for e in expressions]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Src\tTgt\n( [MAX 1 2 ] )\t2\n", ":1: expected the header"),
        ("Source\tTarget\n( [MAX 1 2 ] )\t2\n( [MIN 1 2 ] )\n", ":3: expected 2 tab-separated fields"),
        ("Source\tTarget\n( [MAX 1 2 ] )\t12\n", ":2: bad label '12'"),
        ("Source\tTarget\n( [MAX 1 2 ] )\t2\n( [AVG 1 2 ] )\t1\n", ":3: unknown ListOps token '\\[AVG'"),
    ],
)
def test_malformed_tsv_names_file_and_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "basic_val.tsv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_listops_tsv(path)


def test_data_steps_use_every_core_they_may_by_default(monkeypatch):
    # A 16-core GPU machine generates with 16 processes (no cap); the affinity mask is respected.
    monkeypatch.setattr(progress.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert progress.default_workers() == 16
    monkeypatch.setattr(progress.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert progress.default_workers() == 1
