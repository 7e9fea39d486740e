"""measure_adi against a brute-force computation on captured attention maps (seed Eq. 4-7).

The reference is independent of ``attndilute.masks`` and ``attndilute.entropy``: token sources come
from reshape-and-any over the voxel mask, the window layout from MONAI's own ``F.pad``/``roll``/
``window_partition`` as in ``SwinTransformerBlock.forward_part1``, and the entropy as float64
``-xlogy(p, p)`` of every captured attention entry, summed by class indicators of keys and queries.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attndilute import models
from attndilute.instrument import (
    AttentionSite,
    SiteLayout,
    find_sites,
    key_padding_mask,
    measure_adi,
    register_adapter,
)
from attndilute.instrument.dataset import STAGE_COLUMNS, stage_table

REAL, INPUT, LAYOUT = 0, 1, 2


# ------------------------------------------------------------------ reference


def _reference_tokens(real: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, X, Y, Z) bool -> (B, X/f, Y/f, Z/f) sources by reshape + any (inputs divisible by f)."""
    b, x, y, z = real.shape
    blocks = real.reshape(b, x // factor, factor, y // factor, factor, z // factor, factor)
    any_real = blocks.any(6).any(4).any(2)
    return torch.where(any_real, REAL, INPUT)


def _monai_layout(tokens: torch.Tensor, window, shift) -> torch.Tensor:
    """Sources in the order MONAI's block feeds its attention: (B*nW, N)."""
    from monai.networks.nets.swin_unetr import get_window_size, window_partition

    b, d, h, w = tokens.shape
    ws, ss = get_window_size((d, h, w), window, shift)
    x = tokens[..., None].double()
    pads = [(ws[i] - s % ws[i]) % ws[i] for i, s in enumerate((d, h, w))]
    x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]), value=LAYOUT)
    if any(s > 0 for s in ss):
        x = torch.roll(x, shifts=tuple(-s for s in ss), dims=(1, 2, 3))
    return window_partition(x, ws)[..., 0].long()


def _reference_sums(attn: torch.Tensor, sources: torch.Tensor, batch: int, mean_heads: bool):
    """h and mass (B, heads, 3, 3) float64: -p log p and p summed over key, then query, classes."""
    g, heads = attn.shape[:2]
    nw = g // batch
    out_h = torch.zeros(batch, 1 if mean_heads else heads, 3, 3, dtype=torch.float64)
    out_m = torch.zeros_like(out_h)
    for start in range(0, g, 64):
        p = attn[start : start + 64].double()  # (w, heads, N, N)
        if mean_heads:
            p = p.mean(1, keepdim=True)
        plogp = -torch.special.xlogy(p, p)  # 0 where p = 0
        src = sources[start : start + 64]  # (w, N)
        scan = torch.arange(start, start + p.shape[0]) // nw
        w, k, n, _ = p.shape
        hot = F.one_hot(src.long(), 3).double()  # (w, N, 3): class of each token
        for total, values in ((out_h, plogp), (out_m, p)):
            by_key = torch.bmm(values.reshape(w, k * n, n), hot).reshape(w, k, n, 3)  # sum over keys by class
            by_pair = hot.transpose(-1, -2)[:, None] @ by_key  # (w, k, 3, 3): then over queries of a class
            total.index_add_(0, scan, by_pair)
    return out_h, out_m


