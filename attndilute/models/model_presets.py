"""Model presets (architectures, ``--model random:<preset>``) as data: a family, its constructor
arguments, the training crop and spacing. Training recipes are :mod:`attndilute.training.train_presets`.

A preset is looked up by name in :data:`MODEL_PRESETS`; :func:`attndilute.models.build` merges the
caller's keyword arguments over it. The family names themselves (``"smit"``, ``"swin-unetr"``)
are presets too, with the family defaults and the paper's crop (seed §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Preset:
    """One registered model configuration.

    Args:
        family: the model family (``"smit"`` or ``"swin_unetr"``).
        kwargs: constructor arguments applied before the caller's own.
        crop: training crop (X, Y, Z) stored in the model's metadata.
        spacing: preprocessing spacing in mm (seed §2.1: isotropic 1 mm).
        description: one line for ``list_models`` and the docs.
    """

    family: str
    kwargs: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    crop: tuple[int, int, int] = (96, 96, 96)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    description: str = ""


def _p(family: str, crop: tuple[int, int, int], description: str, **kwargs: Any) -> Preset:
    return Preset(family, MappingProxyType(kwargs), crop, (1.0, 1.0, 1.0), description)


MODEL_PRESETS: MappingProxyType = MappingProxyType(
    {
        "smit": _p("smit", (128, 128, 128), "SMIT family defaults (seed §2.2)"),
        "swin-unetr": _p("swin_unetr", (96, 96, 96), "MONAI SwinUNETR family defaults"),
        "smit-paper": _p(
            "smit",
            (128, 128, 128),
            "SMIT as in the seed: patch 2, window 4, embed 48, 128^3 crop",
            patch_size=2,
            window_size=4,
            embed_dim=48,
            depths=(2, 2, 8, 2),
            num_heads=(4, 4, 8, 16),
        ),
        "swin-paper": _p(
            "swin_unetr",
            (96, 96, 96),
            "Swin UNETR as in the seed: patch 2, window 7, feature 48, 96^3 crop",
            patch_size=2,
            window_size=7,
            feature_size=48,
        ),
        "smit-tiny": _p(
            "smit",
            (64, 64, 64),
            "small SMIT for CPU tests and demos (embed 12)",
            embed_dim=12,
            depths=(2, 2, 2, 2),
            num_heads=(2, 2, 4, 8),
        ),
        "swin-tiny": _p(
            "swin_unetr",
            (64, 64, 64),
            "small Swin UNETR for CPU tests and demos (feature 12)",
            feature_size=12,
            depths=(2, 2, 2, 2),
        ),
    }
)
