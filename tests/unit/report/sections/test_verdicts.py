"""No reading names a winner on a tie or below the minimum sample (every section)."""

from __future__ import annotations

from attndilute.report.sections.adi import adi_reduction_reading, trend_reading
from attndilute.report.sections.segmentation import segmentation_reading
from attndilute.report.sections.subtypes import subtype_gap_reading
from attndilute.report.wording import Trend


def test_readings_name_no_winner_on_a_tie():
    assert subtype_gap_reading(
        {"base": {"A": 0.0, "B": 0.0}}, {"base": {"A": 0.1, "B": 0.1}}
    ) == (
        "No subtype is harder: the subtypes tie as shown (0.0% vs 0.0% detected and median sDSC 0.100 vs "
        "0.100 for Cluster-A vs Cluster-B under base)."
    )
    # a difference below the printed precision is a tie too
    assert segmentation_reading({"base": 0.1001, "act": 0.1002}, {"base": 0.0, "act": 0.0}) == (
        "Every configuration reached the same median sDSC (0.100)."
    )
    assert adi_reduction_reading(3, {"base": 0.0791, "act": 0.0790}) == (
        "Deepest-stage (S3) ADI was about the same under act (0.079) as under base (0.079)."
    )


def test_readings_give_numbers_but_no_verdict_below_the_minimum_sample():
    n = {"base": 3, "act": 3}
    assert adi_reduction_reading(3, {"base": 0.079, "act": 0.0}, n, {"base": 0.01, "act": 0.0}) == (
        "Deepest-stage (S3) ADI was 0.079 ± 0.010 under base (n = 3) and 0.000 ± 0.000 under act (n = 3) "
        "(mean ± sd); with 3 scans per configuration (fewer than 10) no reduction is claimed."
    )
    text = segmentation_reading(
        {"base": 0.559, "act": 0.624}, {"base": 0.5, "act": 0.75}, sdsc_p=0.5, detection_p=1.0, n=n
    )
    assert text == (
        "Median sDSC was 0.559 under base and 0.624 under act (Wilcoxon p = 0.500 after Bonferroni) and "
        "detection 50.0% under base and 75.0% under act (McNemar p = 1.000); with 3 cases per "
        "configuration (fewer than 10) no configuration is called better."
    )
    assert "highest" not in text
    trend = trend_reading("sDSC", "padding fraction", {"base": Trend(0.99, 0.01, 5)})
    assert trend == (
        "sDSC is not called a trend with padding fraction under base (Spearman rho = 0.99, p = 0.010, "
        "n = 5; fewer than 10 scans)."
    )
    gap = subtype_gap_reading(
        {"act": {"B": 0.965, "D": 0.857}}, {"act": {"B": 0.69, "D": 0.522}}, {"act": {"B": 7, "D": 5}}
    )
    assert gap.endswith(
        "with 5 tumour(s) in the smallest subtype (fewer than 10) no subtype is called harder."
    )
    # at the minimum the verdicts come back
    enough = adi_reduction_reading(3, {"base": 0.079, "act": 0.010}, {"base": 10, "act": 10})
    assert "87% lower" in enough
