"""Appearance subtypes (seed Fig. 5, Fig. A.1, §3.2.2): the clusters, their validity indices,
detection and sDSC per subtype, and their readings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from attndilute.evaluation.formatting import median_iqr, rate_interval
from attndilute.report import figures, summaries
from attndilute.report.sections.blocks import Figure, Section, Table, Text, add_problems
from attndilute.report.sections.missing import missing
from attndilute.report.wording import MIN_N, join_list

if TYPE_CHECKING:
    from attndilute.report.load import Run


def subtype_reading(
    counts: Mapping[str, int], contrast: Mapping[str, float], gradient: Mapping[str, float]
) -> str:
    """The clusters' sizes and their median contrast and boundary gradient (Fig. 5).

    Args:
        counts: subtype -> number of tumours.
        contrast: subtype -> median tumour-to-background contrast.
        gradient: subtype -> median boundary gradient (per mm).
    """
    names = sorted(counts, key=lambda s: -contrast.get(s, -math.inf))
    parts = [
        f"Cluster-{s} ({counts[s]}, median contrast {contrast[s]:.2f}, gradient {gradient[s]:.3f}/mm)"
        for s in names
    ]
    total = sum(counts.values())
    return f"The {total} tumours fall into " + join_list(parts) + "."


def cluster_choice_reading(
    silhouette: Mapping[int, float], calinski: Mapping[int, float], davies: Mapping[int, float]
) -> str:
    """Which k each validity index favours (Fig. A.1: the seed's three agree on k = 2).

    Args:
        silhouette: k -> silhouette score (higher is better).
        calinski: k -> Calinski-Harabasz index (higher is better).
        davies: k -> Davies-Bouldin index (lower is better).
    """
    picks = {
        "silhouette": max(silhouette, key=lambda k: silhouette[k]),
        "Calinski–Harabasz": max(calinski, key=lambda k: calinski[k]),
        "Davies–Bouldin": min(davies, key=lambda k: davies[k]),
    }
    ks = set(picks.values())
    if len(ks) == 1:
        return f"All three validity indices favour k = {ks.pop()}."
    favoured = join_list([f"{m} favours k = {k}" for m, k in picks.items()])
    return f"The validity indices disagree: {favoured}."


def subtype_agreement_reading(n_agree: int, n: int) -> str:
    """Agreement between the clusters and the phantom's designed subtypes."""
    share = 100.0 * n_agree / n if n else 0.0
    return f"The clusters match the phantom's designed subtypes in {n_agree} of {n} cases ({share:.0f}%)."


def subtype_gap_reading(
    detection: Mapping[str, Mapping[str, float]],
    sdsc: Mapping[str, Mapping[str, float]],
    n: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """The hardest subtype per configuration by detection, then median sDSC (§3.2.2).

    A subtype is called harder only when its numbers differ as printed (detection to 0.1%, sDSC to
    three decimals) and every subtype has at least :data:`MIN_N` tumours; otherwise the sentence
    gives the numbers and names no subtype.

    Args:
        detection: configuration -> {subtype -> detection rate (fraction)}.
        sdsc: configuration -> {subtype -> median sDSC}.
        n: configuration -> {subtype -> tumours}.
    """
    hardest, clauses, tied = set(), [], 0
    for config, rates in detection.items():
        if len(rates) < 2:
            continue
        shown = {s: (round(100 * rates[s], 1), round(sdsc[config][s], 3)) for s in rates}
        order = sorted(rates, key=lambda s: shown[s])
        low, high = order[0], order[-1]
        tie = shown[low] == shown[high]
        tied += tie
        if not tie:
            hardest.add(low)
        clauses.append(
            f"{100 * rates[low]:.1f}% vs {100 * rates[high]:.1f}% detected and median sDSC "
            f"{sdsc[config][low]:.3f} vs {sdsc[config][high]:.3f} for Cluster-{low} vs Cluster-{high} "
            f"under {config}"
        )
    if not clauses:
        return "Fewer than two subtypes were evaluated, so no subtype is harder than another."
    detail = "; ".join(clauses)
    sizes = [v for groups in (n or {}).values() for v in groups.values()]
    if sizes and min(sizes) < MIN_N:
        return (f"Subtypes: {detail}; with {min(sizes)} tumour(s) in the smallest subtype (fewer than "
                f"{MIN_N}) no subtype is called harder.")
    if tied == len(clauses):
        return f"No subtype is harder: the subtypes tie as shown ({detail})."
    if len(hardest) == 1 and not tied:
        return f"Cluster-{hardest.pop()} is the harder subtype ({detail})."
    return f"The harder subtype depends on the configuration ({detail})."


def subtypes_section(run: Run) -> Section:
    """Fig. 5, Fig. A.1 and detection / sDSC per subtype (§3.2.2)."""
    sec = Section("subtypes", "Appearance subtypes", "seed Fig. 5, Fig. A.1 and §3.2.2")
    _clusters(run, sec)
    _validity(run, sec)
    _per_subtype(run, sec)
    add_problems(run, sec)
    return sec


def _clusters(run: Run, sec: Section) -> None:
    """Fig. 5: the clusters, and how they match the phantom's designed subtypes."""
    if run.features is None:
        sec.blocks.append(missing(run, "features"))
    else:
        f = run.features.assign(subtype=run.features["subtype"].astype(str))
        counts = f["subtype"].value_counts().to_dict()
        contrast = f.groupby("subtype")["contrast"].median().to_dict()
        gradient = f.groupby("subtype")["boundary_gradient"].median().to_dict()
        sec.blocks.append(
            Figure(
                figures.subtype_scatter(f),
                subtype_reading(counts, contrast, gradient),
                "k-means on seven z-scored tumour features; clusters named by contrast.",
            )
        )
        if run.cohort is not None and "subtype" in run.cohort.columns:
            designed = run.cohort.assign(case=run.cohort["case"].astype(str)).set_index("case")["subtype"]
            both = f.assign(designed=f["case"].astype(str).map(designed)).dropna(subset=["designed"])
            if len(both):
                agree = int((both["designed"].astype(str) == both["subtype"]).sum())
                sec.blocks.append(Text(subtype_agreement_reading(agree, len(both))))


def _validity(run: Run, sec: Section) -> None:
    """Fig. A.1: the validity indices for k = 2..5."""
    if run.scores is None:
        if run.features is not None:
            sec.blocks.append(missing(run, "scores"))
    else:
        s = run.scores
        pick = {
            col: dict(zip(s["k"].astype(int), s[col].astype(float), strict=True))
            for col in ("silhouette", "calinski_harabasz", "davies_bouldin")
        }
        sec.blocks.append(
            Figure(
                figures.cluster_scores(s),
                cluster_choice_reading(
                    pick["silhouette"], pick["calinski_harabasz"], pick["davies_bouldin"]
                ),
                "k-means validity indices for k = 2..5: higher is better for silhouette and "
                "Calinski–Harabasz (↑), lower for Davies–Bouldin (↓).",
            )
        )


def _per_subtype(run: Run, sec: Section) -> None:
    """Detection and sDSC per subtype and configuration."""
    perf = summaries.subtype_performance(run)
    if perf is not None:
        rows = [
            [
                r.config,
                f"Cluster-{r.subtype}",
                str(r.n),
                rate_interval(r.detection_rate, r.detection_low, r.detection_high)
                + f" ({r.n_detected}/{r.n})",
                median_iqr(r.sdsc_median, r.sdsc_q1, r.sdsc_q3),
            ]
            for r in perf.itertuples()
        ]
        det = {
            c: dict(zip(g["subtype"].astype(str), g["detection_rate"], strict=True))
            for c, g in perf.groupby("config", sort=False)
        }
        med = {
            c: dict(zip(g["subtype"].astype(str), g["sdsc_median"], strict=True))
            for c, g in perf.groupby("config", sort=False)
        }
        sizes = {
            c: dict(zip(g["subtype"].astype(str), g["n"].astype(int), strict=True))
            for c, g in perf.groupby("config", sort=False)
        }
        sec.blocks.append(
            Table(
                ["Configuration", "Subtype", "N", "Detection [95% CI]", "sDSC"],
                rows,
                caption="Per subtype: detection with Wilson 95% interval, sDSC median [IQR] (missed = 0.1).",
                reading=subtype_gap_reading(det, med, sizes),
            )
        )
