"""Command-line shell: one small module per command, each with a ``register(app)`` function.

The modules here parse arguments, call one library function and print; the logic lives in the
library so that a user can do from Python whatever a command does.
"""
