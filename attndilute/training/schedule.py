"""Learning-rate schedule (seed §2.5.1): linear warmup, then cosine annealing to 0, per step."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.1):
    """MONAI ``WarmupCosineSchedule`` over ``total_steps`` optimizer steps.

    The seed warms up for 50 of 500 epochs (``warmup_fraction=0.1``); stepping per optimizer
    step rather than per epoch gives the same shape on short runs.

    Args:
        optimizer: the optimizer whose learning rates are scaled.
        total_steps: steps of the whole schedule (epochs x steps per epoch).
        warmup_fraction: share of the steps in linear warmup from 0.

    Returns:
        a ``LambdaLR`` whose ``state_dict`` is saved in ``last.ckpt``.
    """
    from monai.optimizers import WarmupCosineSchedule

    total = max(1, int(total_steps))
    warmup = int(math.floor(warmup_fraction * total))
    return WarmupCosineSchedule(optimizer, warmup_steps=warmup, t_total=total, end_lr=0.0)
