"""Join per-case side tables onto the ``evaluate`` table, so one CSV holds everything per case.

- padstats CSV (``attndilute padstats``): ``case, extent, padding_fraction`` -> columns
  ``extent, padding_fraction`` (Eq. 4).
- ADI stage CSV (``attndilute adi``, ``adi_stages.csv``): one row per ``scan, stage`` with ``adi``
  (and ``padding_fraction``) -> ``adi_s0 .. adi_sK`` and ``adi_deepest`` (the deepest stage,
  S3 in the seed's Fig. 4 D-F); its ``padding_fraction`` is used when no padstats CSV is given.
- subtypes CSV (``attndilute subtypes`` / ``phantom.csv``): ``case, subtype, ...`` -> ``subtype``.

Rows are matched by case name (``case`` or ``scan`` column), never by order. Every evaluated
case must appear in each joined table; extra rows (e.g. training cases) are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from attndilute.errors import AttnDiluteError

if TYPE_CHECKING:
    import pandas as pd

_KEYS = ("case", "scan")


def read_table(path: str | Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a per-case CSV, name its key column ``case``, check the ``required`` columns.

    Args:
        path: CSV file with a ``case`` or ``scan`` column.
        required: other columns that must be present.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise AttnDiluteError("file not found", path=path)
    try:
        frame = pd.read_csv(path)
    except Exception as err:  # pandas raises several types for empty or malformed files
        raise AttnDiluteError(f"not a readable CSV ({type(err).__name__})", path=path) from None
    key = next((k for k in _KEYS if k in frame.columns), None)
    if key is None:
        raise AttnDiluteError("no `case` or `scan` column", path=path)
    frame = frame.rename(columns={key: "case"})
    frame["case"] = frame["case"].astype(str)
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise AttnDiluteError(f"missing column(s) {', '.join(absent)}", path=path)
    return frame


def _unique_cases(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    dup = frame["case"][frame["case"].duplicated()].unique().tolist()
    if dup:
        raise AttnDiluteError(f"case(s) listed more than once: {', '.join(dup[:8])}", path=path)
    return frame.set_index("case")


def _check_covers(index, cases, path: Path) -> None:
    missing = [c for c in cases if c not in index]
    if missing:
        shown = ", ".join(missing[:8]) + (f", ... ({len(missing) - 8} more)" if len(missing) > 8 else "")
        raise AttnDiluteError(f"{len(missing)} evaluated case(s) are not listed: {shown}", path=path)


def adi_wide(path: str | Path) -> pd.DataFrame:
    """Pivot an ADI stage CSV to one row per case: ``adi_s0 .. adi_sK, adi_deepest`` (+ pf).

    Args:
        path: CSV with columns ``scan`` (or ``case``), ``stage`` (``0``, ``1``, ... or ``S0``,
            ``S1``, ...), ``adi`` and optionally ``padding_fraction``; one row per scan and stage.

    Returns:
        Frame indexed by case.
    """
    path = Path(path)
    frame = read_table(path, ("stage", "adi"))
    stage = frame["stage"].astype(str).map(lambda s: re.fullmatch(r"[sS]?(\d+)", s.strip()))
    if stage.isna().any():
        raise AttnDiluteError("column `stage` must hold stage numbers (0, 1, ... or S0, S1, ...)", path=path)
    frame["stage"] = stage.map(lambda m: int(m.group(1)))
    if frame.duplicated(["case", "stage"]).any():
        raise AttnDiluteError("expected one row per scan and stage", path=path)
    wide = frame.pivot(index="case", columns="stage", values="adi").sort_index(axis=1)
    deepest = int(wide.columns.max())
    wide.columns = [f"adi_s{s}" for s in wide.columns]
    wide["adi_deepest"] = wide[f"adi_s{deepest}"]
    if "padding_fraction" in frame.columns:
        wide["padding_fraction"] = frame.groupby("case")["padding_fraction"].first()
    return wide


def join_tables(
    evaluation: pd.DataFrame,
    *,
    padstats: str | Path | None = None,
    adi: str | Path | None = None,
    subtypes: str | Path | None = None,
) -> pd.DataFrame:
    """Append padding fraction, ADI per stage and subtype columns to a per-case table.

    Args:
        evaluation: the ``evaluate`` table (column ``case``).
        padstats: padstats CSV (``case, extent, padding_fraction``).
        adi: ADI stage CSV (``scan, stage, adi, ...``).
        subtypes: subtypes CSV (``case, subtype, ...``).

    Returns:
        A copy of ``evaluation`` with the joined columns, rows in the original order.
    """
    out = evaluation.copy()
    cases = out["case"].astype(str).tolist()
    if padstats is not None:
        table = _unique_cases(read_table(padstats, ("padding_fraction",)), Path(padstats))
        _check_covers(table.index, cases, Path(padstats))
        for col in ("extent", "padding_fraction"):
            if col in table.columns:
                out[col] = table.loc[cases, col].to_numpy()
    if adi is not None:
        wide = adi_wide(adi)
        _check_covers(wide.index, cases, Path(adi))
        for col in wide.columns:
            if col == "padding_fraction" and "padding_fraction" in out.columns:
                continue  # padstats wins: it is the crop the user asked about
            out[col] = wide.loc[cases, col].to_numpy()
    if subtypes is not None:
        table = _unique_cases(read_table(subtypes, ("subtype",)), Path(subtypes))
        _check_covers(table.index, cases, Path(subtypes))
        out["subtype"] = table.loc[cases, "subtype"].to_numpy()
    return out
