"""Read a results folder (the ``attndilute demo`` layout) into frames; absent inputs stay None.

Layout of a results folder ``D`` (every part optional; the same names work by hand)::

    D/data/phantom.csv                     attndilute phantom (any data folder; the CSV is optional)
    D/padstats.csv                         attndilute padstats
    D/runs/<config>/metrics.csv            attndilute train (+ best.safetensors, read for its crop)
    D/eval/<config>.csv                    attndilute evaluate
    D/eval/table.csv, table_tests.csv      attndilute compare
    D/adi/<config>/adi_stages.csv          attndilute adi
    D/cka/<name>/cka.zarr                  attndilute cka
    D/subtypes/features.csv, scores.csv    attndilute subtypes

Configurations are the folder and file names found under ``runs``, ``eval`` and ``adi``, never a
fixed list. A file that exists but cannot be read is recorded as a :class:`Problem` for its
section instead of stopping the report.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attndilute.errors import AttnDiluteError
from attndilute.evaluation.compare import compare
from attndilute.models.checkpoint import read_checkpoint_meta

if TYPE_CHECKING:
    import pandas as pd

#: Columns of ``adi_stages.csv`` (``attndilute adi``); ``scan, stage, adi`` are required.
ADI_COLUMNS = ("scan", "stage", "adi", "adi_input_pad", "adi_layout_pad", "padding_fraction")
#: Names under ``eval/`` that are ``attndilute compare`` outputs, not configurations.
TABLE_NAME, TESTS_NAME = "table.csv", "table_tests.csv"
#: What ``attndilute demo`` records about itself (variant, cases, epochs) for the report's banner.
DEMO_RECORD = "demo.json"
#: Checkpoints looked for in ``runs/<config>/`` for the configuration's crop and preset.
CHECKPOINTS = ("best.safetensors", "last.safetensors")


@dataclass(frozen=True)
class Problem:
    """An input that exists but could not be used.

    Args:
        section: report section key (``cohort``, ``segmentation``, ``adi``, ``subtypes``,
            ``cka``, ``training``).
        path: the file.
        message: what is wrong with it.
    """

    section: str
    path: Path
    message: str


@dataclass
class Run:
    """Everything the report reads from one results folder.

    Args:
        root: the results folder.
        configs: configuration names in report order.
        cohort: ``data/phantom.csv`` (case, split, subtype, extent_mm, ...), or None.
        padstats: ``padstats.csv`` (case, extent, padding_fraction, ...), or None.
        metrics: configuration -> ``metrics.csv`` (epoch, train_loss, val_dice, ...).
        meta: configuration -> checkpoint metadata (crop, preset, ...), where a checkpoint exists.
        evals: configuration -> per-case ``evaluate`` table.
        table: ``compare`` table (one row per configuration), or None.
        tests: ``compare`` pairwise tests, or None.
        table_computed: True when ``table``/``tests`` were computed here from ``evals``.
        adi: configuration -> ``adi_stages.csv`` with integer ``stage``.
        cka: comparison name -> ``xarray.Dataset`` (variable ``cka``).
        features: ``subtypes/features.csv``, or None.
        scores: ``subtypes/scores.csv``, or None.
        problems: inputs that exist but were unusable.
        demo: ``demo.json`` of an ``attndilute demo`` folder (variant, cases, epochs), or None.
    """

    root: Path
    configs: list[str] = field(default_factory=list)
    cohort: pd.DataFrame | None = None
    padstats: pd.DataFrame | None = None
    metrics: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    evals: dict[str, pd.DataFrame] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    tests: pd.DataFrame | None = None
    table_computed: bool = False
    adi: dict[str, pd.DataFrame] = field(default_factory=dict)
    cka: dict[str, Any] = field(default_factory=dict)
    features: pd.DataFrame | None = None
    scores: pd.DataFrame | None = None
    problems: list[Problem] = field(default_factory=list)
    demo: dict | None = None

    def problems_of(self, section: str) -> list[Problem]:
        """The problems recorded for one section."""
        return [p for p in self.problems if p.section == section]


def read_csv(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV and check its columns.

    Raises:
        AttnDiluteError: unreadable, empty, or missing a required column.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except Exception as err:  # pandas raises several types for empty or malformed files
        raise AttnDiluteError(f"not a readable CSV ({type(err).__name__})", path=path) from None
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise AttnDiluteError(f"missing column(s) {', '.join(absent)}", path=path)
    if frame.empty:
        raise AttnDiluteError("no rows", path=path)
    return frame


def _stage_numbers(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``stage`` as 0-based ints; accepts ``0, 1, ...`` and ``S0, S1, ...``."""
    match = frame["stage"].astype(str).map(lambda s: re.fullmatch(r"[sS]?(\d+)", s.strip()))
    if match.isna().any():
        raise AttnDiluteError("column `stage` must hold stage numbers (0, 1, ... or S0, S1, ...)", path=path)
    return frame.assign(stage=match.map(lambda m: int(m.group(1))), scan=frame["scan"].astype(str))


