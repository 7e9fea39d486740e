"""The models that ``attndilute cka`` compares: a checkpoint, or seed-fixed random weights.

Accepted forms of ``A`` and ``B``:

- a checkpoint path (``.safetensors``, or a MONAI/SMIT ``.pt``/``.pth``; ``attndilute.models.load``);
- ``random:<preset>``: the preset (e.g. ``random:swin-tiny``) with weights drawn under ``--seed``;
- ``init:A`` (only as B): A's architecture with weights drawn under ``--seed``, i.e. A's random
  initialisation; ``init:<path>`` does the same for any checkpoint's architecture.

The hash that keys an activation store is the SHA-256 of the weights (names, dtypes, shapes and
bytes), for checkpoints and random initialisations alike: the same weights reuse the same store,
however the file was written (safetensors orders its metadata differently from run to run, so a
hash of the file's bytes would not be stable).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attndilute.data import check_preprocessing
from attndilute.errors import AttnDiluteError
from attndilute.models import build, check_crop, load


@dataclass(frozen=True)
class ModelSource:
    """A loaded model with what identifies it.

    Args:
        spec: the user's string (or a description for an in-memory model).
        model: the network, in eval mode.
        model_hash: SHA-256 keying its activation stores.
        name: short name for file names and figure labels.
    """

    spec: str
    model: nn.Module
    model_hash: str
    name: str

    @property
    def meta(self) -> dict:
        return dict(getattr(self.model, "attndilute_meta", {}) or {})


def weights_hash(model: nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes and bytes), in key order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def from_module(model: nn.Module, name: str = "model") -> ModelSource:
    """Wrap an in-memory model (keyed by its weights)."""
    return ModelSource(spec=name, model=model.eval(), model_hash=weights_hash(model), name=name)


def _seeded_build(name: str, seed: int, **kwargs) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(name, **kwargs)


def _load_file(spec: str) -> ModelSource:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise AttnDiluteError("model checkpoint not found", path=path,
                              hint="give a checkpoint file, random:<preset> or init:A")
    model = load(path)
    check_preprocessing(model.attndilute_meta, path)  # the data will be preprocessed as today
    return ModelSource(spec=spec, model=model.eval(), model_hash=weights_hash(model), name=path.stem)


def _random_like(model: nn.Module, seed: int, spec: str, name: str) -> ModelSource:
    meta = getattr(model, "attndilute_meta", None)
    if not meta or "family" not in meta:
        raise AttnDiluteError(f"{spec}: the model records no architecture to re-initialise")
    built = _seeded_build(meta["family"], seed, **dict(meta.get("kwargs", {})),
                          crop=tuple(meta["crop"]), spacing=tuple(meta.get("spacing", (1.0, 1.0, 1.0))))
    return ModelSource(spec=spec, model=built.eval(), model_hash=weights_hash(built), name=name)


def resolve_model(spec: str, *, seed: int = 0, first: ModelSource | None = None) -> ModelSource:
    """Load or build the model named by ``spec`` (see the module docstring).

    Args:
        spec: checkpoint path, ``random:<preset>``, ``init:A`` or ``init:<path>``.
        seed: seed of random weights.
        first: model A, for ``init:A``.
    """
    if spec.startswith("random:"):
        preset = spec.removeprefix("random:")
        model = _seeded_build(preset, seed)
        return ModelSource(spec=spec, model=model.eval(), model_hash=weights_hash(model),
                           name=f"random-{preset}-s{seed}")
    if spec.startswith("init:"):
        target = spec.removeprefix("init:")
        if target == "A":
            if first is None:
                raise AttnDiluteError("init:A is only valid as the second model (B)")
            return _random_like(first.model, seed, spec, f"init-{first.name}-s{seed}")
        base = _load_file(target)
        return _random_like(base.model, seed, spec, f"init-{base.name}-s{seed}")
    return _load_file(spec)


@dataclass(frozen=True)
class InputSettings:
    """How scans are prepared for a model: ``crop`` (X, Y, Z), ``spacing`` in mm, ``in_channels``,
    and one note per value that was not given and not recorded by the model (``defaulted``)."""

    crop: tuple[int, int, int]
    spacing: tuple[float, float, float]
    in_channels: int
    defaulted: tuple[str, ...]


def input_settings(source: ModelSource, crop=None, *, crop_owner: str = "") -> InputSettings:
    """The crop (given, else the model's training crop), the spacing and the input channels the
    model records, checked against the model (:func:`attndilute.models.check_crop`); shared by
    ``adi`` and ``cka``.

    Args:
        source: the model.
        crop: ``--crop``; None -> the model's.
        crop_owner: who the crop belongs to in the notes (``"model A's"``); default the
            checkpoint's (or the family default's, for imported weights).

    Raises:
        AttnDiluteError: no crop given or recorded, or a crop the model cannot take.
    """
    meta = source.meta
    imported = "imported_from" in meta  # foreign weights: crop and spacing are the family's defaults
    defaulted = []
    if crop is None:
        crop = meta.get("crop") or ()
        if crop:
            owner = crop_owner or ("the family default" if imported else "the checkpoint's")
            defaulted.append(f"--crop not given: using {owner} {'x'.join(map(str, crop))}")
    crop = tuple(int(c) for c in crop)
    if len(crop) != 3:
        raise AttnDiluteError(f"{source.spec}: the checkpoint records no crop", hint="pass --crop X Y Z")
    if hasattr(source.model, "crop_divisor"):
        check_crop(source.model, crop)
    spacing = tuple(float(s) for s in meta.get("spacing", (1.0, 1.0, 1.0)))
    if imported or "spacing" not in meta:
        size = "x".join(f"{v:g}" for v in spacing)
        defaulted.append(f"the weights record no training spacing: resampling to {size} mm "
                         "(results compare best at the spacing the model was trained at)")
    return InputSettings(crop, spacing, int(meta.get("kwargs", {}).get("in_channels", 1)), tuple(defaulted))
