"""Appearance subtypes (seed §2.6, Appendix A): seven features per scan, z-scored k-means.

Features, computed on the preprocessed volume (RAS, 1 mm, intensities in [0, 1]):

- ``tumor_mean``, ``tumor_sd``: intensity inside the label;
- ``background_mean``: mean of the non-tumour voxels with non-zero intensity (Appendix A);
- ``contrast``: ``(tumor_mean - background_mean) / background_mean``;
- ``cnr``: ``(tumor_mean - background_mean) / background_sd``;
- ``boundary_gradient``: mean gradient magnitude (per mm) over the three-voxel tumour boundary,
  one voxel outside and two inside the label (``dilate(1) & ~erode(2)``);
- ``tumor_volume_mm3``: label voxels times the voxel volume.

Features are standardised (scikit-learn ``StandardScaler``) and clustered with ``KMeans``; the
fitted scaler and centroids are stored and applied to other cohorts. Clusters are named by
their centroid contrast: the highest is ``B`` (bright), the lowest ``D`` (dark), any between
``M1``, ``M2``, ... in decreasing contrast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attndilute.data.layouts import discover
from attndilute.data.preprocessing import preprocess
from attndilute.data.volume import Volume
from attndilute.errors import AttnDiluteError

FEATURES = (
    "tumor_mean",
    "tumor_sd",
    "background_mean",
    "contrast",
    "cnr",
    "boundary_gradient",
    "tumor_volume_mm3",
)
K_RANGE = (2, 3, 4, 5)


def tumour_features(vol: Volume, *, path: str | Path | None = None) -> dict[str, float]:
    """The seven appearance features of one preprocessed, uncropped volume.

    Args:
        vol: a Volume with a non-empty label.
        path: the case's image file, for messages.

    Returns:
        A dict keyed by :data:`FEATURES`.

    Raises:
        AttnDiluteError: an empty label, no varying non-zero background outside the label, or a
            feature that is not finite.
    """
    from scipy import ndimage

    if vol.label is None or not vol.label.any():
        raise AttnDiluteError(
            f"case {vol.name}: the tumour label is empty", path=path, hint="subtypes need a tumour"
        )
    image, tumour = vol.image, vol.label.astype(bool)  # (X, Y, Z)
    t_vals = image[tumour]
    background = image[vol.real & ~tumour & (image > 0)]
    if background.size < 2 or float(background.std()) == 0.0:
        raise AttnDiluteError(
            f"case {vol.name}: the image has no varying non-zero intensity outside the tumour label "
            f"({background.size} voxel(s)), so contrast and CNR are undefined",
            path=path,
            hint="check that the image holds the scan and the label only the tumour",
        )
    t_mean, b_mean, b_sd = float(t_vals.mean()), float(background.mean()), float(background.std())
    # work in the tumour's bounding box (plus a margin) for the morphology and gradients
    lo = np.maximum(np.argwhere(tumour).min(axis=0) - 4, 0)
    hi = np.minimum(np.argwhere(tumour).max(axis=0) + 5, tumour.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub_img, sub_mask = image[box].astype(np.float64), tumour[box]
    band = ndimage.binary_dilation(sub_mask, iterations=1) & ~ndimage.binary_erosion(sub_mask, iterations=2)
    grads = np.gradient(sub_img, *vol.spacing)  # 3 x (x, y, z), per mm
    magnitude = np.sqrt(sum(g * g for g in grads))
    feats = {
        "tumor_mean": t_mean,
        "tumor_sd": float(t_vals.std()),
        "background_mean": b_mean,
        "contrast": (t_mean - b_mean) / b_mean,
        "cnr": (t_mean - b_mean) / b_sd,
        "boundary_gradient": float(magnitude[band].mean()),
        "tumor_volume_mm3": float(tumour.sum() * np.prod(vol.spacing)),
    }
    bad = [k for k, v in feats.items() if not np.isfinite(v)]
    if bad:  # e.g. a one-voxel label (no boundary band) or a zero background mean
        raise AttnDiluteError(
            f"case {vol.name}: feature(s) {', '.join(bad)} are not finite",
            path=path,
            hint="check the image and its tumour label",
        )
    return feats


@dataclass(frozen=True)
class SubtypeModel:
    """A fitted z-score transform and k-means centroids with subtype names.

    Args:
        mean: feature means, ``(F,)``.
        scale: feature standard deviations, ``(F,)``.
        centroids: cluster centres in z-score units, ``(k, F)``.
        names: subtype name of each centroid, ``(k,)``.
        features: the feature names, ``(F,)``.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    centroids: tuple[tuple[float, ...], ...]
    names: tuple[str, ...]
    features: tuple[str, ...] = FEATURES

    def zscore(self, table: np.ndarray) -> np.ndarray:
        """Standardise a feature table ``(n, F)`` with the fitted mean and scale."""
        return (np.asarray(table, dtype=float) - np.asarray(self.mean)) / np.asarray(self.scale)

    def assign(self, table: np.ndarray) -> list[str]:
        """Name of the nearest centroid for each row of a feature table ``(n, F)``."""
        z = self.zscore(table)  # (n, F)
        dist = ((z[:, None, :] - np.asarray(self.centroids)[None]) ** 2).sum(axis=-1)  # (n, k)
        return [self.names[i] for i in dist.argmin(axis=1)]

    def to_json(self) -> str:
        """JSON text of the model."""
        return json.dumps(
            {k: getattr(self, k) for k in ("features", "mean", "scale", "centroids", "names")}, indent=2
        )


