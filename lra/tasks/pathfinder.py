"""Pathfinder (32x32, 1,024 tokens) and Path-X (128x128, 16,384 tokens): are the two markers
connected by one dashed curve?

Sources: `lra_release` (`pathfinder{32,128}/<difficulty>/`, LRA's first 80% / next 10% / last
10% as train / val / test, in batch order or in LRA's TFDS order: `DataConfig.split_order`) and `generated` (the offline snake generator; Pathfinder variants
"lra" and "easy", Path-X "lra"). `source="auto"` uses the official folder when it is under
`data_dir`, else the generator. Pixels are tokens: intensity + 1, or the sources' ids (black is
padding) with `DataConfig.pixel_zero_is_padding`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lra.data import generated, lra_release
from lra.data.cache import cached_split, file_signature, to_dataset
from lra.data.generate_pathfinder import write_pathfinder
from lra.data.pathfinder_params import (
    PATHFINDER_VARIANTS,
    PATHX_VARIANTS,
    PathfinderParams,
    params_description,
    pathfinder_params,
)
from lra.data.tokenizers import PIXEL_VOCAB_SIZE, pixel_tokenizer, render_pixels

from .base import DataConfig, LRADataset, TaskGenerator, TaskSpec, register_task

RESOLUTION = {"pathfinder": 32, "pathx": 128}


def _release_folder(task: str, data: DataConfig) -> str:
    return f"pathfinder{RESOLUTION[task]}/{lra_release.pathfinder_folder_name(data.difficulty)}"


def _loader(task: str) -> tuple[Callable[[str, DataConfig], LRADataset], Callable[[DataConfig], str]]:
    """The loader and the "auto" source rule of `task` ("pathfinder" or "pathx")."""

    def auto_source(data: DataConfig) -> str:
        folder = _release_folder(task, data) + "/metadata"
        return "lra_release" if lra_release.release_has(data.data_dir, folder) else "generated"

    def load(split: str, data: DataConfig) -> LRADataset:
        spec = SPECS[task]
        source = spec.resolve_source(data.source, data)
        if source == "generated":
            root, params = generated.ensure_generated(task, data)
            folder = root / params.folder()
            side = params.resolution
            counts = (params.n_train, params.n_val, params.n_test)
            origin = generated.data_source(task, data)
            key: dict[str, object] = {"generated": root.name}
            limit = 0
        else:
            hint = f"lra data generate --task {task} --out {data.data_dir}"
            folder, side = lra_release.find_pathfinder_folder(
                data.data_dir, RESOLUTION[task], data.difficulty, hint
            )
            counts = None
            origin = f"lra_release:{folder.parents[1]}"
            marker = lra_release.generated_marker(folder)  # written by `lra data generate --out`
            if marker is not None:  # its own split sizes, not the archive's 80/10/10 slicing
                params = marker["params"]
                counts = (params["n_train"], params["n_val"], params["n_test"])
                origin = f"generated-files:{folder}"
            key = {"files": file_signature(*sorted((folder / "metadata").glob("*.npy"))), "counts": counts}
            if data.split_order != "batch":  # keys of caches made before the option stay as they were
                key["split_order"] = data.split_order
            limit = data.limit(split)
        seq_len = data.seq_len or side * side
        tokenizer = pixel_tokenizer(data.pixel_zero_is_padding)

        def build() -> dict[str, np.ndarray]:
            if source == "generated" or counts is not None:  # generated splits are laid out in turn
                entries = lra_release.split_entries(lra_release.read_pathfinder_index(folder), split, counts)
            else:
                # LRA drops empty images after slicing its TFDS order; batch order drops them first.
                index = lra_release.read_pathfinder_index(folder, keep_empty=data.split_order == "tfds")
                entries = lra_release.split_entries(index, split, None, data.split_order, folder.name)
            if data.pixel_zero_is_padding:
                inputs = lra_release.read_pathfinder_images(entries, side)
            else:
                inputs = lra_release.read_pathfinder_images(entries, side, offset=1, dtype=np.int16)
            if seq_len != side * side:
                inputs = _fit(inputs, seq_len)
            return {"inputs": inputs, "labels": np.asarray([e.label for e in entries], dtype=np.int64)}

        arrays, meta = cached_split(
            data, task, source, split, seq_len, {**key, "tokenizer": tokenizer}, build
        )
        info = {
            "task": task,
            "split": split,
            "source": source,
            "data_source": origin,
            "path": str(folder),
            "tokenizer": tokenizer,
            "image_side": side,
            "cache": meta["cache"],
        }
        return to_dataset(arrays, limit, info)

    return load, auto_source


def _fit(inputs: np.ndarray, seq_len: int) -> np.ndarray:
    """Truncate or zero-pad flattened images to `seq_len` tokens."""
    out = np.zeros((inputs.shape[0], seq_len), dtype=inputs.dtype)
    n = min(seq_len, inputs.shape[1])
    out[:, :n] = inputs[:, :n]
    return out


_DESCRIPTION = (
    "{side}x{side} grayscale images of dashed curves with two markers; label 1 iff the markers are "
    "on the same curve. Flattened row-major to {n} pixel tokens."
)


def folder_files(folder: Path) -> list[Path]:
    """The metadata files, the first image each of them lists and the generator's record of a
    difficulty folder: what the data identity of the `lra_release` source signs."""
    metadata = sorted((folder / "metadata").glob("*.npy"))
    images = []
    for meta in metadata:
        with open(meta, encoding="utf-8") as fh:
            fields = fh.readline().split()
        if len(fields) >= 2:
            images.append(folder / fields[0] / fields[1])
    marker = folder / lra_release.GENERATED_MARKER
    return metadata + images + ([marker] if marker.is_file() else [])


def _release_files(task: str) -> Callable[[DataConfig], tuple[Path, list[Path]] | None]:
    def release_files(data: DataConfig) -> tuple[Path, list[Path]] | None:
        try:  # the folder the loader reads (a generated one may have another resolution)
            folder, _ = lra_release.find_pathfinder_folder(data.data_dir, RESOLUTION[task], data.difficulty)
        except FileNotFoundError:
            return None
        return folder.parents[1], folder_files(folder)

    return release_files


def _report(folder: Path, params: PathfinderParams) -> list[str]:
    entries = lra_release.read_pathfinder_index(folder)
    counts = (params.n_train, params.n_val, params.n_test)
    lines = []
    for split in ("train", "val", "test"):
        labels = [e.label for e in lra_release.split_entries(entries, split, counts)]
        balance = " ".join(str(int(c)) for c in np.bincount(np.asarray(labels, dtype=np.int64), minlength=2))
        lines.append(
            f"{split:<5} {len(labels):>7} images  {params.resolution}x{params.resolution}  labels {balance}"
        )
    return lines


def _read_back(folder: Path, out: str) -> str:
    """The official layout names the folder; a generated one says which it is."""
    how = f"--source lra_release --data-dir {out}"
    if lra_release.pathfinder_folder_name("hard") != folder.name:
        how += f" --difficulty {folder.name} (lra run / suite: --set data.difficulty={folder.name})"
    return how


def _generator(task: str, variants: dict[str, PathfinderParams]) -> TaskGenerator:
    def make_params(variant: str, **overrides: Any) -> PathfinderParams:
        return pathfinder_params(task, variant, **overrides)

    return TaskGenerator(
        params_type=PathfinderParams,
        variants=variants,
        make_params=make_params,
        write=write_pathfinder,
        describe=params_description,
        report=_report,
        read_back=_read_back,
    )


SPECS: dict[str, TaskSpec] = {}
for _order, _task, _title, _variants in (
    (4, "pathfinder", "Pathfinder", PATHFINDER_VARIANTS),
    (5, "pathx", "Path-X", PATHX_VARIANTS),
):
    _load, _auto = _loader(_task)
    _side = RESOLUTION[_task]
    SPECS[_task] = register_task(
        TaskSpec(
            name=_task,
            title=_title,
            seq_len=_side * _side,
            vocab_size=PIXEL_VOCAB_SIZE,
            num_classes=2,
            dual_input=False,
            splits={"train": 160_000, "val": 20_000, "test": 20_000},
            sources=("lra_release", "generated"),
            loader=_load,
            description=_DESCRIPTION.format(side=_side, n=_side * _side),
            auto_source=_auto,
            order=_order,
            generator=_generator(_task, _variants),
            release_files=_release_files(_task),
            render=render_pixels,
        )
    )
