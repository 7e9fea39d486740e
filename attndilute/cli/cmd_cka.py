"""``attndilute cka A B``: layer-wise minibatch CKA between two models (seed §2.7, Figs. 6, 8, A.2).

Runs under ``torchrun --nproc_per_node N $(which attndilute) cka ...`` too: scans and minibatches
are dealt to the ranks and rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.cli.progress import progress
from attndilute.store.cka_figures import diagonal_pairs
from attndilute.store.cka_run import CKAConfig, run_cka


def register(app: typer.Typer) -> None:
    @app.command("cka")
    def cka(
        model_a: str = typer.Argument(..., metavar="A", help="Checkpoint, or random:<preset>."),
        model_b: str = typer.Argument(..., metavar="B", help="Checkpoint, random:<preset>, or init:A "
                                      "(A's architecture with seed-fixed random weights)."),
        data: Path | None = typer.Option(None, "--data", help="Cohort folder (default: embedded phantom)."),
        out: Path = typer.Option(Path("cka"), "--out", help="Output folder."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        device: str = typer.Option(
            "auto", "--device", help="auto (CUDA if any, else CPU; per torchrun rank), cpu, cuda:N."
        ),
        crop: tuple[int, int, int] | None = typer.Option(None, "--crop", help="X Y Z (default: A's crop)."),
        batch_size: int = typer.Option(16, "--batch-size", help="Scans per minibatch (> 3)."),
        epochs: int = typer.Option(1, "--epochs", help="Passes over the scans, reshuffled each time."),
        seed: int = typer.Option(0, "--seed", help="Seed of the shuffles and of random weights."),
        layers: str | None = typer.Option(None, "--layers", help="Glob of module names, comma separated "
                                          "(default: every block and stage)."),
        pool: int = typer.Option(8, "--pool", help="Tokens per axis after pooling (0: no pooling)."),
        dtype: str = typer.Option("float32", "--dtype", help="Store dtype: float32 or float16."),
        store: Path | None = typer.Option(None, "--store", help="Store folder (default: OUT/activations)."),
    ) -> None:
        """Capture both models (or reuse their stores), minibatch CKA, heatmap, diagonal and HTML."""
        from rich.console import Console
        from rich.table import Table


        config = CKAConfig(crop=crop, batch_size=batch_size, epochs=epochs, seed=seed, layers=layers,
                           pool=None if pool == 0 else (pool, pool, pool), dtype=dtype, store_dir=store)
        with progress("capturing") as ticker:
            run = run_cka(model_a, model_b, out=out, data=data, config=config, overwrite=overwrite,
                          device=device, announce=typer.echo,
                          progress=ticker.count)
        if run is None:  # a torchrun rank other than 0: rank 0 reports
            return
        for message in run.messages:
            Console(stderr=True).print(f"note: {message}", soft_wrap=True)
        ds = run.dataset
        values = ds["cka"].values
        diag = [(label, float(values[i, j])) for i, j, label in diagonal_pairs(ds)]
        view = Table("", "", title=f"cka -> {out}")
        view.add_row("scans", str(ds.attrs["n_scans"]))
        view.add_row("layers A x B", f"{values.shape[0]} x {values.shape[1]}")
        view.add_row("minibatches", f"{ds.attrs['n_minibatches']} ({epochs} epoch(s), batch {batch_size})")
        if diag:
            low = min(diag, key=lambda d: d[1])
            view.add_row("mean diagonal CKA", f"{sum(v for _, v in diag) / len(diag):.4f}")
            view.add_row("lowest diagonal CKA", f"{low[1]:.4f} ({low[0]})")
        shared = " (shared)" if run.stores[0] == run.stores[1] else ""
        view.add_row("stores", f"A {run.store_status[0]}, B {run.store_status[1]}{shared}")
        view.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in run.seconds.items()))
        view.add_row("wrote", ", ".join(p.name for p in run.files.values()))
        Console().print(view)
