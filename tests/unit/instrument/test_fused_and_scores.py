"""The one-log-per-row entropy (scores form) and fused attention measured chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attndilute import models
from attndilute.entropy import source_entropy
from attndilute.instrument import fused, measure_adi, reduce
from attndilute.instrument.fused import chunked_attention


def _classes(n: int, seed: int, k: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(0, k, (n,), generator=g), k).float()


def _oracle(scores: torch.Tensor, q: torch.Tensor, k: torch.Tensor):
    """float64 per-entry form from the exact softmax of the scores."""
    p = scores.double().softmax(-1)
    return source_entropy(p, q.double(), k.double())


MASKS = {
    "none": lambda s: s,
    "-inf": lambda s: s.masked_fill(
        torch.rand(s.shape, generator=torch.Generator().manual_seed(1)) > 0.6, float("-inf")
    ),
    "finfo.min": lambda s: s.masked_fill(
        torch.rand(s.shape, generator=torch.Generator().manual_seed(2)) > 0.6, torch.finfo(torch.float32).min
    ),
    "monai -100": lambda s: (
        s - 100.0 * (torch.rand(s.shape, generator=torch.Generator().manual_seed(3)) > 0.5)
    ),
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_scores_form_matches_float64_oracle(mask, dtype):
    g = torch.Generator().manual_seed(0)
    scores = MASKS[mask](
        torch.randn(4, 2, 49, 49, generator=g) * 4 + 20
    )  # offset: cancellation in lse * mass
    scores[..., 0] = scores[..., 0].clamp_min(-50.0)  # every row keeps a key
    scores = scores.to(dtype).float()  # bf16 logits, as an autocast forward gives them
    q, k = _classes(49, 1)[None, None], _classes(49, 2)[None, None]
    p = scores.softmax(-1)
    h, m = source_entropy(p, q, k, scores)
    h_ref, m_ref = _oracle(scores, q, k)
    torch.testing.assert_close(h.double(), h_ref, atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(m.double(), m_ref, atol=1e-5, rtol=1e-5)
    h_log, _ = source_entropy(p, q, k)  # the per-entry form agrees too
    torch.testing.assert_close(h, h_log, atol=2e-4, rtol=1e-5)


def test_scores_form_takes_the_row_maximum_when_the_diagonal_weight_vanishes():
    scores = torch.zeros(1, 1, 8, 8)
    scores[..., torch.arange(8), torch.arange(8)] = -200.0  # self-weight ~ e^-200: not a usable anchor
    q, k = _classes(8, 3)[None, None], _classes(8, 4)[None, None]
    h, _ = source_entropy(scores.softmax(-1), q, k, scores)
    torch.testing.assert_close(h.double(), _oracle(scores, q, k)[0], atol=1e-5, rtol=1e-5)


def test_scores_form_falls_back_for_fully_masked_rows_and_huge_logits():
    q, k = _classes(6, 5)[None], _classes(6, 6)[None]
    full = torch.full((1, 6, 6), torch.finfo(torch.float32).min)  # every key masked: uniform weights
    h, _ = source_entropy(full.softmax(-1), q, k, full)
    torch.testing.assert_close(h.sum(), torch.tensor(6 * np.log(6), dtype=torch.float32))
    huge = torch.randn(1, 6, 6) * 3 + 1e6
    h, _ = source_entropy(huge.softmax(-1), q, k, huge)
    torch.testing.assert_close(h.double(), _oracle(huge, q, k)[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("uniform", [False, True])
def test_scores_form_stays_accurate_for_peaked_attention_with_large_logits(uniform):
    """Logits of +-300 leave little entropy to a large lse: the cancellation check takes the
    per-entry form there (the scores form alone was off by 2e-4 of the largest sum)."""
    g = torch.Generator().manual_seed(4)
    scores = torch.randn(4, 3, 64, 64, generator=g) * 100
    q = F.one_hot(torch.zeros(64).long(), 3).float() if uniform else _classes(64, 8)
    q = q[None, None]
    h, _ = source_entropy(scores.softmax(-1), q, q, scores, uniform=uniform)
    h_ref = _oracle(scores, q, q)[0]
    assert float((h.double() - h_ref).abs().max() / h_ref.abs().max()) < 1e-5


def test_scores_form_is_taken_for_ordinary_logits(monkeypatch):
    from attndilute import entropy

    def no_log(p):
        raise AssertionError("the per-entry logarithm was taken")

    monkeypatch.setattr(entropy, "neg_plogp", no_log)
    scores = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 4 + 20
    q = _classes(64, 9)[None, None]
    one_class = q[..., :1, :].expand_as(q)
    source_entropy(scores.softmax(-1), q, q, scores)
    source_entropy(scores.softmax(-1), one_class, one_class, scores, uniform=True)


@pytest.mark.parametrize("with_scores", [False, True])
def test_sums_leave_a_callers_autocast_region(with_scores):
    """An ``autocast_dtype`` forward reduces its attention inside the autocast region, which would
    run the sums' matrix products in bf16 (off by 0.2-0.4% of the sums before this was fixed)."""
    from attndilute.entropy import entropy_decomposition_from_scores

    scores = torch.randn(4, 3, 49, 49, generator=torch.Generator().manual_seed(13)) * 3
    q = _classes(49, 14)[None, None]
    s = scores if with_scores else None
    exact = source_entropy(scores.softmax(-1), q, q, s)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = source_entropy(scores.softmax(-1), q, q, s)
        tiled = entropy_decomposition_from_scores(scores, q[..., 0] > 0, q[..., 0] > 0)
    for a, b in zip(inside, exact, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=0, rtol=1e-6)
    reference = entropy_decomposition_from_scores(scores, q[..., 0] > 0, q[..., 0] > 0)
    torch.testing.assert_close(tiled.h_rp, reference.h_rp, atol=0, rtol=1e-6)


