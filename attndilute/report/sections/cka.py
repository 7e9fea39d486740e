"""Feature similarity (seed Figs. 6, A.2, §3.3): diagonal CKA and drift of every comparison, each
heatmap, and their readings. Fig. 8 needs a trained Scratch model (docs/cka.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from attndilute.report import figures, summaries
from attndilute.report.sections.blocks import (
    Figure,
    Section,
    add_problems,
    checkpoint_path,
)
from attndilute.report.sections.missing import missing
from attndilute.report.wording import finite, trend_word
from attndilute.store.cka_figures import cka_range, model_names

if TYPE_CHECKING:
    from attndilute.report.load import Run


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
    word = {"rose": "rises", "fell": "falls", "stayed flat": "stays flat"}[trend_word(first, last)]
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
    values = finite(deepest)
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


def cka_section(run: Run) -> Section:
    """Diagonal CKA and drift of every comparison (Fig. 6 idea) and each heatmap (Fig. A.2).

    A comparison with ``init:A`` is a model against a random initialisation of its architecture:
    drift from initialisation. Seed Fig. 8 compares two *trained* models (CT-initialised and
    Scratch); the captions say so, and docs/cka.md shows how to produce it.
    """
    sec = Section("cka", "Feature similarity (CKA)", "seed Figs. 6, A.2 and §3.3; Fig. 8: docs/cka.md")
    if not run.cka:
        a, b = (run.configs + ["A", "B"])[:2] if len(run.configs) != 1 else (run.configs[0], "init:A")
        b_model = b if b.startswith("init:") else checkpoint_path(run, b)
        name = f"{a}_vs_{b.replace('init:A', 'init')}"
        sec.blocks.append(
            missing(run, "cka", config=a, name=name, model_b=b_model)
        )
        add_problems(run, sec)
        return sec
    diagonals = {name: summaries.cka_diagonal(ds) for name, ds in run.cka.items()}
    stage = max((int(d["stage"].max()) for d in diagonals.values() if len(d)), default=0)
    deepest = {n: summaries.stage_mean_cka(d, stage) for n, d in diagonals.items()}
    first = {n: summaries.stage_mean_cka(d, 0) for n, d in diagonals.items()}
    sec.blocks.append(
        Figure(
            figures.cka_diagonals(diagonals),
            cka_drift_reading(stage, deepest, first),
            "Minibatch linear CKA (Eq. 9, unbiased HSIC Eq. 10) of matched layers; drift = 1 − CKA.",
        )
    )
    for name, ds in run.cka.items():
        d = diagonals[name]
        a, b = model_names(ds)
        low, high = cka_range(ds["cka"].values)
        sec.blocks.append(
            Figure(
                figures.cka_heatmap(ds, name, a, b),
                cka_diagonal_reading(name, list(d["label"]), list(d["cka"])),
                f"A = {a}, B = {b}, {ds.attrs.get('n_scans', '?')} scans. Colour scale fitted to this "
                f"comparison: {low:.3f} (dark) to {high:.3f} (light)." + _init_note(ds),
            )
        )
    add_problems(run, sec)
    return sec


def _init_note(ds) -> str:
    """What a comparison against ``init:`` weights shows (and that it is not seed Fig. 8)."""
    if not str(ds.attrs.get("model_b", "")).startswith("init:"):
        return ""
    return (" B is a random initialisation of A's architecture: this is A's drift from initialisation "
            "(the idea of seed Fig. 6), not Fig. 8, which compares a trained CT-initialised model with a "
            "trained Scratch model.")
