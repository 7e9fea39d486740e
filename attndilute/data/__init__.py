"""Data: NIfTI discovery, validated loading, seed §2.1 preprocessing, crop/pad with the real mask.

Also the embedded phantom cohort, padding statistics (Eq. 4) and appearance subtypes (§2.6).
Heavy libraries (nibabel, MONAI, scikit-learn, matplotlib, plotly) are imported inside the
functions that use them, so importing this package is light.
"""

from __future__ import annotations

from attndilute.data.cache import cache_root, default_cache_dir
from attndilute.data.croppad import crop_or_pad, padding_fraction
from attndilute.data.inverse import to_source
from attndilute.data.layouts import Case, discover
from attndilute.data.nifti import check_label, load_nifti, read_header
from attndilute.data.phantom import PROFILES, default_data_dir, resolve_data, write_phantom
from attndilute.data.preprocessing import (
    check_preprocessing,
    preprocess,
    preprocessing_meta,
    resampled_geometry,
)
from attndilute.data.volume import Box, Volume

__all__ = [
    "PROFILES",
    "Box",
    "Case",
    "Volume",
    "cache_root",
    "check_label",
    "check_preprocessing",
    "crop_or_pad",
    "default_cache_dir",
    "default_data_dir",
    "discover",
    "load_nifti",
    "padding_fraction",
    "preprocess",
    "preprocessing_meta",
    "read_header",
    "resampled_geometry",
    "resolve_data",
    "to_source",
    "write_phantom",
]
