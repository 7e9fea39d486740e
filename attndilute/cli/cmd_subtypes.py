"""``attndilute subtypes``: appearance clusters B/D from seven tumour features (seed §2.6, App. A)."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.cli.progress import tracker
from attndilute.data.phantom import resolve_data
from attndilute.data.subtypes_report import run_subtypes


def register(app: typer.Typer) -> None:
    @app.command("subtypes")
    def subtypes(
        out: Path = typer.Option(..., "--out", help="Output folder."),
        data: Path | None = typer.Option(None, "--data", help="Cohort to label (default: embedded phantom)."),
        fit_on: Path | None = typer.Option(None, "--fit-on", help="Cohort to fit on (default: --data)."),
        k: int = typer.Option(2, "--k", min=2, help="Number of clusters."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Cluster tumours by appearance; write features, k=2..5 scores, model and Fig. 5."""
        from rich.console import Console
        from rich.table import Table


        result = run_subtypes(
            resolve_data(data),
            out,
            fit_on=None if fit_on is None else resolve_data(fit_on),
            k=k,
            progress=tracker("features"),
            overwrite=overwrite,
        )
        view = Table(title=f"subtypes -> {out}")
        view.add_column("cohort")
        names = sorted({s for c in result["counts"].values() for s in c})
        for name in names:
            view.add_column(f"Cluster-{name}")
        for cohort, counts in result["counts"].items():
            view.add_row(cohort, *(str(counts.get(name, 0)) for name in names))
        scores = Table(title="k-means on z-scored features")
        for column in ("k", "silhouette", "Calinski-Harabasz", "Davies-Bouldin"):
            scores.add_column(column)
        for row in result["scores"]:
            scores.add_row(
                str(row["k"]),
                f"{row['silhouette']:.3f}",
                f"{row['calinski_harabasz']:.1f}",
                f"{row['davies_bouldin']:.3f}",
            )
        console = Console()
        console.print(view)
        console.print(scores)

