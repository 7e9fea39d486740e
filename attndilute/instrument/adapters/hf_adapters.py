"""Hugging Face ``transformers`` 5.x attention, measured through its attention interface (seed §2.4).

Hugging Face models pick their attention by name: every attention module calls
``ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)``.
This adapter registers one more name, :data:`ATTENTION_NAME`, whose function computes attention as
the models' eager path does and hands the post-softmax weights ``(G, heads, Nq, Nk)`` to the
site of the calling module. While a meter is active the model's attention implementation is
switched to that name with ``model.set_attn_implementation``; leaving the meter restores every
config's previous implementation exactly (also when the forward raised). A matching mask function
is registered too, so an ``attention_mask`` reaches the attention as the additive float mask of the
eager path (without it, Hugging Face would drop the mask for an unknown implementation).

Sites (one per self-attention module, ``name`` = its module path):

- token models (``main_input_name == "input_ids"``, e.g. BERT): stage 0, block = layer index;
  the token sources are the ``(B, L)`` sources of the batch as given.
- plain vision transformers (``pixel_values`` and a ``patch_size``, e.g. ViT): stage 0, block =
  layer index; prefix tokens (CLS, distillation, registers) are real, patches are the image
  sources max-pooled over the patch (the patch convolution drops a remainder, so the image is
  cropped to a patch multiple first), flattened row-major.
- windowed models (the attention's parent has ``window_size`` and ``shift_size``, e.g. Swin):
  stage = encoder stage, block = index in it; tokens are propagated like the model (patch
  embedding end-pads to a patch multiple, each patch merging end-pads odd sizes) and laid out as
  ``SwinLayer`` does: end padding to a window multiple, then the cyclic shift (``"pad-roll"``),
  with the window and shift the layer actually uses on this call (``set_shift_and_window_size``
  has already run when the attention module is entered).
"""

from __future__ import annotations

import inspect
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from attndilute import masks
from attndilute.instrument.sites import AttentionSite, SiteLayout, register_adapter

#: The attention implementation name registered with ``transformers.AttentionInterface``.
ATTENTION_NAME = "attndilute"

_ROUTES: dict[nn.Module, list[Callable[[torch.Tensor], None]]] = {}  # attention module -> callbacks
_LOCK = threading.Lock()
_INTERFACE_CLASSES: dict[type, bool] = {}


# ---------------------------------------------------------------- the registered attention function


def measured_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hugging Face's eager attention that also reports its weights to the module's site.

    Args:
        module: the calling attention module (routes the weights to its site, if measured).
        query: (G, heads, Nq, d). key, value: (G, kv_heads, Nk, d); kv heads are repeated for
            grouped-query attention as the eager paths do.
        attention_mask: additive float mask broadcastable to (G, heads, Nq, Nk), or None.
        scaling: score scale (default ``d ** -0.5``). dropout: attention dropout (training only).
        kwargs: the models' extra arguments; ``softcap`` is applied, attention sinks are refused.

    Returns:
        (output (G, Nq, heads, d), weights (G, heads, Nq, Nk)), as the eager path.
    """
    if kwargs.get("s_aux") is not None or kwargs.get("sinks") is not None:
        raise NotImplementedError("attention sinks are not supported by the attndilute HF adapter")
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat_kv
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (G, heads, Nq, Nk)
    softcap = kwargs.get("softcap")
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # a boolean mask means "attend"
            attention_mask = torch.zeros_like(scores).masked_fill(
                ~attention_mask, torch.finfo(scores.dtype).min
            )
        scores = scores + attention_mask
    weights32 = nn.functional.softmax(scores, dim=-1, dtype=torch.float32)
    for on_attention in _ROUTES.get(module, ()):
        on_attention(weights32, scores=scores)
    weights = weights32.to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def register_attention() -> None:
    """Register :data:`ATTENTION_NAME` with ``AttentionInterface`` and ``AttentionMaskInterface``.

    The mask function is the eager one (additive float mask), so padding masks reach the attention.
    Idempotent; imports ``transformers``.
    """
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import eager_mask

    AttentionInterface.register(ATTENTION_NAME, measured_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)


# ---------------------------------------------------------------- switching the implementation


def _configs(model: nn.Module) -> list[Any]:
    """Every config object reachable from the model's modules (and their sub-configs), once each."""
    from transformers import PretrainedConfig

    seen: dict[int, Any] = {}
    stack = [getattr(m, "config", None) for m in model.modules()]
    while stack:
        config = stack.pop()
        if not isinstance(config, PretrainedConfig) or id(config) in seen:
            continue
        seen[id(config)] = config
        stack.extend(getattr(config, key, None) for key in getattr(config, "sub_configs", {}) or {})
    return list(seen.values())


