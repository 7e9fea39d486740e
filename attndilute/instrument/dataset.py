"""The ADI result as an ``xarray.Dataset`` (DESIGN §3) and its per-stage summary (seed Fig. 4).

Dataset layout:

- dims ``scan``, ``layer`` (one per attention site, shallow to deep), ``head`` (NaN where a layer
  has fewer heads), and ``query_source``/``key_source`` (``real``, ``input_pad``, ``layout_pad``);
- coords on ``layer``: ``stage`` (0-based, S0..S3), ``block`` (0-based within the stage),
  ``name`` (module path), ``window_size``/``shift_size`` (layer, axis: what the block actually used);
- ``adi`` (Eq. 7), ``h_rr, h_rp, h_pr, h_pp``, ``mass_rr, mass_rp, mass_pr, mass_pp``
  (scan, layer, head); pad terms split by source: ``h_rp_input_pad``, ``h_rp_layout_pad``,
  ``mass_rp_input_pad``, ``mass_rp_layout_pad``, ``adi_input_pad``, ``adi_layout_pad``
  (``adi = adi_input_pad + adi_layout_pad``); the full 3x3 ``h_src``, ``mass_src``; query counts
  ``n_real``, ``n_pad``, ``n_src`` (scan, layer[, query_source]); ``padding_fraction`` (scan).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from attndilute import __version__, masks

STAGE_COLUMNS = ("scan", "stage", "adi", "adi_input_pad", "adi_layout_pad", "padding_fraction")


def _ratio(num: np.ndarray, den: np.ndarray, n_real: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(np.isnan(den), np.nan, 0.0))
    return np.where(n_real > 0, out, np.nan)


def to_dataset(meter, scans: Sequence[str] | None = None, padding_fraction: torch.Tensor | None = None):
    """Build the Dataset from an :class:`~attndilute.instrument.meter.ADIMeter`'s sums.

    ``adi``, ``adi_input_pad`` and ``adi_layout_pad`` follow the meter's ``windows`` mode
    (attribute ``windows``); ``adi_pooled`` (ratio of sums over all windows of a block) and
    ``adi_window_mean`` (mean of per-window ADI over windows holding real queries) are both kept.
    ``scans`` / ``padding_fraction`` override the names and values the meter recorded.
    """
    import xarray as xr

    sums = meter.sums()
    scans = meter.scans if scans is None else scans
    padding_fraction = meter.padding_fractions if padding_fraction is None else padding_fraction
    data = _variables(sums, meter.windows_mode, padding_fraction)
    coords = _coords(meter, scans, n_heads=sums["h"].shape[2])
    if len(coords["scan"]) != sums["h"].shape[0]:
        raise ValueError(f"{len(coords['scan'])} scan names for {sums['h'].shape[0]} scans")
    if len(set(coords["scan"])) != len(coords["scan"]):
        raise ValueError("scan names repeat; give every scan its own name (scans=...)")
    attrs = {
        "heads": meter.heads,
        "windows": meter.windows_mode,
        "definition": "adi = h_rp / (h_rr + h_rp) per scan, layer, head (seed Eq. 7)"
        + (" within each window, averaged over windows holding real queries" if meter.windows_mode == "mean"
           else ", sums over all windows of the block"),
        "padding_fraction_definition": "share of non-real input elements",
        "attndilute_version": __version__,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _variables(sums: dict, windows_mode: str, padding_fraction) -> dict:
    """The Dataset's variables from the meter's sums: ADI (Eq. 7) pooled and per-window, the
    entropy and mass parts by token source (Eq. 5-6), and the token counts."""
    h = sums["h"].numpy()  # (S, L, H, 3, 3)
    m = sums["mass"].numpy()
    n = sums["count"].numpy()  # (S, L, 3)
    r, i, lp = masks.REAL, masks.INPUT_PAD, masks.LAYOUT_PAD
    pad = [i, lp]
    n_real = n[:, :, r][:, :, None]  # (S, L, 1) broadcast over heads
    h_rr = h[..., r, r]
    h_rp = h[..., r, pad].sum(-1)
    total = h_rr + h_rp
    dims3 = ("scan", "layer", "head")
    pooled = [_ratio(part, total, n_real) for part in (h_rp, h[..., r, i], h[..., r, lp])]
    nw = sums["windows"].numpy()[:, :, None, None]  # (S, L, 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(nw > 0, sums["window_adi"].numpy() / np.where(nw > 0, nw, 1), np.nan)  # (S, L, H, 3)
    mean = [mean[..., k] for k in range(3)]
    chosen = mean if windows_mode == "mean" else pooled
    data = {
        "adi": (dims3, chosen[0]),
        "adi_input_pad": (dims3, chosen[1]),
        "adi_layout_pad": (dims3, chosen[2]),
        "adi_pooled": (dims3, pooled[0]),
        "adi_window_mean": (dims3, mean[0]),
        "h_rr": (dims3, h_rr),
        "h_rp": (dims3, h_rp),
        "h_pr": (dims3, h[..., pad, r].sum(-1)),
        "h_pp": (dims3, h[..., pad, :][..., pad].sum((-1, -2))),
        "mass_rr": (dims3, m[..., r, r]),
        "mass_rp": (dims3, m[..., r, pad].sum(-1)),
        "mass_pr": (dims3, m[..., pad, r].sum(-1)),
        "mass_pp": (dims3, m[..., pad, :][..., pad].sum((-1, -2))),
        "h_rp_input_pad": (dims3, h[..., r, i]),
        "h_rp_layout_pad": (dims3, h[..., r, lp]),
        "mass_rp_input_pad": (dims3, m[..., r, i]),
        "mass_rp_layout_pad": (dims3, m[..., r, lp]),
        "h_src": ((*dims3, "query_source", "key_source"), h),
        "mass_src": ((*dims3, "query_source", "key_source"), m),
        "n_real": (("scan", "layer"), n[:, :, r]),
        "n_pad": (("scan", "layer"), n[:, :, pad].sum(-1)),
        "n_src": (("scan", "layer", "query_source"), n),
        "padding_fraction": (("scan",), np.asarray(padding_fraction, dtype=np.float64).reshape(-1)),
    }
    return data


def _coords(meter, scans: Sequence[str], n_heads: int) -> dict:
    """Scan names, layers with their stage, block, heads, window and shift (``-1`` rows where a
    layer has no window), and the token sources."""
    sites = meter.sites
    windows = meter.windows()
    nd = max((len(w) for w, _ in windows if w is not None), default=3)

    def axis_coord(values):
        return np.array([v if v is not None else (-1,) * nd for v in values], dtype=np.int64).reshape(-1, nd)

    coords = {
        "scan": np.array([str(s) for s in scans], dtype=object),  # variable-length strings in zarr
        "layer": np.arange(len(sites)),
        "head": np.arange(n_heads),
        "stage": ("layer", np.array([s.stage for s in sites])),
        "block": ("layer", np.array([s.block for s in sites])),
        "name": ("layer", np.array([s.name for s in sites], dtype=object)),
        "num_heads": ("layer", np.array([s.num_heads for s in sites])),
        "window_size": (("layer", "axis"), axis_coord([w for w, _ in windows])),
        "shift_size": (("layer", "axis"), axis_coord([s for _, s in windows])),
        "query_source": np.array(masks.SOURCES, dtype=object),
        "key_source": np.array(masks.SOURCES, dtype=object),
    }
    return coords


def stage_table(ds):
    """Per scan and stage: mean ADI over the stage's blocks and heads (seed Fig. 4 A-D).

    Returns:
        ``pandas.DataFrame`` with columns :data:`STAGE_COLUMNS`.
    """
    import pandas as pd

    grouped = (
        ds[["adi", "adi_input_pad", "adi_layout_pad"]].groupby("stage").mean(("layer", "head"), skipna=True)
    )
    frame = grouped.to_dataframe().reset_index()
    frame["padding_fraction"] = frame["scan"].map(ds["padding_fraction"].to_series())
    frame = frame[list(STAGE_COLUMNS)]
    return pd.DataFrame(frame).sort_values(["scan", "stage"], kind="stable").reset_index(drop=True)
