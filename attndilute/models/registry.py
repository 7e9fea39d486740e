"""A small timm-like registry: model families, presets, ``build`` and ``list_models``.

Families are imported on first use, so ``import attndilute.models`` does not load MONAI.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Sequence
from typing import Any

from torch import nn

from attndilute import __version__
from attndilute.errors import AttnDiluteError
from attndilute.models.model_presets import MODEL_PRESETS, Preset

# family name -> "module:Class"; the class takes the family's constructor kwargs.
_FAMILIES: dict[str, str] = {
    "smit": "attndilute.models.smit:SMIT",
    "swin_unetr": "attndilute.models.swin_unetr:SwinUNETR",
}
_PRESETS: dict[str, Preset] = dict(MODEL_PRESETS)
DEFAULT_KWARGS = {"in_channels": 1, "out_channels": 2}


def register_family(name: str, target: str) -> None:
    """Register a model family.

    Args:
        name: family name used in presets and checkpoints.
        target: ``"package.module:Class"``; the class must expose the MONAI block interface.
    """
    _FAMILIES[name] = target


def register_preset(name: str, preset: Preset) -> None:
    """Register (or replace) a preset under ``name``."""
    if preset.family not in _FAMILIES:
        raise ValueError(f"unknown family {preset.family!r}; known: {sorted(_FAMILIES)}")
    _PRESETS[name] = preset


def list_models() -> list[str]:
    """Names accepted by :func:`build`: the families and every preset, sorted."""
    return sorted(_PRESETS)


def canonical_name(name: str) -> str:
    """Model names are spelled with hyphens (``swin-unetr``); an underscore spelling of a
    registered name (``swin_tiny``) is still accepted, with a one-line note on stderr. A family
    identifier (``swin_unetr``, what checkpoints record as ``family``) maps to its preset silently."""
    if name in _PRESETS:
        return name
    hyphens = name.replace("_", "-")
    if hyphens in _PRESETS:
        if name not in _NOTED and name not in {p.family for p in _PRESETS.values()}:
            _NOTED.add(name)
            print(f"note: model name {name!r} is now spelled {hyphens!r}", file=sys.stderr)
        return hyphens
    return name


_NOTED: set[str] = set()


def get_preset(name: str) -> Preset:
    """The preset registered under ``name`` (or its underscore spelling, :func:`canonical_name`);
    a one-line error lists the known names."""
    try:
        return _PRESETS[canonical_name(name)]
    except KeyError:
        raise AttnDiluteError(
            f"unknown model {name!r}", hint=f"choose one of {', '.join(list_models())}"
        ) from None


def family_class(family: str) -> type[nn.Module]:
    """Import and return the class of ``family``."""
    try:
        module, _, cls = _FAMILIES[family].partition(":")
    except KeyError:
        raise AttnDiluteError(
            f"unknown model family {family!r}", hint=f"known: {', '.join(sorted(_FAMILIES))}"
        ) from None
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "monai":
            raise
        raise AttnDiluteError(f"the {family} model family needs MONAI",
                              hint="pip install 'attndilute[study]'") from None


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by family or preset name; ``kwargs`` override the preset.

    Args:
        name: ``"smit"``, ``"swin-unetr"`` or a preset (``"smit-paper"``, ``"swin-paper"``,
            ``"smit-tiny"``, ``"swin-tiny"``); see :func:`list_models`.
        **kwargs: constructor arguments (defaults ``in_channels=1, out_channels=2``), plus
            ``crop`` (X, Y, Z) and ``spacing`` (mm) recorded in ``model.attndilute_meta``.

    Returns:
        the model, with ``model.attndilute_meta`` = {family, preset, kwargs, crop, spacing, version}.

    Example:
        >>> model = build("smit-tiny", out_channels=3)   # doctest: +SKIP
    """
    name = canonical_name(name)
    preset = get_preset(name)
    crop = tuple(int(c) for c in kwargs.pop("crop", preset.crop))
    spacing = tuple(float(s) for s in kwargs.pop("spacing", preset.spacing))
    ctor = {**DEFAULT_KWARGS, **preset.kwargs, **kwargs}
    cls = family_class(preset.family)
    _check_kwargs(cls, ctor, name)
    try:
        model = cls(**ctor)
    except ValueError as err:  # MONAI and SMIT validate their arguments with ValueError
        raise AttnDiluteError(f"cannot build {name!r}: {err}") from None
    check_crop(model, crop)

    model.attndilute_meta = {
        "family": preset.family,
        "preset": name,
        "kwargs": ctor,
        "crop": crop,
        "spacing": spacing,
        "version": __version__,
    }
    return model


def _check_kwargs(cls: type, ctor: dict[str, Any], name: str) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        params = {**params, **inspect.signature(cls.__mro__[1].__init__).parameters}
    unknown = sorted(set(ctor) - set(params))
    if unknown:
        raise AttnDiluteError(f"{name!r} does not take {', '.join(unknown)}")


def check_crop(model: nn.Module, crop: Sequence[int]) -> None:
    """Raise :class:`AttnDiluteError` unless every crop dimension is a multiple of the model's divisor.

    Both families need ``patch_size * 2**4`` (four patch mergings after the patch embedding; MONAI
    states it as ``patch_size ** 5``, the same for patch 2), and more than one bottleneck token,
    which the decoder's instance norm requires.

    Args:
        model: a model with a ``crop_divisor`` attribute.
        crop: spatial size (X, Y, Z).
    """
    divisor = int(model.crop_divisor)
    crop = tuple(int(c) for c in crop)
    if len(crop) != 3 or any(c <= 0 or c % divisor for c in crop):
        fixed = tuple(max(divisor, -(-c // divisor) * divisor) for c in crop)
        raise AttnDiluteError(
            f"crop {crop} does not fit {type(model).__name__}: "
            f"every dimension must be divisible by {divisor}",
            hint=f"e.g. {fixed}",
        )
    if all(c == divisor for c in crop):  # the decoder's instance norm needs > 1 voxel at the bottleneck
        raise AttnDiluteError(
            f"crop {crop} leaves a single 1x1x1 token at the bottleneck of {type(model).__name__}",
            hint=f"make at least one dimension {2 * divisor} or more",
        )
