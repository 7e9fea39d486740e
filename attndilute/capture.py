"""Capture per-sample activations of named modules of any ``nn.Module`` with forward hooks.

The output of each selected module is reduced on the spot to ``(B, features)``, ready for
:class:`attndilute.MinibatchCKA` (seed §2.7: activations pooled per sample before Eq. 9):

- spatial outputs ``(B, C, *spatial)`` with 1-3 spatial axes (``layout="channels_first"``, the
  default for 4-D and 5-D outputs) or ``(B, *spatial, C)`` (``"channels_last"``, e.g. Swin
  blocks) are average-pooled to at most ``pool`` positions per axis;
- token outputs ``(B, L, C)`` (``layout="tokens"``, the default for 3-D outputs; ``(L, B, C)``
  with ``batch_first=False``) keep every token, are averaged over tokens, or are pooled along
  ``L`` (``tokens="keep" | "mean" | int``);
- 2-D outputs ``(B, F)`` are kept; a module returning a tuple or list (Hugging Face layers,
  ``nn.MultiheadAttention``) or a dict (a Hugging Face model output) gives its first tensor.

Adaptive average pooling never upsamples: an axis shorter than the target keeps its length.
Features are flattened channel-major; CKA does not depend on the order. Imports torch only.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from attndilute.errors import AttnDiluteError

__all__ = ["ActivationCapture", "capture_activations", "pick_tensor", "pool_activation", "pool_grid",
           "select_modules"]

LAYOUTS = ("auto", "tokens", "channels_first", "channels_last")
_POOL_FNS = {1: nn.functional.adaptive_avg_pool1d, 2: nn.functional.adaptive_avg_pool2d,
             3: nn.functional.adaptive_avg_pool3d}


def pool_grid(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Adaptive average pooling of ``(B, C, *spatial)`` to at most ``size`` per axis.

    Args:
        x: ``(B, C, *spatial)`` with 1-3 spatial axes.
        size: target positions per spatial axis (one per axis); an axis already shorter keeps
            its length instead of being upsampled by repetition.

    Returns:
        ``(B, C, *pooled)`` in ``x``'s dtype.
    """
    spatial = tuple(int(s) for s in x.shape[2:])
    if len(size) != len(spatial):
        raise ValueError(f"pool {tuple(size)} has {len(size)} axes, the output {tuple(x.shape)} has "
                         f"{len(spatial)} spatial axes")
    if len(spatial) not in _POOL_FNS:
        raise ValueError(f"can pool 1-3 spatial axes, got shape {tuple(x.shape)}")
    target = tuple(min(s, int(p)) for s, p in zip(spatial, size, strict=True))
    return _POOL_FNS[len(spatial)](x, target)


