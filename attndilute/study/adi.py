"""``attndilute adi``: ADI of a model on a cohort, resumable, with the seed's Fig. 4 A-D.

Every scan is preprocessed (seed §2.1), cropped or padded to the crop with its real mask (Eq. 4),
and measured online by :func:`attndilute.instrument.measure_adi` in batches. Each batch's Dataset
is committed as one part under ``O/.adi-parts`` (:class:`attndilute.store.parts.Parts`, keyed by
model, data, crop and head mode), so an interrupted run resumes with the scans it lacks and never
trusts a half-written batch. When all scans are measured the parts become ``O/adi.zarr``;
``O/adi_stages.csv``, ``O/adi.png`` and ``O/adi.html`` follow. ``O`` is claimed for ``adi``
(:func:`attndilute._io.claim_folder`): locked for the run, refused if it holds anything else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from attndilute._io import atomic_path, claim_folder, fault_point
from attndilute.devices import check_device
from attndilute.errors import AttnDiluteError
from attndilute.store.parts import Parts, write_zarr

PARTS = ".adi-parts"


@dataclass
class ADIRun:
    """What :func:`run_adi` produced."""

    dataset: object  # xarray.Dataset
    stages: object  # pandas.DataFrame, one row per scan and stage
    summary: object  # pandas.DataFrame, one row per stage
    spearman: tuple[float, float]  # deepest stage ADI vs padding fraction: (rho, p)
    files: dict[str, Path] = field(default_factory=dict)
    resumed: int = 0
    seconds: float = 0.0


def _load_batch(cases, crop, spacing, in_channels):
    from attndilute.data import crop_or_pad, preprocess

    images, reals, pfs = [], [], []
    for case in cases:
        vol = crop_or_pad(preprocess(case, spacing=spacing), crop)
        image = torch.from_numpy(np.ascontiguousarray(vol.image))  # (X, Y, Z)
        images.append(image[None].expand(in_channels, *image.shape))
        reals.append(torch.from_numpy(np.ascontiguousarray(vol.real)))
        pfs.append(float(vol.padding_fraction))  # Eq. 4 from the axial extent
    return torch.stack(images), torch.stack(reals), pfs  # (B, C, X, Y, Z), (B, X, Y, Z), B


def stage_summary(stages) -> object:
    """Mean, sd and n of stage ADI over scans (seed Fig. 4 A-D)."""
    grouped = stages.groupby("stage")
    out = grouped[["adi", "adi_input_pad", "adi_layout_pad"]].mean().add_prefix("mean_")
    out["sd_adi"] = grouped["adi"].std(ddof=1)
    out["n"] = grouped["adi"].count()
    return out.reset_index()


def layout_padding_note(summary) -> str:
    """Which stage columns hold layout padding (tokens the model adds to fill its windows).

    Layout padding is not the input's padding: the Swin UNETR window artifact (seed §3.2.1) puts
    ADI into stages whose grid is no multiple of the window, even with no padded slice at all.
    """
    rows = [f"S{int(r.stage)}" for r in summary.itertuples() if r.mean_adi_layout_pad > 0]
    if not rows:
        return "no stage has layout padding: every ADI column is input padding"
    return (f"{', '.join(rows)} include layout padding (tokens the model adds to fill its windows, "
            "column 'layout pad'; docs/adi.md, the window artifact)")


def deepest_spearman(stages) -> tuple[int, float, float]:
    """Spearman rho and p of the deepest stage's ADI versus padding fraction, over scans."""
    from attndilute.stats import spearman

    deepest = int(stages["stage"].max())
    d = stages[stages["stage"] == deepest]
    result = spearman(d["padding_fraction"].to_numpy(), d["adi"].to_numpy())
    return deepest, float(result.rho), float(result.p)


