"""Uncertainty of test accuracies and of the differences between them (scipy.stats, statsmodels).

Every interval and test a table, `lra compare` or a figure shows is computed here; the tables'
captions and the README quote these definitions. All intervals are 95% and all tests two-sided
at 0.05 (`CONFIDENCE`, `ALPHA`).

**A cell's interval** (`Sample` = the counted runs of one attention on one task, one per seed):

* one seed: the Clopper–Pearson exact binomial interval of k correct out of n test examples
  (`scipy.stats.binomtest(k, n).proportion_ci(method="exact")`). Clopper–Pearson rather than
  Wilson: its coverage is at least 95% whatever the true accuracy (Wilson's is 95% on average and
  dips below it at some accuracies), and it inverts the same exact binomial test that McNemar's
  test below is; at n = 500 it is at most about 0.2 points wider.
* several seeds: the 2.5 and 97.5 percentiles of the bootstrap replicates below.

**Bootstrap replicates** (`replicates`; `BOOTSTRAP_REPLICATES` = 10,000, seeded from the cell and
test-set names, so the same records give the same tables): each replicate resamples

1. the seeds, with replacement (the cell's mean over its seeds is redrawn), and
2. the test examples, with replacement, once per replicate and test set: the same draw serves every
   seed of every cell evaluated on that test set (a crossed, two-way bootstrap: seeds and
   attentions are scored on the same examples, so an example that is hard is hard for all of them).

A cell whose runs kept verified per-example predictions (results/predictions.py) resamples its
examples; a cell known from its counts alone draws binomial(n, mean of the drawn seeds) / n
instead: for one seed exactly the distribution of resampling its examples, for several the widest
case (as if every seed got the same examples right), never narrower than the truth.

**Avg over tasks**: the mean over tasks of the cells' replicates, each task resampled
independently of the others (different test sets); interval = the percentiles.

**Difference of two cells a − b** (`difference`):

* paired -- both cells have verified predictions for every counted seed on the same test set
  (equal `test_set_sha256`):
  * one seed each: McNemar's exact test (statsmodels ``mcnemar(exact=True)``: the discordant
    examples, a right and b wrong (n_ab) or the reverse (n_ba), tested as binomial at 1/2, p =
    twice the smaller tail), with the interval that inverts it: the Clopper–Pearson interval
    [π_lo, π_hi] of n_ab out of m = n_ab + n_ba, as the difference (2π − 1)·m/n;
  * otherwise: a paired bootstrap: the difference of the two cells' replicates, which share their
    example draws; interval = percentiles; p = twice the smaller share of replicates at or beyond
    zero ((count + 1) / (B + 1), so never 0).
* not paired (a run without predictions, a predictions file that fails its check, runs evaluated
  on other data or another number of test examples): one seed each, the score test of two
  independent proportions and its interval (statsmodels ``test_proportions_2indep`` and
  ``confint_proportions_2indep``, method "score"; Newcombe's hybrid score interval where the score
  interval is undefined, at 0% or 100%); otherwise the difference of independent
  replicates as above. Accuracies on one test set are positively correlated, so treating them as
  independent over-states the noise of their difference: these tests resolve fewer differences,
  never more.

**Cannot be told apart from the column's best** (`ties_with_best`): the best cell is the one with
the highest accuracy; every other eligible cell is compared with it as above, the p-values
corrected with Holm over the column (`holm`, the step-down of statsmodels' ``multipletests``); a cell whose
corrected p is at least 0.05 is tied with the best, and tables bold the best and every cell tied
with it.

No torch: this reads numbers only.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
BOOTSTRAP_REPLICATES = 10_000
BOOTSTRAP_SEED = 0
# Elements of one chunk of example draws (replicates x examples): bounds the memory of LRA-size
# test sets (25,000 examples) to tens of MB.
CHUNK_ELEMENTS = 1 << 21

INTERVAL_EXACT = "Clopper–Pearson"
INTERVAL_BOOTSTRAP = "bootstrap"
MCNEMAR = "McNemar exact"
PAIRED_BOOTSTRAP = "paired bootstrap"
SCORE_UNPAIRED = "score test, not paired"
BOOTSTRAP_UNPAIRED = "bootstrap, not paired"


# ---------------------------------------------------------------------------------------------
# One proportion
# ---------------------------------------------------------------------------------------------


def binomial_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper–Pearson (exact) interval of `correct` out of `n`, as fractions."""
    from scipy.stats import binomtest

    if n <= 0:
        return math.nan, math.nan
    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def half_width(n: int, accuracy: float, confidence: float = CONFIDENCE) -> float:
    """Half the width, in percentage points, of the Clopper–Pearson interval of an accuracy measured
    on `n` test examples (the resolution a test set of that size gives at that accuracy)."""
    low, high = binomial_interval(round(accuracy * n), n, confidence)
    return 100.0 * (high - low) / 2.0


