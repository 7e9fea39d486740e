"""Seed §2.1 preprocessing with MONAI transforms, cached on disk.

Orientation to RAS, resampling to isotropic spacing (bilinear for the image, nearest for the
label), intensities clipped at the 99th percentile and scaled to [0, 1]. Resampling uses MONAI
``Spacing(scale_extent=True)``, so the resampled grid covers the full physical extent of the
source voxels and the native axial extent is ``L = round(n_z * s_z / target)`` voxels: a stack of
25 slices of 3.6 mm gives L = 90 at 1 mm.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from attndilute.data.cache import cache_key, default_cache_dir, load_volume, save_volume
from attndilute.data.layouts import Case
from attndilute.data.nifti import check_label, check_memory, load_nifti, read_header
from attndilute.data.volume import Volume
from attndilute.errors import AttnDiluteError

AXCODES = "RAS"
#: Upper intensity percentile (seed §2.1); the lower bound is the volume minimum.
UPPER_PERCENTILE = 99.0
#: Bump when the preprocessing output changes, to invalidate cached volumes.
PREPROCESS_VERSION = 1
_AXIS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def _spatial_transforms(keys: list[str], spacing: tuple[float, float, float], *, lazy: bool = False):
    """Orientation to RAS then resampling (bilinear image, nearest label), as MONAI dict transforms."""
    from monai.transforms import Orientationd, Spacingd

    modes = ["nearest" if k == "label" else "bilinear" for k in keys]
    return [
        Orientationd(keys=keys, axcodes=AXCODES, labels=_AXIS_LABELS, lazy=lazy),
        Spacingd(keys=keys, pixdim=spacing, mode=modes, scale_extent=True, dtype=np.float32, lazy=lazy),
    ]


def preprocessing_meta() -> dict:
    """What :func:`preprocess` does, for a checkpoint header (the spacing is stored on its own)."""
    return {"version": PREPROCESS_VERSION, "axcodes": AXCODES, "upper_percentile": UPPER_PERCENTILE}


def check_preprocessing(meta: dict, source: str | Path | None = None) -> None:
    """Raise if a checkpoint was trained on other intensities than :func:`preprocess` gives now.

    Checkpoints without a ``preprocessing`` entry (older files, imported MONAI/SMIT weights) pass:
    there is nothing to compare.

    Raises:
        AttnDiluteError: the header's preprocessing differs from this version's.
    """
    stored = meta.get("preprocessing")
    if not stored:
        return
    now = preprocessing_meta()
    diff = [f"{k} {stored.get(k)!r} (now {v!r})" for k, v in now.items() if stored.get(k) != v]
    if diff:
        raise AttnDiluteError(
            f"the model was trained on other preprocessing: {', '.join(diff)}",
            path=source,
            hint="use the attndilute version that trained it, or retrain with this one",
        )


def resampled_geometry(
    shape: tuple[int, int, int], affine: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the RAS, resampled grid, from the header alone (no voxels resampled).

    Runs the same MONAI transforms as :func:`preprocess` in lazy mode, so the geometry is the
    one preprocessing produces.

    Args:
        shape: the source spatial shape.
        affine: the source 4x4 affine.
        spacing: target spacing in mm.

    Returns:
        ``(shape, affine)`` of the resampled grid; ``shape[2]`` is the native axial extent L.
    """
    import torch
    from monai.data import MetaTensor

    placeholder = MetaTensor(torch.zeros(1).expand(1, *shape), affine=torch.as_tensor(affine))
    data = {"image": placeholder}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="align_corners=False is not compatible")
        for transform in _spatial_transforms(["image"], tuple(spacing), lazy=True):
            data = transform(data)
    out = data["image"]
    return tuple(int(s) for s in out.peek_pending_shape()), out.peek_pending_affine().numpy()  # type: ignore


