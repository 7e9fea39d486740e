"""``attndilute correlate``: padding fraction, ADI and sDSC (seed Fig. 4 D-F, §3.2.2)."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.evaluation.correlate import correlate_file
from attndilute.evaluation.formatting import median_iqr, p_value, rate_interval


def register(app: typer.Typer) -> None:
    @app.command("correlate")
    def correlate(
        eval_csv: Path = typer.Option(..., "--eval", help="Joined per-case CSV from `attndilute evaluate`."),
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: <stem>_correlate)."),
        no_penalty: bool = typer.Option(False, "--no-penalty", help="Raw sDSC for missed cases, not 0.1."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Spearman rho/p, Fig. 4 E-F (PNG + HTML) and per-subtype detection and sDSC."""
        from rich.console import Console
        from rich.table import Table


        result, folder = correlate_file(eval_csv, out, penalize=not no_penalty, overwrite=overwrite)
        console = Console()
        if len(result.correlations):
            view = Table("x", "y", "Spearman rho", "p", "n", title="Spearman correlations")
            for r in result.correlations.itertuples():
                view.add_row(r.x, r.y, f"{r.rho:+.3f}", p_value(r.p), str(r.n))
            console.print(view)
        if result.subtypes is not None:
            view = Table("subtype", "n", "detection", "sDSC", title="Per subtype (§3.2.2)")
            for r in result.subtypes.itertuples():
                rate = rate_interval(r.detection_rate, r.detection_low, r.detection_high)
                view.add_row(str(r.subtype), str(r.n), rate, median_iqr(r.sdsc_median, r.sdsc_q1, r.sdsc_q3))
            console.print(view)
        typer.echo(f"wrote {folder}")
