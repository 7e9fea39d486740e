"""One optimisation step of the lean trainer (seed §2.5.1), shared by the loop and the benchmarks.

Dice + CE on float32 logits, AdamW, gradient clipping, a scheduler step per optimiser step.
Tensors are 5-D and kept in ``channels_last_3d`` memory order: oneDNN's 3D convolution
backward is several times faster in that layout on CPU (4x for one 12-channel convolution, a
whole 64^3 step 1.44x), with the same values up to float32 summation order
(docs/performance.md, tests/unit/training/test_step.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from attndilute.training.precision import autocast

CHANNELS_LAST = torch.channels_last_3d


def to_device(model: nn.Module, device: torch.device | str, memory_format=CHANNELS_LAST) -> nn.Module:
    """Move ``model`` to ``device`` with its 5-D weights in ``memory_format`` order (in place)."""
    return model.to(device, memory_format=memory_format)


def make_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    device: torch.device,
    precision: str = "auto",
    grad_clip: float = 1.0,
    scheduler=None,
    memory_format=CHANNELS_LAST,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function ``step(image, label, real) -> loss`` (detached, float32) doing one update.

    Args:
        net: the model (or its DDP wrapper), ``net(x, real=...) -> (b, K, X, Y, Z)`` logits.
        optimizer: its optimiser; ``scheduler`` (optional) steps after it.
        loss_fn: ``loss_fn(logits, label)``; logits are cast to float32 first.
        device: where the batch goes.
        precision: ``auto``, ``bf16`` or ``fp32`` (:mod:`attndilute.training.precision`).
        grad_clip: max global gradient norm; 0 disables clipping.
        memory_format: layout of the image batch (``torch.contiguous_format`` for comparisons).

    The returned function takes ``image (b, 1, X, Y, Z)`` float, ``label (b, 1, X, Y, Z)`` int and
    ``real (b, X, Y, Z)`` bool.
    """
    params = [p for p in net.parameters() if p.requires_grad]

    def step(image: torch.Tensor, label: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        image = image.to(device, non_blocking=True, memory_format=memory_format)  # (b, 1, *crop)
        label = label.to(device, non_blocking=True)  # (b, 1, *crop)
        real = real.to(device, non_blocking=True)  # (b, *crop)
        with autocast(precision, device):
            logits = net(image, real=real)  # (b, K, *crop)
        loss = loss_fn(logits.float(), label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss.detach()

    return step