def fit_subtypes(table: np.ndarray, *, k: int = 2, seed: int = 0) -> SubtypeModel:
    """Z-score the features and fit k-means (Appendix A); name clusters by contrast.

    Args:
        table: features ``(n, F)`` in :data:`FEATURES` order.
        k: number of clusters.
        seed: k-means random state (``n_init=10``).
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    table = np.asarray(table, dtype=float)
    if table.shape[0] <= k:
        raise AttnDiluteError(
            f"{table.shape[0]} cases cannot form {k} clusters", hint="use more cases or a smaller --k"
        )
    scaler = StandardScaler().fit(table)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    z = (table - scaler.mean_) / scale
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    contrast = km.cluster_centers_[:, FEATURES.index("contrast")]
    order = np.argsort(-contrast)  # decreasing contrast
    names = [""] * k
    for rank, idx in enumerate(order):
        names[idx] = "B" if rank == 0 else "D" if rank == k - 1 else f"M{rank}"
    return SubtypeModel(
        mean=tuple(float(v) for v in scaler.mean_),
        scale=tuple(float(v) for v in scale),
        centroids=tuple(tuple(float(v) for v in c) for c in km.cluster_centers_),
        names=tuple(names),
    )


def cluster_scores(table: np.ndarray, *, ks=K_RANGE, seed: int = 0) -> list[dict]:
    """Silhouette, Calinski-Harabasz and Davies-Bouldin for k-means on z-scored features.

    Args:
        table: features ``(n, F)``.
        ks: numbers of clusters to try (those < n).
        seed: k-means random state.
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    rows = []
    for k in ks:
        if k >= len(table):
            continue
        model = fit_subtypes(table, k=k, seed=seed)
        z, names = model.zscore(table), model.assign(table)
        if len(set(names)) < 2:
            continue
        rows.append(
            {
                "k": k,
                "silhouette": float(silhouette_score(z, names)),
                "calinski_harabasz": float(calinski_harabasz_score(z, names)),
                "davies_bouldin": float(davies_bouldin_score(z, names)),
            }
        )
    return rows


def cohort_features(
    data: str | Path,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    cache_dir: str | Path | None = None,
    progress=None,
) -> tuple[list[str], np.ndarray]:
    """Preprocess every case of a folder (labels required) and compute its features.

    Args:
        data: a data folder.
        spacing: preprocessing spacing (mm).
        cache_dir: preprocessing cache (None: the default).
        progress: optional callable wrapping an iterable.

    Returns:
        ``(names, table)`` with ``table`` shaped ``(n, F)``.
    """
    cases = discover(data, require_labels=True)
    names, rows = [], []
    for case in cases if progress is None else progress(cases):
        feats = tumour_features(preprocess(case, spacing=spacing, cache_dir=cache_dir), path=case.image)
        names.append(case.name)
        rows.append([feats[f] for f in FEATURES])
    return names, np.asarray(rows, dtype=float).reshape(len(rows), len(FEATURES))
