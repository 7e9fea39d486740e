"""TumorAwareIntensityd (Eq. 1): exact values against an independent draw, locality, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attndilute.training.transforms import TumorAwareIntensityd


def _sample(rng: np.random.Generator, shape=(1, 6, 5, 4)):
    image = torch.from_numpy(rng.random(shape, dtype=np.float32))
    label = torch.from_numpy((rng.random(shape) > 0.6).astype(np.float32))
    real = torch.ones(shape)
    real[..., -1] = 0  # last slice is padding
    image[..., -1] = 0
    return {"image": image, "label": label, "real": real}


def test_values_match_an_independent_draw():
    data = _sample(np.random.default_rng(0))
    t = TumorAwareIntensityd("image", prob=1.0, scale=(0.5, 1.5), shift=(-0.2, 0.2))
    t.set_random_state(seed=123)
    out = t(data)
    rs = np.random.RandomState(123)  # MONAI's self.R: RandomState; prob draw, then a, then b
    rs.rand()
    a, b = rs.uniform(0.5, 1.5), rs.uniform(-0.2, 0.2)
    inside = (data["label"] > 0) & (data["real"] > 0)
    expected = torch.where(inside, data["image"] * a + b, data["image"])
    torch.testing.assert_close(out["image"], expected)
    assert out["image"][~inside].equal(data["image"][~inside])  # background and padding untouched
    assert (t.a, t.b) == pytest.approx((a, b))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lo=st.floats(0.1, 1.0), width=st.floats(0.0, 1.0))
def test_only_real_tumour_voxels_change(seed, lo, width):
    data = _sample(np.random.default_rng(seed % 1000))
    t = TumorAwareIntensityd("image", prob=1.0, scale=(lo, lo + width), shift=(-0.3, 0.3))
    t.set_random_state(seed=seed)
    out = t(data)
    outside = (data["label"] == 0) | (data["real"] == 0)
    assert out["image"][outside].equal(data["image"][outside])
    assert lo <= t.a <= lo + width and -0.3 <= t.b <= 0.3
    assert out["label"] is data["label"] and out["real"] is data["real"]


def test_reproducible_and_probability():
    data = _sample(np.random.default_rng(1))
    t = TumorAwareIntensityd("image", prob=0.3)
    t.set_random_state(seed=7)
    first = [t(data)["image"] for _ in range(5)]
    t.set_random_state(seed=7)
    again = [t(data)["image"] for _ in range(5)]
    assert all(x.equal(y) for x, y in zip(first, again, strict=True))
    t.set_random_state(seed=0)
    applied = sum(not t(data)["image"].equal(data["image"]) for _ in range(2000))
    assert 0.3 * 2000 - 4 * np.sqrt(2000 * 0.21) < applied < 0.3 * 2000 + 4 * np.sqrt(2000 * 0.21)
    never = TumorAwareIntensityd("image", prob=0.0)
    assert never(data)["image"].equal(data["image"])


def test_numpy_input_and_bad_ranges():
    data = {k: v.numpy() for k, v in _sample(np.random.default_rng(2)).items()}
    t = TumorAwareIntensityd("image", prob=1.0)
    t.set_random_state(seed=0)
    out = t(data)
    assert isinstance(out["image"], np.ndarray)
    assert not np.array_equal(out["image"], data["image"])
    with pytest.raises(ValueError):
        TumorAwareIntensityd("image", scale=(1.5, 0.5))
