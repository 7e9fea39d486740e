"""attndilute: attention dilution, minibatch CKA and a lean trainer for windowed 3D transformers.

The public API (DESIGN §3). Importing this package loads torch and numpy only; MONAI, zarr,
xarray, matplotlib and plotly are imported inside the functions that need them.
"""

from __future__ import annotations

from attndilute._version import __version__
from attndilute.errors import AttnDiluteError

__all__ = ["AttnDiluteError", "__version__"]
