"""Discovery of the three layouts (nnU-Net raw, MSD dataset.json, flat) and its errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from attndilute.data import Case, discover
from attndilute.errors import AttnDiluteError


def _nii(path, shape=(4, 4, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), str(path))
    return path


def test_nnunet_layout_splits_and_names(tmp_path):
    for name in ("b", "a"):
        _nii(tmp_path / "imagesTr" / f"{name}_0000.nii.gz")
        _nii(tmp_path / "labelsTr" / f"{name}.nii.gz")
    _nii(tmp_path / "imagesTr" / "a_0001.nii.gz")  # second channel: ignored
    _nii(tmp_path / "imagesTs" / "c_0000.nii.gz")
    (tmp_path / "dataset.json").write_text(
        json.dumps({"channel_names": {"0": "T2"}, "file_ending": ".nii.gz"})
    )
    cases = discover(tmp_path)
    assert [c.name for c in cases] == ["a", "b", "c"]
    assert cases[0] == Case("a", tmp_path / "imagesTr/a_0000.nii.gz", tmp_path / "labelsTr/a.nii.gz")
    assert cases[2].label is None
    assert [c.name for c in discover(tmp_path, split="train")] == ["a", "b"]
    assert [c.name for c in discover(tmp_path, split="test")] == ["c"]
    with pytest.raises(AttnDiluteError, match="1 of 3 images have no label"):
        discover(tmp_path, require_labels=True)


def test_msd_dataset_json(tmp_path):
    _nii(tmp_path / "imagesTr" / "hippo_001.nii.gz")
    _nii(tmp_path / "labelsTr" / "hippo_001.nii.gz")
    _nii(tmp_path / "imagesTs" / "hippo_009.nii.gz")
    meta = {
        "training": [{"image": "./imagesTr/hippo_001.nii.gz", "label": "./labelsTr/hippo_001.nii.gz"}],
        "test": ["./imagesTs/hippo_009.nii.gz"],
    }
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    cases = discover(tmp_path)
    assert [(c.name, c.label is not None) for c in cases] == [("hippo_001", True), ("hippo_009", False)]
    assert [c.name for c in discover(tmp_path, split="test")] == ["hippo_009"]
    meta["test"].append("./imagesTs/missing.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(AttnDiluteError, match="does not exist"):
        discover(tmp_path)


def test_flat_layout(tmp_path):
    _nii(tmp_path / "p2_image.nii.gz")
    _nii(tmp_path / "p1_image.nii")
    _nii(tmp_path / "p1_label.nii.gz")
    cases = discover(tmp_path, split="test")  # no split in a flat folder: every split is all
    assert [(c.name, c.label is not None) for c in cases] == [("p1", True), ("p2", False)]
    _nii(tmp_path / "p3_label.nii.gz")
    with pytest.raises(AttnDiluteError, match="label without an image: p3_label"):
        discover(tmp_path)


@pytest.mark.parametrize(
    "files, message",
    [
        ([], "no images found"),
        (["x_image.nii.gz", "x_image.nii"], "duplicate case name 'x'"),
        (["imagesTr/x_0000.nii.gz", "imagesTs/x_0000.nii.gz"], "duplicate case name 'x'"),
        (["imagesTr/x.nii.gz"], "lacks the nnU-Net channel suffix"),
        (["imagesTr/x_0000.nii.gz", "labelsTr/y.nii.gz"], "label(s) without an image"),
    ],
)
def test_layout_errors(tmp_path, files, message):
    for f in files:
        _nii(tmp_path / f)
    with pytest.raises(AttnDiluteError, match=message.replace("(", r"\(").replace(")", r"\)")):
        discover(tmp_path)


def test_missing_folder_and_bad_split(tmp_path):
    with pytest.raises(AttnDiluteError, match="does not exist"):
        discover(tmp_path / "nope")
    with pytest.raises(AttnDiluteError, match="unknown split"):
        discover(tmp_path, split="val")
