"""``attndilute cka`` end to end on a 5-case phantom with tiny models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from attndilute.cka import MinibatchCKA
from attndilute.store import minibatches

CROP = ("64", "32", "32")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 5-case phantom, a private cache, two smit-tiny checkpoints (12 and 14 layers), a swin-tiny one."""
    from attndilute.data import write_phantom
    from attndilute.models import build, save

    root = tmp_path_factory.mktemp("cka")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATTNDILUTE_CACHE", str(root / "cache"))
        write_phantom(root / "data", n=5, seed=3)
        torch.manual_seed(7)
        save(build("smit-tiny"), root / "a.safetensors")
        torch.manual_seed(8)
        save(build("smit-tiny", depths=(2, 2, 4, 2)), root / "deep.safetensors")
        save(build("swin-tiny", window_size=4), root / "swin.safetensors")  # window 4: 20x faster on CPU
        yield root


@pytest.fixture
def env(setup, monkeypatch):
    monkeypatch.setenv("ATTNDILUTE_CACHE", str(setup / "cache"))
    return setup


def _read_back(store_path, layers):
    import zarr

    group = zarr.open_group(store_path, mode="r", zarr_format=3)
    return [np.asarray(group[name][:]) for name in layers]


def test_cka_equals_minibatch_cka_on_activations_read_back_from_the_stores(cli, env, tmp_path):
    import xarray as xr

    out = tmp_path / "o"
    code, stdout, err = cli("cka", env / "a.safetensors", "init:A", "--data", env / "data", "--out", out,
                            "--batch-size", "4", "--epochs", "2", "--seed", "3", "--crop", *CROP)
    assert code == 0, err
    assert "A new, B new" in stdout
    for name in ("cka.zarr", "cka.png", "cka_diagonal.png", "cka.html"):
        assert (out / name).exists()
    ds = xr.open_zarr(out / "cka.zarr", zarr_format=3, consolidated=False)
    assert ds["cka"].dims == ("layer_a", "layer_b") and ds["cka"].shape == (12, 12)
    assert list(ds["label_a"].values[:3]) == ["S0.B0", "S0.B1", "S0"]
    assert list(ds["stage_b"].values) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert ds.attrs["n_scans"] == 5 and ds.attrs["model_b"] == "init:A"

    stores = sorted((out / "activations").glob("*.zarr"))
    assert len(stores) == 2
    a_store = next(s for s in stores if s.name.startswith("a-"))
    b_store = next(s for s in stores if s.name.startswith("init-"))
    layers_a, layers_b = list(ds["layer_a"].values), list(ds["layer_b"].values)
    acts_a, acts_b = _read_back(a_store, layers_a), _read_back(b_store, layers_b)
    metric = MinibatchCKA()
    for rows in minibatches(5, 4, 2, 3):
        metric.update([torch.from_numpy(x[rows]) for x in acts_a],
                      [torch.from_numpy(y[rows]) for y in acts_b])
    np.testing.assert_allclose(ds["cka"].values, metric.compute().numpy(), rtol=0, atol=1e-12)
    assert np.all(np.diag(ds["cka"].values) < 1.0)  # trained-like A vs its random initialisation

    assert (out / "cka.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "cka.html").read_text()
    assert "plotly" in html and 'src="https://cdn' not in html  # plotly.js inlined: opens offline

    code, stdout, _ = cli("cka", env / "a.safetensors", "init:A", "--data", env / "data", "--out", out,
                          "--batch-size", "4", "--epochs", "2", "--seed", "3", "--crop", *CROP)
    assert code == 0 and "A complete, B complete" in stdout
    again = xr.open_zarr(out / "cka.zarr", zarr_format=3, consolidated=False)
    np.testing.assert_array_equal(again["cka"].values, ds["cka"].values)

    code, stdout, err = cli("cka", env / "a.safetensors", "init:A", "--data", env / "data", "--out", out,
                            "--batch-size", "4", "--seed", "3", "--crop", *CROP, "--pool", "4")
    assert code == 0 and "A rebuilt" in stdout
    assert "captured with a different pool; rebuilt" in err


def test_same_checkpoint_twice_gives_an_exact_unit_diagonal_from_one_store(cli, env, tmp_path):
    import xarray as xr

    out = tmp_path / "o"
    a = env / "a.safetensors"
    code, stdout, err = cli("cka", a, a, "--data", env / "data", "--out", out, "--batch-size", "4",
                            "--crop", *CROP)
    assert code == 0, err
    assert "(shared)" in stdout and len(list((out / "activations").glob("*.zarr"))) == 1
    values = xr.open_zarr(out / "cka.zarr", zarr_format=3, consolidated=False)["cka"].values
    assert np.array_equal(np.diag(values), np.ones(12))
    np.testing.assert_array_equal(values, values.T)


def test_different_architectures_give_a_rectangular_matrix(cli, env, tmp_path):
    import xarray as xr

    out = tmp_path / "o"
    code, _, err = cli("cka", env / "deep.safetensors", env / "swin.safetensors", "--data", env / "data",
                       "--out", out, "--batch-size", "4", "--crop", *CROP)
    assert code == 0, err
    ds = xr.open_zarr(out / "cka.zarr", zarr_format=3, consolidated=False)
    assert ds["cka"].shape == (14, 12)
    assert ds["layer_b"].values[0] == "swinViT.layers1.0.blocks.0" and ds["label_a"].values[9] == "S2.B3"
    assert np.all(np.isfinite(ds["cka"].values))

    from attndilute.store.cka_figures import diagonal_pairs

    labels = [label for _, _, label in diagonal_pairs(ds)]
    assert labels[:3] == ["S0.B0", "S0.B1", "S0"] and "S2.B3" not in labels and len(labels) == 12


def test_glob_layers_select_modules(cli, env, tmp_path):
    import xarray as xr

    out = tmp_path / "o"
    code, _, err = cli("cka", env / "a.safetensors", "random:smit-tiny", "--data", env / "data", "--out", out,
                       "--batch-size", "4", "--crop", *CROP, "--layers", "transformer.layers.[01]")
    assert code == 0, err
    ds = xr.open_zarr(out / "cka.zarr", zarr_format=3, consolidated=False)
    assert list(ds["layer_a"].values) == ["transformer.layers.0", "transformer.layers.1"]
    assert list(ds["label_a"].values) == ["S0", "S1"]


def test_three_scans_are_refused_with_one_line(cli, env, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted((env / "data").glob("images*/*.nii.gz"))[:3]:
        shutil.copy(image, flat / image.name.replace("_0000.nii.gz", "_image.nii.gz"))
    code, _, err = cli("cka", env / "a.safetensors", "init:A", "--data", flat, "--out", tmp_path / "o")
    assert code == 2 and "more than 3 scans" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "cka.zarr").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("random:no-such-preset", "init:A"), "unknown model"),
    (("init:A", "random:smit-tiny"), "init:A is only valid"),
    (("missing.safetensors", "init:A"), "not found"),
])
def test_bad_models_are_one_line_errors(cli, env, tmp_path, args, message):
    code, _, err = cli("cka", *args, "--data", env / "data", "--out", tmp_path / "o")
    assert code == 2 and message in err


def test_bad_batch_size_and_crop_are_one_line_errors(cli, env, tmp_path):
    args = ("cka", env / "a.safetensors", "init:A", "--data", env / "data", "--out", tmp_path / "o")
    code, _, err = cli(*args, "--batch-size", "3")
    assert code == 2 and "--batch-size 3" in err
    code, _, err = cli(*args, "--crop", "50", "50", "50")
    assert code == 2 and "crop" in err
