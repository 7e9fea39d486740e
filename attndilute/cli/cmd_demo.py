"""``attndilute demo``: the whole study on the embedded phantom, on a CPU (seed §2-3)."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(
            Path("demo-out"), "--out", help="Results folder D (an earlier demo's entries are replaced)."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        fast: bool = typer.Option(False, "--fast", help="12 cases, 1 epoch per model (about 3 minutes)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the cohort, training and CKA shuffles."),
    ) -> None:
        """Phantom, padstats, train Base and ACT, predict, evaluate, ADI, subtypes, CKA, report."""
        import dataclasses

        from rich.console import Console
        from rich.table import Table

        from attndilute.study.demo import FAST, FULL, run_demo

        console = Console(stderr=True)
        config = dataclasses.replace(FAST if fast else FULL, seed=seed)
        result = run_demo(out, config=config, log=lambda line: console.print(line), overwrite=overwrite)
        table = Table(
            "config",
            "sDSC median [IQR]",
            "detection [95% CI]",
            "deepest-stage ADI",
            title=f"demo -> {out} ({result.seconds['total'] / 60:.1f} min)",
        )
        for row in result.table.itertuples():
            table.add_row(
                row.config,
                f"{row.sdsc_median:.3f} [{row.sdsc_q1:.3f}-{row.sdsc_q3:.3f}]",
                f"{row.n_detected}/{row.n} {100 * row.detection_rate:.0f}% "
                f"[{100 * row.detection_low:.0f}-{100 * row.detection_high:.0f}]",
                f"{result.adi.get(row.config, float('nan')):.4f}",
            )
        Console().print(table)
        Console().print(f"report: {Path(out) / 'report.html'}")
