"""What the numbers of a run cannot carry: the warning banner at the top of the report.

The banner appears when the run is a fast demo (``D/demo.json`` written by ``attndilute demo``),
when a model is barely trained (from its ``metrics.csv``, else its checkpoint header), or when a
group is too small for a verdict (:data:`attndilute.report.wording.MIN_N`). Each rule is a pure
function of plain numbers, so the tests pin its sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from attndilute.report.summaries import smallest_group, training_records
from attndilute.report.wording import MIN_N

if TYPE_CHECKING:
    from attndilute.report.load import Run

#: A model trained for fewer epochs than this is called barely trained.
MIN_EPOCHS = 10
#: A best validation Dice below this is called barely trained.
WEAK_DICE = 0.5
#: A best validation Dice below this is called untrained: it is the seed's detection threshold
#: (§2.8), so such a model misses the average tumour.
UNTRAINED_DICE = 0.1


def training_caveat(records: Mapping[str, tuple[int, float]]) -> str | None:
    """One sentence naming every barely trained or untrained model, or None when all are trained.

    Args:
        records: configuration -> (epochs trained, best validation Dice; NaN when never validated).
    """
    weak = {}
    for config, (epochs, dice) in records.items():
        finite = math.isfinite(dice)
        if epochs >= MIN_EPOCHS and finite and dice >= WEAK_DICE:
            continue
        state = "untrained" if finite and dice < UNTRAINED_DICE else "barely trained"
        shown = f"best validation Dice {dice:.3f}" if finite else "never validated"
        weak[config] = f"{config} is {state} ({epochs} epoch{'' if epochs == 1 else 's'}, {shown})"
    if not weak:
        return None
    parts = list(weak.values())
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return (
        f"Models not trained enough to interpret: {listed}. A model counts as barely trained below "
        f"{MIN_EPOCHS} epochs or a best validation Dice of {WEAK_DICE}, and as untrained below a Dice of "
        f"{UNTRAINED_DICE} (the detection threshold); its ADI, CKA and segmentation numbers show that the "
        "pipeline runs, not how a trained transformer behaves."
    )


def demo_caveat(record: Mapping | None) -> str | None:
    """The demo's own warning from ``D/demo.json`` (``{"variant": "fast", "n_cases": 12, ...}``)."""
    if not record:
        return None
    epochs = record.get("epochs") or {}
    trained = ", ".join(f"{c} {e if e is not None else 'preset'}" for c, e in epochs.items())
    sizes = f"{record.get('n_cases', '?')} synthetic phantom cases"
    sizes += f", epochs: {trained}" if trained else ""
    if record.get("variant") == "fast":
        return (f"Fast demo (attndilute demo --fast; {sizes}): a check that every step runs, not a result. "
                "Run attndilute demo without --fast, or train on real data, before reading anything into it.")
    return f"Demo on synthetic phantom data (attndilute demo; {sizes}), not patient data."


def sample_caveat(smallest: int | None) -> str | None:
    """A note when the smallest group (cases per configuration) is below :data:`MIN_N`."""
    if smallest is None or smallest >= MIN_N:
        return None
    return (
        f"Small sample: {smallest} case(s) in the smallest group. Below {MIN_N} per group the bold "
        "readings give the numbers with their intervals and tests but name no winner."
    )


def banner_lines(run: Run) -> list[str]:
    """Every caveat that applies to ``run``, most important first (empty: no banner)."""
    found = (
        demo_caveat(run.demo),
        training_caveat(training_records(run)),
        sample_caveat(smallest_group(run)),
    )
    return [line for line in found if line]
