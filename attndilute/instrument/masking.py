"""The padding-key mask (``mask_padding=True``; the masking the seed proposes as future work, §4).

:func:`key_padding_mask` adds a large negative bias to every padding key (input or layout padding)
of every window attention while the model runs, through a forward pre-hook on each ``softmax``:
real queries then put exactly zero weight on padding keys in float32 (``exp(-1e4)`` underflows),
so their ADI is exactly 0. A row whose keys are all padding gets the same bias on every key, which
the softmax ignores, so no row becomes NaN. Fused attention is switched off inside the context
(the mask lives on the softmax path) and restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from attndilute import masks
from attndilute.instrument.sites import SiteLayout, find_sites

PAD_BIAS = -1.0e4


@contextlib.contextmanager
def key_padding_mask(model: nn.Module, real: torch.Tensor) -> Iterator[None]:
    """Mask padding keys in every attention site of ``model`` for the forwards inside the context.

    Args:
        model: a model an adapter recognises (both families).
        real: (B, X, Y, Z) bool real mask of the batch the forward will see.
    """
    sources = masks.as_sources(real.bool() if real.dtype != torch.uint8 else real)
    sites = find_sites(model)
    pending: dict[int, SiteLayout] = {}
    handles = []
    flash = []

    def watch(i):
        def hook(module, args):
            pending[i] = sites[i].layout(sources, args)

        return hook

    def bias(i):
        def hook(module, args):
            layout = pending.get(i)
            if layout is None:
                layout = sites[i].layout(sources, args)
            scores = args[0]  # (G, heads, Nq, Nk)
            pad_keys = (layout.key_sources != masks.REAL).to(scores.device)  # (G, Nk)
            if not pad_keys.any():
                return None
            masked = torch.where(pad_keys[:, None, None, :], scores + PAD_BIAS, scores)
            return (masked, *args[1:])

        return hook

    try:
        for i, site in enumerate(sites):
            if site.watch is not None:
                handles.append(site.watch.register_forward_pre_hook(watch(i)))
            handles.append(site.softmax.register_forward_pre_hook(bias(i)))
            attn = site.attention
            if attn is not None and getattr(attn, "use_flash_attention", False):
                flash.append(attn)
                attn.use_flash_attention = False
        yield
    finally:
        for handle in handles:
            handle.remove()
        for attn in flash:
            attn.use_flash_attention = True
