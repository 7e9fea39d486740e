"""The "ADI in your own transformer" example for MONAI 2-D runs as a user would run it (as
``__main__``, in the test's process: the ``run_example`` fixture).

(The timm and Hugging Face examples are run by tests/unit/instrument/adapters/test_timm_adapters.py and
tests/unit/instrument/adapters/test_hf_adapters.py.)
"""

from __future__ import annotations


def test_monai_2d_example_prints_the_stage_table(run_example):
    stdout = run_example("monai_2d.py")
    rows = [line.split() for line in stdout.splitlines() if line.startswith(("top-bottom", "left-right"))]
    assert len(rows) == 8  # two scans x four stages
    adi = [float(r[2]) for r in rows]
    assert all(0 < a < 1 for a in adi)
    assert adi[3] > adi[0]  # dilution grows with depth, as in the seed's Fig. 4
