"""Never lose a user's data: a crash at every write step of ``adi`` and ``cka`` resumes exactly.

A fault-injection hook (:func:`attndilute._io.inject_faults`) raises :class:`SimulatedCrash` at
the k-th write step of a run, for every k. Like ``kill -9``, it skips every cleanup: temporary
files and the running marker stay behind. The rerun must then equal an uninterrupted run: the
same Dataset, byte-identical CSV, and no temporary leftovers.
"""

from __future__ import annotations

import pytest
import torch
import xarray as xr
from torch import nn

from attndilute import _io
from attndilute.store import CKAConfig, from_module, run_cka
from attndilute.study.adi import PARTS, run_adi

pytestmark = pytest.mark.slow


def _steps(run) -> list[str]:
    names: list[str] = []
    with _io.inject_faults(names.append):
        run()
    return names


def _crash_at(k: int):
    count = {"n": 0}

    def hook(name: str) -> None:
        count["n"] += 1
        if count["n"] == k:
            raise _io.SimulatedCrash(name)

    return hook


def _plain_figures(monkeypatch, module, *names):
    """Figures are write steps like any other; their rendering is not under test, so keep it cheap."""

    def write(_, path, **kw):
        with _io.atomic_path(path) as tmp:
            tmp.write_text("figure\n")

    for name in names:
        monkeypatch.setattr(module, name, write)


def _leftovers(folder) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".tmp-" in p.name or p.name == PARTS]


def test_adi_killed_at_every_write_step_resumes_to_the_uninterrupted_result(
    tiny_cohort, tmp_path, monkeypatch
):
    import attndilute.study.adi as adi

    data, ckpt = tiny_cohort
    measured, measure = {}, adi.measure_batch

    def once(net, images, real, names, pfs, **kw):  # the forward is not under test: run it once
        key = tuple(names)
        if key not in measured:
            measured[key] = measure(net, images, real, names, pfs, **kw)
        return measured[key].copy(deep=True)

    monkeypatch.setattr(adi, "measure_batch", once)
    _plain_figures(monkeypatch, adi, "write_adi_png", "write_adi_html")  # the names adi.py calls

    def run(out):
        return run_adi(str(ckpt), out=out, data=data, batch_size=3, workers=0)  # parts of 3 + 1 scans

    run(tmp_path / "warm")  # fills the preprocessing cache, whose writes are not this run's steps
    steps = _steps(lambda: run(tmp_path / "full"))
    full = xr.open_zarr(tmp_path / "full" / "adi.zarr").load()
    csv = (tmp_path / "full" / "adi_stages.csv").read_bytes()
    assert {"part written", "rename adi.zarr", "csv written", "html written"} <= set(steps)
    for k, step in enumerate(steps, start=1):
        out = tmp_path / f"k{k}"
        with pytest.raises(_io.SimulatedCrash), _io.inject_faults(_crash_at(k)):
            run(out)
        again = run(out)
        xr.testing.assert_identical(again.dataset, full)
        assert xr.open_zarr(out / "adi.zarr").load().identical(full), step
        assert (out / "adi_stages.csv").read_bytes() == csv, step
        assert not _leftovers(out), (step, _leftovers(out))
        assert _io.read_marker(out)["status"] == "complete"


class _Tiny(nn.Module):
    """Two conv layers: a model whose capture costs nothing, so every write step can be cut."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Conv3d(1, 4, 3, padding=1)
        self.b = nn.Conv3d(4, 4, 3, stride=2, padding=1)

    def forward(self, x):  # (B, 1, X, Y, Z)
        return self.b(torch.relu(self.a(x)))


def test_cka_killed_at_every_write_step_resumes_to_the_uninterrupted_result(
    tiny_cohort, tmp_path, monkeypatch
):
    import attndilute.store.cka_run as cka_run

    _plain_figures(monkeypatch, cka_run, "write_heatmap_png", "write_diagonal_png", "write_html")
    data, _ = tiny_cohort
    config = CKAConfig(crop=(16, 16, 16), batch_size=4, layers="a,b", pool=(2, 2, 2))
    source = from_module(_Tiny(), name="tiny")

    def run(out):
        return run_cka(source, source, out=out, data=data, config=config)

    run(tmp_path / "warm")
    steps = _steps(lambda: run(tmp_path / "full"))
    full = xr.open_zarr(tmp_path / "full" / "cka.zarr").load()
    assert {"store row a", "store commit", "cka.zarr written"} <= set(steps)
    for k, step in enumerate(steps, start=1):
        out = tmp_path / f"k{k}"
        with pytest.raises(_io.SimulatedCrash), _io.inject_faults(_crash_at(k)):
            run(out)
        again = run(out)
        xr.testing.assert_allclose(again.dataset, full, rtol=0, atol=1e-6)
        assert xr.open_zarr(out / "cka.zarr").load().identical(again.dataset), step
        assert not _leftovers(out), (step, _leftovers(out))
