"""Sliding-window inference with horizontal-flip TTA (seed §2.5.1) on one padded volume."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def sliding_window_probs(
    model: nn.Module,
    image: torch.Tensor,
    real: torch.Tensor,
    crop: Sequence[int],
    *,
    overlap: float = 0.5,
    tta: bool = True,
    sw_batch_size: int = 4,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> torch.Tensor:
    """Softmax probabilities over a whole volume, window by window (MONAI ``sliding_window_inference``).

    The real mask travels as a second input channel so that every window gets its own slice of
    it (the model's ``real`` argument: used when the model masks padding keys). Horizontal-flip
    TTA averages the probabilities of the volume and of its flip along X (axis 2 of the batch;
    RAS left-right), flipped back.

    Args:
        model: a segmentation model ``model(x, real=None) -> (B, K, X, Y, Z)`` logits.
        image: ``(1, 1, X, Y, Z)`` float32, every dimension >= the crop.
        real: ``(1, X, Y, Z)`` bool.
        crop: window size (X, Y, Z), the training crop.
        overlap: window overlap (seed: 0.5).
        tta: add the horizontal-flip pass.
        sw_batch_size: windows per forward.
        device: where the model runs (default: the model's parameters' device).
        precision: ``auto``, ``bf16`` or ``fp32`` (:mod:`attndilute.training.precision`).

    Returns:
        ``(1, K, X, Y, Z)`` float32 probabilities on the CPU.
    """
    from monai.inferers import sliding_window_inference

    from attndilute.training.precision import autocast

    device = torch.device(device) if device is not None else next(model.parameters()).device
    stacked = torch.cat([image.float(), real[:, None].float()], dim=1).to(device)  # (1, 2, X, Y, Z)

    def predictor(window: torch.Tensor) -> torch.Tensor:  # window (n, 2, *crop)
        with autocast(precision, device):
            logits = model(window[:, :1], real=window[:, 1] > 0.5)
        return torch.softmax(logits.float(), dim=1)

    passes = [False, True] if tta else [False]
    total = None
    with torch.no_grad():
        for flip in passes:
            x = torch.flip(stacked, dims=(2,)) if flip else stacked
            probs = sliding_window_inference(
                x, roi_size=tuple(int(c) for c in crop), sw_batch_size=sw_batch_size,
                predictor=predictor, overlap=overlap, mode="constant",
            )  # fmt: skip
            probs = torch.as_tensor(probs).as_subclass(torch.Tensor).float()
            probs = torch.flip(probs, dims=(2,)) if flip else probs
            total = probs if total is None else total + probs
    return (total / len(passes)).cpu()
