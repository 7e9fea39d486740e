"""Padding, attention dilution and accuracy: ``attndilute correlate`` (seed §3.2.1-3.2.2).

From one joined per-case table (``attndilute evaluate --padstats --adi --subtypes``):

- Spearman rho and p for padding fraction vs sDSC, deepest-stage ADI vs padding fraction, and
  deepest-stage ADI vs sDSC (§3.2.1, Fig. 4 D);
- sDSC per padding-fraction bin and per ADI bin (Fig. 4 E-F), drawn by
  :mod:`attndilute.evaluation.figures`;
- detection (Wilson 95%) and sDSC median [IQR] per appearance subtype (§3.2.2).

sDSC of missed cases gets the bounded penalty 0.1 (§2.8), as in every sDSC the seed reports;
``penalize=False`` uses the raw values (0 for an empty prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attndilute import stats
from attndilute._io import atomic_path, claim_folder, remove
from attndilute.errors import AttnDiluteError
from attndilute.evaluation.compare import MISSED_SDSC, as_bool
from attndilute.evaluation.figures import fig4_ef_html, fig4_ef_png

if TYPE_CHECKING:
    import pandas as pd

#: Pairs correlated when both columns are present: (x, y).
PAIRS = (("padding_fraction", "sdsc"), ("adi_deepest", "padding_fraction"), ("adi_deepest", "sdsc"))
#: Padding-fraction bin edges for Fig. 4 E; pf = 0 (cropped, no padding) is a bin of its own.
PF_EDGES = (0.25, 0.5)
#: Number of quantile bins of ADI for Fig. 4 F.
ADI_QUANTILES = 4


@dataclass(frozen=True)
class Correlations:
    """Result of :func:`correlate`.

    Args:
        correlations: rows ``x, y, rho, p, n``.
        binned: per case ``case, sdsc, pf_bin, adi_bin`` (bins are ordered categoricals; a
            column is absent when its variable is).
        subtypes: rows ``subtype, n, n_detected, detection_rate, detection_low,
            detection_high, sdsc_median, sdsc_q1, sdsc_q3``, or None without a subtype column.
    """

    correlations: pd.DataFrame
    binned: pd.DataFrame
    subtypes: pd.DataFrame | None


def _detected(frame: pd.DataFrame) -> np.ndarray | None:
    if "detected" in frame.columns:
        return as_bool(frame["detected"], "detected")
    if "dice" in frame.columns:
        return frame["dice"].to_numpy(float) >= 0.1  # §2.8
    return None


def pf_bins(pf: np.ndarray, edges: tuple[float, ...] = PF_EDGES) -> pd.Categorical:
    """Ordered padding-fraction bins: ``pf = 0``, ``0 < pf < e1``, ``e1 ≤ pf < e2``, ..., ``pf ≥ ek``."""
    import pandas as pd

    labels = ["pf = 0", f"0 < pf < {edges[0]:g}"]
    labels += [f"{lo:g} ≤ pf < {hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels += [f"pf ≥ {edges[-1]:g}"]
    pf = np.asarray(pf, dtype=float)
    index = np.where(pf <= 0, 0, 1 + np.digitize(pf, edges))
    codes = np.where(np.isfinite(pf), index, -1)
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True)


def adi_bins(adi: np.ndarray, quantiles: int = ADI_QUANTILES) -> pd.Categorical:
    """Ordered quantile bins of ADI, labelled with the range of the values in each (ties merge bins).

    Args:
        adi: deepest-stage ADI per case (NaN -> no bin).
        quantiles: number of quantile bins.
    """
    import pandas as pd

    adi = pd.Series(np.asarray(adi, dtype=float))
    if adi.dropna().nunique() < 2:
        codes = np.where(adi.notna(), 0, -1)
        return pd.Categorical.from_codes(codes, categories=["all"], ordered=True)
    codes = pd.qcut(adi, quantiles, labels=False, duplicates="drop").to_numpy()  # float, NaN -> no bin
    used = np.unique(codes[~np.isnan(codes)])
    labels = [f"{adi[codes == c].min():.3f}–{adi[codes == c].max():.3f}" for c in used]
    index = np.searchsorted(used, np.nan_to_num(codes, nan=-1))
    return pd.Categorical.from_codes(np.where(np.isnan(codes), -1, index), categories=labels, ordered=True)


def subtype_summary(frame: pd.DataFrame, sdsc: np.ndarray, detected: np.ndarray) -> pd.DataFrame:
    """Detection (Wilson 95%) and sDSC median [IQR] per subtype (§3.2.2)."""
    import pandas as pd


    rows = []
    subtype = frame["subtype"].astype(str).to_numpy()
    for name in sorted(set(subtype)):
        sel = subtype == name
        k, n = int(detected[sel].sum()), int(sel.sum())
        rate, low, high = stats.wilson_interval(k, n)
        q1, med, q3 = np.percentile(sdsc[sel], [25, 50, 75])
        rows.append((name, n, k, rate, low, high, float(med), float(q1), float(q3)))
    columns = ["subtype", "n", "n_detected", "detection_rate", "detection_low", "detection_high",
               "sdsc_median", "sdsc_q1", "sdsc_q3"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def correlate(frame: pd.DataFrame, *, penalize: bool = True) -> Correlations:
    """Spearman correlations, Fig. 4 E-F bins and per-subtype results of one per-case table.

    Args:
        frame: joined ``evaluate`` table: ``case, sdsc`` and ``detected`` (or ``dice``), with any
            of ``padding_fraction``, ``adi_deepest``, ``subtype``.
        penalize: give missed cases sDSC = 0.1 (§2.8) before correlating and summarising.

    Raises:
        AttnDiluteError: no ``sdsc`` column, or none of the columns to relate it to.
    """
    import pandas as pd


    if "sdsc" not in frame.columns or "case" not in frame.columns:
        raise AttnDiluteError("the per-case table needs `case` and `sdsc` columns")
    present = [c for c in ("padding_fraction", "adi_deepest", "subtype") if c in frame.columns]
    if not present:
        raise AttnDiluteError(
            "no padding_fraction, adi_deepest or subtype column to relate sDSC to",
            hint="run `attndilute evaluate` with --padstats, --adi and/or --subtypes",
        )
    detected = _detected(frame)
    sdsc = frame["sdsc"].to_numpy(float)
    if penalize and detected is not None:
        sdsc = np.where(detected, sdsc, MISSED_SDSC)  # §2.8 bounded penalty
    values = {c: frame[c].to_numpy(float) for c in ("padding_fraction", "adi_deepest") if c in present}
    values["sdsc"] = sdsc
    rows = []
    for x, y in PAIRS:
        if x in values and y in values:
            r = stats.spearman(values[x], values[y])
            rows.append((x, y, r.rho, r.p, r.n))
    correlations = pd.DataFrame(rows, columns=["x", "y", "rho", "p", "n"])
    binned = pd.DataFrame({"case": frame["case"].astype(str).to_numpy(), "sdsc": sdsc})
    if "padding_fraction" in values:
        binned["pf_bin"] = pf_bins(values["padding_fraction"])
    if "adi_deepest" in values:
        binned["adi_bin"] = adi_bins(values["adi_deepest"])
    subtypes = None
    if "subtype" in present:
        if detected is None:
            raise AttnDiluteError("per-subtype detection needs a `detected` or `dice` column")
        subtypes = subtype_summary(frame, sdsc, detected)
    return Correlations(correlations, binned, subtypes)


def read_eval_csv(path: str | Path) -> pd.DataFrame:
    """Read a joined per-case CSV written by ``attndilute evaluate``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise AttnDiluteError("file not found", path=path)
    try:
        return pd.read_csv(path)
    except Exception as err:  # empty or malformed CSV
        raise AttnDiluteError(f"not a readable CSV ({type(err).__name__})", path=path) from None


