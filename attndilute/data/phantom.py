"""The phantom cohort: synthetic pelvic T2 MRI with rectal tumours, in the nnU-Net raw layout.

``write_phantom(out, n, seed, profile)`` writes ``imagesTr/NAME_0000.nii.gz``,
``labelsTr/NAME.nii.gz`` (about 75% of cases, stratified by subtype), ``imagesTs``/``labelsTs``
(the rest), a ``dataset.json`` with nnU-Net v2 keys plus MSD ``training``/``test`` lists, and
``phantom.csv`` with each case's acquisition and appearance. The same seed gives byte-identical
files (nibabel writes gzip with mtime 0 and no file name).

Axial extents follow seed Table 1: a log-normal with median 92 mm and IQR about 70-120 mm, drawn
by stratified sampling so even a 40-case cohort has those quartiles. Profiles are data
(:data:`PROFILES`); see :mod:`attndilute.data.anatomy` for the anatomy and subtypes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from attndilute._io import atomic_path, claim_folder, remove
from attndilute.data.anatomy import SUBTYPE_APPEARANCE, Acquisition, Anatomy, render
from attndilute.data.cache import cache_root
from attndilute.errors import AttnDiluteError

DEFAULT_N = 40
DEFAULT_SEED = 0
TEST_FRACTION = 0.25
B_FRACTION = 0.6
#: Bumped whenever the same seed would render different images (it names the embedded cohort's
#: cache folder, so a cohort of an older version is never reused). 2: B tumours at 0.62-0.76 of fat.
PHANTOM_VERSION = 2


@dataclass(frozen=True)
class Profile:
    """Acquisition ranges of a phantom cohort.

    Args:
        name: profile name.
        inplane_mm: in-plane spacing range (uniform).
        fov_mm: field-of-view range (uniform).
        thickness_mm: slice thickness range (uniform).
        extent_median_mm: median axial extent (log-normal).
        extent_log_sd: log-space sd of the axial extent.
        extent_range_mm: extents are clipped to this range.
    """

    name: str
    inplane_mm: tuple[float, float]
    fov_mm: tuple[float, float] = (180.0, 220.0)
    thickness_mm: tuple[float, float] = (3.0, 4.0)
    extent_median_mm: float = 92.0
    extent_log_sd: float = 0.4  # IQR = median * exp(+-0.674 sd) = 70-121 mm (seed Table 1)
    extent_range_mm: tuple[float, float] = (40.0, 200.0)


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", inplane_mm=(0.43, 0.63)),  # seed Table 1 / §2.1
    "small": Profile("small", inplane_mm=(1.4, 1.6)),  # fast, for the demo and tests
}


def case_name(index: int, n: int) -> str:
    """``phantom_000``-style identifier, wide enough for ``n`` cases."""
    return f"phantom_{index:0{max(3, len(str(n - 1)))}d}"


def _extent_mm(profile: Profile, quantile: float) -> float:
    from scipy.stats import norm

    value = profile.extent_median_mm * np.exp(profile.extent_log_sd * norm.ppf(quantile))
    return float(np.clip(value, *profile.extent_range_mm))


def _draw_case(rng: np.random.Generator, profile: Profile, subtype: str, extent_q: float):
    """Acquisition and anatomy of one case."""
    look = SUBTYPE_APPEARANCE[subtype]
    inplane = float(rng.uniform(*profile.inplane_mm))
    thickness = float(np.round(rng.uniform(*profile.thickness_mm) * 10) / 10)
    slices = max(int(round(_extent_mm(profile, extent_q) / thickness)), 8)
    extent = slices * thickness
    matrix = int(round(rng.uniform(*profile.fov_mm) / inplane))
    tilt, roll = float(rng.uniform(-15, 15)), float(rng.uniform(-5, 5))

    volume_mm3 = float(np.exp(rng.uniform(np.log(2500.0), np.log(75000.0))))
    shape_ratio = rng.uniform([0.55, 1.0, 1.0], [0.8, 1.5, 1.6])  # radial, circumferential, z
    scale = (volume_mm3 / (4 / 3 * np.pi * np.prod(shape_ratio))) ** (1 / 3)
    axes = shape_ratio * scale
    max_half_z = 0.5 * extent - 4.0  # the tumour must be covered by the stack (seed §2.1)
    if axes[2] * 1.3 > max_half_z:
        axes = axes * max_half_z / (axes[2] * 1.3)
    room = max(0.5 * extent - axes[2] * 1.3 - 2.0, 0.0)
    r_out, wall = float(rng.uniform(14, 20)), float(rng.uniform(3, 5))
    rectum = (float(rng.uniform(-8, 8)), float(rng.uniform(-35, -20)), r_out, wall)
    centre = (
        rectum[0] + float(rng.uniform(-10, 10)),
        rectum[1] + float(rng.uniform(-5, 25)),
        float(rng.uniform(-room, room)),
    )
    lobes = tuple(
        (float(rng.uniform(0.04, 0.12)), *(float(v) for v in _unit(rng)), float(rng.uniform(0, 2 * np.pi)))
        for _ in range(4)
    )
    waves = tuple(
        (*(float(v) for v in _unit(rng) * 2 * np.pi / rng.uniform(6, 12)), float(rng.uniform(0, 2 * np.pi)))
        for _ in range(6)
    )
    anat = Anatomy(
        body=(0.0, float(rng.uniform(0, 15)), float(rng.uniform(140, 170)), float(rng.uniform(100, 125))),
        rectum=rectum,
        rectum_slope=(float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.3, 0.1))),
        lumen_gas=bool(rng.random() < 0.5),
        bladder_z=float(rng.uniform(-10, 50)),
        sacrum_z=float(rng.uniform(-30, 30)),
        tumour_angle=float(rng.uniform(0, 2 * np.pi)),
        tumour_axes=tuple(float(a) for a in axes),  # type: ignore[arg-type]
        tumour_lobes=lobes,  # type: ignore[arg-type]
        tumour_signal=float(rng.uniform(*look["signal"])),
        edge_mm=float(rng.uniform(*look["edge_mm"])),
        texture=float(look["texture"]),
        texture_waves=waves,  # type: ignore[arg-type]
        bias=(0.0, *(float(c) for c in rng.normal(0, [0.25, 0.25, 0.2, 0.2, 0.2, 0.15, 0.1]))),
        snr=float(rng.uniform(18, 35)),
        gain=float(rng.uniform(300, 900)),
    )
    acq = Acquisition(inplane, thickness, matrix, slices, tilt, roll, centre)
    return acq, anat


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _assign(n: int, seed: int) -> tuple[list[str], list[str], np.ndarray]:
    """Subtypes (60/40 B/D), splits (25% test, stratified by subtype), extent quantiles."""
    rng = np.random.default_rng([seed, 0xC0407])
    n_b = int(round(B_FRACTION * n))
    subtypes = list(rng.permutation(["B"] * n_b + ["D"] * (n - n_b)))
    splits = ["train"] * n
    for kind in ("B", "D"):
        members = [i for i in range(n) if subtypes[i] == kind]
        for i in rng.permutation(members)[: int(round(TEST_FRACTION * len(members)))]:
            splits[int(i)] = "test"
    quantiles = (rng.permutation(n) + rng.uniform(0.05, 0.95, n)) / n  # stratified over (0, 1)
    return [str(s) for s in subtypes], splits, quantiles


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))  # the whole cohort folder is written atomically


def write_phantom(
    out: str | Path,
    *,
    n: int = DEFAULT_N,
    seed: int = DEFAULT_SEED,
    profile: str = "small",
    progress=None,
    overwrite: bool = False,
) -> list[dict]:
    """Generate a phantom cohort into ``out`` (built in a temporary folder, then moved in).

    Args:
        out: target folder, claimed for ``phantom`` (:func:`attndilute._io.claim_folder`): a
            folder holding anything but an earlier phantom is refused unless ``overwrite``.
        n: number of cases (>= 2).
        seed: random seed; the same seed gives byte-identical files.
        profile: a key of :data:`PROFILES` (``"paper"`` or ``"small"``).
        progress: optional callable wrapping an iterable (e.g. ``rich.progress.track``).
        overwrite: write into a folder that holds other files, as long as none of them has a
            name the cohort writes (:data:`COHORT_NAMES`); a folder holding a real cohort's
            ``imagesTr`` is refused even then.

    Returns:
        The rows of ``phantom.csv``.
    """
    out = Path(out).expanduser()
    if profile not in PROFILES:
        raise AttnDiluteError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if n < 2:
        raise AttnDiluteError(f"--n must be at least 2, got {n}")
    with claim_folder(out, "phantom", overwrite=overwrite) as claim:
        taken = [n for n in COHORT_NAMES if (claim.path / n).exists() or (claim.path / n).is_symlink()]
        if taken and not claim.earlier:  # a real cohort's images: never replaced, not even with --overwrite
            raise AttnDiluteError(f"the folder holds {taken[0]}, which a phantom writes but did not "
                                  "write here", path=claim.path, hint="choose another --out")
        with atomic_path(claim.path / ".cohort", is_dir=True) as tmp:
            rows = _write_into(tmp, n, seed, PROFILES[profile], progress)
        built = claim.path / ".cohort"
        for entry in sorted(built.iterdir()):  # the cohort's own names replace an earlier phantom's
            remove(claim.path / entry.name)
            os.replace(entry, claim.path / entry.name)
        built.rmdir()
        return rows


#: What a phantom writes into its folder (a rerun replaces these and only these).
COHORT_NAMES = ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "dataset.json", "phantom.csv")


def _write_into(root: Path, n: int, seed: int, profile: Profile, progress) -> list[dict]:
    subtypes, splits, quantiles = _assign(n, seed)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir()
    rows, lists = [], {"train": [], "test": []}
    indices = range(n) if progress is None else progress(range(n))
    for i in indices:
        name = case_name(i, n)
        acq, anat = _draw_case(np.random.default_rng([seed, i]), profile, subtypes[i], float(quantiles[i]))
        image, label = render(anat, acq, np.random.default_rng([seed, i, 1]))
        tag = "Tr" if splits[i] == "train" else "Ts"
        image_rel, label_rel = f"images{tag}/{name}_0000.nii.gz", f"labels{tag}/{name}.nii.gz"
        affine = acq.affine()
        _save_nifti(image, affine, root / image_rel)
        _save_nifti(label, affine, root / label_rel)
        lists[splits[i]].append({"image": f"./{image_rel}", "label": f"./{label_rel}"})
        rows.append(_row(name, splits[i], subtypes[i], acq, anat, label))
    _write_json(root / "dataset.json", _dataset_json(profile, seed, lists))
    _write_csv(root / "phantom.csv", rows)
    return rows


def _row(name: str, split: str, subtype: str, acq: Acquisition, anat: Anatomy, label: np.ndarray) -> dict:
    voxel_mm3 = acq.inplane_mm**2 * acq.thickness_mm
    return {
        "case": name,
        "split": split,
        "subtype": subtype,
        "slices": acq.slices,
        "spacing_x": round(acq.inplane_mm, 4),
        "spacing_y": round(acq.inplane_mm, 4),
        "spacing_z": round(acq.thickness_mm, 4),
        "shape_x": acq.matrix,
        "shape_y": acq.matrix,
        "extent_mm": round(acq.slices * acq.thickness_mm, 3),
        "tumor_volume_mm3": round(float(label.sum()) * voxel_mm3, 1),
        "tumor_signal": round(anat.tumour_signal, 4),
        "contrast": round(anat.tumour_signal / 0.95 - 1.0, 4),  # design contrast to mesorectal fat
        "edge_mm": round(anat.edge_mm, 3),
        "snr": round(anat.snr, 2),
        "tilt_deg": round(acq.tilt_deg, 2),
        "roll_deg": round(acq.roll_deg, 2),
        "lumen": "gas" if anat.lumen_gas else "gel",
    }


def _dataset_json(profile: Profile, seed: int, lists: dict) -> dict:
    return {
        "name": "AttnDilutePhantom",
        "description": "Synthetic pelvic T2-weighted MRI with rectal tumours (attndilute phantom)",
        "channel_names": {"0": "T2"},
        "labels": {"background": 0, "tumour": 1},
        "numTraining": len(lists["train"]),
        "numTest": len(lists["test"]),
        "file_ending": ".nii.gz",
        "profile": asdict(profile),
        "seed": seed,
        "phantom_version": PHANTOM_VERSION,
        "training": lists["train"],
        "test": lists["test"],
    }


def _write_json(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=2) + "\n")


def _write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def default_data_dir() -> Path:
    """The embedded phantom (``small``, 40 cases, seed 0) under the cache root; generated once.

    ``$ATTNDILUTE_CACHE`` (if set) or ``~/.cache/attndilute``, then ``phantom-small-s0-v2``
    (seed, then :data:`PHANTOM_VERSION`). The
    cohort is generated into a temporary sibling and renamed, so concurrent first uses are safe
    and an interrupted generation is never mistaken for a finished one.
    """
    target = cache_root() / f"phantom-small-s{DEFAULT_SEED}-v{PHANTOM_VERSION}"
    if (target / "phantom.csv").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.gen-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_into(tmp, DEFAULT_N, DEFAULT_SEED, PROFILES["small"], None)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "phantom.csv").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_data(data: str | Path | None) -> Path:
    """The ``--data`` folder: the embedded phantom when None, else the given folder (must exist).

    Args:
        data: a user's ``--data`` value or None.
    """
    if data is None:
        return default_data_dir()
    path = Path(data).expanduser()
    if not path.exists():
        raise AttnDiluteError("data folder does not exist", path=path)
    if not path.is_dir():
        raise AttnDiluteError("--data must be a folder", path=path)
    return path
