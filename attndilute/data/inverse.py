"""Map an array on the preprocessed grid back to the source image's voxel grid."""

from __future__ import annotations

import numpy as np

from attndilute.data.volume import Volume


def to_source(array: np.ndarray, vol: Volume, *, mode: str = "nearest") -> np.ndarray:
    """Undo crop/pad, resampling and orientation: return ``array`` on the source grid.

    The array is first placed on the resampled RAS grid (voxels that were cropped away become 0,
    padding is dropped), then resampled with MONAI ``SpatialResample`` from the resampled affine
    to the source affine and shape; orientation is part of the affines, so flips and axis
    permutations are undone by the same step.

    Args:
        array: ``(X, Y, Z)`` on ``vol``'s current grid (a prediction, a label, a probability map).
        vol: the Volume the array belongs to.
        mode: ``"nearest"`` (labels; keeps the dtype) or ``"bilinear"`` (maps; float32).

    Returns:
        ``(X, Y, Z)`` array with ``vol.source_shape``, to be written with ``vol.source_affine``.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    array = np.asarray(array.detach().cpu() if isinstance(array, torch.Tensor) else array)
    if tuple(array.shape) != vol.shape:
        raise ValueError(f"array shape {tuple(array.shape)} differs from the volume shape {vol.shape}")
    full = np.zeros(vol.resampled_shape, dtype=np.float32)  # (X, Y, Z) resampled RAS grid
    full[vol.box.src_slices()] = array[vol.box.dst_slices()]
    moving = MetaTensor(torch.from_numpy(full)[None], affine=torch.as_tensor(vol.resampled_affine))
    out = SpatialResample(mode=mode, padding_mode="zeros", dtype=np.float32)(
        moving, dst_affine=torch.as_tensor(vol.source_affine), spatial_size=vol.source_shape
    )
    result = out.as_tensor()[0].numpy()  # (X, Y, Z) source grid
    if mode == "nearest" and array.dtype != np.float32:
        return (
            np.rint(result).astype(array.dtype) if array.dtype.kind in "iub" else result.astype(array.dtype)
        )
    return result.astype(np.float32, copy=False)
