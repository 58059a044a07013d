"""The Hugging Face source: `datasets` (an optional extra, imported lazily).

A dataset is found, in order, at: a local path given as the repo (a `save_to_disk` copy, or a
folder of files), `<data_dir>/hf/<owner>__<name>` (a `save_to_disk` copy), or the hub through
`datasets.load_dataset`, which serves from its own cache (`HF_HOME`) when offline
(`HF_HUB_OFFLINE=1`). Repos are written `owner/name[/folder][@revision]`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HF_DIR = "hf"
EXTRA_HINT = "pip install -e '.[hf]' (or pip install datasets)"


class MissingExtraError(ImportError, ValueError):
    """An optional dependency is not installed; the message names the extra to install."""


def require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingExtraError(
            f"the hf source needs the optional package 'datasets': {EXTRA_HINT}"
        ) from None
    return datasets


@dataclass(frozen=True)
class HubRef:
    """`owner/name[/folder][@revision]` split into its parts."""

    repo_id: str
    folder: str = ""
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str) -> HubRef:
        path, _, revision = spec.partition("@")
        parts = [p for p in path.strip("/").split("/") if p]
        if len(parts) < 2:
            raise ValueError(f"Hugging Face repo must be 'owner/name[/folder][@revision]', got {spec!r}")
        return cls("/".join(parts[:2]), "/".join(parts[2:]), revision or None)

    def local_name(self) -> str:
        return self.repo_id.replace("/", "__")


def local_copy(data_dir: str | os.PathLike[str], spec: str) -> Path:
    """Where a `save_to_disk` copy of `spec` is looked for under `data_dir`."""
    return Path(data_dir) / HF_DIR / HubRef.parse(spec).local_name()


def load_split(spec: str, split: str, data_dir: str | os.PathLike[str]) -> Any:
    """One split of a Hugging Face dataset as a `datasets.Dataset` (see the module docstring)."""
    datasets = require_datasets()
    path = Path(spec).expanduser()
    if not path.exists():
        path = local_copy(data_dir, spec)
    if path.exists():
        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{path} is not a datasets save_to_disk folder: {err}") from None
        if not isinstance(loaded, datasets.DatasetDict):  # one split saved alone: which one is unknown
            raise ValueError(
                f"{path} holds a single split without its name; save every split: "
                "datasets.load_dataset(REPO).save_to_disk(PATH) (a DatasetDict)"
            )
        if split not in loaded:
            raise ValueError(f"{path} has no split {split!r}; it has {', '.join(loaded)}")
        return loaded[split]
    ref = HubRef.parse(spec)
    try:
        return datasets.load_dataset(
            ref.repo_id, data_dir=ref.folder or None, revision=ref.revision, split=split
        )
    except Exception as err:  # offline / not cached / unknown repo: all mean "no data here"
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileNotFoundError(
            f"could not load Hugging Face dataset {spec!r} ({first}); when offline, save a copy first "
            f"with datasets.load_dataset({ref.repo_id!r}).save_to_disk({str(local_copy(data_dir, spec))!r})"
        ) from None


def fetch_file(spec: str, filename: str) -> Path:
    """A file of a hub dataset repo (downloaded or from the hub cache), or of a local folder."""
    local = Path(spec).expanduser()
    if local.is_dir():
        path = local / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        return path
    require_datasets()
    from huggingface_hub import hf_hub_download

    ref = HubRef.parse(spec)
    remote = f"{ref.folder}/{filename}" if ref.folder else filename
    try:
        return Path(hf_hub_download(ref.repo_id, remote, repo_type="dataset", revision=ref.revision))
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileNotFoundError(
            f"could not fetch {remote} from Hugging Face dataset {ref.repo_id!r} ({first})"
        ) from None
