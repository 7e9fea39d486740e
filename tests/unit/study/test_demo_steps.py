"""The demo's bookkeeping without running it: its record for the report's banner, compact run
folders, the step order its progress reports, and the settings it prints first."""

from __future__ import annotations

import json

import pytest
import torch


def test_record_names_the_variant(tmp_path):
    from attndilute.report.load import read_demo_record
    from attndilute.study.demo import FAST, FULL, write_record

    assert json.loads(write_record(tmp_path, FAST).read_text())["variant"] == "fast"
    record = read_demo_record(tmp_path / "demo.json")
    assert record["n_cases"] == 12 and record["epochs"] == {"base": 1, "act": 1}
    assert write_record(tmp_path, FULL) and read_demo_record(tmp_path / "demo.json")["variant"] == "full"
    (tmp_path / "demo.json").write_text("[1, 2]")
    assert read_demo_record(tmp_path / "demo.json") is None


def test_compact_run_drops_the_resume_state_and_halves_the_fast_model(tiny_cohort, tmp_path):
    import shutil

    from attndilute import models
    from attndilute.study.demo import compact_run

    _, ckpt = tiny_cohort
    run = tmp_path / "runs" / "base"
    run.mkdir(parents=True)
    shutil.copy(ckpt, run / "best.safetensors")
    (run / "last.ckpt").write_bytes(b"resume state")
    before = (run / "best.safetensors").stat().st_size
    full = models.load(run / "best.safetensors")
    compact_run(run, half=True)
    assert not (run / "last.ckpt").exists()
    assert (run / "best.safetensors").stat().st_size < 0.55 * before
    half = models.load(run / "best.safetensors")
    assert half.attndilute_meta["crop"] == full.attndilute_meta["crop"]
    for (name, a), (_, b) in zip(full.state_dict().items(), half.state_dict().items(), strict=True):
        assert a.dtype == b.dtype, name  # float16 on disk, the model's dtype once loaded
        if a.is_floating_point():
            torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)
        else:
            assert torch.equal(a, b), name
    kept = tmp_path / "kept"
    kept.mkdir()
    shutil.copy(ckpt, kept / "best.safetensors")
    compact_run(kept, half=False)
    assert (kept / "best.safetensors").read_bytes() == ckpt.read_bytes()


def test_steps_and_settings():
    from attndilute.resolved import describe
    from attndilute.study.demo import ENTRIES, STEPS, settings

    assert STEPS[0] == "phantom" and STEPS[-1] == "report" and len(STEPS) == 12
    assert "plotly.min.js" in ENTRIES and "demo.json" in ENTRIES
    resolved = settings("cpu")
    assert describe("demo", resolved["act"], "act") == [
        "demo act: model smit-tiny (smit), crop 64x64x32, spacing 2x2x2 mm, device cpu"
    ]
    lines = describe("demo", settings("auto")["base"], "base")
    assert lines[1].startswith("warning: --device auto (the default): using ")


def test_demo_refuses_a_missing_device_before_writing(cli, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = cli("demo", "--fast", "--out", tmp_path / "D", "--device", "cuda")
    assert code == 2 and "no CUDA device" in err and not (tmp_path / "D").exists()


def test_cli_demo_reports_each_step_as_it_starts(cli, tmp_path, monkeypatch):
    """Without a terminal the demo writes one line per step as it starts (a bar on a terminal)."""
    import pandas as pd

    from attndilute.study import demo as module

    def fake(out, *, config, log, overwrite, on_start, device):
        for i, name in enumerate(module.STEPS):
            on_start(name, i)
            log(f"{name:<10s} {1.0:7.1f} s")
        table = pd.DataFrame({"config": ["base"], "sdsc_median": [0.1], "sdsc_q1": [0.1], "sdsc_q3": [0.1],
                              "n_detected": [0], "n": [3], "detection_rate": [0.0], "detection_low": [0.0],
                              "detection_high": [0.56]})  # fmt: skip
        return module.DemoResult(tmp_path, {"total": 60.0}, table, {"base": 0.16})

    monkeypatch.setattr(module, "run_demo", fake)
    code, out, err = cli("demo", "--fast", "--out", tmp_path / "D", "--device", "cpu")
    assert code == 0, err
    started = [line for line in err.splitlines() if line.endswith(" ...")]
    assert started == [f"[{i + 1}/12] {name} ..." for i, name in enumerate(module.STEPS)]
    first = "demo base: model smit-tiny (smit), crop 64x64x64, spacing 2x2x2 mm, device cpu"
    assert out.splitlines()[0] == first
