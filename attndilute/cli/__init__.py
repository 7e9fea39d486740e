"""Command-line shell: one small module per command, each with a ``register(app)`` function.

The modules here parse arguments, call one library function and print; the logic lives in the
library so that a user can do from Python whatever a command does.
"""

#: Help text of every command's ``--overwrite`` (the output policy of :mod:`attndilute._io`).
OVERWRITE_HELP = (
    "Write into an --out that holds other files; only this command's own files are replaced, "
    "nothing else is deleted."
)