def brute_force(
    model: nn.Module, x: torch.Tensor, real: torch.Tensor, *, patch: int = 2, mean_heads=False,
    from_stage: int = 0,
):  # fmt: skip
    """Run the model with hooks that capture every attention map and reduce it by the reference.

    Blocks of stages below ``from_stage`` are not reduced: their entries are None (not compared).
    """
    blocks = [(n, m) for n, m in model.named_modules() if hasattr(m, "shift_size") and hasattr(m, "attn")]
    stages: dict[str, int] = {}
    results, grids, handles = [], {}, []
    for i, (name, block) in enumerate(blocks):
        stage = stages.setdefault(name.rsplit(".", 2)[0], len(stages))

        def pre(module, args, i=i):
            grids[i] = tuple(args[0].shape[1:4])

        def post(module, args, out, i=i, block=block, stage=stage):
            if stage < from_stage:
                results.append((i, None, None))
                return
            tokens = _reference_tokens(real, patch * 2**stage)
            assert tuple(tokens.shape[1:]) == grids[i]
            src = _monai_layout(tokens, block.window_size, block.shift_size)
            results.append((i, *_reference_sums(out, src, x.shape[0], mean_heads)))

        handles += [block.register_forward_pre_hook(pre), block.attn.softmax.register_forward_hook(post)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    results.sort(key=lambda r: r[0])
    h = [r[1] for r in results]
    m = [r[2] for r in results]
    return h, m


def _compare(ds, ref_h, ref_m, atol=1e-4):
    for layer, (h, m) in enumerate(zip(ref_h, ref_m, strict=True)):
        if h is None:  # a stage brute_force was told to skip
            continue
        heads = h.shape[1]
        got = ds["h_src"].isel(layer=layer).values[:, :heads]
        np.testing.assert_allclose(got, h.numpy(), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(
            ds["mass_src"].isel(layer=layer).values[:, :heads], m.numpy(), rtol=1e-5, atol=1e-3
        )
        hr = h[..., REAL, REAL]
        hp = h[..., REAL, INPUT] + h[..., REAL, LAYOUT]
        total = (hr + hp).numpy()
        expect = np.where(total > 0, hp.numpy() / np.where(total > 0, total, 1), 0.0)
        n_real = ds["n_real"].isel(layer=layer).values[:, None]
        expect = np.where(n_real > 0, expect, np.nan)
        np.testing.assert_allclose(ds["adi"].isel(layer=layer).values[:, :heads], expect, atol=atol, rtol=0)
        if heads < ds.sizes["head"]:
            assert np.isnan(ds["adi"].isel(layer=layer).values[:, heads:]).all()


def _batch(shape, pads, seed=0):
    """Images and real masks with ``pads[b]`` padded slices (split at both Z ends) per scan."""
    g = torch.Generator().manual_seed(seed)
    b = len(pads)
    real = torch.ones(b, *shape, dtype=torch.bool)
    for i, p in enumerate(pads):
        lo = p // 2
        real[i, ..., :lo] = False
        real[i, ..., shape[-1] - (p - lo) :] = False
    x = torch.randn(b, 1, *shape, generator=g) * real[:, None]
    return x, real


# ------------------------------------------------------------------ Swin UNETR (MONAI)


SWIN_CASES = [
    # (use_v2, window, flash, shape, pads)
    (False, 7, False, (64, 64, 64), (24, 0)),
    (True, 7, False, (64, 64, 64), (10,)),
    (False, 4, True, (64, 64, 64), (30,)),
    (True, 4, True, (96, 96, 64), (16,)),
    (False, 7, True, (64, 64, 32), (20,)),  # 32x32x16 tokens: padded to 35x35x21 by the layout
]


@pytest.mark.parametrize("use_v2,window,flash,shape,pads", SWIN_CASES)
def test_swin_unetr_matches_brute_force(use_v2, window, flash, shape, pads):
    torch.manual_seed(0)
    kw = dict(feature_size=12, window_size=window, use_v2=use_v2)
    model = models.build("swin_unetr", use_flash_attention=flash, **kw).eval()
    reference = models.build("swin_unetr", **kw).eval()
    reference.load_state_dict(model.state_dict())
    x, real = _batch(shape, pads)
    ds = measure_adi(model, x, real, scans=[f"s{i}" for i in range(len(pads))])
    assert all(b.attn.use_flash_attention == flash for _, b in _blocks(model))  # restored
    ref_h, ref_m = brute_force(reference, x, real)
    _compare(ds, ref_h, ref_m)
    assert list(ds.scan.values) == [f"s{i}" for i in range(len(pads))]
    assert ds.sizes["layer"] == 8 and list(ds.stage.values) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert list(ds.block.values) == [0, 1] * 4


def test_swin_unetr_128x128x64_layout_padding():
    """The window artifact: at 128x128x64 with window 7 even an unpadded scan attends to padding.

    Stage 0's 64x64x32 tokens (131k, 500 windows of 343) are not brute-forced here: most of the
    reference's float64 cost, and stage-0 layout padding under window 7 is brute-forced at 64^3 and
    64x64x32 above. Stages 1-3 are: 35x35x21, 21x21x14 and the shrunk (7, 7, 4) window.
    """
    torch.manual_seed(1)
    model = models.build("swin_unetr", feature_size=12, window_size=7).eval()
    x, real = _batch((128, 128, 64), (0,))
    ds = measure_adi(model, x, real)
    ref_h, ref_m = brute_force(model, x, real, from_stage=1)
    assert [h is None for h in ref_h] == [True, True] + [False] * 6
    _compare(ds, ref_h, ref_m)
    assert float(ds["adi_input_pad"].max()) == 0.0
    assert float(ds["adi_layout_pad"].isel(layer=0).mean()) > 0  # 64x64x32 grid padded to 70x70x35
    # window shrink at the deepest stage: 8x8x4 tokens, window (7, 7, 4) and no shift along Z
    assert tuple(ds["window_size"].isel(layer=7).values) == (7, 7, 4)
    assert tuple(ds["shift_size"].isel(layer=7).values) == (3, 3, 0)


def test_mean_attention_heads_matches_brute_force():
    torch.manual_seed(2)
    model = models.build("swin_unetr", feature_size=12, window_size=4).eval()
    x, real = _batch((64, 64, 32), (12,))
    ds = measure_adi(model, x, real, heads="mean-attention")
    assert ds.sizes["head"] == 1 and ds.attrs["heads"] == "mean-attention"
    ref_h, ref_m = brute_force(model, x, real, mean_heads=True)
    _compare(ds, ref_h, ref_m)


def test_plain_monai_swin_unetr_is_supported():
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(3)
    model = SwinUNETR(in_channels=1, out_channels=2, feature_size=12).eval()
    x, real = _batch((64, 64, 32), (10,))
    ds = measure_adi(model, x, real)
    ref_h, ref_m = brute_force(model, x, real)
    _compare(ds, ref_h, ref_m)


# ------------------------------------------------------------------ SMIT


def test_smit_matches_brute_force():
    torch.manual_seed(4)
    model = models.build("smit-tiny").eval()
    x, real = _batch((64, 64, 64), (20, 40, 0))
    ds = measure_adi(model, x, real)
    ref_h, ref_m = brute_force(model, x, real)
    _compare(ds, ref_h, ref_m)
    # scans with more padding dilute more at the deepest measured stage with padding
    stage = stage_table(ds)
    assert list(stage.columns) == list(STAGE_COLUMNS)
    s1 = stage[stage.stage == 1].set_index("scan")["adi"]
    assert s1["scan1"] > s1["scan0"] > s1["scan2"] == 0.0
    np.testing.assert_allclose(ds["padding_fraction"].values, [20 / 64, 40 / 64, 0.0])


# ------------------------------------------------------------------ masking, dtype, generic


@pytest.mark.parametrize("name", ["smit-tiny", "swin-tiny"])
def test_mask_padding_gives_exactly_zero_input_pad_adi(name):
    torch.manual_seed(5)
    model = models.build(name, window_size=4, mask_padding=True).eval()
    x, real = _batch((64, 64, 64), (24,))
    ds = measure_adi(model, x, real)
    assert (ds["adi_input_pad"].fillna(0).values == 0.0).all()
    assert (ds["mass_rp"].fillna(0).values == 0.0).all()
    plain = models.build(name, window_size=4).eval()
    plain.load_state_dict(model.state_dict())
    assert float(measure_adi(plain, x, real)["adi_input_pad"].max()) > 0.01


def test_key_padding_mask_restores_flash_and_hooks():
    model = models.build("swin-tiny", use_flash_attention=True).eval()
    real = torch.ones(1, 64, 64, 64, dtype=torch.bool)
    n_hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
    with key_padding_mask(model, real):
        assert not any(b.attn.use_flash_attention for _, b in _blocks(model))
    assert all(b.attn.use_flash_attention for _, b in _blocks(model))
    assert sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules()) == n_hooks


def test_autocast_bfloat16_entropy_in_float32():
    torch.manual_seed(6)
    model = models.build("smit-tiny").eval()
    x, real = _batch((64, 64, 32), (12,))
    exact = measure_adi(model, x, real)
    half = measure_adi(model, x, real, autocast_dtype=torch.bfloat16)
    assert half["h_rr"].dtype == np.float64
    np.testing.assert_allclose(half["adi"].values, exact["adi"].values, atol=0.02)


def test_autocast_forward_same_sums_from_the_cpu_kernel_and_the_torch_form(monkeypatch):
    from attndilute.instrument import cpu_kernel

    if not cpu_kernel.available():
        pytest.skip("the C extension was not built")
    torch.manual_seed(8)
    model = models.build("smit-tiny").eval()
    x, real = _batch((64, 64, 32), (12,))
    kernel = measure_adi(model, x, real, autocast_dtype=torch.bfloat16)
    monkeypatch.setenv("ATTNDILUTE_KERNEL", "torch")
    torch_form = measure_adi(model, x, real, autocast_dtype=torch.bfloat16)
    np.testing.assert_allclose(kernel["h_src"].values, torch_form["h_src"].values, rtol=1e-5, atol=1e-6)


def test_batches_with_different_masks_equal_single_scans():
    torch.manual_seed(7)
    model = models.build("smit-tiny").eval()
    x, real = _batch((64, 64, 64), (8, 36))
    both = measure_adi(model, x, real)
    for i in range(2):
        one = measure_adi(model, x[i : i + 1], real[i : i + 1])
        np.testing.assert_allclose(both["adi"].isel(scan=[i]).values, one["adi"].values, atol=1e-5)


def test_input_checks():
    model = models.build("smit-tiny").eval()
    with pytest.raises(ValueError, match="do not match"):
        measure_adi(model, torch.zeros(1, 1, 64, 64, 64), torch.ones(1, 64, 64, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="heads"):
        measure_adi(
            model, torch.zeros(1, 1, 64, 64, 64), torch.ones(1, 64, 64, 64, dtype=torch.bool), heads="max"
        )
    with pytest.raises(ValueError, match="no attention"):
        find_sites(nn.Sequential(nn.Conv3d(1, 1, 1)))


class _TinyViT(nn.Module):
    """A global-attention ViT on 8^3 patches: no windows, one softmax per block."""

    def __init__(self, dim=16, heads=2, depth=2, patch=8):
        super().__init__()
        self.patch = patch
        self.embed = nn.Conv3d(1, dim, patch, patch)
        self.qkv = nn.ModuleList(nn.Linear(dim, 3 * dim) for _ in range(depth))
        self.softmaxes = nn.ModuleList(nn.Softmax(-1) for _ in range(depth))
        self.heads = heads

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        b, n, c = t.shape
        for qkv, sm in zip(self.qkv, self.softmaxes, strict=True):
            q, k, v = qkv(t).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            a = sm(q @ k.transpose(-1, -2) / math.sqrt(c // self.heads))  # (B, heads, N, N)
            t = t + (a @ v).transpose(1, 2).reshape(b, n, c)
        return t


def _vit_sites(model):
    if not isinstance(model, _TinyViT):
        return []

    def layout(sources, inputs):
        tokens = _reference_tokens(sources == REAL, model.patch).flatten(1).to(torch.uint8)  # (B, N)
        return SiteLayout(tokens, tokens, torch.arange(tokens.shape[0]))

    return [
        AttentionSite(f"softmaxes.{i}", 0, i, model.heads, sm, layout) for i, sm in enumerate(model.softmaxes)
    ]


def test_generic_adapter_for_a_non_swin_transformer():
    register_adapter("tiny-vit-test", _vit_sites)
    torch.manual_seed(8)
    model = _TinyViT().eval()
    x, real = _batch((32, 32, 32), (16,))
    captured = []
    hooks = [sm.register_forward_hook(lambda m, a, o: captured.append(o)) for sm in model.softmaxes]
    ds = measure_adi(model, x, real)
    for h in hooks:
        h.remove()
    src = _reference_tokens(real, 8).flatten(1)
    for layer, attn in enumerate(captured[-2:]):
        ref_h, _ = _reference_sums(attn, src, 1, False)
        hr, hp = ref_h[..., 0, 0], ref_h[..., 0, 1]
        np.testing.assert_allclose(ds["adi"].isel(layer=layer).values, (hp / (hr + hp)).numpy(), atol=1e-5)


def _blocks(model):
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "shift_size") and hasattr(m, "attn")]
