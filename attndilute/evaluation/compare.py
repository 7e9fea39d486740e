"""Cohort comparison of configurations: the seed's Table 2 / Table 3 (§2.8, §3.1).

For each configuration: sDSC and VR as median [q1-q3] after the bounded penalties for missed
cases (sDSC = 0.1, VR = 10) and after excluding the cases missed by *every* compared
configuration; detection rate over all cases with its Wilson 95% interval. For every pair:
Wilcoxon signed-rank p for sDSC and VR (raw and Bonferroni-corrected across all pairs), the
detection difference in percentage points and the exact McNemar p.

Cases are matched by name, never by row order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attndilute import stats
from attndilute._io import atomic_path, claim_files
from attndilute.errors import AttnDiluteError

if TYPE_CHECKING:
    import pandas as pd

MISSED_SDSC = 0.1  # §2.8 bounded penalty for a missed case
MISSED_VR = 10.0  # §2.8 bounded penalty for a missed case

#: Columns of the comparison table (contract).
TABLE_COLUMNS = (
    "config", "sdsc_median", "sdsc_q1", "sdsc_q3", "vr_median", "vr_q1", "vr_q3",
    "detection_rate", "detection_low", "detection_high", "n_detected", "n", "n_excluded",
)  # fmt: skip
#: Columns of the pairwise tests table.
TESTS_COLUMNS = (
    "config_a", "config_b", "n_paired", "sdsc_p", "sdsc_p_bonferroni", "vr_p", "vr_p_bonferroni",
    "detection_diff_pp", "detection_a_only", "detection_b_only", "detection_p", "detection_p_bonferroni",
)  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`.

    Args:
        table: one row per configuration, columns :data:`TABLE_COLUMNS`.
        tests: one row per pair (in input order, a before b), columns :data:`TESTS_COLUMNS`.
        excluded: names of the cases missed by every configuration.
    """

    table: pd.DataFrame
    tests: pd.DataFrame
    excluded: tuple[str, ...]


def as_bool(values, where: str):
    """A ``detected`` column (bools, or True/False/1/0 text as CSVs hold it) -> bool array.

    Raises:
        AttnDiluteError: a value that is not one of these, naming ``where``.
    """
    import pandas as pd

    series = pd.Series(values)
    if series.dtype == bool:
        return series.to_numpy()
    text = series.astype(str).str.strip().str.lower()
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    bad = sorted(set(text[~text.isin(list(mapping))]))
    if bad:
        raise AttnDiluteError(f"column `detected` has non-boolean values {bad[:5]}", path=where)
    return text.map(mapping).to_numpy(dtype=bool)


