"""Online ADI: hooks that reduce every block's attention while the model runs (seed §2.4, Eq. 4-7).

:class:`ADIMeter` installs, for each attention site, a forward pre-hook on the site's ``watch``
module (it captures the block's input shape and derives the token layout from the batch's real
mask) and a forward hook on its softmax (it reduces the attention to sums by scan, head and token
source, then lets it go). No attention map outlives its block. A fused kernel
(``use_flash_attention``, timm ``fused_attn``) never materialises the weights, so its call is
computed window-chunk by window-chunk while the meter is active (:mod:`attndilute.instrument.fused`):
the extra memory is one chunk, never a layer's map.

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
from attndilute.instrument.dataset import to_dataset
from attndilute.instrument.reduce import reduce_attention
from attndilute.instrument.sites import AttentionSite, SiteLayout, find_sites

HEAD_MODES = ("per-head", "mean-attention")
WINDOW_MODES = ("pooled", "mean")
_STATES = ("h", "mass", "count", "window_adi", "windows")


class ADIMeter:
    """Accumulate the entropy sums of every attention site over batches (an accumulator).

    Like a torchmetrics metric: :meth:`update` runs one batch through the model with the sites
    connected and keeps only sums; :meth:`compute` gives the ADI, :meth:`to_dataset` the whole
    result, :meth:`reset` forgets, :meth:`sync` gathers the batches of every process (DDP). The
    sites are connected only inside :meth:`update` (or a ``with meter:`` block), so every hook
    and every routing of fused attention is undone after each batch, also when the forward raises.

    Args:
        model: the model (any model an adapter recognises).
        heads: ``"per-head"`` (Eq. 6-7, default) or ``"mean-attention"`` (average the attention
            over heads first, as the authors' public repository, RectalTxSeg).
        windows: ``"pooled"`` (default: Eq. 7 as a ratio of sums over all windows of a block) or
            ``"mean"`` (the mean of each window's Eq. 7 over the windows holding real queries).
        sites: explicit sites; default :func:`attndilute.instrument.find_sites`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        heads: str = "per-head",
        windows: str = "pooled",
        sites: Sequence[AttentionSite] | None = None,
    ):
        if heads not in HEAD_MODES:
            raise ValueError(f"heads must be one of {HEAD_MODES}, got {heads!r}")
        if windows not in WINDOW_MODES:
            raise ValueError(f"windows must be one of {WINDOW_MODES}, got {windows!r}")
        self.model = model
        self.mean_heads = heads == "mean-attention"
        self.heads = heads
        self.windows_mode = windows
        self.sites = list(sites) if sites is not None else find_sites(model)
        self._removers: list[Any] = []
        self._depth = 0  # nested ``with meter:`` / update(): connected until the outermost exits
        self._sources: torch.Tensor | None = None
        self._pending: dict[int, SiteLayout] = {}
        self.reset()

    # -- state
    def reset(self) -> None:
        """Forget every batch."""
        self._batches: list[dict[str, Any]] = []
        self._own: list[dict[str, Any]] = []  # this process's batches (what sync gathers)

    def set_real(
        self,
        real: torch.Tensor,
        *,
        scans: Sequence[str] | None = None,
        padding_fraction: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        """Start a batch: its real mask ``(B, *spatial)`` or ``(B, L)`` bool (or uint8 sources).

        Args:
            real: True where the input element is not padding.
            scans: B names (default ``scan<i>`` numbered over all batches).
            padding_fraction: B values (default: the share of non-real elements of ``real``).
        """
        self._sources = masks.as_sources(real)
        self._pending.clear()  # layouts of the previous batch
        b = int(real.shape[0])
        done = sum(batch["num_scans"] for batch in self._own)
        prefix = _rank_prefix()
        default = [f"{prefix}scan{i}" for i in range(done, done + b)]
        names = [str(n) for n in scans] if scans is not None else default
        pf = share_not_real(real) if padding_fraction is None else torch.as_tensor(padding_fraction).double()
        if len(names) != b or pf.numel() != b:
            raise ValueError(f"{len(names)} scan names and {pf.numel()} padding fractions for {b} scans")
        self._current = {name: [None] * len(self.sites) for name in _STATES}
        self._current.update(
            window=[None] * len(self.sites),
            shift=[None] * len(self.sites),
            num_scans=b,
            scans=names,
            padding_fraction=pf.reshape(-1).cpu(),
        )
        self._batches.append(self._current)
        self._own.append(self._current)

    def _drop_current(self) -> None:
        """Forget the batch that just failed, so the meter stays usable."""
        for batches in (self._batches, self._own):
            if batches and batches[-1] is self._current:
                batches.pop()

    def update(
        self,
        inputs: torch.Tensor,
        real: torch.Tensor,
        *,
        scans: Sequence[str] | None = None,
        padding_fraction: Sequence[float] | torch.Tensor | None = None,
        forward_kwargs: dict[str, Any] | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        """Run ``model(inputs, **forward_kwargs)`` on one batch and add its sums.

        Args:
            inputs: the model's first positional input: images ``(B, C, *spatial)`` with 1-3
                spatial axes, or token ids ``(B, L)``.
            real: ``(B, *spatial)`` or ``(B, L)`` bool, True where the input is not padding.
            scans, padding_fraction: see :meth:`set_real`.
            forward_kwargs: passed to the forward unchanged (e.g. a Hugging Face ``attention_mask``).
            autocast_dtype: run the forward under ``torch.autocast`` with this dtype (the entropy
                stays float32).
        """
        real = check_inputs(inputs, real)
        kwargs = dict(forward_kwargs or {})
        if _accepts_real(self.model) and "real" not in kwargs and inputs.dim() == real.dim() + 1:
            kwargs["real"] = real  # SMIT: its own padding mask (mask_padding) needs the real mask
        self.set_real(real, scans=scans, padding_fraction=padding_fraction)
        try:
            with self, torch.no_grad():
                if autocast_dtype is not None:
                    with torch.autocast(inputs.device.type, dtype=autocast_dtype):
                        self.model(inputs, **kwargs)
                else:
                    self.model(inputs, **kwargs)
            self._check_ran(self._current)
        except BaseException:
            self._drop_current()
            raise

    # -- hooks
    def __enter__(self) -> ADIMeter:
        self._depth += 1
        if self._depth > 1:
            return self  # already connected (update inside a ``with meter:`` block)
        try:
            for i, site in enumerate(self.sites):
                if site.watch is not None:
                    self._removers.append(site.watch.register_forward_pre_hook(self._watch_hook(i)).remove)
                self._removers.append(site.connect(self._on_attention(i)))
        except BaseException:
            self._depth = 1
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth:
            return
        removers, self._removers = self._removers, []
        for remove in reversed(removers):
            remove()
        self._pending.clear()

    def _layout(self, i: int, inputs: tuple) -> SiteLayout:
        if self._sources is None:
            raise RuntimeError("ADIMeter.set_real(real) must be called before the forward")
        return self.sites[i].layout(self._sources, inputs)

    def _watch_hook(self, i: int):
        def hook(module, args):
            self._pending[i] = self._layout(i, args)

        return hook

    def _on_attention(self, i: int):
        def receive(
            attn: torch.Tensor, scores: torch.Tensor | None = None, groups: slice | None = None
        ) -> None:
            """attn: (G or a chunk of G, heads, Nq, Nk); scores: its logits, if known."""
            layout = self._pending.get(i)
            if layout is None:
                layout = self._pending[i] = self._layout(i, ())
            cur = self._current
            sums = reduce_attention(
                attn.detach(),
                layout,
                cur["num_scans"],
                mean_heads=self.mean_heads,
                scores=None if scores is None else scores.detach(),
                groups=groups,
            )
            for name in _STATES:
                # chunks of one call, or a site called more than once per forward: sums add up
                cur[name][i] = sums[name] if cur[name][i] is None else cur[name][i] + sums[name]
            cur["window"][i], cur["shift"][i] = layout.window, layout.shift

        return receive

    def _check_ran(self, batch: dict[str, Any]) -> None:
        missing = [self.sites[i].name for i, v in enumerate(batch["h"]) if v is None]
        if missing:
            raise RuntimeError(
                f"these attention sites did not run: {', '.join(missing[:5])}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                + ". Their weights were never formed: a fused kernel the adapter could not route "
                "(a kernel other than scaled_dot_product_attention, "
                "the Hugging Face attention implementation), "
                "or a forward that skips these modules"
            )

    # -- results
    def sums(self) -> dict[str, torch.Tensor]:
        """Stacked sums over all batches seen.

        Returns:
            ``h`` and ``mass`` (scans, sites, max_heads, 3, 3) float64 with NaN for absent heads,
            ``count`` (scans, sites, 3) query counts per source, ``window_adi`` (scans, sites,
            max_heads, 3) summed per-window ADI (total, input pad, layout pad), ``windows``
            (scans, sites) windows holding real queries.
        """
        if not self._batches:
            raise RuntimeError("no forward was measured")
        heads = 1 if self.mean_heads else max(s.num_heads for s in self.sites)
        out: dict[str, list[torch.Tensor]] = {name: [] for name in _STATES}
        for batch in self._batches:
            self._check_ran(batch)
            b = batch["num_scans"]
            for name, tail in (("h", (3, 3)), ("mass", (3, 3)), ("window_adi", (3,))):
                full = torch.full((b, len(self.sites), heads, *tail), torch.nan, dtype=torch.float64)
                for i, value in enumerate(batch[name]):
                    full[:, i, : value.shape[1]] = value.cpu()
                out[name].append(full)
            out["count"].append(torch.stack([c.cpu() for c in batch["count"]], 1))
            out["windows"].append(torch.stack([w.cpu() for w in batch["windows"]], 1))
        return {name: torch.cat(values) for name, values in out.items()}

    @property
    def scans(self) -> list[str]:
        """Scan names of all batches, in order."""
        return [name for batch in self._batches for name in batch["scans"]]

    @property
    def padding_fractions(self) -> torch.Tensor:
        """(scans,) float64 padding fractions of all batches."""
        return torch.cat([batch["padding_fraction"] for batch in self._batches])

    def windows(self) -> list[tuple[tuple | None, tuple | None]]:
        """(window, shift) each site actually used in the last batch."""
        cur = self._batches[-1]
        return list(zip(cur["window"], cur["shift"], strict=True))

    def compute(self) -> torch.Tensor:
        """ADI (Eq. 7) per scan, site and head: (scans, sites, max_heads) float64, NaN where none."""
        return torch.from_numpy(self.to_dataset()["adi"].values)

    def to_dataset(self):
        """The result as an ``xarray.Dataset`` (DESIGN §3; see ``attndilute.instrument.dataset``)."""
        return to_dataset(self)

    def sync(self) -> None:
        """Gather the batches of every process (``torch.distributed``), in rank order; no-op alone."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        mine = [{k: _to_cpu(v) for k, v in batch.items()} for batch in self._own]
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, mine)
        self._batches = [batch for rank in gathered for batch in rank]  # idempotent: gathers _own


def _rank_prefix() -> str:
    """``rank<r>-`` under ``torch.distributed`` with several processes (unique default names)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return f"rank{dist.get_rank()}-"
    return ""


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


def _accepts_real(model: nn.Module) -> bool:
    try:
        return "real" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def share_not_real(real: torch.Tensor) -> torch.Tensor:
    """(B,) float64: the share of input elements that are padding (the default padding fraction)."""
    return 1.0 - real.reshape(real.shape[0], -1).double().mean(1).cpu()


def axial_padding_fraction(real: torch.Tensor) -> torch.Tensor:
    """Padding fraction per scan from a 3-D real mask (Eq. 4 with L = real slices along Z).

    Args:
        real: (B, X, Y, Z) bool.

    Returns:
        (B,) float64: ``1 - L / Z`` with L the number of axial slices holding any real voxel.
    """
    slices = real.flatten(1, 2).any(1)  # (B, Z)
    return 1.0 - slices.double().sum(1) / real.shape[-1]


def check_inputs(inputs: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``real`` as a bool tensor on ``inputs``' device, after checking the two shapes agree.

    Images ``(B, C, *spatial)`` with 1-3 spatial axes take ``real (B, *spatial)``; token ids
    ``(B, L)`` take ``real (B, L)``.
    """
    images = inputs.dim() in (3, 4, 5) and real.dim() == inputs.dim() - 1
    images = images and real.shape[1:] == inputs.shape[2:]
    tokens = inputs.dim() == 2 and real.shape == inputs.shape
    if real.shape[:1] != inputs.shape[:1] or not (images or tokens):
        raise ValueError(
            f"inputs {tuple(inputs.shape)} and real {tuple(real.shape)} do not match: expected images "
            "(B, C, *spatial) with 1-3 spatial axes and real (B, *spatial), or tokens (B, L) and real (B, L)"
        )
    return real.to(inputs.device).bool()


def measure_adi(
    model: nn.Module,
    inputs: torch.Tensor,
    real: torch.Tensor,
    *,
    heads: str = "per-head",
    windows: str = "pooled",
    scans: Sequence[str] | None = None,
    padding_fraction: Sequence[float] | torch.Tensor | None = None,
    sites: Sequence[AttentionSite] | None = None,
    autocast_dtype: torch.dtype | None = None,
    forward_kwargs: dict[str, Any] | None = None,
):
    """Attention dilution index of every block, head and scan, measured online (Eq. 4-7).

    Args:
        model: a model an adapter recognises (MONAI ``SwinUNETR`` v1/v2 2-D or 3-D, SMIT, timm
            Swin and ViT, Hugging Face models, or one registered with ``register_adapter``).
        inputs: the model's first positional input: images ``(B, C, *spatial)`` with 1-3
            spatial axes, or token ids ``(B, L)``.
        real: ``(B, *spatial)`` or ``(B, L)`` bool, True where the input is not padding.
        heads: ``"per-head"`` (Eq. 6-7) or ``"mean-attention"`` (the authors' public repository, RectalTxSeg).
        windows: ``"pooled"`` (ratio of sums over windows) or ``"mean"`` (mean of per-window ADI).
        scans: B scan names (default ``scan0``, ``scan1``, ...).
        padding_fraction: B padding fractions; default the share of non-real input elements
            (the CLI passes Eq. 4's axial value for 3-D volumes; the Dataset's
            ``padding_fraction_definition`` attribute says which it holds).
        sites: explicit attention sites (default: found by the adapters).
        autocast_dtype: run the forward under ``torch.autocast`` with this dtype (entropy stays
            float32).
        forward_kwargs: passed to the forward unchanged (e.g. a Hugging Face ``attention_mask``).

    Returns:
        ``xarray.Dataset`` with dims ``scan, layer, head`` (see
        :func:`attndilute.instrument.dataset.to_dataset`).
    """
    meter = ADIMeter(model, heads=heads, windows=windows, sites=sites)
    meter.update(
        inputs,
        real,
        scans=scans,
        padding_fraction=padding_fraction,
        forward_kwargs=forward_kwargs,
        autocast_dtype=autocast_dtype,
    )
    ds = meter.to_dataset()
    if padding_fraction is not None:
        ds.attrs["padding_fraction_definition"] = "given by the caller"
    return ds