def run_adi(
    model: str,
    *,
    out: str | Path,
    data: str | Path | None = None,
    crop: Sequence[int] | None = None,
    heads: str = "per-head",
    windows: str = "pooled",
    batch_size: int = 2,
    device: str = "cpu",
    split: str = "all",
    autocast: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ADIRun:
    """Measure ADI on every scan of a cohort and write ``O/adi.zarr``, CSV, PNG and HTML.

    Args:
        model: checkpoint path or ``random:<preset>`` (seed-fixed random weights).
        out: output folder (claimed for ``adi``: see :func:`attndilute._io.claim_folder`).
        data: cohort folder; None -> the embedded phantom.
        crop: (X, Y, Z); default the checkpoint's training crop.
        heads: ``"per-head"`` or ``"mean-attention"``.
        windows: ``"pooled"`` (ratio of sums over windows) or ``"mean"`` (mean of per-window ADI).
        batch_size: scans per forward.
        device: torch device.
        split: ``"all"``, ``"train"`` or ``"test"`` cases of the cohort.
        autocast: ``None``, ``"bf16"`` or ``"fp16"`` (entropy stays float32).
        seed: seed of ``random:`` weights.
        overwrite: write into a folder that holds other files (only this command's files are replaced).
        progress: ``progress(done, total)`` after each batch.
    """
    from attndilute.data import discover, resolve_data
    from attndilute.instrument.dataset import stage_table
    from attndilute.models import check_crop
    from attndilute.store.sources import resolve_model

    t0 = time.perf_counter()
    if heads not in ("per-head", "mean-attention"):
        raise AttnDiluteError(f"--heads must be per-head or mean-attention, got {heads!r}")
    if windows not in ("pooled", "mean"):
        raise AttnDiluteError(f"--windows must be pooled or mean, got {windows!r}")
    if batch_size < 1:
        raise AttnDiluteError(f"--batch-size must be >= 1, got {batch_size}")
    dtypes = {None: None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if autocast not in dtypes:
        raise AttnDiluteError(f"--autocast must be bf16 or fp16, got {autocast!r}")
    device = check_device(device)
    source = resolve_model(model, seed=seed)
    meta = source.meta
    crop = tuple(int(c) for c in (crop or meta.get("crop") or ()))
    if len(crop) != 3:
        raise AttnDiluteError(f"{model}: the checkpoint records no crop", hint="pass --crop X Y Z")
    if hasattr(source.model, "crop_divisor"):
        check_crop(source.model, crop)
    spacing = tuple(float(s) for s in meta.get("spacing", (1.0, 1.0, 1.0)))
    in_channels = int(meta.get("kwargs", {}).get("in_channels", 1))
    net = source.model.to(device).eval()

    root = resolve_data(data)
    cases = discover(root, split=split)
    key = {
        "model": source.model_hash,
        "data": str(root.resolve()),
        "cases": [c.name for c in cases],
        "crop": list(crop),
        "spacing": list(spacing),
        "heads": heads,
        "windows": windows,
        "autocast": autocast or "none",
    }
    model_file = [model] if Path(str(model)).is_file() else []
    with claim_folder(out, "adi", overwrite=overwrite, cohorts=[root], files=model_file) as claim:
        parts = Parts(claim.path / PARTS, key)
        done = set(parts.scans)
        todo = [c for c in cases if c.name not in done]
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            images, real, pfs = _load_batch(batch, crop, spacing, in_channels)
            ds = measure_batch(net, images.to(device), real.to(device), [c.name for c in batch], pfs,
                               heads=heads, windows=windows, autocast=dtypes[autocast])
            ds.attrs.update(run_key=json.dumps(key), model=str(model), crop=list(crop), spacing=list(spacing),
                            padding_fraction_definition="Eq. 4: max(1 - L/C, 0), L the axial extent after "
                                                        "resampling, C the crop along Z")
            parts.commit(ds)
            if progress is not None:
                progress(len(done) + start + len(batch), len(cases))
        ds = parts.combine([c.name for c in cases])
        stages = stage_table(ds)
        files = _write_outputs(ds, stages, claim.path, title=Path(str(model)).stem)
        parts.clear()
    deepest, rho, p = deepest_spearman(stages)
    return ADIRun(ds, stages, stage_summary(stages), (rho, p), files, resumed=len(done),
                  seconds=time.perf_counter() - t0)


def measure_batch(net, images, real, names, pfs, *, heads, windows="pooled", autocast=None):
    """One batch through :func:`attndilute.instrument.measure_adi`: the Dataset of those scans."""
    from attndilute.instrument import measure_adi

    return measure_adi(net, images, real, heads=heads, windows=windows, scans=names, padding_fraction=pfs,
                       autocast_dtype=autocast)


def _write_outputs(ds, stages, out: Path, *, title: str) -> dict[str, Path]:
    """``adi.zarr``, ``adi_stages.csv``, ``adi.png``, ``adi.html``, each atomically."""
    from attndilute.study.adi_figures import write_adi_html, write_adi_png

    files = {"zarr": out / "adi.zarr", "csv": out / "adi_stages.csv", "png": out / "adi.png",
             "html": out / "adi.html"}
    write_zarr(ds, files["zarr"])
    fault_point("adi.zarr written")
    with atomic_path(files["csv"]) as tmp:
        stages.to_csv(tmp, index=False)
    fault_point("csv written")
    write_adi_png(stages, files["png"], title=title)
    fault_point("png written")
    write_adi_html(stages, files["html"], title=title)
    fault_point("html written")
    return files

