"""attndilute.stats against the seed's intervals and statsmodels/scipy called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attndilute import stats

# Seed abstract and Table 2: detections out of N = 247 -> rate% [low-high], one decimal.
SEED_RATES = [
    (224, 90.7, 86.4, 93.7),
    (219, 88.7, 84.1, 92.0),
    (213, 86.2, 81.4, 90.0),
    (194, 78.5, 73.0, 83.2),
    (215, 87.0, 82.3, 90.7),
]


@pytest.mark.parametrize(("k", "rate", "low", "high"), SEED_RATES)
def test_wilson_interval_reproduces_seed(k, rate, low, high):
    r, lo, hi = stats.wilson_interval(k, 247)
    assert (round(100 * r, 1), round(100 * lo, 1), round(100 * hi, 1)) == (rate, low, high)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 500), frac=st.floats(0, 1), confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_closed_form(n, frac, confidence):
    from scipy.stats import norm

    k = round(frac * n)
    rate, lo, hi = stats.wilson_interval(k, n, confidence)
    z = norm.ppf(0.5 + confidence / 2)
    centre = (k + z**2 / 2) / (n + z**2)
    half = z * math.sqrt(k * (n - k) / n + z**2 / 4) / (n + z**2)
    assert rate == k / n
    assert lo == pytest.approx(centre - half, abs=1e-12) and hi == pytest.approx(centre + half, abs=1e-12)
    assert 0.0 <= lo <= rate <= hi <= 1.0


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError):
        stats.wilson_interval(5, 0)
    with pytest.raises(ValueError):
        stats.wilson_interval(6, 5)


@pytest.mark.parametrize("seed", range(5))
def test_mcnemar_matches_statsmodels_and_binomial(seed):
    from scipy.stats import binomtest
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(seed)
    a = rng.random(247) < 0.86
    b = np.where(rng.random(247) < 0.1, ~a, a) | (rng.random(247) < 0.05 * seed)
    result = stats.mcnemar_exact(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert result.p == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
    assert (result.a_only, result.b_only) == (np.sum(a & ~b), np.sum(~a & b))
    disc = result.a_only + result.b_only
    if disc:
        assert result.p == pytest.approx(binomtest(result.a_only, disc, 0.5).pvalue, abs=1e-12)


def test_mcnemar_no_discordant_pairs():
    a = np.array([True, False, True])
    assert stats.mcnemar_exact(a, a).p == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_wilcoxon_matches_scipy(seed):
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(seed)
    n = [12, 40, 232, 30, 100][seed]
    x = rng.uniform(0, 1, n)
    y = x + rng.normal(0.02, 0.1, n)
    y[: n // 5] = x[: n // 5]  # zero differences (both missed -> same penalty)
    x[-3:] = y[-3:] + 0.05  # tied differences
    assert stats.wilcoxon_p(x, y) == pytest.approx(wilcoxon(x, y).pvalue, rel=1e-12)


def test_wilcoxon_all_equal_and_bad_input():
    x = np.array([0.1, 0.5, 0.7])
    assert stats.wilcoxon_p(x, x) == 1.0
    with pytest.raises(ValueError):
        stats.wilcoxon_p(x, x[:2])
    with pytest.raises(ValueError):
        stats.wilcoxon_p(x, np.array([0.1, np.nan, 0.7]))


def test_bonferroni_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.001, 0.02, 0.4, 0.0004, 0.9])
    np.testing.assert_allclose(stats.bonferroni(p), multipletests(p, method="bonferroni")[1], atol=1e-15)
    corrected = stats.bonferroni([0.01, np.nan, 0.5])
    assert corrected[0] == pytest.approx(0.03) and math.isnan(corrected[1]) and corrected[2] == 1.0


def test_spearman_matches_scipy_and_drops_nan():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 60)
    y = -0.5 * x + rng.normal(0, 0.3, 60)
    x[[3, 10]] = np.nan
    y[20] = np.inf
    ok = np.isfinite(x) & np.isfinite(y)
    got = stats.spearman(x, y)
    ref = spearmanr(x[ok], y[ok])
    assert got.n == 57
    assert got.rho == pytest.approx(ref.statistic, abs=1e-12)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert math.isnan(stats.spearman([1, 1, 1, 1], [1, 2, 3, 4]).rho)
