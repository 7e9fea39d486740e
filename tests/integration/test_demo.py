"""``attndilute demo --fast`` end to end: the layout of DESIGN §4 and the seed's ADI finding."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_fast_demo_writes_the_whole_study(cli, tmp_path, monkeypatch):
    """The CLI's ``demo --fast`` with its cohort cut from 12 to 8 cases (the test suite's time
    budget; the 12-case variant is what ``make demo``-style runs and docs/performance.md time)."""
    import dataclasses

    from attndilute.study import demo

    monkeypatch.setattr(demo, "FAST", dataclasses.replace(demo.FAST, n_cases=8))
    monkeypatch.setenv("ATTNDILUTE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "D"
    code, stdout, err = cli("demo", "--fast", "--out", out)
    assert code == 0, err
    for rel in (
        "data/dataset.json",
        "padstats.csv",
        "runs/base/best.safetensors",
        "runs/act/metrics.csv",
        "adi/base/adi.zarr",
        "adi/act/adi_stages.csv",
        "eval/base.csv",
        "eval/table.csv",
        "subtypes/features.csv",
        "cka/base_vs_act/cka.zarr",
        "cka/act_vs_init/cka.png",
        "report.html",
    ):
        assert (out / rel).exists(), rel
    assert not list(tmp_path.glob(".D.tmp-*"))
    deepest = {}
    for name in ("base", "act"):
        stages = pd.read_csv(out / "adi" / name / "adi_stages.csv")
        deepest[name] = stages.loc[stages.stage == stages.stage.max(), "adi"].mean()
    assert deepest["act"] < deepest["base"]  # anisotropic cropping cuts deepest-stage dilution
    assert "report.html" in stdout
