"""Numbers the report shows, computed from a :class:`~attndilute.report.load.Run`.

One place for every summary, so the HTML report, its readings and the README table
(``examples/readme_assets.py``) agree: the front table (sDSC, VR, detection with its Wilson
interval, deepest-stage ADI), cohort statistics (Table 1), per-stage ADI (Fig. 4 A-C), Spearman
trends (Fig. 4 D), per-case joins (Fig. 4 E, §3.2.2), diagonal CKA (Fig. 6) and training curves.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from attndilute import stats
from attndilute.data.padstats import summarize
from attndilute.evaluation.compare import MISSED_SDSC, as_bool
from attndilute.evaluation.correlate import subtype_summary
from attndilute.evaluation.formatting import median_iqr, rate_interval, to_markdown
from attndilute.report.wording import Curve, Trend
from attndilute.store.cka_figures import diagonal_pairs

if TYPE_CHECKING:
    import pandas as pd

    from attndilute.report.load import Run

Cells = tuple[list[str], list[list[str]]]


def _median_iqr(values, digits: int = 2, unit: str = "") -> str:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return "n/a"
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"{med:.{digits}f}{unit} [{q1:.{digits}f}–{q3:.{digits}f}]"


def _range(values, digits: int = 1) -> str:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return "n/a"
    return f"{x.min():.{digits}f}–{x.max():.{digits}f}"


# --- cohort (Table 1, §3.2.1) ---------------------------------------------------------------


def crop_depth(padstats: pd.DataFrame) -> int | None:
    """The crop depth C behind a padstats table, from its padded rows (Eq. 4: C = L / (1 - pf)).

    Returns:
        C rounded to an integer, or None when no case is padded (C is then only bounded).
    """
    padded = padstats[padstats["padding_fraction"] > 0]
    if padded.empty:
        return None
    depth = padded["extent"].to_numpy(float) / (1.0 - padded["padding_fraction"].to_numpy(float))
    return int(round(float(np.median(depth))))


def padding_numbers(padstats: pd.DataFrame) -> dict:
    """The §3.2.1 summary (:func:`attndilute.data.padstats.summarize`) of a padstats table."""
    return summarize(padstats[["extent", "padding_fraction"]].to_dict("records"))


def cohort_frame(run: Run) -> pd.DataFrame | None:
    """One row per case: split, spacing, extent, padding fraction, subtype (what exists).

    Padstats supplies the extent after resampling and the padding fraction; ``phantom.csv``
    the split, designed subtype, tumour volume and, without padstats, spacing and extent (mm).
    """
    import pandas as pd

    if run.padstats is None and run.cohort is None:
        return None
    frame = pd.DataFrame()
    if run.padstats is not None:
        frame = run.padstats.assign(case=run.padstats["case"].astype(str)).set_index("case")
    if run.cohort is not None:
        cohort = run.cohort.assign(case=run.cohort["case"].astype(str)).set_index("case")
        if frame.empty:
            frame = cohort.rename(columns={"extent_mm": "extent"})
        else:
            extra = [c for c in ("split", "subtype", "tumor_volume_mm3") if c in cohort.columns]
            frame = frame.join(cohort[extra], how="left")
    if "split" not in frame.columns:
        frame["split"] = "all"
    return frame.reset_index()


def cohort_table(frame: pd.DataFrame) -> Cells:
    """Seed Table 1: N, in-plane spacing, slice thickness, native axial extent per split."""
    splits = [s for s in ("train", "test") if s in set(frame["split"])] or sorted(set(frame["split"]))
    groups = [(s, frame[frame["split"] == s]) for s in splits]
    if len(groups) > 1:
        groups.append(("all", frame))
    header = ["", *[name for name, _ in groups]]
    rows = [["N (scans)", *[str(len(g)) for _, g in groups]]]
    if "spacing_x" in frame.columns:
        rows.append(["In-plane resolution (mm)", *[_median_iqr(g["spacing_x"]) for _, g in groups]])
    if "spacing_z" in frame.columns:
        rows.append(["Slice thickness (mm)", *[_range(g["spacing_z"]) for _, g in groups]])
    rows.append(["Native axial extent after resampling", *[_median_iqr(g["extent"], 0) for _, g in groups]])
    if "padding_fraction" in frame.columns:
        rows.append(
            ["Scans needing padding", *[f"{int((g['padding_fraction'] > 0).sum())}" for _, g in groups]]
        )
    if "tumor_volume_mm3" in frame.columns:
        rows.append(
            ["Tumour volume (cm³)", *[_median_iqr(g["tumor_volume_mm3"] / 1000, 1) for _, g in groups]]
        )
    if "subtype" in frame.columns:
        names = sorted(set(frame["subtype"].dropna().astype(str)))
        rows.append(
            [
                "Designed subtypes",
                *[", ".join(f"{n} {int((g['subtype'] == n).sum())}" for n in names) for _, g in groups],
            ]
        )
    return header, rows


def config_table(run: Run) -> Cells | None:
    """Configuration, family, preset, crop and the best checkpoint's epoch and validation Dice,
    from each ``best.safetensors`` header (what ``attndilute train`` stores)."""
    if not run.meta:
        return None
    header = ["Configuration", "Family", "Preset", "Crop", "Checkpoint epoch", "Validation Dice"]
    rows = []
    for config in run.configs:
        meta = run.meta.get(config, {})
        crop, dice = meta.get("crop"), meta.get("val_dice")
        rows.append([
            config, str(meta.get("family", "–")), str(meta.get("preset", "–")),
            "×".join(str(c) for c in crop) if crop else "–", str(meta.get("epoch", "–")),
            f"{dice:.3f}" if isinstance(dice, int | float) and math.isfinite(dice) else "–",
        ])  # fmt: skip
    return header, rows


# --- attention dilution (Fig. 4) ------------------------------------------------------------


def adi_stage_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Cohort ADI per stage: mean and sd over scans (DESIGN §2), plus the per-source means.

    Args:
        frame: one configuration's ``adi_stages.csv``.

    Returns:
        Columns ``stage, mean, sd, n`` and, where the CSV has them, ``input_pad, layout_pad``.
    """
    grouped = frame.groupby("stage")
    out = grouped["adi"].agg(mean="mean", sd="std", n="count")
    for column, name in (("adi_input_pad", "input_pad"), ("adi_layout_pad", "layout_pad")):
        if column in frame.columns:
            out[name] = grouped[column].mean()
    return out.reset_index()


