"""attndilute: attention dilution, minibatch CKA and a lean trainer for windowed 3D transformers.

The public API (DESIGN §3). Importing this package loads torch and numpy only; MONAI, zarr,
xarray, matplotlib and plotly are imported inside the functions that need them.
"""

from __future__ import annotations

from attndilute._version import __version__
from attndilute.capture import ActivationCapture, capture_activations
from attndilute.cka import MinibatchCKA, hsic1, linear_cka
from attndilute.entropy import EntropySums, adi, entropy_decomposition, entropy_decomposition_from_scores
from attndilute.errors import AttnDiluteError
from attndilute.instrument import ADIMeter, measure_adi
from attndilute.masks import padding_fraction

__all__ = [
    "ADIMeter",
    "ActivationCapture",
    "AttnDiluteError",
    "EntropySums",
    "MinibatchCKA",
    "__version__",
    "adi",
    "capture_activations",
    "entropy_decomposition",
    "entropy_decomposition_from_scores",
    "hsic1",
    "linear_cka",
    "measure_adi",
    "padding_fraction",
]
