"""Build-once directories and the preprocessed tensor cache.

`build_once(final, build)` makes a directory exactly once, safely when several processes ask for
it at the same moment (the suite runs jobs in parallel): the builder works in a private temporary
directory beside `final` and renames it into place, so a reader sees the whole directory or
nothing; an advisory file lock makes the other processes wait instead of building it again.

`cached_split(...)` keeps one tokenised split as `.npy` files under
`<cache root>/<task>/<source>-<split>-L<len>-<hash>/`, keyed by everything that changes the
tensors (task, source, sequence length, tokeniser version, source files or generator settings).
The second load memory-maps the files and takes well under a second.

Each array's sha256 is recorded in the folder's `meta.json` when it is written and checked at every
load: ids or labels changed on disk afterwards are a one-line `IntegrityError` naming the file and
the folder to delete (it is rebuilt), never data a run trains on silently. A disk that fills up
while the cache is written is a one-line `DiskFullError` naming the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lra.io import DiskFullError, IntegrityError, disk_full_error, is_disk_full, sha256_file, verify_sha256

if TYPE_CHECKING:
    from lra.tasks.base import DataConfig, LRADataset

# 2: meta.json records each array's sha256 (folders of format 1 have none and are rebuilt under a new name)
CACHE_FORMAT = 2
META_NAME = "meta.json"

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: the atomic rename alone keeps readers safe
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on `path` (created if needed) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def build_once(final: str | os.PathLike[str], build: Callable[[Path], None]) -> Path:
    """Return directory `final`, first creating it with `build(tmp_dir)` if it does not exist.

    `build` fills an empty temporary directory; on success it is renamed onto `final`, on any
    exception it is removed and nothing is left at `final` (a full disk is a `DiskFullError` naming
    the folder, whichever writer hit it).
    """
    final = Path(final)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(final.parent / f".{final.name}.lock"):
        if final.is_dir():  # another process built it while we waited
            return final
        # Holding the lock, any temporary directory of this name is left over from a killed builder.
        for stale in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            build(tmp)
            os.replace(tmp, final)
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_disk_full(err) and not isinstance(err, DiskFullError):  # generators, image writers
                raise disk_full_error(final, err) from None
            raise
    return final


def digest(obj: Any, length: int = 12) -> str:
    """A short stable hash of a JSON-serialisable object."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def cache_root(data: DataConfig) -> Path:
    """`data.cache_dir`, else `$LRA_CACHE_DIR`, else `<data_dir>/cache`."""
    return Path(data.cache_dir or os.environ.get("LRA_CACHE_DIR") or Path(data.data_dir) / "cache")


def file_signature(*paths: str | os.PathLike[str]) -> list[list[Any]]:
    """(path, size, mtime) of each file: part of a cache key, so a replaced file invalidates it."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return out


def _writable(root: Path) -> bool:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(root, os.W_OK)


def _write_arrays(directory: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write each array as `<name>.npy` (fsynced) and `meta.json` with their sha256."""
    digests = {}
    path = directory / META_NAME
    try:
        for name, array in arrays.items():
            path = directory / f"{name}.npy"
            with open(path, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array))
                fh.flush()
                os.fsync(fh.fileno())  # on disk before the folder is renamed into place
            digests[name] = sha256_file(path)
        path = directory / META_NAME
        path.write_text(json.dumps({**meta, "sha256": digests}, indent=2, sort_keys=True, default=str) + "\n")
    except OSError as err:
        if is_disk_full(err):  # numpy says "N requested and M written"; say what it means
            raise disk_full_error(directory.parent / path.name, err) from None
        raise


