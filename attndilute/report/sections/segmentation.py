"""Segmentation performance (seed Table 2, §3.1): sDSC, VR, detection with Wilson intervals, the
paired tests, per-case sDSC and their readings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from attndilute.evaluation.formatting import table_cells, tests_cells
from attndilute.report import figures, summaries
from attndilute.report.sections.blocks import Figure, Section, Table, add_problems
from attndilute.report.sections.missing import missing
from attndilute.report.wording import finite, format_p, join_list, small_sample

if TYPE_CHECKING:
    from attndilute.report.load import Run


def segmentation_reading(
    sdsc_median: Mapping[str, float],
    detection_rate: Mapping[str, float],
    *,
    sdsc_p: float | None = None,
    detection_diff_pp: float | None = None,
    detection_p: float | None = None,
    n: Mapping[str, int] | None = None,
) -> str:
    """The best and worst configuration by median sDSC, with the paired tests between them.

    With fewer than :data:`MIN_N` cases in a configuration (``n``) or a tie as printed, the
    sentence gives the numbers and tests and names no best configuration.

    Args:
        sdsc_median: configuration -> median sDSC (after the §2.8 penalties).
        detection_rate: configuration -> detection rate (fraction).
        sdsc_p: Bonferroni-corrected Wilcoxon p of the best-vs-worst pair.
        detection_diff_pp: detection of the best minus the worst, percentage points.
        detection_p: exact McNemar p of the pair.
        n: configuration -> evaluated cases.
    """
    values = finite(sdsc_median)
    if not values:
        return "No configuration has a finite median sDSC."
    order = sorted(values, key=lambda c: -values[c])
    best, worst = order[0], order[-1]
    if len(order) == 1:
        return (
            f"Under {best}, median sDSC was {values[best]:.3f} and "
            f"{100 * detection_rate[best]:.1f}% of tumours were detected."
        )
    small = small_sample(n)
    if small is not None:
        medians = join_list([f"{values[c]:.3f} under {c}" for c in values])
        rates = join_list([f"{100 * detection_rate[c]:.1f}% under {c}" for c in values])
        tests = "" if sdsc_p is None else f" (Wilcoxon p = {format_p(sdsc_p)} after Bonferroni)"
        mc = "" if detection_p is None else f" (McNemar p = {format_p(detection_p)})"
        return (f"Median sDSC was {medians}{tests} and detection {rates}{mc}; with {small} no "
                "configuration is called better.")
    if round(values[best], 3) == round(values[worst], 3):
        return f"Every configuration reached the same median sDSC ({values[best]:.3f})."
    tests = "" if sdsc_p is None else f"; Wilcoxon p = {format_p(sdsc_p)} after Bonferroni"
    detection = f"{100 * detection_rate[best]:.1f}% vs {100 * detection_rate[worst]:.1f}% of tumours"
    if detection_diff_pp is not None:
        detection += f" ({detection_diff_pp:+.1f} pp"
        detection += f", McNemar p = {format_p(detection_p)})" if detection_p is not None else ")"
    return (
        f"Median sDSC was highest under {best} ({values[best]:.3f} vs {values[worst]:.3f} under {worst}"
        f"{tests}), which detected {detection}."
    )


def paired_reading(better: str, worse: str, n_higher: int, n_lower: int, n: int) -> str:
    """Case-by-case comparison of two configurations' sDSC (the pairs behind the Wilcoxon test).

    Args:
        better: the configuration with the higher median sDSC.
        worse: the other configuration.
        n_higher: cases where ``better`` scored higher.
        n_lower: cases where it scored lower.
        n: paired cases.
    """
    ties = n - n_higher - n_lower
    text = (
        f"Case by case, {better} scored a higher sDSC than {worse} in {n_higher} of {n} cases "
        f"and a lower one in {n_lower}"
    )
    return text + (f" ({ties} tied)." if ties else ".")


def _pair(tests, a: str, b: str):
    if tests is None:
        return None
    for row in tests.itertuples():
        if {str(row.config_a), str(row.config_b)} == {a, b}:
            return row
    return None


def segmentation_section(run: Run) -> Section:
    """Table 2 with Wilson intervals and paired tests, and the per-case sDSC."""
    sec = Section("segmentation", "Segmentation performance", "seed Table 2 and §3.1")
    for config in run.configs:
        if config not in run.evals:
            sec.blocks.append(
                missing(run, "eval", config=config)
            )
    if run.table is None:
        if not run.configs:
            sec.blocks.append(
                missing(run, "eval", what="per-case evaluations")
            )
        add_problems(run, sec)
        return sec
    source = "computed here from eval/*.csv" if run.table_computed else "eval/table.csv"
    table = run.table
    sdsc = {str(r.config): float(r.sdsc_median) for r in table.itertuples()}
    rate = {str(r.config): float(r.detection_rate) for r in table.itertuples()}
    n_cases = {str(r.config): int(r.n) for r in table.itertuples()} if "n" in table.columns else None
    finite = {c: v for c, v in sdsc.items() if math.isfinite(v)}
    kwargs = {}
    if len(finite) > 1:
        best, worst = max(finite, key=finite.get), min(finite, key=finite.get)
        row = _pair(run.tests, best, worst)
        if row is not None:
            sign = 1.0 if str(row.config_b) == best else -1.0  # diff is b - a
            kwargs = {
                "sdsc_p": float(row.sdsc_p_bonferroni),
                "detection_diff_pp": sign * float(row.detection_diff_pp),
                "detection_p": float(row.detection_p),
            }
    reading = segmentation_reading(sdsc, rate, n=n_cases, **kwargs)
    n_excluded = int(table["n_excluded"].iloc[0]) if "n_excluded" in table.columns else 0
    sec.blocks.append(Table(
        *table_cells(table), reading=reading,
        caption=f"sDSC and VR: median [IQR], missed cases = 0.1 / 10, {n_excluded} case(s) missed by every "
                f"configuration excluded; detection over all cases with a Wilson 95% interval ({source}).",
    ))  # fmt: skip
    if run.tests is not None and len(run.tests):
        sec.blocks.append(
            Table(
                *tests_cells(run.tests),
                caption="Paired tests: Wilcoxon signed-rank (Bonferroni across pairs), "
                "exact McNemar for detection; Δ detection = second − first, in percentage points.",
            )
        )
    per_case = {c: summaries.joined_cases(run, c) for c in run.configs if c in run.evals}
    if per_case:
        sec.blocks.append(
            Figure(
                figures.sdsc_boxes(per_case, run.configs),
                _paired(per_case, finite, reading),
                "Every case shown; missed cases (Dice < 0.1) at the penalty sDSC = 0.1.",
            )
        )
    add_problems(run, sec)
    return sec


def _paired(per_case: dict, medians: dict[str, float], fallback: str) -> str:
    """The case-by-case reading of the best vs the worst configuration (by median sDSC)."""
    present = {c: v for c, v in medians.items() if c in per_case}
    if len(present) < 2:
        return fallback
    best, worst = max(present, key=present.get), min(present, key=present.get)
    if round(present[best], 3) == round(present[worst], 3):  # a tie: keep the report's order
        best, worst = list(present)[:2]
    a = per_case[best].set_index("case")["sdsc_penalized"]
    b = per_case[worst].set_index("case")["sdsc_penalized"]
    both = a.to_frame("a").join(b.to_frame("b"), how="inner").dropna()
    return paired_reading(
        best, worst, int((both["a"] > both["b"]).sum()), int((both["a"] < both["b"]).sum()), len(both)
    )
