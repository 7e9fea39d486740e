"""Cohort and padding statistics (seed Table 1, §3.2.1): the cohort table, the padding under the
crop (Eq. 4) and their readings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attndilute.report import figures, summaries
from attndilute.report.sections.blocks import Figure, Section, Table, add_problems
from attndilute.report.sections.missing import missing

if TYPE_CHECKING:
    from attndilute.report.load import Run


def padding_reading(
    n: int,
    n_padded: int,
    extent_median: float,
    extent_q1: float,
    extent_q3: float,
    pf_mean: float,
    pf_sd: float,
    crop_z: int | None = None,
) -> str:
    """How many scans the crop pads (Eq. 4), as in the seed's §3.2.1 opening.

    Args:
        n: scans.
        n_padded: scans with padding fraction > 0.
        extent_median: median native axial extent after resampling (voxels = mm at 1 mm).
        extent_q1: its first quartile.
        extent_q3: its third quartile.
        pf_mean: mean padding fraction.
        pf_sd: its standard deviation.
        crop_z: the crop depth C, when known.
    """
    crop = f"a {crop_z}-voxel axial crop" if crop_z else "the crop"
    share = 100.0 * n_padded / n if n else 0.0
    head = f"{n_padded} of {n} scans ({share:.0f}%) need zero-padding under {crop}"
    if n_padded == 0:
        head = f"None of the {n} scans needs zero-padding under {crop}"
    return (
        f"{head}: the median native axial extent is {extent_median:.0f} [{extent_q1:.0f}–{extent_q3:.0f}] "
        f"voxels and the mean padding fraction {pf_mean:.3f} ± {pf_sd:.3f}."
    )


def extent_reading(n: int, extent_median: float, extent_q1: float, extent_q3: float) -> str:
    """The cohort's native axial extent when no padding statistics exist (seed Table 1)."""
    return (
        f"The {n} scans have a median native axial extent of {extent_median:.0f} "
        f"[{extent_q1:.0f}–{extent_q3:.0f}] mm."
    )


def cohort_section(run: Run) -> Section:
    """Table 1 and the padding statistics of §3.2.1."""
    sec = Section("cohort", "Cohort and padding statistics", "seed Table 1 and §3.2.1")
    configs = summaries.config_table(run)
    if configs is not None:
        sec.blocks.append(Table(*configs, caption="Configurations (from each checkpoint's metadata)"))
    frame = summaries.cohort_frame(run)
    if frame is None:
        sec.blocks.append(
            missing(run, "cohort")
        )
    else:
        sec.blocks.append(Table(*summaries.cohort_table(frame), caption="Cohort (median [IQR]; Table 1)"))
    if run.padstats is None:
        sec.blocks.append(
            missing(run, "padstats")
        )
        if frame is not None:
            q1, med, q3 = np.percentile(frame["extent"].to_numpy(float), [25, 50, 75])
            sec.blocks.append(
                Figure(
                    figures.extent_histogram(frame, None),
                    extent_reading(len(frame), med, q1, q3),
                    "Native axial extent of each scan (phantom.csv); the crop depth needs padstats.",
                )
            )
    else:
        s = summaries.padding_numbers(run.padstats)
        crop_z = summaries.crop_depth(run.padstats)
        reading = padding_reading(
            s["n"],
            s["n_padded"],
            s["extent_median"],
            s["extent_q1"],
            s["extent_q3"],
            s["pf_mean"],
            s["pf_sd"],
            crop_z,
        )
        sec.blocks.append(
            Figure(
                figures.extent_histogram(frame, crop_z),
                reading,
                "Eq. 4: pf = max(1 − L/C, 0); the dashed line is the crop depth C.",
            )
        )
    add_problems(run, sec)
    return sec
