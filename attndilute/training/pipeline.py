"""Training data: preprocessed volumes cached in memory, pos/neg crops, augmentation, loaders.

Every volume is preprocessed once (seed §2.1, on-disk cache of :func:`attndilute.data.preprocess`)
and zero-padded to at least the crop with :func:`attndilute.data.crop_or_pad`, which records
the real mask (DESIGN §2); the mask travels with the image through every transform.

Randomness: sample ``i`` of epoch ``e`` draws all its augmentation from a generator seeded with
``(seed, e, i)``, so the data do not depend on worker processes, DDP ranks or on having resumed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from attndilute.data import Case, Volume, crop_or_pad, preprocess
from attndilute.training.train_presets import TrainConfig


def load_volumes(cases: Sequence[Case], config: TrainConfig, *, progress=None) -> list[Volume]:
    """Preprocess (cached) and pad every case to at least the crop; ``real`` marks the padding.

    Returns:
        Volumes with shape ``max(shape, crop)`` per axis; cropping happens later, per sample.
    """
    items = progress(cases) if progress is not None else cases
    return [pad_to_crop(preprocess(case, spacing=config.spacing), config.crop) for case in items]


def pad_to_crop(vol: Volume, crop: Sequence[int]) -> Volume:
    """Zero-pad (symmetrically) the axes shorter than ``crop``; keep the others whole."""
    target = tuple(max(int(n), int(c)) for n, c in zip(vol.shape, crop, strict=True))
    return vol if target == vol.shape else crop_or_pad(vol, target)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for sample ``index`` of ``epoch`` (independent of history and workers)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def train_transforms(config: TrainConfig):
    """MONAI pipeline: a pos/neg box ``context`` x the crop, a small-angle rotation of it (if on), a
    random crop inside it, flips, in-plane quarter turns (square crops), a global intensity scale
    (if on), then Eq. 1 (if on).

    Keys ``image`` (1, X, Y, Z) float32, ``label`` and ``real`` (1, X, Y, Z) uint8 (0/1).
    """
    from monai.transforms import Compose

    return Compose([*_spatial_steps(config), *_intensity_steps(config)], lazy=False)


def _spatial_steps(config: TrainConfig) -> list:
    """Context crop around foreground or background, rotation, crop, flips, quarter turns."""
    from monai.transforms import (
        RandCropByPosNegLabeld,
        RandFlipd,
        RandRotate90d,
        RandRotated,
        RandSpatialCropd,
    )

    keys = ["image", "label", "real"]
    rx, ry, rz = (float(np.deg2rad(d)) for d in config.rotate_deg)  # rotated voxels outside: real = 0
    outer = tuple(int(round(c * config.context)) for c in config.crop)
    steps = [
        RandCropByPosNegLabeld(
            keys=keys, label_key="label", spatial_size=outer, pos=config.pos, neg=config.neg, num_samples=1,
            fg_indices_key="fg", bg_indices_key="bg",
            allow_smaller=True,  # the context crop is bounded by the volume (never smaller than crop)
        )  # fmt: skip
    ]
    if config.rotate_prob > 0 and any(config.rotate_deg):
        steps.append(RandRotated(
            keys=keys, range_x=rx, range_y=ry, range_z=rz, prob=config.rotate_prob, keep_size=True,
            mode=("bilinear", "nearest", "nearest"), padding_mode="zeros",
        ))  # fmt: skip
    if outer != tuple(config.crop):
        steps.append(RandSpatialCropd(keys=keys, roi_size=config.crop, random_size=False))
    steps.extend(RandFlipd(keys=keys, prob=config.flip_prob, spatial_axis=axis) for axis in config.flip_axes)
    if config.crop[0] == config.crop[1]:  # a quarter turn of a non-square crop would change its shape
        steps.append(RandRotate90d(keys=keys, prob=config.rot90_prob, max_k=3, spatial_axes=(0, 1)))
    return steps


def _intensity_steps(config: TrainConfig) -> list:
    """A global intensity scale (if on), then tumour-aware intensity augmentation (Eq. 1, if on)."""
    steps = []
    if config.intensity_prob > 0 and config.intensity_scale != (1.0, 1.0):
        from monai.transforms import RandScaleIntensityd

        low, high = config.intensity_scale  # MONAI scales by (1 + factor)
        steps.append(
            RandScaleIntensityd(keys="image", factors=(low - 1.0, high - 1.0), prob=config.intensity_prob)
        )
    if config.tumor_aware:  # after the spatial augmentations (seed §2.3)
        # lazy: transforms subclasses MONAI's at module load; this module stays importable without it
        from attndilute.training.transforms import TumorAwareIntensityd

        steps.append(
            TumorAwareIntensityd(
                "image", label_key="label", real_key="real", scale=config.ta_scale,
                shift=config.ta_shift, prob=config.ta_prob,
            )
        )  # fmt: skip
    return steps


class CropDataset(Dataset):
    """Random crops from volumes held in memory: ``samples_per_case`` per case per epoch, or a fixed
    ``crops_per_epoch`` (cases taken in a seeded per-epoch order, so an epoch costs the same on
    any cohort size).

    Args:
        volumes: padded volumes (see :func:`load_volumes`), all with labels.
        config: the training configuration.
        seed: run seed; with :meth:`set_epoch` it fixes every crop and augmentation.

    Items: dict with ``image`` (1, *crop) float32, ``label`` (1, *crop) int64 in {0, 1},
    ``real`` (*crop) bool.
    """

    def __init__(self, volumes: Sequence[Volume], config: TrainConfig, seed: int = 0):
        from monai.transforms import FgBgToIndices

        self.config = config
        self.seed = int(seed)
        self.epoch = 0
        self.transform = train_transforms(config)
        finder = FgBgToIndices(image_threshold=0.0)
        self.items = []
        for vol in volumes:
            image = torch.from_numpy(np.ascontiguousarray(vol.image))[None]  # (1, X, Y, Z)
            label = torch.from_numpy((vol.label > 0).astype(np.uint8))[None]  # uint8: flips cost 1/4
            real = torch.from_numpy(vol.real.astype(np.uint8))[None]
            fg, bg = finder(label, image=real)  # negatives are drawn from real voxels only
            self.items.append({"image": image, "label": label, "real": real, "fg": fg, "bg": bg})

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops ``__getitem__`` draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.config.crops_per_epoch is not None:
            return int(self.config.crops_per_epoch)
        return len(self.items) * self.config.samples_per_case

    def case_index(self, index: int) -> int:
        """The case crop ``index`` of the current epoch comes from (a seeded per-epoch permutation)."""
        n = len(self.items)
        order = np.random.default_rng([self.seed, self.epoch, n]).permutation(n)
        return int(order[index % n])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[self.case_index(index)]
        self.transform.set_random_state(seed=sample_seed(self.seed, self.epoch, index))
        out = self.transform(dict(item))
        out = out[0] if isinstance(out, list) else out
        image = torch.as_tensor(out["image"]).float().contiguous()
        label = torch.as_tensor(out["label"]).long()  # (1, *crop) in {0, 1}
        real = torch.as_tensor(out["real"])[0].bool()  # (*crop)
        image = image * real  # a rotation interpolates the image across the padding border: re-zero it
        return {"image": image.as_subclass(torch.Tensor), "label": label.as_subclass(torch.Tensor),
                "real": real.as_subclass(torch.Tensor)}  # fmt: skip


def default_workers(config: TrainConfig) -> int:
    """Loader workers: the config's, else 0 on <= 2 cores (they slow the model), else cores - 1 (<= 4)."""
    if config.workers is not None:
        return max(0, int(config.workers))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(4, cores - 1)


def make_loader(dataset: CropDataset, batch_size: int, *, rank: int = 0, world: int = 1, seed: int = 0):
    """A loader over ``dataset`` sharded by DDP rank; call ``loader.sampler.set_epoch(e)`` each epoch.

    ``batch_size`` is per rank. The order comes from ``DistributedSampler(seed=seed)``, which also
    serves the single-process case (``world=1``), so one and two processes see the same global
    batches.
    """
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False
    )
    workers = default_workers(dataset.config)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,  # workers are re-forked each epoch, so they see set_epoch
        prefetch_factor=4 if workers else None,
        drop_last=False,
    )