def resolution_line(n: int, chance: float, *, what: str = "") -> str:
    """One line stating the resolution of `n` test examples at chance and at 50% accuracy."""
    at_chance = half_width(n, chance)
    at_half = half_width(n, 0.5)
    prefix = f"{what}: " if what else ""
    return (
        f"{prefix}{n:,} test examples resolve accuracy to ±{at_chance:.1f} points at chance "
        f"({100 * chance:.0f}%) and ±{at_half:.1f} points at 50% (half-widths of one cell's 95% Clopper–Pearson "
        "interval; a difference between two cells needs about 1.4 times that unpaired, often less paired on "
        "the same examples)"
    )


# ---------------------------------------------------------------------------------------------
# A cell's runs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """The test outcomes of one cell's counted runs, one entry per seed.

    Attributes:
        correct: test examples each seed got right.
        n: test examples each seed was evaluated on.
        outcomes: [seeds, n] bool, which examples each seed got right, when every seed kept
            verified predictions of one test set; None otherwise (counts only).
        test_set: that test set's digest (`test_set_sha256`), None without outcomes.
        data: which data the runs read (for the line saying why two cells are not paired).
        unpaired: why `outcomes` is None (None when it is not).
    """

    correct: tuple[int, ...]
    n: tuple[int, ...]
    outcomes: np.ndarray | None = None
    test_set: str | None = None
    data: str = ""
    unpaired: str | None = None

    def __post_init__(self) -> None:
        if len(self.correct) != len(self.n) or not self.correct:
            raise ValueError("a sample needs one (correct, n) pair per seed, at least one")
        if any(k < 0 or k > n or n <= 0 for k, n in zip(self.correct, self.n, strict=True)):
            raise ValueError(f"correct counts {self.correct} must lie in 0..n for n {self.n}")
        if self.outcomes is not None:
            shape = self.outcomes.shape
            if len(shape) != 2 or shape[0] != len(self.correct) or any(m != shape[1] for m in self.n):
                raise ValueError(
                    f"outcomes of shape {shape} do not match seeds {len(self.correct)} x n {self.n}"
                )
            if tuple(int(v) for v in self.outcomes.sum(axis=1)) != self.correct:
                raise ValueError("outcomes do not add up to the correct counts")

    @classmethod
    def from_accuracies(cls, accuracies: Sequence[float], n: Sequence[int], **fields: object) -> Sample:
        """A counts-only sample from per-seed accuracies (fractions) on `n` examples each."""
        correct = tuple(round(float(a) * int(m)) for a, m in zip(accuracies, n, strict=True))
        return cls(correct=correct, n=tuple(int(m) for m in n), **fields)  # type: ignore[arg-type]

    @classmethod
    def from_outcomes(cls, outcomes: np.ndarray, test_set: str, data: str = "") -> Sample:
        """A sample from [seeds, n] per-example correctness on the test set `test_set`."""
        outcomes = np.atleast_2d(np.asarray(outcomes, dtype=bool))
        correct = tuple(int(v) for v in outcomes.sum(axis=1))
        n = (outcomes.shape[1],) * outcomes.shape[0]
        return cls(correct=correct, n=n, outcomes=outcomes, test_set=test_set, data=data)

    @property
    def seeds(self) -> int:
        return len(self.correct)

    @property
    def accuracy(self) -> float:
        """Mean over seeds of each seed's accuracy (fraction)."""
        return float(np.mean([k / n for k, n in zip(self.correct, self.n, strict=True)]))

    @property
    def examples(self) -> int:
        """Test examples per seed (the smallest, should seeds differ)."""
        return min(self.n)


