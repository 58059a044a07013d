"""lra.data: data sources (official archive, Hugging Face, TFDS, offline generators), tokenisers
and the tensor cache behind the tasks in `lra.tasks`.

`prepare(task, data)` builds every split of a task once (generating and caching as needed) so
that parallel jobs started afterwards only read; `describe(task, data)` says what the data are
without touching them; `summarize(task, data)` adds the statistics that `lra data info` prints; `identity.data_identity(task, data)` names the data a run reads (source
and content signature, whatever their place) for its configuration hash. Submodules are imported
lazily so that `lra.data.tokenizers` and the generators stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lra.tasks.base import DataConfig, LRADataset


def prepare(task: str, data: DataConfig | None = None) -> dict[str, Any]:
    """Load (and so generate / cache) every split of `task`; returns sizes and provenance."""
    from lra import tasks

    spec = tasks.get(task)
    data = data or tasks.DataConfig()
    out: dict[str, Any] = {"task": task, "source": spec.resolve_source(data.source, data), "splits": {}}
    for split in spec.splits:
        ds = spec.load(split, data)
        out["data_source"] = ds.info.get("data_source")
        out["seq_len"] = ds.seq_len
        out["splits"][split] = {"n": len(ds), "cache": ds.info.get("cache")}
    return out


def split_stats(ds: LRADataset, num_classes: int) -> dict[str, Any]:
    """Size, token-length statistics (non-padding tokens) and label counts of one split."""
    import numpy as np

    lengths = (ds.inputs != 0).sum(dim=1).numpy()
    if ds.inputs2 is not None:
        lengths = np.concatenate([lengths, (ds.inputs2 != 0).sum(dim=1).numpy()])
    counts = np.bincount(ds.labels.numpy(), minlength=num_classes)
    n = len(ds)
    return {
        "n": n,
        "seq_len": ds.seq_len,
        "length_min": int(lengths.min()) if n else 0,
        "length_median": float(np.median(lengths)) if n else 0.0,
        "length_max": int(lengths.max()) if n else 0,
        "label_counts": counts.tolist(),
        "majority_fraction": float(counts.max() / n) if n else 0.0,
    }


def decode_example(task: str, ds: LRADataset, index: int = 0, pixel_zero_is_padding: bool = False) -> str:
    """A human-readable rendering of example `index` (the task's `TaskSpec.render`)."""
    from lra import tasks

    return tasks.get(task).render(ds, index, pixel_zero_is_padding)


def describe(task: str, data: DataConfig | None = None) -> dict[str, Any]:
    """What `task`'s data for `data` are, without loading or generating anything: the resolved
    source and, for the `generated` source, the variant, its parameters and sizes, the folder and
    whether it exists yet (`generated: None` for other sources)."""
    import dataclasses

    from lra import tasks

    from . import generated as gen

    spec = tasks.get(task)
    data = data or tasks.DataConfig()
    source = spec.resolve_source(data.source, data)
    out: dict[str, Any] = {"task": task, "source": source, "generated": None}
    if source == "generated":
        params = gen.generator_params(task, data)
        out["generated"] = {
            "variant": data.generator,
            "seed": data.gen_seed,
            "sizes": {split: getattr(params, f"n_{split}") for split in ("train", "val", "test")},
            "params": {
                k: v for k, v in dataclasses.asdict(params).items() if k not in ("n_train", "n_val", "n_test")
            },
            "folder": str(gen.generated_folder(task, data)),
            "exists": gen.is_generated(task, data),
        }
    return out


def summarize(task: str, data: DataConfig | None = None, splits: tuple[str, ...] = ()) -> dict[str, Any]:
    """`prepare` plus per-split statistics and a decoded training example (for `lra data info`)."""
    from lra import tasks

    spec = tasks.get(task)
    data = data or tasks.DataConfig()
    out: dict[str, Any] = {"task": task, "source": spec.resolve_source(data.source, data), "splits": {}}
    for split in splits or tuple(spec.splits):
        ds = spec.load(split, data)
        out["data_source"] = ds.info.get("data_source")
        out["splits"][split] = split_stats(ds, spec.num_classes)
        if "example" not in out and len(ds):
            out["example"] = decode_example(task, ds, 0, data.pixel_zero_is_padding)
            out["example_label"] = int(ds.labels[0])
    return out
