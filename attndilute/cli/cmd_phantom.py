"""``attndilute phantom``: write the synthetic pelvic T2 cohort (nnU-Net raw layout)."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.cli.progress import tracker
from attndilute.data.phantom import write_phantom


def register(app: typer.Typer) -> None:
    @app.command("phantom")
    def phantom(
        out: Path = typer.Option(..., "--out", help="Folder to create (nnU-Net raw layout)."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        n: int = typer.Option(40, "--n", help="Number of cases."),
        seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives identical files."),
        profile: str = typer.Option(
            "small", "--profile", help="paper (0.43-0.63 mm in-plane) or small (1.5 mm)."
        ),
    ) -> None:
        """Generate a synthetic rectal-cancer T2 MRI cohort with subtypes B and D (seed §2.1, §2.6)."""
        from rich.console import Console
        from rich.table import Table


        rows = write_phantom(
            out,
            n=n,
            seed=seed,
            profile=profile,
            progress=tracker("rendering"),
            overwrite=overwrite,
        )
        view = Table(title=f"phantom -> {out}")
        for column in ("split", "cases", "B", "D", "median extent (mm)"):
            view.add_column(column)
        for split in ("train", "test"):
            part = [r for r in rows if r["split"] == split]
            extents = sorted(r["extent_mm"] for r in part)
            median = extents[len(extents) // 2] if extents else float("nan")
            view.add_row(
                split,
                str(len(part)),
                str(sum(r["subtype"] == "B" for r in part)),
                str(sum(r["subtype"] == "D" for r in part)),
                f"{median:.0f}",
            )
        Console().print(view)

