"""Offline ListOps generator: the LRA distribution, plus small named variants for CPU runs.

An expression is a random tree. Below `max_depth` a node is a leaf digit 0..9 with probability
`leaf_prob` (0.75 in LRA), otherwise an operator (MIN, MAX, MED, SM, uniformly) with 2..max_args
children; at `max_depth` it is always a leaf; the root is at depth 1. A tree is kept when its
length -- tokens without parentheses: 1 per digit, 2 per operator (`[OP` and `]`) -- is strictly
between `min_length` and `max_length`; duplicates are dropped. The label is the value: MIN, MAX,
MED = int(median) (the mean of the two middle values, truncated, for an even count), SM = sum
mod 10. Expressions are written as LRA writes them, a left-nested binary bracketing:
`[MAX 2 9 4 ]` -> `( ( ( ( [MAX 2 ) 9 ) 4 ) ] )`.

The generator is deterministic by (parameters, seed). LRA's own generator was not seeded, so the
official files cannot be regenerated; these are statistically equivalent, not identical.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lra.io import atomic_path, atomic_write_json

from .lra_release import GENERATED_MARKER, LISTOPS_DIR, LISTOPS_FILES, write_listops_tsv
from .progress import default_workers, progress, worker_context

OPERATORS = ("MIN", "MAX", "MED", "SM")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ListOpsParams:
    """Every setting of the ListOps generator (defaults: the LRA distribution and split sizes)."""

    min_length: int = field(
        default=500, metadata={"help": "keep trees longer than this (tokens, no parentheses)"}
    )
    max_length: int = field(default=2000, metadata={"help": "keep trees shorter than this"})
    max_depth: int = field(default=10, metadata={"help": "depth of the deepest operator + 1 (root = 1)"})
    max_args: int = field(default=10, metadata={"help": "most children of an operator (at least 2)"})
    leaf_prob: float = field(
        default=0.75, metadata={"help": "probability that a node above max_depth is a digit"}
    )
    operators: tuple[str, ...] = field(default=OPERATORS, metadata={"help": "subset of MIN,MAX,MED,SM"})
    n_train: int = field(default=96_000, metadata={"help": "training expressions"})
    n_val: int = field(default=2_000, metadata={"help": "validation expressions"})
    n_test: int = field(default=2_000, metadata={"help": "test expressions"})

    def check(self) -> None:
        if not 0 <= self.min_length < self.max_length - 1:
            raise ValueError(
                f"ListOps lengths must satisfy 0 <= min_length < max_length - 1; got {self.min_length}, {self.max_length}"
            )
        if self.max_depth < 2:
            raise ValueError(f"ListOps max_depth must be >= 2 (the root is depth 1); got {self.max_depth}")
        if self.max_args < 2:
            raise ValueError(f"ListOps max_args must be >= 2; got {self.max_args}")
        if not 0.0 <= self.leaf_prob < 1.0:
            raise ValueError(f"ListOps leaf_prob must be in [0, 1); got {self.leaf_prob}")
        bad = [op for op in self.operators if op not in OPERATORS]
        if bad or not self.operators:
            raise ValueError(
                f"ListOps operators must be a non-empty subset of {','.join(OPERATORS)}; got {bad or 'none'}"
            )
        if min(self.n_train, self.n_val, self.n_test) < 0 or self.n_train + self.n_val + self.n_test == 0:
            raise ValueError("ListOps split sizes must be >= 0 and not all 0")

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


# Named variants. "lra" is the distribution of the official data; the others are for CPU runs.
LISTOPS_VARIANTS: dict[str, ListOpsParams] = {
    "lra": ListOpsParams(),
    # 21..99 tokens (median ~26), at most 3 nested operators: learnable in a minute on a CPU.
    "short": ListOpsParams(
        min_length=20, max_length=100, max_depth=4, max_args=5, n_train=20_000, n_val=1_000, n_test=1_000
    ),
    # 100..500 tokens, depth up to 6: between the two.
    "medium": ListOpsParams(
        min_length=100, max_length=500, max_depth=6, max_args=8, n_train=40_000, n_val=2_000, n_test=2_000
    ),
}


def listops_params(variant: str, **overrides: Any) -> ListOpsParams:
    """The named variant with `overrides` (None values ignored), validated."""
    if variant not in LISTOPS_VARIANTS:
        raise ValueError(f"unknown ListOps generator {variant!r}; valid: {', '.join(LISTOPS_VARIANTS)}")
    params = dataclasses.replace(
        LISTOPS_VARIANTS[variant], **{k: v for k, v in overrides.items() if v is not None}
    )
    params.check()
    return params


class _TooLong(Exception):
    pass


def _sample_tree(rng: random.Random, p: ListOpsParams) -> tuple[Any, int]:
    """(tree, length); a tree is an int or (operator, [children]). Raises _TooLong past max_length."""
    length = 0

    def node(depth: int) -> Any:
        nonlocal length
        if depth >= p.max_depth or rng.random() < p.leaf_prob:
            length += 1
            if length >= p.max_length:
                raise _TooLong
            return rng.randint(0, 9)
        op = rng.choice(p.operators)
        n_children = rng.randint(2, p.max_args)
        length += 2
        return op, [node(depth + 1) for _ in range(n_children)]

    tree = node(1)
    return tree, length


def evaluate(tree: Any) -> int:
    """The value of a tree (0..9)."""
    if isinstance(tree, int):
        return tree
    op, children = tree
    values = [evaluate(c) for c in children]
    if op == "MIN":
        return min(values)
    if op == "MAX":
        return max(values)
    if op == "MED":
        return int(np.median(values))
    return sum(values) % 10


def to_string(tree: Any) -> str:
    """LRA's text form: every step of the left-nested binary bracketing in round parentheses."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    text = f"[{op}"
    for child in children:
        text = f"( {text} {to_string(child)} )"
    return f"( {text} ] )"