def deepest_stage(run: Run) -> int | None:
    """The deepest stage present in any configuration's ADI."""
    stages = [int(f["stage"].max()) for f in run.adi.values()]
    return max(stages) if stages else None


def deepest_adi(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-scan ADI of the configuration's own deepest stage: ``scan, adi, padding_fraction``."""
    rows = frame[frame["stage"] == frame["stage"].max()]
    columns = [c for c in ("scan", "adi", "padding_fraction") if c in rows.columns]
    return rows[columns].reset_index(drop=True)


def trend(x, y, x_name: str, y_name: str) -> Trend:
    """Spearman rho and p over the finite pairs (:func:`attndilute.stats.spearman`).

    ``constant`` names the variable without variation when rho is undefined.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    result = stats.spearman(x, y)
    constant = None
    if not math.isfinite(result.rho) and result.n >= 3:
        ok = np.isfinite(x) & np.isfinite(y)
        constant = x_name if np.ptp(x[ok]) == 0 else y_name if np.ptp(y[ok]) == 0 else None
    return Trend(result.rho, result.p, result.n, constant)


def layout_shares(run: Run) -> dict[tuple[str, int], tuple[float, float]]:
    """(configuration, stage) -> (mean layout-pad ADI, mean ADI), where the split is recorded."""
    shares = {}
    for config, frame in run.adi.items():
        table = adi_stage_table(frame)
        if "layout_pad" not in table.columns:
            continue
        for row in table.itertuples():
            shares[(config, int(row.stage))] = (float(row.layout_pad), float(row.mean))
    return shares


# --- per-case joins (Fig. 4 E, §3.2.2) ------------------------------------------------------


def penalized_sdsc(frame: pd.DataFrame) -> np.ndarray:
    """sDSC with the §2.8 penalty (0.1) for missed cases (Dice < 0.1 or ``detected`` False)."""
    sdsc = frame["sdsc"].to_numpy(float)
    if "detected" in frame.columns:
        detected = as_bool(frame["detected"], "detected")
    elif "dice" in frame.columns:
        detected = frame["dice"].to_numpy(float) >= 0.1
    else:
        return sdsc
    return np.where(detected, sdsc, MISSED_SDSC)


def detected(frame: pd.DataFrame) -> np.ndarray:
    """Detection per case: the ``detected`` column, else Dice >= 0.1 (§2.8)."""
    if "detected" in frame.columns:
        return as_bool(frame["detected"], "detected")
    return frame["dice"].to_numpy(float) >= 0.1


def joined_cases(run: Run, config: str) -> pd.DataFrame:
    """A configuration's per-case table with ``sdsc_penalized``, ``padding_fraction``,
    ``adi_deepest`` and ``subtype`` filled from the other inputs where ``evaluate`` did not join them.

    Padding fraction: the evaluate column, else padstats (the cohort's crop), else the ADI CSV
    (the model's own crop). Subtype: the evaluate column, else ``subtypes/features.csv``, else
    the phantom's designed subtype.
    """
    frame = run.evals[config].copy()
    cases = frame["case"].astype(str)
    frame["sdsc_penalized"] = penalized_sdsc(frame)

    def lookup(table: pd.DataFrame | None, key: str, column: str):
        if table is None or column not in table.columns:
            return None
        series = table.assign(**{key: table[key].astype(str)}).drop_duplicates(key).set_index(key)[column]
        values = cases.map(series)
        return None if values.isna().all() else values.to_numpy()

    deep = deepest_adi(run.adi[config]) if config in run.adi else None
    if "padding_fraction" not in frame.columns:
        for table, key in ((run.padstats, "case"), (deep, "scan")):
            values = lookup(table, key, "padding_fraction")
            if values is not None:
                frame["padding_fraction"] = values.astype(float)
                break
    if "adi_deepest" not in frame.columns:
        values = lookup(deep, "scan", "adi")
        if values is not None:
            frame["adi_deepest"] = values.astype(float)
    if "subtype" not in frame.columns:
        for table in (run.features, run.cohort):
            values = lookup(table, "case", "subtype")
            if values is not None:
                frame["subtype"] = values
                break
    return frame


def subtype_performance(run: Run) -> pd.DataFrame | None:
    """Detection (Wilson 95%) and sDSC median [IQR] per subtype and configuration (§3.2.2)."""
    import pandas as pd


    parts = []
    for config in run.configs:
        if config not in run.evals:
            continue
        frame = joined_cases(run, config)
        if "subtype" not in frame.columns:
            continue
        frame = frame[frame["subtype"].notna()]
        summary = subtype_summary(frame, frame["sdsc_penalized"].to_numpy(float), detected(frame))
        parts.append(summary.assign(config=config))
    return pd.concat(parts, ignore_index=True) if parts else None


# --- segmentation and the front table (Table 2) ---------------------------------------------


def front_table(run: Run) -> Cells | None:
    """The README/report front table: sDSC, VR, detection [Wilson 95%] and deepest-stage ADI.

    Rows: configurations of the ``compare`` table (or of the ADI when nothing was evaluated).
    sDSC and VR are median [IQR] with the §2.8 penalties and exclusions; ADI is the mean ± sd
    over scans of each configuration's deepest stage.
    """
    table = run.table
    configs = [str(c) for c in table["config"]] if table is not None else []
    configs += [c for c in run.configs if c in run.adi and c not in configs]
    if not configs:
        return None
    stages = {c: int(run.adi[c]["stage"].max()) for c in configs if c in run.adi}
    same = len(set(stages.values())) == 1
    header = [
        "Configuration",
        "sDSC median [IQR]",
        "VR median [IQR]",
        "Detection [95% CI]",
        f"ADI S{next(iter(stages.values()))} (mean ± sd)" if same and stages else "Deepest-stage ADI",
    ]
    rows = []
    by_config = {} if table is None else {str(r.config): r for r in table.itertuples()}
    for config in configs:
        r = by_config.get(config)
        cells = [config]
        if r is None:
            cells += ["–", "–", "–"]
        else:
            cells += [
                median_iqr(r.sdsc_median, r.sdsc_q1, r.sdsc_q3),
                median_iqr(r.vr_median, r.vr_q1, r.vr_q3),
                rate_interval(r.detection_rate, r.detection_low, r.detection_high)
                + f" ({r.n_detected}/{r.n})",
            ]
        if config in run.adi:
            values = deepest_adi(run.adi[config])["adi"].to_numpy(float)
            values = values[np.isfinite(values)]
            text = (
                f"{values.mean():.3f} ± {values.std(ddof=1) if values.size > 1 else 0.0:.3f}"
                if values.size
                else "n/a"
            )
            cells.append(text if same else f"{text} (S{stages[config]})")
        else:
            cells.append("–")
        rows.append(cells)
    return header, rows


def front_markdown(run: Run) -> str | None:
    """:func:`front_table` as a GitHub Markdown table."""
    cells = front_table(run)
    return None if cells is None else to_markdown(*cells)


# --- CKA (Figs. 6, A.2) ---------------------------------------------------------------------


def cka_diagonal(ds) -> pd.DataFrame:
    """Matched layer pairs of one comparison: ``label, stage, cka`` (shallow to deep)."""
    import pandas as pd


    values = ds["cka"].values  # (La, Lb)
    stages = ds["stage_a"].values
    rows = [(str(label), int(stages[i]), float(values[i, j])) for i, j, label in diagonal_pairs(ds)]
    return pd.DataFrame(rows, columns=["label", "stage", "cka"])


def stage_mean_cka(diagonal: pd.DataFrame, stage: int) -> float:
    """Mean diagonal CKA over the matched layers of one stage (NaN when it has none)."""
    values = diagonal.loc[diagonal["stage"] == stage, "cka"].to_numpy(float)
    return float(values.mean()) if values.size else math.nan


# --- training (Fig. 7) ----------------------------------------------------------------------


def curve(metrics: pd.DataFrame) -> Curve:
    """First/last training loss and best validation Dice of one ``metrics.csv``."""
    frame = metrics.sort_values("epoch")
    loss = frame["train_loss"].to_numpy(float)
    ok = np.isfinite(loss)
    best_dice, best_epoch, last_val, n_val = math.nan, -1, -1, 0
    if "val_dice" in frame.columns:
        val = frame[["epoch", "val_dice"]].dropna()
        n_val = len(val)
        if len(val) > 0:
            i = int(val["val_dice"].to_numpy(float).argmax())
            best_dice, best_epoch = float(val["val_dice"].iloc[i]), int(val["epoch"].iloc[i])
            last_val = int(val["epoch"].iloc[-1])
    return Curve(
        epochs=int(frame["epoch"].max()),
        loss_first=float(loss[ok][0]) if ok.any() else math.nan,
        loss_last=float(loss[ok][-1]) if ok.any() else math.nan,
        best_dice=best_dice,
        best_epoch=best_epoch,
        last_val_epoch=last_val,
        n_val=n_val,
    )


def training_records(run: Run) -> dict[str, tuple[int, float]]:
    """Configuration -> (epochs trained, best validation Dice) from ``metrics.csv``, else from the
    checkpoint header (``epoch``, ``val_dice``); NaN Dice when never validated."""
    records = {}
    for config in run.configs:
        if config in run.metrics:
            c = curve(run.metrics[config])
            records[config] = (c.epochs, c.best_dice)
        elif config in run.meta and "epoch" in run.meta[config]:
            dice = run.meta[config].get("val_dice")
            records[config] = (int(run.meta[config]["epoch"]), float(dice) if dice is not None else math.nan)
    return records


def smallest_group(run: Run) -> int | None:
    """Fewest cases behind one configuration's numbers: evaluated cases, else deepest-stage ADI scans."""
    sizes = []
    if run.table is not None and "n" in run.table.columns:
        sizes += [int(v) for v in run.table["n"]]
    elif run.adi:
        sizes += [int(deepest_adi(f)["adi"].notna().sum()) for f in run.adi.values()]
    return min(sizes) if sizes else None


# --- per-scan table --------------------------------------------------------------------------


def per_scan_table(run: Run) -> pd.DataFrame | None:
    """One row per (scan, configuration): subtype, padding fraction, stage ADI, Dice, sDSC, detected.

    Joins each configuration's ``eval/<config>.csv`` (Dice, sDSC, detection; :func:`joined_cases`
    fills subtype and padding fraction) with its ``adi_stages.csv`` pivoted to one column per
    stage (``S0 ADI`` ...). Padding fraction is the ADI CSV's (the model's own input) where
    present, else the evaluate table's. A scan measured by only one of the two keeps empty cells.

    Returns:
        Columns ``scan, configuration, subtype, padding_fraction, S0 ADI.., dice, sdsc, detected``
        (those that exist), rows in report order then by scan; None when nothing is per scan.
    """
    import pandas as pd

    parts = []
    for config in run.configs:
        frame = pd.DataFrame({"scan": pd.Series(dtype=str)})
        if config in run.evals:
            ev = joined_cases(run, config).rename(columns={"case": "scan"})
            ev = ev.assign(detected=detected(ev))
            keep = [c for c in ("scan", "subtype", "padding_fraction", "dice", "sdsc", "detected") if c in ev]
            frame = ev[keep]
        if config in run.adi:
            adi = run.adi[config]
            wide = adi.pivot(index="scan", columns="stage", values="adi")
            wide.columns = [f"S{int(s)} ADI" for s in wide.columns]
            if "padding_fraction" in adi.columns:
                wide["padding_fraction"] = adi.groupby("scan")["padding_fraction"].first()
            if "padding_fraction" in wide:  # the model's own input wins over the cohort's crop
                frame = frame.drop(columns=["padding_fraction"], errors="ignore")
            frame = frame.merge(wide.reset_index(), on="scan", how="outer")
        if len(frame):
            parts.append(frame.assign(configuration=config))
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True)
    stages = sorted((c for c in table.columns if c.endswith(" ADI")), key=lambda c: int(c[1:-4]))
    order = ["scan", "configuration", "subtype", "padding_fraction", *stages, "dice", "sdsc", "detected"]
    return table[[c for c in order if c in table.columns]]


def table_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (the per-scan table's download)."""
    return frame.to_csv(index=False, float_format="%.6g")
