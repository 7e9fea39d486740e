"""Capture a cohort into activation stores: one preprocessed crop feeds every model.

The scans are preprocessed once (``attndilute.data.preprocess`` then ``crop_or_pad``, seed
§2.1 and Eq. 4) and each crop is run through every model whose store still lacks it, so two
models always see identical inputs. Capture starts at the first scan that some store is missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from attndilute.data import crop_or_pad, preprocess
from attndilute.store.activations import ActivationStore
from attndilute.store.capture import LayerCapture
from attndilute.training import distributed


def data_fingerprint(cases: Sequence) -> str:
    """SHA-256 over every case's name and image file bytes (labels are not used by capture).

    Args:
        cases: ``attndilute.data.Case`` objects (``name``, ``image``).
    """
    digest = hashlib.sha256()
    for case in cases:
        digest.update(case.name.encode() + b"\0")
        with open(case.image, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def scan_loader(cases: Sequence, *, crop: Sequence[int], spacing: Sequence[float], in_channels: int = 1,
                cache_dir: str | Path | None = None) -> Callable[[int], torch.Tensor]:
    """A function ``i -> (1, in_channels, X, Y, Z)`` float32: case ``i`` preprocessed and cropped.

    Args:
        cases: the cohort (``attndilute.data.discover``).
        crop: ``(X, Y, Z)`` for ``crop_or_pad``.
        spacing: preprocessing spacing in mm.
        in_channels: the models' input channels (the image is repeated).
        cache_dir: preprocessing cache folder (None: the default cache).
    """
    crop = tuple(int(c) for c in crop)
    spacing = tuple(float(s) for s in spacing)

    def load(i: int) -> torch.Tensor:
        vol = crop_or_pad(preprocess(cases[i], spacing=spacing, cache_dir=cache_dir), crop)
        image = torch.from_numpy(vol.image)  # (X, Y, Z)
        return image[None, None].expand(1, in_channels, *image.shape).contiguous()

    return load


def capture_into(
    jobs: Sequence[tuple[LayerCapture, ActivationStore]],
    load_scan: Callable[[int], torch.Tensor],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Fill every store, resuming at the first missing scan.

    Args:
        jobs: ``(capture, store)`` pairs; the capture's model produces the store's layers.
            Jobs that share a store object are run once.
        load_scan: ``i -> (1, C, X, Y, Z)`` input of scan ``i``.
        progress: called as ``progress(done, total)`` after each scan.

    Returns:
        The number of scans that were run through at least one model.
    """
    unique: list[tuple[LayerCapture, ActivationStore]] = []
    for cap, store in jobs:
        if all(store is not s for _, s in unique):
            unique.append((cap, store))
    total = max((s.n_scans for _, s in unique), default=0)
    start = min((s.n_complete for _, s in unique), default=total)
    for i in range(start, total):
        x = load_scan(i)  # (1, C, X, Y, Z)
        for cap, store in unique:
            if store.n_complete == i:
                store.write_scan(i, cap.run(x))
        if progress is not None:
            progress(i + 1 - start, total - start)
    return total - start


def capture_sharded(
    jobs: Sequence[tuple[LayerCapture, ActivationStore | None]],
    load_scan: Callable[[int], torch.Tensor],
    ctx,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """:func:`capture_into` over the ranks of a ``torchrun`` job: rank 0 owns the stores.

    Rank 0 says which scans each store lacks; scan ``start + k * N + r`` runs on rank r in round
    k, its pooled activations are gathered to rank 0, which writes them in scan order (so a store
    is always a prefix of complete scans, and a killed job resumes like a single process). The
    other ranks pass ``None`` for the stores.

    Args:
        jobs: ``(capture, store)`` pairs, the same captures on every rank; jobs sharing a store
            (rank 0) or a capture object run once.
        load_scan: ``i -> (1, C, X, Y, Z)``.
        ctx: the job (``attndilute.training.distributed.Dist``).
        progress: ``progress(done, total)`` on rank 0 after each round.
    """
    if ctx.world <= 1:
        return capture_into(jobs, load_scan, progress=progress)
    unique = []
    for j, (cap, store) in enumerate(jobs):
        if all(cap is not jobs[u][0] and (store is None or store is not jobs[u][1]) for u in unique):
            unique.append(j)
    plan = None
    if ctx.main:
        stores = {j: jobs[j][1] for j in unique}
        total = max((s.n_scans for s in stores.values()), default=0)
        plan = {"total": total, "from": {j: s.n_complete for j, s in stores.items()}}
    plan = distributed.broadcast_object(plan, ctx)
    total, start = plan["total"], min(plan["from"].values(), default=plan["total"])
    for first in range(start, total, ctx.world):
        i = first + ctx.rank
        mine = None
        if i < total:
            x = load_scan(i)  # (1, C, X, Y, Z)
            mine = (i, {j: jobs[j][0].run(x) for j in unique if plan["from"][j] <= i})
        for item in distributed.gather_objects(mine, ctx):  # rank 0: scans first .. first + N - 1
            if item is None:
                continue
            index, pooled = item
            for j, acts in pooled.items():
                if jobs[j][1].n_complete == index:
                    jobs[j][1].write_scan(index, acts)
        if ctx.main and progress is not None:
            progress(min(total, first + ctx.world) - start, total - start)
    return total - start
