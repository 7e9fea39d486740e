"""Shared wording of the report's readings: thresholds, p-value format, lists, small-sample notes
and the summary tuples the readings take (a :class:`Trend`, a training :class:`Curve`).

Every reading is pure: plain numbers and mappings in, one English sentence out, so the tests can
pin the exact sentence for given numbers. Wording follows the seed's Results (§3.1-3.4): stages
are ``S0..SK``, ADI is Eq. 7, sDSC is the surface Dice at 2 mm (§2.8). Formats: ADI and CKA with
three decimals, rho with two, percentages with no decimals for reductions and one for detection
rates, p-values by :func:`format_p` (``0.011``, ``3e-9``).
"""


from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

#: A Spearman p below this counts as a trend in the readings (two-sided).
ALPHA = 0.05
#: Fewer cases than this in a group: a reading states the numbers with their interval or test and
#: names no winner. Below 10 an exact two-sided Wilcoxon test needs at least 6 pairs to reach
#: p < 0.05 at all, a Wilson 95% interval of a detection rate is wider than 40 points, and a
#: Spearman rho has a 95% interval wider than 1 (docs/report.md).
MIN_N = 10


class Trend(NamedTuple):
    """A Spearman correlation as the readings need it.

    Attributes:
        rho: rank correlation (NaN when undefined).
        p: two-sided p-value (NaN when undefined).
        n: complete pairs.
        constant: what made it undefined (``"padding fraction"``, ``"ADI"``, ...), if anything.
    """

    rho: float
    p: float
    n: int
    constant: str | None = None


def format_p(p: float) -> str:
    """``0.011`` at or above 0.001, ``3e-9`` below (one significant digit), ``n/a`` for NaN."""
    if p is None or math.isnan(p):
        return "n/a"
    if p >= 0.001:
        return f"{p:.3f}"
    if p <= 0:
        return "0"
    mantissa, exponent = f"{p:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def join_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def finite(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def small_sample(n: Mapping[str, int] | None, unit: str = "cases") -> str | None:
    """``"3 cases per configuration (fewer than 10)"`` when a group is below :data:`MIN_N`, else None."""
    if not n or min(n.values()) >= MIN_N:
        return None
    sizes = sorted(set(int(v) for v in n.values()))
    count = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
    return f"{count} {unit} per configuration (fewer than {MIN_N})"


def trend_word(first: float, last: float, digits: int = 3) -> str:
    """``rose``/``fell``/``stayed flat``, judged on the values as printed (never contradicts them)."""
    first, last = round(first, digits), round(last, digits)
    return "rose" if last > first else "fell" if last < first else "stayed flat"


class Curve(NamedTuple):
    """Summary of one training run's ``metrics.csv``.

    Attributes:
        epochs: last epoch.
        loss_first: training loss of the first epoch.
        loss_last: training loss of the last epoch.
        best_dice: best validation Dice (NaN without validation).
        best_epoch: epoch of the best validation Dice (-1 without validation).
        last_val_epoch: last validated epoch (-1 without validation).
        n_val: validated epochs (-1: not known).
    """

    epochs: int
    loss_first: float
    loss_last: float
    best_dice: float
    best_epoch: int
    last_val_epoch: int = -1
    n_val: int = -1
