"""Input checks that used to pass silently or end in a traceback (docs/data.md, "Input checks").

Each CLI-level test asserts exit code 2, exactly one line on stderr naming the file, and no
traceback. Every test here was checked to fail with its check removed.
"""

from __future__ import annotations

import io
import logging
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from attndilute.errors import AttnDiluteError


def _nii(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _volume(seed=0, shape=(8, 8, 6)):
    return np.random.default_rng(seed).integers(1, 1000, shape).astype(np.int16)


def _label(shape=(8, 8, 6)):
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 2:5, 2:4] = 1
    return lab


def _case(root, name="c1", image=None, label="default", affine=None):
    image_path = _nii(root / f"{name}_image.nii.gz", _volume() if image is None else image, affine)
    if label is not None:
        _nii(root / f"{name}_label.nii.gz", _label() if isinstance(label, str) else label, affine)
    return image_path


def _raw_header_nii(path, data, pixdim, *, qform_code=0, sform_code=0, sform=None):
    """A NIfTI whose header holds exactly ``pixdim`` and codes (nibabel would fix them on write)."""
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    img = nib.Nifti1Image(data, None, header=header)
    img.header["pixdim"][1:4] = pixdim
    img.header["qform_code"], img.header["sform_code"] = qform_code, sform_code
    if sform is not None:
        img.header["srow_x"], img.header["srow_y"], img.header["srow_z"] = sform[:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _padstats(root, out="p.csv"):
    return ["padstats", "--data", root, "--crop", "8", "8", "8", "--out", root.parent / out]


def _one_line_error(result, *needles):
    code, out, err = result
    assert code == 2, (code, out, err)
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert "Traceback" not in err
    for needle in needles:
        assert str(needle) in err, (needle, err)
    return err


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNDILUTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATTNDILUTE_MAX_GIB", raising=False)


# --- 1. header spacing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pixdim, qform_code",
    [((0.0, 1.0, 1.0), 0), ((0.0, 1.0, 1.0), 1), ((1.0, -2.0, 1.0), 1), ((1.0, 1.0, np.nan), 0)],
)
def test_zero_negative_or_nan_pixdim_is_refused(cli, tmp_path, pixdim, qform_code):
    root = tmp_path / "data"
    image = _raw_header_nii(root / "c1_image.nii.gz", _volume(), pixdim, qform_code=qform_code)
    _one_line_error(cli(*_padstats(root)), image, "pixdim")


def test_zero_pixdim_is_refused_without_nibabel_log_line(tmp_path):
    from attndilute.data import load_nifti

    path = _raw_header_nii(tmp_path / "x.nii.gz", _volume(), (0.0, 1.0, 1.0))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("nibabel.global").addHandler(handler)
    try:
        with pytest.raises(AttnDiluteError, match="pixdim"):
            load_nifti(path)
    finally:
        logging.getLogger("nibabel.global").removeHandler(handler)
    assert stream.getvalue() == ""  # nibabel's "setting 0 dims to 1" would be a second stderr line


def test_pixdim_is_not_used_when_an_sform_gives_the_affine(tmp_path):
    from attndilute.data import load_nifti

    path = _raw_header_nii(
        tmp_path / "x.nii.gz", _volume(), (0.0, 0.0, 0.0), sform_code=1, sform=np.diag([2.0, 2.0, 3.0, 1.0])
    )
    _, _, spacing = load_nifti(path)
    assert spacing == (2.0, 2.0, 3.0)


@pytest.mark.parametrize("scale", [0.001, 500.0])
def test_implausible_spacing_is_refused(cli, tmp_path, scale):
    root = tmp_path / "data"
    image = _case(root, label=None, affine=np.diag([1.0, scale, 1.0, 1.0]))
    _one_line_error(cli(*_padstats(root)), image, "implausible voxel spacing", "0.01-100 mm")


def test_spacing_at_the_limits_is_accepted(tmp_path):
    from attndilute.data import load_nifti

    _, _, spacing = load_nifti(_nii(tmp_path / "x.nii.gz", _volume(), np.diag([0.01, 100.0, 1.0, 1.0])))
    assert spacing == pytest.approx((0.01, 100.0, 1.0))


