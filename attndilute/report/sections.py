"""The report's sections in the seed's order, each built from whatever inputs exist.

Order (seed §3): cohort and padding (Table 1, §3.2.1), segmentation (Table 2, §3.1), attention
dilution (Fig. 4, §3.2.1), appearance subtypes (Fig. 5, Fig. A.1, §3.2.2), feature similarity
(Figs. 6, A.2, §3.3; Fig. 8 needs a trained Scratch model, docs/cka.md), training convergence
(Fig. 7). A section whose inputs are missing says which file is missing and which command
writes it; a section never raises for a missing or unreadable input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attndilute.evaluation.formatting import median_iqr, rate_interval, table_cells, tests_cells
from attndilute.names import model_label
from attndilute.report import figures, readings, summaries

if TYPE_CHECKING:
    from attndilute.report.load import Run


@dataclass(frozen=True)
class Text:
    """A paragraph."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table with an optional caption and reading."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    reading: str = ""


@dataclass(frozen=True)
class Figure:
    """A plotly figure with its one-sentence reading."""

    figure: Any
    reading: str
    caption: str = ""


@dataclass(frozen=True)
class DataTable:
    """A sortable table of raw rows with a CSV download (the per-scan table).

    Args:
        frame: the rows (pandas); numbers stay numbers, for sorting and for the CSV.
        filename: name of the downloaded CSV.
        caption: what the columns are.
    """

    frame: Any
    filename: str
    caption: str = ""


@dataclass(frozen=True)
class Missing:
    """An input that is absent (or unusable), with the command that produces it."""

    what: str
    path: str
    command: str = ""


@dataclass
class Section:
    """One section of the report.

    Args:
        key: short identifier (``cohort``, ``segmentation``, ``adi``, ``subtypes``, ``cka``,
            ``training``), also the HTML anchor.
        title: heading.
        cites: what of the seed it reproduces.
        blocks: content in order.
    """

    key: str
    title: str
    cites: str
    blocks: list = field(default_factory=list)

    @property
    def status(self) -> str:
        """``rendered`` (everything present), ``partial`` (something missing) or ``missing``."""
        shown = any(isinstance(b, Table | Figure | DataTable) for b in self.blocks)
        absent = any(isinstance(b, Missing) for b in self.blocks)
        return "partial" if shown and absent else "rendered" if shown else "missing"

    @property
    def n_figures(self) -> int:
        return sum(isinstance(b, Figure) for b in self.blocks)


def _rel(run: Run, *parts: str) -> str:
    return str(run.root.joinpath(*parts))


def _problems(run: Run, section: Section) -> None:
    for p in run.problems_of(section.key):
        section.blocks.append(Missing(f"unusable input: {p.message}", str(p.path)))


def _checkpoint(run: Run, config: str) -> str:
    return _rel(run, "runs", config, "best.safetensors")


# --- 1. cohort ------------------------------------------------------------------------------


def cohort_section(run: Run) -> Section:
    """Table 1 and the padding statistics of §3.2.1."""
    sec = Section("cohort", "Cohort and padding statistics", "seed Table 1 and §3.2.1")
    configs = summaries.config_table(run)
    if configs is not None:
        sec.blocks.append(Table(*configs, caption="Configurations (from each checkpoint's metadata)"))
    frame = summaries.cohort_frame(run)
    if frame is None:
        sec.blocks.append(
            Missing(
                "cohort table",
                _rel(run, "data", "phantom.csv"),
                f"attndilute phantom --out {_rel(run, 'data')}",
            )
        )
    else:
        sec.blocks.append(Table(*summaries.cohort_table(frame), caption="Cohort (median [IQR]; Table 1)"))
    if run.padstats is None:
        sec.blocks.append(
            Missing(
                "padding statistics",
                _rel(run, "padstats.csv"),
                f"attndilute padstats --data {_rel(run, 'data')} --crop X Y Z "
                f"--out {_rel(run, 'padstats.csv')}",
            )
        )
        if frame is not None:
            q1, med, q3 = np.percentile(frame["extent"].to_numpy(float), [25, 50, 75])
            sec.blocks.append(
                Figure(
                    figures.extent_histogram(frame, None),
                    readings.extent_reading(len(frame), med, q1, q3),
                    "Native axial extent of each scan (phantom.csv); the crop depth needs padstats.",
                )
            )
    else:
        s = summaries.padding_numbers(run.padstats)
        crop_z = summaries.crop_depth(run.padstats)
        reading = readings.padding_reading(
            s["n"],
            s["n_padded"],
            s["extent_median"],
            s["extent_q1"],
            s["extent_q3"],
            s["pf_mean"],
            s["pf_sd"],
            crop_z,
        )
        sec.blocks.append(
            Figure(
                figures.extent_histogram(frame, crop_z),
                reading,
                "Eq. 4: pf = max(1 − L/C, 0); the dashed line is the crop depth C.",
            )
        )
    _problems(run, sec)
    return sec


