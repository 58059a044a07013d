"""The accuracy–cost frontier: which attention, at what accuracy and what cost (the LRA paper's Figure 3).

For every preset table of the leaderboard and every attention label in it, one point per panel
(``avg`` and each task):

* ``accuracy`` -- the leaderboard's number in %: the task's cell, or the row's Avg over the table's
  tasks (`results.leaderboard.averages`: only for rows with an accuracy in every column);
* ``speed_vs_full`` -- examples per second relative to full attention on the same machine (> 1 is
  faster);
* ``memory_vs_full`` -- peak memory relative to full attention (< 1 is less);
* ``on_frontier`` -- Pareto-optimal in (accuracy, speed): no other attention of the panel is at
  least as accurate and at least as fast while better on one of the two;
* ``ci_low``, ``ci_high`` -- the accuracy's 95% interval in % (the leaderboard's: results/stats.py),
  drawn as error bars;
* ``within_noise`` -- the point's place on or off the frontier rests on accuracy differences the
  tests cannot resolve (`noise_marks`): a point on the frontier is on it *only within noise* when an
  attention at least as fast cannot be told apart from it in accuracy (with noise, it may be
  dominated); a point off the frontier is on it *within noise* when no attention dominating it is
  resolved as more accurate. The tests are the leaderboard's (paired where both kept per-example
  predictions), Holm-corrected over the attentions each point is compared with; speed is taken as
  measured (its noise is the cost records' business).

Where the cost of a task comes from (stated in every caption, with the machine and the length):

1. ``bench`` -- `lra bench model` records (one training step of the LRA Text model) at the task's
   sequence length, measured on the device the task's full-attention runs trained on. A ratio is
   formed only within one bench call (`bench_call_id`, results/costs.py): per attention, the newest
   call that measured both it and full attention there; in that call the fastest backend measured.
   Speed is per example (the bench may halve the batch of an attention that does not fit). A ratio
   is marked unreliable (†, `cost_unreliable`) when either record is, by the rule of results/costs.py.
2. ``runs`` -- for an attention without such a bench record (none measured, or measured with other
   parameters than the table's, or only in another call than full attention's), the runs' own median
   training throughput (``train_tokens_per_s``) and peak memory (`run_peak_memory`), mean over the
   seeds the leaderboard counts, from runs on the device of the task's full-attention runs, relative
   to full attention's. Only comparable within one machine and one ``--jobs``. The caption names the
   attentions whose cost comes from here when others come from the bench.

Costs are relative to full attention; a task without a full-attention cost has no costs. The Avg
panel's costs are geometric means of the per-task ratios over the table's tasks (the ratio itself
when the table has one task or one length), for attentions with a cost on every task.

The frontier, exactly:

* only points with both an accuracy and a cost take part; the others are listed, never dropped;
* points at chance (a task's FAIL cell; in Avg, a row whose every cell is FAIL) are drawn but
  neither join the frontier nor push others off it: the frontier is among attentions that learned;
* accuracies are compared at the precision the tables show (0.01 percentage points), speeds at
  three significant digits; points equal on both are all on the frontier or all off it.

Modules: `pareto` (the frontier and the noise marks), `cost_sources` (the costs of one task),
`points` (every preset's points), `rendering` (tables, captions, files).
"""

from .cost_sources import BENCH, REFERENCE, RUNS, CostSource, run_memory_meaning, run_peak_memory
from .pareto import noise_marks, pareto_front
from .points import AVG, POINT_COLUMNS, Frontier, build, select_labels
from .rendering import (
    FOOTNOTES,
    frontier_mark,
    frontier_view,
    long_table,
    missing_cost_line,
    panel_title,
    ratio_text,
    render,
    table,
    unreliable_line,
    write_all,
)

__all__ = [
    "AVG",
    "BENCH",
    "FOOTNOTES",
    "POINT_COLUMNS",
    "REFERENCE",
    "RUNS",
    "CostSource",
    "Frontier",
    "build",
    "frontier_mark",
    "frontier_view",
    "long_table",
    "missing_cost_line",
    "noise_marks",
    "panel_title",
    "pareto_front",
    "ratio_text",
    "render",
    "run_memory_meaning",
    "run_peak_memory",
    "select_labels",
    "table",
    "unreliable_line",
    "write_all",
]
