"""Training presets (recipes, ``train --preset``) as data (seed §2.5, §3): Base, TA (tumour-aware),
ACT (anisotropic crop + TA). The architectures they train are the model presets of
:mod:`attndilute.models.model_presets`.

A :class:`TrainConfig` is a frozen dataclass; :data:`TRAIN_PRESETS` maps names to configs, and
:func:`resolve_config` applies command-line or keyword overrides to one. Presets are data, not
code paths: the trainer reads fields, never preset names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from attndilute.errors import AttnDiluteError
from attndilute.training.inference import BLENDS
from attndilute.training.precision import PRECISIONS


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run, besides the data and the seed.

    Args:
        model: model preset of :func:`attndilute.models.build` (``smit-tiny``, ``smit-paper``, ...).
        crop: training crop (X, Y, Z) in voxels; also the sliding-window size (seed §2.5.1).
        spacing: preprocessing spacing in mm (seed §2.1: 1 mm).
        epochs: schedule length in epochs (seed: 500 fine-tuning, 1000 scratch).
        batch_size: global batch (split over DDP ranks; seed: 2).
        lr: AdamW peak learning rate (seed: 3e-4).
        weight_decay: AdamW weight decay (seed: 1e-5).
        warmup: fraction of the schedule spent in linear warmup (used when ``warmup_epochs`` is None).
        warmup_epochs: linear warmup over this many epochs, whatever the schedule's length (seed
            §2.5.1: 50 epochs, for the 500-epoch fine-tuning and the 1000-epoch Scratch runs alike).
        grad_clip: max gradient norm (0 disables clipping).
        batch_dice: soft Dice over the whole (per-rank) batch instead of per sample and averaged;
            keeps crops without tumour from pushing every prediction to background.
        dice_background: include the background class in the soft Dice (MONAI's
            ``include_background``; nnU-Net leaves it out). The cross-entropy always sees both.
        samples_per_case: crops drawn from each training case per epoch.
        crops_per_epoch: if set, an epoch is this many crops instead (cases in a seeded order), so
            its cost does not grow with the cohort (the CPU presets use it to fit a time budget); 0 = off.
        pos, neg: ratio of crops centred on tumour vs background voxels (MONAI RandCropByPosNegLabeld).
        context: the pos/neg crop is drawn this many times larger than ``crop`` (bounded by the
            volume), then a ``crop``-sized window is taken at a random place inside it, so the
            sampled voxel (the tumour, for a positive crop) is not always at the crop centre; 1 = off;
            up to 1.5 the sampled voxel stays in the central half of the crop.
        flip_prob: probability of a flip along each axis of ``flip_axes``.
        flip_axes: the axes (0 = X, 1 = Y, 2 = Z) that may be flipped; (0,) keeps the anatomy's
            orientation and flips only left-right, as the test-time augmentation does.
        rot90_prob: probability of an in-plane (X-Y) rotation by a multiple of 90 degrees.
        rotate_deg: largest small-angle rotation about the X, Y and Z axes, in degrees (MONAI
            ``RandRotated``, angles drawn from U(-d, d); applied to the ``context`` box before the
            crop is taken from it); all 0 = off.
        rotate_prob: probability of that rotation.
        intensity_scale: range of a whole-crop multiplicative intensity factor (MONAI
            ``RandScaleIntensityd``; zero padding stays zero); (1, 1) = off.
        intensity_prob: probability of that global scaling (0 = off; the seed names no global
            intensity augmentation, so the paper presets leave it off).
        tumor_aware: apply tumour-aware intensity augmentation (Eq. 1, seed §2.3).
        ta_scale, ta_shift, ta_prob: Eq. 1 ranges of alpha and beta, and the probability.
        ema_decay: keep an exponential moving average of the weights (``torch.optim.swa_utils``,
            updated after every step) and validate and save that instead of the raw weights; 0 = off.
        val_every: validate every N epochs (and at the last epoch).
        val_fraction: share of training cases held out for validation when no ``--folds``.
        overlap: sliding-window overlap (seed: 0.5).
        blend: how validation combines overlapping windows (``gaussian`` or ``constant``; see
            :func:`attndilute.training.inference.sliding_window_probs`).
        tta: horizontal-flip test-time augmentation in validation (prediction always uses it unless
            told otherwise; the CPU presets validate without it to halve the cost).
        sw_batch_size: windows per forward in sliding-window inference.
        precision: ``auto`` (bf16 autocast on CUDA, float32 on the CPU), ``bf16`` or ``fp32``;
            see :mod:`attndilute.training.precision`.
        workers: data-loader worker processes (None: 0 on <= 2 CPU cores, else min(4, cores - 1)).
        pretrained: the configuration fine-tunes pretrained weights (``--init`` or ``--scratch`` needed).
        scratch_factor: schedule multiplier for ``--scratch`` when ``--epochs`` is not given (seed: 2).
        description: one line for the docs.
    """

    model: str = "smit-tiny"
    crop: tuple[int, int, int] = (64, 64, 64)
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0)
    epochs: int = 30
    batch_size: int = 2
    lr: float = 3e-4
    weight_decay: float = 1e-5
    warmup: float = 0.1
    warmup_epochs: int | None = None
    grad_clip: float = 1.0
    batch_dice: bool = False
    dice_background: bool = True
    samples_per_case: int = 1
    crops_per_epoch: int | None = None
    pos: float = 1.0
    neg: float = 1.0
    context: float = 1.0
    flip_prob: float = 0.5
    flip_axes: tuple[int, ...] = (0, 1, 2)
    rot90_prob: float = 0.5
    rotate_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotate_prob: float = 0.0
    intensity_scale: tuple[float, float] = (1.0, 1.0)
    intensity_prob: float = 0.0
    tumor_aware: bool = False
    ta_scale: tuple[float, float] = (0.5, 1.5)
    ta_shift: tuple[float, float] = (-0.2, 0.2)
    ta_prob: float = 0.3
    ema_decay: float = 0.0
    val_every: int = 5
    val_fraction: float = 0.2
    overlap: float = 0.5
    blend: str = "gaussian"
    tta: bool = True
    sw_batch_size: int = 4
    precision: str = "auto"
    workers: int | None = None
    pretrained: bool = False
    scratch_factor: float = 2.0
    description: str = ""

    def warmup_steps(self, steps_per_epoch: int) -> int:
        """Warmup length in optimizer steps: ``warmup_epochs`` epochs, else ``warmup`` of the schedule."""
        if self.warmup_epochs is not None:
            return int(self.warmup_epochs) * int(steps_per_epoch)
        return math.floor(self.warmup * max(1, self.epochs * int(steps_per_epoch)))  # as the schedule does

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of all fields (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# CPU presets (docs/training.md, "Measured"): a few hundred steps on 2 cores, so a higher peak lr,
# Dice on the tumour only, and left-right flips only (the anatomy keeps its RAS orientation).
_CPU = dict(
    lr=3e-3, crops_per_epoch=16, pos=2.0, neg=1.0, context=1.5, tta=False, batch_dice=True,
    dice_background=False, flip_axes=(0,), rot90_prob=0.0,
)
_SEED = dict(epochs=500, batch_size=2, lr=3e-4, val_every=10, samples_per_case=1, pretrained=True,
             warmup_epochs=50)
_TA = dict(tumor_aware=True)
TRAIN_PRESETS: MappingProxyType = MappingProxyType(
    {
        "tiny": TrainConfig(
            model="smit-tiny", crop=(64, 64, 64), spacing=(2.0, 2.0, 2.0), **_CPU, epochs=30, val_every=10,
            description="SMIT tiny, 2 mm, 64^3 crop, no TA (CPU phantom; Base analogue)",
        ),
        "tiny-act": TrainConfig(
            model="smit-tiny", crop=(64, 64, 32), spacing=(2.0, 2.0, 2.0), **_CPU, epochs=60, val_every=20,
            tumor_aware=True, description="SMIT tiny, 2 mm, 64x64x32 crop + TA (CPU phantom; ACT analogue)",
        ),
        "smit-base": TrainConfig(
            model="smit-paper", crop=(128, 128, 128), spacing=(1.0, 1.0, 1.0), **_SEED,
            description="SMIT-Base: 128^3 crop (seed §2.5)",
        ),
        "smit-ta": TrainConfig(
            model="smit-paper", crop=(128, 128, 128), spacing=(1.0, 1.0, 1.0), **_SEED, **_TA,
            description="SMIT-TA: 128^3 crop + tumour-aware augmentation",
        ),
        "smit-act": TrainConfig(
            model="smit-paper", crop=(128, 128, 64), spacing=(1.0, 1.0, 1.0), **_SEED, **_TA,
            description="SMIT-ACT: 128x128x64 crop + tumour-aware augmentation",
        ),
        "swin-base": TrainConfig(
            model="swin-paper", crop=(96, 96, 96), spacing=(1.0, 1.0, 1.0), **_SEED,
            description="Swin UNETR-Base: 96^3 crop",
        ),
        "swin-ta": TrainConfig(
            model="swin-paper", crop=(96, 96, 96), spacing=(1.0, 1.0, 1.0), **_SEED, **_TA,
            description="Swin UNETR-TA: 96^3 crop + tumour-aware augmentation",
        ),
        "swin-act": TrainConfig(
            model="swin-paper", crop=(128, 128, 64), spacing=(1.0, 1.0, 1.0), **_SEED, **_TA,
            description="Swin UNETR-ACT as the paper's text (§2.5): 128x128x64 crop + tumour-aware "
                        "augmentation; stage 3 is 4 windows, 67% of its tokens layout padding",
        ),
        "swin-act-96": TrainConfig(
            model="swin-paper", crop=(96, 96, 64), spacing=(1.0, 1.0, 1.0), **_SEED, **_TA,
            description="Swin UNETR-ACT at 96x96x64 (the crop behind §3.2.1's stage-3 sentence): stage 3 "
                        "is a 6x6x4 grid in one window, without layout padding",
        ),
    }
)  # fmt: skip


def list_presets() -> list[str]:
    """Names of the training presets."""
    return list(TRAIN_PRESETS)


def resolve_config(preset: str | TrainConfig, **overrides: Any) -> TrainConfig:
    """The preset named ``preset`` with ``overrides`` applied (None values are ignored).

    Raises:
        AttnDiluteError: unknown preset or field, or a value of the wrong kind.
    """
    if isinstance(preset, TrainConfig):
        base = preset
    else:
        try:
            base = TRAIN_PRESETS[preset]
        except KeyError:
            raise AttnDiluteError(
                f"unknown training preset {preset!r}", hint=f"choose one of {', '.join(TRAIN_PRESETS)}"
            ) from None
    changes = {}
    for key, value in overrides.items():
        if value is None:
            continue
        check_setting(key)
        changes[key] = _coerce(key, value, getattr(base, key))
    if "warmup" in changes and "warmup_epochs" not in overrides:
        changes["warmup_epochs"] = None  # an explicit fraction replaces the preset's warmup epochs
    config = dataclasses.replace(base, **changes)
    _validate(config)
    return config


def parse_overrides(args: list[str]) -> dict[str, object]:
    """Command-line settings -> keyword overrides of :func:`resolve_config`.

    ``--name value [value ...]`` and ``--name=value`` give {name_with_underscores: value or list
    of values}; a bare ``--flag`` gives True. Values stay strings: :func:`resolve_config` coerces
    them to the field's type.

    Raises:
        AttnDiluteError: an unknown setting, or a value before any ``--name``.
    """
    out: dict[str, object] = {}
    key = None
    for arg in args:
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")  # --lr 1e-4 or --lr=1e-4
            key = name.replace("-", "_")
            check_setting(key)  # here too: train()'s own keywords (progress, ...) are not settings
            out[key] = value if eq else True
            if eq:
                key = None
        elif key is None:
            raise AttnDiluteError(f"unexpected argument {arg!r}", hint="settings are given as --name value")
        else:
            value = out[key]
            out[key] = arg if value is True else ([*value, arg] if isinstance(value, list) else [value, arg])
    return out


def check_setting(name: str) -> None:
    """Raise AttnDiluteError unless ``name`` is a :class:`TrainConfig` field."""
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    if name not in fields:
        raise AttnDiluteError(
            f"unknown training setting {name!r}", hint=f"settings: {', '.join(sorted(fields))}"
        )


def _coerce(key: str, value: Any, default: Any) -> Any:
    try:
        if key == "crops_per_epoch":
            return int(value) or None  # 0 switches it off
        if key == "warmup_epochs":
            return None if str(value).lower() in ("none", "") else int(value)
        if key == "flip_axes":  # any number of axes, also none
            seq = (value,) if isinstance(value, int) else value
            seq = tuple(seq) if not isinstance(seq, str) else tuple(seq.replace(",", " ").split())
            return tuple(sorted({int(v) for v in seq}))
        if isinstance(default, tuple):
            seq = tuple(value) if not isinstance(value, str) else tuple(value.replace(",", " ").split())
            kind = type(default[0])
            if len(seq) == 1 and len(default) == 3:
                seq = seq * 3
            if len(seq) != len(default):
                raise ValueError(f"expected {len(default)} values")
            return tuple(kind(v) for v in seq)
        if isinstance(default, bool):
            if isinstance(value, str):
                word = value.lower()
                if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError("expected true or false")
                return word in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int) and not isinstance(default, bool):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if default is None and key == "workers":
            return int(value)
        return value
    except (TypeError, ValueError) as err:
        raise AttnDiluteError(f"bad value {value!r} for {key}: {err}") from None


