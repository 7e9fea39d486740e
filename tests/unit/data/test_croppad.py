"""crop_or_pad: real mask, Eq. 4, centring, and exact inversion through to_source."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attndilute.data import Volume, crop_or_pad, padding_fraction, to_source


def _volume(shape, label_at=None):
    rng = np.random.default_rng(0)
    label = None
    if label_at is not None:
        label = np.zeros(shape, np.uint8)
        label[tuple(slice(c - 1, c + 2) for c in label_at)] = 1
    affine = np.eye(4)
    affine[:3, 3] = [3.0, -2.0, 5.0]
    return Volume(
        name="v", image=rng.random(shape).astype(np.float32) + 0.1, label=label, real=np.ones(shape, bool),
        spacing=(1.0, 1.0, 1.0), extent=float(shape[2]), padding_fraction=0.0, affine=affine,
        source_affine=affine, source_shape=shape, resampled_affine=affine, resampled_shape=shape,
    )  # fmt: skip


sizes = st.integers(3, 24)


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(sizes, sizes, sizes), crop=st.tuples(sizes, sizes, sizes), end=st.booleans())
def test_real_mask_and_eq4(shape, crop, end):
    vol = _volume(shape)
    out = crop_or_pad(vol, crop, pad_mode="end" if end else "symmetric")
    assert out.shape == crop
    assert out.real.sum() == np.prod([min(n, c) for n, c in zip(shape, crop, strict=True)])
    assert np.all(out.image[~out.real] == 0) and np.all(out.image[out.real] > 0)  # image is > 0 everywhere
    assert out.padding_fraction == pytest.approx(max(1 - shape[2] / crop[2], 0.0))  # Eq. 4
    assert out.extent == shape[2]
    # world positions are kept: the new affine maps each kept voxel to the same place
    idx = np.argwhere(out.real)[0]
    src = np.linalg.solve(vol.affine, out.affine @ np.r_[idx, 1.0])[:3]
    assert out.image[tuple(idx)] == vol.image[tuple(np.rint(src).astype(int))]


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(sizes, sizes, sizes),
    crop1=st.tuples(sizes, sizes, sizes),
    crop2=st.tuples(sizes, sizes, sizes),
)
def test_to_source_inverts_nested_crops(shape, crop1, crop2):
    vol = _volume(shape)
    twice = crop_or_pad(crop_or_pad(vol, crop1), crop2, pad_mode="end")
    back = to_source(twice.image, twice, mode="nearest")
    kept = to_source(twice.real.astype(np.uint8), twice).astype(bool)
    assert kept.sum() == twice.real.sum()
    assert np.array_equal(back[kept], vol.image[kept])
    assert np.all(back[~kept] == 0)


def test_crop_centres_on_label_and_symmetric_padding():
    vol = _volume((40, 30, 10), label_at=(30, 5, 5))
    out = crop_or_pad(vol, (16, 16, 16))
    centroid = np.argwhere(out.label).mean(axis=0)
    assert centroid[0] == pytest.approx(8, abs=0.5)  # centred on the label along X
    assert centroid[1] == pytest.approx(5)  # clamped at the volume's edge along Y
    assert out.real[:, :, :3].sum() == 0 and out.real[:, :, 3:13].all() and not out.real[:, :, 13:].any()
    end = crop_or_pad(vol, (16, 16, 16), pad_mode="end")
    assert end.real[:, :, :10].all() and not end.real[:, :, 10:].any()
    assert out.padding_fraction == pytest.approx(padding_fraction(10, 16)) == pytest.approx(0.375)


def test_bad_arguments():
    vol = _volume((8, 8, 8))
    with pytest.raises(ValueError, match="pad_mode"):
        crop_or_pad(vol, (4, 4, 4), pad_mode="reflect")
    with pytest.raises(ValueError, match="three positive"):
        crop_or_pad(vol, (4, 4))
