"""The lean trainer (seed §2.5): Dice + CE, AdamW, warmup-cosine, validation, checkpoints, resume.

Outputs in ``out/`` (rank 0 writes; every file atomically):

- ``metrics.csv``: one row per epoch, :data:`METRIC_COLUMNS`;
- ``best.safetensors``: the model with the best mean validation Dice; its header holds the
  crop, spacing and training settings, so ``attndilute adi --model best.safetensors`` works;
- ``last.ckpt``: model, optimizer, scheduler, epoch, RNG state, best score and the metric rows,
  written every epoch, read back with ``torch.load(weights_only=True)``;
- ``curves.png``: seed Fig. 7 for this run.

Determinism: the model is initialised from ``seed``; epoch ``e`` reseeds torch with
``(seed, e)`` and draws its crops from ``(seed, e, sample)``; so a run stopped after any epoch
and resumed gives the same ``metrics.csv`` as an uninterrupted run (CPU; the ``seconds``
column excepted).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attndilute import models
from attndilute._io import atomic_path, claim_folder
from attndilute.data import discover, preprocessing_meta, resolve_data
from attndilute.errors import AttnDiluteError
from attndilute.metrics import dice
from attndilute.training import distributed
from attndilute.training.curves import plot_curves
from attndilute.training.inference import sliding_window_probs
from attndilute.training.pipeline import CropDataset, load_volumes, make_loader, sample_seed
from attndilute.training.schedule import set_length, warmup_cosine
from attndilute.training.splits import split_cases
from attndilute.training.step import make_step, to_device
from attndilute.training.train_presets import TrainConfig, resolve_config

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "val_dice", "best_val_dice", "steps", "seconds")
#: ``metrics.csv`` columns that must agree between an uninterrupted and a resumed run.
REPRODUCIBLE_COLUMNS = ("epoch", "lr", "train_loss", "val_dice", "best_val_dice", "steps")
CKPT_VERSION = 1


def train(
    data: str | Path | None = None,
    out: str | Path = "runs/train",
    preset: str | TrainConfig | None = None,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    fold: int | None = None,
    folds: int | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    scratch: bool | None = None,
    mask_padding: bool | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    overwrite: bool = False,
    device: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train a segmentation model on the training split of ``data`` (seed §2.5).

    Args:
        data: data folder (nnU-Net raw, MSD, flat); None -> the embedded phantom.
        out: run folder for ``metrics.csv``, ``best.safetensors``, ``last.ckpt``, ``curves.png``.
        preset: a training preset (:data:`attndilute.training.train_presets.TRAIN_PRESETS`) or a TrainConfig;
            None -> ``tiny`` (or, with ``resume``, the saved run's).
        epochs: schedule length; default the preset's (x ``scratch_factor`` with ``scratch`` on a
            pretrained preset, as the seed trains Scratch models twice as long).
        seed: fixes the initialisation, crops, augmentation and data order (None -> 0).
        fold, folds: ``folds=K, fold=k`` validates on fold k (0-based) of a fixed K-fold split.
        resume: continue from ``out/last.ckpt`` with its stored settings; a preset, seed, setting,
            ``init``, ``fold``, ``folds``, ``scratch`` or ``mask_padding`` that is given and differs
            from them is an error; ``epochs`` may extend the schedule (which then differs from an
            uninterrupted run of that length) and ``data`` may point to where the data moved.
        init: pretrained weights (any format :func:`attndilute.models.load_weights` reads).
        scratch: train from random initialisation (required for pretrained presets without ``init``).
        mask_padding: train the padding-masked variant (seed §4).
        progress: show a progress bar on a terminal.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``/None (CUDA when available); under
            ``torchrun`` each rank takes its local CUDA device.
        stop_after: stop after this epoch (1-based) although the schedule is longer, as if the
            job had been interrupted; ``resume`` continues it.
        overwrite: train into a folder that holds other files (only this command's files are
            replaced). ``out`` is claimed for ``train`` (:func:`attndilute._io.claim_folder`).
        **overrides: any :class:`TrainConfig` field (``crop``, ``spacing``, ``lr``, ``batch_size``,
            ``val_every``, ``tumor_aware``, ...).

    Returns:
        summary: ``best_val_dice``, ``best_epoch``, ``best`` (path of best.safetensors),
        ``last``, ``metrics``, ``curves``, ``epochs`` (completed), ``seconds``, ``train_cases``,
        ``val_cases``, ``config``, ``preset`` (name, or None for a TrainConfig), ``seed``, ``init``.

    Raises:
        AttnDiluteError: bad data (no labels), a crop the model cannot take, an ``init`` file of
            another family, a run folder that already holds a run (without ``resume``), ...
    """
    started = time.perf_counter()
    out = Path(out)
    ckpt_path = out / "last.ckpt"
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise AttnDiluteError("nothing to resume: no last.ckpt", path=out, hint="start without --resume")
        state = _read_ckpt(ckpt_path)
        run = state["run"]
        saved = TrainConfig(**_tuples(run["config"]))
        _check_resume(saved, overrides, run, preset=preset, seed=seed, init=init, fold=fold, folds=folds,
                      scratch=scratch, mask_padding=mask_padding, path=ckpt_path)  # fmt: skip
        config = resolve_config(saved, epochs=epochs)
        seed, fold, folds = run["seed"], run["fold"], run["folds"]
        init, scratch, mask_padding = run["init"], run["scratch"], run["mask_padding"]
        preset = run.get("preset")  # None in runs saved before the name was stored
        data = data if data is not None else run["data"]  # the data may have moved
    else:
        if ckpt_path.exists():
            raise AttnDiluteError(
                "the run folder already holds a run", path=out, hint="pass --resume, or choose another --out"
            )
        preset = "tiny" if preset is None else preset
        seed = 0 if seed is None else seed  # scratch and mask_padding: None reads as False below
        config = resolve_config(preset, **overrides)
        if epochs is None and scratch and config.pretrained:
            epochs = int(round(config.epochs * config.scratch_factor))
        config = resolve_config(config, epochs=epochs)
        if init is not None and scratch:
            raise AttnDiluteError("--init and --scratch exclude each other")
        if config.pretrained and init is None and not scratch:
            raise AttnDiluteError(
                f"preset {preset!r} fine-tunes pretrained weights",
                hint="pass --init PATH (SMIT or Swin UNETR weights) or --scratch",
            )
    ctx = distributed.setup(device)
    try:
        inputs = {"cohorts": [] if data is None else [data], "files": [] if init is None else [init]}
        with contextlib.ExitStack() as stack:
            refused = None
            if ctx.main:  # rank 0 writes, so rank 0 claims; every rank learns whether it could
                try:
                    stack.enter_context(claim_folder(out, "train", overwrite=overwrite or resume, **inputs))
                except AttnDiluteError as err:
                    refused = err
            if not distributed.broadcast_flag(refused is None, ctx):
                raise refused or AttnDiluteError("rank 0 could not claim the run folder", path=out)
            return _run(
                config, data, out, state=state, preset=preset if isinstance(preset, str) else None,
                seed=int(seed), fold=fold, folds=folds, init=init,
                scratch=bool(scratch), mask_padding=bool(mask_padding), progress=progress,
                stop_after=stop_after, ctx=ctx, started=started,
            )  # fmt: skip
    finally:
        distributed.teardown(ctx)