# --- 2. segmentation ------------------------------------------------------------------------


def _pair(tests, a: str, b: str):
    if tests is None:
        return None
    for row in tests.itertuples():
        if {str(row.config_a), str(row.config_b)} == {a, b}:
            return row
    return None


def segmentation_section(run: Run) -> Section:
    """Table 2 with Wilson intervals and paired tests, and the per-case sDSC."""
    sec = Section("segmentation", "Segmentation performance", "seed Table 2 and §3.1")
    for config in run.configs:
        if config not in run.evals:
            sec.blocks.append(
                Missing(
                    f"per-case evaluation of {config}",
                    _rel(run, "eval", f"{config}.csv"),
                    f"attndilute evaluate --pred PREDICTIONS --data {_rel(run, 'data')} "
                    f"--out {_rel(run, 'eval', config + '.csv')}",
                )
            )
    if run.table is None:
        if not run.configs:
            sec.blocks.append(
                Missing(
                    "per-case evaluations",
                    _rel(run, "eval", "CONFIG.csv"),
                    f"attndilute evaluate --pred PREDICTIONS --data {_rel(run, 'data')} "
                    f"--out {_rel(run, 'eval', 'CONFIG.csv')}",
                )
            )
        _problems(run, sec)
        return sec
    source = "computed here from eval/*.csv" if run.table_computed else "eval/table.csv"
    table = run.table
    sdsc = {str(r.config): float(r.sdsc_median) for r in table.itertuples()}
    rate = {str(r.config): float(r.detection_rate) for r in table.itertuples()}
    n_cases = {str(r.config): int(r.n) for r in table.itertuples()} if "n" in table.columns else None
    finite = {c: v for c, v in sdsc.items() if math.isfinite(v)}
    kwargs = {}
    if len(finite) > 1:
        best, worst = max(finite, key=finite.get), min(finite, key=finite.get)
        row = _pair(run.tests, best, worst)
        if row is not None:
            sign = 1.0 if str(row.config_b) == best else -1.0  # diff is b - a
            kwargs = {
                "sdsc_p": float(row.sdsc_p_bonferroni),
                "detection_diff_pp": sign * float(row.detection_diff_pp),
                "detection_p": float(row.detection_p),
            }
    reading = readings.segmentation_reading(sdsc, rate, n=n_cases, **kwargs)
    n_excluded = int(table["n_excluded"].iloc[0]) if "n_excluded" in table.columns else 0
    sec.blocks.append(Table(
        *table_cells(table), reading=reading,
        caption=f"sDSC and VR: median [IQR], missed cases = 0.1 / 10, {n_excluded} case(s) missed by every "
                f"configuration excluded; detection over all cases with a Wilson 95% interval ({source}).",
    ))  # fmt: skip
    if run.tests is not None and len(run.tests):
        sec.blocks.append(
            Table(
                *tests_cells(run.tests),
                caption="Paired tests: Wilcoxon signed-rank (Bonferroni across pairs), "
                "exact McNemar for detection; Δ detection = second − first, in percentage points.",
            )
        )
    per_case = {c: summaries.joined_cases(run, c) for c in run.configs if c in run.evals}
    if per_case:
        sec.blocks.append(
            Figure(
                figures.sdsc_boxes(per_case, run.configs),
                _paired(per_case, finite, reading),
                "Every case shown; missed cases (Dice < 0.1) at the penalty sDSC = 0.1.",
            )
        )
    _problems(run, sec)
    return sec


def _paired(per_case: dict, medians: dict[str, float], fallback: str) -> str:
    """The case-by-case reading of the best vs the worst configuration (by median sDSC)."""
    present = {c: v for c, v in medians.items() if c in per_case}
    if len(present) < 2:
        return fallback
    best, worst = max(present, key=present.get), min(present, key=present.get)
    if round(present[best], 3) == round(present[worst], 3):  # a tie: keep the report's order
        best, worst = list(present)[:2]
    a = per_case[best].set_index("case")["sdsc_penalized"]
    b = per_case[worst].set_index("case")["sdsc_penalized"]
    both = a.to_frame("a").join(b.to_frame("b"), how="inner").dropna()
    return readings.paired_reading(
        best, worst, int((both["a"] > both["b"]).sum()), int((both["a"] < both["b"]).sum()), len(both)
    )


