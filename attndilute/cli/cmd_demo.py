"""``attndilute demo``: the whole study on the embedded phantom, on a CPU (seed §2-3)."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import DEVICE_HELP, OVERWRITE_HELP
from attndilute.cli.progress import progress
from attndilute.resolved import describe
from attndilute.study import demo as study  # module attributes: sizes patched in tests apply

#: Measured with `time attndilute demo --fast` on the 2-core sandbox (docs/report.md).
FAST_HELP = ("12 cases, 1 epoch per model: a pipeline check, not a result "
             "(measured: 2 min 7 s and 2 min 29 s with an empty cache, 2 min 27 s with a warm one, on a "
             "2-core sandbox).")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(
            Path("demo-out"), "--out", help="Results folder D (an earlier demo's entries are replaced)."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        fast: bool = typer.Option(False, "--fast", help=FAST_HELP),
        seed: int = typer.Option(0, "--seed", help="Seed of the cohort, training and CKA shuffles."),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    ) -> None:
        """Phantom, padstats, train Base and ACT, predict, evaluate, ADI, subtypes, CKA, report."""
        import dataclasses

        from rich.console import Console
        from rich.table import Table


        console = Console(stderr=True)
        for name, resolved in study.settings(device).items():  # stdout: stderr stays the error channel
            for line in describe("demo", resolved, name):
                Console().print(line, markup=False, highlight=False)
        config = dataclasses.replace(study.FAST if fast else study.FULL, seed=seed)
        with progress("demo", total=len(study.STEPS), keep=True) as ticker:
            result = study.run_demo(out, config=config, log=lambda line: console.print(line, markup=False),
                                    overwrite=overwrite, on_start=ticker.step, device=device)  # fmt: skip
            ticker.done()
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
        Console().print(f"report: {Path(out) / 'report.html'}", soft_wrap=True)  # a path stays one line
