"""``attndilute demo --fast`` end to end: the layout of DESIGN §4 and the seed's ADI finding."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_fast_demo_writes_the_whole_study(cli, tmp_path, monkeypatch):
    """The CLI's ``demo --fast``, cut for the test suite's time budget: 6 cases instead of 12 and 4
    training crops per epoch instead of 16 (the full ``--fast`` is what docs/performance.md times).

    Seed 1 puts a 48 mm case in the one-case test split. The base crop (64 slices of 2 mm) pads it
    by 80 mm, which leaves deepest-stage tokens that hold only padding; the act crop (32 slices)
    pads it by 16 mm, which does not reach that stage.
    """
    import dataclasses
    import types

    from attndilute.study import demo
    from attndilute.training import train_presets

    monkeypatch.setattr(demo, "FAST", dataclasses.replace(demo.FAST, n_cases=6))
    presets = dict(train_presets.TRAIN_PRESETS)
    for name in demo.CONFIGS.values():
        presets[name] = dataclasses.replace(presets[name], crops_per_epoch=4)
    monkeypatch.setattr(train_presets, "TRAIN_PRESETS", types.MappingProxyType(presets))
    monkeypatch.setenv("ATTNDILUTE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "D"
    code, stdout, err = cli("demo", "--fast", "--seed", 1, "--out", out)
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
