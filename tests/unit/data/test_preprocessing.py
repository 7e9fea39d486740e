"""Seed §2.1 preprocessing: geometry against a closed-form world ramp, scaling, cache, inversion."""

from __future__ import annotations

import time

import nibabel as nib
import numpy as np
import pytest

from attndilute.data import Case, load_nifti, preprocess, read_header, resampled_geometry, to_source
from attndilute.data.anatomy import Acquisition


def _oblique_affine(spacing=(1.5, 1.5, 3.6), tilt=10.0):
    """An L-P-S stored, tilted stack like the phantom's (x, y flipped; rotation about x)."""
    return Acquisition(spacing[0], spacing[2], 2, 2, tilt, 3.0, (5.0, -20.0, 7.0)).affine()


def _ramp(world):
    return 0.3 * world[..., 0] - 0.2 * world[..., 1] + 0.5 * world[..., 2]


def _world(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def oblique_case(tmp_path):
    affine = _oblique_affine()
    shape = (40, 36, 14)
    image = _ramp(_world(shape, affine)).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[12:25, 10:22, 4:10] = 1
    return Case(
        "obl",
        _save(tmp_path / "obl_image.nii.gz", image, affine),
        _save(tmp_path / "obl_label.nii.gz", label, affine),
    )


def test_resampled_voxels_match_their_world_coordinates(oblique_case, tmp_path):
    """A linear ramp in world mm must stay the same ramp at each output voxel's world position."""
    vol = preprocess(oblique_case, cache=False)
    assert vol.spacing == (1.0, 1.0, 1.0)
    assert np.allclose(np.sqrt((vol.affine[:3, :3] ** 2).sum(0)), 1.0)
    assert np.all(np.diag(vol.affine)[:3] > 0)  # RAS: axes point right, anterior, superior
    # geometry: inside the volume and below the clip, the output is one affine map of the ramp
    raw = _ramp(_world(vol.shape, vol.affine))
    inner = (slice(3, -3),) * 3
    sel = vol.image[inner] < 0.98
    slope, intercept = np.polyfit(raw[inner][sel], vol.image[inner][sel], 1)
    assert slope > 0
    assert np.abs(slope * raw[inner][sel] + intercept - vol.image[inner][sel]).max() < 1e-4
    # scaling (§2.1): minimum -> 0, 99th percentile -> 1, so about 1% of voxels are clipped at 1
    assert np.mean(vol.image >= 1.0 - 1e-6) == pytest.approx(0.01, abs=0.002)
    assert vol.image.min() >= 0 and vol.image.max() == pytest.approx(1.0)
    # scale_extent: the resampled grid covers the physical extent n * s along each axis
    assert vol.extent == vol.shape[2] == round(14 * 3.6)
    assert resampled_geometry(*read_header(oblique_case.image))[0] == vol.shape
    assert vol.real.all() and vol.padding_fraction == 0.0


def test_label_round_trip_oblique(oblique_case):
    vol = preprocess(oblique_case, cache=False)
    assert set(np.unique(vol.label)) == {0, 1}
    back = to_source(vol.label, vol)
    original, _, _ = load_nifti(oblique_case.label)
    assert back.shape == original.shape and back.dtype == np.uint8
    dice = 2 * (back & original).sum() / (back.sum() + original.sum())
    assert dice > 0.95


def test_round_trip_exact_at_1mm_ras(tmp_path):
    rng = np.random.default_rng(0)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-10, 4, 2]
    label = (rng.random((20, 18, 16)) > 0.7).astype(np.uint8)
    image = rng.random((20, 18, 16)).astype(np.float32)
    case = Case(
        "r",
        _save(tmp_path / "r_image.nii.gz", image, affine),
        _save(tmp_path / "r_label.nii.gz", label, affine),
    )
    vol = preprocess(case, cache=False)
    assert np.array_equal(vol.label, label)
    assert np.array_equal(to_source(vol.label, vol), label)
    assert np.allclose(vol.affine, affine)


def test_cache_reuses_result(oblique_case, tmp_path, monkeypatch):
    import attndilute.data.preprocessing as pp

    cache = tmp_path / "cache"
    first = preprocess(oblique_case, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed despite a cache entry")

    monkeypatch.setattr(pp, "_compute", fail)
    start = time.perf_counter()
    again = preprocess(oblique_case, cache_dir=cache)
    assert time.perf_counter() - start < 1.0
    assert np.array_equal(again.image, first.image) and np.array_equal(again.label, first.label)
    assert np.array_equal(again.affine, first.affine) and again.source_shape == first.source_shape
    # other settings -> another entry (recomputed)
    monkeypatch.undo()
    preprocess(oblique_case, cache_dir=cache, spacing=(2.0, 2.0, 2.0))
    assert len(list(cache.glob("*.npz"))) == 2


def test_default_cache_dir_follows_env(oblique_case, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNDILUTE_CACHE", str(tmp_path / "root"))
    preprocess(oblique_case)
    assert len(list((tmp_path / "root" / "preprocessed").glob("*.npz"))) == 1
