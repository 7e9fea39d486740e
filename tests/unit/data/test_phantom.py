"""Phantom cohort: layout, determinism, seed Table 1 extents, and the `phantom` command."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from attndilute.data import PROFILES, discover, load_nifti, write_phantom
from attndilute.data.phantom import PHANTOM_VERSION, _assign, _extent_mm
from attndilute.errors import AttnDiluteError


def _files(root):
    """The cohort's files; the run marker (when and by which PID it was written) is not the cohort."""
    from attndilute._io import MARKER

    files = (p for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER)
    return {p.relative_to(root): p.read_bytes() for p in files}


def test_same_seed_byte_identical_other_seed_differs(tmp_path):
    write_phantom(tmp_path / "a", n=3, seed=5)
    write_phantom(tmp_path / "b", n=3, seed=5)
    write_phantom(tmp_path / "c", n=3, seed=6)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_layout_dataset_json_and_csv(cli, tmp_path):
    code, out, err = cli("phantom", "--out", tmp_path / "p", "--n", "8", "--seed", "1")
    assert code == 0, err
    assert "train" in out and "test" in out
    root = tmp_path / "p"
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T2"} and meta["labels"] == {"background": 0, "tumour": 1}
    assert meta["file_ending"] == ".nii.gz" and meta["numTraining"] == len(meta["training"]) == 6
    assert len(meta["test"]) == 2 and meta["phantom_version"] == PHANTOM_VERSION == 2
    rows = list(csv.DictReader((root / "phantom.csv").open()))
    assert {"case", "split", "subtype", "slices", "spacing_x", "spacing_z", "extent_mm", "tumor_volume_mm3",
            "contrast"} <= set(rows[0])  # fmt: skip
    cases = {c.name: c for c in discover(root, require_labels=True)}
    assert sorted(cases) == [r["case"] for r in rows]
    assert [c.name for c in discover(root, split="test")] == [r["case"] for r in rows if r["split"] == "test"]
    for row in rows:
        case = cases[row["case"]]
        image, affine, spacing = load_nifti(case.image)
        label, _, _ = load_nifti(case.label)
        assert image.dtype == np.int16 and image.shape[2] == int(row["slices"])
        assert spacing == pytest.approx(
            (float(row["spacing_x"]), float(row["spacing_y"]), float(row["spacing_z"])), abs=1e-3
        )
        assert 1.4 <= spacing[0] <= 1.6 and 3.0 <= spacing[2] <= 4.0
        assert not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])))  # oblique stack
        voxel = float(np.prod(spacing))
        assert float(row["tumor_volume_mm3"]) == pytest.approx(label.sum() * voxel, rel=1e-3)
        # the tumour is fully covered by the stack (seed §2.1 excluded incomplete coverage)
        assert label[:, :, 0].sum() == 0 and label[:, :, -1].sum() == 0
        # version 2: B between muscularis (0.3) and fat (0.95), D close to the muscularis
        low, high = (0.62, 0.76) if row["subtype"] == "B" else (0.26, 0.36)
        assert low <= float(row["tumor_signal"]) <= high


def test_extent_distribution_matches_seed_table_1():
    for n in (40, 247):
        _, splits, quantiles = _assign(n, seed=0)
        extents = np.array([_extent_mm(PROFILES["small"], q) for q in quantiles])
        q1, median, q3 = np.percentile(extents, [25, 50, 75])
        assert 85 <= median <= 97 and 65 <= q1 <= 75 and 112 <= q3 <= 128
        assert splits.count("test") == pytest.approx(n / 4, abs=1)


def test_subtype_proportions_and_stratified_split():
    subtypes, splits, _ = _assign(40, seed=3)
    assert subtypes.count("B") == 24 and subtypes.count("D") == 16
    test = [s for s, sp in zip(subtypes, splits, strict=True) if sp == "test"]
    assert test.count("B") == 6 and test.count("D") == 4


def test_refuses_foreign_folder(tmp_path, cli):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    code, _, err = cli("phantom", "--out", tmp_path / "mine", "--n", "2")
    assert code == 2 and "files it did not write" in err
    assert (tmp_path / "mine" / "thesis.tex").exists()
    with pytest.raises(AttnDiluteError, match="unknown profile"):
        write_phantom(tmp_path / "x", n=2, profile="huge")
