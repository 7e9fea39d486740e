"""The report's sections in the seed's order, each built from whatever inputs exist.

Order (seed §3): cohort and padding (Table 1, §3.2.1), segmentation (Table 2, §3.1), attention
dilution (Fig. 4, §3.2.1), appearance subtypes (Fig. 5, Fig. A.1, §3.2.2), feature similarity
(Figs. 6, A.2, §3.3; Fig. 8 needs a trained Scratch model, docs/cka.md), training convergence
(Fig. 7), then the per-scan table. One module per section holds its builder and its readings
(pure functions: numbers in, one sentence out). A section whose inputs are missing says which
file is missing and which command writes it (:mod:`.missing`, one table); a section never raises
for a missing or unreadable input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attndilute.report.sections.adi import adi_section
from attndilute.report.sections.blocks import DataTable, Figure, Missing, Section, Table, Text
from attndilute.report.sections.cka import cka_section
from attndilute.report.sections.cohort import cohort_section
from attndilute.report.sections.scans import scans_section
from attndilute.report.sections.segmentation import segmentation_section
from attndilute.report.sections.subtypes import subtypes_section
from attndilute.report.sections.training import training_section

if TYPE_CHECKING:
    from attndilute.report.load import Run

__all__ = ["SECTIONS", "DataTable", "Figure", "Missing", "Section", "Table", "Text", "build_sections"]


#: Section builders in the seed's order, the per-scan table last.
SECTIONS = (
    cohort_section,
    segmentation_section,
    adi_section,
    subtypes_section,
    cka_section,
    training_section,
    scans_section,
)


def build_sections(run: Run) -> list[Section]:
    """Every section of the report, in order."""
    return [build(run) for build in SECTIONS]
