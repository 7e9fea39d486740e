"""Activation capture, the zarr activation store and the ``attndilute cka`` pipeline (seed §2.7).

- :mod:`~attndilute.store.layers`: which modules to capture (blocks, stages, or a glob);
- :mod:`~attndilute.store.capture`: forward hooks that pool each output to 8x8x8 tokens;
- :mod:`~attndilute.store.activations`: the zarr v3 store, a resumable cache;
- :mod:`~attndilute.store.cohort`: one preprocessed crop per scan fed to every model;
- :mod:`~attndilute.store.sources`: checkpoints, ``random:<preset>`` and ``init:A`` models;
- :mod:`~attndilute.store.cka_run`: minibatch CKA over two stores and the written results;
- :mod:`~attndilute.store.cka_figures`: heatmap, diagonal/drift and HTML figures.

zarr, xarray, matplotlib and plotly are imported inside the functions that use them.
"""

from __future__ import annotations

from attndilute.store.activations import ActivationStore, StoreKey
from attndilute.store.capture import LayerCapture, Pooled, infer_layout, pool_tokens
from attndilute.store.cka_run import CKAConfig, CKARun, cka_dataset, cka_from_stores, minibatches, run_cka
from attndilute.store.cohort import capture_into, data_fingerprint, scan_loader
from attndilute.store.layers import LayerSpec, select_layers
from attndilute.store.sources import ModelSource, from_module, resolve_model, weights_hash

__all__ = [
    "ActivationStore",
    "CKAConfig",
    "CKARun",
    "LayerCapture",
    "LayerSpec",
    "ModelSource",
    "Pooled",
    "StoreKey",
    "capture_into",
    "cka_dataset",
    "cka_from_stores",
    "data_fingerprint",
    "from_module",
    "infer_layout",
    "minibatches",
    "pool_tokens",
    "resolve_model",
    "run_cka",
    "scan_loader",
    "select_layers",
    "weights_hash",
]
