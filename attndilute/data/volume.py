"""The preprocessed volume and the geometry needed to map predictions back to the source grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """Where the current array sits on the resampled grid, per axis (X, Y, Z).

    Voxels ``src_start[a] : src_stop[a]`` of the resampled grid along axis ``a`` are stored at
    ``dst_start[a] : dst_start[a] + (src_stop[a] - src_start[a])`` of the current array; the rest
    of the current array is padding. An uncropped volume has the identity box.

    Args:
        src_start: first kept voxel of the resampled grid.
        src_stop: one past the last kept voxel of the resampled grid.
        dst_start: where the first kept voxel lands in the current array.
    """

    src_start: tuple[int, int, int]
    src_stop: tuple[int, int, int]
    dst_start: tuple[int, int, int]

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> Box:
        """The box of an array that is the whole resampled grid."""
        return cls((0, 0, 0), tuple(int(s) for s in shape), (0, 0, 0))  # type: ignore[arg-type]

    def src_slices(self) -> tuple[slice, slice, slice]:
        """Slices of the resampled grid that were kept."""
        return tuple(slice(a, b) for a, b in zip(self.src_start, self.src_stop, strict=True))  # type: ignore

    def dst_slices(self) -> tuple[slice, slice, slice]:
        """Slices of the current array that hold the kept voxels."""
        return tuple(
            slice(d, d + b - a) for a, b, d in zip(self.src_start, self.src_stop, self.dst_start, strict=True)
        )  # type: ignore


@dataclass(frozen=True, eq=False)
class Volume:
    """One preprocessed case (seed §2.1), possibly cropped or padded (Eq. 4).

    Args:
        name: case identifier.
        image: ``(X, Y, Z)`` float32 in [0, 1]; zero where padded.
        label: ``(X, Y, Z)`` uint8 in {0, 1}, or None.
        real: ``(X, Y, Z)`` bool, True where the voxel came from the image (DESIGN §2).
        spacing: voxel spacing (mm) of the array, ``(3,)``.
        extent: L, the native axial (Z) extent after resampling, in voxels of ``spacing``.
        padding_fraction: Eq. 4, ``max(1 - L / C, 0)`` for the crop C along Z; 0 if not cropped.
        affine: 4x4 world affine of the current array (RAS, resampled, shifted by the box).
        source_affine: 4x4 affine of the source image file.
        source_shape: spatial shape of the source image file.
        resampled_affine: 4x4 affine of the RAS, resampled grid before cropping/padding.
        resampled_shape: spatial shape of that grid.
        box: where the current array sits on the resampled grid.
        crop: the crop (X, Y, Z) applied, or None.
    """

    name: str
    image: np.ndarray
    label: np.ndarray | None
    real: np.ndarray
    spacing: tuple[float, float, float]
    extent: float
    padding_fraction: float
    affine: np.ndarray
    source_affine: np.ndarray
    source_shape: tuple[int, int, int]
    resampled_affine: np.ndarray
    resampled_shape: tuple[int, int, int]
    box: Box = field(default=None)  # type: ignore[assignment]
    crop: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.box is None:
            object.__setattr__(self, "box", Box.identity(self.image.shape))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(X, Y, Z)`` of the current array."""
        return tuple(self.image.shape)  # type: ignore[return-value]
