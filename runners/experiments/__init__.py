"""MiTA experiments as commands: sweeps and checkpoint swaps whose results land in the results store.

* `sweep_mk` (``lra sweep mk``) -- evaluate one trained MiTA checkpoint at other numbers of
  landmarks m and keys per expert k, without retraining ("train small, infer large"): one
  ``kind="eval"`` record per grid cell, a table and a heat map of accuracy over the grid with the
  trained (m, k) outlined.
* `swap_run` / `swap_matrix` (``lra swap``) -- evaluate a checkpoint trained with one attention using
  another. Weights transfer because the layer's projections are the same for every mechanism and
  MiTA adds no parameters; parameters an evaluation attention has and the checkpoint lacks (learned
  landmark queries) are initialised with the run's seed and named in the records and the table,
  parameters it does not use are dropped and named too. Over a set of runs of one task: the matrix
  train attention x evaluation attention.
* `sweep_scaling` (``lra sweep scaling``) -- forward and forward + backward time of every attention
  (and MiTA backend) against N on log-log axes, the paper's wall-clock figure: `runners.bench.attention`
  measures and writes the efficiency records; this adds the figure and the length from which each
  attention is faster than full attention.
* `sweep_variants` (``lra sweep s``, ``lra sweep landmarks``) -- train MiTA variants on one task with
  everything else fixed (one `runners.suite` grid, so finished runs are reused and interrupted ones
  resume), then tabulate accuracy, keys per query, parameters and throughput with the routing
  diagnostics of each trained model (`attention_zoo.mita.diagnostics`: expert-load entropy, pruned
  fraction, overlap with full-attention top-k) on a few validation batches.

Everything goes under one results root, `out` (default ``lra_experiments``, kept apart from the
suite's ``lra_runs`` so that short sweep runs never mix into its leaderboard)::

    mk/<task>/<run tag>/<checkpoint>-<split>/m<M>-k<K>.json    mk-<checkpoint>-<split>.{md,csv,png}
    swap/<task>/<run tag>/<checkpoint>-<split>/<attention>.json  swap-<checkpoint>-<split>.{md,csv,png}
    swap/<task>/matrix-<checkpoint>-<split>.{md,csv,png}
    scaling/efficiency/...  (runners.bench.attention)            scaling/scaling-<device>-<config>.{md,png}
    <s|landmarks>/<task>/runs/<task>/<attention>/<seed>/ (runs)   diagnostics/...  sweep-<name>.{md,csv,png}

A run tag is ``<attention slug>-seed<seed>-<configuration hash prefix>``. Records are rewritten when
the same cell is evaluated again; every table and figure is written atomically.

Modules: `runs` (trained runs and attention specs under a run's preset), `evaluation` (a checkpoint
evaluated with any attention, routing diagnostics), `figures` (tables and figures), then one module
per experiment: `mk`, `swap`, `scaling`, `variants`. Every public name is importable from here.
"""

from __future__ import annotations

from ..defaults import EXPERIMENTS_OUT
from .evaluation import (
    DIAGNOSTIC_KEYS,
    EvalOptions,
    Evaluation,
    Evaluator,
    routing_diagnostics,
)
from .figures import (
    DPI,
    ExperimentResult,
)
from .mk import (
    DEFAULT_GRID,
    GRID_AXES,
    LEARNED_LANDMARKS,
    mk_frame,
    mk_grid,
    mk_markdown,
    parse_grid,
    plot_mk,
    sweep_mk,
)
from .runs import (
    CHECKPOINTS,
    SPLITS,
    Attention,
    Echo,
    TrainedRun,
    find_runs,
    is_mita,
    load_run,
    resolve_attentions,
    resolve_one,
    spec_under_preset,
)
from .scaling import (
    SCALING_LENGTHS,
    crossover_markdown,
    crossover_table,
    parse_scaling_lengths,
    plot_scaling,
    sweep_scaling,
)
from .swap import (
    matrix_markdown,
    matrix_table,
    plot_matrix,
    plot_swap,
    swap_frame,
    swap_markdown,
    swap_matrix,
    swap_run,
)
from .variants import (
    VARIANT_SWEEPS,
    SweepResult,
    VariantSweepConfig,
    plot_variants,
    sweep_variants,
    variant_frame,
    variant_markdown,
    variant_specs,
)

__all__ = [
    "Attention",
    "CHECKPOINTS",
    "crossover_markdown",
    "crossover_table",
    "DEFAULT_GRID",
    "DIAGNOSTIC_KEYS",
    "DPI",
    "Echo",
    "EvalOptions",
    "Evaluation",
    "Evaluator",
    "ExperimentResult",
    "EXPERIMENTS_OUT",
    "find_runs",
    "GRID_AXES",
    "is_mita",
    "LEARNED_LANDMARKS",
    "load_run",
    "matrix_markdown",
    "matrix_table",
    "mk_frame",
    "mk_grid",
    "mk_markdown",
    "parse_grid",
    "parse_scaling_lengths",
    "plot_matrix",
    "plot_mk",
    "plot_scaling",
    "plot_swap",
    "plot_variants",
    "resolve_attentions",
    "resolve_one",
    "routing_diagnostics",
    "SCALING_LENGTHS",
    "spec_under_preset",
    "SPLITS",
    "swap_frame",
    "swap_markdown",
    "swap_matrix",
    "swap_run",
    "sweep_mk",
    "sweep_scaling",
    "sweep_variants",
    "SweepResult",
    "TrainedRun",
    "variant_frame",
    "variant_markdown",
    "variant_specs",
    "VARIANT_SWEEPS",
    "VariantSweepConfig",
]
