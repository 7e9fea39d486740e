"""Training data pipeline: crops carry the real mask, pos/neg sampling, seeded determinism; inference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from attndilute.data import Volume
from attndilute.errors import AttnDiluteError
from attndilute.training.inference import sliding_window_probs
from attndilute.training.pipeline import CropDataset, pad_to_crop
from attndilute.training.train_presets import resolve_config


def _volume(shape=(40, 36, 12), seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    image = rng.random(shape, dtype=np.float32) + 0.1  # > 0 everywhere: zeros below mean padding
    label = np.zeros(shape, np.uint8)
    label[18:24, 15:20, 4:8] = 1
    eye = np.eye(4)
    return Volume("v", image, label, np.ones(shape, bool), (2.0, 2.0, 2.0), float(shape[2]), 0.0, eye, eye,
                  shape, eye, shape)  # fmt: skip


def test_pad_to_crop_records_padding():
    vol = pad_to_crop(_volume(), (32, 32, 16))
    assert vol.shape == (40, 36, 16)  # only Z is short: padded symmetrically (2 + 2)
    assert not vol.real[:, :, :2].any() and not vol.real[:, :, -2:].any() and vol.real[:, :, 2:-2].all()
    assert (vol.image[~vol.real] == 0).all()
    assert vol.padding_fraction == pytest.approx(1 - 12 / 16)


def test_crops_carry_real_mask_and_are_seeded():
    config = resolve_config(
        "tiny",
        crop=(32, 32, 16),
        pos=1.0,
        neg=0.0,
        samples_per_case=3,
        crops_per_epoch=0,
        tumor_aware=True,
        ta_prob=1.0,
    )
    vol = pad_to_crop(_volume(), config.crop)
    ds = CropDataset([vol], config, seed=5)
    assert len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (1, 32, 32, 16) and item["label"].shape == (1, 32, 32, 16)
    assert item["real"].shape == (32, 32, 16) and item["real"].dtype == torch.bool
    assert item["label"].dtype == torch.int64 and item["label"].sum() > 0  # pos only: tumour in every crop
    assert (item["image"][0][~item["real"]] == 0).all()  # padding stays zero (TA never touches it)
    assert (item["image"][0][item["real"]] != 0).all()
    assert not item["real"].all()  # the crop spans Z, so it contains the padded slices
    again = CropDataset([vol], config, seed=5)
    for e in (0, 3):
        ds.set_epoch(e)
        again.set_epoch(e)
        assert all(ds[i]["image"].equal(again[i]["image"]) for i in range(3))
    ds.set_epoch(1)
    first = [ds[i]["image"] for i in range(3)]
    ds.set_epoch(2)
    assert not all(x.equal(ds[i]["image"]) for i, x in enumerate(first))
    other = CropDataset([vol], config, seed=6)  # another run seed draws other crops
    other.set_epoch(1)
    assert not all(x.equal(other[i]["image"]) for i, x in enumerate(first))


def test_negative_crops_avoid_tumour_mostly():
    config = resolve_config(
        "tiny",
        crop=(32, 32, 16),
        pos=0.0,
        neg=1.0,
        samples_per_case=8,
        crops_per_epoch=0,
        flip_prob=0.0,
        rot90_prob=0.0,
    )
    shape = (96, 96, 16)
    vol = _volume(shape)
    ds = CropDataset([pad_to_crop(vol, config.crop)], config, seed=0)
    with_tumour = sum(int(ds[i]["label"].sum() > 0) for i in range(8))
    assert with_tumour < 8


def _tumour_offsets(context: float) -> set[tuple[int, ...]]:
    config = resolve_config(
        "tiny", crop=(32, 32, 16), pos=1.0, neg=0.0, samples_per_case=12, crops_per_epoch=0,
        flip_prob=0.0, rot90_prob=0.0, context=context,
    )  # fmt: skip
    ds = CropDataset([pad_to_crop(_volume((96, 96, 16)), config.crop)], config, seed=0)
    offsets = set()
    for i in range(12):
        item = ds[i]
        assert item["image"].shape == (1, 32, 32, 16)
        assert item["label"].sum() > 0  # context <= 1.5: the sampled tumour voxel stays in the crop
        lo = torch.nonzero(item["label"][0]).min(0).values  # tumour corner inside the crop
        offsets.add(tuple(int(v) for v in lo[:2]))
    return offsets


def test_context_moves_the_tumour_off_the_crop_centre():
    # context 1: MONAI centres every positive crop on a tumour voxel, so the 6x5 tumour sits
    # within a few voxels of the centre; context 1.5: a random 32-crop of a 48-box moves it by +-8
    centred = _tumour_offsets(1.0)
    assert all(10 <= x <= 16 and 11 <= y <= 16 for x, y in centred)
    spread = _tumour_offsets(1.5)
    assert max(x for x, _ in spread) - min(x for x, _ in spread) > 8
    assert min(min(o) for o in spread) < 10 or max(max(o) for o in spread) > 16


def test_flip_axes_flips_only_those_axes():
    common = dict(crop=(32, 32, 16), pos=1.0, neg=0.0, samples_per_case=2, crops_per_epoch=0, rot90_prob=0.0)
    plain = CropDataset(
        [pad_to_crop(_volume((96, 96, 16)), (32, 32, 16))], resolve_config("tiny", flip_axes=(), **common)
    )
    mirrored = CropDataset(
        [pad_to_crop(_volume((96, 96, 16)), (32, 32, 16))],
        resolve_config("tiny", flip_axes="0", flip_prob=1.0, **common),
    )
    for i in range(2):  # the crop is drawn first, so both see the same box; then X is mirrored
        assert mirrored[i]["image"].equal(plain[i]["image"].flip(1))
        assert mirrored[i]["label"].equal(plain[i]["label"].flip(1))


def test_global_intensity_scale_multiplies_real_voxels_only():
    common = dict(crop=(32, 32, 16), pos=1.0, neg=0.0, samples_per_case=4, crops_per_epoch=0, rot90_prob=0.0)
    vol = pad_to_crop(_volume(), (32, 32, 16))  # Z padded: every crop has padding
    plain = CropDataset([vol], resolve_config("tiny", **common), seed=2)
    fixed = resolve_config("tiny", intensity_scale=(1.7, 1.7), intensity_prob=1.0, **common)
    scaled = CropDataset([vol], fixed, seed=2)
    drawn = resolve_config("tiny", intensity_scale=(0.5, 2.0), intensity_prob=0.5, **common)
    half = CropDataset([vol], drawn, seed=2)
    factors = []
    for i in range(4):  # the scaling comes last, so the crops and flips are the same draws
        a, b, c = plain[i], scaled[i], half[i]
        assert b["label"].equal(a["label"]) and b["real"].equal(a["real"])
        assert torch.allclose(b["image"], 1.7 * a["image"])
        assert (b["image"][0][~b["real"]] == 0).all()  # zero padding stays zero
        factors.append(float(c["image"].sum() / a["image"].sum()))
    assert all(0.5 - 1e-4 <= f <= 2.0 + 1e-4 for f in factors) and len({round(f, 4) for f in factors}) > 1
    with pytest.raises(Exception, match="intensity_scale"):
        resolve_config("tiny", intensity_scale=(1.2, 0.8))


def test_small_rotations_turn_about_the_named_axis_and_mark_what_they_bring_in():
    shape = (48, 48, 48)
    ramp = np.broadcast_to((np.arange(shape[0], dtype=np.float32) / 10 + 0.5)[:, None, None], shape)
    vol = dataclasses.replace(_volume(shape), image=ramp.copy())  # the image varies along X only
    common = dict(crop=(32, 32, 32), pos=1.0, neg=0.0, samples_per_case=3, crops_per_epoch=0, context=1.0,
                  flip_axes=(), rot90_prob=0.0)  # fmt: skip
    plain = CropDataset([vol], resolve_config("tiny", **common), seed=4)
    turned = {
        axis: CropDataset([vol], resolve_config("tiny", rotate_deg=deg, rotate_prob=1.0, **common), seed=4)
        for axis, deg in (("x", (30, 0, 0)), ("z", (0, 0, 30)))
    }
    centre = (slice(None), slice(12, 20), slice(12, 20), slice(12, 20))
    for i in range(3):  # the pos/neg box is drawn first, so all three see the same box
        a, x, z = plain[i], turned["x"][i], turned["z"][i]
        assert torch.allclose(x["image"][centre], a["image"][centre], atol=1e-5)  # X-lines stay put
        assert not torch.allclose(z["image"][centre], a["image"][centre], atol=1e-2)  # about Z they turn
        assert not x["label"].equal(a["label"])  # the tumour box turns with the image
        assert not x["real"].all() and (x["image"][0][~x["real"]] == 0).all()  # corners brought in: padding
    with pytest.raises(Exception, match="rotate_deg"):
        resolve_config("tiny", rotate_deg=(200, 0, 0))


def test_context_below_one_is_rejected():
    from attndilute.errors import AttnDiluteError

    with pytest.raises(AttnDiluteError, match="context"):
        resolve_config("tiny", context=0.5)


class _Pointwise(torch.nn.Module):
    """Logits (0, 4x - 2 + real): a voxel-wise model, so windows and flips must not change it."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x, real=None):
        bump = torch.zeros_like(x) if real is None else real[:, None].float()
        return torch.cat([torch.zeros_like(x), self.w * (4 * x - 2) + bump], dim=1)


