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


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns (``attndilute train`` prints it).

    Attributes:
        best_val_dice: best mean validation Dice (NaN before any validation).
        best_epoch: its epoch (0: no validation yet).
        best: ``out/best.safetensors``, or None before any validation.
        last, metrics, curves: ``out/last.ckpt``, ``out/metrics.csv``, ``out/curves.png``.
        epochs: epochs completed.
        seconds: wall time of the call.
        train_cases, val_cases: cases trained and validated on.
        config: the resolved :class:`TrainConfig` as a dict.
        preset: its name (None for a TrainConfig).
        seed: the seed.
        init: ``scratch`` or the pretrained weights and how many tensors they set.
    """

    best_val_dice: float
    best_epoch: int
    best: Path | None
    last: Path
    metrics: Path
    curves: Path
    epochs: int
    seconds: float
    train_cases: int
    val_cases: int
    config: dict[str, Any]
    preset: str | None
    seed: int
    init: str


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """The settings of one run, new or resumed (:func:`run_spec`)."""

    config: TrainConfig
    data: str | Path | None
    out: Path
    state: dict[str, Any] | None  # the last.ckpt being resumed
    preset: str | None
    seed: int
    fold: int | None
    folds: int | None
    init: str | Path | None
    scratch: bool
    mask_padding: bool

    def record(self) -> dict[str, Any]:
        """The settings ``last.ckpt`` keeps, so that a resume uses them."""
        return {"config": self.config.to_dict(), "preset": self.preset, "seed": self.seed, "fold": self.fold,
                "folds": self.folds, "init": _str(self.init), "scratch": self.scratch,
                "mask_padding": self.mask_padding, "data": _str(self.data)}  # fmt: skip


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
) -> TrainResult:
    """Train a segmentation model on the training split of ``data`` (seed §2.5).

    Args:
        data: data folder (nnU-Net raw, MSD, flat); None -> the embedded phantom.
        out: run folder for ``metrics.csv``, ``best.safetensors``, ``last.ckpt``, ``curves.png``.
        preset: a training preset (:data:`attndilute.training.train_presets.TRAIN_PRESETS`) or a
            TrainConfig; None -> ``tiny`` (or, with ``resume``, the saved run's).
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

    Raises:
        AttnDiluteError: bad data (no labels), a crop the model cannot take, an ``init`` file of
            another family, a run folder that already holds a run (without ``resume``), ...

    Its length is the documented signature: the code is 20 lines, and the steps are
    :func:`run_spec`, ``_setup``, ``_train_epoch`` and ``_end_epoch``.
    """
    started = time.perf_counter()
    spec = run_spec(data, out, preset, epochs=epochs, seed=seed, fold=fold, folds=folds, resume=resume,
                    init=init, scratch=scratch, mask_padding=mask_padding, overrides=overrides)  # fmt: skip
    ctx = distributed.setup(device)
    try:
        inputs = {"cohorts": [] if spec.data is None else [spec.data],
                  "files": [] if spec.init is None else [spec.init]}
        with contextlib.ExitStack() as stack:
            refused = None
            if ctx.main:  # rank 0 writes, so rank 0 claims; every rank learns whether it could
                try:
                    claim = claim_folder(spec.out, "train", overwrite=overwrite or resume, **inputs)
                    stack.enter_context(claim)
                except AttnDiluteError as err:
                    refused = err
            if not distributed.broadcast_flag(refused is None, ctx):
                raise refused or AttnDiluteError("rank 0 could not claim the run folder", path=spec.out)
            return _run(spec, ctx, progress=progress, stop_after=stop_after, started=started)
    finally:
        distributed.teardown(ctx)


def run_spec(data, out, preset, *, epochs, seed, fold, folds, resume, init, scratch, mask_padding,
             overrides: dict[str, Any]) -> RunSpec:  # fmt: skip
    """The settings of a run: a new one from the preset and overrides, or the saved ones of
    ``out/last.ckpt`` (given settings must agree with them). Arguments as :func:`train`."""
    out = Path(out)
    ckpt_path = out / "last.ckpt"
    if resume:
        if not ckpt_path.is_file():
            raise AttnDiluteError("nothing to resume: no last.ckpt", path=out, hint="start without --resume")
        state = _read_ckpt(ckpt_path)
        run = state["run"]
        saved = TrainConfig(**_tuples(run["config"]))
        _check_resume(saved, overrides, run, preset=preset, seed=seed, init=init, fold=fold, folds=folds,
                      scratch=scratch, mask_padding=mask_padding, path=ckpt_path)  # fmt: skip
        return RunSpec(resolve_config(saved, epochs=epochs), data if data is not None else run["data"], out,
                       state, run.get("preset"), int(run["seed"]), run["fold"], run["folds"], run["init"],
                       bool(run["scratch"]), bool(run["mask_padding"]))  # fmt: skip
    if ckpt_path.exists():
        raise AttnDiluteError(
            "the run folder already holds a run", path=out, hint="pass --resume, or choose another --out"
        )
    preset = "tiny" if preset is None else preset
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
    name = preset if isinstance(preset, str) else None
    return RunSpec(config, data, out, None, name, 0 if seed is None else int(seed), fold, folds, init,
                   bool(scratch), bool(mask_padding))


@dataclasses.dataclass
class TrainState:
    """What the epochs of one run share: the model and its optimiser, the data, the best score."""

    spec: RunSpec
    ctx: Any  # distributed.Dist
    model: torch.nn.Module
    net: torch.nn.Module  # the model, wrapped in DDP under torchrun
    ema: Any  # the weight average, None when off
    optimizer: torch.optim.Optimizer
    scheduler: Any
    step: Any  # (image, label, real) -> loss (training/step.py)
    dataset: Any
    loader: Any
    val_vols: list
    bar: Any
    n_train: int
    n_val: int
    init_report: str
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: float = -math.inf
    best_epoch: int = 0
    start: int = 0

    @property
    def scored(self) -> torch.nn.Module:
        """The weights validation scores and ``best.safetensors`` keeps: the average, or the model."""
        return self.model if self.ema is None else self.ema.module


def _setup(spec: RunSpec, ctx, progress: bool) -> TrainState:
    """Data, model (initialised from the seed, or the pretrained weights), optimiser, schedule,
    loss and step; with a resumed run's state restored."""
    from monai.losses import DiceCELoss

    config = spec.config
    root = resolve_data(None if spec.data is None else Path(spec.data))
    cases = discover(root, require_labels=True, split="train")
    train_cases, val_cases = split_cases(cases, folds=spec.folds, fold=spec.fold,
                                         val_fraction=config.val_fraction)
    if config.batch_size % ctx.world:
        raise AttnDiluteError(
            f"batch_size {config.batch_size} is not divisible by the {ctx.world} processes",
            hint="the batch size is global; use a multiple of --nproc_per_node",
        )
    torch.manual_seed(spec.seed)
    model = models.build(config.model, crop=config.crop, spacing=config.spacing,
                         mask_padding=spec.mask_padding)
    init_report = "scratch" if spec.init is None else str(spec.init)
    if spec.init is not None and spec.state is None:
        loaded, missing, _ = models.load_weights(model, spec.init)
        init_report = f"{spec.init} ({loaded} tensors, {len(missing)} left at init)"
    to_device(model, ctx.device)  # channels_last_3d weights (training/step.py)

    bar = _Bar(progress and ctx.main)
    train_vols = load_volumes(train_cases, config, progress=bar.wrap("preprocessing"))
    val_vols = load_volumes(val_cases[ctx.rank :: ctx.world], config)
    dataset = CropDataset(train_vols, config, seed=spec.seed)
    loader = make_loader(dataset, config.batch_size // ctx.world, rank=ctx.rank, world=ctx.world,
                         seed=spec.seed)
    steps = config.epochs * len(loader)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = warmup_cosine(optimizer, steps, warmup_steps=config.warmup_steps(len(loader)))
    loss_fn = DiceCELoss(
        to_onehot_y=True, softmax=True, batch=config.batch_dice, include_background=config.dice_background,
        lambda_dice=1.0, lambda_ce=1.0,
    )
    resumed = {}
    if spec.state is not None:
        model.load_state_dict(spec.state["model"])
        optimizer.load_state_dict(spec.state["optimizer"])
        scheduler.load_state_dict(spec.state["scheduler"])
        set_length(scheduler, steps, config.warmup,  # --epochs may extend it
                   warmup_steps=config.warmup_steps(len(loader)))
        resumed = {"rows": spec.state["rows"], "best": spec.state["best"],
                   "best_epoch": spec.state["best_epoch"], "start": spec.state["epoch"]}
    ema = _make_ema(model, config.ema_decay)  # None when off
    if spec.state is not None and ema is not None:  # resume keeps the settings, so the average is there
        ema.load_state_dict(spec.state["ema"])
    net = model
    if ctx.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    step = make_step(net, optimizer, loss_fn, device=ctx.device, precision=config.precision,
                     grad_clip=config.grad_clip, scheduler=scheduler)  # fmt: skip
    return TrainState(spec, ctx, model, net, ema, optimizer, scheduler, step, dataset, loader, val_vols, bar,
                      len(train_cases), len(val_cases), init_report, **resumed)  # fmt: skip


def _train_epoch(s: TrainState, epoch: int) -> tuple[float, float]:
    """One pass over the crops; returns (mean training loss over every rank, learning rate at the start).

    Raises:
        AttnDiluteError: the loss is not finite (before a NaN model can overwrite ``last.ckpt``).
    """
    torch.manual_seed(sample_seed(s.spec.seed, epoch, 2**31 - 1))
    s.dataset.set_epoch(epoch)
    s.loader.sampler.set_epoch(epoch)
    s.net.train()
    lr = s.optimizer.param_groups[0]["lr"]
    loss_sum, count = 0.0, 0
    for batch in s.bar.wrap(f"epoch {epoch}/{s.spec.config.epochs}")(s.loader):
        loss = s.step(batch["image"], batch["label"], batch["real"])  # image, label (b, 1, *crop)
        if s.ema is not None:
            s.ema.update_parameters(s.model)
        loss_sum += float(loss) * batch["image"].shape[0]
        count += batch["image"].shape[0]
    loss_sum, count = distributed.all_sum([loss_sum, count], s.ctx)
    if not math.isfinite(loss_sum):
        raise AttnDiluteError(
            f"training diverged: the loss is not finite in epoch {epoch}", path=s.spec.out,
            hint=f"lower --lr or use --precision fp32; last.ckpt holds epoch {epoch - 1}"
            if epoch > 1 else "lower --lr or use --precision fp32",
        )  # fmt: skip
    return loss_sum / max(count, 1), lr


def _end_epoch(s: TrainState, epoch: int, loss: float, lr: float, tic: float) -> None:
    """Validate when due, keep the best model, append the metrics row and write the run's files."""
    config, out = s.spec.config, s.spec.out
    val_dice = math.nan
    if epoch % config.val_every == 0 or epoch == config.epochs:
        val_dice = _validate(s.scored, s.val_vols, config, s.ctx)
    improved = not math.isnan(val_dice) and val_dice > s.best
    if improved:
        s.best, s.best_epoch = val_dice, epoch
    row = {
        "epoch": epoch, "lr": lr, "train_loss": loss, "val_dice": val_dice,
        "best_val_dice": s.best if s.best > -math.inf else math.nan, "steps": epoch * len(s.loader),
        "seconds": time.perf_counter() - tic,
    }  # fmt: skip
    s.rows.append(row)
    if s.ctx.main:
        if improved:
            _save_best(s.scored, out / "best.safetensors", config, epoch, val_dice, s.spec.seed,
                       s.spec.mask_padding)
        _write_ckpt(out / "last.ckpt", s.model, s.optimizer, s.scheduler, epoch, s.rows, s.best, s.best_epoch,
                    s.ema, s.spec.record())  # fmt: skip
        write_metrics(s.rows, out / "metrics.csv")
        if not math.isnan(val_dice):  # redrawn at each validation, so a stopped run has one
            _plot(s.rows, out, config)
    s.bar.log(f"epoch {epoch}: loss {loss:.4f}" + ("" if math.isnan(val_dice) else
                                                   f", val Dice {val_dice:.3f}"))
    distributed.barrier(s.ctx)


def _run(spec: RunSpec, ctx, *, progress: bool, stop_after: int | None, started: float) -> TrainResult:
    s = _setup(spec, ctx, progress)
    config, out = spec.config, spec.out
    last_epoch = config.epochs if stop_after is None else min(config.epochs, int(stop_after))
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
    for epoch in range(s.start + 1, last_epoch + 1):
        tic = time.perf_counter()
        loss, lr = _train_epoch(s, epoch)
        _end_epoch(s, epoch, loss, lr, tic)
    if ctx.main and s.rows:
        _plot(s.rows, out, config)
    distributed.barrier(ctx)
    return TrainResult(
        best_val_dice=s.best if s.best > -math.inf else math.nan, best_epoch=s.best_epoch,
        best=out / "best.safetensors" if s.best_epoch else None,  # None: no validation yet
        last=out / "last.ckpt", metrics=out / "metrics.csv", curves=out / "curves.png",
        epochs=s.rows[-1]["epoch"] if s.rows else 0, seconds=time.perf_counter() - started,
        train_cases=s.n_train, val_cases=s.n_val, config=config.to_dict(), preset=spec.preset, seed=spec.seed,
        init=s.init_report,
    )  # fmt: skip


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
