"""Reduce one attention call to entropy and mass sums by token source, inside the hook (Eq. 5-6).

The attention ``(G, heads, Nq, Nk)`` of one block is consumed in chunks of groups (windows), so
the extra memory is a small fraction of the map the model already holds, and only sums leave:
per scan and head a 3x3 matrix (query source x key source) of entropy and of attention mass, and
the sum of per-window ADI for ``windows="mean"``. The formulas are the core's
(:func:`attndilute.entropy.source_entropy`); nothing here re-implements Eq. 5-6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from attndilute.entropy import source_entropy
from attndilute.masks import INPUT_PAD, LAYOUT_PAD, REAL

if TYPE_CHECKING:  # sites -> fused -> reduce: the layout type is only named here
    from attndilute.instrument.sites import SiteLayout

NUM_SOURCES = 3
CHUNK_ELEMENTS = 1 << 20  # ~4 MB of float32 per temporary: stays in cache, measured fastest on CPU


def reduce_attention(
    attn: torch.Tensor,
    layout: SiteLayout,
    num_scans: int,
    *,
    scores: torch.Tensor | None = None,
    groups: slice | None = None,
    mean_heads: bool = False,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> dict[str, torch.Tensor]:
    """Entropy and mass sums of one attention call, by scan, head, query and key source.

    Args:
        attn: (G', heads, Nq, Nk) post-softmax attention, any float dtype: the groups ``groups``
            of the call (default all G of ``layout``).
        layout: sources of the G groups' queries and keys and their scan index.
        num_scans: B, the number of scans in the batch.
        scores: (G', heads, Nq, Nk) the logits ``attn`` is the softmax of, when the caller has
            them: the entropy then takes one logarithm per row instead of one per entry
            (:func:`attndilute.entropy.source_entropy`).
        groups: which of the layout's G groups ``attn`` holds (a chunk of a fused attention
            computed window-chunk by window-chunk); sums of the chunks of a call add up.
        mean_heads: average the attention over heads before the entropy (``heads="mean-attention"``,
            the authors' public repository, RectalTxSeg) instead of per head (Eq. 6-7).
        chunk_elements: work on at most about this many attention entries at a time.

    Returns:
        ``h`` and ``mass``, each (B, heads or 1, 3, 3) float64: ``h[b, k, s, t]`` is the entropy
        that queries of source s in scan b spend on keys of source t in head k (Eq. 5-6, through
        :func:`attndilute.entropy.source_entropy`); ``window_adi`` (B, heads or 1, 3): the sum over
        groups (windows) holding real queries of each window's ADI (Eq. 7 inside the window) and
        its input-pad and layout-pad parts; ``windows`` (B,): how many such windows; ``count``
        (B, 3): queries of each source.

    Its length is the documented signature: the code is 51 lines.
    """
    groups = groups or slice(0, layout.query_sources.shape[0])
    query_sources, key_sources = layout.query_sources[groups], layout.key_sources[groups]
    g, heads, nq, nk = attn.shape
    if query_sources.shape != (g, nq) or key_sources.shape != (g, nk):
        raise RuntimeError(
            f"attention {tuple(attn.shape)} does not match the token layout "
            f"{tuple(query_sources.shape)} x {tuple(key_sources.shape)}"
        )
    if scores is not None and scores.shape != attn.shape:
        raise RuntimeError(f"scores {tuple(scores.shape)} and attention {tuple(attn.shape)} differ")
    out_heads = 1 if mean_heads else heads
    h = torch.zeros(num_scans, out_heads, NUM_SOURCES, NUM_SOURCES, dtype=torch.float64, device=attn.device)
    mass = torch.zeros_like(h)
    window_adi = torch.zeros(num_scans, out_heads, NUM_SOURCES, dtype=torch.float64, device=attn.device)
    q_hot = F.one_hot(query_sources.to(attn.device).long(), NUM_SOURCES).to(torch.float32)  # (G', Nq, 3)
    k_hot = F.one_hot(key_sources.to(attn.device).long(), NUM_SOURCES).to(torch.float32)  # (G', Nk, 3)
    scan_hot = F.one_hot(layout.scan_index[groups].to(attn.device).long(), num_scans).to(torch.float64).T
    has_real = (query_sources == REAL).any(1).to(attn.device)  # (G',)
    step = max(1, chunk_elements // max(1, heads * nq * nk))
    for sl, uniform in _runs(_uniform_groups(query_sources, key_sources), step):
        p = attn[sl].to(torch.float32)  # (g', heads, Nq, Nk)
        s = None if scores is None or mean_heads else scores[sl]
        if mean_heads:
            p = p.mean(1, keepdim=True)
        hg, mg = source_entropy(
            p, q_hot[sl, None], k_hot[sl, None], s, uniform=uniform
        )  # (g', heads', 3q, 3k)
        per_group = torch.cat([hg, mg], 1).double()  # (g', 2 heads', 3, 3)
        per_scan = (scan_hot[:, sl] @ per_group.reshape(per_group.shape[0], -1)).view(
            num_scans, 2, out_heads, 3, 3
        )
        h += per_scan[:, 0]
        mass += per_scan[:, 1]
        real_rows = hg[:, :, REAL].double()  # (g', heads', 3k): entropy of the real queries by key source
        total = real_rows.sum(-1, keepdim=True)
        share = torch.where(total > 0, real_rows / total.clamp_min(1e-300), 0.0)  # (g', heads', 3)
        share = (
            torch.stack(
                [
                    share[..., INPUT_PAD] + share[..., LAYOUT_PAD],
                    share[..., INPUT_PAD],
                    share[..., LAYOUT_PAD],
                ],
                -1,
            )
            * has_real[sl, None, None]
        )
        window_adi += (scan_hot[:, sl] @ share.reshape(share.shape[0], -1)).view(num_scans, out_heads, 3)
    windows = scan_hot @ has_real.double()  # (B,)
    count = scan_hot @ q_hot.sum(1).double()  # (B, 3)
    return {"h": h, "mass": mass, "window_adi": window_adi, "windows": windows, "count": count}


def _uniform_groups(query_sources: torch.Tensor, key_sources: torch.Tensor) -> list[bool]:
    """Per group: do all its queries and keys share one source (a window wholly real or padding)?"""
    first = query_sources[:, :1]  # (G, 1)
    same = (query_sources == first).all(1) & (key_sources == first).all(1)  # (G,)
    return same.tolist()


def _runs(uniform: list[bool], step: int) -> list[tuple[slice, bool]]:
    """Contiguous chunks of at most ``step`` groups, each wholly uniform or wholly mixed.

    A uniform run shorter than a quarter chunk is treated as mixed (the general form is exact for
    it too): with small windows (SMIT's 64 tokens) uniform and mixed windows alternate every few
    groups, and many tiny chunks cost more in per-call overhead than the uniform form saves.
    """
    shortest = max(1, step // 4)
    uniform = list(uniform)
    start = 0
    for i in range(1, len(uniform) + 1):
        if i == len(uniform) or uniform[i] != uniform[start]:
            if uniform[start] and i - start < shortest:
                uniform[start:i] = [False] * (i - start)
            start = i
    out, start = [], 0
    for i in range(1, len(uniform) + 1):
        if i == len(uniform) or uniform[i] != uniform[start] or i - start == step:
            out.append((slice(start, i), uniform[start]))
            start = i
    return out
