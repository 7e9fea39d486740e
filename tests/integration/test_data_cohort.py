"""Issue 3 acceptance on the embedded 40-case `small` phantom: padstats extents and subtype ARI."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATTNDILUTE_CACHE", str(root))
        yield root


def _read(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_default_phantom_padstats_and_subtypes(cache_root, cli, tmp_path):
    from sklearn.metrics import adjusted_rand_score

    from attndilute.data import default_data_dir, resolve_data

    # padstats with no --data generates the embedded phantom once, under $ATTNDILUTE_CACHE
    code, out, err = cli("padstats", "--crop", "128", "128", "128", "--out", tmp_path / "pad.csv", "--plot")
    assert code == 0, err
    data = default_data_dir()
    assert data == cache_root / "phantom-small-s0-v2" == resolve_data(None)
    truth = {r["case"]: r for r in _read(data / "phantom.csv")}
    assert len(truth) == 40
    rows = _read(tmp_path / "pad.csv")
    assert [r["case"] for r in rows] == sorted(truth)
    for row in rows:  # padstats reproduces the extents phantom.csv states (L = n * s at 1 mm)
        assert abs(float(row["extent"]) - float(truth[row["case"]]["extent_mm"])) <= 0.5
        assert float(row["padding_fraction"]) == pytest.approx(
            max(1 - float(row["extent"]) / 128, 0), abs=1e-6
        )
    assert (tmp_path / "pad.png").stat().st_size > 1000
    assert "required zero-padding under the 128x128x128 crop" in out
    volumes = np.array([float(r["tumor_volume_mm3"]) for r in truth.values()])
    assert volumes.min() > 1500 and volumes.max() < 75000  # about 2-60 cm^3

    # subtypes recovers the phantom's subtypes (fit on the cohort itself)
    code, out, err = cli("subtypes", "--out", tmp_path / "st")
    assert code == 0, err
    feats = _read(tmp_path / "st" / "features.csv")
    ari = adjusted_rand_score([truth[r["case"]]["subtype"] for r in feats], [r["subtype"] for r in feats])
    assert ari >= 0.8
    for name in ("scores.csv", "model.json", "fig5.png", "fig5.html"):
        assert (tmp_path / "st" / name).stat().st_size > 0
    assert [int(r["k"]) for r in _read(tmp_path / "st" / "scores.csv")] == [2, 3, 4, 5]
    # fitted scaler and centroids applied to another cohort (here the same files: same answer)
    code, _, err = cli("subtypes", "--data", data, "--fit-on", data, "--out", tmp_path / "st2")
    assert code == 0, err
    both = _read(tmp_path / "st2" / "features.csv")
    fit = {r["case"]: r["subtype"] for r in both if r["cohort"] == "fit"}
    applied = {r["case"]: r["subtype"] for r in both if r["cohort"] == "apply"}
    assert fit == applied == {r["case"]: r["subtype"] for r in feats}
