"""``attndilute adi`` end to end on a small phantom: outputs, resume, errors (DESIGN §4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from attndilute import models
from attndilute.instrument.reduce import SUMS_VERSION
from attndilute.study.adi import PARTS, run_adi


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("adi")
    os.environ.setdefault("ATTNDILUTE_CACHE", str(root / "cache"))
    from attndilute.data import write_phantom

    data = root / "data"
    write_phantom(data, n=5, seed=3, profile="small")
    ckpt = root / "tiny.safetensors"
    import torch

    torch.manual_seed(0)
    model = models.build("smit-tiny", crop=(64, 64, 64), spacing=(2.0, 2.0, 2.0))
    models.save(model, ckpt)
    return data, ckpt


def test_adi_command_writes_every_output(cli, cohort, tmp_path):
    data, ckpt = cohort
    out = tmp_path / "o"
    code, stdout, err = cli("adi", "--model", ckpt, "--data", data, "--out", out, "--batch-size", "2")
    assert code == 0, err
    assert "Spearman" in stdout and "S3" in stdout
    # smit-tiny's window 4 divides every grid of a 64^3 crop: no layout padding anywhere
    assert "no stage has layout padding" in stdout
    for name in ("adi.zarr", "adi_stages.csv", "adi.png", "adi.html"):
        assert (out / name).exists(), name
    assert not (out / PARTS).exists()
    ds = xr.open_zarr(out / "adi.zarr").load()
    assert ds.sizes["scan"] == 5 and set(ds.dims) >= {"scan", "layer", "head"}
    assert ds.attrs["crop"] == [64, 64, 64]  # the checkpoint's crop
    stages = pd.read_csv(out / "adi_stages.csv")
    assert list(stages.columns) == [
        "scan",
        "stage",
        "adi",
        "adi_input_pad",
        "adi_layout_pad",
        "padding_fraction",
    ]
    assert len(stages) == 5 * 4
    np.testing.assert_allclose(stages["adi"], stages["adi_input_pad"] + stages["adi_layout_pad"], atol=1e-12)
    # padding fraction is Eq. 4 from each case's axial extent, and it drives stage-0 ADI
    s0 = stages[stages.stage == 0]
    assert (s0.loc[s0.padding_fraction == 0, "adi"] == 0).all()
    assert (s0.loc[s0.padding_fraction > 0.1, "adi"] > 0).all()
    assert "<html" in (out / "adi.html").read_text()[:500].lower()


def test_interrupted_run_resumes_to_the_same_dataset(tiny_cohort, tmp_path, monkeypatch):
    data, ckpt = tiny_cohort
    full = run_adi(str(ckpt), out=tmp_path / "full", data=data, batch_size=2)

    class Stop(Exception):
        pass

    def stop_after_first(done, total):
        if done >= 2:
            raise Stop

    with pytest.raises(Stop):
        run_adi(str(ckpt), out=tmp_path / "cut", data=data, batch_size=2, progress=stop_after_first)
    assert (tmp_path / "cut" / PARTS).exists() and not (tmp_path / "cut" / "adi.zarr").exists()
    resumed = run_adi(str(ckpt), out=tmp_path / "cut", data=data, batch_size=2)
    assert resumed.resumed == 2
    xr.testing.assert_allclose(resumed.dataset.drop_attrs(), full.dataset.drop_attrs())
    # a partial store of another run (here: other heads) is never reused
    with pytest.raises(Stop):
        run_adi(str(ckpt), out=tmp_path / "mixed", data=data, batch_size=2, progress=stop_after_first)
    other = run_adi(str(ckpt), out=tmp_path / "mixed", data=data, batch_size=2, heads="mean-attention")
    assert other.resumed == 0 and other.dataset.sizes["head"] == 1
    # nor parts whose sums an earlier version of the reduction computed
    with pytest.raises(Stop):
        run_adi(str(ckpt), out=tmp_path / "older", data=data, batch_size=2, progress=stop_after_first)
    monkeypatch.setattr("attndilute.study.adi.SUMS_VERSION", SUMS_VERSION + 1)
    assert run_adi(str(ckpt), out=tmp_path / "older", data=data, batch_size=2).resumed == 0


def test_adi_errors_are_one_line(cli, cohort, tmp_path):
    data, ckpt = cohort
    code, _, err = cli(
        "adi", "--model", tmp_path / "missing.safetensors", "--data", data, "--out", tmp_path / "x"
    )
    assert code == 2 and "not found" in err and "Traceback" not in err
    code, _, err = cli(
        "adi", "--model", ckpt, "--data", data, "--out", tmp_path / "x", "--crop", "64", "64", "40"
    )
    assert code == 2 and "40" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("adi", "--model", ckpt, "--data", data, "--out", tmp_path / "x", "--heads", "max")
    assert code == 2 and "heads" in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = cli("adi", "--model", bad, "--data", data, "--out", tmp_path / "x")
    assert code == 2 and "bad.pt" in err
    assert not (tmp_path / "x" / "adi.zarr").exists()


def test_windows_mean_on_the_command_line(cli, tiny_cohort, tmp_path):
    data, ckpt = tiny_cohort
    out = tmp_path / "mean"
    code, _, err = cli("adi", "--model", ckpt, "--data", data, "--out", out, "--windows", "mean")
    assert code == 0, err
    ds = xr.open_zarr(out / "adi.zarr")
    assert ds.attrs["windows"] == "mean"
    np.testing.assert_allclose(ds["adi"].values, ds["adi_window_mean"].values, equal_nan=True)
    assert "Eq. 4" in ds.attrs["padding_fraction_definition"]
    code, _, err = cli("adi", "--model", ckpt, "--data", data, "--out", tmp_path / "x", "--windows", "max")
    assert code == 2 and "--windows" in err


def test_adi_on_a_plain_monai_state_dict_says_what_it_resolved(cli, cohort, tmp_path):
    """The README's first step: a MONAI SwinUNETR state_dict, no flags but --crop; the command
    prints family, crop, spacing and device, and warns that the spacing is a default."""
    import torch
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(0)
    weights = tmp_path / "my_swinunetr.pt"
    torch.save(SwinUNETR(in_channels=1, out_channels=2, feature_size=12).state_dict(), weights)
    data, _ = cohort
    code, stdout, err = cli("adi", "--model", weights, "--data", data, "--out", tmp_path / "o",
                            "--crop", "64", "32", "32", "--device", "cpu")  # about the smallest crop it takes
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert "(swin_unetr)" in first and "crop 64x32x32" in first and "spacing 1x1x1 mm" in first
    assert "device cpu" in first and "5 scans" in first
    assert "warning: the weights record no training spacing" in stdout
    assert "now spelled" not in err  # the family identifier is not an old spelling
    assert (tmp_path / "o" / "adi.zarr").is_dir()
