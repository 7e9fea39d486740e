"""timm adapter: ADI of timm Swin v1/v2 and ViT against oracles written from timm's own forward code.

The oracles do not use ``attndilute.masks``: they pool the real mask to tokens with ``any`` over
each patch (and over each 2x2 merge, end-padding odd sizes with "not real"), roll and pad token
grids the way timm's ``SwinTransformerBlock._attn`` does and partition them with timm's own
``window_partition``; the attention is either recomputed by hand from the block input (q, k from
the block's ``qkv``, scale, relative position bias, the -100 shift mask, softmax) or captured
with a hook of the test's own on timm's unfused path. Then, in float64, per scan, layer and head,
ADI = sum over real queries of the entropy on pad keys / the entropy on all keys (Eq. 5-7).

timm is imported after a torchvision stand-in (``tests/torchvision_stub.py``) where the real
torchvision cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision_stub  # tests/torchvision_stub.py (tests/ is on sys.path: conftest.py)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

torchvision_stub.install()
timm = pytest.importorskip("timm")

from timm.models.swin_transformer import SwinTransformerBlock, window_partition  # noqa: E402

import attndilute as ad  # noqa: E402
from attndilute import masks  # noqa: E402
from attndilute.instrument import ADIMeter, find_sites, list_adapters  # noqa: E402
from attndilute.instrument.adapters import timm_adapters  # noqa: E402
from attndilute.instrument.adapters.timm_adapters import (  # noqa: E402
    swin_window_layout,
    timm_sites,
    vit_token_sources,
)

ROOT = Path(__file__).resolve().parents[4]
SWIN_SMALL = dict(embed_dim=24, depths=(2, 2, 2), num_heads=(2, 4, 8), window_size=7)


# ---------------------------------------------------------------- models (random weights, no downloads)


def swin(name="swin_tiny_patch4_window7_224", img_size=(200, 232), **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, img_size=img_size, **{**SWIN_SMALL, **kwargs}).eval()


def vit(**kwargs):
    torch.manual_seed(0)
    kwargs = {"depth": 3, **kwargs}
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs).eval()


@pytest.fixture(scope="module")
def swin_v1():
    return swin()


def letterbox(b, h, w, seed=0):
    """Images (b, 3, h, w) and real (b, h, w): scan 0 letterboxed (zero rows top and bottom),
    scan 1 pillarboxed (zero columns), scan 2 (if any) all real."""
    g = torch.Generator().manual_seed(seed)
    real = torch.ones(b, h, w, dtype=torch.bool)
    real[0, : h // 5] = False
    real[0, h - h // 4 :] = False
    if b > 1:
        real[1, :, : w // 3] = False
    x = torch.randn(b, 3, h, w, generator=g) * real[:, None]
    return x, real


# ---------------------------------------------------------------- oracle (independent of attndilute.masks)


def any_pool(real, k):
    """(B, H, W) bool -> (B, ceil(H/kh), ceil(W/kw)): real if any pixel is, odd ends padded not-real."""
    kh, kw = (k, k) if isinstance(k, int) else k
    b, h, w = real.shape
    x = F.pad(real.float(), (0, -w % kw, 0, -h % kh))
    return x.reshape(b, x.shape[1] // kh, kh, x.shape[2] // kw, kw).amax((2, 4)) > 0


def swin_windows_by_hand(tokens, window, shift):
    """Real-token mask per window, as timm's ``_attn`` lays x out: roll, end-pad, window_partition."""
    x = tokens.float()[..., None]  # (B, H, W, 1)
    if any(shift):
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    h, w = x.shape[1:3]
    x = F.pad(x, (0, 0, 0, -w % window[1], 0, -h % window[0]))
    return window_partition(x, window).reshape(-1, window[0] * window[1]) > 0  # (B*nW, N)


