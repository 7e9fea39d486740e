"""The on-disk cache: where it lives, how entries are keyed, and how a Volume is stored.

The cache root is ``$ATTNDILUTE_CACHE`` if set, else ``~/.cache/attndilute``. It holds the
embedded phantom (``phantom-small-s0-v2``) and preprocessed volumes (``preprocessed/KEY.npz``),
keyed by the SHA-256 of the image and label file contents plus the preprocessing settings, so
renaming or moving a file keeps its entry and editing it invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attndilute._io import atomic_path, remove
from attndilute.data.volume import Volume


def cache_root() -> Path:
    """``$ATTNDILUTE_CACHE`` if set, else ``~/.cache/attndilute``."""
    env = os.environ.get("ATTNDILUTE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "attndilute"


def default_cache_dir() -> Path:
    """Folder of preprocessed volumes under :func:`cache_root`."""
    return cache_root() / "preprocessed"


def file_digest(path: Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_key(image: Path, label: Path | None, settings: dict) -> str:
    """Key of one preprocessed case: file contents plus settings (JSON, sorted keys)."""
    parts = [
        file_digest(image),
        file_digest(label) if label is not None else "-",
        json.dumps(settings, sort_keys=True),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def save_volume(vol: Volume, path: Path) -> None:
    """Write an uncropped Volume as an uncompressed ``.npz`` (fast to read back), atomically."""
    arrays = {
        "image": vol.image,
        "label": vol.label if vol.label is not None else np.zeros((0,), np.uint8),
        "has_label": np.array(vol.label is not None),
        "spacing": np.asarray(vol.spacing, np.float64),
        "extent": np.array(vol.extent, np.float64),
        "affine": vol.affine,
        "source_affine": vol.source_affine,
        "source_shape": np.asarray(vol.source_shape, np.int64),
        "resampled_affine": vol.resampled_affine,
        "resampled_shape": np.asarray(vol.resampled_shape, np.int64),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_volume(path: Path, name: str) -> Volume | None:
    """Read a cached Volume; None if the entry is missing or unreadable (it is then rebuilt).

    Any error while reading counts as unreadable: a truncated or damaged ``.npz``
    (``zipfile.BadZipFile``, ``EOFError``, ``OSError``), a missing array (``KeyError``) or a
    field of the wrong shape or type (``ValueError``, ``TypeError``).
    """
    try:
        with np.load(path) as npz:
            image = npz["image"]
            label = npz["label"] if bool(npz["has_label"]) else None
            return Volume(
                name=name,
                image=image,
                label=label,
                real=np.ones(image.shape, dtype=bool),
                spacing=tuple(float(v) for v in npz["spacing"]),  # type: ignore[arg-type]
                extent=float(npz["extent"]),
                padding_fraction=0.0,
                affine=npz["affine"],
                source_affine=npz["source_affine"],
                source_shape=tuple(int(v) for v in npz["source_shape"]),  # type: ignore[arg-type]
                resampled_affine=npz["resampled_affine"],
                resampled_shape=tuple(int(v) for v in npz["resampled_shape"]),  # type: ignore[arg-type]
            )
    except Exception:  # noqa: BLE001 - any damage (BadZipFile, OSError, bad fields) means rebuild
        return None


# --- what the cache holds (``attndilute cache``) --------------------------------------------------

#: Names attndilute writes under the cache root: the embedded phantom cohorts and preprocessed
#: volumes (``preprocessed/KEY.npz``, KEY = 32 hex digits), plus their temporary siblings.
_OURS = (
    re.compile(r"phantom-[a-z0-9]+-s\d+-v\d+"),
    re.compile(r"preprocessed/[0-9a-f]{32}\.npz"),
    re.compile(r"(preprocessed/)?\.[^/]+\.tmp-\d+"),
)


@dataclass(frozen=True)
class CacheEntry:
    """One entry attndilute created in the cache.

    Args:
        path: the file or folder.
        kind: ``phantom`` (an embedded cohort), ``preprocessed`` (one volume) or ``temporary``.
        size: bytes on disk (a folder: all its files).
    """

    path: Path
    kind: str
    size: int


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.lstat().st_size


def cache_entries(root: Path | None = None) -> list[CacheEntry]:
    """The entries under the cache root (:func:`cache_root`) whose names attndilute writes;
    anything else there (a user's file, another tool's) is not listed and never cleared."""
    root = cache_root() if root is None else Path(root)
    candidates = [*root.glob("*"), *(root / "preprocessed").glob("*")] if root.is_dir() else []
    entries = []
    for path in sorted(candidates):
        rel = path.relative_to(root).as_posix()
        for kind, pattern in zip(("phantom", "preprocessed", "temporary"), _OURS, strict=True):
            if pattern.fullmatch(rel):
                entries.append(CacheEntry(path, kind, _size(path)))
                break
    return entries


def clear_cache(root: Path | None = None) -> list[CacheEntry]:
    """Delete :func:`cache_entries` (and ``preprocessed/`` if that leaves it empty); return them."""
    root = cache_root() if root is None else Path(root)
    entries = cache_entries(root)
    for entry in entries:
        remove(entry.path)
    folder = root / "preprocessed"
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return entries
