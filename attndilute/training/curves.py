"""Training curves (seed Fig. 7): training loss and validation Dice per epoch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from attndilute._io import atomic_path


def plot_curves(rows: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Write a two-panel PNG: (a) training loss, (b) validation Dice; raw points and a light EMA.

    Args:
        rows: ``metrics.csv`` rows (``epoch``, ``train_loss``, ``val_dice``; NaN where not validated).
        path: PNG to write (atomically).
        title: figure title (the run's preset).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) for r in rows]
    loss = [float(r["train_loss"]) for r in rows]
    val = [(int(r["epoch"]), float(r["val_dice"])) for r in rows if not math.isnan(float(r["val_dice"]))]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    ax_loss.plot(epochs, loss, "o", ms=3, alpha=0.5, color="C0")
    ax_loss.plot(epochs, _ema(loss), "-", color="C0")
    ax_loss.set(xlabel="epoch", ylabel="Dice + CE loss", title="(a) training loss")
    if val:
        xs, ys = zip(*val, strict=True)
        ax_val.plot(xs, ys, "o", ms=4, alpha=0.6, color="C1")
        ax_val.plot(xs, _ema(list(ys)), "-", color="C1")
    ax_val.set(xlabel="epoch", ylabel="mean Dice", title="(b) validation Dice", ylim=(0, 1))
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def _ema(values: list[float], alpha: float = 0.4) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else alpha * v + (1 - alpha) * acc
        out.append(acc)
    return out