def adi_by_hand(attn, real_tokens, num_scans):
    """Eq. 5-7 in float64: attn (G, heads, N, N), real_tokens (G, N) bool, groups scan-major."""
    p = attn.double()
    ent = -torch.special.xlogy(p, p)  # (G, heads, Nq, Nk)
    rq = real_tokens[:, None, :, None].double()
    pad_k = (~real_tokens)[:, None, None, :].double()
    h_pad = (ent * rq * pad_k).sum((2, 3))  # (G, heads)
    h_all = (ent * rq).sum((2, 3))
    g = attn.shape[0]
    h_pad = h_pad.reshape(num_scans, g // num_scans, -1).sum(1)
    h_all = h_all.reshape(num_scans, g // num_scans, -1).sum(1)
    return (h_pad / h_all).numpy()  # (B, heads)


def swin_oracle(model, x, real):
    """ADI (B, layers, heads) with the attention captured by a hook of our own (fused path off)."""
    blocks = [blk for layer in model.layers for blk in layer.blocks]
    captured, removers = {}, []
    for i, blk in enumerate(blocks):
        blk.attn.fused_attn = False
        removers.append(
            blk.attn.softmax.register_forward_hook(
                lambda m, a, out, i=i: captured.__setitem__(i, out.detach().clone())
            )
        )
        removers.append(
            blk.register_forward_pre_hook(
                lambda m, a, i=i: captured.__setitem__(("grid", i), tuple(a[0].shape[1:3]))
            )
        )
    with torch.no_grad():
        model(x)
    for r in removers:
        r.remove()
    patch = model.patch_embed.patch_size
    tokens = any_pool(real, patch)
    heads = max(blk.attn.num_heads for blk in blocks)
    out = np.full((x.shape[0], len(blocks), heads), np.nan)
    i = 0
    for layer in model.layers:
        if not isinstance(layer.downsample, nn.Identity):
            tokens = any_pool(tokens, 2)
        for blk in layer.blocks:
            assert captured[("grid", i)] == tuple(tokens.shape[1:])
            win = swin_windows_by_hand(tokens, blk.window_size, blk.shift_size)
            out[:, i, : blk.attn.num_heads] = adi_by_hand(captured[i], win, x.shape[0])
            i += 1
    return out


def swin_block_attention_by_hand(blk, x):
    """Recompute a timm v1 block's post-softmax attention from its input x (B, H, W, C)."""
    attn = blk.attn
    ws, ss = blk.window_size, blk.shift_size
    y = blk.norm1(x)
    if any(ss):
        y = torch.roll(y, shifts=(-ss[0], -ss[1]), dims=(1, 2))
    b, h, w, c = y.shape
    y = F.pad(y, (0, 0, 0, -w % ws[1], 0, -h % ws[0]))
    hp, wp = y.shape[1:3]
    n = ws[0] * ws[1]
    heads, d = attn.num_heads, c // attn.num_heads
    windows = y.reshape(b, hp // ws[0], ws[0], wp // ws[1], ws[1], c).permute(0, 1, 3, 2, 4, 5)
    windows = windows.reshape(-1, n, c)  # (B*nW, N, C): window-major per scan, row-major inside
    qkv = F.linear(windows, attn.qkv.weight, attn.qkv.bias).reshape(-1, n, 3, heads, d)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)  # (G, heads, N, d)
    scores = (q * d**-0.5) @ k.transpose(-2, -1)
    # relative position bias: index = (dy + wh - 1) * (2 ww - 1) + (dx + ww - 1)
    yy, xx = torch.meshgrid(torch.arange(ws[0]), torch.arange(ws[1]), indexing="ij")
    yy, xx = yy.flatten(), xx.flatten()
    index = (yy[:, None] - yy[None] + ws[0] - 1) * (2 * ws[1] - 1) + (xx[:, None] - xx[None] + ws[1] - 1)
    scores = scores + attn.relative_position_bias_table[index].permute(2, 0, 1)[None]
    if any(ss):  # regions (:-w), (-w:-s), (-s:) of the padded grid, -100 between different ones
        region = torch.zeros(hp, wp)
        for ry, sy in enumerate((slice(0, -ws[0]), slice(-ws[0], -ss[0]), slice(-ss[0], None))):
            for rx, sx in enumerate((slice(0, -ws[1]), slice(-ws[1], -ss[1]), slice(-ss[1], None))):
                region[sy, sx] = 3 * ry + rx
        lab = region.reshape(hp // ws[0], ws[0], wp // ws[1], ws[1]).permute(0, 2, 1, 3).reshape(-1, n)
        mask = torch.where(lab[:, None, :] != lab[:, :, None], -100.0, 0.0)  # (nW, N, N)
        scores = (scores.reshape(b, -1, heads, n, n) + mask[None, :, None]).reshape(-1, heads, n, n)
    return scores.softmax(-1)


def vit_oracle(model, x, real):
    """ADI (B, layers, heads) of a timm ViT, attention recomputed by hand from each block's input."""
    inputs, removers = {}, []
    for i, blk in enumerate(model.blocks):
        removers.append(blk.attn.register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0])))
    with torch.no_grad():
        model(x)
    for r in removers:
        r.remove()
    patches = any_pool(real, model.patch_embed.patch_size).flatten(1)  # row-major
    tokens = torch.cat([torch.ones(real.shape[0], model.num_prefix_tokens, dtype=torch.bool), patches], 1)
    out = []
    for i, blk in enumerate(model.blocks):
        a, z = blk.attn, inputs[i].double()
        b, n, c = z.shape
        with torch.no_grad():
            qkv = F.linear(z, a.qkv.weight.double(), a.qkv.bias.double()).reshape(b, n, 3, a.num_heads, -1)
            q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
            p = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1)  # (B, heads, N, N)
        out.append(adi_by_hand(p, tokens, b))
    return np.stack(out, 1)


