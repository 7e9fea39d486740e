"""Learning-rate schedule (seed §2.5.1): linear warmup, then cosine annealing to 0, per step."""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.1,
    *,
    warmup_steps: int | None = None,
):
    """MONAI ``WarmupCosineSchedule`` over ``total_steps`` optimizer steps.

    The seed warms up for 50 epochs (§2.5.1), also for the Scratch models that train 1000
    (``warmup_steps`` = 50 x steps per epoch; :meth:`TrainConfig.warmup_steps`); stepping per
    optimizer step rather than per epoch gives the same shape on short runs.

    The warmup starts from ``warmup_multiplier = 1 / (W + 1)`` for ``W`` warmup steps, so step
    ``k < W`` runs at ``(k + 1) / (W + 1)`` of the peak: the first step already learns (MONAI's
    default multiplier 0 spends it at a learning rate of 0) and step ``W`` reaches the peak.

    Args:
        optimizer: the optimizer whose learning rates are scaled.
        total_steps: steps of the whole schedule (epochs x steps per epoch).
        warmup_fraction: share of the steps in linear warmup.
        warmup_steps: the warmup in steps; overrides ``warmup_fraction``.

    Returns:
        a ``LambdaLR`` whose ``state_dict`` is saved in ``last.ckpt``.
    """
    from monai.optimizers import WarmupCosineSchedule

    total, warmup, start = _length(total_steps, warmup_fraction, warmup_steps)
    return WarmupCosineSchedule(
        optimizer, warmup_steps=warmup, t_total=total, end_lr=0.0, warmup_multiplier=start
    )


def set_length(
    scheduler, total_steps: int, warmup_fraction: float, *, warmup_steps: int | None = None
) -> None:
    """Give a ``WarmupCosineSchedule`` a new length (a resumed run with a longer ``--epochs``).

    Args:
        scheduler: the schedule from :func:`warmup_cosine`.
        total_steps: steps of the whole schedule.
        warmup_fraction: share of the steps in linear warmup.
        warmup_steps: the warmup in steps; overrides ``warmup_fraction``.
    """
    scheduler.t_total, scheduler.warmup_steps, scheduler.warmup_multiplier = _length(
        total_steps, warmup_fraction, warmup_steps
    )


def _length(
    total_steps: int, warmup_fraction: float, warmup_steps: int | None = None
) -> tuple[int, int, float]:
    """(total steps, warmup steps W, warmup start 1 / (W + 1))."""
    total = max(1, int(total_steps))
    steps = math.floor(warmup_fraction * total) if warmup_steps is None else int(warmup_steps)
    warmup = min(steps, total)
    return total, warmup, 1.0 / (warmup + 1)
