"""Atomic file writes (a reader sees the old file or the new one, never half of one) and safe file names.

Pure Python (no torch import) so that every layer can use it: data caches, checkpoints, result
records and tables.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


class DiskFullError(OSError):
    """A write that found no space left (or the quota used up): one line naming the file and the
    folder to free, instead of the message of whatever library was writing. `errno` is ENOSPC."""

    def __str__(self) -> str:
        return str(self.strerror)


# errno values that mean "no room to write", whatever the file system
_NO_ROOM = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` says the disk (or the quota) is full: ENOSPC / EDQUOT, or numpy's short-write
    message ("200000 requested and 171904 written"), which carries no errno."""
    if isinstance(err, DiskFullError):
        return True
    if isinstance(err, OSError) and err.errno in _NO_ROOM:
        return True
    return (
        isinstance(err, OSError)
        and err.errno is None
        and re.search(r"requested and \d+ written", str(err)) is not None
    )


def disk_full_error(path: str | os.PathLike[str], err: BaseException) -> DiskFullError:
    """The one-line `DiskFullError` for a write of `path` that failed with `err` (`is_disk_full`)."""
    folder = Path(path).parent
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on the device holding {folder} while writing {Path(path).name}; free space there "
        "(or write elsewhere) and run the command again",
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    On any exception the temporary file is removed and `path` is left untouched; a full disk is
    raised as `DiskFullError` (one line naming the file), whichever library was writing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if is_disk_full(err) and not isinstance(err, DiskFullError):
            raise disk_full_error(target, err) from None
        raise
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write(
    path: str | os.PathLike[str], writer: Callable[[IO[Any]], object], *, binary: bool = False
) -> None:
    """Write `path` atomically through `writer(file_object)`."""
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh,
    ):
        writer(fh)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


class IntegrityError(ValueError):
    """A file's content does not match the digest recorded when it was written (a one-line message
    naming the file and what to do)."""


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (data caches can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str, remedy: str) -> None:
    """Raise IntegrityError unless `path`'s sha256 is `expected`; `remedy` says what to do."""
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(
            f"{path} is corrupt: its sha256 {actual[:12]} differs from {expected[:12]} recorded when it "
            f"was written; {remedy}"
        )


# Characters a file or directory name keeps; every other run of characters becomes one "-".
# "=", "," and "+" stay so that attention slugs (`mita-num_landmarks=8-topk=8`) read as written.
_NOT_IN_SLUG = re.compile(r"[^A-Za-z0-9_.=,+-]+")


def slug(text: object) -> str:
    """`text` as a file or directory name: `NVIDIA H200` -> `NVIDIA-H200`; "none" when nothing is left."""
    return _NOT_IN_SLUG.sub("-", str(text)).strip("-") or "none"