def read_eval(path: Path) -> pd.DataFrame:
    """A per-case ``evaluate`` table: ``case, sdsc, vr`` and ``detected`` or ``dice`` (§2.8)."""
    frame = read_csv(path, ("case", "sdsc", "vr"))
    if "detected" not in frame.columns and "dice" not in frame.columns:
        raise AttnDiluteError("missing column(s) detected (or dice)", path=path)
    return frame.assign(case=frame["case"].astype(str))


def read_adi(path: Path) -> pd.DataFrame:
    """``adi_stages.csv``: one row per scan and stage (``attndilute adi``).

    Returns:
        The frame with ``scan`` as str and ``stage`` as int; absent optional columns stay absent.
    """
    frame = _stage_numbers(read_csv(path, ADI_COLUMNS[:3]), path)
    if frame.duplicated(["scan", "stage"]).any():
        raise AttnDiluteError("expected one row per scan and stage", path=path)
    return frame


def read_cka(path: Path):
    """``cka.zarr`` written by ``attndilute cka`` as an in-memory ``xarray.Dataset``.

    Raises:
        AttnDiluteError: not a zarr store, or no ``cka (layer_a, layer_b)`` variable.
    """
    import xarray as xr

    try:
        ds = xr.open_zarr(path).load()
    except Exception as err:  # zarr/xarray raise many types for a damaged store
        raise AttnDiluteError(f"not a readable zarr store ({type(err).__name__})", path=path) from None
    if "cka" not in ds or tuple(ds["cka"].dims) != ("layer_a", "layer_b"):
        raise AttnDiluteError("no variable `cka` with dims (layer_a, layer_b)", path=path)
    for side in ("a", "b"):
        if f"label_{side}" not in ds.coords:
            ds = ds.assign_coords(
                {f"label_{side}": (f"layer_{side}", [str(v) for v in ds[f"layer_{side}"].values])}
            )
        if f"stage_{side}" not in ds.coords:
            ds = ds.assign_coords({f"stage_{side}": (f"layer_{side}", [-1] * ds.sizes[f"layer_{side}"])})
    return ds


def read_demo_record(path: Path) -> dict | None:
    """``demo.json`` as a dict; None when absent or not a JSON object (the banner then has less to say)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def discover_configs(root: Path, table: pd.DataFrame | None = None) -> list[str]:
    """Configuration names under ``runs/``, ``eval/`` and ``adi/``.

    Order: the ``compare`` table's rows first (the order the user compared them in), then the
    rest alphabetically.
    """
    found: set[str] = set()
    runs, adi, ev = root / "runs", root / "adi", root / "eval"
    if runs.is_dir():
        found |= {p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if adi.is_dir():
        found |= {p.name for p in adi.iterdir() if (p / "adi_stages.csv").is_file()}
    if ev.is_dir():
        found |= {
            p.stem
            for p in ev.glob("*.csv")
            if p.name not in (TABLE_NAME, TESTS_NAME) and not p.name.startswith(".")
        }
    first = [] if table is None or "config" not in table.columns else [str(c) for c in table["config"]]
    return [c for c in dict.fromkeys(first) if c in found] + sorted(found - set(first))


def _attempt(run: Run, section: str, path: Path, reader):
    """Call ``reader()``; on a user-fixable problem record it and return None."""
    try:
        return reader()
    except AttnDiluteError as err:
        run.problems.append(Problem(section, path, str(err)))
        return None


def load_run(root: str | Path) -> Run:
    """Read every part of a results folder that exists (cohort, evaluations, per-configuration
    runs, CKA, subtypes); an unreadable part is recorded as a problem of its section.

    Args:
        root: the results folder (``attndilute demo --out D``).

    Raises:
        AttnDiluteError: ``root`` does not exist or is not a folder.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise AttnDiluteError(
            "results folder does not exist", path=root, hint="run `attndilute demo --out FOLDER` first"
        )
    if not root.is_dir():
        raise AttnDiluteError("--run must be a folder", path=root)
    run = Run(root=root)
    run.demo = read_demo_record(root / DEMO_RECORD)
    _load_cohort(run)
    _load_tables(run)
    run.configs = discover_configs(root, run.table)
    for config in run.configs:
        _load_config(run, config)
    if run.table is None and run.evals:
        run.table, run.tests = _compare(run)
    _load_cka(run)
    _load_subtypes(run)
    return run