def _per_case(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check one configuration's table; return it indexed by case with sdsc, vr, detected."""
    if "case" not in frame.columns:
        raise AttnDiluteError("no `case` column", path=where)
    missing = [c for c in ("sdsc", "vr") if c not in frame.columns]
    if "detected" not in frame.columns and "dice" not in frame.columns:
        missing.append("detected")
    if missing:
        raise AttnDiluteError(f"missing column(s) {', '.join(missing)}", path=where)
    out = frame.assign(case=frame["case"].astype(str))
    dup = out["case"][out["case"].duplicated()].unique().tolist()
    if dup:
        raise AttnDiluteError(f"case(s) listed more than once: {', '.join(dup[:8])}", path=where)
    if "detected" in out.columns:
        out["detected"] = as_bool(out["detected"], where)
    else:  # §2.8: detected if Dice >= 0.1
        out["detected"] = out["dice"].to_numpy(dtype=float) >= 0.1
    return out.set_index("case")[["sdsc", "vr", "detected"]]


def _check_same_cases(frames: Mapping[str, pd.DataFrame]) -> list[str]:
    names = list(frames)
    union = sorted(set().union(*(set(f.index) for f in frames.values())))
    problems = []
    for name in names:
        absent = [c for c in union if c not in frames[name].index]
        if absent:
            shown = ", ".join(absent[:8]) + (f", ... ({len(absent) - 8} more)" if len(absent) > 8 else "")
            problems.append(f"{name} lacks {shown}")
    if problems:
        raise AttnDiluteError(
            "configurations have different case sets: " + "; ".join(problems),
            hint="evaluate every configuration on the same cases",
        )
    return union


def _quartiles(x: np.ndarray) -> tuple[float, float, float]:
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    q1, med, q3 = np.percentile(x, [25, 50, 75])  # numpy's default (linear) percentile
    return float(med), float(q1), float(q3)


def compare(tables: Mapping[str, pd.DataFrame], *, confidence: float = 0.95) -> Comparison:
    """Table 2 of the seed for any number of configurations evaluated on the same cases.

    Args:
        tables: configuration name -> per-case table with columns ``case, sdsc, vr, detected``
            (``detected`` may be replaced by ``dice``; detected means Dice >= 0.1).
        confidence: level of the Wilson interval on the detection rate.

    Returns:
        :class:`Comparison` with the summary table, the pairwise tests and the excluded cases.

    Raises:
        AttnDiluteError: fewer than one table, differing case sets (the cases are named), a
            missing column, or a detected case whose sDSC or VR is not a number.

    Its length is the docstring: the code is 53 lines.
    """
    import pandas as pd


    if not tables:
        raise AttnDiluteError("nothing to compare", hint="give at least one per-case CSV")
    frames = {name: _per_case(frame, name) for name, frame in tables.items()}
    cases = _check_same_cases(frames)
    names = list(frames)
    detected = np.stack([frames[n].loc[cases, "detected"].to_numpy(bool) for n in names], axis=1)  # (N, K)
    sdsc = np.stack([frames[n].loc[cases, "sdsc"].to_numpy(float) for n in names], axis=1)  # (N, K)
    vr = np.stack([frames[n].loc[cases, "vr"].to_numpy(float) for n in names], axis=1)  # (N, K)
    sdsc = np.where(detected, sdsc, MISSED_SDSC)  # §2.8 bounded penalties
    vr = np.where(detected, vr, MISSED_VR)
    keep = detected.any(axis=1)  # §2.8: exclude cases missed by every configuration
    for k, name in enumerate(names):
        bad = [c for c, s, v in zip(cases, sdsc[:, k], vr[:, k], strict=True) if not np.isfinite(s + v)]
        if bad:
            raise AttnDiluteError(
                f"detected case(s) without a finite sdsc/vr: {', '.join(bad[:8])}", path=name
            )

    n = len(cases)
    rows = []
    for k, name in enumerate(names):
        n_det = int(detected[:, k].sum())
        rate, low, high = stats.wilson_interval(n_det, n, confidence)
        rows.append(
            (name, *_quartiles(sdsc[keep, k]), *_quartiles(vr[keep, k]), rate, low, high,
             n_det, n, int((~keep).sum()))
        )  # fmt: skip
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))

    pairs = []
    for a, b in combinations(range(len(names)), 2):
        mc = stats.mcnemar_exact(detected[:, a], detected[:, b])
        pairs.append(
            {
                "config_a": names[a],
                "config_b": names[b],
                "n_paired": int(keep.sum()),
                "sdsc_p": stats.wilcoxon_p(sdsc[keep, a], sdsc[keep, b]),
                "vr_p": stats.wilcoxon_p(vr[keep, a], vr[keep, b]),
                "detection_diff_pp": 100.0 * (detected[:, b].mean() - detected[:, a].mean()),
                "detection_a_only": mc.a_only,
                "detection_b_only": mc.b_only,
                "detection_p": mc.p,
            }
        )
    tests = pd.DataFrame(pairs, columns=list(TESTS_COLUMNS))
    for metric in ("sdsc", "vr", "detection"):  # Bonferroni across all pairs of one metric
        tests[f"{metric}_p_bonferroni"] = stats.bonferroni(tests[f"{metric}_p"].to_numpy(float))
    excluded = tuple(c for c, k in zip(cases, keep, strict=True) if not k)
    return Comparison(table, tests, excluded)