@pytest.mark.parametrize("tta", [False, True])
def test_sliding_window_matches_whole_volume(tta):
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((1, 1, 50, 40, 20), dtype=np.float32))
    real = torch.from_numpy(rng.random((1, 50, 40, 20)) > 0.3)
    probs = sliding_window_probs(
        _Pointwise(), image, real, (32, 32, 16), overlap=0.5, tta=tta, sw_batch_size=3
    )
    expected = torch.softmax(_Pointwise()(image, real=real), dim=1)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=1e-5)


class _BorderSeer(torch.nn.Module):
    """Calls every voxel within 4 of a window's X faces tumour, the rest background."""

    def __init__(self, face: float = 4.0, inside: float = -4.0):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # gives the inferer a device
        self.face, self.inside = face, inside

    def forward(self, x, real=None):
        n, _, sx, sy, sz = x.shape
        local = torch.arange(sx, dtype=torch.float32)
        border = ((local < 4) | (local >= sx - 4)).float()[:, None, None].expand(sx, sy, sz)
        tumour = (self.inside + (self.face - self.inside) * border)[None, None].expand(n, 1, sx, sy, sz)
        return torch.cat([torch.zeros_like(tumour), tumour], dim=1)


def test_gaussian_blend_trusts_the_window_that_sees_a_voxel_in_its_centre():
    image = torch.zeros(1, 1, 48, 16, 16)
    real = torch.ones(1, 48, 16, 16, dtype=torch.bool)
    # windows along X at 0 and 16; voxel x = 30 sits at the face of the first (local 30) and near
    # the centre of the second (local 14)
    common = dict(overlap=0.5, tta=False, sw_batch_size=2)
    flat = sliding_window_probs(_BorderSeer(), image, real, (32, 16, 16), blend="constant", **common)
    default = sliding_window_probs(_BorderSeer(), image, real, (32, 16, 16), **common)
    p_border, p_centre = float(torch.sigmoid(torch.tensor(4.0))), float(torch.sigmoid(torch.tensor(-4.0)))
    torch.testing.assert_close(flat[0, 1, 30], torch.full((16, 16), (p_border + p_centre) / 2))
    # the centred window wins (p_centre = 0.018); away from the Y and Z faces, where MONAI clamps
    # both windows' tiny Gaussian weights to the same floor
    assert float(default[0, 1, 30, 4:12, 4:12].max()) < 0.05
    torch.testing.assert_close(default[0, 1, 0], torch.full((16, 16), p_border))  # one window covers x = 0
    with pytest.raises(AttnDiluteError, match="blend"):
        sliding_window_probs(_BorderSeer(), image, real, (32, 16, 16), blend="mean", **common)