# --- 3. attention dilution ------------------------------------------------------------------


def adi_section(run: Run) -> Section:
    """ADI per stage, by padding source, deepest stage and against padding fraction (Fig. 4)."""
    sec = Section("adi", "Attention dilution", "seed Fig. 4 and §3.2.1")
    for config in run.configs or ["CONFIG"]:
        if config not in run.adi:
            sec.blocks.append(
                Missing(
                    f"ADI of {config}",
                    _rel(run, "adi", config, "adi_stages.csv"),
                    f"attndilute adi --model {_checkpoint(run, config)} --data {_rel(run, 'data')} "
                    f"--out {_rel(run, 'adi', config)}",
                )
            )
    if not run.adi:
        _problems(run, sec)
        return sec
    configs = run.configs
    tables = {c: summaries.adi_stage_table(run.adi[c]) for c in configs if c in run.adi}
    stage_means = {
        c: dict(zip(t["stage"].astype(int), t["mean"].astype(float), strict=True)) for c, t in tables.items()
    }
    sec.blocks.append(
        Figure(
            figures.adi_stages(tables, configs),
            readings.adi_depth_reading(stage_means),
            "ADI (Eq. 7) averaged over each stage's blocks and heads per scan, then over scans.",
        )
    )
    split = {c: t for c, t in tables.items() if {"input_pad", "layout_pad"} <= set(t.columns)}
    if split:
        sec.blocks.append(
            Figure(
                figures.adi_sources(split),
                readings.layout_share_reading(summaries.layout_shares(run)),
                "Input padding: tokens of the volume's zero-padding; layout padding: tokens the "
                "implementation adds (window multiples, odd sizes).",
            )
        )
    stage = summaries.deepest_stage(run)
    deep = {c: summaries.deepest_adi(run.adi[c]) for c in tables if int(run.adi[c]["stage"].max()) == stage}
    means = {c: float(np.nanmean(d["adi"])) if d["adi"].notna().any() else math.nan for c, d in deep.items()}
    sds = {c: float(d["adi"].std()) if d["adi"].notna().sum() > 1 else 0.0 for c, d in deep.items()}
    counts = {c: int(d["adi"].notna().sum()) for c, d in deep.items()}
    sec.blocks.append(Figure(
        figures.adi_deepest(means, sds, stage, configs),
        readings.adi_reduction_reading(stage, means, counts, sds),
        "Bars: mean over scans; whiskers: ± sd, clipped to the index's range [0, 1].",
    ))  # fmt: skip
    with_pf = {c: d for c, d in deep.items() if "padding_fraction" in d.columns}
    if with_pf:
        trends = {
            c: summaries.trend(d["padding_fraction"], d["adi"], "padding fraction", "ADI")
            for c, d in with_pf.items()
        }
        sec.blocks.append(Figure(
            figures.adi_vs_padding(with_pf, trends, stage, configs),
            readings.trend_reading(f"Deepest-stage (S{stage}) ADI", "padding fraction", trends),
            "Each point is one scan; dotted lines are least-squares fits (drawn from "
            f"{figures.MIN_FIT_POINTS} scans on), rho is Spearman's.",
        ))  # fmt: skip
    per_case = {c: summaries.joined_cases(run, c) for c in configs if c in run.evals}
    per_case = {c: f for c, f in per_case.items() if "padding_fraction" in f.columns}
    if per_case:
        trends = {
            c: summaries.trend(f["padding_fraction"], f["sdsc_penalized"], "padding fraction", "sDSC")
            for c, f in per_case.items()
        }
        sec.blocks.append(Figure(
            figures.sdsc_by_padding(per_case, configs),
            readings.trend_reading("sDSC", "padding fraction", trends),
            "Padding fraction of each case under the cohort's crop (padstats), where available.",
        ))  # fmt: skip
    _problems(run, sec)
    return sec


# --- 4. subtypes ----------------------------------------------------------------------------


