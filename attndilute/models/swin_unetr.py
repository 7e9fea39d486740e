"""MONAI's Swin UNETR with the project's forward signature (seed §2.2).

Nothing is re-implemented: :class:`SwinUNETR` subclasses ``monai.networks.nets.SwinUNETR``, so
its state-dict keys, windows, shifts and flash-attention path are MONAI's own (v1 and ``use_v2``,
any feature size, window and patch size). It adds ``forward(x, real=None)``, the
``mask_padding`` option and a crop check that raises :class:`AttnDiluteError`.
"""

from __future__ import annotations

import torch
from monai.networks.nets.swin_unetr import SwinUNETR as _MonaiSwinUNETR

from attndilute.models._masking import check_real, padding_context
from attndilute.models.registry import check_crop


class SwinUNETR(_MonaiSwinUNETR):
    """MONAI ``SwinUNETR`` taking ``(x, real)``; ``mask_padding`` masks padding keys (seed §4).

    Args:
        in_channels: image channels.
        out_channels: output classes (background, tumour).
        mask_padding: if True and ``real`` is given, every window attention ignores padding keys
            (through :func:`attndilute.instrument.masking.key_padding_mask`).
        **kwargs: any other ``monai.networks.nets.SwinUNETR`` argument (``feature_size``,
            ``window_size``, ``patch_size``, ``depths``, ``num_heads``, ``use_v2``,
            ``use_flash_attention``, ...).
    """

    family = "swin_unetr"
    backbone_prefix = "swinViT."

    def __init__(self, in_channels: int = 1, out_channels: int = 2, *, mask_padding: bool = False, **kwargs):
        super().__init__(in_channels=in_channels, out_channels=out_channels, **kwargs)
        self.mask_padding = bool(mask_padding)

    @property
    def crop_divisor(self) -> int:
        """Every crop dimension must be a multiple of this (MONAI's rule: ``patch_size ** 5``)."""
        return int(self.patch_size) ** 5

    def forward(self, x_in: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """Segment a batch.

        Args:
            x_in: images (B, C, X, Y, Z).
            real: bool (B, X, Y, Z), True where the voxel came from the image, or None.

        Returns:
            logits (B, out_channels, X, Y, Z).
        """
        check_crop(self, tuple(x_in.shape[2:]))
        check_real(x_in, real)
        with padding_context(self, real):
            return super().forward(x_in)