def correlate_file(
    eval_csv: str | Path, out: str | Path | None = None, *, penalize: bool = True, overwrite: bool = False
) -> tuple[Correlations, Path]:
    """``attndilute correlate``: :func:`correlate` on a CSV; write its tables and Fig. 4 E-F.

    Writes ``correlations.csv``, ``binned.csv``, ``subtypes.csv`` (with a subtype column),
    ``fig4_ef.png`` and ``fig4_ef.html`` (when pf or ADI is present) into ``out``, each atomically.

    Args:
        eval_csv: joined per-case CSV from ``attndilute evaluate``.
        out: output folder; default ``<eval_csv stem>_correlate`` next to the CSV.
        penalize: give missed cases sDSC = 0.1 (§2.8).
        overwrite: write into a folder that holds other files (only this command's files are replaced);
            the folder is claimed for ``correlate`` (:func:`attndilute._io.claim_folder`).

    Returns:
        The result and the folder written.
    """
    eval_csv = Path(eval_csv)
    out = eval_csv.with_name(f"{eval_csv.stem}_correlate") if out is None else Path(out)
    result = correlate(read_eval_csv(eval_csv), penalize=penalize)
    tables = {"correlations.csv": result.correlations, "binned.csv": result.binned,
              "subtypes.csv": result.subtypes}
    with claim_folder(out, "correlate", overwrite=overwrite, files=[eval_csv]) as claim:
        for name, table in tables.items():
            if table is not None:
                with atomic_path(claim.path / name) as tmp:
                    table.to_csv(tmp, index=False)
            elif claim.earlier:  # an earlier run's table that this result does not have
                remove(claim.path / name)
        if {"pf_bin", "adi_bin"} & set(result.binned.columns):
            title = f"sDSC by padding and dilution — {eval_csv.stem}"
            fig4_ef_png(result.binned, claim.path / "fig4_ef.png", title=title)
            fig4_ef_html(result.binned, claim.path / "fig4_ef.html", title=title)
        elif claim.earlier:
            for name in ("fig4_ef.png", "fig4_ef.html"):
                remove(claim.path / name)
    return result, out
