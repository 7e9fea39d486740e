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

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from attndilute._io import atomic_path, claim_folder, fault_point, write_zarr
from attndilute.data import crop_or_pad, discover, preprocess, resolve_data
from attndilute.errors import AttnDiluteError
from attndilute.instrument import measure_adi
from attndilute.instrument.dataset import stage_table
from attndilute.instrument.reduce import SUMS_VERSION
from attndilute.names import model_label
from attndilute.resolved import Resolved, describe
from attndilute.store.parts import Parts
from attndilute.store.sources import InputSettings, input_settings, resolve_model
from attndilute.study.adi_figures import write_adi_html, write_adi_png
from attndilute.study.adi_summary import deepest_spearman, stage_summary
from attndilute.training import distributed

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
    forward_seconds: float = 0.0  # inside the model's (instrumented) forwards, this process


def _load_batch(cases, crop, spacing, in_channels):
    images, reals, pfs = [], [], []
    for case in cases:
        vol = crop_or_pad(preprocess(case, spacing=spacing), crop)
        image = torch.from_numpy(np.ascontiguousarray(vol.image))  # (X, Y, Z)
        images.append(image[None].expand(in_channels, *image.shape))
        reals.append(torch.from_numpy(np.ascontiguousarray(vol.real)))
        pfs.append(float(vol.padding_fraction))  # Eq. 4 from the axial extent
    return torch.stack(images), torch.stack(reals), pfs  # (B, C, X, Y, Z), (B, X, Y, Z), B


class _Batches(torch.utils.data.Dataset):
    """Batch i of the run: ``(names, images (B, C, X, Y, Z), real (B, X, Y, Z), padding fractions)``."""

    def __init__(self, batches, crop, spacing, in_channels):
        self.batches, self.crop, self.spacing, self.in_channels = batches, crop, spacing, in_channels

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        batch = self.batches[i]
        return ([c.name for c in batch], *_load_batch(batch, self.crop, self.spacing, self.in_channels))


def batch_loader(batches, crop, spacing, in_channels, workers: int):
    """Iterate the batches, preprocessed (and cached) by ``workers`` processes ahead of the model.

    With ``workers=0`` they load in this process, between forwards.
    """
    dataset = _Batches(batches, crop, spacing, in_channels)
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                       prefetch_factor=2 if workers else None, collate_fn=lambda b: b)