CHUNK = 500  # accepted expressions per independently seeded chunk


def _generate_chunk(params: ListOpsParams, seed: int, index: int) -> list[tuple[str, int]]:
    """CHUNK accepted (expression, label) pairs from the chunk's own random stream."""
    rng = random.Random(f"listops:{seed}:{index}")
    out: list[tuple[str, int]] = []
    attempts = 0
    while len(out) < CHUNK:
        attempts += 1
        if attempts > 1_000 * CHUNK:  # the variants above accept 4-8% of the trees
            raise ValueError(
                f"ListOps generator accepts almost no trees with {params}; "
                "widen the length range or raise max_depth / max_args"
            )
        try:
            tree, length = _sample_tree(rng, params)
        except _TooLong:
            continue
        if params.min_length < length < params.max_length:
            out.append((to_string(tree), evaluate(tree)))
    return out


def generate_listops(
    params: ListOpsParams, seed: int = 0, workers: int = 0
) -> dict[str, tuple[list[str], list[int]]]:
    """{split: (expressions, labels)} drawn from `params`, deterministic by (params, seed).

    Chunks of candidates are generated in `workers` processes (0 = all cores) and merged in chunk
    order, so the result does not depend on the number of workers.
    """
    params.check()
    total = params.n_train + params.n_val + params.n_test
    workers = workers or default_workers()
    found: dict[str, int] = {}
    index = 0
    pool = (
        ProcessPoolExecutor(workers, mp_context=worker_context())
        if workers > 1 and total > 2 * CHUNK
        else None
    )
    try:
        with progress(total=total, desc="generating ListOps", unit=" expr") as bar:
            while len(found) < total:
                batch = range(index, index + max(1, workers) * 2)
                index = batch.stop
                if pool is None:
                    chunks: Iterable[list[tuple[str, int]]] = map(
                        _generate_chunk, [params] * len(batch), [seed] * len(batch), batch
                    )
                else:
                    chunks = pool.map(_generate_chunk, [params] * len(batch), [seed] * len(batch), batch)
                before = len(found)
                for chunk in chunks:
                    for text, label in chunk:
                        if len(found) < total and text not in found:
                            found[text] = label
                bar.update(len(found) - before)
                if len(found) == before:
                    raise ValueError(
                        f"found only {len(found)} of {total} distinct ListOps expressions with {params}; "
                        "widen the length range, raise max_depth / max_args, or ask for fewer"
                    )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    items = list(found.items())
    out: dict[str, tuple[list[str], list[int]]] = {}
    start = 0
    for split, n in params.sizes().items():
        chunk = items[start : start + n]
        out[split] = ([t for t, _ in chunk], [v for _, v in chunk])
        start += n
    return out


def write_listops(
    out_dir: str | os.PathLike[str], params: ListOpsParams, seed: int = 0, workers: int = 0
) -> Path:
    """Generate and write `<out_dir>/listops-1000/basic_{train,val,test}.tsv` (each file atomic),
    then the `generated.json` marker (the generator's settings) that tells these files from the
    official ones. ValueError if the folder already holds ListOps files."""
    folder = Path(out_dir) / LISTOPS_DIR
    existing = [name for name in LISTOPS_FILES.values() if (folder / name).exists()]
    if existing:
        raise ValueError(
            f"{folder} already holds ListOps data ({existing[0]}); delete it or choose another output folder"
        )
    data = generate_listops(params, seed, workers)
    for split, (expressions, labels) in data.items():
        with atomic_path(folder / LISTOPS_FILES[split]) as tmp:
            write_listops_tsv(tmp, expressions, labels)
    marker = {"task": "listops", "seed": seed, "params": dataclasses.asdict(params), "complete": True}
    atomic_write_json(folder / GENERATED_MARKER, marker)
    return folder
