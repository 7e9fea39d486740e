"""The cohort section and its readings (seed Table 1, §3.2.1)."""

from __future__ import annotations

from attndilute.report.sections.cohort import padding_reading


def test_padding_reading():
    assert padding_reading(247, 123, 93, 70, 120, 0.162, 0.201, 128) == (
        "123 of 247 scans (50%) need zero-padding under a 128-voxel axial crop: the median native axial "
        "extent is 93 [70–120] voxels and the mean padding fraction 0.162 ± 0.201."
    )
    assert padding_reading(12, 0, 94, 71, 119, 0.0, 0.0).startswith(
        "None of the 12 scans needs zero-padding under the crop:"
    )


def test_cohort_section_of_an_empty_folder_says_what_to_run(empty_section):
    from attndilute.report.sections.cohort import cohort_section

    empty_section(cohort_section, "phantom")
