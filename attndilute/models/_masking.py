"""The padding-key mask shared by both families (``mask_padding=True``, seed §4 future work).

The mask itself lives in :func:`attndilute.instrument.masking.key_padding_mask` (one
implementation for every model that exposes the MONAI block interface); this module only decides
whether a forward call runs inside it.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from attndilute.instrument.masking import key_padding_mask


def check_real(x: torch.Tensor, real: torch.Tensor | None) -> None:
    """Check that ``real`` (B, X, Y, Z) matches the image batch ``x`` (B, C, X, Y, Z).

    Args:
        x: image batch (B, C, X, Y, Z).
        real: bool mask (B, X, Y, Z), True where the voxel came from the image; or None.
    """
    if real is None:
        return
    expected = (x.shape[0], *x.shape[2:])
    if tuple(real.shape) != expected:
        raise ValueError(
            f"real mask has shape {tuple(real.shape)}, expected {expected} for x {tuple(x.shape)}"
        )


def padding_context(model: nn.Module, real: torch.Tensor | None) -> contextlib.AbstractContextManager:
    """The context a forward runs in: the key padding mask when the model asks for it, else nothing.

    Args:
        model: a model with a ``mask_padding`` attribute.
        real: bool mask (B, X, Y, Z) or None; without it no mask can be applied.
    """
    if not getattr(model, "mask_padding", False) or real is None:
        return contextlib.nullcontext()

    return key_padding_mask(model, real)
