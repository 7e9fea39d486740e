"""measure_adi for every input rank: MONAI 2-D Swin UNETR, token inputs, both window orders, the
accumulator API, and windows="mean" — each against a reference written from the library's code.

References here use MONAI's own ``window_partition``/``get_window_size`` and float64 loops; they
do not call ``attndilute.masks`` or ``attndilute.entropy``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attndilute as ad
from attndilute import masks
from attndilute.instrument import ADIMeter, AttentionSite, SiteLayout

REAL, INPUT, LAYOUT = 0, 1, 2


def _tokens_2d(real: torch.Tensor, f: int) -> torch.Tensor:
    """(B, H, W) bool -> (B, H/f, W/f) sources by reshape + any (sizes divisible by f)."""
    b, h, w = real.shape
    return torch.where(real.reshape(b, h // f, f, w // f, f).any(4).any(2), REAL, INPUT)


def _monai_layout_2d(tokens: torch.Tensor, window, shift) -> torch.Tensor:
    """Sources in the order MONAI's 2-D block feeds its attention (SwinTransformerBlock.forward_part1)."""
    from monai.networks.nets.swin_unetr import get_window_size, window_partition

    b, h, w = tokens.shape
    ws, ss = get_window_size((h, w), window, shift)
    x = tokens[..., None].double()
    pad_h, pad_w = (ws[0] - h % ws[0]) % ws[0], (ws[1] - w % ws[1]) % ws[1]
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h), value=LAYOUT)
    if any(s > 0 for s in ss):
        x = torch.roll(x, shifts=(-ss[0], -ss[1]), dims=(1, 2))
    return window_partition(x, ws)[..., 0].long()


def _adi_reference(attn: torch.Tensor, src: torch.Tensor, batch: int) -> torch.Tensor:
    """(B, heads) float64 Eq. 7 from captured weights (G, heads, N, N) and sources (G, N)."""
    p = attn.double()
    plogp = torch.where(p > 0, -p * torch.log(p.clamp_min(1e-300)), torch.zeros_like(p))
    g, heads = p.shape[:2]
    scan = torch.arange(g) // (g // batch)
    num = torch.zeros(batch, heads, dtype=torch.float64)
    den = torch.zeros_like(num)
    for i in range(g):
        rq = src[i] == REAL
        pad_k = src[i] != REAL
        num[scan[i]] += plogp[i][:, rq][:, :, pad_k].sum((-1, -2))
        den[scan[i]] += plogp[i][:, rq].sum((-1, -2))
    return torch.where(den > 0, num / den.clamp_min(1e-300), 0.0)


def _swin_2d(v2: bool, flash: bool):
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(3)
    kw = {"use_flash_attention": flash} if flash else {}
    return SwinUNETR(
        in_channels=1,
        out_channels=2,
        feature_size=12,
        spatial_dims=2,
        use_v2=v2,
        depths=(2, 2, 2, 2),
        num_heads=(2, 2, 4, 4),
        **kw,
    ).eval()


def _letterbox(b=2, h=64, w=96):
    torch.manual_seed(0)
    x = torch.randn(b, 1, h, w)
    real = torch.ones(b, h, w, dtype=torch.bool)
    real[0, :16] = False  # letterbox bars on top
    real[1, :, 64:] = False  # on the right
    return x * real[:, None], real


@pytest.mark.parametrize("v2,flash", [(False, False), (True, False), (False, True)])
def test_monai_swin_unetr_2d_matches_a_reference_from_monai_code(v2, flash):
    model = _swin_2d(v2, flash)
    x, real = _letterbox()
    ds = ad.measure_adi(model, x, real)
    blocks = [(n, m) for n, m in model.named_modules() if hasattr(m, "shift_size") and hasattr(m, "attn")]
    refs, grids, handles = [], {}, []
    for i, (_, block) in enumerate(blocks):
        stage = i // 2

        def pre(module, args, i=i):
            grids[i] = tuple(args[0].shape[1:3])

        def post(module, args, out, i=i, block=block, stage=stage):
            tokens = _tokens_2d(real, 2 * 2**stage)
            assert tuple(tokens.shape[1:]) == grids[i]
            refs.append(
                (i, _adi_reference(out, _monai_layout_2d(tokens, block.window_size, block.shift_size), 2))
            )

        handles += [block.register_forward_pre_hook(pre), block.attn.softmax.register_forward_hook(post)]
    flags = [m for m in model.modules() if hasattr(m, "use_flash_attention")]
    for m in flags:
        m.use_flash_attention = False
    with torch.no_grad():
        model(x)
    for m in flags:
        m.use_flash_attention = flash
    for h in handles:
        h.remove()
    refs.sort(key=lambda r: r[0])
    got = ds["adi"].values  # (scan, layer, head)
    for i, ref in refs:
        heads = ref.shape[1]
        np.testing.assert_allclose(got[:, i, :heads], ref.numpy(), atol=1e-4, err_msg=blocks[i][0])
    assert [m.use_flash_attention for m in flags] == [flash] * len(flags)  # restored
    np.testing.assert_allclose(ds["padding_fraction"].values, [0.25, 1 / 3])  # share of non-real pixels