def _load_cohort(run: Run) -> None:
    phantom, pad = run.root / "data" / "phantom.csv", run.root / "padstats.csv"
    if phantom.is_file():
        run.cohort = _attempt(run, "cohort", phantom, lambda: read_csv(phantom, ("case",)))
    if pad.is_file():
        run.padstats = _attempt(
            run, "cohort", pad, lambda: read_csv(pad, ("case", "extent", "padding_fraction"))
        )


def _load_tables(run: Run) -> None:
    """``eval/table.csv`` and ``eval/table_tests.csv`` as ``compare`` wrote them."""
    for name, attr in ((TABLE_NAME, "table"), (TESTS_NAME, "tests")):
        path = run.root / "eval" / name
        if path.is_file():
            cols = ("config",) if attr == "table" else ("config_a", "config_b")
            setattr(run, attr, _attempt(run, "segmentation", path, lambda p=path, c=cols: read_csv(p, c)))


def _load_config(run: Run, config: str) -> None:
    """One configuration's training metrics, checkpoint header, per-case evaluation and ADI."""
    root = run.root
    metrics = root / "runs" / config / "metrics.csv"
    if metrics.is_file():
        frame = _attempt(run, "training", metrics, lambda p=metrics: read_csv(p, ("epoch", "train_loss")))
        if frame is not None:
            run.metrics[config] = frame
    for name in CHECKPOINTS:
        ckpt = root / "runs" / config / name
        if ckpt.is_file():
            meta = _attempt(run, "training", ckpt, lambda p=ckpt: read_checkpoint_meta(p))
            if meta:
                run.meta[config] = meta
            break
    per_case = root / "eval" / f"{config}.csv"
    if per_case.is_file():
        frame = _attempt(run, "segmentation", per_case, lambda p=per_case: read_eval(p))
        if frame is not None:
            run.evals[config] = frame
    stages = root / "adi" / config / "adi_stages.csv"
    if stages.is_file():
        frame = _attempt(run, "adi", stages, lambda p=stages: read_adi(p))
        if frame is not None:
            run.adi[config] = frame


def _load_cka(run: Run) -> None:
    cka_root = run.root / "cka"
    if cka_root.is_dir():
        for store in sorted(cka_root.glob("*/cka.zarr")):
            ds = _attempt(run, "cka", store, lambda p=store: read_cka(p))
            if ds is not None:
                run.cka[store.parent.name] = ds


def _load_subtypes(run: Run) -> None:
    features, scores = run.root / "subtypes" / "features.csv", run.root / "subtypes" / "scores.csv"
    if features.is_file():
        columns = ("case", "subtype", "contrast", "boundary_gradient")
        run.features = _attempt(run, "subtypes", features, lambda: read_csv(features, columns))
    if scores.is_file():
        indices = ("k", "silhouette", "calinski_harabasz", "davies_bouldin")
        run.scores = _attempt(run, "subtypes", scores, lambda: read_csv(scores, indices))


def _compare(run: Run):
    """Table 2 from the per-case tables when ``compare`` was not run (same §2.8 code)."""
    result = _attempt(run, "segmentation", run.root / "eval", lambda: compare(run.evals))
    if result is None:
        return None, None
    run.table_computed = True
    return result.table, result.tests
