"""The README's front matter: a compact PNG (deepest-stage ADI, ADI vs padding) and a Markdown table.

The table is :func:`attndilute.report.summaries.front_table`, the same cells as the HTML
report's "At a glance", so the README and the report cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attndilute._io import atomic_path
from attndilute.errors import AttnDiluteError
from attndilute.report import summaries
from attndilute.report.figures import clipped_error, colour
from attndilute.report.load import load_run


def readme_figure(run, path: str | Path) -> Path:
    """Two panels: mean deepest-stage ADI ± sd per configuration (Fig. 4 C) and per-scan ADI
    against padding fraction (Fig. 4 D). PNG via matplotlib's object API, written atomically.

    Args:
        run: a :class:`~attndilute.report.load.Run` with ADI.
        path: output PNG.

    Raises:
        AttnDiluteError: the folder has no ADI.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure


    if not run.adi:
        raise AttnDiluteError(
            "no ADI in the results folder",
            path=run.root / "adi",
            hint="run `attndilute adi` (or `attndilute demo`) first",
        )
    configs = [c for c in run.configs if c in run.adi]
    deep = {c: summaries.deepest_adi(run.adi[c]) for c in configs}
    stages = {c: int(run.adi[c]["stage"].max()) for c in configs}
    fig = Figure(figsize=(8.0, 3.2), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.6])
    means = [float(np.nanmean(deep[c]["adi"])) for c in configs]
    sds = [float(deep[c]["adi"].std()) if deep[c]["adi"].notna().sum() > 1 else 0.0 for c in configs]
    err = clipped_error(means, sds)  # whiskers stop at 0 and 1, the range of ADI
    yerr = np.vstack([err["arrayminus"], err["array"]]) if configs else None
    colours = [colour(run.configs, c) for c in configs]
    left.bar(range(len(configs)), means, yerr=yerr, capsize=4, color=colours)
    left.set_xticks(range(len(configs)), [f"{c}\n(S{stages[c]})" for c in configs])
    left.set_ylabel("deepest-stage ADI (mean ± sd, in [0, 1])")
    left.set_title("A  attention dilution", loc="left", fontsize=10)
    for c in configs:
        d = deep[c]
        if "padding_fraction" not in d.columns:
            continue
        t = summaries.trend(d["padding_fraction"], d["adi"], "padding fraction", "ADI")
        label = c if not np.isfinite(t.rho) else f"{c} (ρ = {t.rho:.2f})"
        right.scatter(
            d["padding_fraction"], d["adi"], s=14, alpha=0.8, color=colour(run.configs, c), label=label
        )
    right.set_xlabel("padding fraction of the model's input (Eq. 4)")
    right.set_ylabel("deepest-stage ADI")
    right.set_title("B  ADI vs padding", loc="left", fontsize=10)
    if right.get_legend_handles_labels()[0]:
        right.legend(frameon=False, fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def readme_assets(run_dir: str | Path, png: str | Path) -> tuple[Path, str]:
    """Write the README figure and return it with the Markdown front table.

    Args:
        run_dir: results folder (``attndilute demo --out D``).
        png: where the figure goes (``docs/img/readme_adi.png`` in the repository).

    Returns:
        ``(png path, markdown table)``.

    Raises:
        AttnDiluteError: nothing to tabulate or no ADI.
    """
    run = load_run(run_dir)
    table = summaries.front_markdown(run)
    if table is None:
        raise AttnDiluteError(
            "no evaluation or ADI in the results folder",
            path=run.root,
            hint="run `attndilute demo --out FOLDER` first",
        )
    return readme_figure(run, png), table
