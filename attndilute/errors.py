"""The one user-facing exception type.

Library code raises :class:`AttnDiluteError` for anything a user can fix (a missing file, a
corrupt NIfTI, a crop the model cannot take). The CLI turns it into one line on stderr and exit
code 2; Python callers can catch it like any other exception.
"""

from __future__ import annotations

from pathlib import Path


class AttnDiluteError(Exception):
    """A problem with the user's input, with a message that names the file and the fix.

    Args:
        message: what is wrong, in one sentence.
        path: the file or folder concerned, if any; prefixed to the message.
        hint: how to fix it; appended to the message.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.path = None if path is None else Path(path)
        self.hint = hint
        text = message if path is None else f"{path}: {message}"
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)
