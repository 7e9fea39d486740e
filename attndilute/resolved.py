"""What a command will run with, said before it works: model, family, crop, spacing, device.

``train``, ``predict`` and ``demo`` print :func:`describe` of these before their first step, with
one ``warning:`` line per value that was not given and fell back to a default, so a user sees
(and can stop) a run on the wrong preset, crop or device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from attndilute.devices import AUTO, resolve_device
from attndilute.models.checkpoint import read_checkpoint_meta
from attndilute.models.registry import get_preset
from attndilute.training.train_presets import resolve_config


@dataclass(frozen=True)
class Resolved:
    """The settings one model of a run will use.

    Args:
        model: the model preset (``smit-tiny``) or checkpoint.
        family: the model family (``smit``, ``swin_unetr``).
        crop: (X, Y, Z) voxels.
        spacing: (X, Y, Z) mm.
        device: the torch device, as text.
        defaulted: one sentence per value that fell back to a default.
    """

    model: str
    family: str
    crop: tuple[int, ...]
    spacing: tuple[float, ...]
    device: str
    defaulted: tuple[str, ...] = ()


def _device(device: str | None) -> tuple[str, list[str]]:
    resolved = str(resolve_device(device))
    if device is None or device.strip().lower() in AUTO:
        return resolved, [f"--device auto (the default): using {resolved} (CUDA when available, else CPU)"]
    return resolved, []


def train_settings(
    preset: str | None,
    crop: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    device: str | None = None,
) -> Resolved:
    """The settings of ``attndilute train`` (preset default: ``tiny``, :data:`DEFAULT_PRESET`)."""
    defaulted = []
    if preset is None:
        defaulted.append(f"--preset not given: using {DEFAULT_PRESET!r}")
    config = resolve_config(preset or DEFAULT_PRESET, crop=crop, spacing=spacing)
    if crop is None:
        defaulted.append(f"--crop not given: using the preset's {_x(config.crop)}")
    if spacing is None:
        defaulted.append(f"--spacing not given: using the preset's {_x(config.spacing)} mm")
    name, notes = _device(device)
    return Resolved(config.model, get_preset(config.model).family, tuple(config.crop),
                    tuple(config.spacing), name, tuple(defaulted + notes))  # fmt: skip


def checkpoint_settings(model: str | Path, device: str | None = None) -> Resolved:
    """The settings of ``attndilute predict`` from a checkpoint's header (no tensor is read).

    A file without an attndilute header (``.pt``, ``.pth``) shows ``?`` until it is loaded.
    """
    meta = {}
    if str(model).endswith(".safetensors") and Path(model).is_file():

        meta = read_checkpoint_meta(Path(model))
    name, notes = _device(device)
    crop = tuple(int(c) for c in meta.get("crop", ()))
    spacing = tuple(float(s) for s in meta.get("spacing", ()))
    return Resolved(str(meta.get("preset", Path(model).name)), str(meta.get("family", "?")), crop, spacing,
                    name, tuple(notes))  # fmt: skip


def _x(values: Sequence) -> str:
    return "x".join(f"{v:g}" for v in values) if values else "?"


def describe(command: str, settings: Resolved, label: str = "") -> list[str]:
    """``command: model M (family F), crop XxYxZ, spacing AxBxC mm, device D`` and the warnings."""
    who = f"{command} {label}".strip()
    head = (f"{who}: model {settings.model} ({settings.family}), crop {_x(settings.crop)}, "
            f"spacing {_x(settings.spacing)} mm, device {settings.device}")
    return [head, *(f"warning: {note}" for note in settings.defaulted)]


#: ``attndilute train`` without ``--preset``.
DEFAULT_PRESET = "tiny"
