"""Every bad input of issue 3 gives one line on stderr and exit code 2 (via the `cli` fixture)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest


def _nii(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _volume(seed=0, shape=(8, 8, 6)):
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(np.int16)


def _label(shape=(8, 8, 6)):
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 2:5, 2:4] = 1
    return lab


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _case(root, name="c1", image=None, label="default", affine=None, label_affine=None):
    _nii(root / f"{name}_image.nii.gz", _volume() if image is None else image, affine)
    if label is not None:
        _nii(root / f"{name}_label.nii.gz", _label() if isinstance(label, str) else label, label_affine)


def _bad(kind, root):
    """Build the bad input `kind` under root; return the command to run on it."""
    pad = ["padstats", "--data", root, "--crop", "8", "8", "8", "--out", root.parent / "p.csv"]
    if kind == "empty":
        root.mkdir()
    elif kind == "no-labels":
        _case(root, label=None)
        return ["subtypes", "--data", root, "--out", root.parent / "st"]
    elif kind == "duplicate":
        _case(root)
        _nii(root / "c1_image.nii", _volume())
    elif kind == "unreadable":
        root.mkdir()
        (root / "c1_image.nii.gz").write_bytes(b"this is not a nifti file at all" * 20)
    elif kind == "truncated":
        _case(root, image=_volume(shape=(40, 40, 30)), label=None)
        _truncate(root / "c1_image.nii.gz")
    elif kind == "2d":
        _case(root, image=_volume()[:, :, 0], label=None)
    elif kind == "4d":
        _case(root, image=np.stack([_volume(), _volume(1)], axis=-1), label=None)
    elif kind == "shape-mismatch":
        _case(root, label=_label((8, 8, 5)))
    elif kind == "affine-mismatch":
        shifted = np.eye(4)
        shifted[0, 3] = 2.0
        _case(root, label_affine=shifted)
    elif kind == "non-binary":
        lab = _label()
        lab[0, 0, 0] = 2
        _case(root, label=lab)
    elif kind == "nan":
        img = _volume().astype(np.float32)
        img[1, 1, 1], img[2, 2, 2], img[3, 3, 3] = np.nan, np.inf, -np.inf
        _case(root, image=img, label=None)
    return pad


CASES = {
    "empty": "no images found",
    "no-labels": "1 of 1 images have no label",
    "duplicate": "duplicate case name 'c1'",
    "unreadable": "not a readable NIfTI file",
    "truncated": "truncated or damaged",
    "2d": "image is 2D",
    "4d": "image is 4D",
    "shape-mismatch": "label shape (8, 8, 5) differs from image shape (8, 8, 6)",
    "affine-mismatch": "label affine differs from the image affine (max difference 2 mm)",
    "non-binary": "label is not binary: values {0, 1, 2}",
    "nan": "image has 1 NaN and 2 Inf voxels",
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_input_exits_2_with_one_line(cli, tmp_path, kind):
    command = _bad(kind, tmp_path / "data")
    code, out, err = cli(*command)
    assert code == 2, (out, err)
    assert CASES[kind] in err
    assert err.startswith("error: ") and err.strip().count("\n") == 0
    assert "Traceback" not in err


def test_good_flat_folder_runs(cli, tmp_path):
    _case(tmp_path / "data")
    code, out, err = cli(
        "padstats", "--data", tmp_path / "data", "--crop", "8", "8", "8", "--out", tmp_path / "p.csv"
    )
    assert code == 0, err
    assert "1 of 1 cases (100.0%) required zero-padding" in out  # extent 6 < crop 8
    assert "0.250" in out  # Eq. 4: 1 - 6/8