def pairing(a: Sample, b: Sample, names: tuple[str, str] = ("a", "b")) -> tuple[bool, str | None]:
    """(whether a and b are compared paired, and if not, why: one line naming them by `names`)."""
    lacking = [
        f"{name} {sample.unpaired or 'was recorded without per-example predictions'}"
        for name, sample in zip(names, (a, b), strict=True)
        if sample.outcomes is None
    ]
    if lacking:
        return False, "; ".join(lacking)
    if a.test_set != b.test_set:
        if a.data != b.data:
            return False, f"evaluated on other data ({a.data or '?'} vs {b.data or '?'})"
        if a.examples != b.examples:
            return False, (
                f"evaluated on {a.examples:,} vs {b.examples:,} test examples (another data.n_test or --limit)"
            )
        return False, "evaluated on other test examples"
    return True, None


# ---------------------------------------------------------------------------------------------
# Bootstrap replicates
# ---------------------------------------------------------------------------------------------


def _rng(*names: object, seed: int = BOOTSTRAP_SEED) -> np.random.Generator:
    """A generator seeded from names (stable across processes and orders of evaluation)."""
    digest = hashlib.sha256("\x1f".join(repr(n) for n in (seed, *names)).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32))


def _seed_weights(seeds: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """[count, seeds]: how often each seed is drawn in each replicate, divided by `seeds`."""
    if seeds == 1:
        return np.ones((count, 1))
    return rng.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=count) / seeds


