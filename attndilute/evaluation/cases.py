"""Per-case evaluation: ``attndilute evaluate`` (seed §2.8).

Every prediction ``P/NAME.nii.gz`` (what ``attndilute predict`` writes) is scored against the
reference label of case ``NAME`` on the label's own voxel grid and spacing. Nothing is
resampled: a prediction on a different grid is an error, not something to fix silently.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attndilute import metrics, stats
from attndilute._io import atomic_path, claim_files
from attndilute.data import discover, load_nifti, resolve_data
from attndilute.data.nifti import check_binary
from attndilute.errors import AttnDiluteError
from attndilute.evaluation.compare import MISSED_SDSC, MISSED_VR
from attndilute.evaluation.formatting import median_iqr, rate_interval
from attndilute.evaluation.joins import join_tables

if TYPE_CHECKING:
    import pandas as pd

    from attndilute.data import Case

#: Columns of the per-case table, in order (the joins append theirs).
EVAL_COLUMNS = ("case", "dice", "sdsc", "vr", "detected", "volume_ref_mm3", "volume_pred_mm3")
#: A prediction's affine may differ from the label's by this much (mm) and still be one grid.
AFFINE_ATOL_MM = 1e-3
_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class CaseScores:
    """Metrics of one case (one row of the ``evaluate`` table).

    Args:
        case: case name.
        dice: Dice coefficient.
        sdsc: surface Dice at the tolerance (2 mm).
        vr: volume ratio predicted / reference.
        detected: Dice >= 0.1.
        volume_ref_mm3: reference volume in mm^3.
        volume_pred_mm3: predicted volume in mm^3.
    """

    case: str
    dice: float
    sdsc: float
    vr: float
    detected: bool
    volume_ref_mm3: float
    volume_pred_mm3: float


def find_prediction(pred_dir: Path, name: str) -> Path | None:
    """The prediction file of case ``name`` in ``pred_dir`` (``NAME.nii.gz`` or ``NAME.nii``)."""
    for suffix in _SUFFIXES:
        path = Path(pred_dir) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def score_case(name: str, pred_path: Path, label_path: Path, *, tolerance_mm: float = 2.0) -> CaseScores:
    """Score one prediction against its reference label (§2.8 metrics).

    Args:
        name: case name.
        pred_path: predicted mask NIfTI (non-zero = tumour).
        label_path: reference label NIfTI (non-zero = tumour); its grid and spacing are used.
        tolerance_mm: sDSC tolerance.

    Raises:
        AttnDiluteError: unreadable file, a label or prediction with values other than 0 and 1,
            a prediction whose shape or affine differs from the label's, or a tolerance that is
            not a finite number > 0.
    """
    check_tolerance(tolerance_mm)
    ref, ref_affine, spacing = load_nifti(label_path)  # ref (X, Y, Z)
    pred, pred_affine, _ = load_nifti(pred_path)  # pred (X, Y, Z)
    if pred.shape != ref.shape:
        raise AttnDiluteError(
            f"prediction shape {pred.shape} differs from the reference label's {ref.shape} ({label_path})",
            path=pred_path,
            hint="predictions must be written in the label's source geometry",
        )
    if not np.allclose(pred_affine, ref_affine, atol=AFFINE_ATOL_MM, rtol=0):
        diff = float(np.abs(pred_affine - ref_affine).max())
        raise AttnDiluteError(
            f"prediction affine differs from the reference label's by up to {diff:.3g} mm ({label_path})",
            path=pred_path,
            hint="predictions must be written in the label's source geometry",
        )
    check_binary(ref, label_path, what="label")
    check_binary(pred, pred_path, what="prediction")
    ref, pred = ref != 0, pred != 0
    voxel_mm3 = float(abs(np.linalg.det(ref_affine[:3, :3])))
    d = metrics.dice(pred, ref)
    return CaseScores(
        case=name,
        dice=d,
        sdsc=metrics.surface_dice(pred, ref, spacing, tolerance_mm=tolerance_mm),
        vr=metrics.volume_ratio(pred, ref),
        detected=bool(d >= metrics.DETECTION_THRESHOLD),
        volume_ref_mm3=int(ref.sum()) * voxel_mm3,
        volume_pred_mm3=int(pred.sum()) * voxel_mm3,
    )


def evaluate_cases(
    cases: Sequence[Case],
    pred_dir: str | Path,
    *,
    tolerance_mm: float = 2.0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Score every case's prediction; return the per-case table (:data:`EVAL_COLUMNS`).

    Args:
        cases: cases with labels (``attndilute.data.Case``).
        pred_dir: folder holding ``NAME.nii.gz`` per case.
        tolerance_mm: sDSC tolerance.
        progress: called with each case name after it is scored.

    Raises:
        AttnDiluteError: a tolerance that is not a finite number > 0, a case without a label,
            missing predictions (all named), or a bad file.
    """
    import pandas as pd

    check_tolerance(tolerance_mm)
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise AttnDiluteError("predictions folder does not exist", path=pred_dir)
    unlabelled = [c.name for c in cases if c.label is None]
    if unlabelled:
        raise AttnDiluteError(f"{len(unlabelled)} case(s) have no reference label: {_names(unlabelled)}")
    found = {c.name: find_prediction(pred_dir, c.name) for c in cases}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise AttnDiluteError(
            f"no prediction for {len(missing)} of {len(cases)} case(s): {_names(missing)}",
            path=pred_dir,
            hint="expected NAME.nii.gz per case, as `attndilute predict` writes",
        )
    rows = []
    for case in cases:
        rows.append(score_case(case.name, found[case.name], case.label, tolerance_mm=tolerance_mm))
        if progress is not None:
            progress(case.name)
    return pd.DataFrame([vars(r) for r in rows], columns=list(EVAL_COLUMNS))