def _run(config, data, out, *, state, preset, seed, fold, folds, init, scratch, mask_padding, progress,
         stop_after, ctx, started) -> dict[str, Any]:  # fmt: skip
    from monai.losses import DiceCELoss


    root = resolve_data(None if data is None else Path(data))
    cases = discover(root, require_labels=True, split="train")
    train_cases, val_cases = split_cases(cases, folds=folds, fold=fold, val_fraction=config.val_fraction)
    if config.batch_size % ctx.world:
        raise AttnDiluteError(
            f"batch_size {config.batch_size} is not divisible by the {ctx.world} processes",
            hint="the batch size is global; use a multiple of --nproc_per_node",
        )

    torch.manual_seed(seed)
    model = models.build(config.model, crop=config.crop, spacing=config.spacing, mask_padding=mask_padding)
    init_report = "scratch" if init is None else str(init)
    if init is not None and state is None:
        loaded, missing, _ = models.load_weights(model, init)
        init_report = f"{init} ({loaded} tensors, {len(missing)} left at init)"
    to_device(model, ctx.device)  # channels_last_3d weights (training/step.py)

    bar = _Bar(progress and ctx.main)
    train_vols = load_volumes(train_cases, config, progress=bar.wrap("preprocessing"))
    val_vols = load_volumes(val_cases[ctx.rank :: ctx.world], config)
    dataset = CropDataset(train_vols, config, seed=seed)
    loader = make_loader(dataset, config.batch_size // ctx.world, rank=ctx.rank, world=ctx.world, seed=seed)
    steps_per_epoch = len(loader)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = warmup_cosine(optimizer, config.epochs * steps_per_epoch,
                              warmup_steps=config.warmup_steps(steps_per_epoch))
    loss_fn = DiceCELoss(
        to_onehot_y=True, softmax=True, batch=config.batch_dice, include_background=config.dice_background,
        lambda_dice=1.0, lambda_ce=1.0,
    )

    rows: list[dict[str, Any]] = []
    best, best_epoch, start = -math.inf, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_length(scheduler, config.epochs * steps_per_epoch, config.warmup,  # --epochs may extend it
                   warmup_steps=config.warmup_steps(steps_per_epoch))
        rows, best, best_epoch, start = state["rows"], state["best"], state["best_epoch"], state["epoch"]
    ema = _make_ema(model, config.ema_decay)  # None when off
    if state is not None and ema is not None:  # resume keeps the settings, so the average is there
        ema.load_state_dict(state["ema"])
    scored = model if ema is None else ema.module  # the weights validation scores and best.safetensors keeps
    net = model
    if ctx.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    step = make_step(
        net, optimizer, loss_fn, device=ctx.device, precision=config.precision, grad_clip=config.grad_clip,
        scheduler=scheduler,
    )  # fmt: skip
    last_epoch = config.epochs if stop_after is None else min(config.epochs, int(stop_after))
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)

    for epoch in range(start + 1, last_epoch + 1):
        tic = time.perf_counter()
        torch.manual_seed(sample_seed(seed, epoch, 2**31 - 1))
        dataset.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        net.train()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, count = 0.0, 0
        for batch in bar.wrap(f"epoch {epoch}/{config.epochs}")(loader):
            loss = step(batch["image"], batch["label"], batch["real"])  # image, label (b, 1, *crop)
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += float(loss) * batch["image"].shape[0]
            count += batch["image"].shape[0]
        loss_sum, count = distributed.all_sum([loss_sum, count], ctx)
        if not math.isfinite(loss_sum):  # stop before a NaN model overwrites last.ckpt
            raise AttnDiluteError(
                f"training diverged: the loss is not finite in epoch {epoch}", path=out,
                hint=f"lower --lr or use --precision fp32; last.ckpt holds epoch {epoch - 1}"
                if epoch > 1 else "lower --lr or use --precision fp32",
            )  # fmt: skip
        val_dice = math.nan
        if epoch % config.val_every == 0 or epoch == config.epochs:
            val_dice = _validate(scored, val_vols, config, ctx)
        improved = not math.isnan(val_dice) and val_dice > best
        if improved:
            best, best_epoch = val_dice, epoch
        row = {
            "epoch": epoch, "lr": lr, "train_loss": loss_sum / max(count, 1), "val_dice": val_dice,
            "best_val_dice": best if best > -math.inf else math.nan, "steps": epoch * steps_per_epoch,
            "seconds": time.perf_counter() - tic,
        }  # fmt: skip
        rows.append(row)
        if ctx.main:
            if improved:
                _save_best(scored, out / "best.safetensors", config, epoch, val_dice, seed, mask_padding)
            _write_ckpt(out / "last.ckpt", model, optimizer, scheduler, epoch, rows, best, best_epoch, ema, {
                "config": config.to_dict(), "preset": preset, "seed": seed, "fold": fold, "folds": folds,
                "init": _str(init), "scratch": scratch, "mask_padding": mask_padding, "data": _str(data),
            })  # fmt: skip
            write_metrics(rows, out / "metrics.csv")
            if not math.isnan(val_dice):  # redrawn at each validation, so a stopped run has one
                _plot(rows, out, config)
        bar.log(
            f"epoch {epoch}: loss {row['train_loss']:.4f}"
            + ("" if math.isnan(val_dice) else f", val Dice {val_dice:.3f}")
        )
        distributed.barrier(ctx)

    if ctx.main and rows:
        _plot(rows, out, config)
    distributed.barrier(ctx)
    return {
        "best_val_dice": best if best > -math.inf else math.nan,
        "best_epoch": best_epoch,
        "best": out / "best.safetensors" if best_epoch else None,  # None: no validation yet
        "last": out / "last.ckpt",
        "metrics": out / "metrics.csv",
        "curves": out / "curves.png",
        "epochs": rows[-1]["epoch"] if rows else 0,
        "seconds": time.perf_counter() - started,
        "train_cases": len(train_cases),
        "val_cases": len(val_cases),
        "config": config.to_dict(),
        "preset": preset,
        "seed": seed,
        "init": init_report,
    }


