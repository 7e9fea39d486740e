"""``attndilute cka``: capture two models (or reuse their stores), then minibatch CKA (seed §2.7).

Minibatch CKA (Eq. 9) with the unbiased HSIC_1 (Eq. 10) over minibatches of scans, shuffled per
epoch as in Nguyen et al. (2021). The result is an xarray Dataset, variable ``cka`` with dims
``(layer_a, layer_b)``, written to ``O/cka.zarr`` with the figures next to it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from attndilute._io import LOCK, claim_folder, fault_point, hold_lock, write_zarr
from attndilute.cka import MinibatchCKA
from attndilute.data import discover, resolve_data
from attndilute.errors import AttnDiluteError
from attndilute.store.activations import ActivationStore, StoreKey
from attndilute.store.capture import LayerCapture
from attndilute.store.cka_figures import write_diagonal_png, write_heatmap_png, write_html
from attndilute.store.cohort import capture_sharded, data_fingerprint, scan_loader
from attndilute.store.layers import LayerSpec, select_layers
from attndilute.store.sources import ModelSource, input_settings, resolve_model
from attndilute.training import distributed


@dataclass(frozen=True)
class CKAConfig:
    """Settings of one CKA comparison.

    Args:
        crop: spatial crop ``(X, Y, Z)`` for both models; None: model A's training crop.
        batch_size: scans per minibatch (> 3; Eq. 10 needs n > 3).
        epochs: passes over the scans, reshuffled each time.
        seed: seed of the shuffles and of random weights (``random:``/``init:`` models).
        layers: glob of module names (comma separated); None: every block and stage.
        pool: tokens per axis after adaptive average pooling; None keeps all tokens.
        dtype: store dtype, ``"float32"`` or ``"float16"``.
        store_dir: where activation stores live; None: ``<out>/activations``.
    """

    crop: tuple[int, int, int] | None = None
    batch_size: int = 16
    epochs: int = 1
    seed: int = 0
    layers: str | None = None
    pool: tuple[int, int, int] | None = (8, 8, 8)
    dtype: str = "float32"
    store_dir: Path | None = None


@dataclass(frozen=True)
class CKARun:
    """What :func:`run_cka` did.

    Args:
        dataset: the result (``xarray.Dataset``, variable ``cka``).
        files: output name -> path (``zarr``, ``png``, ``diagonal``, ``html``).
        stores: paths of the two activation stores (equal when A and B are the same model).
        store_status: per store ``"new"``, ``"complete"``, ``"resumed"`` or ``"rebuilt"``.
        messages: one line per rebuilt store, saying why.
        seconds: wall time of ``capture``, ``cka`` and ``write``.
    """

    dataset: object
    files: dict[str, Path]
    stores: tuple[Path, Path]
    store_status: tuple[str, str]
    messages: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)


def minibatches(n: int, batch_size: int, epochs: int, seed: int) -> list[np.ndarray]:
    """Minibatches of scan indices: each epoch a fresh permutation split into near-equal batches.

    Each epoch is split into ``ceil(n / batch_size)`` batches whose sizes differ by at most one,
    reduced where needed so that every batch has more than 3 scans (Eq. 10). Indices are sorted
    within a batch (HSIC_1 does not depend on sample order; sorted rows read faster).

    Args:
        n: number of scans (> 3).
        batch_size: largest batch (> 3), exceeded only when ``n`` cannot be split otherwise.
        epochs: number of permutations.
        seed: seed of ``torch.randperm``.
    """
    if n <= 3 or batch_size <= 3:
        raise AttnDiluteError(
            f"minibatch CKA needs more than 3 scans per batch (Eq. 10); "
            f"got {n} scans and --batch-size {batch_size}",
            hint="use at least 4 scans and --batch-size >= 4")
    k = -(-n // batch_size)
    while k > 1 and n // k <= 3:
        k -= 1
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).numpy()
        out.extend(np.sort(part) for part in np.array_split(perm, k))
    return out


def cka_from_stores(store_a: ActivationStore, store_b: ActivationStore | None, *, batch_size: int = 16,
                    epochs: int = 1, seed: int = 0, ctx=None) -> torch.Tensor | None:
    """Minibatch CKA between every layer of two complete stores (``None``: A with itself).

    Under ``torchrun`` (``ctx`` with several ranks) rank 0 reads the minibatches and deals them
    out, minibatch i to rank ``i mod N``; each rank sums its HSIC terms (Eq. 10) and the sums
    meet on rank 0 (:meth:`attndilute.cka.MinibatchCKA.merge`), which alone returns the result.

    Returns:
        ``(La, Lb)`` float64 (None on ranks other than 0).
    """
    world, main = (1, True) if ctx is None else (ctx.world, ctx.main)
    if main and store_b is not None and store_b.key.scans != store_a.key.scans:
        raise AttnDiluteError("the two activation stores hold different scans", path=store_b.path)

    def read(rows):
        acts_a = [torch.from_numpy(store_a.read(name, rows)) for name in store_a.key.layers]  # (n, F)
        acts_b = None
        if store_b is not None:
            acts_b = [torch.from_numpy(store_b.read(name, rows)) for name in store_b.key.layers]  # (n, F)
        return acts_a, acts_b

    metric = MinibatchCKA()
    if world <= 1:
        for rows in minibatches(store_a.n_scans, batch_size, epochs, seed):
            metric.update(*read(rows))
        return metric.compute()
    batches = distributed.broadcast_object(
        minibatches(store_a.n_scans, batch_size, epochs, seed) if main else None, ctx)
    for first in range(0, len(batches), world):
        dealt = None
        if main:
            dealt = [read(batches[first + r]) if first + r < len(batches) else None for r in range(world)]
        box = [None]
        dist.scatter_object_list(box, dealt, src=0)
        if box[0] is not None:
            metric.update(*box[0])
    states = distributed.gather_objects(metric.states() if metric.hsic_ab is not None else None, ctx)
    if not main:
        return None
    for other in states[1:]:
        if other is not None:
            metric.merge(other)
    return metric.compute()


def cka_dataset(cka: torch.Tensor, specs_a: Sequence[LayerSpec], specs_b: Sequence[LayerSpec], attrs: dict):
    """The result as an ``xarray.Dataset``: ``cka`` (layer_a, layer_b) with layer/stage coords."""
    import xarray as xr

    coords = {}
    for side, specs in (("a", specs_a), ("b", specs_b)):
        dim = f"layer_{side}"
        coords[dim] = np.array([s.name for s in specs], dtype=object)  # variable-length strings
        coords[f"label_{side}"] = (dim, np.array([s.label for s in specs], dtype=object))
        coords[f"kind_{side}"] = (dim, np.array([s.kind for s in specs], dtype=object))
        coords[f"stage_{side}"] = (dim, np.array([s.stage for s in specs], dtype=np.int64))
        coords[f"block_{side}"] = (dim, np.array([s.block for s in specs], dtype=np.int64))
    data = xr.DataArray(cka.cpu().numpy(), dims=("layer_a", "layer_b"),
                        attrs={"long_name": "minibatch linear CKA (seed Eq. 9, unbiased HSIC_1 Eq. 10)"})
    return xr.Dataset({"cka": data}, coords=coords, attrs=attrs)


def _store_for(source: ModelSource, specs, key_common: dict, store_dir: Path,
               opened: dict[Path, ActivationStore]) -> ActivationStore:
    key = StoreKey(model_hash=source.model_hash, layers=tuple(s.name for s in specs), **key_common)
    for store in opened.values():
        if store.key == key:  # the same weights under another name (A == B, or init:A of a random A)
            return store
    path = store_dir / f"{source.name}-{source.model_hash[:12]}.zarr"
    store = ActivationStore(path, key, specs)
    opened[path] = store
    return store


def run_cka(
    a: str | ModelSource,
    b: str | ModelSource,
    *,
    out: str | Path,
    data: str | Path | None = None,
    config: CKAConfig = CKAConfig(),
    overwrite: bool = False,
    device: str | None = "cpu",
    progress: Callable[[int, int], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> CKARun | None:
    """Compare two models layer by layer with minibatch CKA and write the results.

    Writes ``out/cka.zarr`` (xarray, variable ``cka`` with dims ``layer_a, layer_b``),
    ``out/cka.png`` (heatmap, A on the vertical axis), ``out/cka_diagonal.png`` (diagonal CKA and
    drift ``1 - CKA`` per matched layer) and ``out/cka.html`` (interactive); activation stores go
    to ``config.store_dir`` (default ``out/activations``) and are reused by later runs.

    Args:
        a: model A: checkpoint path or ``random:<preset>`` (see ``attndilute.store.sources``).
        b: model B: the same forms plus ``init:A``; may equal ``a`` (diagonal exactly 1).
        out: output folder (claimed for ``cka``: see :func:`attndilute._io.claim_folder`).
        data: cohort folder; None: the embedded phantom (``attndilute.data.resolve_data``).
        config: crop, minibatches, layers, pooling.
        overwrite: write into a folder that holds other files (only this command's files are replaced).
        device: torch device of both models; ``auto``/None: this rank's CUDA device if any, else CPU.
        progress: ``progress(done, total)`` after each captured scan.
        announce: called (rank 0) with the resolved settings before any work.

    Under ``torchrun`` scans are captured round-robin by rank, the minibatches dealt to the ranks,
    and rank 0 alone writes the stores and the results (it returns the run; other ranks None).
    """
    ctx = distributed.setup(device)
    try:
        return _run_cka(a, b, out=out, data=data, config=config, overwrite=overwrite, ctx=ctx,
                        progress=progress, announce=announce)
    finally:
        distributed.teardown(ctx)


def _run_cka(a, b, *, out, data, config, overwrite, ctx, progress, announce) -> CKARun | None:
    """:func:`run_cka` inside its process group (one process: a group of one)."""
    out = Path(out)
    if config.epochs < 1:
        raise AttnDiluteError(f"--epochs must be >= 1, got {config.epochs}")
    if config.pool is not None and min(config.pool) < 1:
        raise AttnDiluteError(f"--pool must be positive (0 for no pooling), got {config.pool}")
    src_a = a if isinstance(a, ModelSource) else resolve_model(a, seed=config.seed)
    src_b = b if isinstance(b, ModelSource) else resolve_model(b, seed=config.seed, first=src_a)
    settings = input_settings(src_a, config.crop, crop_owner="model A's training crop")
    crop, spacing = settings.crop, settings.spacing
    input_settings(src_b, crop)  # B must take A's crop too

    root = resolve_data(data)
    cases = discover(root)
    minibatches(len(cases), config.batch_size, 1, config.seed)  # validates n > 3 before any work
    specs_a = select_layers(src_a.model, config.layers)
    specs_b = select_layers(src_b.model, config.layers)

    for src in (src_a, src_b):
        src.model.to(ctx.device)
    if announce is not None and ctx.main:
        size = "x".join(map(str, crop))
        announce(f"cka: A {src_a.spec} ({src_a.meta.get('family', type(src_a.model).__name__)}), "
                 f"B {src_b.spec}, crop {size}, spacing {'x'.join(f'{v:g}' for v in spacing)} mm, "
                 f"device {ctx.device}" + (f" on each of {ctx.world} ranks" if ctx.world > 1 else "")
                 + f", {len(cases)} scans from {root}")
        for note in settings.defaulted:
            announce(f"warning: {note}")

    inputs = [src.spec for src in (src_a, src_b) if Path(src.spec).is_file()]
    with contextlib.ExitStack() as stack:
        claim, refused = None, None
        if ctx.main:  # rank 0 writes: it claims the folder and locks the stores
            try:
                claim = stack.enter_context(claim_folder(out, "cka", overwrite=overwrite, cohorts=[root],
                                                         files=inputs))
                store_dir = Path(config.store_dir or claim.path / "activations")
                store_dir.mkdir(parents=True, exist_ok=True)
                if store_dir.resolve() != claim.path.resolve():  # --store OUT: the claim's lock covers it
                    stack.enter_context(hold_lock(store_dir / LOCK, "attndilute cka"))
            except AttnDiluteError as err:
                refused = err
        if not distributed.broadcast_flag(refused is None, ctx):
            raise refused or AttnDiluteError("rank 0 could not claim the output folder", path=out)
        return _compare(src_a, src_b, specs_a, specs_b, cases, root, settings,
                        store_dir if ctx.main else None, claim.path if ctx.main else None, config,
                        progress, ctx)


def _compare(src_a, src_b, specs_a, specs_b, cases, root, settings, store_dir, out, config,
             progress, ctx) -> CKARun | None:
    """Capture (or reuse) both stores, compute minibatch CKA, write the results into ``out`` (rank 0)."""
    crop, spacing = settings.crop, settings.spacing
    t0 = time.perf_counter()
    store_a = store_b = None
    if ctx.main:
        common = {"data_fingerprint": data_fingerprint(cases), "scans": tuple(c.name for c in cases),
                  "pool": config.pool, "crop": crop, "spacing": spacing, "dtype": config.dtype}
        opened: dict[Path, ActivationStore] = {}
        store_a = _store_for(src_a, specs_a, common, store_dir, opened)
        store_b = _store_for(src_b, specs_b, common, store_dir, opened)
    same = distributed.broadcast_object(store_b is store_a if ctx.main else None, ctx)
    cap_a = LayerCapture(src_a.model, specs_a, crop=crop, pool=config.pool)
    cap_b = cap_a if same and ctx.world > 1 else LayerCapture(src_b.model, specs_b, crop=crop,
                                                              pool=config.pool)
    jobs = [(cap_a, store_a), (cap_b, store_b)]
    with contextlib.ExitStack() as stack:
        for cap in {id(c): c for c in (cap_a, cap_b)}.values():
            stack.enter_context(cap)
        load = scan_loader(cases, crop=crop, spacing=spacing, in_channels=settings.in_channels)
        capture_sharded(jobs, lambda i: load(i).to(ctx.device), ctx, progress=progress)
    t1 = time.perf_counter()

    cka = cka_from_stores(store_a, None if same else store_b, batch_size=config.batch_size,
                          epochs=config.epochs, seed=config.seed, ctx=ctx)
    t2 = time.perf_counter()
    if not ctx.main:
        return None
    attrs = {
        "model_a": src_a.spec, "model_b": src_b.spec, "hash_a": src_a.model_hash, "hash_b": src_b.model_hash,
        "data": str(root), "data_fingerprint": common["data_fingerprint"], "n_scans": len(cases),
        "batch_size": config.batch_size, "epochs": config.epochs, "seed": config.seed,
        "n_minibatches": len(minibatches(len(cases), config.batch_size, config.epochs, config.seed)),
        "pool": "none" if config.pool is None else list(config.pool), "crop": list(crop),
        "layers": config.layers or "blocks and stages",
        "estimator": "minibatch CKA (seed Eq. 9) with unbiased HSIC_1 (Eq. 10), not clamped",
    }
    ds = cka_dataset(cka, specs_a, specs_b, attrs)
    files = {"zarr": out / "cka.zarr", "png": out / "cka.png", "diagonal": out / "cka_diagonal.png",
             "html": out / "cka.html"}
    write_zarr(ds, files["zarr"])
    fault_point("cka.zarr written")
    write_heatmap_png(ds, files["png"])
    fault_point("cka.png written")
    write_diagonal_png(ds, files["diagonal"])
    fault_point("cka_diagonal.png written")
    write_html(ds, files["html"])
    t3 = time.perf_counter()
    unique = {id(s): s for s in (store_a, store_b)}.values()
    messages = tuple(f"{s.path}: {s.message}; rebuilt" for s in unique if s.status == "rebuilt")
    return CKARun(dataset=ds, files=files, stores=(store_a.path, store_b.path),
                  store_status=(store_a.status, store_b.status), messages=messages,
                  seconds={"capture": t1 - t0, "cka": t2 - t1, "write": t3 - t2})