def _read_arrays(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    remedy = f"delete the folder {directory} and it is rebuilt"
    try:
        meta = json.loads((directory / META_NAME).read_text())
        digests = meta["sha256"]
        for name in meta["arrays"]:
            expected = digests[name]
            if not isinstance(expected, str):
                raise TypeError(f"no sha256 recorded for {name}.npy")
    except (OSError, ValueError, KeyError, TypeError) as err:  # damaged after it was written
        first = f"{type(err).__name__}: {err}".splitlines()[0]
        raise IntegrityError(f"the cached data in {directory} cannot be read ({first}); {remedy}") from None
    arrays = {}
    for name in meta["arrays"]:
        path = directory / f"{name}.npy"
        try:
            verify_sha256(path, digests[name], remedy)
        except OSError as err:
            raise IntegrityError(f"{path} cannot be read ({err.strerror or err}); {remedy}") from None
        try:
            # Copy-on-write maps: pages load lazily and torch gets a writable array (no warning).
            arrays[name] = np.load(path, mmap_mode="c")
        except (OSError, EOFError, ValueError) as err:
            first = f"{type(err).__name__}: {err}".splitlines()[0]
            raise IntegrityError(f"{path} cannot be read ({first}); {remedy}") from None
    return arrays, meta


def cached_split(
    data: DataConfig,
    task: str,
    source: str,
    split: str,
    seq_len: int,
    key: Mapping[str, Any],
    build: Callable[[], dict[str, np.ndarray]],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of one tokenised split, from the cache or built by `build()` and cached.

    `build()` returns {"inputs": [n, L], "labels": [n], optionally "inputs2": [n, L]}. Returns the
    arrays (memory-mapped when cached) and the cache metadata (`meta["cache"]` = the directory,
    or None when the cache root is not writable and the split was processed in memory).
    """
    full_key = {
        "format": CACHE_FORMAT,
        "task": task,
        "source": source,
        "split": split,
        "seq_len": seq_len,
        **key,
    }
    root = cache_root(data)
    name = f"{source}-{split}-L{seq_len}-{digest(full_key)}"
    final = root / task / name

    def fill(directory: Path) -> None:
        arrays = build()
        _write_arrays(directory, arrays, {"key": full_key, "arrays": sorted(arrays)})

    if final.is_dir():
        arrays, meta = _read_arrays(final)
    elif _writable(root / task):
        arrays, meta = _read_arrays(build_once(final, fill))
    else:
        warnings.warn(
            f"tensor cache {root} is not writable; the data is re-processed on every load "
            "(set --cache-dir or $LRA_CACHE_DIR to a writable folder)",
            stacklevel=2,
        )
        return build(), {"key": full_key, "cache": None}
    meta["cache"] = str(final)
    return arrays, meta


# Seed of the subset kept when a split is capped (n_train / n_val / n_test).
SUBSET_SEED = 0


def subset_indices(n: int, limit: int) -> slice | np.ndarray:
    """The examples kept of n when capped at `limit` (0 = all): a fixed random subset, in source
    order. Not the first `limit`: sources can be sorted by label (the Hugging Face IMDB splits
    are 12,500 negative then 12,500 positive reviews), and a prefix would then hold one class.
    Subsets are nested: a larger cap keeps every example of a smaller one."""
    if limit <= 0 or limit >= n:
        return slice(0, n)
    return np.sort(np.random.default_rng(SUBSET_SEED).permutation(n)[:limit])


def to_dataset(arrays: Mapping[str, np.ndarray], limit: int, info: Mapping[str, Any]) -> LRADataset:
    """Wrap cached arrays as an `LRADataset`, keeping `subset_indices(n, limit)` of the examples."""
    import torch

    from lra.tasks.base import LRADataset

    n = arrays["labels"].shape[0]
    keep = subset_indices(n, limit)
    inputs = torch.from_numpy(arrays["inputs"][keep])
    labels = torch.from_numpy(np.asarray(arrays["labels"][keep], dtype=np.int64))
    inputs2 = torch.from_numpy(arrays["inputs2"][keep]) if "inputs2" in arrays else None
    return LRADataset(inputs, labels, inputs2=inputs2, info={**info, "n": int(labels.shape[0])})
