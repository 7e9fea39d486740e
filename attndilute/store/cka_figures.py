"""CKA figures: heatmap (seed Fig. A.2), diagonal CKA and drift (Figs. 6 and 8), HTML.

All functions take the Dataset of :func:`attndilute.store.cka_run.cka_dataset` and write one
file through :func:`attndilute._io.atomic_path`. Model A is on the vertical axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attndilute._io import atomic_path
from attndilute.names import model_label


def diagonal_pairs(ds) -> list[tuple[int, int, str]]:
    """Matched ``(i_a, j_b, label)`` layer pairs for the diagonal.

    Layers are matched by structural label (``S1.B0``, ``S2``), which pairs blocks of two
    architectures with the same depths; failing that by module name; failing that by position.
    """
    labels_a, labels_b = list(ds["label_a"].values), list(ds["label_b"].values)
    names_a, names_b = list(ds["layer_a"].values), list(ds["layer_b"].values)
    for keys_a, keys_b in ((labels_a, labels_b), (names_a, names_b)):
        index_b = {k: j for j, k in enumerate(keys_b)}
        pairs = [(i, index_b[k], str(labels_a[i])) for i, k in enumerate(keys_a) if k in index_b]
        if pairs:
            return pairs
    return [(i, i, f"{labels_a[i]} / {labels_b[i]}") for i in range(min(len(names_a), len(names_b)))]


def cka_range(values) -> tuple[float, float]:
    """The colour range of a CKA heatmap: the finite values' min and max (a constant map gets ± 0.01).

    Args:
        values: (La, Lb) CKA matrix; unbiased CKA is not clamped, so it may leave [0, 1] slightly.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    low, high = float(v.min()), float(v.max())
    return (low - 0.01, high + 0.01) if high - low < 1e-9 else (low, high)


def model_names(ds) -> tuple[str, str]:
    """Models A and B by configuration name (``base`` for ``runs/base/best.safetensors``)."""
    a = model_label(ds.attrs.get("model_a", "A"))
    return a, model_label(ds.attrs.get("model_b", "B"), a)


def _title(ds) -> str:
    a, b = model_names(ds)
    return f"A: {a}   B: {b}"


def write_heatmap_png(ds, path: str | Path) -> Path:
    """Heatmap of ``cka`` (layer_a vertical, layer_b horizontal), labelled with layer labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = ds["cka"].values  # (La, Lb)
    la, lb = values.shape
    size = max(4.0, 0.28 * max(la, lb) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    low, high = cka_range(values)  # fitted to the data, as in the report
    im = ax.imshow(values, origin="lower", cmap="magma", vmin=low, vmax=high, aspect="auto")
    font = 8 if max(la, lb) <= 30 else 5
    ax.set_yticks(range(la), [str(v) for v in ds["label_a"].values], fontsize=font)
    ax.set_xticks(range(lb), [str(v) for v in ds["label_b"].values], fontsize=font, rotation=90)
    name_a, name_b = model_names(ds)
    ax.set_ylabel(f"model A: {name_a}")
    ax.set_xlabel(f"model B: {name_b}")
    ax.set_title("linear CKA (minibatch, unbiased HSIC)", fontsize=10)
    fig.colorbar(im, ax=ax, label=f"CKA (colour range {low:.3f}-{high:.3f})")
    fig.tight_layout()
    return _save(fig, path)


def write_diagonal_png(ds, path: str | Path) -> Path:
    """Diagonal CKA per matched layer (line) and per-layer drift ``1 - CKA`` (bars), by stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = diagonal_pairs(ds)
    values = ds["cka"].values
    diag = np.array([values[i, j] for i, j, _ in pairs])
    labels = [lab for _, _, lab in pairs]
    stages = ds["stage_a"].values[[i for i, _, _ in pairs]] if pairs else np.array([])
    x = np.arange(len(pairs))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.35 * len(pairs) + 2), 6), sharex=True)
    top.plot(x, diag, marker="o", color="tab:blue")
    top.set_ylabel("diagonal CKA")
    top.set_ylim(min(0.0, float(np.nanmin(diag)) - 0.05) if len(diag) else 0.0, 1.05)
    top.set_title(_title(ds), fontsize=9)
    top.grid(alpha=0.3)
    colors = plt.get_cmap("tab10")(np.mod(np.maximum(stages, 0), 10)) if len(stages) else None
    bottom.bar(x, 1.0 - diag, color=colors)
    bottom.set_ylabel("drift 1 - CKA")
    bottom.set_xticks(x, labels, rotation=90, fontsize=8)
    bottom.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


def write_html(ds, path: str | Path) -> Path:
    """Interactive heatmap and diagonal bars; plotly.js is inlined so the page opens offline."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    values = ds["cka"].values
    pairs = diagonal_pairs(ds)
    low, high = cka_range(values)  # fitted to the data, as in the report
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.2,
                        subplot_titles=("CKA (A vertical, B horizontal)", "diagonal CKA and drift"))
    hover = [[f"A {a}<br>B {b}<br>CKA {v:.4f}" for b, v in zip(ds["layer_b"].values, row, strict=True)]
             for a, row in zip(ds["layer_a"].values, values, strict=True)]
    fig.add_trace(go.Heatmap(z=values, x=[str(v) for v in ds["label_b"].values],
                             y=[str(v) for v in ds["label_a"].values], zmin=low, zmax=high,
                             colorscale="Magma", text=hover, hoverinfo="text",
                             colorbar={"x": 0.5, "title": {"text": f"CKA<br>{low:.3f}-{high:.3f}"}}),
                  row=1, col=1)
    labels = [lab for _, _, lab in pairs]
    diag = [float(values[i, j]) for i, j, _ in pairs]
    fig.add_trace(go.Scatter(x=labels, y=diag, mode="lines+markers", name="diagonal CKA"), row=1, col=2)
    drift = [1.0 - d for d in diag]
    fig.add_trace(go.Bar(x=labels, y=drift, name="drift 1 - CKA", opacity=0.6), row=1, col=2)
    name_a, name_b = model_names(ds)
    fig.update_yaxes(title_text=f"layer of A ({name_a})", row=1, col=1)
    fig.update_xaxes(title_text=f"layer of B ({name_b})", row=1, col=1)
    fig.update_yaxes(title_text="CKA, drift 1 - CKA", row=1, col=2)
    fig.update_xaxes(title_text="matched layer", row=1, col=2)
    fig.update_layout(title=_title(ds), height=600, legend={"orientation": "h", "y": -0.25})
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
    return path
