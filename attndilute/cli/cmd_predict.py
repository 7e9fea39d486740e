"""``attndilute predict``: sliding window + flip TTA, masks written in each source image's geometry."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import DEVICE_HELP, OVERWRITE_HELP
from attndilute.resolved import checkpoint_settings, describe
from attndilute.training import predict as run


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        model: Path = typer.Option(..., "--model", help="Checkpoint (best.safetensors or .pt/.pth)."),
        out: Path = typer.Option(..., "--out", help="Folder of NAME.nii.gz masks to write."),
        data: Path | None = typer.Option(None, "--data", help="Data folder (default: phantom)."),
        split: str = typer.Option("test", "--split", help="Cases to segment: test, train or all."),
        probabilities: bool = typer.Option(False, "--probabilities", help="Also write OUT/probabilities/."),
        blend: str = typer.Option(
            "gaussian", "--blend", help="How overlapping windows are combined: gaussian or constant."
        ),
        tta: bool = typer.Option(True, "--tta/--no-tta", help="Average with the left-right flipped image."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    ) -> None:
        """Segment every image of a split; masks match the source affine and shape (seed §2.5.1)."""
        from rich.console import Console
        from rich.table import Table


        out_console = Console()  # stdout: stderr stays the one-line error channel
        for line in describe("predict", checkpoint_settings(model, device)):
            out_console.print(line, markup=False, highlight=False)
        paths = run(model, data, out, split=split, probabilities=probabilities, blend=blend, tta=tta,
                    overwrite=overwrite, device=device)
        view = Table(title=f"predict -> {out}")
        view.add_column("")
        view.add_column("value")
        view.add_row("cases", str(len(paths)))
        view.add_row("split", split)
        view.add_row("probabilities", "yes" if probabilities else "no")
        view.add_row("blend", blend)
        view.add_row("flip TTA", "yes" if tta else "no")
        Console().print(view)
