"""Attention sites of timm models: Swin v1/v2 window attention and ViT-family attention (seed §2.4).

timm is not imported here: a model holding timm modules has imported it already, and the adapter
recognises those modules by class (defined in a module under ``timm.``), so another library's
Swin is never taken for timm's.

- **Swin** (``timm.models.swin_transformer``, ``swin_transformer_v2``): one site per
  ``SwinTransformerBlock`` / ``SwinTransformerV2Block``; stage = index of the module holding
  its ``blocks`` (``layers.<i>``, or ``layers_<i>`` of a ``features_only`` model), block = index
  within the stage; a model may wrap the network. Token sources follow the model's geometry:
  stage-0 tokens are the patch max-pool of the input sources, a stage that starts with a
  ``PatchMerging`` pools its predecessor by 2 (timm end-pads odd sizes with zeros: layout
  padding). The window layout is timm's, which differs from MONAI's: roll the *unpadded* grid by
  minus the shift, then end-pad to a window multiple, then ``window_partition``. The window and
  shift are the block's stored ``window_size``/``shift_size`` (timm shrinks them once, at
  construction or ``set_input_size``, and keeps them for dynamic input sizes).
- **ViT family** (``timm.layers.attention.Attention`` in the ``blocks`` of a model with
  ``patch_embed`` and ``num_prefix_tokens``: ``VisionTransformer``, DeiT, ...): stage 0, block =
  block index. Tokens are the prefix tokens (class, distillation, register: always ``REAL``)
  followed by the patch tokens in row-major order, each the patch max-pool of the input sources
  (end padding from ``dynamic_img_pad`` is layout padding).

Fused attention (``fused_attn``, the default) never forms the weights: its call of
``scaled_dot_product_attention`` is computed window-chunk by window-chunk and measured
(:mod:`attndilute.instrument.fused`); ``fused_attn`` is left as found. On the explicit path the
weights are read from the softmax module (Swin, with its scores) or from the input of
``attn_drop`` (ViT, whose softmax is a tensor method), before any dropout acts on them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from attndilute import masks
from attndilute.instrument.fused import sdpa_installer
from attndilute.instrument.sites import AttentionSite, Installer, SiteLayout, softmax_hook

SWIN_BLOCKS = {
    "timm.models.swin_transformer": "SwinTransformerBlock",
    "timm.models.swin_transformer_v2": "SwinTransformerV2Block",
}
VIT_ATTENTION = ("timm.layers.attention", "Attention")


def is_timm(module: nn.Module) -> bool:
    """True if the module's class is defined in timm."""
    return type(module).__module__.startswith("timm.")


@functools.cache
def _lineage(cls: type) -> frozenset[tuple[str, str]]:
    """(module, name) of ``cls`` and its bases: class identity by name, without importing timm."""
    return frozenset((c.__module__, c.__name__) for c in cls.__mro__)


def _is_class(module: nn.Module, module_path: str, name: str) -> bool:
    return (module_path, name) in _lineage(type(module))


def _is_swin_block(module: nn.Module) -> bool:
    return not _lineage(type(module)).isdisjoint(SWIN_BLOCKS.items())


# ---------------------------------------------------------------- installers


def _installer(attention: nn.Module, attach: Callable) -> Installer:
    """Attach one hook (``attach(on_attention) -> handle``) for the explicit path and, when the
    module runs fused attention (``fused_attn``), measure its kernel call chunk by chunk."""

    def install(on_attention):
        handle = attach(on_attention)
        fused = sdpa_installer(attention)(on_attention) if getattr(attention, "fused_attn", False) else None

        def remove() -> None:
            handle.remove()
            if fused is not None:
                fused()

        return remove

    return install


def softmax_installer(attention: nn.Module) -> Installer:
    """Read the weights and scores from ``attention.softmax`` (timm Swin's explicit path)."""
    return _installer(attention, lambda on: attention.softmax.register_forward_hook(softmax_hook(on)))


def attn_drop_installer(attention: nn.Module) -> Installer:
    """Read the weights from the input of ``attention.attn_drop`` (timm ``Attention``'s explicit path).

    A forward *pre*-hook: train-mode dropout has not yet changed the weights it reads.
    """
    return _installer(attention, lambda on: attention.attn_drop.register_forward_pre_hook(
        lambda module, args: on(args[0])))


# ---------------------------------------------------------------- Swin


