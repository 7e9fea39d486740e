"""What every section's tests share."""

from __future__ import annotations

import pytest


@pytest.fixture
def empty_section(tmp_path):
    """``check(builder, command)``: the section of an empty folder is ``missing`` and names, for
    each absent input, a file inside the folder and an ``attndilute`` command (``command`` first)."""
    from attndilute.report.load import load_run
    from attndilute.report.sections import Missing

    def check(builder, command: str) -> None:
        sec = builder(load_run(tmp_path))
        missing = [b for b in sec.blocks if isinstance(b, Missing)]
        assert sec.status == "missing" and missing
        assert missing[0].command.startswith(f"attndilute {command} ")
        assert all(m.command.startswith("attndilute ") and str(tmp_path) in m.path for m in missing)

    return check
