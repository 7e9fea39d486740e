"""The lean trainer and inference (seed §2.3, §2.5): ``attndilute train`` and ``attndilute predict``.

    from attndilute.training import train, predict
    summary = train(None, "runs/tiny", preset="tiny")          # None -> embedded phantom
    paths = predict(summary.best, None, "preds/tiny", split="test")

MONAI is imported when a function runs, so importing this package stays light.
"""

from __future__ import annotations

from typing import Any

from attndilute.training.loop import METRIC_COLUMNS, REPRODUCIBLE_COLUMNS, TrainResult, read_metrics, train
from attndilute.training.predict import predict
from attndilute.training.train_presets import TRAIN_PRESETS, TrainConfig, list_presets, resolve_config

__all__ = [
    "METRIC_COLUMNS",
    "TRAIN_PRESETS",
    "REPRODUCIBLE_COLUMNS",
    "TrainConfig",
    "TrainResult",
    "TumorAwareIntensityd",
    "list_presets",
    "predict",
    "read_metrics",
    "resolve_config",
    "train",
]


def __getattr__(name: str) -> Any:
    if name == "TumorAwareIntensityd":  # subclasses MONAI transforms: imported on first use
        from attndilute.training.transforms import TumorAwareIntensityd

        return TumorAwareIntensityd
    raise AttributeError(name)
