"""``attndilute padstats``: native axial extent and padding fraction (Eq. 4) per case."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.cli.progress import tracker
from attndilute.data.padstats import describe, run_padstats, summarize


def register(app: typer.Typer) -> None:
    @app.command("padstats")
    def padstats(
        crop: tuple[int, int, int] = typer.Option(..., "--crop", help="Crop X Y Z (Eq. 4 uses Z)."),
        out: Path = typer.Option(..., "--out", help="Per-case CSV to write."),
        data: Path | None = typer.Option(None, "--data", help="Data folder (default: embedded phantom)."),
        split: str = typer.Option("all", "--split", help="train, test or all."),
        plot: bool = typer.Option(False, "--plot", help="Also write a histogram PNG next to the CSV."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Padding statistics of a cohort under a crop (seed §3.2.1)."""
        from rich.console import Console
        from rich.table import Table


        rows = run_padstats(data, crop, out, split=split, plot=plot, overwrite=overwrite,
                            progress=tracker("reading"))
        png = out.with_suffix(".png")
        s = summarize(rows)
        view = Table(title=f"padstats -> {out}" + (f", {png.name}" if plot else ""))
        view.add_column("cases")
        view.add_column("need padding")
        view.add_column("extent median [IQR]")
        view.add_column("pf mean ± sd")
        view.add_row(
            str(s["n"]),
            f"{s['n_padded']} ({100 * s['n_padded'] / s['n']:.1f}%)",
            f"{s['extent_median']:.0f} [{s['extent_q1']:.0f}-{s['extent_q3']:.0f}]",
            f"{s['pf_mean']:.3f} ± {s['pf_sd']:.3f}",
        )
        console = Console()
        console.print(view)
        console.print(describe(s, crop), soft_wrap=True)

