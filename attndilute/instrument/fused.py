"""Fused attention, measured: ``scaled_dot_product_attention`` computed window-chunk by window-chunk.

A fused kernel (PyTorch's ``scaled_dot_product_attention``, which MONAI runs with
``use_flash_attention`` and timm with ``fused_attn``) never forms the attention weights the meter
needs. Switching the model to its explicit path would form them for a whole layer at once. Instead,
while an attention module runs, :func:`sdpa_installer` routes its call of
``torch.nn.functional.scaled_dot_product_attention`` (through a ``TorchFunctionMode``, only inside
that module's forward) to :func:`chunked_attention`: the same attention, computed a few groups
(windows, or sequences) at a time, each chunk's weights and scores reported to the meter and then
released. The model's own code, masks and biases are untouched; only the kernel differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from attndilute.instrument import reduce


def chunked_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    on_attention: Callable[..., None],
    chunk_elements: int | None = None,
) -> torch.Tensor:
    """``scaled_dot_product_attention`` with the weights formed and reported chunk by chunk.

    Args:
        query: (G, heads, Nq, d); key: (G, kv_heads, Nk, d); value: (G, kv_heads, Nk, dv).
        attn_mask: bool (True = take part) or additive float, broadcastable to (G, heads, Nq, Nk).
        dropout_p, is_causal, scale, enable_gqa: as ``torch.nn.functional.scaled_dot_product_attention``.
        on_attention: called per chunk as ``on_attention(weights, scores=..., groups=slice)``
            with float32 weights and scores (g, heads, Nq, Nk) of groups ``groups``.
        chunk_elements: about how many attention entries a chunk holds (at least one group);
            default ``attndilute.instrument.reduce.CHUNK_ELEMENTS``.

    Returns:
        (G, heads, Nq, dv) attention output in ``query``'s dtype.
    """
    if query.dim() != 4:
        raise ValueError(f"measured fused attention takes (G, heads, N, d) inputs, got {tuple(query.shape)}")
    g, heads, nq, d = query.shape
    nk = key.shape[-2]
    if enable_gqa and key.shape[1] != heads:  # grouped-query attention, as the kernel does
        key = key.repeat_interleave(heads // key.shape[1], 1)
        value = value.repeat_interleave(heads // value.shape[1], 1)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    mask = _additive_mask(attn_mask, is_causal, (g, heads, nq, nk), query.device)
    step = max(1, (chunk_elements or reduce.CHUNK_ELEMENTS) // max(1, heads * nq * nk))
    outs = []
    for start in range(0, g, step):
        sl = slice(start, min(g, start + step))
        scores = torch.matmul(query[sl].float() * scale, key[sl].float().transpose(-1, -2))  # (g', h, Nq, Nk)
        if mask is not None:
            scores += mask[sl]
        weights = torch.softmax(scores, -1)
        on_attention(weights, scores=scores, groups=sl)
        if dropout_p > 0:
            weights = F.dropout(weights, dropout_p, training=True)
        outs.append(torch.matmul(weights.to(value.dtype), value[sl]))  # (g', h, Nq, dv)
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def _additive_mask(attn_mask, is_causal, shape, device) -> torch.Tensor | None:
    """A float32 additive mask broadcast (as a view) to ``shape``, or None."""
    nq, nk = shape[-2:]
    mask = None
    if attn_mask is not None:
        mask = attn_mask
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, device=device).masked_fill(~mask, float("-inf"))
        mask = torch.broadcast_to(mask.float(), shape)
    if is_causal:
        causal = torch.ones(nq, nk, dtype=torch.bool, device=device).tril()
        causal = torch.zeros(nq, nk, device=device).masked_fill(~causal, float("-inf"))
        mask = torch.broadcast_to(causal, shape) if mask is None else mask + causal
    return mask


class _RouteSDPA(TorchFunctionMode):
    """Inside one module's forward: send ``scaled_dot_product_attention`` to :func:`chunked_attention`."""

    def __init__(self, on_attention: Callable[..., None]):
        super().__init__()
        self.on_attention = on_attention

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return chunked_attention(*args, **kwargs, on_attention=self.on_attention)
        return func(*args, **kwargs)


def sdpa_installer(attention: nn.Module) -> Callable[[Callable[..., None]], Callable[[], None]]:
    """An installer (``sites.Installer``) measuring ``attention``'s fused attention chunk by chunk.

    A forward pre-hook enters the routing mode and a forward hook (also run when the forward
    raises) leaves it, so only this module's own call of the kernel is routed.
    """

    def install(on_attention):
        modes: list[_RouteSDPA] = []

        def enter(module, args):
            mode = _RouteSDPA(on_attention)
            mode.__enter__()
            modes.append(mode)

        def leave(module, args, output):
            if modes:
                modes.pop().__exit__(None, None, None)

        handles = [attention.register_forward_pre_hook(enter),
                   attention.register_forward_hook(leave, always_call=True)]

        def remove() -> None:
            for handle in handles:
                handle.remove()
            while modes:
                modes.pop().__exit__(None, None, None)

        return remove

    return install
