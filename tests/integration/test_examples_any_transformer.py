"""The "ADI in your own transformer" example for MONAI 2-D runs as a user would run it.

(The timm and Hugging Face examples are run by tests/unit/instrument/adapters/test_timm_adapters.py and
tests/unit/instrument/adapters/test_hf_adapters.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_monai_2d_example_prints_the_stage_table():
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "examples/monai_2d.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [
        line.split() for line in done.stdout.splitlines() if line.startswith(("top-bottom", "left-right"))
    ]
    assert len(rows) == 8  # two scans x four stages
    adi = [float(r[2]) for r in rows]
    assert all(0 < a < 1 for a in adi)
    assert adi[3] > adi[0]  # dilution grows with depth, as in the seed's Fig. 4
