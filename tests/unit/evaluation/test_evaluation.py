"""attndilute.evaluation: compare (Table 2) by hand, joins, correlate (Fig. 4 E-F, §3.2.2)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from attndilute.errors import AttnDiluteError
from attndilute.evaluation import TABLE_COLUMNS, TESTS_COLUMNS, compare, compare_files, correlate
from attndilute.evaluation.compare import pairwise_tests_path
from attndilute.evaluation.correlate import correlate_file
from attndilute.evaluation.joins import join_tables

CASES = [f"c{i:02d}" for i in range(1, 9)]
# Detection per configuration; c05 and c08 are missed by all three -> excluded from sDSC/VR.
DETECTED = {
    "A": [1, 1, 0, 1, 0, 1, 1, 0],
    "B": [1, 1, 1, 1, 0, 0, 1, 0],
    "C": [1, 0, 1, 1, 0, 1, 1, 0],
}
# Raw sDSC / VR; values of missed cases are junk that the penalties must replace.
SDSC = {
    "A": [0.8, 0.6, 0.02, 0.6, 0.0, 0.5, 0.9, 0.0],
    "B": [0.85, 0.6, 0.4, 0.7, 0.0, 0.03, 0.9, 0.0],
    "C": [0.8, 0.05, 0.45, 0.65, 0.0, 0.55, 0.95, 0.0],
}
VR = {
    "A": [1.0, 1.2, 30.0, 0.9, 0.0, 1.5, 1.1, 0.0],
    "B": [1.0, 1.1, 0.8, 0.9, 0.0, 25.0, 1.05, 0.0],
    "C": [0.95, 40.0, 0.7, 1.0, 0.0, 1.3, 1.1, 0.0],
}


def table(name: str, *, shuffle_seed: int | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"case": CASES, "dice": 0.5, "sdsc": SDSC[name], "vr": VR[name], "detected": np.bool_(DETECTED[name])}
    )
    if shuffle_seed is not None:
        frame = frame.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)
    return frame


def penalised(name: str, values: dict, penalty: float) -> list[float]:
    """Hand rule: missed -> penalty; drop c05 and c08 (missed by all)."""
    return [
        v if d else penalty
        for c, v, d in zip(CASES, values[name], DETECTED[name], strict=True)
        if c not in ("c05", "c08")
    ]


def quartiles(x: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = statistics.quantiles(x, n=4, method="inclusive")  # = numpy's linear default
    return med, q1, q3


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    centre = (k + z**2 / 2) / (n + z**2)
    half = z * math.sqrt(k * (n - k) / n + z**2 / 4) / (n + z**2)
    return centre - half, centre + half


def test_compare_matches_hand_computation():
    result = compare({n: table(n, shuffle_seed=i) for i, n in enumerate("ABC")})
    assert list(result.table.columns) == list(TABLE_COLUMNS)
    assert result.excluded == ("c05", "c08")
    a = result.table.set_index("config").loc["A"]
    # A, kept sDSC: 0.8 0.6 [0.02 -> 0.1] 0.6 0.5 0.9 -> sorted 0.1 0.5 0.6 0.6 0.8 0.9
    assert (a.sdsc_median, a.sdsc_q1, a.sdsc_q3) == pytest.approx((0.6, 0.525, 0.75))
    # A, kept VR: 1.0 1.2 [30 -> 10] 0.9 1.5 1.1 -> sorted 0.9 1.0 1.1 1.2 1.5 10
    assert (a.vr_median, a.vr_q1, a.vr_q3) == pytest.approx((1.15, 1.025, 1.425))
    for name, row in result.table.set_index("config").iterrows():
        assert (row.sdsc_median, row.sdsc_q1, row.sdsc_q3) == pytest.approx(
            quartiles(penalised(name, SDSC, 0.1))
        )
        assert (row.vr_median, row.vr_q1, row.vr_q3) == pytest.approx(quartiles(penalised(name, VR, 10.0)))
        k = sum(DETECTED[name])
        assert (row.n_detected, row.n, row.n_excluded) == (k, 8, 2)
        assert row.detection_rate == k / 8
        assert (row.detection_low, row.detection_high) == pytest.approx(wilson(k, 8), abs=1e-12)


def test_compare_tests_match_scipy_and_statsmodels():
    from scipy.stats import wilcoxon
    from statsmodels.stats.contingency_tables import mcnemar

    result = compare({n: table(n, shuffle_seed=7 * i) for i, n in enumerate("ABC")})
    tests = result.tests
    assert list(tests.columns) == list(TESTS_COLUMNS)
    assert list(zip(tests.config_a, tests.config_b, strict=True)) == [("A", "B"), ("A", "C"), ("B", "C")]
    for row in tests.itertuples():
        a, b = row.config_a, row.config_b
        assert row.n_paired == 6
        for metric, values, penalty in (("sdsc", SDSC, 0.1), ("vr", VR, 10.0)):
            x, y = penalised(a, values, penalty), penalised(b, values, penalty)
            p = wilcoxon(x, y).pvalue if x != y else 1.0
            assert getattr(row, f"{metric}_p") == pytest.approx(p, rel=1e-12)
            assert getattr(row, f"{metric}_p_bonferroni") == pytest.approx(min(3 * p, 1.0), rel=1e-12)
        da, db = np.array(DETECTED[a], bool), np.array(DETECTED[b], bool)
        assert row.detection_diff_pp == pytest.approx(100 * (db.sum() - da.sum()) / 8)
        table2x2 = [[np.sum(da & db), np.sum(da & ~db)], [np.sum(~da & db), np.sum(~da & ~db)]]
        assert row.detection_p == pytest.approx(mcnemar(table2x2, exact=True).pvalue, rel=1e-12)
        assert (row.detection_a_only, row.detection_b_only) == (table2x2[0][1], table2x2[1][0])


def test_compare_ignores_row_order():
    plain = compare({n: table(n) for n in "ABC"})
    shuffled = compare({n: table(n, shuffle_seed=3 + i) for i, n in enumerate("ABC")})
    pd.testing.assert_frame_equal(plain.table, shuffled.table)
    pd.testing.assert_frame_equal(plain.tests, shuffled.tests)


def test_compare_names_differing_case_sets():
    b = table("B")
    b = b[b.case != "c03"]
    b.loc[len(b)] = ["c99", 0.5, 0.5, 1.0, True]
    with pytest.raises(AttnDiluteError, match=r"B lacks c03.*(A|C) lacks c99|A lacks c99.*B lacks c03"):
        compare({"A": table("A"), "B": b, "C": table("C")})


def test_compare_rejects_duplicates_and_missing_columns():
    dup = pd.concat([table("A"), table("A").iloc[:1]])
    with pytest.raises(AttnDiluteError, match="more than once: c01"):
        compare({"A": dup, "B": table("B")})
    with pytest.raises(AttnDiluteError, match="missing column"):
        compare({"A": table("A").drop(columns="vr")})


def test_compare_files_roundtrip_names_and_tests_csv(tmp_path):
    paths = []
    for i, name in enumerate(("smit_base", "smit_ta")):
        path = tmp_path / f"{name}.csv"
        table("AB"[i]).to_csv(path, index=False)  # `detected` is read back as text/bool
        paths.append(path)
    out = tmp_path / "T.csv"
    result = compare_files(paths, out=out)
    assert list(result.table.config) == ["smit_base", "smit_ta"]
    assert pairwise_tests_path(out) == tmp_path / "T_tests.csv"
    written = pd.read_csv(out)
    assert list(written.columns) == list(TABLE_COLUMNS)
    pd.testing.assert_frame_equal(written, result.table, check_dtype=False)
    assert len(pd.read_csv(tmp_path / "T_tests.csv")) == 1
    named = compare_files(paths, ["base", "ta"])
    assert list(named.table.config) == ["base", "ta"]
    with pytest.raises(AttnDiluteError, match="repeat"):
        compare_files(paths, ["x", "x"])


def test_compare_detected_from_dice_and_string_booleans():
    frame = table("A").assign(detected=lambda f: f.detected.map({True: "True", False: "False"}))
    from_dice = table("A").drop(columns="detected").assign(dice=[0.1 if d else 0.09 for d in DETECTED["A"]])
    assert compare({"x": frame}).table.n_detected[0] == compare({"x": from_dice}).table.n_detected[0] == 5


# -- joins ---------------------------------------------------------------------------------


def write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


def test_join_tables_by_name(tmp_path):
    evaluation = table("A")
    rng = np.random.default_rng(0)
    pf = rng.uniform(0, 0.8, 8)
    padstats = pd.DataFrame(
        {"case": CASES + ["train_01"], "extent": np.arange(9.0), "padding_fraction": [*pf, 0]}
    )
    adi = pd.DataFrame(
        [(c, f"S{s}", 0.01 * s + i, 0.5) for i, c in enumerate(CASES) for s in range(4)],
        columns=["scan", "stage", "adi", "padding_fraction"],
    )
    subtypes = pd.DataFrame({"case": CASES[::-1], "subtype": ["B", "D"] * 4, "contrast": 1.0})
    joined = join_tables(
        evaluation,
        padstats=write(padstats.sample(frac=1, random_state=1), tmp_path / "pad.csv"),
        adi=write(adi.sample(frac=1, random_state=2), tmp_path / "adi.csv"),
        subtypes=write(subtypes, tmp_path / "sub.csv"),
    )
    assert list(joined.case) == CASES
    np.testing.assert_allclose(joined.padding_fraction, pf)  # padstats wins over the ADI CSV's pf
    np.testing.assert_allclose(joined.extent, np.arange(8.0))
    for s in range(4):
        np.testing.assert_allclose(joined[f"adi_s{s}"], 0.01 * s + np.arange(8))
    np.testing.assert_allclose(joined.adi_deepest, joined.adi_s3)
    assert list(joined.subtype) == list(subtypes.set_index("case").loc[CASES, "subtype"])
    only_adi = join_tables(evaluation, adi=tmp_path / "adi.csv")
    np.testing.assert_allclose(only_adi.padding_fraction, 0.5)


def test_join_errors_name_missing_cases(tmp_path):
    short = write(pd.DataFrame({"case": CASES[:-2], "subtype": "B"}), tmp_path / "sub.csv")
    with pytest.raises(AttnDiluteError, match="2 evaluated case.*c07, c08"):
        join_tables(table("A"), subtypes=short)
    bad_stage = write(pd.DataFrame({"scan": CASES, "stage": "deep", "adi": 0.1}), tmp_path / "adi.csv")
    with pytest.raises(AttnDiluteError, match="stage numbers"):
        join_tables(table("A"), adi=bad_stage)
    with pytest.raises(AttnDiluteError, match="missing column"):
        join_tables(table("A"), padstats=write(pd.DataFrame({"case": CASES}), tmp_path / "p.csv"))


# -- correlate -------------------------------------------------------------------------------


def cohort(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pf = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 0.8, n))
    adi = 0.1 * pf + rng.normal(0, 0.01, n).clip(0)
    sdsc = (0.7 - 0.3 * pf + rng.normal(0, 0.1, n)).clip(0, 1)
    detected = rng.random(n) > 0.15 + 0.2 * pf
    return pd.DataFrame(
        {
            "case": [f"s{i:03d}" for i in range(n)],
            "dice": np.where(detected, 0.6, 0.02),
            "sdsc": sdsc,
            "vr": 1.0,
            "detected": detected,
            "padding_fraction": pf,
            "adi_deepest": adi,
            "subtype": np.where(rng.random(n) < 0.6, "Cluster-B", "Cluster-D"),
        }
    )


def test_correlate_matches_scipy_on_penalised_sdsc():
    from scipy.stats import spearmanr

    frame = cohort()
    result = correlate(frame)
    sdsc = np.where(frame.detected, frame.sdsc, 0.1)
    expected = {
        ("padding_fraction", "sdsc"): spearmanr(frame.padding_fraction, sdsc),
        ("adi_deepest", "padding_fraction"): spearmanr(frame.adi_deepest, frame.padding_fraction),
        ("adi_deepest", "sdsc"): spearmanr(frame.adi_deepest, sdsc),
    }
    assert [(r.x, r.y) for r in result.correlations.itertuples()] == list(expected)
    for r in result.correlations.itertuples():
        ref = expected[(r.x, r.y)]
        assert (r.rho, r.p, r.n) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 120)
    raw = correlate(frame, penalize=False).correlations
    assert raw.rho[0] == pytest.approx(spearmanr(frame.padding_fraction, frame.sdsc).statistic)


def test_correlate_bins_and_subtypes():
    frame = cohort()
    result = correlate(frame)
    pf = frame.padding_fraction.to_numpy()
    counts = result.binned.pf_bin.value_counts(sort=False).to_numpy()
    hand = [
        np.sum(pf == 0),
        np.sum((pf > 0) & (pf < 0.25)),
        np.sum((pf >= 0.25) & (pf < 0.5)),
        np.sum(pf >= 0.5),
    ]
    assert list(counts) == hand and sum(hand) == 120
    assert result.binned.adi_bin.value_counts(sort=False).sum() == 120
    assert len(result.binned.adi_bin.cat.categories) == 4
    sub = result.subtypes.set_index("subtype")
    sdsc = np.where(frame.detected, frame.sdsc, 0.1)
    for name in ("Cluster-B", "Cluster-D"):
        sel = frame.subtype.to_numpy() == name
        k = int(frame.detected[sel].sum())
        assert (sub.loc[name, "n"], sub.loc[name, "n_detected"]) == (sel.sum(), k)
        assert (sub.loc[name, "detection_low"], sub.loc[name, "detection_high"]) == pytest.approx(
            wilson(k, int(sel.sum())), abs=1e-12
        )
        assert sub.loc[name, "sdsc_median"] == pytest.approx(statistics.median(sdsc[sel]))


def test_correlate_needs_something_to_relate():
    with pytest.raises(AttnDiluteError, match="--padstats"):
        correlate(table("A"))


def test_correlate_file_writes_figures(tmp_path):
    path = tmp_path / "eval.csv"
    cohort().to_csv(path, index=False)
    result, folder = correlate_file(path)
    assert folder == tmp_path / "eval_correlate"
    names = {p.name for p in folder.iterdir()}
    assert {"correlations.csv", "binned.csv", "subtypes.csv", "fig4_ef.png", "fig4_ef.html"} <= names
    assert (folder / "fig4_ef.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (folder / "fig4_ef.html").read_text()
    assert 'src="http' not in html and len(html) > 1_000_000 and "s000" in html  # plotly.js inlined
    assert len(pd.read_csv(folder / "correlations.csv")) == len(result.correlations) == 3


def test_adi_bins_label_ranges_and_merge_ties():
    from attndilute.evaluation.correlate import adi_bins

    adi = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, np.nan])
    bins = adi_bins(adi)
    # quartile edges 0, 0, 0, 0.175, 0.4: the tied zero edges merge into one bin
    assert list(bins.categories) == ["0.000–0.100", "0.200–0.400"]
    assert pd.isna(bins[-1]) and list(pd.Series(bins).value_counts(sort=False)) == [7, 3]
    assert list(adi_bins(np.zeros(5)).categories) == ["all"]
