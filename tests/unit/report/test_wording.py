"""Shared wording of the readings."""

from __future__ import annotations

import math

from attndilute.report.wording import format_p


def test_format_p():
    assert format_p(0.0113) == "0.011"
    assert format_p(3.2e-9) == "3e-9"
    assert format_p(0.00096) == "1e-3"  # one significant digit below 0.001
    assert format_p(0.00094) == "9e-4"
    assert format_p(math.nan) == "n/a"
