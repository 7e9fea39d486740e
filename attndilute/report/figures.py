"""Plotly figures of the report, one function per seed figure; data in, ``go.Figure`` out.

No file is written here: :mod:`attndilute.report.html` embeds the figures (plotly.js once,
inline) so the page opens offline. Colours are fixed per configuration (report order) and per
subtype (the colours of ``attndilute subtypes``), so every figure agrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from attndilute.data.subtypes_report import subtype_colour
from attndilute.evaluation.correlate import pf_bins
from attndilute.store.cka_figures import cka_range

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from attndilute.report.wording import Trend

#: plotly's default qualitative palette; configuration i gets colour i.
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880")
TEMPLATE = "plotly_white"


def colour(configs: Sequence[str], config: str) -> str:
    """The colour of ``config`` (by its position in the report's configuration order)."""
    index = list(configs).index(config) if config in configs else len(configs)
    return PALETTE[index % len(PALETTE)]


#: Fewer points than this get no least-squares line (a line through 3 points says nothing).
MIN_FIT_POINTS = 5


def clipped_error(means, sds, low: float = 0.0, high: float = 1.0) -> dict:
    """Plotly ``error_y`` for mean ± sd of a quantity bounded to ``[low, high]``: each whisker
    stops at the bound, so a bar of ADI or Dice never reaches below 0 or above 1.

    Args:
        means: (n,) bar heights.
        sds: (n,) standard deviations (NaN -> 0).
    """
    m = np.asarray(means, dtype=float)
    sd = np.nan_to_num(np.asarray(sds, dtype=float))
    up = np.clip(m + sd, low, high) - m
    down = m - np.clip(m - sd, low, high)
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down, "visible": True}


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        template=TEMPLATE,
        height=height,
        margin={"l": 60, "r": 48, "t": 64, "b": 50},
        legend={"orientation": "h", "y": -0.22, "yanchor": "top", "x": 0.0},
        modebar={"orientation": "v"},  # beside the plot, never over the title
    )
    return fig


