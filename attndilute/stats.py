"""Statistics of the seed's evaluation protocol (§2.8).

- :func:`wilson_interval` — detection rate with its Wilson score interval (statsmodels).
- :func:`mcnemar_exact` — paired detection, exact McNemar test (statsmodels).
- :func:`wilcoxon_p` — paired continuous metrics, Wilcoxon signed-rank (scipy).
- :func:`bonferroni` — correction across all pairwise comparisons of one metric.
- :func:`spearman` — Spearman rho with its p-value (scipy).

scipy and statsmodels are imported inside the functions, so ``import attndilute.stats`` stays
light.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class McNemar(NamedTuple):
    """Exact McNemar test on paired binary outcomes.

    Attributes:
        p: two-sided exact p-value (binomial test on the discordant pairs).
        a_only: pairs where only ``a`` is positive.
        b_only: pairs where only ``b`` is positive.
    """

    p: float
    a_only: int
    b_only: int


class Correlation(NamedTuple):
    """Spearman correlation.

    Attributes:
        rho: Spearman's rank correlation.
        p: two-sided p-value (scipy's t-distribution approximation).
        n: number of complete pairs used.
    """

    rho: float
    p: float
    n: int


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Proportion ``k/n`` with its Wilson score interval (§2.8, Table 2 detection rates).

    Args:
        k: successes (e.g. detected cases), 0 <= k <= n.
        n: trials (cases), n > 0.
        confidence: two-sided confidence level.

    Returns:
        ``(rate, low, high)`` as fractions.
    """
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    low, high = proportion_confint(k, n, alpha=1.0 - confidence, method="wilson")
    rate = k / n
    # the Wilson interval always contains k/n; clip float round-off at k = 0 or k = n
    return rate, min(float(low), rate), max(float(high), rate)


def mcnemar_exact(a, b) -> McNemar:
    """Exact McNemar test for paired detection outcomes (§2.8).

    Args:
        a: bool per case, configuration A (e.g. detected).
        b: bool per case, configuration B, same cases in the same order.

    Returns:
        :class:`McNemar` with the p-value and the discordant counts.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.shape} vs {b.shape}")
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    result = mcnemar(table, exact=True)
    return McNemar(float(result.pvalue), table[0][1], table[1][0])


def wilcoxon_p(x, y) -> float:
    """Two-sided Wilcoxon signed-rank p-value for paired samples (§2.8).

    scipy's defaults: zero differences are dropped (``zero_method="wilcox"``), the exact
    distribution is used for small samples without ties, the normal approximation otherwise.

    Args:
        x: metric per case, configuration A.
        y: metric per case, configuration B, same cases in the same order.

    Returns:
        The p-value; 1.0 when every difference is zero (no evidence either way, as scipy).
    """
    from scipy.stats import wilcoxon

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("paired samples contain NaN")
    if x.size == 0:
        return math.nan
    if np.all(x == y):
        return 1.0
    return float(wilcoxon(x, y).pvalue)


def bonferroni(pvalues) -> np.ndarray:
    """Bonferroni-corrected p-values ``min(m p, 1)`` over the ``m`` given tests (§2.8).

    ``m`` counts every comparison made, including any whose p is NaN (kept NaN). A one-line
    closed form; tests check it against statsmodels' ``multipletests(method="bonferroni")``.

    Args:
        pvalues: raw p-values of all pairwise comparisons of one metric.
    """
    p = np.asarray(pvalues, dtype=float)
    return np.minimum(p * p.size, 1.0)


def spearman(x, y) -> Correlation:
    """Spearman rank correlation with p-value over the pairs where both values are finite.

    Args:
        x: first variable per case (e.g. padding fraction).
        y: second variable per case (e.g. sDSC).
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return Correlation(math.nan, math.nan, n)
    result = spearmanr(x[ok], y[ok])
    return Correlation(float(result.statistic), float(result.pvalue), n)