def subtypes_section(run: Run) -> Section:
    """Fig. 5, Fig. A.1 and detection / sDSC per subtype (§3.2.2)."""
    sec = Section("subtypes", "Appearance subtypes", "seed Fig. 5, Fig. A.1 and §3.2.2")
    command = f"attndilute subtypes --data {_rel(run, 'data')} --out {_rel(run, 'subtypes')}"
    if run.features is None:
        sec.blocks.append(Missing("subtype features", _rel(run, "subtypes", "features.csv"), command))
    else:
        f = run.features.assign(subtype=run.features["subtype"].astype(str))
        counts = f["subtype"].value_counts().to_dict()
        contrast = f.groupby("subtype")["contrast"].median().to_dict()
        gradient = f.groupby("subtype")["boundary_gradient"].median().to_dict()
        sec.blocks.append(
            Figure(
                figures.subtype_scatter(f),
                readings.subtype_reading(counts, contrast, gradient),
                "k-means on seven z-scored tumour features; clusters named by contrast.",
            )
        )
        if run.cohort is not None and "subtype" in run.cohort.columns:
            designed = run.cohort.assign(case=run.cohort["case"].astype(str)).set_index("case")["subtype"]
            both = f.assign(designed=f["case"].astype(str).map(designed)).dropna(subset=["designed"])
            if len(both):
                agree = int((both["designed"].astype(str) == both["subtype"]).sum())
                sec.blocks.append(Text(readings.subtype_agreement_reading(agree, len(both))))
    if run.scores is None:
        if run.features is not None:
            sec.blocks.append(Missing("cluster scores", _rel(run, "subtypes", "scores.csv"), command))
    else:
        s = run.scores
        pick = {
            col: dict(zip(s["k"].astype(int), s[col].astype(float), strict=True))
            for col in ("silhouette", "calinski_harabasz", "davies_bouldin")
        }
        sec.blocks.append(
            Figure(
                figures.cluster_scores(s),
                readings.cluster_choice_reading(
                    pick["silhouette"], pick["calinski_harabasz"], pick["davies_bouldin"]
                ),
                "k-means validity indices for k = 2..5: higher is better for silhouette and "
                "Calinski–Harabasz (↑), lower for Davies–Bouldin (↓).",
            )
        )
    perf = summaries.subtype_performance(run)
    if perf is not None:

        rows = [
            [
                r.config,
                f"Cluster-{r.subtype}",
                str(r.n),
                rate_interval(r.detection_rate, r.detection_low, r.detection_high)
                + f" ({r.n_detected}/{r.n})",
                median_iqr(r.sdsc_median, r.sdsc_q1, r.sdsc_q3),
            ]
            for r in perf.itertuples()
        ]
        det = {
            c: dict(zip(g["subtype"].astype(str), g["detection_rate"], strict=True))
            for c, g in perf.groupby("config", sort=False)
        }
        med = {
            c: dict(zip(g["subtype"].astype(str), g["sdsc_median"], strict=True))
            for c, g in perf.groupby("config", sort=False)
        }
        sizes = {
            c: dict(zip(g["subtype"].astype(str), g["n"].astype(int), strict=True))
            for c, g in perf.groupby("config", sort=False)
        }
        sec.blocks.append(
            Table(
                ["Configuration", "Subtype", "N", "Detection [95% CI]", "sDSC"],
                rows,
                caption="Per subtype: detection with Wilson 95% interval, sDSC median [IQR] (missed = 0.1).",
                reading=readings.subtype_gap_reading(det, med, sizes),
            )
        )
    _problems(run, sec)
    return sec


# --- 5. CKA ---------------------------------------------------------------------------------


