"""``attndilute version``: print the package and key library versions."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the attndilute, torch and MONAI versions."""
        import importlib.metadata as md

        from attndilute._version import __version__

        typer.echo(f"attndilute {__version__}")
        for dist in ("torch", "monai"):
            try:
                typer.echo(f"{dist} {md.version(dist)}")
            except md.PackageNotFoundError:
                typer.echo(f"{dist} not installed")