def _validate(model, volumes, config: TrainConfig, ctx) -> float:
    """Mean Dice over the validation cases (sliding window at the crop, 50% overlap, ``config.blend``,
    flip TTA if ``config.tta``)."""
    model.eval()
    total, n = 0.0, 0
    for vol in volumes:
        image = torch.from_numpy(vol.image)[None, None]  # (1, 1, X, Y, Z)
        real = torch.from_numpy(vol.real)[None]  # (1, X, Y, Z)
        probs = sliding_window_probs(
            model, image, real, config.crop, overlap=config.overlap, tta=config.tta,
            sw_batch_size=config.sw_batch_size, device=ctx.device, precision=config.precision,
            blend=config.blend,
        )  # fmt: skip
        pred = (probs[0].argmax(0).numpy() == 1) & vol.real  # (X, Y, Z)
        score = dice(pred, vol.label > 0)
        if not math.isnan(score):
            total, n = total + score, n + 1
    model.train()
    total, n = distributed.all_sum([total, n], ctx)
    return total / n if n else math.nan


def _save_best(model, path: Path, config: TrainConfig, epoch: int, val_dice: float, seed: int, masked: bool):
    models.save(
        model, path, crop=list(config.crop), spacing=list(config.spacing), epoch=epoch, val_dice=val_dice,
        seed=seed, mask_padding=masked, pad_mode="symmetric", training=config.to_dict(),
        preprocessing=preprocessing_meta(),
    )  # fmt: skip


