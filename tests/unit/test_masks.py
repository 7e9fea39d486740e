"""attndilute.masks against MONAI's own window functions and brute force (DESIGN §2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attndilute import masks


def test_padding_fraction_eq4():
    assert masks.padding_fraction(64, 128) == 0.5
    assert masks.padding_fraction(128, 128) == 0.0
    assert masks.padding_fraction(200, 128) == 0.0
    assert masks.padding_fraction(96, 128) == pytest.approx(0.25)
    for bad in [(0, 128), (10, 0), (float("nan"), 64), (-3, 64)]:
        with pytest.raises(ValueError):
            masks.padding_fraction(*bad)


def _naive_pool(src: torch.Tensor, k: tuple[int, int, int]) -> torch.Tensor:
    """Loop over output tokens; a token is real if any voxel is, input pad if any is, else layout."""
    b, x, y, z = src.shape
    out_shape = [math.ceil(s / kk) for s, kk in zip((x, y, z), k, strict=True)]
    out = torch.full((b, *out_shape), masks.LAYOUT_PAD, dtype=torch.uint8)
    for n in range(b):
        for i in range(out_shape[0]):
            for j in range(out_shape[1]):
                for m in range(out_shape[2]):
                    block = src[
                        n, i * k[0] : (i + 1) * k[0], j * k[1] : (j + 1) * k[1], m * k[2] : (m + 1) * k[2]
                    ]
                    full = math.prod(k) == block.numel()
                    if (block == masks.REAL).any():
                        out[n, i, j, m] = masks.REAL
                    elif (block == masks.INPUT_PAD).any():
                        out[n, i, j, m] = masks.INPUT_PAD
                    elif not full or (block == masks.LAYOUT_PAD).all():
                        out[n, i, j, m] = masks.LAYOUT_PAD
    return out


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    kernel=st.sampled_from([(2, 2, 2), (1, 2, 3), (4, 4, 4), (3, 1, 2)]),
    seed=st.integers(0, 10_000),
)
def test_pool_sources_matches_naive_loops(shape, kernel, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, 3, (2, *shape), generator=g).to(torch.uint8)
    torch.testing.assert_close(masks.pool_sources(src, kernel), _naive_pool(src, kernel))


def test_stage_sources_end_pads_odd_sizes_with_layout_padding():
    real = torch.zeros(1, 6, 6, 10, dtype=torch.bool)
    real[..., 2:6] = True
    stages = masks.stage_sources(real, 2, 4)
    assert [tuple(s.shape[1:]) for s in stages] == [(3, 3, 5), (2, 2, 3), (1, 1, 2), (1, 1, 1)]
    assert stages[0][0, 0, 0].tolist() == [1, 0, 0, 1, 1]  # Z slices 2..5 real
    s1 = stages[1][0]  # merging 3 -> 2 end-pads: the second X/Y token mixes input pad and layout pad
    assert s1[1, 1].tolist() == [0, 0, 1]
    assert s1[:, :, 2].eq(masks.INPUT_PAD).all()  # Z token 2 = stage-0 token 4 (input pad) + layout pad
    only_layout = masks.pool_sources(torch.full((1, 1, 1, 1), masks.LAYOUT_PAD, dtype=torch.uint8), 2)
    assert only_layout.item() == masks.LAYOUT_PAD
    bools = masks.stage_token_masks(real, 2, 2)
    assert bools[0].dtype == torch.bool and bools[0].sum() == 3 * 3 * 2


def test_stage_sources_equal_max_pool_of_the_real_mask_when_divisible():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(2, 32, 32, 16, generator=g) > 0.97
    for i, s in enumerate(masks.stage_sources(real, 2, 4)):
        f = 2 * 2**i
        expect = F.max_pool3d(real[:, None].float(), f)[:, 0].bool()
        assert torch.equal(s == masks.REAL, expect)
        assert not (s == masks.LAYOUT_PAD).any()


def _monai_reference(tokens: torch.Tensor, window, shift):
    from monai.networks.nets.swin_unetr import compute_mask, get_window_size, window_partition

    b, d, h, w = tokens.shape
    ws, ss = get_window_size((d, h, w), window, shift)
    pads = [(ws[i] - s % ws[i]) % ws[i] for i, s in enumerate((d, h, w))]
    x = F.pad(tokens[..., None].double(), (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]), value=masks.LAYOUT_PAD)
    dims = list(x.shape[1:4])
    if any(ss):
        x = torch.roll(x, shifts=tuple(-s for s in ss), dims=(1, 2, 3))
    windows = window_partition(x, ws)[..., 0].to(torch.uint8)
    mask = compute_mask(dims, ws, ss, "cpu") if any(ss) else None
    return windows, mask, ws, ss


@pytest.mark.parametrize(
    "grid,window,shift",
    [
        ((32, 32, 16), (7, 7, 7), (3, 3, 3)),  # 64x64x32 input, window 7: pads 32 -> 35, 16 -> 21
        ((32, 32, 16), (7, 7, 7), (0, 0, 0)),
        ((16, 16, 8), (7, 7, 7), (3, 3, 3)),
        ((4, 4, 2), (7, 7, 7), (3, 3, 3)),  # shrinks everywhere: one window, no shift
        ((8, 8, 4), (4, 4, 4), (2, 2, 2)),  # Z shrinks to 4, its shift to 0
        ((12, 10, 9), (4, 3, 2), (2, 1, 1)),  # anisotropic window
        ((48, 48, 32), (7, 7, 7), (3, 3, 3)),  # 96x96x64 input
    ],
)
def test_window_layout_reproduces_monai(grid, window, shift):
    g = torch.Generator().manual_seed(sum(grid))
    real = torch.rand(3, *grid, generator=g) > 0.5
    src = masks.as_sources(real)
    src[0, -1] = masks.LAYOUT_PAD  # layout padding already present from an odd merge
    layout = masks.window_layout(src, window, shift)
    windows, region, ws, ss = _monai_reference(src, window, shift)
    assert layout.window == tuple(ws) and layout.shift == tuple(ss)
    assert torch.equal(layout.sources, windows)
    assert layout.sources.shape[0] == 3 * layout.num_windows
    assert layout.padded == tuple(math.ceil(s / w) * w for s, w in zip(grid, ws, strict=True))
    if region is None:
        assert layout.region_mask is None
    else:
        torch.testing.assert_close(layout.region_mask, region.float())
    assert torch.equal(layout.real, windows == masks.REAL)


def test_window_layout_accepts_bool_masks_and_checks_shape():
    real = torch.ones(1, 7, 7, 7, dtype=torch.bool)
    layout = masks.window_layout(real, 7)
    assert layout.num_windows == 1 and layout.real.all()
    with pytest.raises(ValueError, match="1-3 spatial axes"):
        masks.window_layout(torch.ones(1, 7, 7, 7, 7, dtype=torch.bool), 7)
    with pytest.raises(TypeError):
        masks.as_sources(torch.ones(2, 2, dtype=torch.float32))