def _example_counts(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """[count, n]: how often each of n examples is drawn in each of `count` resamples of size n."""
    drawn = rng.integers(0, n, size=(count, n)) + n * np.arange(count)[:, None]
    return np.bincount(drawn.ravel(), minlength=count * n).reshape(count, n)


K = TypeVar("K", bound=Hashable)


def replicates(
    samples: Mapping[K, Sample], *, count: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED
) -> dict[K, np.ndarray]:
    """Bootstrap replicates ([count] accuracies, fractions) of every sample (see the module docstring).

    Samples with outcomes on one test set share their example draws (their differences are paired);
    every other pair of samples is drawn independently. Keys name the random streams, so a sample's
    replicates do not depend on which other samples are passed with it."""
    out: dict[K, np.ndarray] = {}
    by_test_set: dict[str, list[K]] = {}
    for key, sample in samples.items():
        if sample.outcomes is not None and sample.test_set is not None:
            by_test_set.setdefault(sample.test_set, []).append(key)
            continue
        weights = _seed_weights(sample.seeds, count, _rng("seeds", key, seed=seed))
        accuracy = weights @ (np.asarray(sample.correct) / np.asarray(sample.n))
        m = sample.examples
        out[key] = _rng("examples", key, seed=seed).binomial(m, np.clip(accuracy, 0.0, 1.0)) / m
    for test_set, keys in by_test_set.items():
        n = samples[keys[0]].examples
        drawn_seeds = {
            key: _seed_weights(samples[key].seeds, count, _rng("seeds", key, seed=seed)) for key in keys
        }
        values = {key: np.empty(count) for key in keys}
        draws = _rng("examples", test_set, seed=seed)
        step = max(1, CHUNK_ELEMENTS // n)
        for start in range(0, count, step):
            stop = min(count, start + step)
            counts = _example_counts(n, stop - start, draws)
            for key in keys:
                outcomes = samples[key].outcomes
                assert outcomes is not None
                per_example = drawn_seeds[key][start:stop] @ outcomes.astype(float)  # [chunk, n]
                values[key][start:stop] = np.einsum("ij,ij->i", per_example, counts) / n
        out.update(values)
    return {key: out[key] for key in samples}


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central `confidence` percentile interval of bootstrap replicates."""
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap replicates of a difference: twice the
    smaller share of replicates at or beyond zero, (count + 1) / (B + 1) so never 0 (the smallest
    level at which the percentile interval would exclude zero)."""
    below = int(np.count_nonzero(differences <= 0)) + 1
    above = int(np.count_nonzero(differences >= 0)) + 1
    return min(1.0, 2.0 * min(below, above) / (len(differences) + 1))


def interval(sample: Sample, values: np.ndarray | None = None) -> tuple[float, float, str]:
    """(low, high, method) of a cell's accuracy, fractions: Clopper–Pearson for one seed, else the
    percentile interval of its replicates `values`."""
    if sample.seeds == 1:
        return (*binomial_interval(sample.correct[0], sample.n[0]), INTERVAL_EXACT)
    if values is None:
        raise ValueError("an interval over several seeds needs the sample's bootstrap replicates")
    return (*percentile_interval(values), INTERVAL_BOOTSTRAP)


# ---------------------------------------------------------------------------------------------
# Differences
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """Accuracy of a minus accuracy of b (fractions), its 95% interval and the test of no difference.

    Attributes:
        estimate, low, high: the difference and its interval.
        p_value: two-sided p-value (uncorrected).
        test: `MCNEMAR`, `PAIRED_BOOTSTRAP`, `SCORE_UNPAIRED` or `BOOTSTRAP_UNPAIRED`.
        paired: whether the two were compared on the same examples.
        unpaired: why not (one line), None when paired.
        discordant: McNemar only: (a right and b wrong, a wrong and b right).
    """

    estimate: float
    low: float
    high: float
    p_value: float
    test: str
    paired: bool
    unpaired: str | None = None
    discordant: tuple[int, int] | None = None


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> Difference:
    """Paired comparison of two classifiers on the same examples (one seed each): McNemar's exact
    test and the interval that inverts it (module docstring)."""
    from scipy.stats import binomtest
    from statsmodels.stats.contingency_tables import mcnemar

    a_correct, b_correct = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a_correct.shape != b_correct.shape or a_correct.ndim != 1:
        raise ValueError("McNemar's test needs two correctness vectors over the same examples")
    n = len(a_correct)
    only_a = int(np.count_nonzero(a_correct & ~b_correct))
    only_b = int(np.count_nonzero(~a_correct & b_correct))
    discordant = only_a + only_b
    estimate = (only_a - only_b) / n
    if discordant == 0:  # the same examples right and wrong: no difference on this test set
        return Difference(0.0, 0.0, 0.0, 1.0, MCNEMAR, True, discordant=(0, 0))
    p_value = float(mcnemar([[0, only_a], [only_b, 0]], exact=True).pvalue)
    ci = binomtest(only_a, discordant).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    low, high = ((2 * float(v) - 1) * discordant / n for v in (ci.low, ci.high))
    return Difference(estimate, low, high, p_value, MCNEMAR, True, discordant=(only_a, only_b))


def score_unpaired(a: Sample, b: Sample, reason: str | None = None) -> Difference:
    """Unpaired comparison of two one-seed cells: the score test of two independent proportions and
    its interval (statsmodels, method "score")."""
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    (ka,), (na,), (kb,), (nb,) = a.correct, a.n, b.correct, b.n
    estimate = ka / na - kb / nb
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # odds ratios at 0% / 100%, unused here
        if (ka in (0, na)) and (kb in (0, nb)) and ka / na == kb / nb:
            p_value = 1.0  # both 0% or both 100%: the score statistic is 0 / 0
        else:
            p_value = float(test_proportions_2indep(ka, na, kb, nb, method="score").pvalue)
        try:
            low, high = confint_proportions_2indep(ka, na, kb, nb, method="score", alpha=ALPHA)
        except ValueError:  # the score interval has no root at 0% or 100%: Newcombe's hybrid interval
            low, high = confint_proportions_2indep(ka, na, kb, nb, method="newcomb", alpha=ALPHA)
    return Difference(estimate, float(low), float(high), p_value, SCORE_UNPAIRED, False, reason)


def difference(
    a: Sample,
    b: Sample,
    a_values: np.ndarray | None = None,
    b_values: np.ndarray | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> Difference:
    """a − b with its interval and test (module docstring). `a_values` / `b_values` are the samples'
    replicates from one `replicates` call (needed unless both have one seed); `names` name them in
    the line that says why they are not paired."""
    paired, reason = pairing(a, b, names)
    if a.seeds == 1 and b.seeds == 1:
        if paired:
            assert a.outcomes is not None and b.outcomes is not None
            return mcnemar_exact(a.outcomes[0], b.outcomes[0])
        return score_unpaired(a, b, reason)
    if a_values is None or b_values is None:
        raise ValueError("a difference over several seeds needs both samples' bootstrap replicates")
    return bootstrap_difference(a.accuracy - b.accuracy, a_values - b_values, paired, reason)


def bootstrap_difference(
    estimate: float, differences: np.ndarray, paired: bool, reason: str | None = None
) -> Difference:
    """A difference from bootstrap replicates of it (percentile interval, `bootstrap_p_value`)."""
    low, high = percentile_interval(differences)
    test = PAIRED_BOOTSTRAP if paired else BOOTSTRAP_UNPAIRED
    return Difference(
        estimate, low, high, bootstrap_p_value(differences), test, paired, None if paired else reason
    )


# ---------------------------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------------------------


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> tuple[list[float], list[bool]]:
    """Holm-corrected p-values and which hypotheses are rejected at `alpha`: the k-th smallest p
    times (m − k + 1), made monotone, capped at 1. The same step-down as statsmodels'
    ``multipletests(method="holm")`` (the tests check them against each other), written out because
    that function runs a full ``gc.collect()`` on every call (a tenth of a second in a process
    holding the tables and figures, and the frontier calls it once per point)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return [], []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1))
    corrected = np.empty_like(p)
    corrected[order] = np.minimum(stepped, 1.0)
    return [float(v) for v in corrected], [bool(v <= alpha) for v in corrected]


@dataclass(frozen=True)
class Tie:
    """How one cell of a column stands against the column's best.

    Attributes:
        best: it is the best (highest accuracy; the first in table order among equals).
        tied: it cannot be told apart from the best (Holm-corrected p >= 0.05), or it is the best.
        p_holm: the Holm-corrected p-value of its difference from the best (NaN for the best).
        difference: that difference (None for the best).
    """

    best: bool
    tied: bool
    p_holm: float
    difference: Difference | None


def ties_with_best(values: Mapping[K, float], compare: Callable[[K, K], Difference]) -> dict[K, Tie]:
    """Which of the cells `values` (key -> accuracy; the eligible cells of one column, in table
    order) cannot be told apart from the best: `compare(cell, best)` for every other cell, Holm
    over the column (module docstring)."""
    finite = {key: value for key, value in values.items() if not math.isnan(value)}
    if not finite:
        return {}
    best = max(finite, key=lambda key: finite[key])  # max keeps the first of equals
    others = [key for key in finite if key != best]
    differences = [compare(key, best) for key in others]
    corrected, reject = holm([d.p_value for d in differences])
    ties = {best: Tie(best=True, tied=True, p_holm=math.nan, difference=None)}
    for key, diff, p, rejected in zip(others, differences, corrected, reject, strict=True):
        ties[key] = Tie(best=False, tied=not rejected, p_holm=p, difference=diff)
    return {key: ties[key] for key in finite}
