"""Models: the registry, the crop rule, SMIT's window layout against MONAI, the block interface."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attndilute.errors import AttnDiluteError
from attndilute.models import build, check_crop, list_models

TINY = ["smit-tiny", "swin-tiny"]


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "attn") and hasattr(m.attn, "softmax")]


def _stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(getattr(m, "blocks", None), nn.ModuleList)]


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_builds_and_segments(name):
    torch.manual_seed(0)
    model = build(name).eval()
    meta = model.attndilute_meta
    assert meta["family"] in ("smit", "swin_unetr") and meta["preset"] == name
    assert meta["kwargs"]["in_channels"] == 1 and meta["kwargs"]["out_channels"] == 2
    assert len(meta["crop"]) == 3 and meta["spacing"] == (1.0, 1.0, 1.0)
    check_crop(model, meta["crop"])
    x = torch.randn(1, 1, 64, 32, 32)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 2, 64, 32, 32) and torch.isfinite(y).all()


def test_paper_presets_follow_the_seed():
    smit = build("smit-paper")
    assert smit.attndilute_meta["crop"] == (128, 128, 128)
    blocks = _blocks(smit)
    assert {b.window_size for _, b in blocks} == {(4, 4, 4)}
    assert [b.attn.num_heads for _, b in blocks] == [4] * 4 + [8] * 8 + [16] * 2
    assert [len(s.blocks) for _, s in _stages(smit)] == [2, 2, 8, 2]
    assert smit.transformer.patch_embed.proj.kernel_size == (2, 2, 2)
    assert smit.transformer.patch_embed.proj.out_channels == 48
    swin = build("swin-paper")
    assert swin.attndilute_meta["crop"] == (96, 96, 96)
    assert swin.swinViT.embed_dim == 48 and swin.swinViT.window_size == (7, 7, 7)


def test_kwargs_override_the_preset_and_are_recorded():
    model = build("swin-tiny", feature_size=24, out_channels=3, use_v2=True, window_size=4, crop=(64, 64, 32))
    assert model.swinViT.embed_dim == 24 and model.swinViT.use_v2 and model.swinViT.window_size == (4, 4, 4)
    assert model.attndilute_meta["kwargs"]["feature_size"] == 24
    assert model.attndilute_meta["crop"] == (64, 64, 32)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32, 64)).shape == (1, 3, 32, 32, 64)


def test_unknown_names_and_arguments_are_one_line_errors():
    with pytest.raises(AttnDiluteError, match="smit-tiny"):
        build("smit-huge")
    with pytest.raises(AttnDiluteError, match="does not take window"):
        build("smit-tiny", window=4)
    with pytest.raises(AttnDiluteError, match="cannot build"):
        build("swin-tiny", feature_size=13)  # MONAI: feature_size % 12


@pytest.mark.parametrize("name", TINY)
def test_crop_rule(name):
    model = build(name)
    for crop in [(128, 128, 64), (64, 64, 32), (96, 96, 64)]:
        check_crop(model, crop)
    with pytest.raises(AttnDiluteError, match=r"crop \(100, 128, 64\).*divisible by 32") as err:
        check_crop(model, (100, 128, 64))
    assert "\n" not in str(err.value) and "(128, 128, 64)" in str(err.value)
    with pytest.raises(AttnDiluteError, match="divisible by 32"):
        model(torch.randn(1, 1, 32, 32, 48))
    with pytest.raises(AttnDiluteError, match="divisible by 32"):
        build(name, crop=(64, 64, 40))
    with pytest.raises(AttnDiluteError, match="single 1x1x1 token"):
        check_crop(model, (32, 32, 32))


@pytest.mark.parametrize("name", TINY)
def test_block_interface(name):
    model = build(name)
    blocks = _blocks(model)
    stages = _stages(model)
    assert len(stages) == 4
    assert [n for n, _ in blocks] == [f"{s}.blocks.{i}" for s, st in stages for i in range(len(st.blocks))]
    widths = [st.blocks[0].attn.dim for _, st in stages]
    assert widths == sorted(widths) and len(set(widths)) == 4  # shallow to deep
    for _, stage in stages:
        for i, block in enumerate(stage.blocks):
            assert isinstance(block.window_size, tuple) and len(block.window_size) == 3
            assert isinstance(block.shift_size, tuple) and len(block.shift_size) == 3
            expected = (0, 0, 0) if i % 2 == 0 else tuple(w // 2 for w in block.window_size)
            assert block.shift_size == expected  # regular and shifted blocks alternate
            assert isinstance(block.attn.softmax, nn.Softmax) and block.attn.softmax.dim == -1
            assert block.attn.num_heads >= 1 and hasattr(block.attn, "use_flash_attention")


@pytest.mark.parametrize("name", TINY)
def test_softmax_sees_every_window(name):
    """The softmax output is (B*nW, heads, N, N) with MONAI's shrunk, end-padded windows."""
    model = build(name).eval()
    shapes, inputs = [], []
    for _, block in _blocks(model):
        block.register_forward_pre_hook(lambda m, args: inputs.append(tuple(args[0].shape)))
        block.attn.softmax.register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape)))
    b = 2  # grids 16x16x32 .. 2x2x4: end padding at window 7, shrunk windows deeper down
    with torch.no_grad():
        model(torch.randn(b, 1, 32, 32, 64))
    assert len(shapes) == len(_blocks(model))
    for (_, block), shape, x_shape in zip(_blocks(model), shapes, inputs, strict=True):
        size = x_shape[1:4]  # blocks receive (B, D, H, W, C)
        window = [min(w, s) for w, s in zip(block.window_size, size, strict=True)]
        n_windows = b * math.prod(-(-s // w) for s, w in zip(size, window, strict=True))
        n = math.prod(window)
        assert shape == (n_windows, block.attn.num_heads, n, n)


@pytest.mark.parametrize("size", [(8, 8, 8), (8, 6, 3), (5, 9, 4), (2, 2, 2)])
def test_smit_stage_matches_monai_basic_layer(size):
    """SMIT lays out windows exactly like MONAI: same output as MONAI's BasicLayer, same weights."""
    from monai.networks.nets.swin_unetr import BasicLayer

    from attndilute.models.smit import SMITStage

    torch.manual_seed(0)
    dim, heads, window = 16, 2, (4, 4, 4)
    ours = SMITStage(dim, 2, heads, window, [0.0, 0.0], qkv_bias=True).eval()
    theirs = BasicLayer(dim, 2, heads, window, drop_path=[0.0, 0.0], qkv_bias=True, downsample=None).eval()
    for p in ours.parameters():
        nn.init.normal_(p, std=0.5)
    state = {
        k.replace("mlp.fc1", "mlp.linear1").replace("mlp.fc2", "mlp.linear2"): v
        for k, v in ours.state_dict().items()
        if k.startswith("blocks.")
    }
    theirs.load_state_dict(state)
    x = torch.randn(2, *size, dim)  # (B, D, H, W, C)
    with torch.no_grad():
        out, merged = ours(x)
        ref = theirs(x.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert merged.shape == (2, *(-(-s // 2) for s in size), 2 * dim)


def test_smit_merging_uses_smits_subgrid_order():
    from attndilute.models.smit import PatchMerging

    merge = PatchMerging(3)
    seen = []
    merge.norm.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.randn(1, 4, 6, 2, 3)
    merge(x)
    order = [
        (0, 0, 0),
        (1, 0, 0),
        (0, 1, 0),
        (0, 0, 1),
        (1, 1, 0),
        (0, 1, 1),
        (1, 0, 1),
        (1, 1, 1),
    ]  # public SMIT
    expected = torch.cat([x[:, i::2, j::2, k::2] for i, j, k in order], dim=-1)
    torch.testing.assert_close(seen[0], expected)


@pytest.mark.parametrize("name", TINY)
def test_flash_attention_matches_the_softmax_path(name):
    torch.manual_seed(0)
    plain = build(name, window_size=4).eval()  # shifted windows with the -100 mask in stages 0-2
    flash = build(name, window_size=4, use_flash_attention=True).eval()
    flash.load_state_dict(plain.state_dict())
    x = torch.randn(1, 1, 32, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(flash(x), plain(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_real_mask_is_checked(name):
    model = build(name, window_size=4).eval()
    x = torch.randn(1, 1, 32, 32, 64)
    with pytest.raises(ValueError, match="real mask"):
        model(x, real=torch.ones(1, 32, 32, 32, dtype=torch.bool))
    with torch.no_grad():  # without mask_padding, real changes nothing
        torch.testing.assert_close(model(x, real=torch.zeros(1, 32, 32, 64, dtype=torch.bool)), model(x))


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("flash", [False, True])
def test_mask_padding_removes_attention_to_padding_keys(name, flash):
    """Stage-0 regular windows: real queries put (numerically) no attention on padding keys.

    With flash attention the masked call must take the softmax path (the mask lives there).
    """
    from monai.networks.nets.swin_unetr import window_partition

    torch.manual_seed(0)
    # window 4 divides the stage-0 grid, so every padding key here comes from the input's padding
    model = build(name, mask_padding=True, use_flash_attention=flash, window_size=4).eval()
    plain = build(name, window_size=4).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(1, 1, 64, 64, 32)
    real = torch.zeros(1, 64, 64, 32, dtype=torch.bool)
    real[..., 4:20] = True  # padding on both ends of Z
    x = x * real[:, None]
    stage0 = _stages(model)[0][1]
    first = stage0.blocks[0]
    captured = []
    first.attn.softmax.register_forward_hook(lambda m, a, out: captured.append(out))
    with torch.no_grad():
        masked = model(x, real=real)
        unmasked_real = model(x, real=torch.ones_like(real))
        reference = plain(x)
    torch.testing.assert_close(unmasked_real, reference, atol=1e-5, rtol=1e-5)  # nothing to mask
    assert not torch.allclose(masked, reference, atol=1e-4)
    attn = captured[0]  # (B*nW, heads, N, N)
    tokens = nn.functional.max_pool3d(real[:, None].float(), 2)[:, 0, ..., None]  # (B, D, H, W, 1)
    key_real = window_partition(tokens, first.window_size)[..., 0].bool()  # (B*nW, N)
    has_real = key_real.any(-1)
    pad_mass = (attn * (~key_real)[:, None, None, :]).sum(-1)  # (B*nW, heads, N)
    query_real = key_real[has_real]
    assert pad_mass[has_real].permute(0, 2, 1)[query_real].max() < 1e-6


@pytest.mark.parametrize("name", TINY)
def test_mask_padding_runs_the_attention_inside_key_padding_mask(name, monkeypatch):
    """The wiring alone, with a stand-in for ``key_padding_mask``: every softmax call happens inside
    it when ``mask_padding`` and ``real`` are given, and none otherwise."""
    import contextlib

    calls, inside = [], []

    @contextlib.contextmanager
    def key_padding_mask(model, real):
        calls.append((model, real))
        inside.append(True)
        try:
            yield
        finally:
            inside.pop()

    from attndilute.models import _masking

    monkeypatch.setattr(_masking, "key_padding_mask", key_padding_mask)
    x = torch.randn(1, 1, 32, 32, 64)
    real = torch.ones(1, 32, 32, 64, dtype=torch.bool)
    model = build(name, window_size=4, mask_padding=True).eval()
    seen: list[bool] = []
    for _, block in _blocks(model):
        block.attn.softmax.register_forward_hook(lambda m, a, out: seen.append(bool(inside)))
    for mask_padding, r, expect in [(True, real, True), (True, None, False), (False, real, False)]:
        model.mask_padding = mask_padding
        seen.clear()
        calls.clear()
        with torch.no_grad():
            model(x, real=r)
        assert seen and all(s == expect for s in seen)
        assert [(m is model, rr is real) for m, rr in calls] == ([(True, True)] if expect else [])


def test_model_names_use_hyphens_and_old_spellings_still_work(capsys):
    from attndilute.models.registry import canonical_name, get_preset, list_models

    assert all("_" not in name for name in list_models())
    capsys.readouterr()
    assert get_preset("swin_unetr") is get_preset("swin-unetr")
    assert canonical_name("swin_tiny") == "swin-tiny" and canonical_name("smit-tiny") == "smit-tiny"
    assert canonical_name("swin_tiny") == "swin-tiny"
    err = capsys.readouterr().err
    assert err.count("note: model name 'swin_tiny' is now spelled 'swin-tiny'") == 1  # once per name
