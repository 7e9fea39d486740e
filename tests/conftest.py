"""Shared fixtures: small seeds, one thread, and a CLI runner that returns (code, stdout, stderr)."""

from __future__ import annotations

import os

import pytest
import torch

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
