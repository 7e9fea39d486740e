"""One-sentence readings of the report's figures, written from the numbers (never hard-coded).

Every function here is pure: plain numbers and mappings in, one English sentence out, so the
tests can pin the exact sentence for given numbers. Wording follows the seed's Results
(§3.1-3.4): stages are ``S0..SK``, ADI is Eq. 7, sDSC is the surface Dice at 2 mm (§2.8).

Formats: ADI and CKA with three decimals, rho with two, percentages with no decimals for
reductions and one for detection rates, p-values by :func:`format_p` (``0.011``, ``3e-9``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

#: A Spearman p below this counts as a trend in the readings (two-sided).
ALPHA = 0.05
#: Layout padding below this share of a stage's ADI is called negligible.
LAYOUT_SHARE_NOTABLE = 0.10
#: Fewer cases than this in a group: a reading states the numbers with their interval or test and
#: names no winner. Below 10 an exact two-sided Wilcoxon test needs at least 6 pairs to reach
#: p < 0.05 at all, a Wilson 95% interval of a detection rate is wider than 40 points, and a
#: Spearman rho has a 95% interval wider than 1 (docs/report.md).
MIN_N = 10


class Trend(NamedTuple):
    """A Spearman correlation as the readings need it.

    Attributes:
        rho: rank correlation (NaN when undefined).
        p: two-sided p-value (NaN when undefined).
        n: complete pairs.
        constant: what made it undefined (``"padding fraction"``, ``"ADI"``, ...), if anything.
    """

    rho: float
    p: float
    n: int
    constant: str | None = None


def format_p(p: float) -> str:
    """``0.011`` at or above 0.001, ``3e-9`` below (one significant digit), ``n/a`` for NaN."""
    if p is None or math.isnan(p):
        return "n/a"
    if p >= 0.001:
        return f"{p:.3f}"
    if p <= 0:
        return "0"
    mantissa, exponent = f"{p:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def _small(n: Mapping[str, int] | None, unit: str = "cases") -> str | None:
    """``"3 cases per configuration (fewer than 10)"`` when a group is below :data:`MIN_N`, else None."""
    if not n or min(n.values()) >= MIN_N:
        return None
    sizes = sorted(set(int(v) for v in n.values()))
    count = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
    return f"{count} {unit} per configuration (fewer than {MIN_N})"


# --- cohort and padding (Table 1, §3.2.1) ---------------------------------------------------


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


# --- segmentation (Table 2, §3.1) -----------------------------------------------------------


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
    values = _finite(sdsc_median)
    if not values:
        return "No configuration has a finite median sDSC."
    order = sorted(values, key=lambda c: -values[c])
    best, worst = order[0], order[-1]
    if len(order) == 1:
        return (
            f"Under {best}, median sDSC was {values[best]:.3f} and "
            f"{100 * detection_rate[best]:.1f}% of tumours were detected."
        )
    small = _small(n)
    if small is not None:
        medians = _list([f"{values[c]:.3f} under {c}" for c in values])
        rates = _list([f"{100 * detection_rate[c]:.1f}% under {c}" for c in values])
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


# --- attention dilution (Fig. 4, §3.2.1) ----------------------------------------------------


def _trend_word(first: float, last: float, digits: int = 3) -> str:
    """``rose``/``fell``/``stayed flat``, judged on the values as printed (never contradicts them)."""
    first, last = round(first, digits), round(last, digits)
    return "rose" if last > first else "fell" if last < first else "stayed flat"


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
        word = _trend_word(means[first], means[last])
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
    values = _finite(means)
    subject = f"Deepest-stage (S{stage}) ADI"
    if not values:
        return f"{subject} is not defined for any configuration."
    top = max(values, key=lambda c: values[c])
    if len(values) == 1:
        return f"{subject} averaged {values[top]:.3f} under {top}."
    small = _small({c: v for c, v in (n or {}).items() if c in values}, "scans")
    if small is not None:
        sds = sds or {}
        shown = _list(
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
    return f"Relative to {top} ({values[top]:.3f}), deepest-stage (S{stage}) ADI was " + _list(clauses) + "."


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


# --- appearance subtypes (Fig. 5, Fig. A.1, §3.2.2) -----------------------------------------


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
    return f"The {total} tumours fall into " + _list(parts) + "."


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
    return "The validity indices disagree: " + _list([f"{m} favours k = {k}" for m, k in picks.items()]) + "."


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


# --- CKA (Figs. 6, 8, A.2-A.4, §3.3-3.4) ----------------------------------------------------


def cka_diagonal_reading(comparison: str, labels: Sequence[str], diagonal: Sequence[float]) -> str:
    """Diagonal CKA of one comparison from its first to its last matched layer (Fig. A.2).

    Args:
        comparison: name of the comparison (``base_vs_act``).
        labels: matched layer labels (``S0.B0``, ..., ``S3``), shallow to deep.
        diagonal: CKA of each matched pair.
    """
    pairs = [(lab, float(v)) for lab, v in zip(labels, diagonal, strict=True) if math.isfinite(v)]
    if not pairs:
        return f"{comparison} has no matched layers with a finite CKA."
    (first_lab, first), (last_lab, last) = pairs[0], pairs[-1]
    low_lab, low = min(pairs, key=lambda p: p[1])
    word = {"rose": "rises", "fell": "falls", "stayed flat": "stays flat"}[_trend_word(first, last)]
    text = f"Diagonal CKA of {comparison} {word} from {first:.3f} at {first_lab} to {last:.3f} at {last_lab}"
    if low_lab not in (first_lab, last_lab):
        text += f" (lowest {low:.3f} at {low_lab})"
    return text + "."


def cka_drift_reading(
    stage: int, deepest: Mapping[str, float], shallowest: Mapping[str, float] | None = None
) -> str:
    """Which comparison drifts most in the deepest stage (Fig. 6: ACT drifts most, §3.3).

    Args:
        stage: the deepest stage.
        deepest: comparison -> mean diagonal CKA over the deepest stage's layers.
        shallowest: comparison -> mean diagonal CKA over the first stage's layers (for one comparison).
    """
    values = _finite(deepest)
    if not values:
        return f"No comparison has a finite diagonal CKA in S{stage}."
    if len(values) == 1:
        ((name, value),) = values.items()
        text = f"Mean diagonal CKA of {name} is {value:.3f} in the deepest stage (S{stage})"
        if shallowest and name in shallowest and math.isfinite(shallowest[name]):
            text += f", against {shallowest[name]:.3f} in S0"
        return text + "."
    low = min(values, key=lambda c: values[c])
    high = max(values, key=lambda c: values[c])
    if values[low] == values[high]:
        return f"Every comparison has the same mean diagonal CKA in S{stage} ({values[low]:.3f})."
    return (
        f"In the deepest stage (S{stage}) {low} has the lowest mean diagonal CKA ({values[low]:.3f}, "
        f"the most drift) and {high} the highest ({values[high]:.3f})."
    )


# --- training (Fig. 7) ----------------------------------------------------------------------


class Curve(NamedTuple):
    """Summary of one training run's ``metrics.csv``.

    Attributes:
        epochs: last epoch.
        loss_first: training loss of the first epoch.
        loss_last: training loss of the last epoch.
        best_dice: best validation Dice (NaN without validation).
        best_epoch: epoch of the best validation Dice (-1 without validation).
        last_val_epoch: last validated epoch (-1 without validation).
        n_val: validated epochs (-1: not known).
    """

    epochs: int
    loss_first: float
    loss_last: float
    best_dice: float
    best_epoch: int
    last_val_epoch: int = -1
    n_val: int = -1


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def training_reading(curves: Mapping[str, Curve]) -> str:
    """Loss drop and best validation Dice per configuration (Fig. 7: did training plateau?).

    Args:
        curves: configuration -> :class:`Curve`.
    """
    clauses = []
    for config, c in curves.items():
        if c.epochs < 2:
            dice = f", best validation Dice {c.best_dice:.3f}" if math.isfinite(c.best_dice) else ""
            clauses.append(f"under {config}, only {_plural(c.epochs, 'epoch')} ran (training loss "
                           f"{c.loss_last:.3f}{dice}): too little to judge convergence")
            continue
        word = _trend_word(c.loss_first, c.loss_last)
        text = (
            f"under {config}, training loss {word} from {c.loss_first:.3f} to {c.loss_last:.3f} "
            f"over {_plural(c.epochs, 'epoch')}"
        )
        if math.isfinite(c.best_dice):
            text += f" and validation Dice peaked at {c.best_dice:.3f} in epoch {c.best_epoch}"
            if c.best_epoch == c.last_val_epoch and (c.n_val < 0 or c.n_val >= 2):
                text += ", its last validation, so it had not yet plateaued"
        else:
            text += " with no validation Dice recorded"
        clauses.append(text)
    if not clauses:
        return "No training run has metrics."
    text = "; ".join(clauses)
    return text[0].upper() + text[1:] + "."
