"""The CKA section and its readings (seed Figs. 6, A.2, §3.3)."""

from __future__ import annotations

from attndilute.report.sections.cka import cka_diagonal_reading, cka_drift_reading


def test_cka_readings():
    assert cka_diagonal_reading("base_vs_act", ["S0.B0", "S1", "S3"], [0.98, 0.35, 0.41]) == (
        "Diagonal CKA of base_vs_act falls from 0.980 at S0.B0 to 0.410 at S3 (lowest 0.350 at S1)."
    )
    assert cka_drift_reading(3, {"base_vs_init": 0.62, "act_vs_init": 0.41}) == (
        "In the deepest stage (S3) act_vs_init has the lowest mean diagonal CKA (0.410, the most drift) and "
        "base_vs_init the highest (0.620)."
    )


def test_cka_section_of_an_empty_folder_says_what_to_run(empty_section):
    from attndilute.report.sections.cka import cka_section

    empty_section(cka_section, "cka")