# --- 2. memory budget ---------------------------------------------------------------------------


def _huge_header(path, shape=(30000, 30000, 30000)):
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 1000)  # a 1.3 kB file
    return path


def test_huge_header_is_refused_before_reading(cli, tmp_path):
    root = tmp_path / "data"
    image = _huge_header(root / "c1_image.nii")
    err = _one_line_error(cli(*_padstats(root)), image, "(30000, 30000, 30000)", "GiB", "budget of 4 GiB")
    assert "5.03e+04 GiB" in err  # 30000^3 int16 voxels


def test_memory_budget_follows_the_environment(cli, tmp_path, monkeypatch):
    root = tmp_path / "data"
    image = _case(root, image=_volume(shape=(64, 64, 32)), label=None)  # 256 KiB of int16
    assert cli(*_padstats(root))[0] == 0
    monkeypatch.setenv("ATTNDILUTE_MAX_GIB", str(128 / 2**20))  # 128 KiB
    _one_line_error(cli(*_padstats(root, "q.csv")), image, "(64, 64, 32)", "budget", "ATTNDILUTE_MAX_GIB")
    monkeypatch.setenv("ATTNDILUTE_MAX_GIB", "lots")
    _one_line_error(cli(*_padstats(root, "r.csv")), "ATTNDILUTE_MAX_GIB='lots'")


def test_resampling_over_the_budget_is_refused(cli, tmp_path, monkeypatch):
    root = tmp_path / "data"
    affine = np.diag([50.0, 50.0, 50.0, 1.0])  # 8x8x6 voxels of 50 mm -> 400x400x300 at 1 mm
    image = _case(root, affine=affine)
    monkeypatch.setenv("ATTNDILUTE_MAX_GIB", "0.1")  # the resampled grid is 0.179 GiB of float32
    _one_line_error(
        cli("subtypes", "--data", root, "--out", tmp_path / "st"),
        image,
        "resampled to 1x1x1 mm of shape (400, 400, 300)",
        "0.179 GiB",
        "budget of 0.1 GiB",
    )


# --- 3. labels and predictions are binary -----------------------------------------------------------


def _eval_study(root, pred_values=(0, 1), label_values=(0, 1)):
    data, pred = root / "data", root / "pred"
    label = _label() * label_values[1]
    _case(data, label=label)
    mask = _label() * pred_values[1]
    pred_path = _nii(pred / "c1.nii.gz", mask.astype(np.uint8))
    return data, pred, pred_path


def test_non_binary_prediction_is_refused(cli, tmp_path):
    data, pred, pred_path = _eval_study(tmp_path, pred_values=(0, 3))
    _one_line_error(
        cli("evaluate", "--split", "all", "--pred", pred, "--data", data,
                                   "--out", tmp_path / "e.csv"),
        pred_path,
        "prediction is not binary: values {0, 3}",
    )


def test_non_binary_reference_label_is_refused_by_evaluate(cli, tmp_path):
    data, pred, _ = _eval_study(tmp_path, label_values=(0, 2))
    _one_line_error(
        cli("evaluate", "--split", "all", "--pred", pred, "--data", data,
                                   "--out", tmp_path / "e.csv"),
        data / "c1_label.nii.gz",
        "label is not binary: values {0, 2}",
    )


