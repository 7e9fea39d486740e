"""Attention dilution (seed Fig. 4, §3.2.1): ADI per stage, by padding source, at the deepest
stage and against padding fraction, and their readings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from attndilute.report import figures, summaries
from attndilute.report.sections.blocks import (
    Figure,
    Section,
    add_problems,
)
from attndilute.report.sections.missing import missing_per_config
from attndilute.report.wording import (
    ALPHA,
    MIN_N,
    Trend,
    finite,
    format_p,
    join_list,
    small_sample,
    trend_word,
)

if TYPE_CHECKING:
    from attndilute.report.load import Run

#: Layout padding below this share of a stage's ADI is called negligible.
LAYOUT_SHARE_NOTABLE = 0.10


def adi_depth_reading(stage_means: Mapping[str, Mapping[int, float]]) -> str:
    """How mean ADI changes from the first to the deepest stage, per configuration (Fig. 4 A-B).

    Args:
        stage_means: configuration -> {stage -> cohort mean ADI}; NaN stages are skipped.
    """
    parts: dict[str, tuple[str, str]] = {}
    for config, means in stage_means.items():
        means = {int(s): float(v) for s, v in means.items() if math.isfinite(v)}
        if len(means) < 2:
            continue
        first, last = min(means), max(means)
        word = trend_word(means[first], means[last])
        monotone = all(
            (means[b] - means[a]) * (means[last] - means[first]) > 0
            for a, b in zip(sorted(means)[:-1], sorted(means)[1:], strict=True)
        )
        span = f"{means[first]:.3f} at S{first} → {means[last]:.3f} at S{last}"
        if word != "stayed flat" and monotone and len(means) > 2:
            span += ", at every stage"
        parts[config] = (word, span)
    if not parts:
        return "No configuration has ADI for two or more stages."
    words = {w for w, _ in parts.values()}
    if len(parts) > 1 and len(words) == 1:
        detail = "; ".join(f"{c} {span}" for c, (_, span) in parts.items())
        return f"Mean ADI {words.pop()} with depth under every configuration ({detail})."
    clauses = [f"{w} with depth under {c} ({span})" for c, (w, span) in parts.items()]
    return "Mean ADI " + "; ".join(clauses) + "."


def adi_reduction_reading(
    stage: int,
    means: Mapping[str, float],
    n: Mapping[str, int] | None = None,
    sds: Mapping[str, float] | None = None,
) -> str:
    """Deepest-stage ADI of every configuration against the highest (Fig. 4 C: "cut by 87%").

    With fewer than :data:`MIN_N` scans in a configuration the sentence gives mean ± sd and n and
    names no reduction.

    Args:
        stage: the deepest stage index (S3 in the seed).
        means: configuration -> cohort mean ADI at that stage.
        n: configuration -> scans behind the mean.
        sds: configuration -> sd over scans (shown with a small sample).
    """
    values = finite(means)
    subject = f"Deepest-stage (S{stage}) ADI"
    if not values:
        return f"{subject} is not defined for any configuration."
    top = max(values, key=lambda c: values[c])
    if len(values) == 1:
        return f"{subject} averaged {values[top]:.3f} under {top}."
    small = small_sample({c: v for c, v in (n or {}).items() if c in values}, "scans")
    if small is not None:
        sds = sds or {}
        shown = join_list(
            [f"{values[c]:.3f} ± {sds.get(c, math.nan):.3f} under {c} (n = {n[c]})" for c in values]
        )
        return f"{subject} was {shown} (mean ± sd); with {small} no reduction is claimed."
    if values[top] == 0:
        return f"{subject} was 0 under every configuration."
    others = [c for c in values if c != top]
    clauses = []
    for c in others:
        cut = 100.0 * (1.0 - values[c] / values[top])
        change = f"{cut:.0f}% lower" if round(cut) != 0 else "about the same"
        clauses.append(f"{change} under {c} ({values[c]:.3f})")
    if len(others) == 1:
        joint = "as" if clauses[0].startswith("about the same") else "than"
        return f"{subject} was {clauses[0]} {joint} under {top} ({values[top]:.3f})."
    return f"Relative to {top} ({values[top]:.3f}), deepest-stage (S{stage}) ADI was {join_list(clauses)}."


def layout_share_reading(shares: Mapping[tuple[str, int], tuple[float, float]]) -> str:
    """How much of ADI the implementation's own padding carries (seed §3.2.1 window artifact).

    Args:
        shares: (configuration, stage) -> (mean ``adi_layout_pad``, mean ``adi``).
    """
    ratios = {key: lay / tot for key, (lay, tot) in shares.items() if math.isfinite(lay) and tot > 0}
    if not ratios:
        return "No stage has positive ADI, so there is nothing to split by token source."
    key = max(ratios, key=lambda k: ratios[k])
    share = ratios[key]
    if share == 0:
        return "All ADI comes from input padding: layout padding (window arithmetic) adds none."
    if share < LAYOUT_SHARE_NOTABLE:
        return (
            f"Input padding carries almost all ADI: layout padding (window arithmetic) is at most "
            f"{100 * share:.0f}% of a stage's ADI ({key[0]}, S{key[1]})."
        )
    return (
        f"Layout padding (window arithmetic, not the MRI) makes up as much as {100 * share:.0f}% of "
        f"ADI ({key[0]}, S{key[1]}), the window artifact of §3.2.1."
    )


def trend_reading(subject: str, predictor: str, trends: Mapping[str, Trend]) -> str:
    """A Spearman trend per configuration: "deepest-stage ADI rises with padding fraction (...)".

    Args:
        subject: what varies, capitalised as a sentence start (``"Deepest-stage (S3) ADI"``).
        predictor: what it is related to (``"padding fraction"``).
        trends: configuration -> :class:`Trend`.
    """
    clauses = []
    for config, t in trends.items():
        if t.n < 3 or not math.isfinite(t.rho):
            why = f"{t.constant} is constant over {t.n} scans" if t.constant else f"only {t.n} scans"
            clauses.append(f"cannot be related to {predictor} under {config} ({why})")
            continue
        stats = f"Spearman rho = {t.rho:.2f}, p = {format_p(t.p)}, n = {t.n}"
        if t.n < MIN_N:
            clauses.append(f"is not called a trend with {predictor} under {config} ({stats}; fewer than "
                           f"{MIN_N} scans)")
        elif t.p < ALPHA:
            verb = "rises" if t.rho > 0 else "falls"
            clauses.append(f"{verb} with {predictor} under {config} ({stats})")
        else:
            clauses.append(f"shows no significant trend with {predictor} under {config} ({stats})")
    if not clauses:
        return f"{subject} has no configuration to relate to {predictor}."
    return f"{subject} " + "; ".join(clauses) + "."


def adi_section(run: Run) -> Section:
    """ADI per stage, by padding source, deepest stage and against padding fraction (Fig. 4)."""
    sec = Section("adi", "Attention dilution", "seed Fig. 4 and §3.2.1")
    sec.blocks.extend(missing_per_config(run, "adi", present=run.adi))
    if not run.adi:
        add_problems(run, sec)
        return sec
    tables = {c: summaries.adi_stage_table(run.adi[c]) for c in run.configs if c in run.adi}
    _by_stage(sec, tables, run.configs, run)
    _deepest(sec, tables, run.configs, run)
    _sdsc_by_padding(sec, run.configs, run)
    add_problems(run, sec)
    return sec


def _by_stage(sec: Section, tables: dict, configs: list[str], run: Run) -> None:
    """Fig. 4 A-B: ADI per stage, and its input / layout padding parts."""
    stage_means = {
        c: dict(zip(t["stage"].astype(int), t["mean"].astype(float), strict=True)) for c, t in tables.items()
    }
    sec.blocks.append(
        Figure(
            figures.adi_stages(tables, configs),
            adi_depth_reading(stage_means),
            "ADI (Eq. 7) averaged over each stage's blocks and heads per scan, then over scans.",
        )
    )
    split = {c: t for c, t in tables.items() if {"input_pad", "layout_pad"} <= set(t.columns)}
    if split:
        sec.blocks.append(
            Figure(
                figures.adi_sources(split),
                layout_share_reading(summaries.layout_shares(run)),
                "Input padding: tokens of the volume's zero-padding; layout padding: tokens the "
                "implementation adds (window multiples, odd sizes).",
            )
        )


def _deepest(sec: Section, tables: dict, configs: list[str], run: Run) -> None:
    """Fig. 4 C-D: the deepest stage's ADI per configuration and against padding fraction."""
    stage = summaries.deepest_stage(run)
    deep = {c: summaries.deepest_adi(run.adi[c]) for c in tables if int(run.adi[c]["stage"].max()) == stage}
    means = {c: float(np.nanmean(d["adi"])) if d["adi"].notna().any() else math.nan for c, d in deep.items()}
    sds = {c: float(d["adi"].std()) if d["adi"].notna().sum() > 1 else 0.0 for c, d in deep.items()}
    counts = {c: int(d["adi"].notna().sum()) for c, d in deep.items()}
    sec.blocks.append(Figure(
        figures.adi_deepest(means, sds, stage, configs),
        adi_reduction_reading(stage, means, counts, sds),
        "Bars: mean over scans; whiskers: ± sd, clipped to the index's range [0, 1].",
    ))  # fmt: skip
    with_pf = {c: d for c, d in deep.items() if "padding_fraction" in d.columns}
    if with_pf:
        trends = {
            c: summaries.trend(d["padding_fraction"], d["adi"], "padding fraction", "ADI")
            for c, d in with_pf.items()
        }
        sec.blocks.append(Figure(
            figures.adi_vs_padding(with_pf, trends, stage, configs),
            trend_reading(f"Deepest-stage (S{stage}) ADI", "padding fraction", trends),
            "Each point is one scan; dotted lines are least-squares fits (drawn from "
            f"{figures.MIN_FIT_POINTS} scans on), rho is Spearman's.",
        ))  # fmt: skip


def _sdsc_by_padding(sec: Section, configs: list[str], run: Run) -> None:
    """Fig. 4 E: sDSC against the padding fraction of each case."""
    per_case = {c: summaries.joined_cases(run, c) for c in configs if c in run.evals}
    per_case = {c: f for c, f in per_case.items() if "padding_fraction" in f.columns}
    if per_case:
        trends = {
            c: summaries.trend(f["padding_fraction"], f["sdsc_penalized"], "padding fraction", "sDSC")
            for c, f in per_case.items()
        }
        sec.blocks.append(Figure(
            figures.sdsc_by_padding(per_case, configs),
            trend_reading("sDSC", "padding fraction", trends),
            "Padding fraction of each case under the cohort's crop (padstats), where available.",
        ))  # fmt: skip
