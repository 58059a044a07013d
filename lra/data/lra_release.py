"""Readers of the official `lra_release` archive layout (also what the offline generators write).

Layout, relative to the archive root (found at `<dir>`, `<dir>/lra_release` or the doubled
`<dir>/lra_release/lra_release` that unpacking the archive produces):

* `listops-1000/basic_{train,val,test}.tsv` -- header `Source<TAB>Target`, one expression per line;
* `tsv_data/new_aan_pairs.{train,eval,test}.tsv` -- no header; label, id1, id2, text1, text2;
* `pathfinder{32,128}/<difficulty>/imgs/<batch>/sample_<n>.png` with `metadata/<batch>.npy`,
  which despite the name is plain text: one line per image, space separated; field 0 = image
  folder, 1 = file name, 3 = label. Pathfinder has no split files: LRA takes the first 80% /
  next 10% / last 10% of each difficulty folder in the order of its TFDS build (`split_order="tfds"`:
  images sorted by TFDS's md5 hash of their key, salted with the difficulty's split name), here
  by default in batch order (`split_order="batch"`); empty images are skipped.

Readers return numpy arrays of token ids and raise FileNotFoundError (missing files, with how to
get them) or ValueError (malformed content, naming the file and line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .progress import default_workers, progress, worker_context
from .tokenizers import byte_ids, listops_ids

ARCHIVE_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"
ROOT_CANDIDATES = ("", "lra_release", "lra_release/lra_release")

LISTOPS_DIR = "listops-1000"
LISTOPS_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
AAN_DIR = "tsv_data"
AAN_FILES = {
    "train": "new_aan_pairs.train.tsv",
    "val": "new_aan_pairs.eval.tsv",
    "test": "new_aan_pairs.test.tsv",
}
PATHFINDER_DIFFICULTIES = {
    "easy": "curv_baseline",
    "intermediate": "curv_contour_length_9",
    "hard": "curv_contour_length_14",
}
PATHFINDER_FRACTIONS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}
# The TFDS split names of LRA's Pathfinder builders (lra_benchmarks/data/pathfinder.py), which salt
# the hash that orders a split's examples.
PATHFINDER_TFDS_SPLITS = {folder: name for name, folder in PATHFINDER_DIFFICULTIES.items()}
SPLIT_ORDERS = ("batch", "tfds")


# Written by `lra data generate` into each folder it fills (ListOps' listops-1000/, a Pathfinder
# difficulty folder): what made the files, and whether the generation finished. The official
# archive has no such file; loaders use it to record the data as generated, not official.
GENERATED_MARKER = "generated.json"


def generated_marker(folder: str | os.PathLike[str]) -> dict | None:
    """The marker of a folder filled by `lra data generate`, or None for the official files.
    ValueError for a generation that was interrupted (a partial set must not pass as complete)."""
    path = Path(folder) / GENERATED_MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is unreadable ({err}); delete {folder} and generate it again") from None
    if not marker.get("complete"):
        raise ValueError(
            f"{folder} was left incomplete by an interrupted `lra data generate`; delete it and generate it again"
        )
    return marker


def find_in_release(data_dir: str | os.PathLike[str], relative: str, generate_hint: str = "") -> Path:
    """`relative` under the archive root inside `data_dir`; FileNotFoundError saying how to get it."""
    base = Path(data_dir)
    for prefix in ROOT_CANDIDATES:
        candidate = base / prefix / relative
        if candidate.exists():
            return candidate
    how = f"download and unpack {ARCHIVE_URL} into {base}"
    if generate_hint:
        how += f", or generate it offline: {generate_hint}"
    raise FileNotFoundError(f"{base / relative} not found (also looked under {base / 'lra_release'}); {how}")


def release_has(data_dir: str | os.PathLike[str], relative: str) -> bool:
    return any((Path(data_dir) / prefix / relative).exists() for prefix in ROOT_CANDIDATES)


# ---------------------------------------------------------------------------------------------
# ListOps
# ---------------------------------------------------------------------------------------------


def read_listops_tsv(path: str | os.PathLike[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Token-id rows (parentheses dropped) and labels (int64, 0..9) of a ListOps TSV."""
    path = Path(path)
    rows: list[np.ndarray] = []
    labels: list[int] = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n")
        if header.split("\t") != ["Source", "Target"]:
            raise ValueError(f"{path}:1: expected the header 'Source<TAB>Target', got {header[:60]!r}")
        for lineno, line in enumerate(progress(fh, desc=f"reading {path.name}", unit=" lines"), start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(f"{path}:{lineno}: expected 2 tab-separated fields, got {len(fields)}")
            source, target = fields
            if not re.fullmatch(r"[0-9]", target.strip()):
                raise ValueError(f"{path}:{lineno}: bad label {target!r} (expected an integer 0..9)")
            try:
                ids = listops_ids(source)
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from None
            if ids.size == 0:
                raise ValueError(f"{path}:{lineno}: empty expression")
            rows.append(ids)
            labels.append(int(target))
    return rows, np.asarray(labels, dtype=np.int64)


def write_listops_tsv(
    path: str | os.PathLike[str], expressions: Sequence[str], labels: Sequence[int]
) -> None:
    """Write a ListOps TSV in the official format (header `Source<TAB>Target`)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("Source\tTarget\n")
        for expression, label in zip(expressions, labels, strict=True):
            fh.write(f"{expression}\t{label}\n")


# ---------------------------------------------------------------------------------------------
# AAN (Retrieval)
# ---------------------------------------------------------------------------------------------


def read_aan_tsv(
    path: str | os.PathLike[str], max_len: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Byte-id rows of both documents (each truncated to `max_len`) and labels (0/1) of an AAN TSV.

    The file has no header and no quoting; the label is written as a float ("0" / "1.0").
    """
    path = Path(path)
    rows1: list[np.ndarray] = []
    rows2: list[np.ndarray] = []
    labels: list[int] = []
    size = path.stat().st_size
    with (
        open(path, "rb") as fh,
        progress(total=size, desc=f"reading {path.name}", unit="B", unit_scale=True) as bar,
    ):
        for lineno, line in enumerate(fh, start=1):
            bar.update(len(line))
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            fields = line.split(b"\t")
            if len(fields) != 5:
                raise ValueError(
                    f"{path}:{lineno}: expected 5 tab-separated fields (label, id1, id2, text1, text2), "
                    f"got {len(fields)}"
                )
            try:
                label = float(fields[0])
            except ValueError:
                label = -1.0
            if label not in (0.0, 1.0):
                raise ValueError(f"{path}:{lineno}: bad label {fields[0][:20]!r} (expected 0 or 1)")
            rows1.append(byte_ids(fields[3], max_len))
            rows2.append(byte_ids(fields[4], max_len))
            labels.append(int(label))
    return rows1, rows2, np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Pathfinder / Path-X
# ---------------------------------------------------------------------------------------------


def pathfinder_folder_name(difficulty: str) -> str:
    """ "easy" / "intermediate" / "hard" -> the official folder name; other names pass through."""
    return PATHFINDER_DIFFICULTIES.get(difficulty, difficulty)


def generated_pathfinder_folders(data_dir: str | os.PathLike[str]) -> list[str]:
    """`pathfinder<res>/<folder>` of every difficulty folder under `data_dir` that `lra data generate`
    wrote (it has a marker), in name order."""
    found = []
    for prefix in ROOT_CANDIDATES:
        base = Path(data_dir) / prefix
        for marker in sorted(base.glob(f"pathfinder*/*/{GENERATED_MARKER}")):
            found.append(marker.parent.relative_to(base).as_posix())
    return list(dict.fromkeys(found))


def find_pathfinder_folder(
    data_dir: str | os.PathLike[str], resolution: int, difficulty: str, generate_hint: str = ""
) -> tuple[Path, int]:
    """(the difficulty folder, its image side) under the archive root inside `data_dir`.

    The official layout is `pathfinder<resolution>/<folder>`; a folder of that name that `lra data
    generate` wrote at another resolution (`pathfinder16/...` of the 16x16 variants) is found too, its
    side read from its marker. FileNotFoundError saying how to get the data otherwise, naming the
    generated folders that are there."""
    name = pathfinder_folder_name(difficulty)
    try:
        return find_in_release(data_dir, f"pathfinder{resolution}/{name}", generate_hint), resolution
    except FileNotFoundError as err:
        generated = generated_pathfinder_folders(data_dir)
        for other in generated:
            if other.split("/", 1)[1] == name:
                folder = find_in_release(data_dir, other)
                marker = generated_marker(folder) or {}
                return folder, int(marker.get("params", {}).get("resolution", resolution))
        if not generated:
            raise
        listed = ", ".join(f"{g} (--difficulty {g.split('/', 1)[1]})" for g in generated)
        raise FileNotFoundError(f"{err}; generated folders there: {listed}") from None


@dataclass(frozen=True)
class PathfinderEntry:
    """One image listed in a metadata file."""

    path: Path
    label: int
    where: str  # "<metadata file>:<line>", for error messages
    # The key LRA's TFDS builder gives the image: "<field 0>_<field 1>_<line number in its file>".
    key: str = ""
    empty: bool = False  # a zero-byte PNG (kept only by `read_pathfinder_index(keep_empty=True)`)


def read_pathfinder_index(folder: str | os.PathLike[str], keep_empty: bool = False) -> list[PathfinderEntry]:
    """Every image of a Pathfinder difficulty folder, in batch order, empty PNGs skipped.

    The known empty image of the official data (and any other zero-byte PNG) is skipped with one
    warning giving the count (`keep_empty`: listed with `empty=True`, for `split_entries` to drop
    after ordering, as LRA does); a missing image or a malformed metadata line is a ValueError.
    """
    folder = Path(folder)
    meta_dir = folder / "metadata"
    if not meta_dir.is_dir():
        raise FileNotFoundError(
            f"{meta_dir} not found; expected the Pathfinder layout imgs/<batch>/ + metadata/<batch>.npy"
        )
    files = sorted(
        meta_dir.glob("*.npy"), key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem)
    )
    if not files:
        raise FileNotFoundError(f"{meta_dir} holds no <batch>.npy metadata files")
    entries: list[PathfinderEntry] = []
    empty: list[str] = []
    for meta in files:
        with open(meta, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                fields = line.split()
                if not fields:
                    continue
                where = f"{meta}:{lineno}"
                if len(fields) < 4:
                    raise ValueError(
                        f"{where}: expected at least 4 space-separated fields, got {len(fields)}"
                    )
                if fields[3] not in ("0", "1"):
                    raise ValueError(f"{where}: bad label {fields[3]!r} (expected 0 or 1)")
                image = folder / fields[0] / fields[1]
                try:
                    size = image.stat().st_size
                except FileNotFoundError:
                    raise ValueError(f"{where}: image {image} is listed but missing") from None
                key = f"{fields[0]}_{fields[1]}_{lineno}"
                if size == 0:
                    empty.append(str(image))
                    if keep_empty:
                        entries.append(PathfinderEntry(image, int(fields[3]), where, key, empty=True))
                    continue
                entries.append(PathfinderEntry(image, int(fields[3]), where, key))
    if empty:
        warnings.warn(
            f"skipped {len(empty)} empty PNG(s) in {folder} (e.g. {empty[0]}); the official data has one",
            stacklevel=2,
        )
    return entries


def tfds_order(entries: Sequence[PathfinderEntry], split_name: str) -> list[PathfinderEntry]:
    """`entries` in the order of a TFDS build of their folder: ascending md5(salt + key) as a
    128-bit integer, the salt being the TFDS split name ("easy", "intermediate", "hard"). TFDS's
    writers (tensorflow_datasets/core/hashing.py, tfrecords_writer.py) store a split so; LRA's
    percentage slices of the split are then taken in this order."""
    salted = hashlib.md5(split_name.encode("utf-8"))

    def hashed(entry: PathfinderEntry) -> int:
        digest = salted.copy()
        digest.update(entry.key.replace("\\", "/").encode("utf-8"))
        return int(digest.hexdigest(), 16)

    return sorted(entries, key=hashed)


def split_entries(
    entries: Sequence[PathfinderEntry],
    split: str,
    counts: tuple[int, int, int] | None = None,
    order: str = "batch",
    folder_name: str = "",
) -> list[PathfinderEntry]:
    """The `split` slice: explicit (train, val, test) counts, or LRA's 80% / 10% / 10%, of the
    entries in `order`: "batch" (as listed) or "tfds" (`tfds_order`, salted with the TFDS split
    name of `folder_name`, e.g. "curv_contour_length_14" -> "hard"). Empty images are dropped
    after the slicing, as LRA's pipeline filters them."""
    if order not in SPLIT_ORDERS:
        raise ValueError(f"unknown split order {order!r}; valid: {', '.join(SPLIT_ORDERS)}")
    if order == "tfds":
        if folder_name not in PATHFINDER_TFDS_SPLITS:
            raise ValueError(
                f"split order 'tfds' needs one of LRA's Pathfinder folders ({', '.join(PATHFINDER_TFDS_SPLITS)}); "
                f"got {folder_name!r}; use data.split_order=batch"
            )
        entries = tfds_order(entries, PATHFINDER_TFDS_SPLITS[folder_name])
    n = len(entries)
    if counts is not None:
        start = {"train": 0, "val": counts[0], "test": counts[0] + counts[1]}[split]
        stop = start + counts[("train", "val", "test").index(split)]
        if stop > n:
            raise ValueError(
                f"the Pathfinder folder holds {n} images, fewer than the {sum(counts)} requested"
            )
    else:
        lo, hi = PATHFINDER_FRACTIONS[split]
        start, stop = int(round(lo * n)), int(round(hi * n))
    return [entry for entry in entries[start:stop] if not entry.empty]


def _decode_pngs(items: list[tuple[str, str]], side: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(items), side * side), dtype=np.uint8)
    for i, (path, where) in enumerate(items):
        try:
            with Image.open(path) as image:
                image.load()
                if image.mode != "L":
                    image = image.convert("L")
                pixels = np.asarray(image, dtype=np.uint8)
        except Exception as err:  # Pillow raises several types for broken files
            raise ValueError(f"{path} ({where}): unreadable PNG: {err}") from None
        if pixels.shape != (side, side):
            raise ValueError(
                f"{path} ({where}): expected a {side}x{side} image, got {pixels.shape[1]}x{pixels.shape[0]}"
            )
        out[i] = pixels.reshape(-1)
    return out


def read_pathfinder_images(
    entries: Sequence[PathfinderEntry], side: int, workers: int = 0, offset: int = 0, dtype: type = np.uint8
) -> np.ndarray:
    """[n, side*side] pixels + `offset` (as `dtype`) of the listed PNGs, decoded in `workers`
    processes (0 = auto) straight into one array, so Path-X needs no second full-size copy."""
    items = [(str(e.path), e.where) for e in entries]
    out: np.ndarray = np.empty((len(items), side * side), dtype=dtype)
    workers = workers or default_workers()
    chunk = 512
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    with contextlib.ExitStack() as stack:
        if workers <= 1 or len(chunks) <= 2:
            parts: Iterable[np.ndarray] = map(_decode_pngs, chunks, [side] * len(chunks))
        else:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=worker_context()))
            parts = pool.map(_decode_pngs, chunks, [side] * len(chunks))
        start = 0
        for part in progress(parts, total=len(chunks), desc="decoding PNGs", unit=" chunks"):
            block = out[start : start + len(part)]
            block[:] = part
            block += offset
            start += len(part)
    return out
