"""Online ADI: hooks that reduce every block's attention while the model runs (seed §2.4, Eq. 4-7).

:class:`ADIMeter` installs, for each attention site, a forward pre-hook on the site's ``watch``
module (it captures the block's input shape and derives the token layout from the batch's real
mask) and a forward hook on its softmax (it reduces the attention to sums by scan, head and token
source, then lets it go). No attention map outlives its block. Fused attention
(``use_flash_attention``) is switched off while the meter is active and restored afterwards,
because a fused kernel never materialises the weights the hook reads.

:func:`measure_adi` runs one forward inside a meter and returns the ``xarray.Dataset`` of
DESIGN §3.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from attndilute import masks
from attndilute.instrument.reduce import count_queries, reduce_attention
from attndilute.instrument.sites import AttentionSite, SiteLayout, find_sites

HEAD_MODES = ("per-head", "mean-attention")


class ADIMeter:
    """Accumulate entropy sums of every attention site over forward calls.

    Use as a context manager around forwards; call :meth:`set_real` before each forward with that
    batch's real mask. States are sums (per scan, site, head, query source, key source), so
    batches of different scans are appended and the same scans could be all-reduced.

    Args:
        model: the model (any model an adapter recognises).
        heads: ``"per-head"`` (Eq. 6-7, default) or ``"mean-attention"`` (average the attention
            over heads first, as the seed's released code).
        sites: explicit sites; default :func:`attndilute.instrument.find_sites`.
    """

    def __init__(
        self, model: nn.Module, *, heads: str = "per-head", sites: Sequence[AttentionSite] | None = None
    ):
        if heads not in HEAD_MODES:
            raise ValueError(f"heads must be one of {HEAD_MODES}, got {heads!r}")
        self.model = model
        self.mean_heads = heads == "mean-attention"
        self.heads = heads
        self.sites = list(sites) if sites is not None else find_sites(model)
        self._handles: list[Any] = []
        self._flash: list[tuple[nn.Module, bool]] = []
        self._sources: torch.Tensor | None = None
        self._pending: dict[int, SiteLayout] = {}
        self.reset()

    # -- state
    def reset(self) -> None:
        self._batches: list[dict[str, Any]] = []

    def set_real(self, real: torch.Tensor) -> None:
        """Set the voxel real mask (B, X, Y, Z) bool (or uint8 sources) of the next forward."""
        self._sources = masks.as_sources(real)
        self._current = {
            "h": [None] * len(self.sites),
            "mass": [None] * len(self.sites),
            "count": [None] * len(self.sites),
            "window": [None] * len(self.sites),
            "shift": [None] * len(self.sites),
            "calls": [0] * len(self.sites),
            "num_scans": int(real.shape[0]),
        }
        self._batches.append(self._current)

    # -- hooks
    def __enter__(self) -> ADIMeter:
        for i, site in enumerate(self.sites):
            if site.watch is not None:
                self._handles.append(site.watch.register_forward_pre_hook(self._watch_hook(i)))
            self._handles.append(site.softmax.register_forward_hook(self._softmax_hook(i)))
            attn = site.attention
            if attn is not None and getattr(attn, "use_flash_attention", False):
                self._flash.append((attn, True))
                attn.use_flash_attention = False
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for attn, flag in self._flash:
            attn.use_flash_attention = flag
        self._flash.clear()
        self._pending.clear()

    def _layout(self, i: int, inputs: tuple) -> SiteLayout:
        if self._sources is None:
            raise RuntimeError("ADIMeter.set_real(real) must be called before the forward")
        return self.sites[i].layout(self._sources, inputs)

    def _watch_hook(self, i: int):
        def hook(module, args):
            self._pending[i] = self._layout(i, args)

        return hook

    def _softmax_hook(self, i: int):
        def hook(module, args, output):
            layout = self._pending.pop(i, None)
            if layout is None:
                layout = self._layout(i, args)
            cur = self._current
            h, mass = reduce_attention(output.detach(), layout, cur["num_scans"], mean_heads=self.mean_heads)
            count = count_queries(layout, cur["num_scans"])
            if cur["h"][i] is None:
                cur["h"][i], cur["mass"][i], cur["count"][i] = h, mass, count
            else:  # a site called more than once per forward (e.g. recomputation): sums add up
                cur["h"][i] += h
                cur["mass"][i] += mass
                cur["count"][i] += count
            cur["window"][i], cur["shift"][i] = layout.window, layout.shift
            cur["calls"][i] += 1

        return hook

    # -- results
    def sums(self) -> dict[str, torch.Tensor]:
        """Stacked sums over all batches seen.

        Returns:
            ``h`` and ``mass`` (scans, sites, max_heads, 3, 3) float64 with NaN for absent heads,
            ``count`` (scans, sites, 3) query counts per source.
        """
        if not self._batches:
            raise RuntimeError("no forward was measured")
        heads = 1 if self.mean_heads else max(s.num_heads for s in self.sites)
        hs, ms, cs = [], [], []
        for batch in self._batches:
            missing = [self.sites[i].name for i, v in enumerate(batch["h"]) if v is None]
            if missing:
                raise RuntimeError(f"these attention sites did not run: {', '.join(missing[:5])}")
            b = batch["num_scans"]
            h = torch.full((b, len(self.sites), heads, 3, 3), torch.nan, dtype=torch.float64)
            m = h.clone()
            for i, (hi, mi) in enumerate(zip(batch["h"], batch["mass"], strict=True)):
                h[:, i, : hi.shape[1]] = hi.cpu()
                m[:, i, : mi.shape[1]] = mi.cpu()
            hs.append(h)
            ms.append(m)
            cs.append(torch.stack([c.cpu() for c in batch["count"]], 1))
        return {"h": torch.cat(hs), "mass": torch.cat(ms), "count": torch.cat(cs)}

    def windows(self) -> list[tuple[tuple | None, tuple | None]]:
        """(window, shift) each site actually used in the last batch."""
        cur = self._batches[-1]
        return list(zip(cur["window"], cur["shift"], strict=True))


def _accepts_real(model: nn.Module) -> bool:
    try:
        return "real" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def axial_padding_fraction(real: torch.Tensor) -> torch.Tensor:
    """Padding fraction per scan from a real mask (Eq. 4 with L = real slices along Z).

    Args:
        real: (B, X, Y, Z) bool.

    Returns:
        (B,) float64: ``1 - L / Z`` with L the number of axial slices holding any real voxel.
    """
    slices = real.flatten(1, 2).any(1)  # (B, Z)
    return 1.0 - slices.double().sum(1) / real.shape[-1]


def measure_adi(
    model: nn.Module,
    images: torch.Tensor,
    real: torch.Tensor,
    *,
    heads: str = "per-head",
    scans: Sequence[str] | None = None,
    padding_fraction: Sequence[float] | torch.Tensor | None = None,
    sites: Sequence[AttentionSite] | None = None,
    autocast_dtype: torch.dtype | None = None,
):
    """Attention dilution index of every block, head and scan, measured online (Eq. 4-7).

    Args:
        model: a model an adapter recognises (MONAI ``SwinUNETR`` v1/v2, SMIT, or registered).
        images: (B, C, X, Y, Z) in the model's input space.
        real: (B, X, Y, Z) bool, True where the voxel came from the image.
        heads: ``"per-head"`` (Eq. 6-7) or ``"mean-attention"`` (the seed's released code).
        scans: B scan names (default ``scan0``, ``scan1``, ...).
        padding_fraction: B padding fractions (Eq. 4); default from ``real``
            (:func:`axial_padding_fraction`).
        sites: explicit attention sites (default: found by the adapters).
        autocast_dtype: run the forward under ``torch.autocast`` with this dtype (entropy stays
            float32).

    Returns:
        ``xarray.Dataset`` with dims ``scan, layer, head`` (see :func:`to_dataset`).
    """
    from attndilute.instrument.dataset import to_dataset

    if (
        images.dim() != 5
        or real.dim() != 4
        or real.shape[0] != images.shape[0]
        or real.shape[1:] != images.shape[2:]
    ):
        raise ValueError(
            f"images {tuple(images.shape)} and real {tuple(real.shape)} do not match: "
            "expected (B, C, X, Y, Z) and (B, X, Y, Z)"
        )
    real = real.to(images.device).bool()
    meter = ADIMeter(model, heads=heads, sites=sites)
    kwargs = {"real": real} if _accepts_real(model) else {}
    with meter, torch.no_grad():
        meter.set_real(real)
        if autocast_dtype is not None:
            with torch.autocast(images.device.type, dtype=autocast_dtype):
                model(images, **kwargs)
        else:
            model(images, **kwargs)
    pf = axial_padding_fraction(real.cpu()) if padding_fraction is None else torch.as_tensor(padding_fraction)
    names = list(scans) if scans is not None else [f"scan{i}" for i in range(images.shape[0])]
    return to_dataset(meter, names, pf)