# ---------------------------------------------------------------- discovery


def test_adapter_registered_first_and_finds_timm_blocks(swin_v1):
    assert list_adapters().index("timm") < list_adapters().index("swin")
    sites = find_sites(swin_v1)
    assert [s.name for s in sites] == [f"layers.{i}.blocks.{j}" for i in range(3) for j in range(2)]
    assert [(s.stage, s.block, s.num_heads) for s in sites] == [
        (0, 0, 2),
        (0, 1, 2),
        (1, 0, 4),
        (1, 1, 4),
        (2, 0, 8),
        (2, 1, 8),
    ]
    assert all(s.install is not None for s in sites)  # the timm adapter's, not the MONAI-order one
    v = vit()
    sites = find_sites(v)
    got = [(s.name, s.stage, s.block, s.num_heads) for s in sites]
    assert got == [(f"blocks.{i}", 0, i, 3) for i in range(3)]


def test_unrelated_models_give_no_sites():
    assert timm_sites(nn.Sequential(nn.Linear(4, 4))) == []
    assert timm_sites(timm.create_model("resnet10t", pretrained=False)) == []
    monai = pytest.importorskip("monai.networks.nets")
    swin_unetr = monai.SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2)
    assert timm_sites(swin_unetr) == []  # MONAI Swin blocks have the interface, but not the class


def test_wrapped_model_paths(swin_v1):
    wrapper = nn.ModuleDict({"backbone": swin_v1})
    names = [s.name for s in timm_sites(wrapper)]
    assert names[:2] == ["backbone.layers.0.blocks.0", "backbone.layers.0.blocks.1"]


def test_features_only_swin_measures_like_the_classifier():
    """``features_only`` hangs the stages on a wrapper (``layers_0``, ...): still timm's sites."""
    kwargs = dict(pretrained=False, embed_dim=24, depths=(2, 2), num_heads=(2, 4))
    torch.manual_seed(0)
    plain = timm.create_model("swin_tiny_patch4_window7_224", **kwargs).eval()
    torch.manual_seed(0)
    features = timm.create_model("swin_tiny_patch4_window7_224", features_only=True, **kwargs).eval()
    sites = find_sites(features)
    assert [(s.name, s.stage, s.block) for s in sites] == [
        (f"layers_{i}.blocks.{j}", i, j) for i in range(2) for j in range(2)
    ]
    assert all(s.install is not None for s in sites)
    x, real = letterbox(2, 224, 224)
    np.testing.assert_allclose(
        ad.measure_adi(features, x, real)["adi"].values,
        ad.measure_adi(plain, x, real)["adi"].values,
        atol=1e-6,
        rtol=0,
    )


# ---------------------------------------------------------------- ADI against the oracles


