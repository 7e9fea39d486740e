"""The ``attndilute`` console script.

Every module ``attndilute/cli/cmd_*.py`` defines ``register(app)``; they are discovered here so
that adding a command never edits a shared file. ``AttnDiluteError`` and an ``OSError`` on a
file become one line on stderr and exit code 2, never a traceback; any other error becomes one
line and a pointer to ``--debug`` (which shows the traceback), exit code 1.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from attndilute import cli
from attndilute.cli import STUDY_HINT, STUDY_MODULES
from attndilute.cli.cmd_version import print_version
from attndilute.errors import AttnDiluteError

app = typer.Typer(
    name="attndilute",
    help="Attention dilution, CKA and a lean trainer for windowed 3D vision transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_DEBUG = {"on": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an unexpected error."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=print_version, help="Print the versions and exit."
    ),
) -> None:
    """Attention dilution, CKA and a lean trainer for windowed 3D vision transformers."""
    _DEBUG["on"] = debug


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"attndilute.cli.{info.name}")
            module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (2 for bad input)."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    _DEBUG["on"] = "--debug" in args
    if _DEBUG["on"]:  # accepted anywhere on the line: `attndilute adi ... --debug`
        args = ["--debug", *(a for a in args if a != "--debug")]
    try:
        app(args=args, prog_name="attndilute")
    except SystemExit as exit_:  # typer/click exit with their own codes (usage errors: 2)
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except AttnDiluteError as err:
        return _fail(f"error: {_one_line(err)}", 2)
    except KeyboardInterrupt:
        return _fail("error: interrupted", 130)
    except OSError as err:  # the system refused a file: name it and the reason
        where = err.filename if err.filename is not None else "a file"
        return _fail(f"error: {where}: {err.strerror or type(err).__name__} (check the path and its "
                     "permissions, and that the disk has space)", 2)
    except ModuleNotFoundError as err:

        if (err.name or "").split(".")[0] not in STUDY_MODULES:
            return _fail(f"error: unexpected ModuleNotFoundError: {_one_line(err)} (rerun with --debug)", 1)
        return _fail(f"error: this command needs the study extra (no module {err.name!r}): {STUDY_HINT}", 2)
    except MemoryError:
        return _fail("error: out of memory (use a smaller --crop or --batch-size)", 2)
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, no traceback
        return _fail(f"error: unexpected {type(err).__name__}: {_one_line(err)} "
                     "(rerun with --debug for the traceback, and please report it)", 1)
    return 0


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _fail(message: str, code: int) -> int:
    if _DEBUG["on"] and code != 130:
        import traceback

        traceback.print_exc()
    print(message, file=sys.stderr)
    return code