def cka_section(run: Run) -> Section:
    """Diagonal CKA and drift of every comparison (Fig. 6 idea) and each heatmap (Fig. A.2).

    A comparison with ``init:A`` is a model against a random initialisation of its architecture:
    drift from initialisation. Seed Fig. 8 compares two *trained* models (CT-initialised and
    Scratch); the captions say so, and docs/cka.md shows how to produce it.
    """
    sec = Section("cka", "Feature similarity (CKA)", "seed Figs. 6, A.2 and §3.3; Fig. 8: docs/cka.md")
    if not run.cka:
        a, b = (run.configs + ["A", "B"])[:2] if len(run.configs) != 1 else (run.configs[0], "init:A")
        b_model = b if b.startswith("init:") else _checkpoint(run, b)
        name = f"{a}_vs_{b.replace('init:A', 'init')}"
        sec.blocks.append(
            Missing(
                "CKA comparisons",
                _rel(run, "cka", "NAME", "cka.zarr"),
                f"attndilute cka {_checkpoint(run, a)} {b_model} --data {_rel(run, 'data')} "
                f"--out {_rel(run, 'cka', name)}",
            )
        )
        _problems(run, sec)
        return sec
    diagonals = {name: summaries.cka_diagonal(ds) for name, ds in run.cka.items()}
    stage = max((int(d["stage"].max()) for d in diagonals.values() if len(d)), default=0)
    deepest = {n: summaries.stage_mean_cka(d, stage) for n, d in diagonals.items()}
    first = {n: summaries.stage_mean_cka(d, 0) for n, d in diagonals.items()}
    sec.blocks.append(
        Figure(
            figures.cka_diagonals(diagonals),
            readings.cka_drift_reading(stage, deepest, first),
            "Minibatch linear CKA (Eq. 9, unbiased HSIC Eq. 10) of matched layers; drift = 1 − CKA.",
        )
    )
    for name, ds in run.cka.items():
        d = diagonals[name]
        a = model_label(ds.attrs.get("model_a", "A"))
        b = model_label(ds.attrs.get("model_b", "B"), a)
        low, high = figures.cka_range(ds["cka"].values)
        sec.blocks.append(
            Figure(
                figures.cka_heatmap(ds, name, a, b),
                readings.cka_diagonal_reading(name, list(d["label"]), list(d["cka"])),
                f"A = {a}, B = {b}, {ds.attrs.get('n_scans', '?')} scans. Colour scale fitted to this "
                f"comparison: {low:.3f} (dark) to {high:.3f} (light)." + _init_note(ds),
            )
        )
    _problems(run, sec)
    return sec


def _init_note(ds) -> str:
    """What a comparison against ``init:`` weights shows (and that it is not seed Fig. 8)."""
    if not str(ds.attrs.get("model_b", "")).startswith("init:"):
        return ""
    return (" B is a random initialisation of A's architecture: this is A's drift from initialisation "
            "(the idea of seed Fig. 6), not Fig. 8, which compares a trained CT-initialised model with a "
            "trained Scratch model.")


# --- 6. training -----------------------------------------------------------------------------


def training_section(run: Run) -> Section:
    """Training loss and validation Dice per configuration (Fig. 7)."""
    sec = Section("training", "Training convergence", "seed Fig. 7 and §3.3")
    for config in run.configs or ["CONFIG"]:
        if config not in run.metrics:
            sec.blocks.append(
                Missing(
                    f"training metrics of {config}",
                    _rel(run, "runs", config, "metrics.csv"),
                    f"attndilute train --data {_rel(run, 'data')} --out {_rel(run, 'runs', config)} "
                    f"--preset PRESET",
                )
            )
    if run.metrics:
        metrics = {c: run.metrics[c] for c in run.configs if c in run.metrics}
        curves = {c: summaries.curve(m) for c, m in metrics.items()}
        sec.blocks.append(
            Figure(
                figures.training_curves(metrics, run.configs),
                readings.training_reading(curves),
                "Validation Dice is drawn on the epochs that were validated.",
            )
        )
    _problems(run, sec)
    return sec


# --- 7. per scan -----------------------------------------------------------------------------


def scans_section(run: Run) -> Section:
    """Every scan under every configuration: padding, stage ADI, Dice, sDSC, detection, subtype."""
    sec = Section("scans", "Per-scan results", "the per-case data behind Table 2 and Fig. 4")
    frame = summaries.per_scan_table(run)
    if frame is None:
        sec.blocks.append(
            Missing(
                "per-scan evaluations and ADI",
                _rel(run, "eval", "CONFIG.csv"),
                f"attndilute evaluate --pred PREDICTIONS --data {_rel(run, 'data')} "
                f"--out {_rel(run, 'eval', 'CONFIG.csv')}",
            )
        )
        return sec
    sec.blocks.append(DataTable(
        frame, "per_scan.csv",
        "One row per scan and configuration. Padding fraction: of the model's own input (Eq. 4); "
        "Sk ADI: stage ADI (Eq. 7, mean over the stage's blocks and heads); Dice and sDSC (2 mm) "
        "unpenalised; detected: Dice ≥ 0.1; subtype: appearance cluster. Click a header to sort.",
    ))  # fmt: skip
    return sec


#: Section builders in the seed's order, the per-scan table last.
SECTIONS = (
    cohort_section,
    segmentation_section,
    adi_section,
    subtypes_section,
    cka_section,
    training_section,
    scans_section,
)


def build_sections(run: Run) -> list[Section]:
    """Every section of the report, in order."""
    return [build(run) for build in SECTIONS]
