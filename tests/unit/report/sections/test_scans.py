"""The per-scan section."""

from __future__ import annotations


def test_scans_section_of_an_empty_folder_says_what_to_run(tmp_path):
    from attndilute.report.load import load_run
    from attndilute.report.sections import Missing
    from attndilute.report.sections.scans import scans_section

    sec = scans_section(load_run(tmp_path))
    missing = [b for b in sec.blocks if isinstance(b, Missing)]
    assert sec.status == "missing" and missing
    assert missing[0].command.startswith("attndilute evaluate ")
    assert all(m.command.startswith("attndilute ") and str(tmp_path) in m.path for m in missing)