def preprocess(
    case: Case,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    cache_dir: str | Path | None = None,
    cache: bool = True,
) -> Volume:
    """Load, validate and preprocess one case (seed §2.1); reuse the cached result if present.

    Args:
        case: the image and optional label.
        spacing: target isotropic (or any) spacing in mm, ``(X, Y, Z)``.
        cache_dir: folder of cached volumes; None -> ``<cache root>/preprocessed``.
        cache: read and write the cache; False always recomputes and writes nothing.

    Returns:
        A Volume on the RAS grid at ``spacing``: image ``(X, Y, Z)`` float32 in [0, 1], label
        uint8 or None, ``real`` all True, ``extent`` = L (voxels along Z), padding fraction 0.

    Raises:
        AttnDiluteError: any :func:`~attndilute.data.nifti.load_nifti` or
            :func:`~attndilute.data.nifti.check_label` problem, a resampled grid larger than the
            memory budget (checked from the header, before any voxel is read), or a constant
            image (nothing to scale to [0, 1]).
    """
    spacing = tuple(float(s) for s in spacing)  # type: ignore[assignment]
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    settings = {"v": PREPROCESS_VERSION, "spacing": spacing, "axcodes": AXCODES, "upper": UPPER_PERCENTILE}
    path = None
    if cache:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = folder / f"{cache_key(case.image, case.label, settings)}.npz"
        if path.is_file() and (hit := load_volume(path, case.name)) is not None:
            return hit
    vol = _compute(case, spacing)  # type: ignore[arg-type]
    if path is not None:
        save_volume(vol, path)
    return vol


def check_not_constant(image: np.ndarray, path: str | Path) -> None:
    """Refuse an image whose voxels all hold one value: intensity scaling would divide by zero."""
    lo, hi = image.min(), image.max()
    if lo == hi:
        raise AttnDiluteError(
            f"image is constant (value {float(lo):g}); there is nothing to scale to [0, 1]",
            path=path,
            hint="check that the file holds the scan and not an empty or placeholder volume",
        )


def _compute(case: Case, spacing: tuple[float, float, float]) -> Volume:
    import torch
    from monai.data import MetaTensor
    from monai.transforms import ScaleIntensityRangePercentilesd

    shape, affine = read_header(case.image)
    resampled, _ = resampled_geometry(shape, affine, spacing)
    spacing_text = "x".join(f"{v:g}" for v in spacing)
    check_memory(resampled, 4, case.image, what=f"image resampled to {spacing_text} mm")  # float32
    image, affine, _ = load_nifti(case.image)
    check_not_constant(image, case.image)
    data = {
        "image": MetaTensor(torch.from_numpy(image.astype(np.float32))[None], affine=torch.as_tensor(affine))
    }
    if case.label is not None:
        label, label_affine, _ = load_nifti(case.label)
        label = check_label(label, label_affine, image.shape, affine, case.label)
        data["label"] = MetaTensor(
            torch.from_numpy(label.astype(np.float32))[None], affine=torch.as_tensor(affine)
        )
    keys = list(data)
    with warnings.catch_warnings():
        # MONAI warns that scale_extent=True with align_corners=False is "not compatible"; the
        # output affine and voxels agree to 1e-5 (tests/unit/data/test_preprocessing.py checks a linear
        # world-coordinate ramp), so the warning does not apply to this use.
        warnings.filterwarnings("ignore", message="align_corners=False is not compatible")
        for transform in _spatial_transforms(keys, spacing):
            data = transform(data)
    data = ScaleIntensityRangePercentilesd(
        keys="image", lower=0.0, upper=UPPER_PERCENTILE, b_min=0.0, b_max=1.0, clip=True
    )(data)
    out_image = data["image"].as_tensor()[0].numpy().astype(np.float32)  # (X, Y, Z)
    out_label = None
    if "label" in data:
        out_label = (data["label"].as_tensor()[0].numpy() > 0.5).astype(np.uint8)  # (X, Y, Z)
    out_affine = data["image"].affine.numpy().astype(np.float64)
    shape = tuple(int(s) for s in out_image.shape)
    return Volume(
        name=case.name,
        image=out_image,
        label=out_label,
        real=np.ones(shape, dtype=bool),
        spacing=spacing,
        extent=float(shape[2]),
        padding_fraction=0.0,
        affine=out_affine,
        source_affine=affine,
        source_shape=tuple(int(s) for s in image.shape),  # type: ignore[arg-type]
        resampled_affine=out_affine,
        resampled_shape=shape,  # type: ignore[arg-type]
    )
