"""``attndilute version`` (and ``attndilute --version``): the package and key library versions."""

from __future__ import annotations

import typer

from attndilute._version import __version__


def version_lines() -> list[str]:
    """``attndilute X``, then the torch and MONAI versions (or "not installed")."""
    import importlib.metadata as md


    lines = [f"attndilute {__version__}"]
    for dist in ("torch", "monai"):
        try:
            lines.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            lines.append(f"{dist} not installed")
    return lines


def print_version(value: bool) -> None:
    """Eager ``--version`` callback of the main command: print and exit 0."""
    if value:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the attndilute, torch and MONAI versions."""
        typer.echo("\n".join(version_lines()))
