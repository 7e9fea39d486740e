"""Per-scan results: every scan under every configuration, sortable and downloadable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attndilute.report import summaries
from attndilute.report.sections.blocks import DataTable, Section
from attndilute.report.sections.missing import missing

if TYPE_CHECKING:
    from attndilute.report.load import Run


def scans_section(run: Run) -> Section:
    """Every scan under every configuration: padding, stage ADI, Dice, sDSC, detection, subtype."""
    sec = Section("scans", "Per-scan results", "the per-case data behind Table 2 and Fig. 4")
    frame = summaries.per_scan_table(run)
    if frame is None:
        sec.blocks.append(
            missing(run, "eval", what="per-scan evaluations and ADI")
        )
        return sec
    sec.blocks.append(DataTable(
        frame, "per_scan.csv",
        "One row per scan and configuration. Padding fraction: of the model's own input (Eq. 4); "
        "Sk ADI: stage ADI (Eq. 7, mean over the stage's blocks and heads); Dice and sDSC (2 mm) "
        "unpenalised; detected: Dice ≥ 0.1; subtype: appearance cluster. Click a header to sort.",
    ))  # fmt: skip
    return sec
