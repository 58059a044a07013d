"""The TFDS source: `tensorflow-datasets` without TensorFlow (an optional extra, imported lazily).

Datasets are read through `tfds.data_source` (random access to ArrayRecord files). The data dir is
`$TFDS_DATA_DIR`, else `<data_dir>/tfds`. A dataset that is not prepared yet is downloaded and
prepared there; catalog builders whose preparation needs TensorFlow (e.g. `cifar10`) fail with a
message saying so -- install TensorFlow once to prepare, or use the hf source.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .hf import MissingExtraError

TFDS_DIR = "tfds"
EXTRA_HINT = "pip install -e '.[tfds]' (or pip install tensorflow-datasets array-record)"


def require_tfds() -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise MissingExtraError(
            f"the tfds source needs the optional package 'tensorflow-datasets': {EXTRA_HINT}"
        ) from None
    return tfds


def tfds_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(os.environ.get("TFDS_DATA_DIR") or Path(data_dir) / TFDS_DIR)


def load_split(name: str, split: str, data_dir: str | os.PathLike[str]) -> Sequence[dict[str, Any]]:
    """Random-access records of `name` for a TFDS split expression such as 'train[:90%]'."""
    tfds = require_tfds()
    root = tfds_dir(data_dir)
    try:
        return tfds.data_source(
            name,
            split=split,
            data_dir=str(root),
            download=True,
            builder_kwargs={"file_format": "array_record"},
        )
    except ModuleNotFoundError as err:
        if "tensorflow" in str(err):
            raise ValueError(
                f"TFDS needs TensorFlow to prepare {name!r}; prepare it once with TensorFlow installed "
                f"(tfds.builder({name!r}, data_dir={str(root)!r}, file_format='array_record').download_and_prepare()), "
                "or use --source hf"
            ) from None
        raise
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileNotFoundError(
            f"could not load TFDS dataset {name!r} split {split!r} from {root} ({first})"
        ) from None
