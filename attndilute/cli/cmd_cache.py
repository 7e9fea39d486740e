"""``attndilute cache``: what attndilute keeps in its cache folder, and ``--clear`` to remove it."""

from __future__ import annotations

import typer

from attndilute.data.cache import cache_entries, cache_root, clear_cache


def register(app: typer.Typer) -> None:
    @app.command("cache")
    def cache(
        clear: bool = typer.Option(
            False, "--clear", help="Delete what attndilute created there (only that)."
        ),
    ) -> None:
        """Show the cache folder (~/.cache/attndilute or $ATTNDILUTE_CACHE): entries and size."""
        root = cache_root()
        entries = clear_cache(root) if clear else cache_entries(root)
        total = sum(e.size for e in entries)
        kinds = {k: sum(e.kind == k for e in entries) for k in ("phantom", "preprocessed", "temporary")}
        counted = ", ".join(f"{n} {k}" for k, n in kinds.items() if n) or "no entries"
        verb = "cleared" if clear else "holds"
        typer.echo(f"cache {root} {verb} {_mb(total)} ({counted})")
        if not clear:
            for e in entries:
                typer.echo(f"  {_mb(e.size):>9}  {e.kind:<12}  {e.path.relative_to(root).as_posix()}")
            if entries:
                typer.echo("attndilute cache --clear deletes these (they are rebuilt when needed)")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
