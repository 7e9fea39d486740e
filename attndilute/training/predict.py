"""``attndilute predict``: masks on each source image's grid (seed §2.5.1 inference).

For every case: preprocess at the model's spacing (seed §2.1), zero-pad to at least the crop
(real mask carried), sliding window at the model's training crop with 50% overlap, Gaussian
blending and horizontal-flip TTA, argmax, then :func:`attndilute.data.to_source` back to the
source grid and affine. ``OUT/NAME.nii.gz`` (uint8, 1 = tumour) is what ``attndilute evaluate --pred OUT``
reads; with ``probabilities=True`` the tumour probability goes to
``OUT/probabilities/NAME.nii.gz`` (float32, resampled linearly).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attndilute import models
from attndilute._io import atomic_path, claim_folder, remove, tmp_name
from attndilute.data import check_preprocessing, discover, preprocess, resolve_data, to_source
from attndilute.devices import resolve_device
from attndilute.errors import AttnDiluteError
from attndilute.training.inference import check_blend, sliding_window_probs
from attndilute.training.pipeline import pad_to_crop


def predict(
    model: str | Path | nn.Module,
    data: str | Path | None,
    out: str | Path,
    *,
    split: str = "test",
    probabilities: bool = False,
    progress: bool | Callable[[Iterable], Iterable] = True,
    overlap: float = 0.5,
    tta: bool = True,
    sw_batch_size: int = 4,
    blend: str = "gaussian",
    overwrite: bool = False,
    device: str | torch.device | None = None,
) -> list[Path]:
    """Segment every case of ``data``'s ``split`` and write masks in the source geometry.

    Args:
        model: a checkpoint path (any format :func:`attndilute.models.load` reads; the crop and
            spacing come from its header) or a model with ``attndilute_meta``.
        data: data folder; None -> the embedded phantom. Labels are not needed.
        out: output folder of ``NAME.nii.gz`` masks, claimed for ``predict``
            (:func:`attndilute._io.claim_folder`; never inside the input cohort). The cases are
            written into a temporary folder first and moved in only when all succeeded; masks of
            an earlier ``predict`` run there are replaced.
        split: ``"test"``, ``"train"`` or ``"all"``.
        probabilities: also write tumour probabilities under ``out/probabilities/``.
        progress: a progress bar on a terminal (True), none (False), or a wrapper ``f(iterable)``.
        overlap: sliding-window overlap (seed: 0.5).
        tta: horizontal-flip test-time augmentation (seed: on).
        sw_batch_size: windows per forward.
        blend: ``gaussian`` or ``constant`` window blending
            (:func:`attndilute.training.inference.sliding_window_probs`).
        overwrite: write into a folder that holds other files (only same-named masks are replaced).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``/None (CUDA when available).

    Returns:
        the mask paths written, in case order.

    Its length is the documented signature: the code is 33 lines.
    """
    check_blend(blend)  # before anything is read or written
    device = resolve_device(device)
    source = None if isinstance(model, nn.Module) else model
    if source is not None:
        model = models.load(source)
    meta = getattr(model, "attndilute_meta", None) or {}
    check_preprocessing(meta, source)
    if "crop" not in meta or "spacing" not in meta:
        raise AttnDiluteError(
            "the model has no crop/spacing in its metadata", hint="build or load it with attndilute.models"
        )
    crop = tuple(int(c) for c in meta["crop"])
    spacing = tuple(float(s) for s in meta["spacing"])
    models.check_crop(model, crop)
    model = model.to(device).eval()
    root = resolve_data(None if data is None else Path(data))
    cases = discover(root, split=split)
    inputs = [source] if source is not None else []
    with claim_folder(out, "predict", overwrite=overwrite, cohorts=[root], files=inputs) as claim:
        out = claim.path
        stage = tmp_name(out / "masks")  # inside the claimed folder; all cases or none reach ``out``
        remove(stage)
        try:
            names = _predict_into(stage, model, cases, crop, spacing, device, probabilities, progress,
                                  overlap=overlap, tta=tta, sw_batch_size=sw_batch_size,
                                  blend=blend)
            for file in sorted(stage.rglob("*.nii.gz")):
                dest = out / file.relative_to(stage)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, dest)
        finally:
            remove(stage)
    return [out / name for name in names]


def _predict_into(out, model, cases, crop, spacing, device, probabilities, progress, *, overlap, tta,
                  sw_batch_size, blend) -> list[str]:  # fmt: skip
    """Masks (and probabilities) of ``cases`` written into the folder ``out``; their file names."""
    out.mkdir(parents=True)
    written = []
    for case in _wrap(progress)(cases):
        vol = pad_to_crop(preprocess(case, spacing=spacing), crop)
        image = torch.from_numpy(vol.image)[None, None]  # (1, 1, X, Y, Z)
        real = torch.from_numpy(vol.real)[None]  # (1, X, Y, Z)
        probs = sliding_window_probs(
            model, image, real, crop, overlap=overlap, tta=tta, sw_batch_size=sw_batch_size, device=device,
            blend=blend,
        )[0]  # (K, X, Y, Z)
        mask = (probs.argmax(0).numpy() == 1).astype(np.uint8) * vol.real  # padding is never tumour
        path = out / f"{case.name}.nii.gz"
        write_nifti(to_source(mask.astype(np.uint8), vol, mode="nearest"), vol.source_affine, path)
        if probabilities:
            tumour = (probs[1].numpy() * vol.real).astype(np.float32)
            prob_path = out / "probabilities" / f"{case.name}.nii.gz"
            write_nifti(to_source(tumour, vol, mode="bilinear"), vol.source_affine, prob_path)
        written.append(path.name)
    return written


def write_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    """Write ``array`` (X, Y, Z) with ``affine`` as qform and sform (code 1, mm), atomically."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        gz = tmp.with_name(tmp.name + ".nii.gz")  # nibabel compresses by the suffix
        try:
            nib.save(img, str(gz))
            gz.rename(tmp)
        finally:
            gz.unlink(missing_ok=True)
    return path


def _wrap(progress):
    if callable(progress):
        return progress
    if not progress:
        return lambda seq: seq
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    if not console.is_terminal:
        return lambda seq: seq
    return lambda seq: track(seq, description="predicting", console=console, transient=True)
