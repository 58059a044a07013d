"""The README's shell examples run as written, in order, on the `tiny` preset and small grids.

Every ```bash block of README.md is read, its commands are run one after another in one temporary
directory (so that later commands find what earlier ones wrote, under the README's own paths), in
process through the `lra` command group. What would take hours or need a GPU or downloads is made
small by these mechanical rules, and nothing else changes:

* `pip install ... &&` prefixes are dropped, `pytest` commands are skipped (this is one);
* `--preset X` becomes `--preset tiny`, and commands that train (`run`, `suite`, `sweep s`,
  `sweep landmarks`) get `--preset tiny --max-steps 2`;
* tasks that need downloads (text, retrieval, image, pathx) become `pathfinder` (generated offline,
  like the README's ListOps; a `run` of one gets its own `--run-dir`, `lra_runs/runs/<task>-as-pathfinder`);
  `--data-dir` is dropped (LRA_DATA_DIR points at this test's data);
* `lra suite` without `--tasks` / `--attentions` runs `--tasks listops --attentions full,agent,mita`;
  `--seeds A-B` becomes `--seeds A`; `--values` keeps its first two values; `--nproc N` becomes 2;
* `--device cuda` becomes `cpu`, `--dtype bfloat16|float16` becomes `float32`; benchmarks get tiny
  shapes (`--lengths`, `--batch 1`, one repeat, no warm-up) and evaluations `--limit 8`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from runners import cli

README = Path(__file__).resolve().parents[1] / "README.md"
DOWNLOADED_TASKS = {"text", "retrieval", "image", "pathx"}
TRAINING = {("run",), ("suite",), ("sweep", "s"), ("sweep", "landmarks")}
SMALL = {
    ("bench", "attention"): ["--lengths", "16,32", "--heads", "1", "--head-dim", "8", "--repeats", "1",
                             "--warmup", "0", "--quiet"],
    ("bench", "model"): ["--lengths", "16", "--batch", "1", "--repeats", "1", "--warmup", "0", "--quiet"],
    ("sweep", "scaling"): ["--lengths", "2^4..2^5", "--heads", "1", "--head-dim", "8", "--repeats", "1",
                           "--warmup", "0", "--quiet"],
    ("sweep", "mk"): ["--limit", "8", "--quiet"],
    ("swap",): ["--limit", "8", "--quiet"],
}  # fmt: skip


def readme_commands(text: str) -> list[str]:
    """The shell commands of every ```bash block, in order (continuation lines joined)."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        commands += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return commands


def _set(argv: list[str], option: str, value: str | None) -> list[str]:
    """`argv` with `option`'s value replaced (None: the option and its value dropped)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == option:
            if value is not None:
                out += [option, value]
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _value(argv: list[str], option: str) -> str | None:
    return argv[argv.index(option) + 1] if option in argv else None


def small(argv: list[str]) -> list[str]:
    """The README command `argv` (after `lra`) made small by the rules of this module's docstring."""
    words = tuple(w for w in argv[:2] if not w.startswith("-"))
    command = words[:1] if words[:1] in {("run",), ("suite",), ("swap",)} else words
    argv = _set(argv, "--data-dir", None)
    if _value(argv, "--preset") or command in TRAINING:
        argv = _set(argv, "--preset", None) + ["--preset", "tiny"]
    if command in TRAINING:
        argv = _set(argv, "--max-steps", None) + ["--max-steps", "2"]
    original_task = _value(argv, "--task")
    if command == ("run",) and original_task in DOWNLOADED_TASKS and not _value(argv, "--run-dir"):
        # its own run folder: a README command that runs pathfinder itself may have used the default one
        argv += ["--run-dir", f"lra_runs/runs/{original_task}-as-pathfinder"]
    for option in ("--task", "--tasks"):
        if _value(argv, option):
            tasks = list(
                dict.fromkeys(
                    "pathfinder" if t in DOWNLOADED_TASKS else t for t in _value(argv, option).split(",")
                )
            )
            argv = _set(argv, option, ",".join(tasks))
    if command == ("suite",):
        argv += [] if "--tasks" in argv else ["--tasks", "listops"]
        argv += [] if "--attentions" in argv else ["--attentions", "full,agent,mita"]
    if _value(argv, "--seeds"):
        argv = _set(argv, "--seeds", _value(argv, "--seeds").split("-")[0].split(",")[0])
    if _value(argv, "--values"):
        argv = _set(argv, "--values", ",".join(_value(argv, "--values").split(",")[:2]))
    if _value(argv, "--nproc"):
        argv = _set(argv, "--nproc", "2")
    if _value(argv, "--device") == "cuda":
        argv = _set(argv, "--device", "cpu")
    if _value(argv, "--dtype"):
        argv = _set(argv, "--dtype", "float32")
    if command in SMALL:
        for option in ("--lengths", "--batch", "--repeats", "--warmup"):
            argv = _set(argv, option, None)
        argv += [word for word in SMALL[command] if not (word == "--quiet" and word in argv)]
    return argv


def test_the_rules_are_mechanical():
    argv = small(shlex.split("suite --preset quick --seeds 0-2 --jobs 2"))
    assert argv == ["suite", "--seeds", "0", "--jobs", "2", "--preset", "tiny", "--max-steps", "2",
                    "--tasks", "listops", "--attentions", "full,agent,mita"]  # fmt: skip
    argv = small(shlex.split("run --task text --attention full --preset lra --data-dir /data/x --nproc 4"))
    assert argv == ["run", "--task", "pathfinder", "--attention", "full", "--nproc", "2", "--preset", "tiny",
                    "--max-steps", "2", "--run-dir", "lra_runs/runs/text-as-pathfinder"]  # fmt: skip
    argv = small(shlex.split("bench attention --lengths 1K,64K --dtype bfloat16 --device cuda"))
    assert _value(argv, "--lengths") == "16,32" and _value(argv, "--dtype") == "float32"
    assert _value(argv, "--device") == "cpu"
    assert readme_commands("```bash\nlra a \\\n   --b 1   # c\n\nlra d\n```\n```python\nx\n```\n") == [
        "lra a     --b 1   # c",
        "lra d",
    ]


@pytest.mark.slow
def test_every_readme_command_runs_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LRA_DATA_DIR", str(tmp_path / "lra_data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ran = []
    for line in readme_commands(README.read_text()):
        words = shlex.split(line, comments=True)
        if "&&" in words:  # `pip install -e ".[dev]" && lra ...`
            words = words[words.index("&&") + 1 :]
        if words[0] == "pytest":
            continue
        assert words[0] == "lra", f"README command not run by this test: {line}"
        argv = small(words[1:])
        result = CliRunner().invoke(cli.main, argv, catch_exceptions=False)
        assert result.exit_code == 0, f"`{line}` as `lra {shlex.join(argv)}`:\n{result.output[-3000:]}"
        ran.append(line)
    assert len(ran) >= 20
