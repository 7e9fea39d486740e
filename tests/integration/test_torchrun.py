"""``torchrun`` scale-out of ``adi`` and ``cka`` on CPU (gloo, 2 processes): same numbers, resumable.

The one-process reference runs in the test's own process (``main``), which the console script
calls too; the distributed runs are real ``torchrun`` launches of the console script. Each
distributed run is first killed part-way (``ATTNDILUTE_CRASH_AT`` ends rank 0 at once, like
``kill -9``; torchrun then stops the other rank), then run again: the rerun resumes from what
rank 0 committed, and its result must equal a one-process run (ADI exactly, CKA to 1e-6).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from attndilute._io import CRASH_ENV

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(
    not (BIN / "torchrun").exists() or not shutil.which("attndilute", path=str(BIN)),
    reason="torchrun or the attndilute console script is not installed in this venv",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], *, ranks: int = 1, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    cmd = [str(BIN / "attndilute"), *args]
    if ranks > 1:
        cmd = [
            str(BIN / "torchrun"),
            "--nproc_per_node",
            str(ranks),
            "--master_port",
            str(_free_port()),
            *cmd,
        ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_adi_equals_one_process_and_a_killed_run_resumes(tiny_cohort, tmp_path, cli):
    data, ckpt = tiny_cohort
    common = ["adi", "--model", str(ckpt), "--data", str(data), "--batch-size", "1", "--workers", "0"]
    code, _, err = cli(*common, "--out", tmp_path / "one")  # the one-process run, in this process
    assert code == 0, err
    killed = _run([*common, "--out", str(tmp_path / "two")], ranks=2, crash="part written:2")
    assert killed.returncode != 0
    committed = sorted(p.name for p in (tmp_path / "two" / ".adi-parts").glob("*.npz"))
    assert committed == ["00000.npz"]  # one batch committed before the kill, none half-written
    again = _run([*common, "--out", str(tmp_path / "two")], ranks=2)
    assert again.returncode == 0, again.stderr
    assert "resumed after 1 scans" in again.stdout
    a, b = xr.open_zarr(tmp_path / "one" / "adi.zarr"), xr.open_zarr(tmp_path / "two" / "adi.zarr")
    assert list(a["scan"].values) == list(b["scan"].values)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)  # exactly
    assert not (tmp_path / "two" / ".adi-parts").exists()


def test_torchrun_cka_equals_one_process_and_a_killed_run_resumes(tiny_cohort, tmp_path, cli):
    data, ckpt = tiny_cohort
    common = ["cka", str(ckpt), "init:A", "--data", str(data), "--batch-size", "4", "--epochs", "3"]
    code, _, err = cli(*common, "--out", tmp_path / "one")  # the one-process run, in this process
    assert code == 0, err
    killed = _run([*common, "--out", str(tmp_path / "two")], ranks=2, crash="store commit:3")
    assert killed.returncode != 0
    again = _run([*common, "--out", str(tmp_path / "two")], ranks=2)
    assert again.returncode == 0, again.stderr
    assert "resumed" in again.stdout
    a = xr.open_zarr(tmp_path / "one" / "cka.zarr")["cka"].values
    b = xr.open_zarr(tmp_path / "two" / "cka.zarr")["cka"].values
    np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)
