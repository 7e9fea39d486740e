"""Validated NIfTI reading: every volume the project touches goes through :func:`load_nifti`.

A file a user hands us can be unreadable, truncated, 2D, 4D, carry NaN/Inf voxels, an
implausible voxel spacing, or claim more voxels than fit the memory budget; each of these
becomes one :class:`~attndilute.errors.AttnDiluteError` line that names the file. Label files
are checked further by :func:`check_label` (binary values, same grid as the image); predicted
masks by :func:`check_binary`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attndilute.errors import AttnDiluteError

#: Affines of an image and its label may differ by this much (mm) and still be one grid.
AFFINE_ATOL = 1e-3
#: Plausible voxel spacing (mm) along each axis, inclusive; anything else is a broken header.
SPACING_RANGE_MM = (0.01, 100.0)
#: Environment variable holding the memory budget of one volume, in GiB.
MAX_GIB_ENV = "ATTNDILUTE_MAX_GIB"
#: Default memory budget of one volume (source voxels as read, or the resampled grid), in GiB.
DEFAULT_MAX_GIB = 4.0
_GIB = float(1 << 30)


def _open(path: Path):
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise AttnDiluteError("file not found", path=path)
    # nibabel "fixes" some headers on load (a zero pixdim becomes 1) and logs a line on stderr;
    # silence it: _check_pixdim below refuses those headers with our own one-line message.
    nib_logger = logging.getLogger("nibabel.global")
    level = nib_logger.level
    nib_logger.setLevel(logging.CRITICAL + 10)
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for non-NIfTI or damaged headers
        raise AttnDiluteError(
            f"not a readable NIfTI file ({type(err).__name__}: {err})".replace("\n", " "),
            path=path,
            hint="re-export it as .nii or .nii.gz",
        ) from None
    finally:
        nib_logger.setLevel(level)
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
    _check_pixdim(img, path)
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise AttnDiluteError(
            "the header's affine is singular or not finite",
            path=path,
            hint="fix the voxel spacing and orientation in the header (pixdim, qform/sform)",
        )
    check_spacing(spacing_of(affine), path)
    return affine


def _check_pixdim(img, path: Path) -> None:
    """Refuse a zero, negative or non-finite pixdim where the affine is built from it.

    Without an sform (``sform_code`` 0) nibabel builds the affine from ``pixdim``, after
    silently replacing a zero by 1 mm and a negative value by its absolute value; the header as
    stored is read again here so that such a file is refused instead of read at a made-up
    spacing. With an sform, ``pixdim`` does not enter the affine and is not checked.
    """
    header = img.header
    if int(header["sform_code"]) != 0:
        return
    try:
        with img.file_map["image"].get_prepare_fileobj(mode="rb") as handle:
            raw = type(header).from_fileobj(handle, check=False)
    except Exception:  # unreadable again: the voxel read reports it
        return
    pixdim = np.asarray(raw["pixdim"][1:4], dtype=np.float64)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim <= 0):
        shown = ", ".join(f"{v:g}" for v in pixdim)
        raise AttnDiluteError(
            f"header voxel spacing (pixdim) is ({shown}) mm; each must be a finite number > 0",
            path=path,
            hint="write the real voxel size into the header (pixdim or an sform) and save it again",
        )


def check_spacing(spacing: Sequence[float], path: str | Path | None = None) -> None:
    """Raise AttnDiluteError unless every spacing is finite and within :data:`SPACING_RANGE_MM`.

    Args:
        spacing: voxel size in mm along each array axis.
        path: the file, for the message.
    """
    lo, hi = SPACING_RANGE_MM
    values = [float(v) for v in spacing]
    slack = 1e-5  # headers store float32: 0.01 reads back as 0.0099999998
    if all(math.isfinite(v) and lo * (1 - slack) <= v <= hi * (1 + slack) for v in values):
        return
    shown = ", ".join(f"{v:.4g}" for v in values)
    raise AttnDiluteError(
        f"implausible voxel spacing ({shown}) mm; each axis must lie in {lo:g}-{hi:g} mm",
        path=path,
        hint="fix the voxel size in the header (pixdim, qform/sform) and save it again",
    )


def memory_budget_bytes() -> float:
    """Largest size (bytes) of one volume in memory: ``$ATTNDILUTE_MAX_GIB`` GiB, default 4 GiB."""
    text = os.environ.get(MAX_GIB_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_GIB * _GIB
    try:
        gib = float(text)
    except ValueError:
        gib = math.nan
    if not math.isfinite(gib) or gib <= 0:
        raise AttnDiluteError(
            f"{MAX_GIB_ENV}={text!r} is not a positive number of GiB",
            hint=f"unset it (default {DEFAULT_MAX_GIB:g} GiB) or set e.g. {MAX_GIB_ENV}=16",
        )
    return gib * _GIB


def check_memory(
    shape: Sequence[int], itemsize: int, path: str | Path | None = None, *, what: str = "image"
) -> None:
    """Refuse, before allocating it, an array of ``shape`` larger than :func:`memory_budget_bytes`.

    Args:
        shape: the array's shape.
        itemsize: bytes per voxel.
        path: the file, for the message.
        what: what the array is, for the message (e.g. ``"image"``, ``"image resampled to 1 mm"``).
    """
    size = float(np.prod([float(s) for s in shape])) * int(itemsize)
    budget = memory_budget_bytes()
    if size <= budget:
        return
    raise AttnDiluteError(
        f"{what} of shape {tuple(int(s) for s in shape)} would take {size / _GIB:.3g} GiB in memory, "
        f"over the budget of {budget / _GIB:g} GiB",
        path=path,
        hint=f"check the header's shape and spacing, or raise the budget with {MAX_GIB_ENV}",
    )


def _read_itemsize(img) -> int:
    """Bytes per voxel of the array nibabel returns: the stored type, float64 when scaled."""
    itemsize = int(img.get_data_dtype().itemsize)
    proxy = img.dataobj
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    if (slope, inter) != (1.0, 0.0):
        itemsize = max(itemsize, 8)
    return itemsize


def load_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Read and validate one 3D NIfTI volume.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(array, affine, spacing)``: the voxels ``(X, Y, Z)`` (float32 for scaled or float data,
        the stored integer type otherwise), the 4x4 voxel-to-world affine (float64) and the
        voxel spacing in mm.

    Raises:
        AttnDiluteError: unreadable or truncated file, 2D or 4D image, a zero, non-finite or
            implausible voxel spacing (:data:`SPACING_RANGE_MM`), more voxels than the memory
            budget (:func:`memory_budget_bytes`, checked before reading), NaN/Inf voxels.
    """
    path = Path(path)
    img = _open(path)
    shape = _spatial_shape(img.shape, path)
    affine = _affine(img, path)
    check_memory(shape, _read_itemsize(img), path)
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
    return check_binary(label, path)


