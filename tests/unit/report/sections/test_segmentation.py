"""The segmentation section and its readings (seed Table 2, §3.1)."""

from __future__ import annotations

from attndilute.report.sections.segmentation import paired_reading, segmentation_reading


def test_segmentation_reading():
    text = segmentation_reading(
        {"SMIT-Base": 0.559, "SMIT-ACT": 0.624}, {"SMIT-Base": 0.862, "SMIT-ACT": 0.907},
        sdsc_p=0.0004, detection_diff_pp=4.5, detection_p=0.021,
    )  # fmt: skip
    assert text == (
        "Median sDSC was highest under SMIT-ACT (0.624 vs 0.559 under SMIT-Base; Wilcoxon p = 4e-4 after "
        "Bonferroni), which detected 90.7% vs 86.2% of tumours (+4.5 pp, McNemar p = 0.021)."
    )
    assert segmentation_reading({"a": 0.5}, {"a": 0.75}) == (
        "Under a, median sDSC was 0.500 and 75.0% of tumours were detected."
    )
    assert paired_reading("act", "base", 10, 1, 12) == (
        "Case by case, act scored a higher sDSC than base in 10 of 12 cases and a lower one in 1 (1 tied)."
    )


def test_segmentation_section_of_an_empty_folder_says_what_to_run(empty_section):
    from attndilute.report.sections.segmentation import segmentation_section

    empty_section(segmentation_section, "evaluate")