def read_eval_csvs(
    paths: Sequence[str | Path], names: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Read per-case CSVs for :func:`compare`; names default to the file stems.

    Args:
        paths: ``evaluate`` CSVs, one per configuration.
        names: configuration names, one per path.

    Raises:
        AttnDiluteError: a missing or unreadable file, names that do not match the files, or a
            metric value that is not a number, out of range, or (``detected``) not a boolean;
            the message names the file, the column and the first bad line.
    """
    import pandas as pd

    paths = [Path(p) for p in paths]
    if names is None:
        names = [p.stem for p in paths]
    if len(names) != len(paths):
        raise AttnDiluteError(f"{len(names)} name(s) for {len(paths)} table(s)", hint="give one name per CSV")
    if len(set(names)) != len(names):
        raise AttnDiluteError(f"configuration names repeat: {', '.join(names)}", hint="pass --names a,b,...")
    out = {}
    for name, path in zip(names, paths, strict=True):
        if not path.is_file():
            raise AttnDiluteError("file not found", path=path)
        try:
            frame = pd.read_csv(path)
        except Exception as err:  # empty or malformed CSV
            raise AttnDiluteError(f"not a readable CSV ({type(err).__name__})", path=path) from None
        _check_metric_values(frame, path)
        out[name] = frame
    return out


#: Range of each metric column a per-case CSV may hold (NaN allowed: both masks empty, or an
#: empty reference for VR; :func:`compare` refuses NaN where a case counts as detected).
METRIC_RANGES = {"dice": (0.0, 1.0), "sdsc": (0.0, 1.0), "vr": (0.0, math.inf)}
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}


def _check_metric_values(frame: pd.DataFrame, path: Path) -> None:
    """Refuse a non-numeric or out-of-range metric, or a non-boolean ``detected``, naming the row.

    ``dice`` and ``sdsc`` must lie in [0, 1] and ``vr`` in [0, inf) (finite), each or be empty/NaN;
    ``detected`` must be true/false (or 1/0). Rows are reported as the CSV's line number (the
    header is line 1) and the case name. Columns that are absent are left to :func:`compare`.
    """
    import pandas as pd

    def fail(column: str, row: int, problem: str, hint: str):
        case = f" (case {frame['case'].iloc[row]!r})" if "case" in frame.columns else ""
        raise AttnDiluteError(
            f"column `{column}`, line {row + 2}{case}: {problem}", path=path, hint=hint
        )

    for column, (lo, hi) in METRIC_RANGES.items():
        if column not in frame.columns:
            continue
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        present = ~raw.isna().to_numpy()
        not_number = np.flatnonzero(present & np.isnan(values))
        if not_number.size:
            row = int(not_number[0])
            fail(column, row, f"{raw.iloc[row]!r} is not a number", "write numbers, or leave the cell empty")
        in_range = (values >= lo) & (values <= hi) & np.isfinite(values)
        out_of_range = np.flatnonzero(~np.isnan(values) & ~in_range)
        if out_of_range.size:
            row = int(out_of_range[0])
            bounds = f"[{lo:g}, {hi:g}]" if math.isfinite(hi) else f">= {lo:g} and finite"
            fail(column, row, f"{values[row]:g} is out of range (expected {bounds})",
                 "use the CSV that `attndilute evaluate` wrote")  # fmt: skip
    if "detected" in frame.columns:
        raw = frame["detected"]
        if raw.dtype != bool:
            text = raw.astype(str).str.strip().str.lower()
            bad = np.flatnonzero(~text.isin(list(_BOOL_TEXT)).to_numpy())
            if bad.size:
                row = int(bad[0])
                shown = "empty" if raw.isna().iloc[row] else repr(raw.iloc[row])
                fail("detected", row, f"{shown} is not a boolean", "write true/false (or 1/0)")


def pairwise_tests_path(out: str | Path) -> Path:
    """Where the pairwise tests go: ``T_tests.csv`` next to ``T.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_tests{out.suffix or '.csv'}")


def compare_files(
    paths: Sequence[str | Path],
    names: Sequence[str] | None = None,
    *,
    out: str | Path | None = None,
    confidence: float = 0.95,
    overwrite: bool = False,
) -> Comparison:
    """``attndilute compare``: :func:`compare` on CSV files; write ``T.csv`` and ``T_tests.csv``.

    Args:
        paths: per-case CSVs (``attndilute evaluate``), one per configuration.
        names: configuration names; default the file stems.
        out: the table CSV; the tests go to :func:`pairwise_tests_path` of it. None writes nothing.
            Both are claimed (:func:`attndilute._io.claim_files`): an existing file is replaced
            only if ``compare`` wrote it, or with ``overwrite``, and never when it is an input.
        confidence: level of the Wilson interval.
        overwrite: replace existing outputs that ``compare`` did not write.
    """
    if out is None:
        return compare(read_eval_csvs(paths, names), confidence=confidence)
    targets = [Path(out), pairwise_tests_path(out)]
    with claim_files(targets, "compare", overwrite=overwrite, files=list(paths)):
        result = compare(read_eval_csvs(paths, names), confidence=confidence)
        for frame, target in zip((result.table, result.tests), targets, strict=True):
            with atomic_path(target) as tmp:
                frame.to_csv(tmp, index=False)
    return result