def run_adi(
    model: str,
    *,
    out: str | Path,
    data: str | Path | None = None,
    crop: Sequence[int] | None = None,
    heads: str = "per-head",
    windows: str = "pooled",
    batch_size: int = 2,
    device: str | None = "cpu",
    split: str = "all",
    autocast: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> ADIRun | None:
    """Measure ADI on every scan of a cohort and write ``O/adi.zarr``, CSV, PNG and HTML.

    Under ``torchrun`` the batches are dealt to the ranks (batch i to rank ``i mod N``, so every
    batch holds the scans it would hold in one process and the numbers are the same), each rank
    measures on its own device, and rank 0 gathers every batch's Dataset, commits it as a part
    and writes the outputs; an interrupted distributed run resumes from rank 0's parts like a
    single-process one.

    Args:
        model: checkpoint path or ``random:<preset>`` (seed-fixed random weights).
        out: output folder (claimed for ``adi``: see :func:`attndilute._io.claim_folder`).
        data: cohort folder; None -> the embedded phantom.
        crop: (X, Y, Z); default the checkpoint's training crop.
        heads: ``"per-head"`` or ``"mean-attention"``.
        windows: ``"pooled"`` (ratio of sums over windows) or ``"mean"`` (mean of per-window ADI).
        batch_size: scans per forward.
        device: torch device; ``auto``/None: this rank's CUDA device if any, else CPU.
        split: ``"all"``, ``"train"`` or ``"test"`` cases of the cohort.
        autocast: ``None``, ``"bf16"`` or ``"fp16"`` (entropy stays float32).
        seed: seed of ``random:`` weights.
        overwrite: write into a folder that holds other files (only this command's files are replaced).
        workers: processes that preprocess (and cache) the next batches while the model runs.
        progress: ``progress(done, total)`` after each batch (rank 0).
        announce: called (rank 0) with each line of the resolved settings before any work.

    Returns:
        The run on rank 0; None on the other ranks.
    """
    _check_options(heads, windows, batch_size, autocast, workers)
    ctx = distributed.setup(device)
    try:
        setup = _resolve(model, data, crop, split, seed, ctx.device)
        if announce is not None and ctx.main:
            for line in setup.lines(heads=heads, windows=windows, world=ctx.world):
                announce(line)
        with contextlib.ExitStack() as stack:
            claim = _claim_on_rank0(stack, out, overwrite, setup, ctx)
            return _measure_cohort(setup, claim, ctx, heads=heads, windows=windows, batch_size=batch_size,
                                   autocast=autocast, dtype=_AUTOCAST[autocast], workers=workers,
                                   progress=progress)
    finally:
        distributed.teardown(ctx)


_AUTOCAST = {None: None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _check_options(heads, windows, batch_size, autocast, workers) -> None:
    if heads not in ("per-head", "mean-attention"):
        raise AttnDiluteError(f"--heads must be per-head or mean-attention, got {heads!r}")
    if windows not in ("pooled", "mean"):
        raise AttnDiluteError(f"--windows must be pooled or mean, got {windows!r}")
    if batch_size < 1:
        raise AttnDiluteError(f"--batch-size must be >= 1, got {batch_size}")
    if workers < 0:
        raise AttnDiluteError(f"--workers must be >= 0, got {workers}")
    if autocast not in _AUTOCAST:
        raise AttnDiluteError(f"--autocast must be bf16 or fp16, got {autocast!r}")


@dataclass
class _Setup:
    """What an ``adi`` run resolved before measuring: model, crop, spacing, device, cohort."""

    model: str
    source: object  # attndilute.store.sources.ModelSource
    net: torch.nn.Module
    inputs: InputSettings  # crop, spacing, channels and what was defaulted
    device: torch.device
    root: Path
    cases: list

    def lines(self, *, heads: str, windows: str, world: int) -> list[str]:
        """The resolved settings, one line, then one ``warning:`` line per defaulted value."""
        family = self.source.meta.get("family") or type(self.net).__name__
        head, *warnings = describe("adi", Resolved(self.model, family, self.inputs.crop, self.inputs.spacing,
                                                   str(self.device), self.inputs.defaulted))
        return [head + (f" on each of {world} ranks" if world > 1 else "")
                + f", {len(self.cases)} scans from {self.root}, heads {heads}, windows {windows}", *warnings]


def _resolve(model, data, crop, split, seed, device) -> _Setup:
    source = resolve_model(model, seed=seed)
    inputs = input_settings(source, crop)
    net = source.model.to(device).eval()
    root = resolve_data(data)
    return _Setup(str(model), source, net, inputs, device, root, discover(root, split=split))


def _claim_on_rank0(stack, out, overwrite, setup: _Setup, ctx):
    """Rank 0 claims ``out`` (every rank learns whether it could); the claim, or None elsewhere."""
    refused, claim = None, None
    if ctx.main:
        model_file = [setup.model] if Path(setup.model).is_file() else []
        try:
            claim = stack.enter_context(claim_folder(out, "adi", overwrite=overwrite, cohorts=[setup.root],
                                                     files=model_file))
        except AttnDiluteError as err:
            refused = err
    if not distributed.broadcast_flag(refused is None, ctx):
        raise refused or AttnDiluteError("rank 0 could not claim the output folder", path=out)
    return claim


def _run_key(setup: _Setup, heads, windows, autocast) -> dict:
    return {
        "model": setup.source.model_hash,
        "data": str(setup.root.resolve()),
        "cases": [c.name for c in setup.cases],
        "crop": list(setup.inputs.crop),
        "spacing": list(setup.inputs.spacing),
        "heads": heads,
        "windows": windows,
        "autocast": autocast or "none",
        "sums": SUMS_VERSION,
    }


def _measure_cohort(setup: _Setup, claim, ctx, *, heads, windows, batch_size, autocast, dtype, workers,
                    progress) -> ADIRun | None:
    """Measure the scans rank 0 lacks, batch by batch over the ranks; rank 0 commits and writes."""
    t0 = time.perf_counter()
    key = _run_key(setup, heads, windows, autocast)
    parts = Parts(claim.path / PARTS, key) if ctx.main else None
    done = distributed.broadcast_object(sorted(parts.scans) if ctx.main else None, ctx)
    todo = [c for c in setup.cases if c.name not in set(done)]
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    mine = batches[ctx.rank :: ctx.world]
    steps = -(-len(batches) // ctx.world)
    inputs = setup.inputs
    loader = iter(batch_loader(mine, inputs.crop, inputs.spacing, inputs.in_channels, workers))
    forward = 0.0
    for step in range(steps):
        ds = None
        if step < len(mine):
            names, images, real, pfs = next(loader)
            t = time.perf_counter()
            ds = measure_batch(setup.net, images.to(setup.device), real.to(setup.device), names, pfs,
                               heads=heads, windows=windows, autocast=dtype)
            forward += time.perf_counter() - t
            ds.attrs.update(run_key=json.dumps(key), model=setup.model, crop=list(setup.inputs.crop),
                            spacing=list(setup.inputs.spacing),
                            padding_fraction_definition="Eq. 4: max(1 - L/C, 0), L the axial extent after "
                                                        "resampling, C the crop along Z")
        for part in distributed.gather_objects(ds, ctx):  # rank 0: every rank's batch, in rank order
            if part is not None:
                parts.commit(part)
        if ctx.main and progress is not None:
            progress(len(done) + sum(map(len, batches[: (step + 1) * ctx.world])), len(setup.cases))
    if not ctx.main:
        return None
    ds = parts.combine([c.name for c in setup.cases])
    stages = stage_table(ds)
    files = _write_outputs(ds, stages, claim.path, title=model_label(setup.model))
    parts.clear()
    deepest, rho, p = deepest_spearman(stages)
    return ADIRun(ds, stages, stage_summary(stages), (rho, p), files, resumed=len(done),
                  seconds=time.perf_counter() - t0, forward_seconds=forward)


def measure_batch(net, images, real, names, pfs, *, heads, windows="pooled", autocast=None):
    """One batch through :func:`attndilute.instrument.measure_adi`: the Dataset of those scans."""
    return measure_adi(net, images, real, heads=heads, windows=windows, scans=names, padding_fraction=pfs,
                       autocast_dtype=autocast)


def _write_outputs(ds, stages, out: Path, *, title: str) -> dict[str, Path]:
    """``adi.zarr``, ``adi_stages.csv``, ``adi.png``, ``adi.html``, each atomically."""
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

