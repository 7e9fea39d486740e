"""attndilute: attention dilution, minibatch CKA and a lean trainer for windowed 3D transformers.

The public API (DESIGN §3). Importing this package loads torch and numpy only; MONAI, zarr,
xarray, matplotlib and plotly are imported inside the functions that need them.
"""

from __future__ import annotations

from attndilute._version import __version__
from attndilute.cka import MinibatchCKA, hsic1, linear_cka
from attndilute.entropy import EntropySums, adi, entropy_decomposition, entropy_decomposition_from_scores
from attndilute.errors import AttnDiluteError
from attndilute.masks import padding_fraction


def measure_adi(model, images, real, *, heads="per-head", **kwargs):
    """Attention dilution index per scan, layer and head; see :func:`attndilute.instrument.measure_adi`."""
    from attndilute.instrument import measure_adi as _measure

    return _measure(model, images, real, heads=heads, **kwargs)


__all__ = [
    "AttnDiluteError",
    "EntropySums",
    "MinibatchCKA",
    "__version__",
    "adi",
    "entropy_decomposition",
    "entropy_decomposition_from_scores",
    "hsic1",
    "linear_cka",
    "measure_adi",
    "padding_fraction",
]
