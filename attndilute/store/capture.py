"""Forward hooks that pool each selected module's output to a few tokens (seed §2.7).

Each hooked output is reduced on the spot to ``(B, C * prod(pool))`` float32, so a forward never
holds more than the pooled activations. Block outputs are channels-last ``(B, D, H, W, C)`` (the
MONAI block interface); other 5-D outputs are laid out as found (see :func:`infer_layout`).
Adaptive average pooling never upsamples: an axis shorter than the pool size keeps its length
(deep stages of small crops have fewer than 8 tokens per axis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from attndilute.capture import pick_tensor, pool_grid
from attndilute.errors import AttnDiluteError
from attndilute.store.layers import LayerSpec


@dataclass(frozen=True)
class Pooled:
    """One layer's pooled output for a batch.

    Args:
        features: ``(B, C * t0 * t1 * t2)`` float32 (channel-major, then tokens).
        layout: ``"channels_last"``, ``"channels_first"`` or ``"flat"`` (not pooled).
        tokens: pooled token grid ``(t0, t1, t2)``, or ``()`` for ``"flat"``.
        channels: C, or the flattened size for ``"flat"``.
    """

    features: torch.Tensor
    layout: str
    tokens: tuple[int, ...]
    channels: int


def _is_grid(dims: Sequence[int], crop: Sequence[int]) -> bool:
    """Whether ``dims`` is the crop divided (rounding up) by one power of two."""
    return any(tuple(dims) == tuple(-(-c // 2**k) for c in crop) for k in range(9))


def infer_layout(shape: Sequence[int], crop: Sequence[int] | None, hint: str) -> str:
    """Where the channel axis of a 5-D ``(B, ., ., ., .)`` activation is.

    Args:
        shape: the activation's shape.
        crop: the input's spatial size ``(X, Y, Z)``; spatial axes of every feature map are the
            crop divided by a power of two (patch embedding and merging round up).
        hint: the layout to use when the shape fits both or neither (``"channels_last"`` for
            blocks, ``"channels_first"`` otherwise).

    Returns:
        ``"channels_first"`` or ``"channels_last"``.
    """
    if crop is None:
        return hint
    first, last = _is_grid(shape[2:5], crop), _is_grid(shape[1:4], crop)
    if first != last:
        return "channels_first" if first else "channels_last"
    return hint


def pool_tokens(t: torch.Tensor, *, layout: str, pool: Sequence[int] | None) -> Pooled:
    """Average-pool a 5-D activation to at most ``pool`` tokens per axis and flatten it.

    Args:
        t: ``(B, C, D, H, W)`` (channels_first) or ``(B, D, H, W, C)`` (channels_last); any
            other rank is flattened as is.
        layout: as returned by :func:`infer_layout`.
        pool: target tokens per axis, e.g. ``(8, 8, 8)``; ``None`` keeps every token.

    Returns:
        :class:`Pooled` with ``features`` ``(B, C * t0 * t1 * t2)`` float32.
    """
    if t.dim() != 5:
        flat = t.reshape(t.shape[0], -1).float()
        return Pooled(flat, "flat", (), flat.shape[1])
    x = t.permute(0, 4, 1, 2, 3) if layout == "channels_last" else t  # (B, C, D, H, W)
    if pool is not None:
        x = pool_grid(x.float(), pool)  # (B, C, t0, t1, t2), never upsampled
    x = x.float()
    return Pooled(x.reshape(x.shape[0], -1), layout, tuple(int(s) for s in x.shape[2:]), int(x.shape[1]))


class _Done(Exception):
    """Raised from the last hook to skip the rest of the forward (the decoder)."""


def _pick_tensor(output, spec: LayerSpec) -> torch.Tensor | None:
    # a stage hands on its last output (after patch merging); others their first
    return pick_tensor(output, -1 if spec.kind == "stage" else 0)


class LayerCapture:
    """Hooks on named modules; :meth:`run` returns their pooled outputs for one input.

    Example:
        >>> specs = select_layers(model)                       # doctest: +SKIP
        >>> with LayerCapture(model, specs, crop=(64, 64, 64)) as cap:
        ...     pooled = cap.run(x)                            # {name: Pooled}

    Args:
        model: the network.
        specs: the modules to hook (from :func:`attndilute.store.select_layers`).
        crop: the input's spatial size, used by :func:`infer_layout`.
        pool: target tokens per axis, or None.
        stop_early: end the forward once every hooked module has run (skips the decoder).
    """

    def __init__(
        self,
        model: nn.Module,
        specs: Sequence[LayerSpec],
        *,
        crop: Sequence[int] | None,
        pool: Sequence[int] | None = (8, 8, 8),
        stop_early: bool = True,
    ):
        self.model = model
        self.specs = list(specs)
        self.crop = None if crop is None else tuple(int(c) for c in crop)
        self.pool = None if pool is None else tuple(int(p) for p in pool)
        self.stop_early = stop_early
        self._out: dict[str, Pooled] = {}
        self._handles: list = []

    def __enter__(self) -> LayerCapture:
        modules = dict(self.model.named_modules())
        for spec in self.specs:
            self._handles.append(modules[spec.name].register_forward_hook(self._hook(spec)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, spec: LayerSpec):
        hint = "channels_last" if spec.kind == "block" else "channels_first"

        def hook(module, inputs, output):
            if spec.name in self._out:  # a module called twice keeps its first output
                return
            t = _pick_tensor(output, spec)
            if t is None:
                raise AttnDiluteError(f"layer {spec.name!r} returned no tensor ({type(output).__name__})")
            layout = infer_layout(t.shape, self.crop, hint) if t.dim() == 5 else "flat"
            self._out[spec.name] = pool_tokens(t.detach(), layout=layout, pool=self.pool)
            if self.stop_early and len(self._out) == len(self.specs):
                raise _Done

        return hook

    def run(self, x: torch.Tensor) -> dict[str, Pooled]:
        """Forward ``x`` ``(B, C, X, Y, Z)``; return ``{layer name: Pooled}`` in spec order."""
        self._out = {}
        try:
            with torch.inference_mode():
                self.model(x)
        except _Done:
            pass
        missing = [s.name for s in self.specs if s.name not in self._out]
        if missing:
            raise AttnDiluteError(f"layers never ran in the forward: {', '.join(missing)}",
                                  hint="choose modules that the model calls (--layers)")
        return {s.name: self._out[s.name] for s in self.specs}


def n_features(pooled: Pooled) -> int:
    """Flattened feature count of one sample."""
    return pooled.channels * math.prod(pooled.tokens) if pooled.tokens else pooled.channels