def test_binary_prediction_is_scored(cli, tmp_path):
    data, pred, _ = _eval_study(tmp_path)
    code, _, err = cli("evaluate", "--split", "all", "--pred", pred, "--data", data,
                                   "--out", tmp_path / "e.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "e.csv")["dice"].tolist() == [1.0]


# --- 4. sDSC tolerance -------------------------------------------------------------------------------


@pytest.mark.parametrize("tolerance", ["-1", "0", "nan", "inf"])
def test_bad_tolerance_is_refused(cli, tmp_path, tolerance):
    data, pred, _ = _eval_study(tmp_path)
    _one_line_error(
        cli("evaluate", "--split", "all", "--pred", pred, "--data", data, "--out", tmp_path / "e.csv",
            "--tolerance", tolerance),
        "sDSC tolerance must be a finite number of mm > 0",
        "--tolerance 2",
    )


@pytest.mark.parametrize("tolerance", [-1.0, 0.0, math.nan, math.inf])
def test_surface_dice_rejects_bad_tolerance(tolerance):
    from attndilute import metrics

    mask = _label().astype(bool)
    with pytest.raises(ValueError, match="tolerance_mm must be a finite number > 0"):
        metrics.surface_dice(mask, mask, (1.0, 1.0, 1.0), tolerance_mm=tolerance)


@pytest.mark.parametrize("spacing", [(0.0, 1.0, 1.0), (1.0, math.nan, 1.0), (1.0, 1.0, -2.0)])
def test_surface_dice_rejects_bad_spacing(spacing):
    from attndilute import metrics

    mask = _label().astype(bool)
    with pytest.raises(ValueError, match="finite and > 0"):
        metrics.surface_dice(mask, mask, spacing)


# --- 5. compare: metric values ------------------------------------------------------------------------


def _eval_csv(path, **override):
    table = pd.DataFrame(
        {
            "case": ["a", "b", "c"],
            "dice": [0.8, 0.5, 0.0],
            "sdsc": [0.9, 0.6, 0.0],
            "vr": [1.1, 0.9, 0.0],
            "detected": [True, True, False],
        }
    )
    for column, (row, value) in override.items():
        table[column] = table[column].astype(object)
        table.loc[row, column] = value
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "column, value, needle",
    [
        ("sdsc", "abc", "column `sdsc`, line 3 (case 'b'): 'abc' is not a number"),
        ("dice", "0.5x", "column `dice`, line 3 (case 'b'): '0.5x' is not a number"),
        ("sdsc", 1.5, "column `sdsc`, line 3 (case 'b'): 1.5 is out of range (expected [0, 1])"),
        ("dice", -0.1, "column `dice`, line 3 (case 'b'): -0.1 is out of range (expected [0, 1])"),
        ("vr", -1.0, "column `vr`, line 3 (case 'b'): -1 is out of range (expected >= 0 and finite)"),
        ("vr", math.inf, "column `vr`, line 3 (case 'b'): inf is out of range"),
        ("detected", "maybe", "column `detected`, line 3 (case 'b'): 'maybe' is not a boolean"),
        ("detected", None, "column `detected`, line 3 (case 'b'): empty is not a boolean"),
    ],
)
def test_compare_refuses_bad_metric_values(cli, tmp_path, column, value, needle):
    good = _eval_csv(tmp_path / "good.csv")
    bad = _eval_csv(tmp_path / "bad.csv", **{column: (1, value)})
    _one_line_error(cli("compare", good, bad), bad, needle)


def test_compare_accepts_nan_metrics_where_allowed(cli, tmp_path):
    # case c: both masks empty (Dice and sDSC NaN), not detected; VR NaN for an empty reference
    a = _eval_csv(tmp_path / "a.csv", dice=(2, math.nan), sdsc=(2, math.nan), vr=(2, math.nan))
    b = _eval_csv(tmp_path / "b.csv", detected=(2, "0"))
    code, _, err = cli("compare", a, b)
    assert code == 0, err


# --- 6. padstats crop -------------------------------------------------------------------------------


@pytest.mark.parametrize("crop", [("0", "8", "8"), ("8", "-8", "8")])
def test_padstats_refuses_non_positive_crop(cli, tmp_path, crop):
    root = tmp_path / "data"
    _case(root, label=None)
    _one_line_error(
        cli("padstats", "--data", root, "--crop", *crop, "--out", tmp_path / "p.csv"),
        "crop must be three positive whole numbers",
        "--crop 128 128 64",
    )


@pytest.mark.parametrize("crop", [(8, 8, 8.5), (8, 8), (8, 8, True)])
def test_padding_table_refuses_bad_crop(tmp_path, crop):
    from attndilute.data.padstats import padding_table

    _case(tmp_path / "data", label=None)
    with pytest.raises(AttnDiluteError, match="crop must be three positive whole numbers"):
        padding_table(tmp_path / "data", crop)