@pytest.mark.parametrize("blend", ["constant", "gaussian"])
def test_validation_blends_as_configured(blend):
    """Validation Dice is the Dice of a sliding window blended as ``config.blend`` says."""
    from attndilute.metrics import dice
    from attndilute.training.distributed import Dist
    from attndilute.training.loop import _validate

    vol = pad_to_crop(_volume(shape=(48, 16, 16)), (32, 16, 16))
    vol.label[:] = 0
    vol.label[28:32] = 1  # where one window has its face and the other its centre
    # averaged, face (p 0.998) and centre (p 0.12) call x = 28-31 tumour; blended with a Gaussian, not
    seer = _BorderSeer(face=6.0, inside=-2.0)
    config = dataclasses.replace(resolve_config("tiny"), crop=(32, 16, 16), blend=blend, tta=False)
    score = _validate(seer, [vol], config, Dist())
    image, real = torch.from_numpy(vol.image)[None, None], torch.from_numpy(vol.real)[None]
    scores = {}
    for b in ("constant", "gaussian"):
        probs = sliding_window_probs(seer, image, real, (32, 16, 16), tta=False, blend=b)  # (1, 2, X, Y, Z)
        scores[b] = dice(probs[0].argmax(0).numpy() == 1, vol.label > 0)
    assert scores["constant"] > 0.3 and scores["gaussian"] < scores["constant"] - 0.2
    assert score == pytest.approx(scores[blend])