def _validate(c: TrainConfig) -> None:
    checks = [
        (c.epochs >= 1, "epochs must be >= 1"),
        (c.batch_size >= 1, "batch_size must be >= 1"),
        (c.lr > 0, "lr must be > 0"),
        (0 <= c.warmup < 1, "warmup must be a fraction in [0, 1)"),
        (c.warmup_epochs is None or c.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
        (c.samples_per_case >= 1, "samples_per_case must be >= 1"),
        (c.crops_per_epoch is None or c.crops_per_epoch >= 1, "crops_per_epoch must be >= 1"),
        (c.pos >= 0 and c.neg >= 0 and c.pos + c.neg > 0, "pos and neg must be >= 0, not both 0"),
        (
            all(0 <= p <= 1 for p in (c.ta_prob, c.flip_prob, c.rot90_prob, c.intensity_prob, c.rotate_prob)),
            "probabilities in [0, 1]",
        ),
        (0 < c.intensity_scale[0] <= c.intensity_scale[1], "intensity_scale must be (low, high), 0 < low"),
        (c.ta_scale[0] <= c.ta_scale[1] and c.ta_shift[0] <= c.ta_shift[1], "ranges must be (low, high)"),
        (0 <= c.ema_decay < 1, "ema_decay must be in [0, 1)"),
        (all(0 <= d <= 180 for d in c.rotate_deg), "rotate_deg must be in [0, 180] degrees"),
        (c.context >= 1, "context must be >= 1 (a multiple of the crop)"),
        (all(a in (0, 1, 2) for a in c.flip_axes), "flip_axes are among 0, 1, 2"),
        (c.val_every >= 1, "val_every must be >= 1"),
        (0 < c.val_fraction < 1, "val_fraction must be in (0, 1)"),
        (0 <= c.overlap < 1, "overlap must be in [0, 1)"),
        (c.blend in BLENDS, f"blend must be one of {', '.join(BLENDS)}"),
        (c.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
        (min(c.spacing) > 0, "spacing must be positive"),
        (min(c.crop) > 0, "crop must be positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise AttnDiluteError(f"invalid training settings: {message}")
