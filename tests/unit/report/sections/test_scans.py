"""The per-scan section."""

from __future__ import annotations


def test_scans_section_of_an_empty_folder_says_what_to_run(empty_section):
    from attndilute.report.sections.scans import scans_section

    empty_section(scans_section, "evaluate")
