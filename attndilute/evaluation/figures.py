"""Seed Fig. 4 E-F: sDSC distributions binned by padding fraction and by deepest-stage ADI.

A PNG through matplotlib's object API with the Agg canvas (no pyplot, no global backend
switch) and a self-contained HTML through plotly (plotly.js inlined, so it opens offline).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attndilute._io import atomic_path

if TYPE_CHECKING:
    import pandas as pd

#: (column in the binned table, panel title, x-axis label)
PANELS = (
    ("pf_bin", "E  sDSC by padding fraction", "padding fraction (Eq. 4)"),
    ("adi_bin", "F  sDSC by deepest-stage ADI", "deepest-stage ADI (quartile bins)"),
)


def _panels(binned: pd.DataFrame) -> list[tuple[str, str, str]]:
    return [p for p in PANELS if p[0] in binned.columns]


def _groups(binned: pd.DataFrame, column: str) -> tuple[list[str], list[np.ndarray]]:
    labels = [str(c) for c in binned[column].cat.categories]
    groups = [binned.loc[binned[column] == c, "sdsc"].to_numpy(float) for c in binned[column].cat.categories]
    return labels, [g[np.isfinite(g)] for g in groups]


def fig4_ef_png(binned: pd.DataFrame, path: str | Path, *, title: str | None = None, seed: int = 0) -> None:
    """Box plots with jittered cases, one panel per binning present.

    Args:
        binned: :attr:`Correlations.binned` (``sdsc`` and ``pf_bin`` and/or ``adi_bin``).
        path: output PNG.
        title: figure title.
        seed: jitter seed (the figure is reproducible).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = _panels(binned)
    fig = Figure(figsize=(5.2 * len(panels), 4.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    rng = np.random.default_rng(seed)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (column, panel_title, xlabel) in zip(axes, panels, strict=True):
        labels, groups = _groups(binned, column)
        positions = np.arange(1, len(labels) + 1)
        ax.boxplot(groups, positions=positions, widths=0.55, showfliers=False,
                   medianprops={"color": "#c0392b", "linewidth": 2})  # fmt: skip
        for pos, g in zip(positions, groups, strict=True):
            ax.scatter(
                pos + rng.uniform(-0.18, 0.18, g.size), g, s=9, alpha=0.45, color="#2c7fb8", linewidths=0
            )
        ax.set_xticks(positions, [f"{lab}\n(n={g.size})" for lab, g in zip(labels, groups, strict=True)],
                      fontsize=8)  # fmt: skip
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("sDSC at 2 mm")
        ax.set_title(panel_title, loc="left", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def fig4_ef_html(binned: pd.DataFrame, path: str | Path, *, title: str | None = None) -> None:
    """Interactive version of :func:`fig4_ef_png` (box plots with every case, hover = case name)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = _panels(binned)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[1] for p in panels], shared_yaxes=True)
    for col, (column, _, xlabel) in enumerate(panels, start=1):
        labels = [str(c) for c in binned[column].cat.categories]
        for label in labels:
            sel = binned[column].astype(str) == label
            fig.add_trace(
                go.Box(
                    y=binned.loc[sel, "sdsc"], x=[label] * int(sel.sum()), name=label,
                    text=binned.loc[sel, "case"], boxpoints="all", jitter=0.4, pointpos=0,
                    marker={"size": 4, "opacity": 0.5}, showlegend=False,
                ),
                row=1, col=col,
            )  # fmt: skip
        fig.update_xaxes(title_text=xlabel, categoryorder="array", categoryarray=labels, row=1, col=col)
    fig.update_yaxes(title_text="sDSC at 2 mm", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=460, width=520 * len(panels))
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