@pytest.mark.parametrize(
    "case",
    ["v1", "v1-dynamic", "v2"],
)
def test_swin_adi_matches_oracle(case, swin_v1):
    if case == "v1":
        model, size = swin_v1, (200, 232)  # grids 50x58, 25x29, 13x15: window and merge padding
    elif case == "v1-dynamic":  # built for one size, run at another: mask made per forward
        model, size = swin(strict_img_size=False), (168, 204)  # grids 42x51, 21x26, 11x13
    else:
        model, size = swin("swinv2_tiny_window8_256", window_size=8), (200, 232)
    x, real = letterbox(3, *size)
    ds = ad.measure_adi(model, x, real)
    expected = swin_oracle(model, x, real)
    np.testing.assert_allclose(ds["adi"].values, expected, atol=1e-4, rtol=0)
    assert np.nanmin(ds["adi"].values[2]) > 0  # the all-real scan still sees window padding
    blocks = [blk for layer in model.layers for blk in layer.blocks]
    assert ds["window_size"].values.tolist() == [list(b.window_size) for b in blocks]
    assert ds["shift_size"].values.tolist() == [list(b.shift_size) for b in blocks]
    assert float(ds["adi_layout_pad"].sel(scan="scan2").sum()) > 0


def test_swin_attention_by_hand_equals_what_the_meter_reads(swin_v1):
    """The weights the site receives are timm's post-softmax attention, recomputed from scratch."""
    x, real = letterbox(2, 200, 232)
    blk = swin_v1.layers[2].blocks[1]  # shifted, grid 13x15 padded to 14x21
    assert blk.shift_size == (3, 3)
    site = [s for s in find_sites(swin_v1) if s.name == "layers.2.blocks.1"][0]
    got = {}
    keep = blk.register_forward_pre_hook(lambda m, a: got.__setitem__("x", a[0]))
    remove = site.connect(
        lambda attn, scores=None, groups=None: got.update(attn=attn.clone(), scores=scores.clone())
    )
    try:
        with torch.no_grad():
            swin_v1(x)
    finally:
        remove()
        keep.remove()
    with torch.no_grad():
        by_hand = swin_block_attention_by_hand(blk, got["x"])
    torch.testing.assert_close(got["attn"], by_hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["scores"].softmax(-1), got["attn"])  # the logits come with the weights
    tokens = any_pool(any_pool(any_pool(real, 4), 2), 2)
    expected = adi_by_hand(by_hand, swin_windows_by_hand(tokens, blk.window_size, blk.shift_size), 2)
    ds = ad.measure_adi(swin_v1, x, real)
    np.testing.assert_allclose(ds["adi"].sel(layer=5).values, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "kwargs, size",
    [
        ({}, (224, 224)),
        # class + 2 register tokens, position embedding without them, padded 13x15 patch grid
        (dict(reg_tokens=2, no_embed_class=True, dynamic_img_size=True, dynamic_img_pad=True), (200, 232)),
    ],
)
def test_vit_adi_matches_oracle(kwargs, size):
    model = vit(**kwargs)
    x, real = letterbox(2, *size)
    assert model.blocks[0].attn.fused_attn  # the default: fused attention on
    ds = ad.measure_adi(model, x, real)
    np.testing.assert_allclose(ds["adi"].values, vit_oracle(model, x, real), atol=1e-4, rtol=0)
    assert model.blocks[0].attn.fused_attn
    grid = [-(-s // 16) for s in size]  # dynamic padding rounds the patch grid up (13x15)
    tokens = model.num_prefix_tokens + grid[0] * grid[1]
    assert (ds["n_real"] + ds["n_pad"]).values.tolist() == [[tokens] * 3] * 2


def test_vit_token_sources_order():
    real = torch.zeros(1, 4, 6, dtype=torch.bool)
    real[0, 0, 4:] = True  # the top-right patch of a 2x3 grid of 2x2 patches
    got = vit_token_sources(real, (2, 2), 2)
    r, i = masks.REAL, masks.INPUT_PAD
    assert got.tolist() == [[r, r, i, i, r, i, i, i]]


# ---------------------------------------------------------------- layout property: timm's own code


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 17),
    w=st.integers(1, 17),
    wh=st.integers(1, 8),
    ww=st.integers(1, 8),
    sh=st.integers(0, 7),
    sw=st.integers(0, 7),
    always=st.booleans(),
    seed=st.integers(0, 99),
)
def test_window_layout_equals_timm_block_on_index_grid(h, w, wh, ww, sh, sw, always, seed):
    """Feed token indices through a real timm block's ``_attn``: the windows it forms are ours."""
    sh, sw = sh % wh, sw % ww
    blk = SwinTransformerBlock(
        dim=2,
        input_resolution=(h, w),
        num_heads=1,
        window_size=(wh, ww),
        shift_size=(sh, sw),
        always_partition=always,
    ).eval()
    b = 2
    index = torch.arange(b * h * w, dtype=torch.float32).reshape(b, h, w)
    x = torch.stack([index + 1, torch.zeros_like(index)], -1)  # (B, H, W, 2); zero padding -> index -1
    seen = {}
    hook = blk.attn.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0][..., 0].clone()))
    with torch.no_grad():
        blk._attn(x)
    hook.remove()
    order = seen["x"].long() - 1  # (B*nW, N) flat token index, -1 for padding
    tokens = torch.randint(0, 2, (b, h, w), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)
    expected = torch.where(order >= 0, tokens.flatten()[order.clamp_min(0)], masks.LAYOUT_PAD)
    lay = swin_window_layout(tokens, blk.window_size, blk.shift_size)
    assert torch.equal(lay.sources, expected.to(torch.uint8))
    assert lay.window == tuple(blk.window_size) and lay.shift == tuple(blk.shift_size)