def check_tolerance(tolerance_mm: float) -> float:
    """The sDSC tolerance as a float; AttnDiluteError unless it is a finite number of mm > 0."""
    try:
        value = float(tolerance_mm)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise AttnDiluteError(
            f"sDSC tolerance must be a finite number of mm > 0, got {tolerance_mm!r}",
            hint="pass e.g. --tolerance 2 (the seed's 2 mm)",
        )
    return value


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def evaluate(
    pred_dir: str | Path,
    data: str | Path | None = None,
    *,
    out: str | Path | None = None,
    split: str = "test",
    padstats: str | Path | None = None,
    adi: str | Path | None = None,
    subtypes: str | Path | None = None,
    tolerance_mm: float = 2.0,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """``attndilute evaluate``: per-case metrics of a predictions folder, with optional joins.

    Args:
        pred_dir: folder of ``NAME.nii.gz`` predicted masks.
        data: data folder with reference labels (nnU-Net raw, MSD or flat); None = the default
            phantom cohort.
        out: CSV to write (atomically; claimed with :func:`attndilute._io.claim_files`, so an
            existing file is replaced only if ``evaluate`` wrote it, or with ``overwrite``);
            None writes nothing.
        split: ``test`` (the default, as ``predict``), ``train`` or ``all`` cases of ``data``.
        padstats: padstats CSV to join (``padding_fraction``, ``extent``).
        adi: ADI stage CSV to join (``adi_s0 .. adi_sK``, ``adi_deepest``).
        subtypes: subtypes CSV to join (``subtype``).
        tolerance_mm: sDSC tolerance.
        progress: called with each case name after it is scored.
        overwrite: replace an existing ``out`` that ``evaluate`` did not write (never an input).

    Returns:
        The per-case table: :data:`EVAL_COLUMNS` then the joined columns.
    """
    root = resolve_data(data)
    inputs = [p for p in (pred_dir, padstats, adi, subtypes) if p is not None]
    claim = (claim_files([out], "evaluate", overwrite=overwrite, cohorts=[root], files=inputs)
             if out is not None else contextlib.nullcontext())
    with claim:
        cases = discover(root, require_labels=True, split=split)
        table = evaluate_cases(cases, pred_dir, tolerance_mm=tolerance_mm, progress=progress)
        table = join_tables(table, padstats=padstats, adi=adi, subtypes=subtypes)
        if out is not None:
            with atomic_path(out) as tmp:
                table.to_csv(tmp, index=False)
    return table


def summary(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Short cohort summary of a per-case table, for the CLI (label, value) rows.

    sDSC and VR use the bounded penalties of §2.8 for missed cases; nothing is excluded.
    """
    det = table["detected"].to_numpy(bool)
    n = len(table)
    sdsc = np.where(det, table["sdsc"].to_numpy(float), MISSED_SDSC)
    vr = np.where(det, table["vr"].to_numpy(float), MISSED_VR)

    def mi(x: np.ndarray) -> str:
        x = x[np.isfinite(x)]
        return median_iqr(*np.percentile(x, [50, 25, 75])) if x.size else "n/a"

    rows = [("cases", str(n))]
    if n:
        rows += [
            (
                "detected (Dice ≥ 0.1)",
                f"{int(det.sum())}/{n}  {rate_interval(*stats.wilson_interval(int(det.sum()), n))}",
            ),
            ("Dice", mi(table["dice"].to_numpy(float))),
            ("sDSC @ 2 mm (missed = 0.1)", mi(sdsc)),
            ("VR (missed = 10)", mi(vr)),
        ]
    joined = [c for c in table.columns if c not in EVAL_COLUMNS]
    if joined:
        rows.append(("joined columns", ", ".join(joined)))
    return rows
