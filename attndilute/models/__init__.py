"""Models: a timm-like registry of SMIT and MONAI Swin UNETR, and their checkpoints (DESIGN §5).

    model = attndilute.models.build("smit-paper")          # or "swin-paper", "smit-tiny", ...
    attndilute.models.save(model, "best.safetensors", crop=(128, 128, 64))
    model = attndilute.models.load("best.safetensors")     # also MONAI/NVIDIA and SMIT .pt/.pth

Importing this package does not import MONAI; a family is imported when first built.
"""

from __future__ import annotations

from attndilute.models.checkpoint import load, load_weights, read_checkpoint, save
from attndilute.models.model_presets import MODEL_PRESETS, Preset
from attndilute.models.registry import (
    build,
    check_crop,
    family_class,
    list_models,
    register_family,
    register_preset,
)

__all__ = [
    "MODEL_PRESETS",
    "Preset",
    "build",
    "check_crop",
    "family_class",
    "list_models",
    "load",
    "load_weights",
    "read_checkpoint",
    "register_family",
    "register_preset",
    "save",
]
