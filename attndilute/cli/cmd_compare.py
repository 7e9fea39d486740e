"""``attndilute compare``: the seed's Table 2 for several per-case CSVs, with paired tests."""

from __future__ import annotations

from pathlib import Path

import typer

from attndilute.cli import OVERWRITE_HELP
from attndilute.errors import AttnDiluteError
from attndilute.evaluation.compare import compare_files
from attndilute.evaluation.formatting import FORMATS, render, table_cells, tests_cells


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        tables: list[Path] = typer.Argument(..., help="Per-case CSVs from `attndilute evaluate`."),
        names: str | None = typer.Option(None, "--names", help="Comma-separated names (default: stems)."),
        out: Path | None = typer.Option(None, "--out", help="Table CSV; tests go to <stem>_tests.csv."),
        fmt: str = typer.Option("table", "--format", help="Print as table, markdown or latex."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Median [IQR] sDSC and VR, Wilson detection rates, Wilcoxon and McNemar tests (§2.8)."""
        if fmt not in FORMATS:
            raise AttnDiluteError(f"unknown --format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
        split_names = None if names is None else [n.strip() for n in names.split(",")]
        result = compare_files(tables, split_names, out=out, overwrite=overwrite)
        for title, (header, rows) in (
            ("Table 2 (sDSC/VR exclude cases missed by all; missed = 0.1 / 10)", table_cells(result.table)),
            ("Paired tests (Wilcoxon, Bonferroni across pairs; McNemar exact)", tests_cells(result.tests)),
        ):
            if not rows:
                continue
            if fmt == "table":
                from rich.console import Console
                from rich.table import Table

                view = Table(*header, title=title)
                for row in rows:
                    view.add_row(*row)
                Console().print(view)
            else:
                typer.echo(render(header, rows, fmt) + "\n")
        if out is not None:
            typer.echo(f"wrote {out} ({len(result.excluded)} case(s) missed by all excluded from sDSC/VR)")