@pytest.mark.parametrize("order", masks.ORDERS)
def test_window_layout_in_2d_and_1d_follows_both_orders(order):
    """An index grid laid out by masks.window_layout equals rolling/padding it by hand."""
    for grid, window, shift in itertools.product(
        [(5, 7), (8, 6), (3, 9)], [(2, 3), (4, 4)], [(0, 0), (1, 1)]
    ):
        b = 2
        idx = torch.arange(b * grid[0] * grid[1]).reshape(b, *grid)
        # as a hand reference: index tokens; layout padding shows as -1
        x = idx
        if order == "roll-pad" and any(shift):
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2))
        pads = [(w - s % w) % w for s, w in zip(grid, window, strict=True)]
        x = F.pad(x, (0, pads[1], 0, pads[0]), value=-1)
        if order == "pad-roll" and any(shift):
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2))
        hp, wp = x.shape[1:]
        ref = x.reshape(b, hp // window[0], window[0], wp // window[1], window[1]).permute(0, 1, 3, 2, 4)
        ref = ref.reshape(-1, window[0] * window[1])
        real = torch.zeros(b, *grid, dtype=torch.bool)
        real.view(-1)[::3] = True  # a pattern to follow through the layout
        lay = masks.window_layout(real, window, shift, order=order, shrink=False)
        expected = torch.where(ref < 0, LAYOUT, torch.where(real.view(-1)[ref.clamp_min(0)], REAL, INPUT))
        assert torch.equal(lay.sources.long(), expected.long()), (grid, window, shift)
    lay = masks.window_layout(
        torch.tensor([[True, True, False, False, False]]), 2, 1, order=order, shrink=False
    )
    assert lay.sources.shape == (3, 2) and lay.num_windows == 3  # 1-D grids too


class _TokenModel(nn.Module):
    """A one-layer token transformer with a softmax module: the simplest adapter-free site."""

    def __init__(self, vocab=50, dim=16, heads=2):
        super().__init__()
        torch.manual_seed(5)
        self.embed = nn.Embedding(vocab, dim)
        self.qk = nn.Linear(dim, 2 * dim)
        self.softmax = nn.Softmax(-1)
        self.heads = heads

    def forward(self, ids):  # ids (B, L)
        b, n = ids.shape
        q, k = self.qk(self.embed(ids)).view(b, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        return self.softmax(q @ k.transpose(-1, -2))  # (B, heads, L, L)


def _token_site(model):
    def layout(sources, inputs):
        return SiteLayout(sources, sources, torch.arange(sources.shape[0]))

    return [AttentionSite("layer0", 0, 0, model.heads, model.softmax, layout)]


def test_token_inputs_and_the_accumulator_api():
    model = _TokenModel()
    ids = torch.randint(0, 50, (3, 10))
    real = torch.ones(3, 10, dtype=torch.bool)
    real[0, 7:] = False
    real[2, 4:] = False
    ds = ad.measure_adi(model, ids, real, sites=_token_site(model))
    with torch.no_grad():
        attn = model(ids)  # (B, heads, L, L)
    for b in range(3):
        src = torch.where(real[b], REAL, INPUT)[None]
        ref = _adi_reference(attn[b : b + 1], src, 1)[0]
        np.testing.assert_allclose(ds["adi"].values[b, 0], ref.numpy(), atol=1e-6)
    assert ds["adi"].values[1].max() == 0.0  # no padding, no dilution
    np.testing.assert_allclose(ds["padding_fraction"].values, [0.3, 0.0, 0.6])
    # the accumulator: two updates equal one batch; compute is the Dataset's adi; reset forgets
    meter = ADIMeter(model, sites=_token_site(model))
    meter.update(ids[:2], real[:2], scans=["a", "b"])
    meter.update(ids[2:], real[2:], scans=["c"])
    np.testing.assert_allclose(meter.compute().numpy(), ds["adi"].values, atol=1e-12)
    assert list(meter.to_dataset()["scan"].values) == ["a", "b", "c"]
    meter.reset()
    with pytest.raises(RuntimeError, match="no forward"):
        meter.compute()
    with pytest.raises(ValueError, match="do not match"):
        ad.measure_adi(model, ids, real[:, :5], sites=_token_site(model))


def test_windows_mean_is_the_mean_of_per_window_adi():
    model = _swin_2d(False, False)
    x, real = _letterbox()
    pooled = ad.measure_adi(model, x, real)
    mean = ad.measure_adi(model, x, real, windows="mean")
    assert mean.attrs["windows"] == "mean" and pooled.attrs["windows"] == "pooled"
    np.testing.assert_allclose(mean["adi_pooled"].values, pooled["adi"].values, equal_nan=True)
    np.testing.assert_allclose(mean["adi"].values, pooled["adi_window_mean"].values, equal_nan=True)
    # reference for the first block: ADI per window, averaged over windows with real queries
    block = next(m for m in model.modules() if hasattr(m, "shift_size") and hasattr(m, "attn"))
    seen = {}
    handle = block.attn.softmax.register_forward_hook(lambda m, a, out: seen.setdefault("attn", out))
    with torch.no_grad():
        model(x)
    handle.remove()
    src = _monai_layout_2d(_tokens_2d(real, 2), block.window_size, block.shift_size)
    attn = seen["attn"]
    per_window = [_adi_reference(attn[g : g + 1], src[g : g + 1], 1)[0] for g in range(attn.shape[0])]
    nw = attn.shape[0] // 2
    for b in range(2):
        rows = [per_window[g] for g in range(b * nw, (b + 1) * nw) if (src[g] == REAL).any()]
        np.testing.assert_allclose(mean["adi"].values[b, 0, :2], torch.stack(rows).mean(0).numpy(), atol=1e-6)
    assert not np.allclose(
        mean["adi"].values, pooled["adi"].values, equal_nan=True
    )  # the two readings differ


def test_a_forward_that_raises_restores_every_switch():
    model = _swin_2d(False, True)
    x, real = _letterbox()
    flags = [m for m in model.modules() if hasattr(m, "use_flash_attention")]

    def boom(module, args):
        raise RuntimeError("boom")

    handle = model.swinViT.layers3[0].register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        ad.measure_adi(model, x, real)
    handle.remove()
    assert all(m.use_flash_attention for m in flags)
    assert not any(m._forward_hooks for m in model.modules())  # no hook left behind


def test_the_adi_summary_names_the_stages_with_layout_padding():
    import pandas as pd

    from attndilute.study.adi_summary import layout_padding_note

    summary = pd.DataFrame({"stage": [0, 1, 2, 3], "mean_adi_layout_pad": [0.0, 0.0, 0.01, 0.2]})
    assert layout_padding_note(summary).startswith("S2, S3 include layout padding")
    assert "no stage" in layout_padding_note(summary.assign(mean_adi_layout_pad=0.0))


def _sync_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = _TokenModel()
    ids, real = _sync_batch()
    meter = ADIMeter(model, sites=_token_site(model))
    meter.update(ids[rank::world], real[rank::world], scans=[f"s{i}" for i in range(rank, 4, world)])
    meter.sync()
    if rank == 0:
        torch.save({"adi": meter.compute(), "scans": meter.scans}, out_file)
    dist.destroy_process_group()


def _sync_batch():
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 50, (4, 12), generator=gen)
    real = torch.arange(12)[None] < torch.tensor([12, 9, 5, 7])[:, None]
    return ids, real


def test_meter_sync_gathers_every_rank_under_two_process_gloo(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "adi.pt"
    mp.spawn(_sync_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = torch.load(out)
    assert got["scans"] == ["s0", "s2", "s1", "s3"]  # rank 0's scans, then rank 1's
    model = _TokenModel()
    ids, real = _sync_batch()
    single = ad.measure_adi(model, ids, real, sites=_token_site(model))
    order = [0, 2, 1, 3]
    torch.testing.assert_close(got["adi"], torch.from_numpy(single["adi"].values[order]), rtol=1e-12, atol=0)


def test_update_inside_a_with_block_and_a_failed_update_keep_the_meter_usable():
    model = _TokenModel()
    ids = torch.randint(0, 50, (2, 10))
    real = torch.ones(2, 10, dtype=torch.bool)
    real[0, 6:] = False
    meter = ADIMeter(model, sites=_token_site(model))
    with meter:
        meter.update(ids, real, scans=["a", "b"])
        assert model.softmax._forward_hooks  # still connected after the inner update
        meter.set_real(real, scans=["c", "d"])
        with torch.no_grad():
            model(ids)
    assert not model.softmax._forward_hooks
    assert meter.scans == ["a", "b", "c", "d"] and meter.compute().shape[0] == 4

    def boom(module, args):
        raise RuntimeError("out of memory")

    handle = model.qk.register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        meter.update(ids, real, scans=["e", "f"])
    handle.remove()
    assert meter.scans == ["a", "b", "c", "d"]  # the failed batch is forgotten
    meter.update(ids, real, scans=["e", "f"])
    assert meter.compute().shape[0] == 6
    with pytest.raises(ValueError, match="repeat"):
        meter.update(ids, real, scans=["a", "g"])
        meter.to_dataset()
