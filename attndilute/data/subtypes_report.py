"""``attndilute subtypes``: features, cluster scores, the fitted model and the Fig. 5 scatter.

Writes into the output folder (claimed for ``subtypes``; each file atomically):

- ``features.csv``: ``case, cohort, <seven features>, subtype`` (cohort ``fit`` or ``apply``);
- ``scores.csv``: ``k, silhouette, calinski_harabasz, davies_bouldin`` on the fit cohort;
- ``model.json``: the z-score transform, centroids and names (reusable on other cohorts);
- ``fig5.png`` and ``fig5.html``: contrast versus boundary gradient per cohort, coloured by
  subtype, with a donut of the subtype proportions (seed Figure 5).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from attndilute._io import atomic_path, claim_folder
from attndilute.data.subtypes import FEATURES, K_RANGE, cluster_scores, cohort_features, fit_subtypes

COLOURS = {"B": "#1f77b4", "D": "#ff7f0e"}
_OTHER = ("#2ca02c", "#9467bd", "#8c564b")


def run_subtypes(
    data: str | Path,
    out: str | Path,
    *,
    fit_on: str | Path | None = None,
    k: int = 2,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    cache_dir: str | Path | None = None,
    progress=None,
    overwrite: bool = False,
) -> dict:
    """Fit subtypes on ``fit_on`` (default: ``data`` itself), assign ``data``, write the outputs.

    Args:
        data: the cohort to label (labels required).
        out: output folder, claimed for ``subtypes`` (:func:`attndilute._io.claim_folder`).
        fit_on: the cohort the scaler and centroids are fitted on (seed Appendix A: training).
        k: number of clusters for the assignment.
        spacing: preprocessing spacing (mm).
        cache_dir: preprocessing cache.
        progress: optional callable wrapping an iterable.
        overwrite: write into a folder that holds other files (only this command's files are replaced).

    Returns:
        ``{"counts": {cohort: {subtype: n}}, "scores": [...], "out": Path}``.
    """
    inputs = [data] if fit_on is None else [data, fit_on]
    with claim_folder(out, "subtypes", overwrite=overwrite, cohorts=inputs) as claim:
        return _fit_and_write(data, claim.path, fit_on=fit_on, k=k, spacing=spacing, cache_dir=cache_dir,
                              progress=progress)


def _fit_and_write(data, out: Path, *, fit_on, k, spacing, cache_dir, progress) -> dict:
    """Features of each cohort, the k-means fit and the written files (see :func:`run_subtypes`)."""
    cohorts = {}
    if fit_on is not None:
        cohorts["fit"] = cohort_features(fit_on, spacing=spacing, cache_dir=cache_dir, progress=progress)
        cohorts["apply"] = cohort_features(data, spacing=spacing, cache_dir=cache_dir, progress=progress)
    else:
        cohorts["fit"] = cohort_features(data, spacing=spacing, cache_dir=cache_dir, progress=progress)
    fit_table = cohorts["fit"][1]
    model = fit_subtypes(fit_table, k=k)
    scores = cluster_scores(fit_table, ks=K_RANGE)
    rows = []
    for cohort, (names, table) in cohorts.items():
        for name, feats, subtype in zip(names, table, model.assign(table), strict=True):
            rows.append(
                {
                    "case": name,
                    "cohort": cohort,
                    **dict(zip(FEATURES, map(float, feats), strict=True)),
                    "subtype": subtype,
                }
            )
    _write_csv(out / "features.csv", rows)
    _write_csv(out / "scores.csv", scores)
    with atomic_path(out / "model.json") as tmp:
        tmp.write_text(model.to_json() + "\n")
    plot_fig5_png(rows, out / "fig5.png")
    plot_fig5_html(rows, out / "fig5.html")
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["cohort"], {}).setdefault(row["subtype"], 0)
        counts[row["cohort"]][row["subtype"]] += 1
    return {"counts": counts, "scores": scores, "rows": rows, "out": out}


def _write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["k"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def subtype_colour(name: str) -> str:
    """The colour of subtype ``name`` (``"B"``, ``"D"``, ``"S1"``...) in every subtype figure."""
    if name in COLOURS:
        return COLOURS[name]
    return _OTHER[(int(name[1:]) - 1) % len(_OTHER)] if name[1:].isdigit() else _OTHER[0]


def _panels(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    titles = {"fit": "fit cohort", "apply": "applied cohort"}
    cohorts = list(dict.fromkeys(r["cohort"] for r in rows))
    return [(titles[c], [r for r in rows if r["cohort"] == c]) for c in cohorts]


def plot_fig5_png(rows: list[dict], path: Path) -> None:
    """Seed Fig. 5 as PNG: contrast vs boundary gradient per cohort, with a proportion donut."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(7.0 * len(panels), 4.2), dpi=120, squeeze=False)
    for ax, (title, part) in zip(axes[0], panels, strict=True):
        subtypes = sorted({r["subtype"] for r in part})
        for s in subtypes:
            pts = np.array([[r["boundary_gradient"], r["contrast"]] for r in part if r["subtype"] == s])
            ax.scatter(pts[:, 0], pts[:, 1], s=22, color=subtype_colour(s), label=f"Cluster-{s}", alpha=0.85)
        ax.set_xlabel("boundary gradient (per mm)")
        ax.set_ylabel("tumour-to-background contrast")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 0.42), frameon=False, fontsize=8)
        inset = ax.inset_axes([1.02, 0.5, 0.34, 0.5])  # beside the axes: never over a point
        counts = [sum(r["subtype"] == s for r in part) for s in subtypes]
        inset.pie(
            counts,
            colors=[subtype_colour(s) for s in subtypes],
            wedgeprops={"width": 0.4},
            labels=[f"{c}" for c in counts],
            textprops={"fontsize": 7},
        )
        inset.set_title("tumours per subtype", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_fig5_html(rows: list[dict], path: Path) -> None:
    """Seed Fig. 5 as a self-contained interactive HTML (plotly.js embedded, works offline)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = _panels(rows)
    specs = [[{"type": "xy"}] * len(panels), [{"type": "domain"}] * len(panels)]
    fig = make_subplots(
        rows=2,
        cols=len(panels),
        specs=specs,
        row_heights=[0.72, 0.28],
        subplot_titles=[t for t, _ in panels] + [""] * len(panels),
    )
    for col, (_, part) in enumerate(panels, start=1):
        subtypes = sorted({r["subtype"] for r in part})
        for s in subtypes:
            sel = [r for r in part if r["subtype"] == s]
            fig.add_trace(
                go.Scatter(
                    x=[r["boundary_gradient"] for r in sel],
                    y=[r["contrast"] for r in sel],
                    mode="markers",
                    name=f"Cluster-{s}",
                    legendgroup=s,
                    showlegend=col == 1,
                    marker={"color": subtype_colour(s)},
                    text=[r["case"] for r in sel],
                    hovertemplate="%{text}<br>gradient %{x:.3f}<br>contrast %{y:.3f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.add_trace(
            go.Pie(
                labels=[f"Cluster-{s}" for s in subtypes],
                values=[sum(r["subtype"] == s for r in part) for s in subtypes],
                hole=0.55,
                marker={"colors": [subtype_colour(s) for s in subtypes]},
                sort=False,
                showlegend=False,
                textinfo="label+value",
                title={"text": "tumours per subtype"},
            ),
            row=2,
            col=col,
        )
        fig.update_xaxes(title_text="boundary gradient (per mm)", row=1, col=col)
        fig.update_yaxes(title_text="contrast", row=1, col=col)
    fig.update_layout(title="Appearance subtypes (seed Fig. 5)", height=620, width=520 * len(panels))
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