class _Switch:
    """Reference-counted switch of one model to :data:`ATTENTION_NAME` (shared by all its sites)."""

    def __init__(self, model: nn.Module, modules: list[nn.Module]):
        self.model = weakref.ref(model)  # weak: the registry of switches is keyed by the model
        self.modules = modules
        self.count = 0
        self.saved: list[tuple[Any, Any]] = []

    def acquire(self) -> None:
        with _LOCK:
            if self.count == 0:
                register_attention()
                self.saved = [
                    (c, getattr(c, "_attn_implementation_internal", None)) for c in _configs(self.model())
                ]
                try:
                    self.model().set_attn_implementation(ATTENTION_NAME)
                    for module in self.modules:  # a config HF did not reach (custom nesting)
                        if module.config._attn_implementation != ATTENTION_NAME:
                            module.config._attn_implementation_internal = ATTENTION_NAME
                except BaseException:
                    self._restore()
                    raise
            self.count += 1

    def release(self) -> None:
        with _LOCK:
            self.count -= 1
            if self.count == 0:
                self._restore()

    def _restore(self) -> None:
        for config, value in self.saved:
            config._attn_implementation_internal = value
        self.saved = []


_SWITCHES: weakref.WeakKeyDictionary[nn.Module, _Switch] = weakref.WeakKeyDictionary()


def _installer(switch: _Switch, module: nn.Module):
    def install(on_attention: Callable[[torch.Tensor], None]) -> Callable[[], None]:
        switch.acquire()
        _ROUTES.setdefault(module, []).append(on_attention)

        def remove() -> None:
            callbacks = _ROUTES.get(module, [])
            if on_attention in callbacks:
                callbacks.remove(on_attention)
                if not callbacks:
                    del _ROUTES[module]
                switch.release()

        return remove

    return install


# ---------------------------------------------------------------- token layouts


def _scan_index(sources: torch.Tensor, groups_per_scan: int = 1) -> torch.Tensor:
    return torch.arange(sources.shape[0], device=sources.device).repeat_interleave(groups_per_scan)


def _token_layout(sources: torch.Tensor, inputs: tuple) -> SiteLayout:
    """BERT-like: the (B, L) token sources as given."""
    if sources.dim() != 2:
        raise RuntimeError(f"a token model needs (B, L) token sources, got {tuple(sources.shape)}")
    return SiteLayout(sources, sources, _scan_index(sources))


