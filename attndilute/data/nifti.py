"""Validated NIfTI reading: every volume the project touches goes through :func:`load_nifti`.

A file a user hands us can be unreadable, truncated, 2D, 4D, or carry NaN/Inf voxels; each of
these becomes one :class:`~attndilute.errors.AttnDiluteError` line that names the file. Label
files are checked further by :func:`check_label` (binary values, same grid as the image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attndilute.errors import AttnDiluteError

#: Affines of an image and its label may differ by this much (mm) and still be one grid.
AFFINE_ATOL = 1e-3


def _open(path: Path):
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise AttnDiluteError("file not found", path=path)
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for non-NIfTI or damaged headers
        raise AttnDiluteError(
            f"not a readable NIfTI file ({type(err).__name__}: {err})".replace("\n", " "),
            path=path,
            hint="re-export it as .nii or .nii.gz",
        ) from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise AttnDiluteError(f"not a NIfTI image ({type(img).__name__})", path=path)
    return img


def _spatial_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """Accept (X, Y, Z) or (X, Y, Z, 1); refuse 2D and true 4D volumes."""
    dims = tuple(int(s) for s in shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims = dims[:-1]
    if len(dims) < 3 or min(dims) < 2:
        raise AttnDiluteError(
            f"image is 2D (shape {tuple(shape)}); a 3D volume with at least 2 voxels per axis is needed",
            path=path,
        )
    if len(dims) > 3:
        raise AttnDiluteError(
            f"image is {len(dims)}D (shape {tuple(shape)}); one 3D volume per file is needed",
            path=path,
            hint="split multi-channel or time series into separate files",
        )
    return dims  # type: ignore[return-value]


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (mm) along each array axis: the norms of the affine's columns."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))  # type: ignore


def read_header(path: str | Path) -> tuple[tuple[int, int, int], np.ndarray]:
    """Spatial shape and 4x4 affine from the header only (no voxel data read).

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(shape, affine)``; raises AttnDiluteError for unreadable, 2D or 4D files.
    """
    path = Path(path)
    img = _open(path)
    return _spatial_shape(img.shape, path), _affine(img, path)


def _affine(img, path: Path) -> np.ndarray:
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise AttnDiluteError("the header's affine is singular or not finite", path=path)
    return affine


def load_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Read and validate one 3D NIfTI volume.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(array, affine, spacing)``: the voxels ``(X, Y, Z)`` (float32 for scaled or float data,
        the stored integer type otherwise), the 4x4 voxel-to-world affine (float64) and the
        voxel spacing in mm.

    Raises:
        AttnDiluteError: unreadable or truncated file, 2D or 4D image, NaN/Inf voxels.
    """
    path = Path(path)
    img = _open(path)
    shape = _spatial_shape(img.shape, path)
    affine = _affine(img, path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # truncated gzip: EOFError, zlib.error, OSError, ValueError
        raise AttnDiluteError(
            f"cannot read the voxel data, the file is truncated or damaged ({type(err).__name__})",
            path=path,
            hint="copy or export it again",
        ) from None
    data = data.reshape(shape)
    if data.dtype.kind == "f":
        data = data.astype(np.float32, copy=False)
        finite = np.isfinite(data)
        if not finite.all():
            n_nan = int(np.isnan(data).sum())
            n_inf = int(data.size - finite.sum()) - n_nan
            raise AttnDiluteError(
                f"image has {n_nan} NaN and {n_inf} Inf voxels", path=path, hint="replace them before use"
            )
    elif data.dtype.kind not in "iub":
        raise AttnDiluteError(f"unsupported voxel type {data.dtype}", path=path)
    return data, affine, spacing_of(affine)


def check_label(
    label: np.ndarray,
    label_affine: np.ndarray,
    image_shape: tuple[int, ...],
    image_affine: np.ndarray,
    path: str | Path,
) -> np.ndarray:
    """Check that a label lies on its image's grid and is binary; return it as uint8.

    Args:
        label: label voxels ``(X, Y, Z)``.
        label_affine: the label's 4x4 affine.
        image_shape: the image's spatial shape.
        image_affine: the image's 4x4 affine.
        path: the label file, for messages.

    Returns:
        The label as ``uint8`` with values in {0, 1}.
    """
    if tuple(label.shape) != tuple(image_shape):
        raise AttnDiluteError(
            f"label shape {tuple(label.shape)} differs from image shape {tuple(image_shape)}", path=path
        )
    check_same_grid(label_affine, image_affine, path)
    values = np.unique(label)
    extra = values[(values != 0) & (values != 1)]
    if extra.size:
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (", ..." if values.size > 8 else "")
        raise AttnDiluteError(
            f"label is not binary: values {{{shown}}}; expected 0 and 1",
            path=path,
            hint="merge the tumour classes into 1",
        )
    return label.astype(np.uint8, copy=False)


def check_same_grid(label_affine: np.ndarray, image_affine: np.ndarray, path: str | Path) -> None:
    """Raise AttnDiluteError unless the two affines agree within :data:`AFFINE_ATOL` mm."""
    if not np.allclose(label_affine, image_affine, atol=AFFINE_ATOL, rtol=0):
        diff = float(np.abs(np.asarray(label_affine) - np.asarray(image_affine)).max())
        raise AttnDiluteError(
            f"label affine differs from the image affine (max difference {diff:.3g} mm)",
            path=path,
            hint="the label must be saved on the image's voxel grid",
        )
