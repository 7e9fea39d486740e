"""The GPU benchmark's CPU smoke mode runs end to end (its GPU figures are in docs/performance.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_adi.py"


def test_gpu_adi_smoke_runs_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_adi", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--smoke", "--json", str(tmp_path / "gpu_adi.json")])
    result = json.loads((tmp_path / "gpu_adi.json").read_text())
    assert result["device"] == "CPU"
    (row,) = result["sizes"]
    assert row["time_ratio"] > 0 and row["memory_ratio"] > 0
    assert result["cohort"]["cohort_scans"] == 2 and 0 < result["cohort"]["forward_share"] <= 1
    assert "s per scan" in capsys.readouterr().out