def _patch_tokens(sources: torch.Tensor, patch: tuple[int, ...]) -> torch.Tensor:
    """(B, *spatial) image sources -> (B, P) patch sources of a strided patch convolution (floor)."""
    keep = tuple(slice(0, s // p * p) for s, p in zip(sources.shape[1:], patch, strict=True))
    return masks.pool_sources(sources[(slice(None), *keep)], patch).flatten(1)


def _vit_layout(patch: tuple[int, ...]):
    def layout(sources: torch.Tensor, inputs: tuple) -> SiteLayout:
        if sources.dim() != 1 + len(patch):
            raise RuntimeError(
                f"a {len(patch)}-D vision model needs (B, *spatial) sources, got {tuple(sources.shape)}"
            )
        patches = _patch_tokens(sources, patch)  # (B, P)
        num_tokens = inputs[0].shape[1] if inputs else patches.shape[1] + 1  # hidden_states (B, N, C)
        prefix = num_tokens - patches.shape[1]  # CLS, distillation and register tokens
        if prefix < 0:
            raise RuntimeError(f"{num_tokens} tokens but the image has {patches.shape[1]} patches")
        tokens = torch.cat([torch.full_like(patches[:, :prefix], masks.REAL), patches], 1)  # (B, N)
        return SiteLayout(tokens, tokens, _scan_index(tokens))

    return layout


class _StageGrids:
    """Token sources of every stage of a Swin-like encoder, computed once per batch."""

    def __init__(self, patch: tuple[int, ...]):
        self.patch = patch
        self._src: torch.Tensor | None = None  # held, so its id cannot be reused while cached
        self._chain: list[torch.Tensor] = []

    def tokens(self, sources: torch.Tensor, stage: int) -> torch.Tensor:
        if self._src is not sources:
            self._src, self._chain = sources, [masks.pool_sources(sources, self.patch)]  # end-padded patches
        while len(self._chain) <= stage:
            self._chain.append(masks.pool_sources(self._chain[-1], 2))  # patch merging, end-padded
        return self._chain[stage]


def _window_layout(grids: _StageGrids, stage: int, layer: nn.Module):
    def layout(sources: torch.Tensor, inputs: tuple) -> SiteLayout:
        tokens = grids.tokens(sources, stage)  # (B, H, W)
        window, shift = int(layer.window_size), int(layer.shift_size)  # as used on this call
        lay = masks.window_layout(
            tokens, window, shift, order="pad-roll", shrink=False, with_region_mask=False
        )  # sources (B * nW, N)
        if inputs and tuple(inputs[0].shape[:2]) != tuple(lay.sources.shape):
            raise RuntimeError(
                f"stage {stage}: the attention gets windows {tuple(inputs[0].shape[:2])} but the real mask "
                f"propagated to {tuple(tokens.shape[1:])} tokens gives {tuple(lay.sources.shape)}"
            )
        scan = _scan_index(sources, lay.num_windows)
        return SiteLayout(lay.sources, lay.sources, scan, lay.window, lay.shift)

    return layout


# ---------------------------------------------------------------- the adapter


def _uses_interface(module: nn.Module) -> bool:
    """True for a self-attention module that dispatches through ``ALL_ATTENTION_FUNCTIONS``."""
    cls = type(module)
    if cls not in _INTERFACE_CLASSES:
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            source = ""
        _INTERFACE_CLASSES[cls] = (
            "ALL_ATTENTION_FUNCTIONS.get_interface(" in source and "Cross" not in cls.__name__
        )
    return _INTERFACE_CLASSES[cls] and hasattr(module, "config")


def _num_heads(module: nn.Module) -> int:
    for attr in ("num_attention_heads", "num_heads"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return int(module.config.num_attention_heads)


def _patch_size(config: Any, nd: int = 2) -> tuple[int, ...] | None:
    size = getattr(config, "patch_size", None)
    if size is None:
        return None
    return masks.per_axis(size if isinstance(size, int) else tuple(size), nd)


def _pretrained_roots(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from transformers import PreTrainedModel

    roots: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if isinstance(module, PreTrainedModel) and not any(
            name.startswith(f"{r}.") or r == "" for r, _ in roots
        ):
            roots.append((name, module))
    return roots


def _sites_of(prefix: str, root: nn.Module) -> list[AttentionSite]:
    """Sites of one ``PreTrainedModel`` (``prefix``: its path inside the measured model).

    Composite models (a config with sub-configs: CLIP, encoder-decoder wrappers) and
    cross-attention are left out: their keys are not the tokens of the one input measured.
    It is one pass over the model's modules that tells self-attention from everything else
    (55 lines): split, the rules would be harder to read side by side.
    """
    if getattr(root.config, "sub_configs", None):
        return []
    found = [
        (n, m)
        for n, m in root.named_modules()
        if _uses_interface(m) and "cross" not in n.lower() and "encoder_attn" not in n
    ]
    if not found:
        return []
    modules = dict(root.named_modules())
    switch = _SWITCHES.get(root)
    if switch is None:
        switch = _SWITCHES[root] = _Switch(root, [m for _, m in found])
    main_input = getattr(root, "main_input_name", "input_ids")
    patch = _patch_size(root.config)
    grids = _StageGrids(patch) if patch is not None else None
    stages: dict[str, int] = {}
    counters: dict[str, int] = {}
    sites = []
    for name, module in found:
        layer_name = name.rsplit(".", 1)[0] if "." in name else ""
        layer = modules.get(layer_name)
        windowed = layer is not None and hasattr(layer, "window_size") and hasattr(layer, "shift_size")
        if windowed and grids is not None:
            group = (
                layer_name.rsplit(".", 2)[0]
                if ".blocks." in f".{layer_name}"
                else layer_name.rsplit(".", 1)[0]
            )
            layout = None
        elif main_input == "pixel_values" and patch is not None:
            group, layout = "", _vit_layout(patch)
        elif main_input == "input_ids":
            group, layout = "", _token_layout
        else:
            return []  # a kind of model this adapter does not know
        stage = stages.setdefault(group, len(stages))
        block = counters.get(group, 0)
        counters[group] = block + 1
        if layout is None:
            layout = _window_layout(grids, stage, layer)
        sites.append(
            AttentionSite(
                name=f"{prefix}.{name}" if prefix else name,
                stage=stage,
                block=block,
                num_heads=_num_heads(module),
                softmax=None,
                layout=layout,
                watch=module,
                attention=module,
                install=_installer(switch, module),
            )
        )
    return sites


def hf_sites(model: nn.Module) -> list[AttentionSite]:
    """Sites of a Hugging Face ``transformers`` model (or a module holding one); [] otherwise.

    Never imports ``transformers`` for a model that is not one (it is already imported if it is)
    and never raises: a model it does not know gives [].
    """
    if "transformers" not in sys.modules:
        return []
    try:
        sites = []
        for prefix, root in _pretrained_roots(model):
            sites += _sites_of(prefix, root)
        return sites
    except Exception:  # noqa: BLE001 - an adapter never raises on a foreign model
        return []


register_adapter("hf", hf_sites)
