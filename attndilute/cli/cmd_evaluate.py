"""``attndilute evaluate``: per-case Dice, sDSC, VR and detection of a predictions folder."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.cli.progress import progress
from attndilute.evaluation.cases import evaluate as run
from attndilute.evaluation.cases import summary


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        pred: Path = typer.Option(..., "--pred", help="Folder of NAME.nii.gz predicted masks."),
        out: Path = typer.Option(..., "--out", help="Per-case CSV to write."),
        data: Path | None = typer.Option(None, "--data", help="Data folder with labels (default: phantom)."),
        split: str = typer.Option(
            "test", "--split", help="Cases to evaluate: test (as predict), train or all."
        ),
        padstats: Path | None = typer.Option(None, "--padstats", help="padstats CSV to join."),
        adi: Path | None = typer.Option(None, "--adi", help="ADI stage CSV (adi_stages.csv) to join."),
        subtypes: Path | None = typer.Option(None, "--subtypes", help="Subtypes CSV to join."),
        tolerance: float = typer.Option(2.0, "--tolerance", help="Surface Dice tolerance in mm."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Score predictions against reference labels on the labels' own grid (seed §2.8)."""
        from rich.console import Console
        from rich.table import Table


        with progress("scoring") as ticker:
            table = run(
                pred, data, out=out, split=split, padstats=padstats, adi=adi, subtypes=subtypes,
                tolerance_mm=tolerance, overwrite=overwrite,
                progress=ticker.item,
            )  # fmt: skip
        view = Table(title=f"evaluate -> {out}")
        view.add_column("")
        view.add_column("value")
        for label, value in summary(table):
            view.add_row(label, value)
        Console().print(view)