def check_binary(mask: np.ndarray, path: str | Path, *, what: str = "label") -> np.ndarray:
    """Raise AttnDiluteError unless every voxel is 0 or 1; return the mask as uint8.

    Args:
        mask: label or predicted mask voxels.
        path: the file, for the message.
        what: ``"label"`` or ``"prediction"``, for the message.
    """
    values = np.unique(mask)
    extra = values[(values != 0) & (values != 1)]
    if extra.size:
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (", ..." if values.size > 8 else "")
        hint = "merge the tumour classes into 1" if what == "label" else "write the mask with 0 and 1 only"
        raise AttnDiluteError(
            f"{what} is not binary: values {{{shown}}}; expected 0 and 1", path=path, hint=hint
        )
    return mask.astype(np.uint8, copy=False)


def check_same_grid(label_affine: np.ndarray, image_affine: np.ndarray, path: str | Path) -> None:
    """Raise AttnDiluteError unless the two affines agree within :data:`AFFINE_ATOL` mm."""
    if not np.allclose(label_affine, image_affine, atol=AFFINE_ATOL, rtol=0):
        diff = float(np.abs(np.asarray(label_affine) - np.asarray(image_affine)).max())
        raise AttnDiluteError(
            f"label affine differs from the image affine (max difference {diff:.3g} mm)",
            path=path,
            hint="the label must be saved on the image's voxel grid",
        )
