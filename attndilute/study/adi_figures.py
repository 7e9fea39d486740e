"""Figures of one ADI run (seed Fig. 4 A-D): ADI per stage, and deepest-stage ADI vs padding.

Input is the per-scan stage table (``adi_stages.csv``: scan, stage, adi, adi_input_pad,
adi_layout_pad, padding_fraction). PNG with matplotlib, HTML with plotly (hover shows the scan).
"""

from __future__ import annotations

from pathlib import Path

from attndilute._io import atomic_path
from attndilute.names import RUN_FILE_STEMS
from attndilute.study.adi_summary import deepest_spearman, stage_summary


def _rho_text(stages) -> str:
    deepest, rho, p = deepest_spearman(stages)
    if rho != rho:  # NaN
        return f"S{deepest}: Spearman undefined (constant ADI or padding)"
    return f"S{deepest}: Spearman rho = {rho:.2f} (p = {p:.1e})"


def display_title(title: str, path: str | Path) -> str:
    """The figure's title: a checkpoint stem such as ``best`` names no model, so the output folder's
    name (``adi/act`` -> ``act``) is used instead; any other title is kept."""
    if title in RUN_FILE_STEMS:
        return f"ADI of {Path(path).parent.name}"
    return title


def _clipped_sd(summary):
    """(down, up) whiskers of mean ± sd, each stopping at 0 and 1 (ADI's range)."""
    import numpy as np

    mean = summary["mean_adi"].to_numpy(float)
    sd = np.nan_to_num(summary["sd_adi"].to_numpy(float))
    return mean - np.clip(mean - sd, 0.0, 1.0), np.clip(mean + sd, 0.0, 1.0) - mean


def write_adi_png(stages, path: str | Path, *, title: str = "") -> Path:
    """Two panels: mean ADI per stage (input vs layout padding, sd over scans as error bars) and
    deepest-stage ADI against padding fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    summary = stage_summary(stages)
    deepest = int(stages["stage"].max())
    d = stages[stages["stage"] == deepest]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    labels = [f"S{s}" for s in summary["stage"]]
    ax0.bar(labels, summary["mean_adi_input_pad"], color="#c0392b", label="input padding")
    ax0.bar(
        labels,
        summary["mean_adi_layout_pad"],
        bottom=summary["mean_adi_input_pad"],
        color="#7f8c8d",
        label="layout padding",
    )
    low, high = _clipped_sd(summary)
    ax0.errorbar(labels, summary["mean_adi"], yerr=[low, high], fmt="none", ecolor="black", capsize=3)
    ax0.set_ylabel("ADI (mean ± sd over scans, in [0, 1])")
    ax0.set_title("A  ADI per stage")
    ax0.legend(frameon=False, fontsize=8)
    ax1.scatter(d["padding_fraction"], d["adi"], s=18, color="#2c3e50")
    ax1.set_xlabel("padding fraction (Eq. 4)")
    ax1.set_ylabel(f"S{deepest} ADI")
    ax1.set_title("B  " + _rho_text(stages), fontsize=9)
    title = display_title(title, path)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    return path


def write_adi_html(stages, path: str | Path, *, title: str = "") -> Path:
    """The same two panels, interactive; hovering a point shows its scan."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots


    summary = stage_summary(stages)
    deepest = int(stages["stage"].max())
    d = stages[stages["stage"] == deepest]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("ADI per stage", _rho_text(stages)))
    labels = [f"S{s}" for s in summary["stage"]]
    fig.add_bar(
        x=labels, y=summary["mean_adi_input_pad"], name="input padding", marker_color="#c0392b", row=1, col=1
    )
    fig.add_bar(
        x=labels,
        y=summary["mean_adi_layout_pad"],
        name="layout padding",
        marker_color="#7f8c8d",
        error_y={"type": "data", "symmetric": False, "array": _clipped_sd(summary)[1],
                 "arrayminus": _clipped_sd(summary)[0]},
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=d["padding_fraction"],
            y=d["adi"],
            mode="markers",
            text=d["scan"],
            hovertemplate="%{text}<br>pf %{x:.2f}<br>ADI %{y:.3f}<extra></extra>",
            name=f"S{deepest} per scan",
        ),
        row=1,
        col=2,
    )
    fig.update_layout(barmode="stack", title=display_title(title, path), template="plotly_white")
    fig.update_xaxes(title_text="padding fraction", row=1, col=2)
    fig.update_yaxes(title_text="ADI", row=1, col=1)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
    return path
