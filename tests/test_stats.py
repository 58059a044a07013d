"""results/stats.py against scipy and statsmodels on hand-made cases: a cell with known k of n, two
prediction vectors with known discordant counts, bootstraps with known answers, Holm."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats import proportion as sm_proportion  # its test_* functions are no pytest tests
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from results import stats


def correctness(n, right, seed=0):
    """A bool vector of length n with exactly `right` True, in a fixed random order."""
    vector = np.zeros(n, dtype=bool)
    vector[np.random.default_rng(seed).permutation(n)[:right]] = True
    return vector


def pair_with_discordance(n, both, only_a, only_b, seed=0):
    """Two correctness vectors over n examples: `both` right in both, `only_a` right in a alone,
    `only_b` right in b alone (the rest wrong in both)."""
    kind = np.array([0] * both + [1] * only_a + [2] * only_b + [3] * (n - both - only_a - only_b))
    kind = kind[np.random.default_rng(seed).permutation(n)]
    return (kind == 0) | (kind == 1), (kind == 0) | (kind == 2)


@pytest.mark.parametrize(("k", "n"), [(134, 500), (0, 200), (200, 200), (64, 500), (1, 3)])
def test_one_seed_interval_is_scipys_clopper_pearson(k, n):
    ci = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert stats.binomial_interval(k, n) == pytest.approx((ci.low, ci.high))
    sample = stats.Sample.from_accuracies([k / n], [n])
    low, high, method = stats.interval(sample)
    assert (low, high) == pytest.approx((ci.low, ci.high)) and method == "Clopper–Pearson"


def test_resolution_is_the_half_width_at_chance_and_at_one_half():
    ci = scipy_stats.binomtest(250, 500).proportion_ci(0.95, method="exact")
    assert stats.half_width(500, 0.5) == pytest.approx(100 * (ci.high - ci.low) / 2)
    line = stats.resolution_line(500, 0.1)
    assert "500 test examples" in line and f"±{100 * (ci.high - ci.low) / 2:.1f} points at 50%" in line
    low = scipy_stats.binomtest(50, 500).proportion_ci(0.95, method="exact")
    assert f"±{100 * (low.high - low.low) / 2:.1f} points at chance (10%)" in line


@pytest.mark.parametrize(
    ("both", "only_a", "only_b"), [(100, 30, 12), (100, 12, 30), (80, 5, 5), (50, 9, 0), (70, 0, 0)]
)
def test_mcnemar_on_known_discordant_counts(both, only_a, only_b):
    n = 300
    a, b = pair_with_discordance(n, both, only_a, only_b)
    got = stats.mcnemar_exact(a, b)
    assert got.discordant == (only_a, only_b) and got.paired and got.test == "McNemar exact"
    assert got.estimate == pytest.approx((only_a - only_b) / n)
    assert got.estimate == pytest.approx(a.mean() - b.mean())
    m = only_a + only_b
    if m == 0:
        assert (got.low, got.high, got.p_value) == (0.0, 0.0, 1.0)
        return
    expected = mcnemar([[both, only_a], [only_b, n - both - m]], exact=True).pvalue
    assert got.p_value == pytest.approx(expected)
    # the same test by hand: the discordant examples as a binomial at 1/2, twice the smaller tail
    assert got.p_value == pytest.approx(min(1.0, 2 * scipy_stats.binom.cdf(min(only_a, only_b), m, 0.5)))
    # the interval inverts it: Clopper-Pearson on the discordant split, as a difference
    ci = scipy_stats.binomtest(only_a, m).proportion_ci(0.95, method="exact")
    assert (got.low, got.high) == pytest.approx(((2 * ci.low - 1) * m / n, (2 * ci.high - 1) * m / n))
    assert (got.p_value < 0.05) == (got.low > 0 or got.high < 0)


def test_paired_cells_of_one_seed_are_compared_with_mcnemar_and_unpaired_ones_with_the_score_test():
    a, b = pair_with_discordance(400, 150, 40, 18)
    sa = stats.Sample.from_outcomes(a[None], test_set="t")
    sb = stats.Sample.from_outcomes(b[None], test_set="t")
    paired = stats.difference(sa, sb)
    assert paired.test == "McNemar exact" and paired.discordant == (40, 18)
    # the same accuracies from counts alone: not paired, the score test, with the reason
    ca = stats.Sample.from_accuracies([a.mean()], [400])
    cb = stats.Sample.from_accuracies([b.mean()], [400])
    unpaired = stats.difference(ca, cb, names=("mita", "full"))
    ka, kb = int(a.sum()), int(b.sum())
    assert unpaired.test == "score test, not paired" and not unpaired.paired
    assert unpaired.p_value == pytest.approx(
        sm_proportion.test_proportions_2indep(ka, 400, kb, 400, method="score").pvalue
    )
    low, high = sm_proportion.confint_proportions_2indep(ka, 400, kb, 400, method="score")
    assert (unpaired.low, unpaired.high) == pytest.approx((low, high))
    assert unpaired.unpaired == (
        "mita was recorded without per-example predictions; full was recorded without per-example predictions"
    )
    # pairing discards the examples both get right or wrong: the paired test resolves more
    assert paired.p_value < unpaired.p_value


def test_runs_on_other_test_examples_are_never_paired_and_say_why():
    a = stats.Sample.from_outcomes(correctness(500, 200)[None], test_set="x", data="generated:listops")
    other_n = stats.Sample.from_outcomes(correctness(200, 80)[None], test_set="y", data="generated:listops")
    other_data = stats.Sample.from_outcomes(correctness(500, 200)[None], test_set="z", data="lra_release")
    assert stats.pairing(a, other_n) == (
        False,
        "evaluated on 500 vs 200 test examples (another data.n_test or --limit)",
    )
    assert stats.pairing(a, other_data) == (
        False,
        "evaluated on other data (generated:listops vs lra_release)",
    )
    assert stats.difference(a, other_n).test == "score test, not paired"


def test_one_seed_bootstrap_matches_scipys_percentile_bootstrap():
    outcome = correctness(500, 190)
    sample = stats.Sample.from_outcomes(outcome[None], test_set="t")
    values = stats.replicates({"cell": sample})["cell"]
    ours = stats.percentile_interval(values)
    theirs = scipy_stats.bootstrap(
        (outcome.astype(float),),
        np.mean,
        n_resamples=20_000,
        method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    # two Monte Carlo estimates of the same percentiles (their error is about 0.3 points here)
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.008)
    # and a counts-only cell of one seed draws the same distribution (binomial = resampled examples)
    counts = stats.replicates({"cell": stats.Sample.from_accuracies([0.38], [500])})["cell"]
    assert stats.percentile_interval(counts) == pytest.approx(ours, abs=0.008)
    assert counts.std() == pytest.approx(math.sqrt(0.38 * 0.62 / 500), rel=0.05)


def test_several_seeds_resample_seeds_and_examples():
    # seeds that agree on every example: only the seed-to-seed spread of 0 is left, plus examples
    same = np.stack([correctness(400, 200)] * 3)
    values = stats.replicates({"s": stats.Sample.from_outcomes(same, test_set="t")})["s"]
    assert values.std() == pytest.approx(math.sqrt(0.25 / 400), rel=0.05)  # examples drawn once, shared
    # three seeds at 30%, 50%, 70% on disjoint-ish examples: the seed spread dominates
    spread = np.stack([correctness(400, k, seed=k) for k in (120, 200, 280)])
    sample = stats.Sample.from_outcomes(spread, test_set="t")
    low, high, method = stats.interval(sample, stats.replicates({"s": sample})["s"])
    assert method == "bootstrap" and low < 0.40 and high > 0.60  # far wider than one seed's ±5 points
    # the same from counts alone: never narrower than with the examples (the widest case)
    counts = stats.Sample.from_accuracies([0.3, 0.5, 0.7], [400] * 3)
    c_low, c_high, _ = stats.interval(counts, stats.replicates({"c": counts})["c"])
    assert c_high - c_low >= (high - low) - 0.01


def test_replicates_are_reproducible_and_shared_only_on_one_test_set():
    a = stats.Sample.from_outcomes(np.stack([correctness(300, 150, s) for s in (0, 1)]), test_set="t")
    b = stats.Sample.from_outcomes(np.stack([correctness(300, 140, s) for s in (2, 3)]), test_set="t")
    first = stats.replicates({"a": a, "b": b})
    again = stats.replicates({"b": b, "a": a})
    alone = stats.replicates({"a": a})
    np.testing.assert_array_equal(first["a"], again["a"])
    np.testing.assert_array_equal(first["a"], alone["a"])  # independent of the other cells passed
    paired = stats.difference(a, b, first["a"], first["b"])
    assert paired.test == "paired bootstrap" and paired.paired
    assert paired.estimate == pytest.approx(a.accuracy - b.accuracy)
    assert paired.low <= paired.estimate <= paired.high


def test_bootstrap_p_value_is_twice_the_smaller_tail_and_never_zero():
    differences = np.array([-1.0] * 30 + [1.0] * 970)
    assert stats.bootstrap_p_value(differences) == pytest.approx(2 * 31 / 1001)
    assert stats.bootstrap_p_value(np.ones(999)) == pytest.approx(2 / 1000)
    assert stats.bootstrap_p_value(np.zeros(999)) == 1.0


def test_holm_is_statsmodels_step_down(monkeypatch):
    # multipletests runs a full gc.collect() per call (most of this test's time); it changes no result
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    rng = np.random.default_rng(0)
    cases = [[0.01, 0.04, 0.03, 0.2], [0.5], [0.001] * 3, [0.02, 0.02, 0.9, 0.0125]]
    cases += [list(rng.uniform(0, 0.2, size=rng.integers(1, 20))) for _ in range(30)]
    for p in cases:
        corrected, reject = stats.holm(p)
        expected_reject, expected, _, _ = multipletests(p, method="holm")
        assert corrected == pytest.approx(list(expected)) and reject == list(expected_reject), p
    assert stats.holm([]) == ([], [])


def test_ties_with_the_best_follow_holm():
    values = {"a": 0.50, "b": 0.40, "c": 0.49}
    made = {"b": 0.001, "c": 0.30}

    def compare(key, best):
        assert best == "a"
        return stats.Difference(values[key] - 0.5, 0, 0, made[key], "test", False)

    ties = stats.ties_with_best(values, compare)
    assert ties["a"].best and ties["a"].tied and math.isnan(ties["a"].p_holm)
    assert not ties["b"].tied and ties["c"].tied
    assert ties["b"].p_holm == pytest.approx(0.002) and ties["c"].p_holm == pytest.approx(0.30)