def pick_tensor(output, index: int = 0) -> torch.Tensor | None:
    """The tensor in a module's output: itself, or the ``index``-th tensor of a tuple or list.

    Hugging Face layers return tuples ``(hidden_states, ...)``; ``nn.MultiheadAttention``
    returns ``(output, weights)``. ``None`` when there is none.
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list):
        tensors = [o for o in output if isinstance(o, torch.Tensor)]
        if tensors:
            return tensors[index]
    return None


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_options(pool, tokens, layout) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    counts = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
    if tokens not in ("keep", "mean") and (counts is None or counts < 1):
        raise ValueError(f"tokens must be 'keep', 'mean' or a positive int, got {tokens!r}")
    sizes = [] if pool is None else [pool] if isinstance(pool, int) else list(pool)
    if pool is not None and (not sizes or not all(isinstance(p, int) and p >= 1 for p in sizes)):
        raise ValueError(f"pool must be None, a positive int or a tuple of them, got {pool!r}")


def pool_activation(
    t: torch.Tensor,
    *,
    pool: int | Sequence[int] | None = None,
    tokens: str | int = "keep",
    layout: str = "auto",
    batch_first: bool = True,
) -> torch.Tensor:
    """Reduce one module output to ``(B, features)`` (float32, or float64 if it was float64).

    Args:
        t: the output tensor, batch first (except token outputs with ``batch_first=False``).
        pool: spatial target positions per axis (an int for every axis, or one per axis);
            ``None`` keeps every position. Token outputs ignore it (see ``tokens``).
        tokens: token outputs ``(B, L, C)``: ``"keep"`` every token, ``"mean"`` over tokens,
            or an int: adaptive average pooling along ``L`` to at most that many tokens.
        layout: ``"auto"`` (2-D flat, 3-D tokens, 4-D/5-D channels-first), ``"tokens"``,
            ``"channels_first"`` ``(B, C, *spatial)`` or ``"channels_last"`` ``(B, *spatial, C)``.
        batch_first: token outputs are ``(B, L, C)``; ``False``: ``(L, B, C)`` (the default of
            ``nn.TransformerEncoderLayer``).

    Returns:
        ``(B, features)``.
    """
    _check_options(pool, tokens, layout)
    if layout == "auto":
        layout = {2: "flat", 3: "tokens", 4: "channels_first", 5: "channels_first"}.get(t.dim(), "flat")
    if layout == "tokens":
        if t.dim() != 3:
            raise ValueError(f"token outputs must be (B, L, C), got shape {tuple(t.shape)}")
        x = t if batch_first else t.transpose(0, 1)  # (B, L, C)
        if tokens == "mean":
            x = _float(x).mean(dim=1)  # (B, C)
        elif tokens != "keep":
            x = pool_grid(_float(x).transpose(1, 2), (tokens,))  # (B, C, <=tokens)
        return _float(x).reshape(x.shape[0], -1)
    if layout in ("channels_first", "channels_last") and t.dim() >= 3:
        x = t.movedim(-1, 1) if layout == "channels_last" else t  # (B, C, *spatial)
        if pool is not None:
            size = (pool,) * (x.dim() - 2) if isinstance(pool, int) else tuple(pool)
            x = pool_grid(_float(x), size)  # (B, C, *pooled)
        return _float(x).reshape(x.shape[0], -1)
    return _float(t).reshape(t.shape[0], -1)  # flat (B, ...)


def select_modules(model: nn.Module, layers: str | Iterable[str]) -> list[str]:
    """Resolve module names and ``fnmatch`` globs to module names of ``model``.

    An exact name selects that module; a glob (``*`` also crosses dots, so ``"layers.*"`` matches
    ``layers.0`` and ``layers.0.linear1``; ``"layers.?"`` matches ``layers.0`` to ``layers.9``, or
    pass a list of names)
    selects every matching module in ``model.named_modules()`` order, skipping containers
    without a forward (``ModuleList``, ``ModuleDict``). Duplicates are dropped. A module whose
    parent uses its weights without calling it (``out_proj`` of ``nn.MultiheadAttention``) never
    runs, which the capture reports as an error.

    Returns:
        Module names in the order of ``layers`` (then of the model within one glob).

    Raises:
        AttnDiluteError: a name or glob that matches no module.
    """
    patterns = [layers] if isinstance(layers, str) else list(layers)
    modules = dict(model.named_modules())
    chosen: dict[str, None] = {}
    for pattern in patterns:
        if pattern in modules:
            chosen[pattern] = None
            continue
        hits = [n for n, m in modules.items() if n and fnmatch.fnmatchcase(n, pattern)
                and not isinstance(m, nn.ModuleList | nn.ModuleDict)]
        if not hits:
            some = ", ".join(n for n in list(modules)[1:9])
            raise AttnDiluteError(f"layer {pattern!r} matches no module of {type(model).__name__}",
                                  hint=f"names are those of model.named_modules(), e.g. {some}")
        chosen.update(dict.fromkeys(hits))
    if not chosen:
        raise AttnDiluteError("no layers to capture", hint="pass module names or globs")
    return list(chosen)


class ActivationCapture:
    """Forward hooks on named modules that keep each output as ``(B, features)``.

    Every call of the model (``model(...)``) starts a fresh capture; a module that runs more
    than once in one forward keeps its first output. Hooks are removed on exit, also when the
    forward raises. Call ``model.eval()`` first if dropout should not change the activations.

    Example:
        >>> with ActivationCapture(model, ["encoder.layers.?"], tokens="mean") as cap:  # doctest: +SKIP
        ...     for x in loader:
        ...         acts = cap(x)                      # {name: (B, C)}
        ...         metric.update(acts)

    Args:
        model: any ``nn.Module``.
        layers: module names or ``fnmatch`` globs (see :func:`select_modules`).
        pool, tokens, layout, batch_first: how each output is reduced (see
            :func:`pool_activation`).
        detach: store detached outputs (default); ``False`` keeps the autograd graph.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Iterable[str],
        *,
        pool: int | Sequence[int] | None = None,
        tokens: str | int = "keep",
        layout: str = "auto",
        batch_first: bool = True,
        detach: bool = True,
    ):
        self.model = model
        self.names = select_modules(model, layers)
        self.options = {"pool": pool, "tokens": tokens, "layout": layout, "batch_first": batch_first}
        _check_options(pool, tokens, layout)
        self.detach = detach
        self._out: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> ActivationCapture:
        modules = dict(self.model.named_modules())
        try:
            self._handles.append(self.model.register_forward_pre_hook(lambda *_: self.clear()))
            for name in self.names:
                self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook (done on exit)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def clear(self) -> None:
        """Forget the captured outputs (done at the start of every ``model(...)`` call)."""
        self._out = {}

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if name in self._out:  # a module called twice in one forward keeps its first output
                return
            t = pick_tensor(list(output.values()) if isinstance(output, Mapping) else output)
            if t is None:
                raise AttnDiluteError(f"layer {name!r} returned no tensor ({type(output).__name__})")
            self._out[name] = pool_activation(t.detach() if self.detach else t, **self.options)

        return hook

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        """``{name: (B, features)}`` of the last forward, in :attr:`names` order."""
        missing = [n for n in self.names if n not in self._out]
        if missing:
            raise AttnDiluteError(f"layers never ran in the forward: {', '.join(missing)}",
                                  hint="choose modules that the model calls")
        return {n: self._out[n] for n in self.names}

    def __call__(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """Run ``model(*args, **kwargs)`` and return :attr:`activations`."""
        if not self._handles:
            raise RuntimeError("hooks are not registered: use `with ActivationCapture(...) as cap:`")
        self.clear()
        self.model(*args, **kwargs)
        return self.activations


def capture_activations(
    model: nn.Module,
    inputs,
    layers: str | Iterable[str],
    *,
    pool: int | Sequence[int] | None = None,
    tokens: str | int = "keep",
    layout: str = "auto",
    batch_first: bool = True,
    forward_kwargs: dict | None = None,
) -> dict[str, torch.Tensor]:
    """One forward ``model(inputs, **forward_kwargs)`` without gradients; per-layer activations.

    Args:
        model: any ``nn.Module`` (call ``model.eval()`` first for deterministic outputs).
        inputs: the model's first positional input (images, token ids, embeddings).
        layers: module names or ``fnmatch`` globs (see :func:`select_modules`).
        pool, tokens, layout, batch_first: see :func:`pool_activation`.
        forward_kwargs: passed to the forward unchanged (e.g. a Hugging Face ``attention_mask``).

    Returns:
        ``{module name: (B, features)}`` in the order of ``layers``: a dict that
        :meth:`attndilute.MinibatchCKA.update` takes as it is.
    """
    options = {"pool": pool, "tokens": tokens, "layout": layout, "batch_first": batch_first}
    with ActivationCapture(model, layers, **options) as cap, torch.no_grad():
        return cap(inputs, **(forward_kwargs or {}))
