"""Hugging Face adapter: ADI of BERT, ViT and Swin against HF's own eager attention (Eq. 5-7).

The oracle takes the weights HF's eager path produces (``output_attentions=True``, or the
attention modules' outputs for Swin, whose ``attentions`` hold one block per stage), builds the
real/pad token masks itself (HF's own ``window_partition`` for Swin windows) and sums
``-p log p`` in float64: ADI = sum over real queries of the entropy on pad keys / the entropy on
all keys, per scan, layer and head.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

transformers = pytest.importorskip("transformers")

import attndilute as ad  # noqa: E402
from attndilute.instrument import ADIMeter, find_sites  # noqa: E402
from attndilute.instrument.adapters import hf_adapters  # noqa: E402
from attndilute.instrument.adapters.hf_adapters import ATTENTION_NAME, hf_sites  # noqa: E402

# ---------------------------------------------------------------- models (random weights, no downloads)


def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100
    )
    return transformers.BertModel(config).eval()


def vit():
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    return transformers.ViTModel(config, add_pooling_layer=False).eval()


def swin():
    torch.manual_seed(0)
    config = transformers.SwinConfig(
        image_size=40,
        patch_size=4,
        num_channels=3,
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=4,
    )
    model = transformers.SwinModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # HF initialises the relative position bias to zeros: make it count
        for module in model.modules():
            if hasattr(module, "relative_position_bias_table"):
                module.relative_position_bias_table.normal_(0, 1)
    return model


def eager_copy(model):
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("eager")
    return ref


# ---------------------------------------------------------------- the oracle


def oracle_adi(weights, query_real, key_real, scan_of):
    """ADI (scan, head) in float64 from one layer's weights.

    Args:
        weights: (G, heads, Nq, Nk). query_real: (G, Nq) bool. key_real: (G, Nk) bool.
        scan_of: (G,) scan of each group.
    """
    p = weights.double()
    plogp = -torch.special.xlogy(p, p)  # (G, heads, Nq, Nk)
    on_pad = (plogp * (~key_real)[:, None, None, :]).sum(-1)  # (G, heads, Nq)
    on_all = plogp.sum(-1)
    q = query_real[:, None, :].double()
    num, den = (on_pad * q).sum(-1), (on_all * q).sum(-1)  # (G, heads)
    scans = int(scan_of.max()) + 1
    num_s = torch.zeros(scans, p.shape[1], dtype=torch.float64).index_add_(0, scan_of, num)
    den_s = torch.zeros_like(num_s).index_add_(0, scan_of, den)
    return (num_s / den_s).numpy()


def assert_matches(ds, expected):
    """``expected``: list over layers of (scan, head) arrays."""
    assert ds["adi"].sizes["layer"] == len(expected)
    for layer, want in enumerate(expected):
        got = ds["adi"].isel(layer=layer).values[:, : want.shape[1]]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        assert np.all((got >= 0) & (got <= 1))


def padded_tokens(lengths, total):
    return torch.arange(total)[None, :] < torch.as_tensor(lengths)[:, None]  # (B, L) bool


# ---------------------------------------------------------------- BERT


def test_bert_sites_names_stages_blocks():
    model = bert()
    sites = hf_sites(model)
    assert [s.name for s in sites] == ["encoder.layer.0.attention.self", "encoder.layer.1.attention.self"]
    assert [(s.stage, s.block, s.num_heads) for s in sites] == [(0, 0, 2), (0, 1, 2)]
    assert [s.name for s in find_sites(model)] == [s.name for s in sites]


def test_bert_sdpa_unmasked_padding_matches_eager_oracle():
    model = bert()
    assert model.config._attn_implementation == "sdpa"
    torch.manual_seed(1)
    ids = torch.randint(1, 100, (2, 12))
    real = padded_tokens([9, 7], 12)  # the last tokens are padding, not masked in the forward
    ds = ad.measure_adi(model, ids, real)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        attentions = eager_copy(model)(ids, output_attentions=True).attentions  # L x (B, heads, L, L)
    scan_of = torch.arange(2)
    expected = [oracle_adi(a, real, real, scan_of) for a in attentions]
    assert_matches(ds, expected)
    assert ds["adi"].values.min() > 1e-3  # unmasked padding dilutes
    assert list(ds["name"].values) == [s.name for s in hf_sites(model)]
    assert list(ds["stage"].values) == [0, 0] and list(ds["block"].values) == [0, 1]


def test_bert_attention_mask_gives_zero_adi():
    model = bert()
    torch.manual_seed(2)
    ids = torch.randint(1, 100, (2, 12))
    real = padded_tokens([9, 5], 12)
    ds = ad.measure_adi(model, ids, real, forward_kwargs={"attention_mask": real.long()})
    assert np.nanmax(ds["adi"].values) <= 1e-6
    assert np.all(ds["mass_rp"].values <= 1e-6)
    with torch.no_grad():
        attentions = eager_copy(model)(ids, attention_mask=real.long(), output_attentions=True).attentions
    assert_matches(ds, [oracle_adi(a, real, real, torch.arange(2)) for a in attentions])


def test_outputs_are_the_eager_outputs():
    model = bert()
    ids = torch.randint(1, 100, (2, 10))
    mask = padded_tokens([10, 6], 10).long()
    with torch.no_grad():
        want = eager_copy(model)(ids, attention_mask=mask).last_hidden_state
    meter = ADIMeter(model)
    with meter, torch.no_grad():
        assert model.config._attn_implementation == ATTENTION_NAME
        meter.set_real(mask.bool())
        got = model(ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_implementation_restored_after_a_raising_forward(implementation):
    model = bert()
    model.set_attn_implementation(implementation)

    def boom(module, args, output):
        raise RuntimeError("boom")

    handle = model.encoder.layer[1].register_forward_hook(boom)
    ids = torch.randint(1, 100, (1, 8))
    with pytest.raises(RuntimeError, match="boom"):
        ad.measure_adi(model, ids, torch.ones(1, 8, dtype=torch.bool))
    handle.remove()
    assert model.config._attn_implementation == implementation
    assert all(
        m.config._attn_implementation == implementation for m in model.modules() if hasattr(m, "config")
    )
    assert not hf_adapters._ROUTES
    ds = ad.measure_adi(model, ids, torch.ones(1, 8, dtype=torch.bool))  # still measurable afterwards
    assert np.all(ds["adi"].values == 0)
    assert model.config._attn_implementation == implementation


def test_unknown_models_give_no_sites():
    assert hf_sites(nn.Linear(2, 2)) == []
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1)
    assert hf_sites(encoder) == []
    clip = transformers.CLIPModel(  # composite: two towers, one input measured -> not known
        transformers.CLIPConfig(
            text_config={
                "hidden_size": 16,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 32,
            },
            vision_config={
                "hidden_size": 16,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 32,
                "image_size": 16,
                "patch_size": 8,
            },
        )
    )
    assert hf_sites(clip) == []
    assert "hf" in ad.instrument.list_adapters()


def test_a_wrapped_model_gets_prefixed_names():
    holder = nn.ModuleDict({"text": bert()})
    assert [s.name for s in hf_sites(holder)][0] == "text.encoder.layer.0.attention.self"


# ---------------------------------------------------------------- ViT


def letterbox(batch, size, rows):
    """(B, H, W) bool: rows[b] = (top, bottom) real rows of scan b (a letterboxed image)."""
    real = torch.zeros(batch, *size, dtype=torch.bool)
    for b, (top, bottom) in enumerate(rows):
        real[b, top:bottom] = True
    return real


def test_vit_letterboxed_matches_eager_oracle():
    model = vit()
    torch.manual_seed(3)
    real = letterbox(2, (32, 32), [(10, 22), (0, 13)])
    images = torch.randn(2, 3, 32, 32) * real[:, None]
    ds = ad.measure_adi(model, images, real)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        attentions = eager_copy(model)(images, output_attentions=True).attentions
    patches = real.reshape(2, 4, 8, 4, 8).any(4).any(2).flatten(1)  # (B, 16): any real pixel
    tokens = torch.cat([torch.ones(2, 1, dtype=torch.bool), patches], 1)  # CLS is real
    expected = [oracle_adi(a, tokens, tokens, torch.arange(2)) for a in attentions]
    assert_matches(ds, expected)
    assert [s.name for s in hf_sites(model)] == list(ds["name"].values)
    assert ds["adi"].values.min() > 1e-3


# ---------------------------------------------------------------- Swin


def swin_oracle(model, images, real):
    """Per attention module (in order): (scan, head) ADI from HF's eager weights."""
    from transformers.models.swin.modeling_swin import SwinAttention, SwinLayer, window_partition

    ref = eager_copy(model)
    captured = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out: captured.append(out[1]))
        for m in ref.modules()
        if isinstance(m, SwinAttention)
    ]
    with torch.no_grad():
        ref(images)
    for h in hooks:
        h.remove()
    layers = [m for m in ref.modules() if isinstance(m, SwinLayer)]
    b = real.shape[0]
    patch = model.config.patch_size
    h, w = -(-real.shape[1] // patch), -(-real.shape[2] // patch)
    grid = F.pad(real, (0, w * patch - real.shape[2], 0, h * patch - real.shape[1]))  # HF maybe_pad
    grid = grid.reshape(b, h, patch, w, patch).any(4).any(2)  # stage 0 tokens
    expected, stage_blocks = [], []
    for _ in model.config.depths:
        stage_blocks.append(grid)
        hh, ww = -(-grid.shape[1] // 2), -(-grid.shape[2] // 2)
        merged = F.pad(grid, (0, ww * 2 - grid.shape[2], 0, hh * 2 - grid.shape[1]))
        grid = merged.reshape(b, hh, 2, ww, 2).any(4).any(2)
    i = 0
    for stage, depth in enumerate(model.config.depths):
        tokens = stage_blocks[stage]
        for _ in range(depth):
            layer, weights = layers[i], captured[i]
            win, shift = int(layer.window_size), int(layer.shift_size)
            ph, pw = -(-tokens.shape[1] // win) * win, -(-tokens.shape[2] // win) * win
            padded = F.pad(tokens, (0, pw - tokens.shape[2], 0, ph - tokens.shape[1]))  # layout pad
            padded = torch.roll(padded, shifts=(-shift, -shift), dims=(1, 2))
            windows = window_partition(padded[..., None].float(), win).reshape(-1, win * win) > 0.5
            scan_of = torch.arange(b).repeat_interleave(windows.shape[0] // b)
            expected.append(oracle_adi(weights, windows, windows, scan_of))
            i += 1
    return expected


def test_swin_layout_padding_matches_eager_oracle():
    model = swin()
    torch.manual_seed(4)
    size = (40, 38)  # 38 needs patch padding; the 10 x 10 and 5 x 5 grids need window padding
    real = letterbox(2, size, [(8, 32), (0, 22)])
    images = torch.randn(2, 3, *size) * real[:, None]
    ds = ad.measure_adi(model, images, real)
    assert model.config._attn_implementation == "sdpa"
    assert_matches(ds, swin_oracle(model, images, real))
    assert list(ds["stage"].values) == [0, 0, 1, 1] and list(ds["block"].values) == [0, 1, 0, 1]
    assert list(ds["name"].values)[1] == "encoder.layers.0.blocks.1.attention"
    assert ds["shift_size"].values[1, 0] == 2 and ds["window_size"].values[2, 0] == 4
    layout_pad = ds["h_rp_layout_pad"].values
    assert np.all(layout_pad[~np.isnan(layout_pad)] > 0)  # the window artifact is visible


def test_swin_all_real_input_still_has_layout_padding():
    model = swin()
    real = torch.ones(1, 40, 40, dtype=torch.bool)
    images = torch.randn(1, 3, 40, 40)
    ds = ad.measure_adi(model, images, real)
    assert_matches(ds, swin_oracle(model, images, real))
    heads = ~np.isnan(ds["adi"].values)  # stage 0 has 2 heads, stage 1 has 4
    assert np.all(ds["adi_input_pad"].values[heads] == 0)
    assert np.all(ds["adi_layout_pad"].values[heads] > 0)


def test_swin_follows_set_shift_and_window_size():
    model = swin()
    real = letterbox(1, (32, 32), [(4, 28)])  # stage 1 is 4 x 4 = the window: HF drops the shift
    images = torch.randn(1, 3, 32, 32) * real[:, None]
    ds = ad.measure_adi(model, images, real)
    assert_matches(ds, swin_oracle(model, images, real))
    assert list(ds["shift_size"].values[:, 0]) == [0, 2, 0, 0]


# ---------------------------------------------------------------- example


def test_example_hf_bert_runs(run_example):
    assert "ADI" in run_example("hf_bert.py")