def test_reduce_with_scores_and_chunks_equals_the_per_entry_reduction():
    from attndilute.instrument.sites import SiteLayout

    g = torch.Generator().manual_seed(7)
    scores = torch.randn(6, 3, 27, 27, generator=g) * 3
    src = torch.randint(0, 3, (6, 27), generator=g).to(torch.uint8)
    layout = SiteLayout(src, src, torch.tensor([0, 0, 0, 1, 1, 1]))
    p = scores.softmax(-1)
    whole = reduce.reduce_attention(p, layout, 2)
    parts = [
        reduce.reduce_attention(p[sl], layout, 2, scores=scores[sl], groups=sl, chunk_elements=1)
        for sl in (slice(0, 2), slice(2, 5), slice(5, 6))
    ]
    for name in whole:
        torch.testing.assert_close(sum(part[name] for part in parts), whole[name], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- chunked fused attention


@pytest.mark.parametrize("case", ["plain", "float mask", "bool mask", "causal", "gqa", "scale"])
def test_chunked_attention_equals_sdpa_and_reports_every_group_once(case):
    g = torch.Generator().manual_seed(11)
    q = torch.randn(5, 4, 10, 8, generator=g)
    kv_heads = 2 if case == "gqa" else 4
    k, v = torch.randn(5, kv_heads, 10, 8, generator=g), torch.randn(5, kv_heads, 10, 6, generator=g)
    kwargs = {}
    if case == "float mask":
        kwargs["attn_mask"] = torch.randn(1, 4, 10, 10, generator=g)
    elif case == "bool mask":
        kwargs["attn_mask"] = (torch.rand(5, 1, 10, 10, generator=g) > 0.3) | torch.eye(10, dtype=torch.bool)
    elif case == "causal":
        kwargs["is_causal"] = True
    elif case == "gqa":
        kwargs["enable_gqa"] = True
    elif case == "scale":
        kwargs["scale"] = 0.3
    seen = []

    def on_attention(weights, scores=None, groups=None):
        seen.append(groups)
        torch.testing.assert_close(weights, scores.softmax(-1))
        assert weights.shape[0] == groups.stop - groups.start and weights.numel() <= 2 * 4 * 10 * 10

    out = chunked_attention(q, k, v, **kwargs, on_attention=on_attention, chunk_elements=2 * 4 * 10 * 10)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, **kwargs), atol=1e-5, rtol=1e-5)
    assert seen == [slice(0, 2), slice(2, 4), slice(4, 5)]


def test_monai_flash_path_is_measured_chunk_by_chunk_like_the_explicit_path(monkeypatch):
    """use_flash_attention stays on; its kernel is computed a few windows at a time, same ADI."""
    torch.manual_seed(0)
    flash = models.build("swin_unetr", feature_size=12, window_size=4, use_flash_attention=True).eval()
    explicit = models.build("swin_unetr", feature_size=12, window_size=4).eval()
    explicit.load_state_dict(flash.state_dict())
    x = torch.randn(2, 1, 64, 32, 32)
    real = torch.ones(2, 64, 32, 32, dtype=torch.bool)
    real[0, ..., -10:] = False
    real[1, :, -6:] = False
    chunks = []
    original = fused.chunked_attention

    def spy(*args, **kwargs):
        on = kwargs["on_attention"]
        kwargs["on_attention"] = lambda w, scores=None, groups=None: (
            chunks.append(w.shape[0]),
            on(w, scores, groups),
        )
        return original(*args, **kwargs)

    monkeypatch.setattr(fused, "chunked_attention", spy)
    monkeypatch.setattr(reduce, "CHUNK_ELEMENTS", 3 * 64 * 64 * 5)  # five windows of stage 0 at a time
    got = measure_adi(flash, x * real[:, None], real)
    assert all(b.attn.use_flash_attention for layer in flash.swinViT.layers1 for b in layer.blocks)
    want = measure_adi(explicit, x * real[:, None], real)
    assert chunks and max(chunks) <= 5
    for name in ("adi", "h_rr", "h_rp", "mass_rp", "adi_window_mean"):
        np.testing.assert_allclose(got[name].values, want[name].values, atol=1e-4, rtol=1e-4)
