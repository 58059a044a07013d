"""The leaderboard: rows = attention (with its parameters), columns = tasks, one table per preset.

A cell is the mean test accuracy (in %, of the checkpoint the run's preset reports: the
best-validation one, the last for `lra` (`train.report_checkpoint`); Text: the last, see
`results.records.val_is_test`) over the seeds that finished with status ok, with its 95%
interval (results/stats.py: Clopper–Pearson for one seed, a bootstrap over seeds and test
examples for several) and its number of test examples. Rules, also printed as footnotes under
every table:

* FAIL -- the cell's mean test accuracy is at most ``chance + 2 * sqrt(chance * (1 - chance) / n_test)``:
  within two binomial standard errors of a classifier that always predicts the most frequent test
  label (`chance_acc` in the record; 1 / classes when absent); shown as "FAIL 12.4 [9.8, 15.4]",
  the measured accuracy and its interval. A cell whose every seed diverged is FAIL as well (alone:
  it has no accuracy).
* `°` -- the cell's interval reaches chance (its lower end is at or below it): the cell is not
  FAIL, but the test set cannot tell it from chance at 95%.
* OOM -- every run of the cell's configuration failed by running out of memory (the LRA paper
  reported such cells as FAIL); no accuracy, so the row has no Avg.
* `–` -- no finished run for this attention and task.
* `‡` -- the cell's runs have several configurations (beyond the seed): only the newest run's
  configuration counts, whatever that run's status; the others are listed under the table.
* `†` -- some seeds of that configuration diverged or failed; the value is over the remaining
  seeds. Diverged and failed runs are listed under the table.
* `§` -- the cell's configuration, beyond the attention, differs from that of most cells of its
  column (ties: the newest run's); the differing settings are listed under the table. Such cells
  are never bold, and their row's Avg carries the mark and is never bold.
* Avg -- the mean of the row's cells over the table's columns except Path-X (LRA's published
  average leaves it out), computed only for rows with a measured accuracy in each of them (FAIL
  cells count at their measured accuracy); otherwise `–`. Its interval: the bootstrap of that mean,
  each task resampled independently. A table with Path-X also shows "Avg with Path-X" over every
  column.
* Bold (markdown) -- every cell that cannot be told apart from its column's best: the best (highest
  mean among non-FAIL cells without `§`) and each cell whose difference from it is not significant
  at 0.05 after Holm's correction over the column (`results.stats.ties_with_best`: McNemar's exact
  test or a paired bootstrap when both were evaluated on the same test examples with per-example
  predictions, otherwise an unpaired test). The Avg column follows the same rule on the Avg's
  bootstrap. A table never bolds a single winner the tests cannot separate.

Published numbers (results/published.csv) of the attentions on the table come in a separate block
and never enter an average.

Column titles and the order of columns and rows: results/order.py (recorded with the runs, else the
task and attention registries; plugins after the built-ins, alphabetically).

Modules: `cells` (the cells, their statistics and the Avg), `configurations` (which runs share a
configuration), `rendering` (tables, footnotes, CSV, files).
"""

from .cells import (
    AT_CHANCE,
    AVG_EXCLUDES,
    AVG_WITH_PATHX,
    CELL_COLUMNS,
    FAIL,
    MISSING,
    MIXED,
    OOM,
    OTHER_SETUP,
    PARTIAL,
    UNCERTAINTY_COLUMNS,
    AverageStat,
    Leaderboard,
    TableStats,
    average_tasks,
    averages,
    build,
    chance_threshold,
    flag,
    has_pathx_average,
)
from .configurations import BEYOND_ATTENTION_IGNORED, one_configuration
from .rendering import (
    FOOTNOTES,
    accuracy_text,
    published_table,
    render,
    skipped_line,
    table,
    wide,
    write_all,
)

__all__ = [
    "AT_CHANCE",
    "AVG_EXCLUDES",
    "AVG_WITH_PATHX",
    "BEYOND_ATTENTION_IGNORED",
    "CELL_COLUMNS",
    "FAIL",
    "FOOTNOTES",
    "MISSING",
    "MIXED",
    "OOM",
    "OTHER_SETUP",
    "PARTIAL",
    "UNCERTAINTY_COLUMNS",
    "AverageStat",
    "Leaderboard",
    "TableStats",
    "accuracy_text",
    "average_tasks",
    "averages",
    "build",
    "chance_threshold",
    "flag",
    "has_pathx_average",
    "one_configuration",
    "published_table",
    "render",
    "skipped_line",
    "table",
    "wide",
    "write_all",
]
