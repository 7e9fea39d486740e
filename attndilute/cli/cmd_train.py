"""``attndilute train``: the lean trainer (seed §2.5); a thin shell over attndilute.training.train."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import DEVICE_HELP, OVERWRITE_HELP
from attndilute.resolved import describe, train_settings
from attndilute.training import train as run
from attndilute.training.train_presets import parse_overrides


def register(app: typer.Typer) -> None:
    """Add ``attndilute train`` to ``app``. Its length is the command's signature: typer reads each
    option, with its help, from it."""

    @app.command(
        "train",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def train(
        ctx: typer.Context,
        out: Path = typer.Option(..., "--out", help="Run folder (metrics.csv, best.safetensors, last.ckpt)."),
        data: Path | None = typer.Option(None, "--data", help="Data folder with labels (default: phantom)."),
        preset: str | None = typer.Option(
            None, "--preset", help="tiny (default), tiny-act, smit-base/ta/act, swin-base/ta/act."
        ),
        epochs: int | None = typer.Option(None, "--epochs", help="Schedule length (default: the preset's)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.ckpt."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
        init: Path | None = typer.Option(None, "--init", help="Pretrained weights (SMIT / Swin UNETR)."),
        scratch: bool | None = typer.Option(None, "--scratch", help="Random initialisation (Scratch)."),
        mask_padding: bool | None = typer.Option(
            None, "--mask-padding", help="Mask padding keys in attention."
        ),
        folds: int | None = typer.Option(None, "--folds", help="K-fold cross-validation: number of folds."),
        fold: int | None = typer.Option(None, "--fold", help="Validation fold, 0-based (with --folds)."),
        seed: int | None = typer.Option(
            None, "--seed", help="Fixes initialisation, crops, augmentation, order (default 0)."
        ),
        stop_after: int | None = typer.Option(
            None, "--stop-after", help="Stop after this epoch; --resume continues."
        ),
        crop: tuple[int, int, int] | None = typer.Option(None, "--crop", help="Training crop X Y Z."),
        spacing: tuple[float, float, float] | None = typer.Option(
            None, "--spacing", help="Spacing X Y Z in mm."
        ),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    ) -> None:
        """Train a segmentation model; any preset setting can be overridden, e.g. --lr 1e-4 --val-every 2.

        Other settings (every TrainConfig field, docs/training.md): --lr, --batch-size, --context, ...

        Runs under ``torchrun --nproc_per_node N`` with DDP (rank 0 writes).
        """
        import os

        from rich.console import Console

        overrides = parse_overrides(list(ctx.args))
        if crop is not None:
            overrides["crop"] = crop
        if spacing is not None:
            overrides["spacing"] = spacing
        main = int(os.environ.get("RANK", "0")) == 0
        if main and not resume:
            out_console = Console()  # stdout: stderr stays the one-line error channel
            for line in describe("train", train_settings(preset, crop, spacing, device)):
                out_console.print(line, markup=False, highlight=False)
        summary = run(
            data, out, preset, epochs=epochs, seed=seed, fold=fold, folds=folds, resume=resume,
            init=init, scratch=scratch, mask_padding=mask_padding, stop_after=stop_after, overwrite=overwrite,
            device=device, **overrides,
        )  # fmt: skip
        if main:
            _print_summary(summary, out)


def _print_summary(summary, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"train -> {out}")
    view.add_column("")
    view.add_column("value")
    for label, value in (
        ("preset", str(summary.preset)),
        ("cases (train / val)", f"{summary.train_cases} / {summary.val_cases}"),
        ("epochs", str(summary.epochs)),
        ("best val Dice", f"{summary.best_val_dice:.3f} (epoch {summary.best_epoch})"),
        ("best model", str(summary.best or "none yet (no validation run)")),
        ("init", str(summary.init)),
        ("time", f"{summary.seconds:.0f} s"),
    ):
        view.add_row(label, value)
    Console().print(view)

