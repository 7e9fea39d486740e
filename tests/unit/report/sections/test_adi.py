"""The attention-dilution section and its readings (seed Fig. 4, §3.2.1)."""

from __future__ import annotations

import math

from attndilute.report.sections.adi import (
    adi_depth_reading,
    adi_reduction_reading,
    layout_share_reading,
    trend_reading,
)
from attndilute.report.wording import Trend


def test_adi_readings():
    assert adi_reduction_reading(3, {"base": 0.079, "act": 0.010}) == (
        "Deepest-stage (S3) ADI was 87% lower under act (0.010) than under base (0.079)."
    )
    assert adi_reduction_reading(3, {"base": 0.079, "ta": 0.047, "act": 0.010}) == (
        "Relative to base (0.079), deepest-stage (S3) ADI was 41% lower under ta (0.047) and 87% lower "
        "under act (0.010)."
    )
    means = {"base": {0: 0.003, 1: 0.01, 2: 0.04, 3: 0.079}, "act": {0: 0.001, 1: 0.004, 2: 0.002, 3: 0.010}}
    assert adi_depth_reading(means) == (
        "Mean ADI rose with depth under every configuration (base 0.003 at S0 → 0.079 at S3, at every stage; "
        "act 0.001 at S0 → 0.010 at S3)."
    )
    assert layout_share_reading({("act", 1): (0.006, 0.01), ("base", 1): (0.0, 0.02)}) == (
        "Layout padding (window arithmetic, not the MRI) makes up as much as 60% of ADI (act, S1), the "
        "window artifact of §3.2.1."
    )
    assert adi_depth_reading({"act": {0: 0.0061, 3: 0.0059}}) == (
        "Mean ADI stayed flat with depth under act (0.006 at S0 → 0.006 at S3)."
    )
    assert layout_share_reading({("base", 0): (0.0, 0.02)}) == (
        "All ADI comes from input padding: layout padding (window arithmetic) adds none."
    )


def test_trend_reading():
    trends = {"base": Trend(0.91, 3.2e-9, 40), "act": Trend(math.nan, math.nan, 40, "padding fraction"),
              "ta": Trend(-0.1, 0.52, 40)}  # fmt: skip
    assert trend_reading("Deepest-stage (S3) ADI", "padding fraction", trends) == (
        "Deepest-stage (S3) ADI rises with padding fraction under base (Spearman rho = 0.91, p = 3e-9, "
        "n = 40); cannot be related to padding fraction under act (padding fraction is constant over 40 "
        "scans); shows no significant trend with padding fraction under ta (Spearman rho = -0.10, "
        "p = 0.520, n = 40)."
    )


def test_adi_section_of_an_empty_folder_says_what_to_run(empty_section):
    from attndilute.report.sections.adi import adi_section

    empty_section(adi_section, "adi")
