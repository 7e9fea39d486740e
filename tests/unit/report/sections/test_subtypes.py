"""The subtypes section and its readings (seed Fig. 5, Fig. A.1, §3.2.2)."""

from __future__ import annotations

from attndilute.report.sections.subtypes import cluster_choice_reading, subtype_gap_reading, subtype_reading


def test_subtype_readings():
    assert subtype_reading({"B": 7, "D": 5}, {"B": 0.52, "D": -0.31}, {"B": 0.081, "D": 0.032}) == (
        "The 12 tumours fall into Cluster-B (7, median contrast 0.52, gradient 0.081/mm) and Cluster-D "
        "(5, median contrast -0.31, gradient 0.032/mm)."
    )
    assert cluster_choice_reading({2: 0.4, 3: 0.3}, {2: 9.0, 3: 7.0}, {2: 0.8, 3: 1.1}) == (
        "All three validity indices favour k = 2."
    )
    assert subtype_gap_reading(
        {"act": {"B": 0.965, "D": 0.857}}, {"act": {"B": 0.69, "D": 0.522}}
    ) == (
        "Cluster-D is the harder subtype (85.7% vs 96.5% detected and median sDSC 0.522 vs 0.690 for "
        "Cluster-D vs Cluster-B under act)."
    )


def test_subtypes_section_of_an_empty_folder_says_what_to_run(empty_section):
    from attndilute.report.sections.subtypes import subtypes_section

    empty_section(subtypes_section, "subtypes")
