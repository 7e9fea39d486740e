"""attndilute.entropy against explicit loops, and its properties (seed Eq. 5-7)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attndilute.entropy import (
    EntropySums,
    adi,
    entropy_decomposition,
    entropy_decomposition_from_scores,
    neg_plogp,
)


def _loops(attn, qr, kr):
    """Explicit loops over queries and keys in float64."""
    nq, nk = attn.shape[-2:]
    out = dict.fromkeys(["h_rr", "h_rp", "h_pr", "h_pp", "mass_rr", "mass_rp", "mass_pr", "mass_pp"], 0.0)
    for i in range(nq):
        for j in range(nk):
            p = float(attn[i, j])
            h = -p * math.log(p) if p > 0 else 0.0
            key = ("r" if qr[i] else "p") + ("r" if kr[j] else "p")
            out[f"h_{key}"] += h
            out[f"mass_{key}"] += p
    out["n_real"] = int(qr.sum())
    out["n_pad"] = int((~qr).sum())
    return out


def _random(seed, lead=(2, 3), nq=9, nk=11, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(*lead, nq, nk, generator=g, dtype=torch.float64) * scale
    qr = torch.rand(*lead[:1], 1, nq, generator=g) > 0.4
    kr = torch.rand(*lead[:1], 1, nk, generator=g) > 0.4
    return scores, qr, kr


def test_matches_explicit_loops():
    scores, qr, kr = _random(0)
    attn = scores.softmax(-1)
    sums = entropy_decomposition(attn, qr, kr)
    assert sums.h_rr.shape == (2, 3)
    for b in range(2):
        for k in range(3):
            ref = _loops(attn[b, k], qr[b, 0], kr[b, 0])
            for name, value in ref.items():
                assert float(getattr(sums, name)[b, k]) == pytest.approx(value, abs=1e-10), name


def test_half_inputs_are_reduced_in_float32_and_one_hot_rows_are_finite():
    attn = torch.zeros(4, 5, dtype=torch.float16)
    attn[torch.arange(4), torch.tensor([0, 1, 2, 4])] = 1
    sums = entropy_decomposition(attn, torch.ones(4, dtype=torch.bool), torch.tensor([1, 1, 1, 0, 0]).bool())
    assert sums.h_rr.dtype == torch.float32
    assert all(torch.isfinite(v).all() for v in sums.as_dict().values())
    assert float(sums.h_rr) == 0.0 and float(sums.mass_rp) == 1.0
    assert float(adi(sums)) == 0.0  # one-hot rows spend no entropy anywhere
    bf = entropy_decomposition(
        torch.full((3, 4), 0.25, dtype=torch.bfloat16), torch.ones(3).bool(), torch.ones(4).bool()
    )
    assert bf.h_rr.dtype == torch.float32 and float(bf.h_rr) == pytest.approx(3 * math.log(4), rel=1e-6)


def test_adi_definition_and_nan_without_real_queries():
    scores, qr, kr = _random(1)
    sums = entropy_decomposition(scores.softmax(-1), qr, kr)
    expect = sums.h_rp / (sums.h_rr + sums.h_rp)
    torch.testing.assert_close(adi(sums), torch.where(sums.n_real > 0, expect, torch.nan), equal_nan=True)
    none_real = entropy_decomposition(scores.softmax(-1), torch.zeros(9, dtype=torch.bool), kr)
    assert torch.isnan(adi(none_real)).all()


def test_sums_add_and_reduce():
    scores, qr, kr = _random(2)
    a = entropy_decomposition(scores.softmax(-1), qr, kr)
    both = a + a
    torch.testing.assert_close(both.h_rp, 2 * a.h_rp)
    total = a.sum((0, 1))
    assert isinstance(total, EntropySums) and total.h_rr.shape == ()
    torch.testing.assert_close(total.n_real, a.n_real.sum())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), scale=st.floats(0.1, 30.0), tile=st.integers(1, 12))
def test_score_form_agrees_with_weight_form(seed, scale, tile):
    scores, qr, kr = _random(seed, scale=scale)
    scores32 = scores.float()
    a = entropy_decomposition(scores32.softmax(-1), qr, kr)
    b = entropy_decomposition_from_scores(scores32, qr, kr, tile=tile)
    for name, x in a.as_dict().items():
        torch.testing.assert_close(getattr(b, name), x, atol=1e-5, rtol=1e-5, msg=name)


def test_score_form_handles_minus_inf_keys():
    scores, qr, kr = _random(3)
    masked = scores.masked_fill(~kr[..., None, :], float("-inf"))
    b = entropy_decomposition_from_scores(masked, qr, kr, tile=4)
    assert float(b.h_rp.abs().max()) == 0.0 and float(b.mass_rp.abs().max()) == 0.0
    assert torch.isfinite(b.h_rr).all()


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 100_000), scale=st.floats(0.0, 50.0))
def test_adi_properties(seed, scale):
    scores, qr, kr = _random(seed, scale=scale)
    qr = qr.clone()
    qr[..., 0] = True  # at least one real query
    kr = kr.clone()
    kr[..., 0] = True
    value = adi(entropy_decomposition(scores.softmax(-1), qr, kr))
    assert ((value >= 0) & (value <= 1)).all()
    # no padding -> 0
    none = adi(entropy_decomposition(scores.softmax(-1), qr, torch.ones_like(kr)))
    assert (none == 0).all()
    # padding keys masked with -inf -> 0
    masked = scores.masked_fill(~kr[..., None, :], float("-inf")).softmax(-1)
    assert (adi(entropy_decomposition(masked, qr, kr)) == 0).all()
    # permuting queries and keys together with their masks changes nothing
    g = torch.Generator().manual_seed(seed)
    pq, pk = torch.randperm(9, generator=g), torch.randperm(11, generator=g)
    perm = scores.softmax(-1)[..., pq, :][..., pk]
    torch.testing.assert_close(adi(entropy_decomposition(perm, qr[..., pq], kr[..., pk])), value)


def test_neg_plogp_zero_convention():
    p = torch.tensor([0.0, 1.0, 0.5])
    torch.testing.assert_close(neg_plogp(p), torch.tensor([0.0, 0.0, 0.5 * math.log(2)]))
