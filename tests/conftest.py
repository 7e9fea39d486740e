"""Shared fixtures: small seeds, one thread, and a CLI runner that returns (code, stdout, stderr).

Layout: ``unit/`` mirrors the package (``unit/report/sections/test_adi.py`` tests
``attndilute/report/sections/adi.py``); ``integration/`` runs commands end to end (CLI, demo,
report page in a browser, torchrun, crash safety, bad input).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# helpers beside this file (torchvision_stub, corpus) import by name from any test folder
sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


@pytest.fixture
def cli(capsys):
    """Run ``attndilute ARGS`` in-process; return (exit_code, stdout, stderr)."""
    from attndilute.cli.main import main

    def run(*args: str):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """A 4-case phantom and a saved ``smit-tiny`` at 64x32x32, 4 mm: the smallest real ADI run."""
    from attndilute import models
    from attndilute.data import write_phantom

    root = tmp_path_factory.mktemp("tiny-cohort")
    os.environ.setdefault("ATTNDILUTE_CACHE", str(root / "cache"))
    data = root / "data"
    write_phantom(data, n=4, seed=3, profile="small")
    torch.manual_seed(0)
    ckpt = root / "tiny.safetensors"
    models.save(models.build("smit-tiny", crop=(64, 32, 32), spacing=(4.0, 4.0, 4.0)), ckpt)
    return data, ckpt
