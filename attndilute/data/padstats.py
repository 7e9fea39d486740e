"""Padding statistics of a cohort under a crop: Eq. 4 per case and the seed §3.2.1 summary.

The axial extent L is the Z size of the RAS grid resampled to ``spacing``, read from the header
through the same MONAI transforms that :func:`attndilute.data.preprocess` runs (lazily), so no
volume is resampled. Every image (and label, if present) is still loaded and validated, so a
damaged file is reported here rather than in the middle of training.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from attndilute._io import atomic_path, claim_files
from attndilute.data.croppad import padding_fraction
from attndilute.data.layouts import discover
from attndilute.data.nifti import check_label, load_nifti, spacing_of
from attndilute.data.phantom import resolve_data
from attndilute.data.preprocessing import resampled_geometry
from attndilute.errors import AttnDiluteError


def padding_table(
    data: str | Path,
    crop: tuple[int, int, int],
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    split: str = "all",
    progress=None,
) -> list[dict]:
    """Per-case extent and padding fraction (Eq. 4) of every case of a data folder.

    Args:
        data: a data folder (any layout accepted by :func:`discover`).
        crop: the model crop ``(X, Y, Z)``; Eq. 4 uses ``crop[2]``.
        spacing: resampling spacing (mm), as in preprocessing.
        split: ``"train"``, ``"test"`` or ``"all"``.
        progress: optional callable wrapping an iterable (e.g. ``rich.progress.track``).

    Raises:
        AttnDiluteError: a crop that is not three positive whole numbers, a spacing that is not
            three finite numbers > 0, or any discovery or NIfTI problem.

    Returns:
        Rows with ``case, extent, padding_fraction, padded_voxel_fraction``, source spacing and
        shape, and the resampled shape. ``padded_voxel_fraction`` is the share of the crop's
        voxels that are padding when all three axes are considered.
    """
    crop = check_crop(crop)
    spacing = _check_spacing_arg(spacing)
    cases = discover(data, split=split)
    rows = []
    for case in cases if progress is None else progress(cases):
        image, affine, _ = load_nifti(case.image)  # validates the voxels
        if case.label is not None:
            label, label_affine, _ = load_nifti(case.label)
            check_label(label, label_affine, image.shape, affine, case.label)
        shape, _ = resampled_geometry(image.shape, affine, spacing)
        extent = float(shape[2])  # L, voxels along Z after resampling
        real_share = np.prod([min(n / c, 1.0) for n, c in zip(shape, crop, strict=True)])
        sp = spacing_of(affine)
        rows.append(
            {
                "case": case.name,
                "extent": extent,
                "padding_fraction": round(padding_fraction(extent, crop[2]), 6),  # Eq. 4
                "padded_voxel_fraction": round(float(1.0 - real_share), 6),
                "spacing_x": round(sp[0], 4),
                "spacing_y": round(sp[1], 4),
                "spacing_z": round(sp[2], 4),
                "shape_x": image.shape[0],
                "shape_y": image.shape[1],
                "shape_z": image.shape[2],
                "resampled_x": shape[0],
                "resampled_y": shape[1],
                "resampled_z": shape[2],
            }
        )
    return rows


def check_crop(crop) -> tuple[int, int, int]:
    """The crop as three ints; AttnDiluteError unless it is three positive whole numbers."""
    values = tuple(crop) if isinstance(crop, list | tuple) else (crop,)
    ok = len(values) == 3 and all(
        isinstance(c, int | np.integer | float | np.floating)
        and not isinstance(c, bool)
        and math.isfinite(c)
        and int(c) == c
        and c >= 1
        for c in values
    )
    if not ok:
        raise AttnDiluteError(
            f"crop must be three positive whole numbers of voxels, got {values}",
            hint="pass e.g. --crop 128 128 64",
        )
    return tuple(int(c) for c in values)  # type: ignore[return-value]


def _check_spacing_arg(spacing) -> tuple[float, float, float]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise AttnDiluteError(
            f"spacing must be three finite numbers of mm > 0, got {spacing!r}", hint="e.g. (1.0, 1.0, 1.0)"
        )
    return values  # type: ignore[return-value]


def summarize(rows: list[dict]) -> dict:
    """Seed §3.2.1 summary: cases needing padding, median extent [IQR], mean pf +- sd (ddof=1).

    Args:
        rows: output of :func:`padding_table`.
    """
    extent = np.array([r["extent"] for r in rows], dtype=float)
    pf = np.array([r["padding_fraction"] for r in rows], dtype=float)
    q1, median, q3 = np.percentile(extent, [25, 50, 75])
    return {
        "n": len(rows),
        "n_padded": int((pf > 0).sum()),
        "extent_median": float(median),
        "extent_q1": float(q1),
        "extent_q3": float(q3),
        "pf_mean": float(pf.mean()),
        "pf_sd": float(pf.std(ddof=1)) if len(pf) > 1 else 0.0,
    }


def describe(summary: dict, crop: tuple[int, int, int]) -> str:
    """The summary in the seed's words (§3.2.1)."""
    s = summary
    share = 100.0 * s["n_padded"] / max(s["n"], 1)
    crop_text = "x".join(str(c) for c in crop)
    iqr = f"{s['extent_q1']:.0f}-{s['extent_q3']:.0f}"
    return (
        f"{s['n_padded']} of {s['n']} cases ({share:.1f}%) required zero-padding under the {crop_text} crop, "
        f"with a median native z-extent of {s['extent_median']:.0f} [{iqr}] "
        f"voxels and a mean padding fraction of {s['pf_mean']:.3f} +- {s['pf_sd']:.3f}."
    )


def write_table(rows: list[dict], path: str | Path) -> None:
    """Write the rows as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def plot_histogram(rows: list[dict], crop: tuple[int, int, int], path: str | Path) -> None:
    """Histogram of the native axial extents with the crop depth marked; PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extent = np.array([r["extent"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.hist(extent, bins=min(30, max(5, len(extent) // 3)), color="#4c72b0", edgecolor="white")
    ax.axvline(crop[2], color="#c44e52", linestyle="--", label=f"crop C = {crop[2]}")
    ax.set_xlabel("native axial extent L after resampling (voxels)")
    ax.set_ylabel("cases")
    ax.legend(frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def run_padstats(
    data: str | Path | None,
    crop: tuple[int, int, int],
    out: str | Path,
    *,
    split: str = "all",
    plot: bool = False,
    overwrite: bool = False,
    progress=None,
) -> list[dict]:
    """``attndilute padstats``: Eq. 4 per case into ``out`` (CSV) and, with ``plot``, ``out.png``.

    Both files are claimed (:func:`attndilute._io.claim_files`): an existing file is replaced only
    if ``padstats`` wrote it, or with ``overwrite``; never inside the input cohort.

    Args:
        data: cohort folder; None: the embedded phantom.
        crop: ``(X, Y, Z)``; Eq. 4 uses Z.
        out: the CSV.
        split: ``"all"``, ``"train"`` or ``"test"``.
        plot: also write the extent histogram next to the CSV.
        overwrite: replace existing files that ``padstats`` did not write.
        progress: optional callable wrapping an iterable.

    Returns:
        the rows written.
    """
    root = resolve_data(data)
    out = Path(out)
    targets = [out, out.with_suffix(".png")] if plot else [out]
    with claim_files(targets, "padstats", overwrite=overwrite, cohorts=[root]):
        rows = padding_table(root, crop, split=split, progress=progress)
        write_table(rows, out)
        if plot:
            plot_histogram(rows, crop, targets[1])
    return rows
