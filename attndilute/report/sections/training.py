"""Training convergence (seed Fig. 7): loss and validation Dice per configuration and the reading."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from attndilute.report import figures, summaries
from attndilute.report.sections.blocks import Figure, Section, add_problems
from attndilute.report.sections.missing import missing_per_config
from attndilute.report.wording import Curve, trend_word

if TYPE_CHECKING:
    from attndilute.report.load import Run


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
        word = trend_word(c.loss_first, c.loss_last)
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


def training_section(run: Run) -> Section:
    """Training loss and validation Dice per configuration (Fig. 7)."""
    sec = Section("training", "Training convergence", "seed Fig. 7 and §3.3")
    sec.blocks.extend(missing_per_config(run, "metrics", present=run.metrics))
    if run.metrics:
        metrics = {c: run.metrics[c] for c in run.configs if c in run.metrics}
        curves = {c: summaries.curve(m) for c, m in metrics.items()}
        sec.blocks.append(
            Figure(
                figures.training_curves(metrics, run.configs),
                training_reading(curves),
                "Validation Dice is drawn on the epochs that were validated.",
            )
        )
    add_problems(run, sec)
    return sec