# ---------------------------------------------------------------- switches


def _hooks(module: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in module.modules())


def test_fused_attn_kept_and_routing_removed_after_measuring_and_after_a_raising_forward(swin_v1):
    model = vit()
    blocks = [blk for layer in swin_v1.layers for blk in layer.blocks]
    for blk in blocks:
        blk.attn.fused_attn = True
    try:
        for net, attns in ((swin_v1, [b.attn for b in blocks]), (model, [b.attn for b in model.blocks])):
            meter = ADIMeter(net)
            before = _hooks(net)
            with meter:
                assert all(a.fused_attn for a in attns)  # the model keeps its fused path
                assert all(a._forward_pre_hooks and a._forward_hooks for a in attns)  # routed while connected
            assert all(a.fused_attn for a in attns) and _hooks(net) == before
            with pytest.raises(ZeroDivisionError), meter:
                raise ZeroDivisionError
            assert all(a.fused_attn for a in attns)
            with pytest.raises(Exception):  # a wrong image size: timm's own check raises in the forward
                ad.measure_adi(net, torch.zeros(1, 3, 64, 64), torch.ones(1, 64, 64, dtype=torch.bool))
            assert all(a.fused_attn for a in attns)
            assert _hooks(net) == before  # no hook or routing left behind
            assert not torch._C._is_torch_function_mode_enabled()  # the routing mode was left
    finally:
        for blk in blocks:
            blk.attn.fused_attn = False


def test_fused_on_and_off_give_the_same_numbers(swin_v1):
    x, real = letterbox(2, 200, 232)
    model = vit()
    xv, realv = letterbox(2, 224, 224)
    for net, attns, inputs in (
        (swin_v1, [b.attn for layer in swin_v1.layers for b in layer.blocks], (x, real)),
        (model, [b.attn for b in model.blocks], (xv, realv)),
    ):
        results = []
        for fused in (True, False):
            for a in attns:
                a.fused_attn = fused
            results.append(ad.measure_adi(net, *inputs)["adi"].values)
            assert all(a.fused_attn == fused for a in attns)
        np.testing.assert_allclose(results[0], results[1], atol=1e-5, rtol=0)
    for a in [b.attn for layer in swin_v1.layers for b in layer.blocks]:
        a.fused_attn = False


def test_vit_reads_attention_before_train_mode_dropout():
    model = vit(attn_drop_rate=0.5)
    x, real = letterbox(2, 224, 224)
    evaluated = ad.measure_adi(model, x, real)["adi"].sel(layer=0).values
    model.train()
    trained = ad.measure_adi(model, x, real)["adi"].sel(layer=0).values  # block 0 input is the same
    np.testing.assert_allclose(trained, evaluated, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("script", ["timm_swin_letterbox.py", "timm_vit.py"])
def test_example_runs(script, run_example):
    assert "ADI" in run_example(script)


def test_module_does_not_import_timm():
    code = "import attndilute.instrument.adapters, sys; print('timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert timm_adapters.is_timm(timm.create_model("resnet10t", pretrained=False))
