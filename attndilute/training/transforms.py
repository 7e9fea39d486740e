"""Tumour-aware intensity augmentation (seed §2.3, Eq. 1) as a MONAI dictionary transform."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform


class TumorAwareIntensityd(RandomizableTransform, MapTransform):
    """Eq. 1: ``I'(x) = a * I(x) + b`` inside the tumour label, ``I(x)`` elsewhere.

    ``a ~ U(scale)`` and ``b ~ U(shift)`` are drawn once per call (one pair per sample) from
    ``self.R``, so :meth:`set_random_state` makes the transform reproducible. With probability
    ``1 - prob`` the sample is returned unchanged. Voxels outside the label and padding voxels
    (``real`` False, DESIGN §2) are never touched; values are not clipped (Eq. 1 has no clip).

    The seed's text uses ``a ~ U(0.5, 1.5)``, ``b ~ U(-0.2, 0.2)``, probability 0.3 (the
    defaults), and so does the authors' public repository (``The-Veeraraghavan-Lab/RectalTxSeg``,
    ``utils/data_utils.py``, read 2026-12-02), whose loader passes those ranges; its transform's
    own unused default is ``a ~ U(0.7, 1.3)`` (``scale=(0.7, 1.3)`` reproduces that).
    Apply it after the spatial augmentations, during training only (seed §2.3).

    Args:
        keys: image keys to perturb, each ``(C, X, Y, Z)``.
        label_key: key of the tumour mask ``(1, X, Y, Z)``; > 0 is tumour.
        real_key: key of the real mask ``(1, X, Y, Z)`` (optional): padding is left untouched.
        scale: range of the multiplicative factor ``a``.
        shift: range of the additive offset ``b``.
        prob: probability of applying the perturbation.
        allow_missing_keys: skip absent image keys.

    Example:
        >>> t = TumorAwareIntensityd("image", label_key="label", prob=1.0)  # doctest: +SKIP
        >>> t.set_random_state(seed=0)
        >>> out = t({"image": img, "label": lab})
    """

    backend = [*RandomizableTransform.backend]

    def __init__(
        self,
        keys: str | Sequence[str],
        label_key: str = "label",
        real_key: str | None = "real",
        scale: tuple[float, float] = (0.5, 1.5),
        shift: tuple[float, float] = (-0.2, 0.2),
        prob: float = 0.3,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if scale[0] > scale[1] or shift[0] > shift[1]:
            raise ValueError(f"ranges must be (low, high), got scale={scale}, shift={shift}")
        self.label_key = label_key
        self.real_key = real_key
        self.scale = (float(scale[0]), float(scale[1]))
        self.shift = (float(shift[0]), float(shift[1]))
        self.a = 1.0
        self.b = 0.0

    def randomize(self, data: object = None) -> None:
        """Decide whether to apply, then draw ``a`` and ``b`` (always drawn, so the stream is fixed)."""
        super().randomize(None)
        self.a = float(self.R.uniform(*self.scale))
        self.b = float(self.R.uniform(*self.shift))

    def __call__(self, data: Mapping[Hashable, torch.Tensor], randomize: bool = True) -> dict:
        out = dict(data)
        if randomize:
            self.randomize()
        if not self._do_transform:
            return out
        inside = (
            torch.as_tensor(
                np.asarray(out[self.label_key])
                if not torch.is_tensor(out[self.label_key])
                else out[self.label_key]
            )
            > 0
        )  # (1, X, Y, Z)
        if self.real_key is not None and self.real_key in out:
            real = out[self.real_key]
            inside = inside & (torch.as_tensor(real) > 0)
        for key in self.key_iterator(out):
            image = out[key]
            is_numpy = isinstance(image, np.ndarray)
            tensor = torch.as_tensor(image)
            mask = inside.expand_as(tensor)  # (C, X, Y, Z)
            perturbed = torch.where(mask, tensor * self.a + self.b, tensor)  # Eq. 1
            out[key] = perturbed.numpy() if is_numpy else perturbed
        return out