class StageGrids:
    """Token sources of every stage grid of one timm Swin network, computed once per batch.

    Args:
        patch: the patch embedding's patch size (h, w), or None to infer it from the first stage's
            grid (``ceil(H / h)``).
        factors: per stage, the pooling its start applies (2 for a ``PatchMerging``, else 1).
    """

    def __init__(self, patch: Sequence[int] | None, factors: Sequence[int]):
        self.patch = tuple(int(p) for p in patch) if patch is not None else None
        self.factors = tuple(factors)
        self._src: torch.Tensor | None = None  # held, so its id cannot be reused while cached
        self._grids: dict[int, torch.Tensor] = {}
        self._layouts: dict[tuple, masks.WindowLayout] = {}

    def _fresh(self, sources: torch.Tensor) -> None:
        if self._src is not sources:
            self._src, self._grids, self._layouts = sources, {}, {}

    def tokens(self, sources: torch.Tensor, stage: int, grid: Sequence[int]) -> torch.Tensor:
        """(B, H, W) uint8 sources of the tokens entering ``stage`` (whose grid is ``grid``)."""
        self._fresh(sources)
        if stage not in self._grids:
            if stage == 0:
                if self.patch is None and not grid:
                    raise RuntimeError("cannot infer the timm Swin patch size: no stage-0 block ran first")
                patch = self.patch or tuple(-(-x // g) for x, g in zip(sources.shape[1:], grid, strict=True))
                prev = masks.pool_sources(sources, patch)
            else:
                prev = self.tokens(sources, stage - 1, ())  # computed when stage - 1 ran
            self._grids[stage] = prev if self.factors[stage] == 1 else masks.pool_sources(prev, 2)
        tokens = self._grids[stage]
        if grid and tuple(tokens.shape[1:]) != tuple(grid):
            raise RuntimeError(
                f"timm Swin stage {stage} tokens are {tuple(grid)} but propagating the real mask "
                f"gives {tuple(tokens.shape[1:])}; is the real mask the size of the input image?"
            )
        return tokens

    def layout(self, sources, stage, grid, window, shift) -> masks.WindowLayout:
        """The window layout of a block of ``stage`` whose input grid is ``grid``."""
        self._fresh(sources)
        key = (stage, tuple(grid), tuple(window), tuple(shift))
        if key not in self._layouts:
            self._layouts[key] = swin_window_layout(self.tokens(sources, stage, grid), window, shift)
        return self._layouts[key]


def swin_window_layout(
    tokens: torch.Tensor, window: Sequence[int], shift: Sequence[int]
) -> masks.WindowLayout:
    """timm's window layout of a (B, H, W) token grid: roll, then end-pad, then partition.

    ``window`` and ``shift`` are the block's stored ``window_size`` and ``shift_size`` (already
    shrunk by timm), so no shrinking is applied.
    """
    return masks.window_layout(tokens, window, shift, order="roll-pad", shrink=False, with_region_mask=False)


def _swin_networks(model: nn.Module) -> dict[str, dict[str, nn.Module]]:
    """timm Swin stages grouped by network: {network prefix: {stage path: stage module}}.

    A stage is the module holding a ``blocks`` list of timm Swin blocks (``<stage>.blocks.<j>``);
    its network is the longest prefix of its path that holds a ``patch_embed``. This also finds
    the stages of a ``features_only`` model, whose stages hang directly on the wrapper.
    """
    modules = dict(model.named_modules())
    embeds = [name[: -len("patch_embed")] for name in modules if name.split(".")[-1] == "patch_embed"]
    networks: dict[str, dict[str, nn.Module]] = {}
    for name, module in modules.items():
        if not _is_swin_block(module) or ".blocks." not in f".{name}":
            continue
        stage = name.rsplit(".blocks.", 1)[0] if ".blocks." in name else ""
        owner = max((e for e in embeds if f"{stage}.".startswith(e)), key=len, default="")
        networks.setdefault(owner, {}).setdefault(stage, modules[stage])
    return networks


def timm_swin_sites(model: nn.Module) -> list[AttentionSite]:
    """Sites of every block of the timm Swin v1/v2 networks in ``model`` ([] if there are none)."""
    sites = []
    for owner, stages in _swin_networks(model).items():
        embed = dict(model.named_modules()).get(f"{owner}patch_embed")
        factors = [1 if isinstance(getattr(s, "downsample", nn.Identity()), nn.Identity) else 2
                   for s in stages.values()]
        grids = StageGrids(getattr(embed, "patch_size", None), factors)
        for stage, (stage_name, layer) in enumerate(stages.items()):
            for index, block in enumerate(layer.blocks):

                def layout(sources, inputs, *, _block=block, _stage=stage, _grids=grids):
                    x = inputs[0]  # (B, H, W, C): timm Swin blocks are NHWC
                    lay = _grids.layout(sources, _stage, x.shape[1:3], _block.window_size, _block.shift_size)
                    scan = torch.arange(sources.shape[0], device=lay.sources.device)
                    return SiteLayout(lay.sources, lay.sources, scan.repeat_interleave(lay.num_windows),
                                      lay.window, lay.shift)

                sites.append(AttentionSite(
                    name=f"{stage_name}.blocks.{index}" if stage_name else f"blocks.{index}",
                    stage=stage,
                    block=index,
                    num_heads=int(block.attn.num_heads),
                    softmax=None,
                    layout=layout,
                    watch=block,
                    attention=block.attn,
                    install=softmax_installer(block.attn),
                ))
    return sites


# ---------------------------------------------------------------- ViT family


def vit_token_sources(
    sources: torch.Tensor, patch_size: Sequence[int], num_prefix_tokens: int
) -> torch.Tensor:
    """(B, num_prefix_tokens + h * w) uint8 sources of a ViT's token sequence.

    Args:
        sources: (B, H, W) input sources (or a bool real mask).
        patch_size: the patch embedding's (ph, pw).
        num_prefix_tokens: class/distillation/register tokens in front: always ``REAL``.
    """
    patches = masks.pool_sources(sources, tuple(patch_size)).flatten(1)  # row-major, as timm's flatten(2)
    prefix = torch.full((patches.shape[0], num_prefix_tokens), masks.REAL, dtype=torch.uint8)
    return torch.cat([prefix.to(patches.device), patches], 1)


class VitTokens:
    """The token layout of a timm ViT, computed once per batch and shared by its blocks."""

    def __init__(self, patch_size: Sequence[int], num_prefix_tokens: int):
        self.patch = tuple(int(p) for p in patch_size)
        self.num_prefix = int(num_prefix_tokens)
        self._src: torch.Tensor | None = None
        self._layout: SiteLayout | None = None

    def __call__(self, sources: torch.Tensor, inputs: tuple) -> SiteLayout:
        if self._src is not sources:
            tokens = vit_token_sources(sources, self.patch, self.num_prefix)  # (B, N)
            scan = torch.arange(tokens.shape[0], device=tokens.device)
            self._src, self._layout = sources, SiteLayout(tokens, tokens, scan)
        n, expected = inputs[0].shape[1], self._layout.query_sources.shape[1]  # x: (B, N, C)
        if n != expected:
            raise RuntimeError(
                f"the attention sees {n} tokens but {self.num_prefix} prefix tokens and patches of "
                f"{self.patch} over the real mask give {expected} (patch dropout in train mode, or a "
                "real mask not the size of the input image?)"
            )
        return self._layout


def _vit_roots(model: nn.Module) -> list[tuple[str, nn.Module]]:
    wanted = ("patch_embed", "num_prefix_tokens", "blocks")
    return [(n, m) for n, m in model.named_modules() if is_timm(m) and all(hasattr(m, a) for a in wanted)]


def timm_vit_sites(model: nn.Module) -> list[AttentionSite]:
    """Sites of the ``timm.layers.attention.Attention`` of every block of timm ViT-family networks."""
    sites = []
    for root_name, root in _vit_roots(model):
        prefix = f"{root_name}." if root_name else ""
        layout = VitTokens(root.patch_embed.patch_size, root.num_prefix_tokens)
        for index, block in enumerate(root.blocks):
            attn = getattr(block, "attn", None)
            if attn is None or not _is_class(attn, *VIT_ATTENTION):
                continue
            sites.append(AttentionSite(
                name=f"{prefix}blocks.{index}",
                stage=0,
                block=index,
                num_heads=int(attn.num_heads),
                softmax=None,
                layout=layout,
                watch=attn,
                attention=attn,
                install=attn_drop_installer(attn),
            ))
    return sites


def timm_sites(model: nn.Module) -> list[AttentionSite]:
    """The registered adapter: timm Swin sites, else timm ViT-family sites, else []."""
    if not any(is_timm(m) for m in model.modules()):
        return []
    return timm_swin_sites(model) or timm_vit_sites(model)

