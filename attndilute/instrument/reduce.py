"""Reduce one attention call to entropy and mass sums by token source, inside the hook (Eq. 5-6).

The attention ``(G, heads, Nq, Nk)`` of one block is reduced where it is, and only sums leave:
per scan and head a 3x3 matrix (query source x key source) of entropy and of attention mass, and
the sum of per-window ADI for ``windows="mean"``. Eq. 5-6 come from one of two places: on a CPU,
with the scores, the one-pass kernel :func:`attndilute.instrument.cpu_kernel.group_sums` (no
temporaries); otherwise (a GPU, weights alone, ``heads="mean-attention"``) the core's
:func:`attndilute.entropy.source_entropy`, in chunks of groups (windows), so the extra memory is
a small fraction of the map the model already holds. Tests hold the two to each other and to a
float64 oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from attndilute.entropy import source_entropy
from attndilute.instrument import cpu_kernel
from attndilute.masks import INPUT_PAD, LAYOUT_PAD, REAL

if TYPE_CHECKING:  # sites -> fused -> reduce: the layout type is only named here
    from attndilute.instrument.sites import SiteLayout

NUM_SOURCES = 3
#: bumped when the sums of the same attention change beyond rounding; a resumable run keys its
#: committed parts with it, so parts from before a change are measured again (2: the sums leave
#: the caller's autocast region, 2026-12-03)
SUMS_VERSION = 2
CHUNK_ELEMENTS = 1 << 20  # ~4 MB of float32 per temporary (256K-2M entries timed within 10% on CPU)


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
            them: the entropy then takes one logarithm per row instead of one per entry.
        groups: which of the layout's G groups ``attn`` holds (a chunk of a fused attention
            computed window-chunk by window-chunk); sums of the chunks of a call add up.
        mean_heads: average the attention over heads before the entropy (``heads="mean-attention"``,
            the authors' public repository, RectalTxSeg) instead of per head (Eq. 6-7).
        chunk_elements: work on at most about this many attention entries at a time.

    Returns:
        ``h`` and ``mass``, each (B, heads or 1, 3, 3) float64: ``h[b, k, s, t]`` is the entropy
        that queries of source s in scan b spend on keys of source t in head k (Eq. 5-6);
        ``window_adi`` (B, heads or 1, 3): the sum over
        groups (windows) holding real queries of each window's ADI (Eq. 7 inside the window) and
        its input-pad and layout-pad parts; ``windows`` (B,): how many such windows; ``count``
        (B, 3): queries of each source.

    Its length is the documented signature: the code is 32 lines.
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
    plan = _plan(layout, groups, num_scans, max(1, chunk_elements // max(1, heads * nq * nk)), attn.device)
    if not mean_heads and cpu_kernel.applies(attn, scores):  # one pass over the maps, no chunks
        per_group = cpu_kernel.group_sums(attn, scores, plan.q_index, plan.k_rows).transpose(1, 2)
    else:
        parts = []
        for sl, uniform in plan.runs:
            p = attn[sl].to(torch.float32)  # (g', heads, Nq, Nk)
            s = None if scores is None or mean_heads else scores[sl]
            if mean_heads:
                p = p.mean(1, keepdim=True)
            classes = plan.q_hot[sl, None], plan.k_hot[sl, None]  # (g', 1, N, 3)
            parts.append(torch.stack(source_entropy(p, *classes, s, uniform=uniform), 1))
        per_group = torch.cat(parts).double()
    # per_group: (G', 2, heads', 3q, 3k) entropy and mass of each group
    h, mass = (plan.scan_hot @ per_group.flatten(1)).view(num_scans, *per_group.shape[1:]).unbind(1)
    real_rows = per_group[:, 0, :, REAL]  # (G', heads', 3k): entropy of the real queries by key source
    total = real_rows.sum(-1, keepdim=True)
    share = torch.where(total > 0, real_rows / total.clamp_min(1e-300), 0.0)  # (G', heads', 3)
    pads = share[..., INPUT_PAD], share[..., LAYOUT_PAD]
    share = torch.stack([pads[0] + pads[1], *pads], -1)  # (G', heads', 3): all padding, input, layout
    window_adi = plan.scan_hot @ (share * plan.has_real[:, None, None]).flatten(1)
    return {"h": h, "mass": mass, "window_adi": window_adi.view(num_scans, *share.shape[1:]),
            "windows": plan.windows.clone(), "count": plan.count.clone()}


@dataclass(frozen=True)
class _Plan:
    """What :func:`reduce_attention` derives from a layout, for one range of groups."""

    q_hot: torch.Tensor  # (G', Nq, 3) float32 one-hot query sources
    k_hot: torch.Tensor  # (G', Nk, 3) float32
    q_index: torch.Tensor | None  # (G', Nq) int64 query sources (the CPU kernel's form; None off CPU)
    k_rows: torch.Tensor | None  # (G', 3, Nk) float32 one-hot key sources, a row per source
    runs: list[tuple[slice, bool]]  # chunks of groups and whether each is uniform
    scan_hot: torch.Tensor  # (B, G') float64: which scan each group belongs to
    has_real: torch.Tensor  # (G',) float64: the group holds real queries
    windows: torch.Tensor  # (B,) float64: groups holding real queries per scan
    count: torch.Tensor  # (B, 3) float64: queries of each source per scan


def _plan(layout: SiteLayout, groups: slice, num_scans: int, step: int, device: torch.device) -> _Plan:
    """The layout's plan for ``groups`` in chunks of ``step`` groups, cached on the layout."""
    key = (groups.start, groups.stop, num_scans, step, str(device))
    if key in layout.plans:
        return layout.plans[key]
    query_sources, key_sources = layout.query_sources[groups], layout.key_sources[groups]
    q_hot = F.one_hot(query_sources.to(device).long(), NUM_SOURCES).to(torch.float32)
    k_hot = F.one_hot(key_sources.to(device).long(), NUM_SOURCES).to(torch.float32)
    scan_hot = F.one_hot(layout.scan_index[groups].to(device).long(), num_scans).to(torch.float64).T
    has_real = (query_sources == REAL).any(1).to(device).double()
    kernel_form = (None, None)  # the CPU kernel's query indices and key rows, for CPU plans only
    if torch.device(device).type == "cpu":
        kernel_form = query_sources.to(device).long(), k_hot.transpose(1, 2).contiguous()
    plan = _Plan(q_hot, k_hot, *kernel_form, _runs(_uniform_groups(query_sources, key_sources), step),
                 scan_hot, has_real, scan_hot @ has_real, scan_hot @ q_hot.sum(1).double())
    layout.plans[key] = plan
    return plan


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
