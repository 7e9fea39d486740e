"""Command-line shell: one small module per command, each with a ``register(app)`` function.

The modules here parse arguments, call one library function and print; the logic lives in the
library so that a user can do from Python whatever a command does.
"""

#: Help text of every command's ``--overwrite`` (the output policy of :mod:`attndilute._io`).
OVERWRITE_HELP = (
    "Write into an --out that holds other files; only this command's own files are replaced, "
    "nothing else is deleted."
)

#: Help text of ``--device`` (train, predict, demo).
DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when available, else CPU)."

#: Top-level modules of the ``study`` extra: without them the command says how to install them.
STUDY_MODULES = frozenset({"monai", "nibabel", "zarr", "matplotlib", "plotly", "scipy", "statsmodels",
                           "sklearn", "safetensors", "typer", "rich", "click"})
STUDY_HINT = "pip install 'attndilute[study]'"


def run() -> int:
    """The ``attndilute`` console script: one line, not a traceback, without the study extra."""
    import sys

    try:
        from attndilute.cli.main import main  # lazy: a missing study extra becomes one line
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in STUDY_MODULES:
            raise
        print(f"error: the attndilute command needs the study extra (no module {err.name!r}): {STUDY_HINT}",
              file=sys.stderr)
        return 2
    return main()
