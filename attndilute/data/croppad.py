"""Crop or zero-pad a preprocessed volume to a model's input size, recording the real mask (Eq. 4).

Along each axis independently: when the volume's size is >= the crop it is cropped, centred on
the label's centroid if the case has a (non-empty) label, else on the volume centre, and shifted
to stay inside the volume; when it is smaller it is zero-padded, either symmetrically
(``pad_mode="symmetric"``, the extra voxel of an odd shortfall at the end) or all at the end
(``"end"``). ``real`` is False exactly where padding was added; it is carried, never inferred.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attndilute.data.volume import Box, Volume
from attndilute.masks import padding_fraction  # Eq. 4 lives in the core

PAD_MODES = ("symmetric", "end")


def crop_or_pad(vol: Volume, crop: tuple[int, int, int], *, pad_mode: str = "symmetric") -> Volume:
    """Crop where the volume is large enough, zero-pad where it is not; carry ``real``.

    Args:
        vol: a preprocessed (possibly already cropped) volume.
        crop: target shape ``(X, Y, Z)``.
        pad_mode: ``"symmetric"`` or ``"end"``.

    Returns:
        A Volume of shape ``crop`` with ``padding_fraction`` = Eq. 4 for ``crop[2]``, ``extent``
        unchanged, ``affine`` shifted to the new grid, and ``box`` mapping it to the resampled
        grid (see :func:`attndilute.data.to_source`).
    """
    crop = tuple(int(c) for c in crop)  # type: ignore[assignment]
    if len(crop) != 3 or min(crop) < 1:
        raise ValueError(f"crop must be three positive sizes (X, Y, Z), got {crop}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    shape = vol.shape
    centre = _centre(vol)
    keep_start, keep_stop, put_at = [], [], []
    for axis in range(3):
        n, c = shape[axis], crop[axis]
        if n >= c:  # crop: a window of c voxels around the centre, inside the volume
            start = int(np.clip(np.floor(centre[axis] - c / 2 + 0.5), 0, n - c))
            keep_start.append(start)
            keep_stop.append(start + c)
            put_at.append(0)
        else:  # pad: keep everything, place it symmetrically or at the start
            keep_start.append(0)
            keep_stop.append(n)
            put_at.append((c - n) // 2 if pad_mode == "symmetric" else 0)
    src = tuple(slice(a, b) for a, b in zip(keep_start, keep_stop, strict=True))
    dst = tuple(slice(d, d + b - a) for a, b, d in zip(keep_start, keep_stop, put_at, strict=True))

    def place(array: np.ndarray) -> np.ndarray:
        out = np.zeros(crop, dtype=array.dtype)
        out[dst] = array[src]
        return out

    shift = np.eye(4)
    shift[:3, 3] = np.asarray(keep_start) - np.asarray(put_at)  # new index q <-> old index q + shift
    return dataclasses.replace(
        vol,
        image=place(vol.image),
        label=None if vol.label is None else place(vol.label),
        real=place(vol.real),
        padding_fraction=padding_fraction(vol.extent, crop[2]),  # Eq. 4
        affine=vol.affine @ shift,
        box=_compose(vol.box, keep_start, keep_stop, put_at),
        crop=crop,
    )


def _centre(vol: Volume) -> np.ndarray:
    """Label centroid (voxel coordinates) if the label has voxels, else the array centre."""
    if vol.label is not None and vol.label.any():
        return np.argwhere(vol.label).mean(axis=0)
    return (np.asarray(vol.shape) - 1) / 2.0


def _compose(old: Box, keep_start: list[int], keep_stop: list[int], put_at: list[int]) -> Box:
    """Box of the new array on the resampled grid, given the old array's box and the new crop."""
    src_start, src_stop, dst_start = [], [], []
    for axis in range(3):
        lo = max(keep_start[axis], old.dst_start[axis])  # kept old-array range that holds real data
        old_len = old.src_stop[axis] - old.src_start[axis]
        hi = min(keep_stop[axis], old.dst_start[axis] + old_len)
        hi = max(hi, lo)
        src_start.append(old.src_start[axis] + lo - old.dst_start[axis])
        src_stop.append(old.src_start[axis] + hi - old.dst_start[axis])
        dst_start.append(put_at[axis] + lo - keep_start[axis])
    return Box(tuple(src_start), tuple(src_stop), tuple(dst_start))  # type: ignore[arg-type]
