"""Attention sites: where a model's attention weights appear, and which token each row/column is.

An :class:`AttentionSite` names one attention call whose weights are ``(G, heads, Nq, Nk)`` and
knows how to lay out the token sources of that call (:class:`SiteLayout`): which scan each of the
G groups belongs to and the source (real / input_pad / layout_pad) of every query and key. How
the weights reach the meter is the site's ``install``: by default a forward hook on a softmax
module; adapters for fused or functional attention install what they need (and undo it).

Adapters turn a model into its sites. The built-in :func:`swin_sites` covers every model with the
MONAI block interface (MONAI ``SwinUNETR`` v1/v2 in 2-D and 3-D, the project's SMIT): blocks with
``window_size``, ``shift_size`` and ``attn.softmax``, grouped into stages by the module that holds
their ``blocks`` list. :func:`register_adapter` adds adapters for other transformers
(``attndilute.instrument.adapters`` has timm and Hugging Face; see ``docs/adi.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from attndilute import masks
from attndilute.instrument.fused import sdpa_installer


@dataclass(frozen=True)
class SiteLayout:
    """Token sources of one attention call.

    Attributes:
        query_sources: (G, Nq) uint8 sources (``masks.REAL``, ``INPUT_PAD``, ``LAYOUT_PAD``).
        key_sources: (G, Nk) uint8.
        scan_index: (G,) long, the scan (batch row) each group belongs to.
        window, shift: the window and shift actually used, for windowed sites (else None).
        plans: what the reduction derives from the layout (one-hot sources, chunks), kept for
            the next call that shares the layout (a ViT's blocks share one per batch).
    """

    query_sources: torch.Tensor
    key_sources: torch.Tensor
    scan_index: torch.Tensor
    window: tuple[int, ...] | None = None
    shift: tuple[int, ...] | None = None
    plans: dict = field(default_factory=dict, compare=False, repr=False)


#: ``install(on_attention) -> remove``: make every call of a site pass its post-softmax weights
#: ``(G, heads, Nq, Nk)`` to ``on_attention(weights, scores=None, groups=None)``; ``scores`` are
#: the logits the weights are the softmax of, when known (one logarithm per row instead of per
#: entry), and ``groups`` the slice of the G groups a chunk holds, when a call is reported chunk
#: by chunk. ``remove()`` undoes all of it (hooks and switches) and is called even when the
#: forward raised.
Installer = Callable[[Callable[[torch.Tensor], None]], Callable[[], None]]


@dataclass
class AttentionSite:
    """One attention call to measure.

    Attributes:
        name: module path of the block (the ``name`` coordinate of the result).
        stage: 0-based stage (S0..S3 in the seed; 0 for non-hierarchical models).
        block: 0-based index within the stage.
        num_heads: heads of the attention.
        softmax: module whose forward output is the attention ``(G, heads, Nq, Nk)`` (used by the
            default ``install``), or None when ``install`` is given.
        layout: ``layout(sources, inputs) -> SiteLayout``; ``sources`` is the input-level uint8
            source tensor of the batch, ``(B, *spatial)`` for images or ``(B, L)`` for tokens, and
            ``inputs`` the positional arguments the ``watch`` module received on this call.
        watch: module whose forward pre-hook captures ``inputs`` before the attention runs
            (for Swin: the block, whose input x is (B, *grid, C)).
        attention: the attention module; the default ``install`` switches its
            ``use_flash_attention`` off and back (MONAI).
        install: how the weights reach the meter (:data:`Installer`); default: a forward hook on
            ``softmax``.
    """

    name: str
    stage: int
    block: int
    num_heads: int
    softmax: nn.Module | None
    layout: Callable[[torch.Tensor, tuple[Any, ...]], SiteLayout]
    watch: nn.Module | None = None
    attention: nn.Module | None = None
    install: Installer | None = None

    def connect(self, on_attention: Callable[..., None]) -> Callable[[], None]:
        """Install this site (its own ``install``, or the softmax hook); return the undo function.

        The default reads the weights and scores at the softmax module; when the attention
        runs a fused kernel (MONAI ``use_flash_attention``) its call of
        ``scaled_dot_product_attention`` is computed chunk by chunk and measured as well
        (:mod:`attndilute.instrument.fused`), so the model keeps its own path either way.
        """
        if self.install is not None:
            return self.install(on_attention)
        handle = self.softmax.register_forward_hook(softmax_hook(on_attention))
        attn = self.attention
        fused = (
            sdpa_installer(attn)(on_attention)
            if attn is not None and getattr(attn, "use_flash_attention", False)
            else None
        )

        def remove() -> None:
            handle.remove()
            if fused is not None:
                fused()

        return remove


def softmax_hook(on_attention: Callable[..., None]) -> Callable:
    """A forward hook for an ``nn.Softmax`` that reports its output and its input (the scores)."""

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        scores = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if scores is not None and (
            scores.shape != output.shape or getattr(module, "dim", -1) not in (-1, output.dim() - 1)
        ):
            scores = None
        on_attention(output, scores=scores)

    return hook


# ---------------------------------------------------------------- Swin (MONAI block interface)


def _is_swin_block(module: nn.Module) -> bool:
    attn = getattr(module, "attn", None)
    return (
        not type(module).__module__.startswith("timm.")  # timm rolls before it pads: its own adapter
        and hasattr(module, "window_size")
        and hasattr(module, "shift_size")
        and attn is not None
        and isinstance(getattr(attn, "softmax", None), nn.Softmax)
        and hasattr(attn, "num_heads")
    )


def _patch_size(model: nn.Module) -> tuple[int, ...] | None:
    """The patch embedding's kernel per spatial axis (from its conv, else its ``patch_size``)."""
    for name, module in model.named_modules():
        if name.split(".")[-1] != "patch_embed":
            continue
        proj = getattr(module, "proj", None)
        size = getattr(proj, "kernel_size", None) or getattr(module, "patch_size", None)
        if size is not None:
            return tuple(int(v) for v in size) if not isinstance(size, int) else None
    return None


class _StageSources:
    """Voxel sources propagated to every stage grid, computed once per batch (per ``sources``)."""

    def __init__(self, patch: tuple[int, int, int] | None):
        self.patch = patch
        self._src: torch.Tensor | None = None  # held, so identity cannot be reused while cached
        self._chain: list[torch.Tensor] = []
        self._layouts: dict[tuple, masks.WindowLayout] = {}

    def grid(self, sources: torch.Tensor, stage: int, shape: Sequence[int]) -> torch.Tensor:
        if self._src is not sources:
            self._src, self._chain, self._layouts = sources, [], {}
        if not self._chain:
            patch = self.patch
            if patch is None or len(patch) != len(shape):  # infer from the first grid: ceil(X / p) == D
                if stage != 0:
                    raise RuntimeError("cannot infer the patch size: no stage-0 block ran first")
                patch = tuple(math.ceil(x / d) for x, d in zip(sources.shape[1:], shape, strict=True))
            self._chain.append(masks.pool_sources(sources, patch))
        while len(self._chain) <= stage:
            self._chain.append(masks.pool_sources(self._chain[-1], 2))
        tokens = self._chain[stage]
        if tuple(tokens.shape[1:]) != tuple(shape):
            raise RuntimeError(
                f"stage {stage} tokens are {tuple(shape)} but propagating the real mask gives "
                f"{tuple(tokens.shape[1:])}; the model's patch size or merging is not the Swin rule"
            )
        return tokens

    def layout(self, sources, stage, shape, window, shift) -> masks.WindowLayout:
        key = (stage, tuple(shape), tuple(window), tuple(shift))
        if self._src is not sources or key not in self._layouts:
            tokens = self.grid(sources, stage, shape)
            self._layouts[key] = masks.window_layout(tokens, window, shift, with_region_mask=False)
        return self._layouts[key]


def swin_sites(model: nn.Module) -> list[AttentionSite]:
    """Sites of every Swin block (MONAI ``SwinTransformerBlock`` or anything with its interface).

    Stages are the modules that hold a ``blocks`` list of Swin blocks, in ``named_modules`` order.
    """
    blocks = [(name, m) for name, m in model.named_modules() if _is_swin_block(m)]
    if not blocks:
        return []
    tracker = _StageSources(_patch_size(model))
    stage_of: dict[str, int] = {}
    sites = []
    counters: dict[str, int] = {}
    for name, block in blocks:
        parent = name.rsplit(".", 2)[0] if ".blocks." in f".{name}" else name.rsplit(".", 1)[0]
        stage = stage_of.setdefault(parent, len(stage_of))
        index = counters.get(parent, 0)
        counters[parent] = index + 1

        def layout(sources, inputs, *, _block=block, _stage=stage):
            x = inputs[0]  # (B, *grid, C): (B, D, H, W, C) in 3-D, (B, H, W, C) in 2-D
            grid = tuple(x.shape[1:-1])
            lay = tracker.layout(sources, _stage, grid, _block.window_size, _block.shift_size)
            nw = lay.num_windows
            scan = torch.arange(sources.shape[0], device=lay.sources.device).repeat_interleave(nw)
            return SiteLayout(lay.sources, lay.sources, scan, lay.window, lay.shift)

        sites.append(
            AttentionSite(
                name=name,
                stage=stage,
                block=index,
                num_heads=int(block.attn.num_heads),
                softmax=block.attn.softmax,
                layout=layout,
                watch=block,
                attention=block.attn,
            )
        )
    return sites


# ---------------------------------------------------------------- adapter registry

Adapter = Callable[[nn.Module], list[AttentionSite]]
_ADAPTERS: list[tuple[str, Adapter]] = []


def register_adapter(name: str, adapter: Adapter, *, first: bool = True) -> None:
    """Register ``adapter(model) -> list[AttentionSite]``; the first adapter returning sites wins.

    Args:
        name: a label for error messages and ``list_adapters``.
        adapter: returns the model's sites, or an empty list when it does not apply.
        first: try it before the built-in adapters (default), else after them.
    """
    entry = (name, adapter)
    _ADAPTERS[:] = [a for a in _ADAPTERS if a[0] != name]
    if first:
        _ADAPTERS.insert(0, entry)
    else:
        _ADAPTERS.append(entry)


def list_adapters() -> list[str]:
    return [name for name, _ in _ADAPTERS]


def find_sites(model: nn.Module) -> list[AttentionSite]:
    """The model's attention sites from the first adapter that recognises it.

    An adapter that does not recognise a model returns no sites; one that fails on it is skipped.

    Raises:
        ValueError: if no adapter finds any attention in the model.
    """
    for _, adapter in _ADAPTERS:
        try:
            sites = adapter(model)
        except Exception:  # noqa: BLE001 - an adapter that trips over a foreign model does not apply
            continue
        if sites:
            return sites
    raise ValueError(
        f"no attention found in {type(model).__name__}: adapters tried: {', '.join(list_adapters())}; "
        "register one with attndilute.instrument.register_adapter"
    )


register_adapter("swin", swin_sites, first=False)
