"""``attndilute evaluate / compare / correlate`` end to end on small NIfTI fixtures and CSVs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attndilute.evaluation import EVAL_COLUMNS, TABLE_COLUMNS

# Array axes (0, 1, 2) have spacing (0.7, 0.9, 3.0) mm, but the affine permutes them in world
# space: the spacing must come from the affine's column norms, in array axis order.
SPACING = (0.7, 0.9, 3.0)
AFFINE = np.array(
    [[0.0, 0.0, 3.0, -20.0], [0.7, 0.0, 0.0, 5.0], [0.0, -0.9, 0.0, 12.0], [0.0, 0.0, 0.0, 1.0]]
)
SHAPE = (26, 22, 10)


def save(path, array, affine=AFFINE):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.uint8), affine), str(path))
    return path


def ellipsoid(centre, radii, shape=SHAPE):
    grid = np.indices(shape, dtype=float)
    return (((grid - np.reshape(centre, (3, 1, 1, 1))) / np.reshape(radii, (3, 1, 1, 1))) ** 2).sum(0) <= 1


@pytest.fixture
def study(tmp_path):
    """Flat data folder with 3 labelled cases and a predictions folder (one missed case)."""
    data, pred = tmp_path / "data", tmp_path / "pred"
    data.mkdir()
    pred.mkdir()
    refs, preds = {}, {}
    for i, name in enumerate(("case_a", "case_b", "case_c")):
        ref = ellipsoid((12 + i, 10, 5), (6 + i, 5, 3))
        guess = ellipsoid((13 + i, 11 - i, 5), (6, 5 + i, 2.5)) if name != "case_c" else np.zeros(SHAPE, bool)
        save(data / f"{name}_image.nii.gz", ref * 100 + 1)
        save(data / f"{name}_label.nii.gz", ref)
        save(pred / f"{name}.nii.gz", guess)
        refs[name], preds[name] = ref, guess
    return data, pred, refs, preds


def test_evaluate_matches_independent_metrics(cli, study, tmp_path):
    sd = pytest.importorskip("surface_distance")
    data, pred, refs, preds = study
    out = tmp_path / "eval.csv"
    code, stdout, stderr = cli("evaluate", "--split", "all", "--pred", pred, "--data", data, "--out", out)
    assert code == 0, stderr
    table = pd.read_csv(out).set_index("case")
    assert list(table.reset_index().columns) == list(EVAL_COLUMNS)
    voxel = float(np.prod(SPACING))
    for name, ref in refs.items():
        p = preds[name]
        row = table.loc[name]
        dice = 2 * np.sum(p & ref) / (p.sum() + ref.sum())
        assert row.dice == pytest.approx(dice)
        if p.any():
            expected = sd.compute_surface_dice_at_tolerance(
                sd.compute_surface_distances(ref, p, SPACING), 2.0
            )
        else:
            expected = 0.0
        assert row.sdsc == pytest.approx(expected, abs=1e-6)
        assert row.vr == pytest.approx(p.sum() / ref.sum())
        assert bool(row.detected) == (dice >= 0.1)
        assert row.volume_ref_mm3 == pytest.approx(ref.sum() * voxel)
        assert row.volume_pred_mm3 == pytest.approx(p.sum() * voxel)
    assert "2/3" in stdout


def test_evaluate_joins_side_tables(cli, study, tmp_path):
    data, pred, _, _ = study
    names = ["case_c", "case_a", "case_b"]
    pd.DataFrame({"case": names, "extent": [40, 50, 60], "padding_fraction": [0.1, 0.2, 0.3]}).to_csv(
        tmp_path / "pad.csv", index=False
    )
    adi = [(n, s, 0.1 * s + i, 0.0) for i, n in enumerate(names) for s in range(3)]
    pd.DataFrame(adi, columns=["scan", "stage", "adi", "padding_fraction"]).to_csv(
        tmp_path / "adi.csv", index=False
    )
    pd.DataFrame({"case": names, "subtype": ["D", "B", "B"]}).to_csv(tmp_path / "sub.csv", index=False)
    out = tmp_path / "eval.csv"
    args = [
        "--padstats",
        tmp_path / "pad.csv",
        "--adi",
        tmp_path / "adi.csv",
        "--subtypes",
        tmp_path / "sub.csv",
    ]
    code, _, stderr = cli("evaluate", "--split", "all", "--pred", pred, "--data", data, "--out", out, *args)
    assert code == 0, stderr
    table = pd.read_csv(out).set_index("case")
    assert table.loc["case_a", "padding_fraction"] == 0.2 and table.loc["case_c", "extent"] == 40
    assert table.loc["case_b", "adi_deepest"] == pytest.approx(2.2) == table.loc["case_b", "adi_s2"]
    assert list(table.loc[["case_a", "case_b", "case_c"], "subtype"]) == ["B", "B", "D"]
    code, stdout, stderr = cli("correlate", "--eval", out, "--out", tmp_path / "corr")
    assert code == 0, stderr
    assert (tmp_path / "corr" / "fig4_ef.png").is_file() and "Spearman" in stdout


def one_line_error(code, stderr, *needles):
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    for needle in needles:
        assert needle in lines[0]


def test_evaluate_missing_prediction(cli, study, tmp_path):
    data, pred, _, _ = study
    (pred / "case_b.nii.gz").unlink()
    code, _, stderr = cli("evaluate", "--split", "all", "--pred", pred, "--data", data,
                                   "--out", tmp_path / "e.csv")
    one_line_error(code, stderr, "case_b", "no prediction")
    assert not (tmp_path / "e.csv").exists()


def test_evaluate_shape_mismatch(cli, study, tmp_path):
    data, pred, _, preds = study
    save(pred / "case_a.nii.gz", preds["case_a"][:, :, :-1])
    code, _, stderr = cli("evaluate", "--split", "all", "--pred", pred, "--data", data,
                                   "--out", tmp_path / "e.csv")
    one_line_error(code, stderr, "case_a.nii.gz", "shape")


def test_evaluate_affine_mismatch(cli, study, tmp_path):
    data, pred, _, preds = study
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.5
    save(pred / "case_b.nii.gz", preds["case_b"], shifted)
    code, _, stderr = cli("evaluate", "--split", "all", "--pred", pred, "--data", data,
                                   "--out", tmp_path / "e.csv")
    one_line_error(code, stderr, "case_b.nii.gz", "affine")


def test_evaluate_missing_pred_folder(cli, study, tmp_path):
    data, _, _, _ = study
    code, _, stderr = cli(
        "evaluate", "--split", "all", "--pred", tmp_path / "nope", "--data", data, "--out", tmp_path / "e.csv"
    )
    one_line_error(code, stderr, "nope")


def per_case(detected, sdsc, order=None):
    frame = pd.DataFrame(
        {
            "case": [f"p{i}" for i in range(len(sdsc))],
            "dice": 0.5,
            "sdsc": sdsc,
            "vr": 1.0,
            "detected": detected,
        }
    )
    return frame if order is None else frame.iloc[order]


def test_compare_cli_writes_both_tables_and_formats(cli, tmp_path):
    a = per_case([True, True, False, True, False], [0.7, 0.6, 0.0, 0.5, 0.0])
    b = per_case([True, True, True, True, False], [0.8, 0.6, 0.4, 0.55, 0.0], order=[4, 2, 0, 1, 3])
    a.to_csv(tmp_path / "base.csv", index=False)
    b.to_csv(tmp_path / "act.csv", index=False)
    out = tmp_path / "T.csv"
    code, stdout, stderr = cli("compare", tmp_path / "base.csv", tmp_path / "act.csv", "--out", out)
    assert code == 0, stderr
    table = pd.read_csv(out)
    assert list(table.columns) == list(TABLE_COLUMNS) and list(table.config) == ["base", "act"]
    assert list(table.n_excluded) == [1, 1] and list(table.n_detected) == [3, 4]
    tests = pd.read_csv(tmp_path / "T_tests.csv")
    assert tests.detection_diff_pp[0] == pytest.approx(20.0)
    assert "Table 2" in stdout and "wrote" in stdout
    code, stdout, _ = cli(
        "compare", tmp_path / "base.csv", tmp_path / "act.csv", "--names", "B,A", "--format", "markdown"
    )
    assert code == 0 and "| B | 0.550 [" in stdout and "| 60.0% [" in stdout and "| +20.0 pp |" in stdout
    code, stdout, _ = cli("compare", tmp_path / "base.csv", tmp_path / "act.csv", "--format", "latex")
    assert code == 0 and r"\toprule" in stdout and r"60.0\% [" in stdout


def test_compare_cli_bad_inputs(cli, tmp_path):
    per_case([True, True], [0.7, 0.6]).to_csv(tmp_path / "a.csv", index=False)
    per_case([True, True, True], [0.7, 0.6, 0.5]).to_csv(tmp_path / "b.csv", index=False)
    code, _, stderr = cli("compare", tmp_path / "a.csv", tmp_path / "b.csv")
    one_line_error(code, stderr, "a lacks p2")
    code, _, stderr = cli("compare", tmp_path / "a.csv", tmp_path / "a.csv", "--format", "html")
    one_line_error(code, stderr, "--format")
    code, _, stderr = cli("compare", tmp_path / "a.csv", tmp_path / "missing.csv", "--names", "x,y")
    one_line_error(code, stderr, "missing.csv", "not found")


def test_correlate_cli_needs_joined_columns(cli, tmp_path):
    per_case([True, False, True], [0.7, 0.0, 0.5]).to_csv(tmp_path / "e.csv", index=False)
    code, _, stderr = cli("correlate", "--eval", tmp_path / "e.csv")
    one_line_error(code, stderr, "--padstats")