def _make_ema(model, decay: float):
    """A moving average of ``model``'s weights (``torch.optim.swa_utils.AveragedModel``), or None.

    The average starts as a copy of the weights and then moves by ``1 - decay`` toward them after
    every optimiser step; buffers are copied, not averaged (the models have no running statistics).
    """
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def _write_ckpt(path, model, optimizer, scheduler, epoch, rows, best, best_epoch, ema, run) -> None:
    payload = {
        "version": CKPT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "best": best,
        "best_epoch": best_epoch,
        "rows": rows,
        "run": run,
        **({"ema": ema.state_dict()} if ema is not None else {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read_ckpt(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise AttnDiluteError(
            f"cannot read the training checkpoint ({type(err).__name__})", path=path
        ) from None
    if not isinstance(state, dict) or state.get("version") != CKPT_VERSION:
        raise AttnDiluteError("not a training checkpoint written by attndilute train", path=path)
    return state


def write_metrics(rows: list[dict[str, Any]], path: Path) -> None:
    """Write ``metrics.csv`` (atomically): :data:`METRIC_COLUMNS`, floats with 8 significant digits."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(METRIC_COLUMNS)
        for row in rows:
            writer.writerow([_fmt(row[c]) for c in METRIC_COLUMNS])


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as floats (empty cells -> NaN)."""
    with open(path, newline="") as handle:
        return [
            {k: float(v) if v not in ("", "nan") else math.nan for k, v in r.items()}
            for r in csv.DictReader(handle)
        ]


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{float(value):.8g}"
    return str(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


class _Bar:
    """A rich progress display on stderr when enabled and attached to a terminal, else silent."""

    def __init__(self, enabled: bool):
        self.console = None
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            self.console = console if console.is_terminal else None

    def wrap(self, description: str):
        if self.console is None:
            return lambda seq: seq
        from rich.progress import track

        return lambda seq: track(seq, description=description, console=self.console, transient=True)

    def log(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)


def _plot(rows: list[dict[str, Any]], out: Path, config: TrainConfig) -> None:
    plot_curves(rows, out / "curves.png", title=f"{config.model}, crop {'x'.join(map(str, config.crop))}")


def _check_resume(saved: TrainConfig, overrides: dict[str, Any], run: dict[str, Any], *, preset, seed, init,
                  fold, folds, scratch, mask_padding, path: Path) -> None:  # fmt: skip
    """--resume continues the saved run as it was: a setting that differs from it is an error, not ignored.

    Arguments left at None are not compared; a preset name is compared with the stored one
    (runs saved before names were stored accept any), a TrainConfig with the saved config.
    """
    asked = resolve_config(saved, **overrides)
    differ = [f.name for f in dataclasses.fields(saved) if getattr(asked, f.name) != getattr(saved, f.name)]
    if isinstance(preset, TrainConfig):
        if resolve_config(dataclasses.replace(preset, epochs=saved.epochs), **overrides) != saved:
            differ.append("preset")
    elif preset is not None and run.get("preset") is not None and preset != run["preset"]:
        differ.append("preset")
    for key, given in (("seed", seed), ("scratch", scratch), ("mask_padding", mask_padding)):
        if given is not None and given != run[key]:
            differ.append(key)
    for key, given in (("init", init), ("fold", fold), ("folds", folds)):
        if key == "init" and given is not None:
            same = run["init"] is not None and Path(given).resolve() == Path(run["init"]).resolve()
        else:
            same = given is None or given == run[key]
        if not same:
            differ.append(key)
    if differ:
        raise AttnDiluteError(
            f"--resume continues the saved run, which has other {', '.join(sorted(differ))}",
            path=path,
            hint="drop those settings (only --epochs may extend a resumed run), or start a new --out",
        )
