"""Checkpoint files with their content digest inside: written atomically, verified before they load.

A checkpoint (`last.pt`, `best.pt`) is one file, renamed into place whole (`lra.io.atomic_write`):

    LRA-CHECKPOINT\\n
    {"bytes": N, "format": 2, "sha256": "<hex>"}\\n
    <N bytes: torch.save of the payload>

The digest lives in the same file as what it covers, so no kill (the resume tests kill a run at
every step, the rename included) can leave a checkpoint and its digest out of step. `load_checkpoint`
checks the length and the sha256 of the payload before `torch.load(..., weights_only=True)` sees a
byte of it: a truncated, bit-flipped or foreign file is a `CheckpointError` (one line naming the file
and what to do), never a silent load. Checkpoints of format 1 (a bare `torch.save` zip archive,
without a digest) are refused with their own one-line message.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from lra.io import IntegrityError, atomic_write

CHECKPOINT_FORMAT = 2
MAGIC = b"LRA-CHECKPOINT\n"
_HEADER_LIMIT = 4096  # bytes of the header line, far more than it needs
_ZIP_MAGIC = b"PK\x03\x04"  # what format 1 (a bare torch.save) starts with


class CheckpointError(IntegrityError):
    """A checkpoint that cannot be trusted: truncated, corrupt, of an old format or not a checkpoint."""


def save_checkpoint(path: str | os.PathLike[str], payload: Any) -> None:
    """Write `payload` (tensors and plain values) to `path` atomically, with its sha256 in the header."""
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_checkpoint_bytes(path, buffer.getvalue())


def write_checkpoint_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write serialized payload bytes as a checkpoint file (header with their length and sha256),
    atomically. Torch-free: what `save_checkpoint` does after `torch.save`."""
    header = {"format": CHECKPOINT_FORMAT, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    line = json.dumps(header, sort_keys=True).encode() + b"\n"

    def write(fh: Any) -> None:
        fh.write(MAGIC)
        fh.write(line)
        fh.write(data)

    atomic_write(path, write, binary=True)


def read_payload(path: str | os.PathLike[str], remedy: str) -> bytes:
    """The verified payload bytes of the checkpoint at `path`; CheckpointError (one line ending with
    `remedy`, what the user should do) when the file is not whole and unchanged."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC))
        if head != MAGIC:
            if head.startswith(_ZIP_MAGIC):
                raise CheckpointError(
                    f"{path} is a checkpoint of format 1, written by an older version without a content "
                    f"digest, which this version does not load; {remedy}"
                )
            raise CheckpointError(
                f"{path} is not a checkpoint written by lra (no checkpoint header); {remedy}"
            )
        line = fh.readline(_HEADER_LIMIT)
        try:
            header = json.loads(line)
            expected_bytes, expected_sha = int(header["bytes"]), str(header["sha256"])
            version = int(header["format"])
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(
                f"{path} is corrupt: its checkpoint header is unreadable; {remedy}"
            ) from None
        if version != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{path} is a checkpoint of format {version}, which this version (format {CHECKPOINT_FORMAT}) "
                f"does not load; {remedy}"
            )
        data = fh.read()
    if len(data) != expected_bytes:
        raise CheckpointError(
            f"{path} is truncated or corrupt: it holds {len(data)} of the {expected_bytes} bytes written; {remedy}"
        )
    actual_sha = hashlib.sha256(data).hexdigest()
    if actual_sha != expected_sha:
        raise CheckpointError(
            f"{path} is corrupt: its sha256 {actual_sha[:12]} differs from {expected_sha[:12]} recorded when it "
            f"was written; {remedy}"
        )
    return data


def load_checkpoint(path: str | os.PathLike[str], remedy: str) -> dict[str, Any]:
    """Verify and load the checkpoint at `path` on the CPU (`weights_only=True`).

    FileNotFoundError when it does not exist; CheckpointError (one line naming the file and ending
    with `remedy`) when it is truncated, corrupt, of another format or not a checkpoint.
    """
    import torch

    data = read_payload(path, remedy)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # digest matched, so the writer itself stored something unloadable
        first = f"{type(err).__name__}: {err}".splitlines()[0]
        raise CheckpointError(f"{path} cannot be loaded ({first}); {remedy}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint written by lra (not a dictionary); {remedy}")
    return state


def checkpoint_problem(path: str | os.PathLike[str]) -> str | None:
    """None when `path` is a whole checkpoint of this format (length and digest checked, nothing
    unpickled); otherwise what is wrong with it, in one line."""
    try:
        read_payload(path, "")
    except CheckpointError as err:
        return str(err).rstrip("; ")
    except OSError as err:
        return f"{path} cannot be read ({err.strerror or err})"
    return None
