"""Shared fixtures: small seeds, one thread, and a CLI runner that returns (code, stdout, stderr).

Layout: ``unit/`` mirrors the package (``unit/report/sections/test_adi.py`` tests
``attndilute/report/sections/adi.py``); ``integration/`` runs commands end to end (CLI, demo,
report page in a browser, torchrun, crash safety, bad input).
"""

from __future__ import annotations

import os
import runpy
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


@pytest.fixture
def run_example(capsys, monkeypatch):
    """Run ``examples/NAME ARGS`` as ``__main__`` in this process; return what it printed.

    The script runs as ``python examples/NAME`` would run it (its own ``argv``, ``__name__``), but
    in the test's process rather than a fresh interpreter, which would spend 5-13 s of the suite's
    time budget importing torch, MONAI, timm or transformers again.
    """

    def run(name: str, *args: str) -> str:
        script = Path(__file__).resolve().parents[1] / "examples" / name
        monkeypatch.setattr(sys, "argv", [str(script), *args])
        capsys.readouterr()
        runpy.run_path(str(script), run_name="__main__")
        return capsys.readouterr().out

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


#: Run first: the longest tests, and those that start processes of their own (torchrun ranks),
#: so that the end of a ``-n 2 --dist worksteal`` run is made of short tests both workers share
#: rather than one long test on one worker (docs/performance.md, the test suite's time).
FIRST = ("integration/test_torchrun.py", "integration/test_demo.py", "integration/test_data_cohort.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(FIRST) if path.endswith(name)), len(FIRST))

    items.sort(key=rank)  # stable: every other test keeps its place and its module's order
