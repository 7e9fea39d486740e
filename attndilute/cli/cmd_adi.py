"""``attndilute adi --model M``: attention dilution index per scan, stage, block and head (seed §2.4).

Runs under ``torchrun --nproc_per_node N $(which attndilute) adi ...`` too: batches are dealt to
the ranks and rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.cli.progress import progress
from attndilute.study.adi import run_adi
from attndilute.study.adi_summary import layout_padding_note


def register(app: typer.Typer) -> None:
    @app.command("adi")
    def adi(
        model: str = typer.Option(..., "--model", help="Checkpoint (.safetensors/.pt) or random:<preset>."),
        data: Path | None = typer.Option(None, "--data", help="Cohort folder (default: embedded phantom)."),
        out: Path = typer.Option(Path("adi"), "--out", help="Output folder."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        crop: tuple[int, int, int] | None = typer.Option(
            None, "--crop", help="X Y Z (default: checkpoint's)."
        ),
        heads: str = typer.Option("per-head", "--heads", help="per-head (Eq. 6-7) or mean-attention."),
        windows: str = typer.Option(
            "pooled", "--windows", help="pooled (ratio of sums over windows) or mean (of per-window ADI)."
        ),
        batch_size: int = typer.Option(2, "--batch-size", help="Scans per forward."),
        device: str = typer.Option(
            "auto", "--device", help="auto (CUDA if any, else CPU; per torchrun rank), cpu, cuda:N."
        ),
        workers: int = typer.Option(
            1, "--workers", help="Processes preparing the next scans while the model runs (0: none)."
        ),
        split: str = typer.Option("all", "--split", help="all, train or test cases."),
        autocast: str | None = typer.Option(None, "--autocast", help="bf16 or fp16 (entropy stays float32)."),
        seed: int = typer.Option(0, "--seed", help="Seed of random:<preset> weights."),
    ) -> None:
        """Measure ADI online and write adi.zarr, adi_stages.csv, adi.png and adi.html."""
        with progress("adi") as ticker:
            run = run_adi(model, out=out, data=data, crop=crop, heads=heads, windows=windows,
                          batch_size=batch_size, device=device, split=split, autocast=autocast, seed=seed,
                          overwrite=overwrite, workers=workers, progress=ticker.count, announce=typer.echo)
        if run is not None:  # None on a torchrun rank other than 0: rank 0 reports
            _print_summary(run, out, heads)


def _print_summary(run, out: Path, heads: str) -> None:
    """Stage table, where layout padding lies, and the deepest stage's Spearman rho."""
    from rich.console import Console
    from rich.table import Table

    table = Table("stage", "ADI mean", "sd", "input pad", "layout pad", "scans",
                  title=f"adi -> {out} ({run.dataset.sizes['scan']} scans, {heads})")  # fmt: skip
    for row in run.summary.itertuples():
        table.add_row(f"S{row.stage}", f"{row.mean_adi:.4f}", f"{row.sd_adi:.4f}",
                      f"{row.mean_adi_input_pad:.4f}", f"{row.mean_adi_layout_pad:.4f}", str(row.n))
    Console().print(table)
    Console().print(layout_padding_note(run.summary))
    rho, p = run.spearman
    deepest = int(run.stages["stage"].max())
    Console().print(
        f"Spearman rho(S{deepest} ADI, padding fraction) = {rho:.3f} (p = {p:.2g})"
        + (f"; resumed after {run.resumed} scans" if run.resumed else "")
        + f"; {run.seconds:.1f}s"
    )