def extent_histogram(frame: pd.DataFrame, crop_z: int | None) -> go.Figure:
    """Native axial extents per split, with the crop depth C marked (Table 1, Eq. 4).

    Args:
        frame: :func:`~attndilute.report.summaries.cohort_frame` (``extent``, ``split``).
        crop_z: crop depth C, if known.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for split in sorted(set(frame["split"])):
        sel = frame[frame["split"] == split]
        fig.add_trace(
            go.Histogram(
                x=sel["extent"],
                name=f"{split} (n={len(sel)})",
                opacity=0.75,
                nbinsx=max(5, min(30, len(frame) // 3)),
                hovertemplate="extent %{x}: %{y} scan(s)<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack")
    if crop_z:
        fig.add_vline(
            x=crop_z,
            line_dash="dash",
            line_color="#c44e52",
            annotation_text=f"crop C = {crop_z}",
            annotation_position="top right",
        )
    fig.update_xaxes(title_text="native axial extent L after resampling (voxels, 1 mm)")
    fig.update_yaxes(title_text="scans")
    return _layout(fig, "Native axial extent and the crop depth (Table 1, Eq. 4)", 380)


def sdsc_boxes(per_case: Mapping[str, pd.DataFrame], configs: Sequence[str]) -> go.Figure:
    """Per-case sDSC (missed = 0.1, §2.8) per configuration, every case shown (Table 2).

    Args:
        per_case: configuration -> frame with ``case`` and ``sdsc_penalized``.
        configs: report order (colours).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for config, frame in per_case.items():
        fig.add_trace(
            go.Box(
                y=frame["sdsc_penalized"],
                name=config,
                text=frame["case"],
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": colour(configs, config), "size": 5},
                hovertemplate="%{text}<br>sDSC %{y:.3f}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="configuration")
    fig.update_yaxes(title_text="sDSC at 2 mm (missed = 0.1)", range=[-0.02, 1.02])
    return _layout(fig, "Per-case surface Dice (Table 2)")


def adi_stages(tables: Mapping[str, pd.DataFrame], configs: Sequence[str]) -> go.Figure:
    """Mean ADI per stage with ± sd over scans, one line per configuration (Fig. 4 A-B).

    Args:
        tables: configuration -> :func:`~attndilute.report.summaries.adi_stage_table`.
        configs: report order (colours).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for config, table in tables.items():
        fig.add_trace(go.Scatter(
            x=[f"S{s}" for s in table["stage"]], y=table["mean"], name=config, mode="lines+markers",
            error_y=clipped_error(table["mean"], table["sd"]),
            line={"color": colour(configs, config)},
            hovertemplate="%{x}: ADI %{y:.4f}<extra>" + config + "</extra>",
        ))  # fmt: skip
    fig.update_xaxes(title_text="stage")
    fig.update_yaxes(title_text="mean ADI (Eq. 7) ± sd, clipped to [0, 1]", rangemode="tozero")
    return _layout(fig, "ADI per stage (Fig. 4 A-B)")


def adi_sources(tables: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Mean ADI per stage split into input padding and layout padding (seed §3.2.1 artifact).

    Args:
        tables: configuration -> stage table with ``input_pad`` and ``layout_pad``.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for source, shade in (("input_pad", "#4c72b0"), ("layout_pad", "#dd8452")):
        x = [
            [c for c, t in tables.items() for _ in t["stage"]],
            [f"S{s}" for t in tables.values() for s in t["stage"]],
        ]
        y = [v for t in tables.values() for v in t[source]]
        name = "input padding (the MRI)" if source == "input_pad" else "layout padding (window arithmetic)"
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker={"color": shade}))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="configuration and stage")
    fig.update_yaxes(title_text="mean ADI by token source")
    return _layout(fig, "ADI by padding source (§3.2.1)")


def adi_deepest(
    means: Mapping[str, float], sds: Mapping[str, float], stage: int, configs: Sequence[str]
) -> go.Figure:
    """Mean deepest-stage ADI per configuration with ± sd (Fig. 4 C)."""
    import plotly.graph_objects as go

    names = list(means)
    fig = go.Figure(go.Bar(
        x=names, y=[means[c] for c in names],
        error_y=clipped_error([means[c] for c in names], [sds[c] for c in names]),
        marker={"color": [colour(configs, c) for c in names]},
        hovertemplate="%{x}: mean ADI %{y:.4f}<extra></extra>",
    ))  # fmt: skip
    # the mean under each name, not on the bar, where the whisker would cross it
    fig.update_xaxes(title_text="configuration", tickvals=names,
                     ticktext=[f"{c}<br>mean {means[c]:.3f}" for c in names])
    fig.update_yaxes(title_text=f"mean S{stage} ADI ± sd, clipped to [0, 1]", rangemode="tozero")
    return _layout(fig, f"Deepest-stage (S{stage}) ADI per configuration (Fig. 4 C)", 380)


def adi_vs_padding(
    points: Mapping[str, pd.DataFrame], trends: Mapping[str, Trend], stage: int, configs: Sequence[str]
) -> go.Figure:
    """Per-scan deepest-stage ADI against padding fraction with a least-squares line (Fig. 4 D).

    Args:
        points: configuration -> ``scan, adi, padding_fraction``.
        trends: configuration -> Spearman trend (shown in the legend).
        stage: deepest stage.
        configs: report order (colours).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for config, frame in points.items():
        c = colour(configs, config)
        t = trends.get(config)
        label = config if t is None or not np.isfinite(t.rho) else f"{config} (rho = {t.rho:.2f})"
        fig.add_trace(
            go.Scatter(
                x=frame["padding_fraction"],
                y=frame["adi"],
                mode="markers",
                name=label,
                text=frame["scan"],
                marker={"color": c, "size": 7, "opacity": 0.8},
                hovertemplate="%{text}<br>pf %{x:.3f}<br>ADI %{y:.4f}<extra></extra>",
            )
        )
        x, y = frame["padding_fraction"].to_numpy(float), frame["adi"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= MIN_FIT_POINTS and np.ptp(x[ok]) > 0:
            slope, intercept = np.polyfit(x[ok], y[ok], 1)
            grid = np.array([x[ok].min(), x[ok].max()])
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=slope * grid + intercept,
                    mode="lines",
                    showlegend=False,
                    line={"color": c, "dash": "dot"},
                    hoverinfo="skip",
                )
            )
    fig.update_xaxes(title_text="padding fraction of the model's input (Eq. 4)")
    fig.update_yaxes(title_text=f"S{stage} ADI")
    return _layout(fig, "Deepest-stage ADI against padding fraction (Fig. 4 D)")


def sdsc_by_padding(per_case: Mapping[str, pd.DataFrame], configs: Sequence[str]) -> go.Figure:
    """sDSC per padding-fraction bin, grouped by configuration (Fig. 4 E).

    Args:
        per_case: configuration -> frame with ``sdsc_penalized`` and ``padding_fraction``.
        configs: report order (colours).
    """
    import plotly.graph_objects as go


    fig = go.Figure()
    order: list[str] = []
    for config, frame in per_case.items():
        bins = pf_bins(frame["padding_fraction"].to_numpy(float))
        order = [str(c) for c in bins.categories]
        fig.add_trace(
            go.Box(
                x=np.asarray(bins.astype(str)),
                y=frame["sdsc_penalized"],
                name=config,
                text=frame["case"],
                boxpoints="all",
                jitter=0.3,
                pointpos=0,
                marker={"color": colour(configs, config), "size": 4},
            )
        )
    fig.update_layout(boxmode="group")
    fig.update_xaxes(title_text="padding fraction (Eq. 4)", categoryorder="array", categoryarray=order)
    fig.update_yaxes(title_text="sDSC at 2 mm (missed = 0.1)", range=[-0.02, 1.02])
    return _layout(fig, "sDSC by padding fraction (Fig. 4 E)")


def subtype_scatter(features: pd.DataFrame) -> go.Figure:
    """Contrast against boundary gradient per cohort, coloured by subtype (Fig. 5)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots


    cohorts = list(dict.fromkeys(features["cohort"])) if "cohort" in features.columns else ["all"]
    titles = {"fit": "fit cohort", "apply": "applied cohort", "all": "cohort"}
    fig = make_subplots(rows=1, cols=len(cohorts), subplot_titles=[titles.get(c, c) for c in cohorts])
    for col, cohort in enumerate(cohorts, start=1):
        part = features if cohort == "all" else features[features["cohort"] == cohort]
        for subtype in sorted(set(part["subtype"].astype(str))):
            sel = part[part["subtype"].astype(str) == subtype]
            fig.add_trace(go.Scatter(
                x=sel["boundary_gradient"], y=sel["contrast"], mode="markers", name=f"Cluster-{subtype}",
                legendgroup=subtype, showlegend=col == 1, text=sel["case"],
                marker={"color": subtype_colour(subtype), "size": 8},
                hovertemplate="%{text}<br>gradient %{x:.3f}/mm<br>contrast %{y:.3f}<extra></extra>",
            ), row=1, col=col)  # fmt: skip
        fig.update_xaxes(title_text="boundary gradient (per mm)", row=1, col=col)
    fig.update_yaxes(title_text="tumour-to-background contrast", row=1, col=1)
    return _layout(fig, "Appearance subtypes (Fig. 5)")


def cluster_scores(scores: pd.DataFrame) -> go.Figure:
    """Silhouette, Calinski-Harabasz and Davies-Bouldin against k (Fig. A.1)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = (
        ("silhouette", "silhouette ↑"),
        ("calinski_harabasz", "Calinski–Harabasz ↑"),
        ("davies_bouldin", "Davies–Bouldin ↓"),
    )
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in panels])
    for col, (column, _) in enumerate(panels, start=1):
        fig.add_trace(
            go.Scatter(
                x=scores["k"],
                y=scores[column],
                mode="lines+markers",
                showlegend=False,
                line={"color": "#4c72b0"},
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="number of clusters k", dtick=1, row=1, col=col)
    fig.update_yaxes(title_text="index value", row=1, col=1)
    return _layout(fig, "Cluster validity for k = 2..5 (Fig. A.1)", 340)


def cka_heatmap(ds, name: str, a: str = "A", b: str = "B") -> go.Figure:
    """CKA between every layer pair, model A on the vertical axis (Fig. A.2).

    The colour scale spans the data's own range (:func:`cka_range`), which the caption states.

    Args:
        ds: a ``cka.zarr`` Dataset; ``cka (layer_a, layer_b)``.
        name: the comparison (``base_vs_act``).
        a: display name of model A (a configuration, never a file path).
        b: display name of model B.
    """
    import plotly.graph_objects as go

    values = ds["cka"].values  # (La, Lb)
    zmin, zmax = cka_range(values)
    fig = go.Figure(go.Heatmap(
        z=values, x=[str(v) for v in ds["label_b"].values], y=[str(v) for v in ds["label_a"].values],
        zmin=zmin, zmax=zmax, colorscale="Magma",
        colorbar={"title": "CKA", "x": 1.02, "xanchor": "left", "thickness": 14},
        hovertemplate="A %{y}<br>B %{x}<br>CKA %{z:.4f}<extra></extra>",
    ))  # fmt: skip
    fig.update_xaxes(title_text=f"B: {b} (layer)", type="category")
    fig.update_yaxes(title_text=f"A: {a} (layer)", type="category")
    side = max(360, 18 * max(values.shape) + 160)
    fig = _layout(fig, f"Linear CKA, {name} (Fig. A.2)", min(side, 720))
    fig.update_layout(margin={"r": 130})  # colour bar and its ticks, then the toolbar beside them
    return fig


def cka_diagonals(diagonals: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Diagonal CKA per matched layer, one line per comparison, drift bars below (Figs. 6, 8)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.06)
    names = list(diagonals)
    for name, diag in diagonals.items():
        c = colour(names, name)
        fig.add_trace(
            go.Scatter(
                x=diag["label"],
                y=diag["cka"],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line={"color": c},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=diag["label"],
                y=1.0 - diag["cka"],
                name=name,
                legendgroup=name,
                showlegend=False,
                marker={"color": c},
                opacity=0.7,
            ),
            row=2,
            col=1,
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="diagonal CKA", row=1, col=1)
    fig.update_yaxes(title_text="drift 1 − CKA", row=2, col=1)
    fig.update_xaxes(type="category", row=2, col=1, title_text="matched layer (stage.block), shallow to deep")
    return _layout(fig, "Layer-wise similarity and drift (Figs. 6, 8)", 520)


def _epoch_axis(metrics: Mapping[str, pd.DataFrame]) -> dict:
    """x axis of the training curves: whole epochs, half an epoch of room at each end."""
    epochs = [float(e) for m in metrics.values() for e in m["epoch"] if np.isfinite(e)]
    if not epochs:
        return {"title_text": "epoch"}
    low, high = min(epochs), max(epochs)
    axis = {"title_text": "epoch", "range": [low - 0.5, high + 0.5]}
    if high - low <= 20:
        axis["dtick"] = 1
    return axis


def training_curves(metrics: Mapping[str, pd.DataFrame], configs: Sequence[str]) -> go.Figure:
    """Training loss and validation Dice against epoch per configuration (Fig. 7).

    Every epoch is a marker, so a one-epoch run shows a point, not an empty axis.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation Dice"))
    for config, frame in metrics.items():
        frame = frame.sort_values("epoch")
        c = colour(configs, config)
        fig.add_trace(
            go.Scatter(
                x=frame["epoch"],
                y=frame["train_loss"],
                mode="lines+markers",
                name=config,
                legendgroup=config,
                line={"color": c},
                marker={"size": 7},
            ),
            row=1,
            col=1,
        )
        if "val_dice" in frame.columns:
            val = frame[["epoch", "val_dice"]].dropna()
            fig.add_trace(
                go.Scatter(
                    x=val["epoch"],
                    y=val["val_dice"],
                    mode="lines+markers",
                    name=config,
                    legendgroup=config,
                    showlegend=False,
                    line={"color": c},
                    marker={"size": 7},
                ),
                row=1,
                col=2,
            )
    fig.update_xaxes(**_epoch_axis(metrics))
    fig.update_yaxes(title_text="training loss", row=1, col=1)
    fig.update_yaxes(title_text="validation Dice", range=[-0.02, 1.02], row=1, col=2)
    return _layout(fig, "Training convergence (Fig. 7)", 380)
