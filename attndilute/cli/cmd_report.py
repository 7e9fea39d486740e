"""``attndilute report``: the whole study of a results folder in one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.report import write_report


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run: Path = typer.Option(..., "--run", help="Results folder (attndilute demo --out D)."),
        out: Path | None = typer.Option(None, "--out", help="HTML file (default: RUN/report.html)."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Cohort, Table 2, ADI (Fig. 4), subtypes (Fig. 5), CKA (Figs. 6, A.2), training curves."""
        from rich.console import Console
        from rich.table import Table


        result = write_report(run, out, overwrite=overwrite)
        view = Table(title=f"report -> {result.path} ({result.seconds:.1f} s)")
        for column in ("section", "status", "figures"):
            view.add_column(column)
        for _, title, status, n_figures in result.sections:
            style = {"rendered": "green", "partial": "yellow", "missing": "red"}[status]
            view.add_row(title, f"[{style}]{status}[/{style}]", str(n_figures))
        Console().print(view)
