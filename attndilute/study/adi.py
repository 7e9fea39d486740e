"""``attndilute adi``: ADI of a model on a cohort, resumable, with the seed's Fig. 4 A-D.

Every scan is preprocessed (seed §2.1), cropped or padded to the crop with its real mask (Eq. 4),
and measured online by :func:`attndilute.instrument.measure_adi` in batches. Each batch's Dataset
is appended along ``scan`` to ``O/.adi.zarr.partial`` (keyed by model, data, crop and head mode),
so an interrupted run resumes at the first scan it lacks; the store is renamed to ``O/adi.zarr``
when complete. ``O/adi_stages.csv``, ``O/adi.png`` and ``O/adi.html`` follow.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from attndilute._io import atomic_path
from attndilute.errors import AttnDiluteError

PARTIAL = ".adi.zarr.partial"


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


def _open_partial(path: Path, key: dict) -> list[str]:
    """Scans already in a matching partial store; a store with another key is removed."""
    import xarray as xr

    if not path.exists():
        return []
    try:
        ds = xr.open_zarr(path, consolidated=False)
        if json.loads(ds.attrs.get("run_key", "{}")) == key:
            return [str(s) for s in ds["scan"].values]
    except Exception:  # noqa: BLE001 - an unreadable partial store is rebuilt, never trusted
        pass
    shutil.rmtree(path)
    return []


def _append(ds, path: Path, first: bool) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        if first:
            ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False)
        else:
            ds.to_zarr(path, append_dim="scan", zarr_format=3, consolidated=False)


def _consolidate(path: Path) -> None:
    """Consolidate the store's metadata so a plain ``xr.open_zarr`` opens it quietly."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(path))


def stage_summary(stages) -> object:
    """Mean, sd and n of stage ADI over scans (seed Fig. 4 A-D)."""
    grouped = stages.groupby("stage")
    out = grouped[["adi", "adi_input_pad", "adi_layout_pad"]].mean().add_prefix("mean_")
    out["sd_adi"] = grouped["adi"].std(ddof=1)
    out["n"] = grouped["adi"].count()
    return out.reset_index()


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
    batch_size: int = 2,
    device: str = "cpu",
    split: str = "all",
    autocast: str | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ADIRun:
    """Measure ADI on every scan of a cohort and write ``O/adi.zarr``, CSV, PNG and HTML.

    Args:
        model: checkpoint path or ``random:<preset>`` (seed-fixed random weights).
        out: output folder.
        data: cohort folder; None -> the embedded phantom.
        crop: (X, Y, Z); default the checkpoint's training crop.
        heads: ``"per-head"`` or ``"mean-attention"``.
        batch_size: scans per forward.
        device: torch device.
        split: ``"all"``, ``"train"`` or ``"test"`` cases of the cohort.
        autocast: ``None``, ``"bf16"`` or ``"fp16"`` (entropy stays float32).
        seed: seed of ``random:`` weights.
        progress: ``progress(done, total)`` after each batch.
    """
    import xarray as xr

    from attndilute.data import discover, resolve_data
    from attndilute.instrument import measure_adi
    from attndilute.instrument.dataset import stage_table
    from attndilute.models import check_crop
    from attndilute.store.sources import resolve_model

    t0 = time.perf_counter()
    if heads not in ("per-head", "mean-attention"):
        raise AttnDiluteError(f"--heads must be per-head or mean-attention, got {heads!r}")
    if batch_size < 1:
        raise AttnDiluteError(f"--batch-size must be >= 1, got {batch_size}")
    dtypes = {None: None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if autocast not in dtypes:
        raise AttnDiluteError(f"--autocast must be bf16 or fp16, got {autocast!r}")
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
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    key = {
        "model": source.model_hash,
        "data": str(root.resolve()),
        "cases": [c.name for c in cases],
        "crop": list(crop),
        "spacing": list(spacing),
        "heads": heads,
        "autocast": autocast or "none",
    }
    partial = out / PARTIAL
    done = _open_partial(partial, key)
    todo = [c for c in cases if c.name not in set(done)]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        images, real, pfs = _load_batch(batch, crop, spacing, in_channels)
        ds = measure_adi(
            net,
            images.to(device),
            real.to(device),
            heads=heads,
            scans=[c.name for c in batch],
            padding_fraction=pfs,
            autocast_dtype=dtypes[autocast],
        )
        ds.attrs.update(run_key=json.dumps(key), model=str(model), crop=list(crop), spacing=list(spacing))
        _append(ds, partial, first=not partial.exists())
        if progress is not None:
            progress(len(done) + start + len(batch), len(cases))

    final = out / "adi.zarr"
    if final.exists():
        shutil.rmtree(final)
    _consolidate(partial)
    partial.rename(final)
    ds = xr.open_zarr(final, consolidated=True).load()
    stages = stage_table(ds)
    files = {"zarr": final, "csv": out / "adi_stages.csv", "png": out / "adi.png", "html": out / "adi.html"}
    with atomic_path(files["csv"]) as tmp:
        stages.to_csv(tmp, index=False)
    summary = stage_summary(stages)
    deepest, rho, p = deepest_spearman(stages)
    from attndilute.study.adi_figures import write_adi_html, write_adi_png

    write_adi_png(stages, files["png"], title=Path(str(model)).stem)
    write_adi_html(stages, files["html"], title=Path(str(model)).stem)
    return ADIRun(ds, stages, summary, (rho, p), files, resumed=len(done), seconds=time.perf_counter() - t0)
