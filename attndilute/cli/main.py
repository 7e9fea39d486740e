"""The ``attndilute`` console script.

Every module ``attndilute/cli/cmd_*.py`` defines ``register(app)``; they are discovered here so
that adding a command never edits a shared file. ``AttnDiluteError`` (and a few standard input
errors) become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

app = typer.Typer(
    name="attndilute",
    help="Attention dilution, CKA and a lean trainer for windowed 3D vision transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Attention dilution, CKA and a lean trainer for windowed 3D vision transformers."""


def _register_commands() -> None:
    from attndilute import cli

    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"attndilute.cli.{info.name}")
            module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (2 for bad input)."""
    from attndilute.errors import AttnDiluteError

    try:
        app(args=argv, prog_name="attndilute")
    except SystemExit as exit_:  # typer/click exit with their own codes (usage errors: 2)
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except AttnDiluteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