# --- 7. constant images --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 7])
def test_constant_image_is_refused(cli, tmp_path, value):
    root = tmp_path / "data"
    image = _case(root, image=np.full((8, 8, 6), value, np.int16))
    _one_line_error(
        cli("subtypes", "--data", root, "--out", tmp_path / "st"), image, f"image is constant (value {value})"
    )


def test_image_without_background_is_refused_by_subtypes(cli, tmp_path):
    root = tmp_path / "data"
    image = _case(root, image=_label().astype(np.int16) * 500)  # signal only inside the tumour
    _one_line_error(
        cli("subtypes", "--data", root, "--out", tmp_path / "st"),
        image,
        "no varying non-zero intensity outside the tumour label",
    )


def test_phantom_and_synthetic_volumes_are_not_constant(tmp_path):
    from attndilute.data import discover
    from attndilute.data.phantom import write_phantom

    assert np.ptp(_volume()) > 0
    write_phantom(tmp_path / "ph", n=2, seed=0)
    for case in discover(tmp_path / "ph"):
        data = np.asanyarray(nib.load(str(case.image)).dataobj)
        assert data.min() < data.max()


# --- 8. damaged cache entries ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_cache_entry_is_rebuilt(tmp_path, damage):
    from attndilute.data import discover, preprocess
    from attndilute.data.cache import load_volume

    _case(tmp_path / "data")
    case = discover(tmp_path / "data")[0]
    cache = tmp_path / "pre"
    first = preprocess(case, cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    raw = entry.read_bytes()
    entry.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"not a zip" * 50, "empty": b""}[damage])
    assert load_volume(entry, case.name) is None
    again = preprocess(case, cache_dir=cache)
    np.testing.assert_array_equal(again.image, first.image)
    assert entry.read_bytes() == raw  # rewritten
    assert load_volume(entry, case.name) is not None


# --- 9. discovery: links and unreadable entries ------------------------------------------------------------


def test_dangling_symlink_in_flat_folder_is_refused(cli, tmp_path):
    root = tmp_path / "data"
    _case(root)
    link = root / "c2_image.nii.gz"
    link.symlink_to(tmp_path / "gone.nii.gz")
    _one_line_error(cli(*_padstats(root)), link, "broken symbolic link")


def test_symlink_loop_in_nnunet_folder_is_refused(cli, tmp_path):
    root = tmp_path / "data"
    _nii(root / "imagesTr" / "a_0000.nii.gz", _volume())
    link = root / "imagesTr" / "b_0000.nii.gz"
    link.symlink_to(link)
    _one_line_error(cli(*_padstats(root)), link, "symbolic link loop")


def test_symlink_loop_listed_in_dataset_json_is_refused(cli, tmp_path):
    root = tmp_path / "data"
    _nii(root / "imagesTr" / "a.nii.gz", _volume())
    (root / "imagesTr" / "b.nii.gz").symlink_to(root / "imagesTr" / "b.nii.gz")
    (root / "dataset.json").write_text(
        '{"training": [{"image": "./imagesTr/a.nii.gz"}, {"image": "./imagesTr/b.nii.gz"}]}'
    )
    _one_line_error(cli(*_padstats(root)), "imagesTr/b.nii.gz", "symbolic link loop")


def test_symlink_loop_as_layout_folder_is_refused(cli, tmp_path):
    root = tmp_path / "data"
    _nii(root / "imagesTr" / "a_0000.nii.gz", _volume())
    (root / "labelsTr").symlink_to(root / "labelsTr")
    _one_line_error(cli(*_padstats(root)), root / "labelsTr", "symbolic link loop")


def test_symlink_to_a_real_file_is_followed(cli, tmp_path):
    root = tmp_path / "data"
    _case(root)
    (root / "c2_image.nii.gz").symlink_to(root / "c1_image.nii.gz")
    code, out, err = cli(*_padstats(root))
    assert code == 0, err
    assert "2 of 2 cases" in out
