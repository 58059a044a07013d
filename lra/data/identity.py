"""The identity of the data a run reads: the resolved source and a signature of its content.

It enters a run's configuration hash (`runners.train`), and with it the suite's decision to skip
a finished run and the leaderboard's rule that only runs of one configuration are averaged. Two
different data sets under the same `--source lra_release --data-dir D` therefore never share a
hash, while the same files copied or moved to another folder keep theirs (moving data does not
retrain everything): paths enter only relative to the data root, and modification times not at
all (`cp` and `rsync` without `-t` change them).

What is signed, per source:

* ``generated`` -- the generator's description (task, variant, seed, generator format, settings,
  sizes): the data are a pure function of it, so nothing needs to exist yet.
* ``lra_release`` -- each file the task reads, by its path relative to the archive root, its size
  and a digest of its content (`file_digest`). Pathfinder / Path-X: the difficulty folder's
  metadata files (image names and labels), the first image each of them lists, and the
  generator's record when `lra data generate` wrote the folder.
* ``hf`` -- a local copy (a folder given as the repo, or `<data_dir>/hf/<owner>__<name>`): every
  file under it, as above; otherwise the hub reference `owner/name[/folder][@revision]` (pin a
  revision to pin the data).
* ``tfds`` -- the dataset name (TFDS prepares fixed, versioned releases).

Files that are missing are signed as missing (the run then fails on them with a clear error).
Digests are kept per process, keyed by path, size and modification time, so hashing a
configuration many times (the suite plans every run) reads each file once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lra.tasks.base import DataConfig

# Files up to this size are digested whole; larger ones by `SAMPLED_BLOCKS` blocks of
# `BLOCK_SIZE` bytes spread evenly over the file, the first and the last included.
WHOLE_FILE_LIMIT = 4 << 20
BLOCK_SIZE = 64 << 10
SAMPLED_BLOCKS = 16

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike[str]) -> str:
    """A content digest of one file: its size and its bytes (whole up to 4 MiB; beyond, 16 blocks
    of 64 KiB spread evenly, first and last included). Independent of the file's name and time."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.blake2b(digest_size=16)
        h.update(str(stat.st_size).encode())
        with open(path, "rb") as fh:
            if stat.st_size <= WHOLE_FILE_LIMIT:
                h.update(fh.read())
            else:
                last = stat.st_size - BLOCK_SIZE
                for i in range(SAMPLED_BLOCKS):
                    fh.seek(last * i // (SAMPLED_BLOCKS - 1))
                    h.update(fh.read(BLOCK_SIZE))
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def files_signature(root: str | os.PathLike[str], files: list[Path]) -> str:
    """One digest of `files` by their paths relative to `root` and their content digests."""
    root = Path(root)
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        entry = f"{path.relative_to(root).as_posix()}\0"
        entry += file_digest(path) if path.is_file() else "missing"
        h.update(entry.encode() + b"\n")
    return h.hexdigest()


def _tree_signature(folder: Path) -> str:
    """Every file under `folder` (hidden ones excluded), relative to it."""
    files = [
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    return files_signature(folder, files)


def archive_files(data_dir: str | os.PathLike[str], wanted: list[str]) -> tuple[Path, list[Path]] | None:
    """(archive root, its files `wanted`) for the first root candidate under `data_dir` (the folder
    itself or `lra_release/`) that holds the first of them; None when none does."""
    from .lra_release import ROOT_CANDIDATES

    roots = [Path(data_dir) / prefix for prefix in ROOT_CANDIDATES]
    root = next((r for r in roots if (r / wanted[0]).exists()), None)
    if root is None:
        return None
    return root, [root / name for name in wanted]


def data_identity(task: str, data: DataConfig) -> dict[str, Any]:
    """{"source": the resolved source, "content": a signature of the data it reads} (see the module
    docstring); equal for equal data wherever they lie, different for different data."""
    from lra import tasks

    task_spec = tasks.get(task)
    source = task_spec.resolve_source(data.source, data)
    if source == "generated":
        from .cache import digest
        from .generated import generator_description

        content = digest(generator_description(task, data), length=32)
    elif source == "lra_release":
        if task_spec.release_files is None:
            raise ValueError(f"task {task!r} has no lra_release files; use its own sources")
        found = task_spec.release_files(data)
        content = files_signature(*found) if found is not None else "missing"
    elif source == "hf":
        from . import hf

        spec = data.hf_repo or task_spec.hf_repo or task
        local = Path(spec).expanduser()
        if not local.exists() and task_spec.hf_local_copy:
            local = hf.local_copy(data.data_dir, spec)
        content = _tree_signature(local) if local.is_dir() else f"hub:{spec}"
    else:  # tfds and sources added later: the name the loader reads
        content = f"{source}:{task}"
    return {"source": source, "content": content}
