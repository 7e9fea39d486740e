"""The one-pass CPU kernel of Eq. 5-6 against a float64 oracle and against the torch form."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attndilute.entropy import source_entropy
from attndilute.instrument import cpu_kernel, reduce
from attndilute.instrument.sites import SiteLayout

pytestmark = pytest.mark.skipif(not cpu_kernel.available(), reason="the C extension was not built")


def _sources(g: int, n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 3, (g, n), generator=torch.Generator().manual_seed(seed))  # (G, N) int64


def _kernel(attn, scores, q_src, k_src, **kw):
    key_rows = F.one_hot(k_src, 3).float().transpose(1, 2).contiguous()  # (G, 3, Nk)
    return cpu_kernel.group_sums(attn, scores, q_src, key_rows, **kw)  # (G, heads, 2, 3, 3)


def _oracle(scores, q_src, k_src):
    """float64 ``-Σ p log p`` and ``Σ p`` by source, from the exact softmax of the scores."""
    p = scores.double().softmax(-1)  # (G, heads, Nq, Nk)
    q = F.one_hot(q_src, 3).double()[:, None]  # (G, 1, Nq, 3)
    k = F.one_hot(k_src, 3).double()[:, None]
    return q.mT @ -torch.special.xlogy(p, p) @ k, q.mT @ p @ k  # (G, heads, 3, 3) each


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


MASKS = {
    "none": lambda s, m: s,
    "-inf": lambda s, m: s.masked_fill(m, float("-inf")),
    "finfo.min": lambda s, m: s.masked_fill(m, torch.finfo(torch.float32).min),
    "monai -100": lambda s, m: s - 100.0 * m,
}
SCALES = {"ordinary": (4.0, 20.0), "peaked +-300": (100.0, 0.0), "offset 1e6": (3.0, 1e6)}


@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("mask", list(MASKS))
def test_kernel_matches_the_float64_oracle(mask, scale):
    """Masked keys, peaked attention with large logits and huge offsets: the terms are never of
    both signs, so no regime needs the per-entry logarithm."""
    g = torch.Generator().manual_seed(0)
    spread, offset = SCALES[scale]
    masked = torch.rand(3, 2, 40, 40, generator=g) > 0.6
    masked[..., 0] = False  # every row keeps a key
    scores = MASKS[mask](torch.randn(3, 2, 40, 40, generator=g) * spread + offset, masked)
    q_src, k_src = _sources(3, 40, 1), _sources(3, 40, 2)
    out = _kernel(scores.softmax(-1), scores, q_src, k_src)
    h_ref, m_ref = _oracle(scores, q_src, k_src)
    assert _rel(out[:, :, 0], h_ref) < 1e-5
    torch.testing.assert_close(out[:, :, 1], m_ref, atol=1e-5, rtol=1e-5)


def test_kernel_in_bf16_is_as_close_to_the_oracle_as_the_torch_form():
    """Weights and scores of an autocast forward (bf16, 3 significant digits). The logarithm of
    one rounded weight per row sets the error: 5-8e-4 of the largest sum for either form."""
    g = torch.Generator().manual_seed(3)
    scores = (torch.randn(4, 3, 49, 49, generator=g) * 4).bfloat16()
    attn = scores.float().softmax(-1).bfloat16()
    q_src, k_src = _sources(4, 49, 4), _sources(4, 49, 5)
    out = _kernel(attn, scores, q_src, k_src)
    q, k = F.one_hot(q_src, 3).float()[:, None], F.one_hot(k_src, 3).float()[:, None]
    h, m = source_entropy(attn.float(), q, k, scores.float())
    h_ref, m_ref = _oracle(scores.float(), q_src, k_src)
    assert _rel(out[:, :, 0], h_ref) < 2e-3
    assert _rel(out[:, :, 0], h_ref) <= 1.5 * _rel(h.double(), h_ref)
    torch.testing.assert_close(out[:, :, 1], m.double(), atol=1e-5, rtol=1e-5)  # the same rounded weights


def test_uniform_zero_and_nan_rows():
    n = 6
    full = torch.full((1, 1, n, n), torch.finfo(torch.float32).min)  # every key masked: uniform weights
    src = torch.zeros(1, n, dtype=torch.long)
    out = _kernel(full.softmax(-1), full, src, src)
    assert math.isclose(float(out[0, 0, 0, 0, 0]), n * math.log(n), rel_tol=1e-6)
    zeros = torch.zeros(1, 1, n, n)  # a model that zeroes fully masked rows: no entropy, no mass
    assert float(_kernel(zeros, zeros, src, src).abs().sum()) == 0.0
    nan = torch.rand(1, 1, n, n).softmax(-1)
    nan[0, 0, 2, 3] = float("nan")
    assert torch.isnan(_kernel(nan, torch.zeros_like(nan), src, src)[0, 0, :, 0, 0]).all()


def test_rows_longer_than_a_key_block():
    """Rows of more than ``KEY_BLOCK`` keys are summed block by block (float64 across blocks)."""
    nk = 2 * cpu_kernel.KEY_BLOCK + 123
    scores = torch.randn(1, 2, 5, nk, generator=torch.Generator().manual_seed(6)) * 3
    q_src, k_src = _sources(1, 5, 7), _sources(1, nk, 8)
    out = _kernel(scores.softmax(-1), scores, q_src, k_src)
    h_ref, m_ref = _oracle(scores, q_src, k_src)
    assert _rel(out[:, :, 0], h_ref) < 1e-6
    torch.testing.assert_close(out[:, :, 1], m_ref, atol=1e-6, rtol=1e-6)


def test_threads_and_chunks_give_the_same_sums(monkeypatch):
    scores = torch.randn(5, 3, 27, 27, generator=torch.Generator().manual_seed(9)) * 2
    q_src, k_src = _sources(5, 27, 10), _sources(5, 27, 11)
    one = _kernel(scores.softmax(-1), scores, q_src, k_src, threads=1)
    assert torch.equal(_kernel(scores.softmax(-1), scores, q_src, k_src, threads=3), one)
    monkeypatch.setattr(cpu_kernel, "CHUNK_ELEMENTS", 2 * 3 * 27 * 27)  # chunks of 2 groups: 2, 2, 1
    strided = scores.transpose(-1, -2).contiguous().transpose(-1, -2)  # not contiguous: converted in chunks
    assert torch.equal(_kernel(strided.softmax(-1), strided, q_src, k_src, threads=2), one)


def test_rows_of_negative_scores():
    """All scores below zero and distinct: the row maximum is taken on the float bits, which order
    negative floats backwards unless flipped."""
    scores = -torch.rand(2, 2, 30, 30, generator=torch.Generator().manual_seed(15)) * 8 - 0.5
    q_src, k_src = _sources(2, 30, 16), _sources(2, 30, 17)
    out = _kernel(scores.softmax(-1), scores, q_src, k_src)
    assert _rel(out[:, :, 0], _oracle(scores, q_src, k_src)[0]) < 1e-6


def test_a_library_built_from_another_source_version_is_not_called(monkeypatch):
    monkeypatch.setattr(cpu_kernel, "KERNEL_VERSION", cpu_kernel.KERNEL_VERSION + 1)
    cpu_kernel._library.cache_clear()
    try:
        assert not cpu_kernel.available()
    finally:
        monkeypatch.undo()
        cpu_kernel._library.cache_clear()
    assert cpu_kernel.available()


def test_reduce_attention_takes_the_kernel_on_cpu_and_the_torch_form_when_switched_off(monkeypatch):
    g = torch.Generator().manual_seed(12)
    scores = torch.randn(6, 3, 27, 27, generator=g) * 3
    src = torch.randint(0, 3, (6, 27), generator=g).to(torch.uint8)
    layout = SiteLayout(src, src, torch.tensor([0, 0, 0, 1, 1, 1]))
    p = scores.softmax(-1)
    monkeypatch.setenv("ATTNDILUTE_KERNEL", "torch")
    assert not cpu_kernel.available()
    torch_form = reduce.reduce_attention(p, layout, 2, scores=scores)
    monkeypatch.delenv("ATTNDILUTE_KERNEL")

    def no_torch_form(*args, **kwargs):
        raise AssertionError("the torch form ran")

    monkeypatch.setattr(reduce, "source_entropy", no_torch_form)
    with_kernel = reduce.reduce_attention(p, layout, 2, scores=scores)
    for name in torch_form:
        torch.testing.assert_close(with_kernel[name], torch_form[name], atol=1e-5, rtol=1e-5)
    with pytest.raises(AssertionError, match="torch form"):  # weights alone: the torch form
        reduce.reduce_attention(p, layout, 2)


def test_mismatched_shapes_and_sources_are_refused_before_the_compiled_loops():
    scores = torch.randn(2, 1, 5, 5)
    src = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="do not match"):
        _kernel(scores.softmax(-1), scores, src[:, :4], src)
    with pytest.raises(ValueError, match="0, 1 or 2"):
        _kernel(scores.softmax(-1), scores, src + 3, src)
    meta = torch.empty(2, 1, 5, 5, device="meta")
    with pytest.raises(ValueError, match="CPU tensors"):
        _kernel(meta, meta, src, src)
    empty = torch.zeros(0, 1, 5, 5)  # no groups: no sums
    assert _kernel(empty, empty, src[:0], src[:0]).shape == (0, 1, 2, 3, 3)
