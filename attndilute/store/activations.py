"""The zarr v3 activation store: one array per layer, ``(n_scans, features)``, chunked per scan.

A store is a cache keyed by :class:`StoreKey` (checkpoint hash, data fingerprint, scans, layers,
pooling, crop, spacing, dtype), kept in the group attributes under ``"key"``. Opening a store
whose key differs rebuilds it and says why; it is never silently reused. Scans are written in
order and the group attribute ``"n_complete"`` is bumped after each scan's arrays are written
(the commit), so an interrupted capture resumes at the first missing scan. Before reuse, every
array's shape is checked against the key and the committed rows must be finite; a store that
fails is rebuilt. A path that exists but is no zarr store is refused, never deleted.

Layout::

    acts.zarr/                   zarr v3 group; attrs: key, n_complete, layers, version
      <layer name>/              float32 (or float16) (n_scans, features), chunks (1, features)
                                 attrs: kind, stage, block, layout, tokens, channels
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attndilute import __version__
from attndilute._io import fault_point, remove
from attndilute.errors import AttnDiluteError
from attndilute.store.capture import Pooled, n_features
from attndilute.store.layers import LayerSpec

DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class StoreKey:
    """What a store holds; two captures with equal keys produce the same arrays.

    Args:
        model_hash: SHA-256 of the weights (:func:`attndilute.store.sources.weights_hash`).
        data_fingerprint: SHA-256 over the cohort's case names and image file contents.
        scans: case names, in store row order.
        layers: captured module names, in array order.
        pool: tokens per axis, or None for no pooling.
        crop: spatial size ``(X, Y, Z)`` the scans were cropped or padded to.
        spacing: preprocessing spacing in mm.
        dtype: ``"float32"`` or ``"float16"``.
    """

    model_hash: str
    data_fingerprint: str
    scans: tuple[str, ...]
    layers: tuple[str, ...]
    pool: tuple[int, int, int] | None
    crop: tuple[int, int, int]
    spacing: tuple[float, float, float]
    dtype: str = "float32"

    def to_json(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


class ActivationStore:
    """Open (reuse, resume or rebuild) a store at ``path`` for ``key``.

    Args:
        path: the ``.zarr`` folder.
        key: what the store must hold.
        specs: the layers (same order as ``key.layers``), recorded as array attributes.

    Attributes:
        status: ``"new"``, ``"complete"`` (reused as is), ``"resumed"`` or ``"rebuilt"``.
        message: why a store was rebuilt, else ``""``.
    """

    def __init__(self, path: str | Path, key: StoreKey, specs: Sequence[LayerSpec]):
        import zarr

        if key.dtype not in DTYPES:
            raise AttnDiluteError(f"unknown store dtype {key.dtype!r}", hint=f"one of {', '.join(DTYPES)}")
        if tuple(s.name for s in specs) != tuple(key.layers):
            raise ValueError("specs and key.layers disagree")
        self.path = Path(path)
        self.key = key
        self.specs = list(specs)
        self.message = ""
        self.status = "new"
        if self.path.exists():
            if not (self.path / "zarr.json").is_file():
                raise AttnDiluteError("exists but is not an activation store; it is left as it is",
                                      path=self.path, hint="move it away, or choose another --store")
            found = self._read_key()
            wanted = key.to_json()
            problem = self._mismatch(found, wanted) if found != wanted else self._damage()
            if problem is None:
                self.status = "complete" if self._stored_complete() == len(key.scans) else "resumed"
            else:
                self.message = problem
                self.status = "rebuilt"
                remove(self.path)
        if self.status in ("new", "rebuilt"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            group = zarr.open_group(self.path, mode="w", zarr_format=3)

            group.attrs.update({"key": key.to_json(), "n_complete": 0, "version": __version__,
                                "layers": [dataclasses.asdict(s) for s in specs]})
        self.group = zarr.open_group(self.path, mode="r+", zarr_format=3)

    def _read_key(self) -> dict | None:
        import zarr

        try:
            return dict(zarr.open_group(self.path, mode="r", zarr_format=3).attrs).get("key")
        except Exception:  # unreadable or not a zarr v3 group: rebuild
            return None

    def _stored_complete(self) -> int:
        import zarr

        return int(zarr.open_group(self.path, mode="r", zarr_format=3).attrs.get("n_complete", 0))

    def _damage(self) -> str | None:
        """Why the committed rows cannot be trusted, or None: shapes and finiteness are checked."""
        import zarr

        group = zarr.open_group(self.path, mode="r", zarr_format=3)
        done = int(group.attrs.get("n_complete", 0))
        if not 0 <= done <= len(self.key.scans):
            return f"records {done} complete scans of {len(self.key.scans)}"
        for name in self.key.layers:
            if name not in group:
                if done:
                    return f"lacks the array of layer {name!r}"
                continue
            array = group[name]
            if array.ndim != 2 or array.shape[0] != len(self.key.scans):
                return f"array {name!r} has shape {array.shape}, expected ({len(self.key.scans)}, F)"
            if done and not np.isfinite(np.asarray(array[:done])).all():
                return f"array {name!r} holds non-finite values in its committed rows"
        return None

    @staticmethod
    def _mismatch(found: dict | None, wanted: dict) -> str:
        if found is None:
            return "not an activation store of this version"
        fields = [k for k in wanted if found.get(k) != wanted[k]]
        return "captured with a different " + ", ".join(fields)

    @property
    def n_scans(self) -> int:
        return len(self.key.scans)

    @property
    def n_complete(self) -> int:
        """Scans fully written; capture resumes at this row."""
        return int(self.group.attrs.get("n_complete", 0))

    @property
    def complete(self) -> bool:
        return self.n_complete == self.n_scans

    def write_scan(self, index: int, pooled: dict[str, Pooled]) -> None:
        """Write row ``index`` of every layer, then mark it complete.

        Args:
            index: must equal :attr:`n_complete` (scans are written in order).
            pooled: ``{layer name: Pooled}`` for one scan (``features`` ``(1, F)``).
        """
        if index != self.n_complete:
            raise ValueError(f"scans are written in order: expected {self.n_complete}, got {index}")
        for spec in self.specs:
            p = pooled[spec.name]
            if spec.name not in self.group:
                f = n_features(p)
                attrs = {"kind": spec.kind, "stage": spec.stage, "block": spec.block, "layout": p.layout,
                         "tokens": list(p.tokens), "channels": p.channels}
                self.group.create_array(
                    spec.name, shape=(self.n_scans, f), chunks=(1, f), dtype=self.key.dtype, fill_value=0,
                    compressors=None, dimension_names=("scan", "feature"), attributes=attrs)
            array = self.group[spec.name]
            row = p.features.reshape(-1).cpu().numpy()  # (F,)
            if row.shape[0] != array.shape[1]:
                raise AttnDiluteError(
                    f"layer {spec.name!r} gave {row.shape[0]} features, the store has {array.shape[1]}",
                    path=self.path, hint="delete the store to recapture")
            array[index] = row.astype(self.key.dtype)
            fault_point(f"store row {spec.name}")
        self.group.attrs["n_complete"] = index + 1  # the commit of this scan
        fault_point("store commit")

    def read(self, layer: str, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Rows of one layer as float32 ``(len(rows), features)``; all rows when None."""
        if not self.complete:
            raise AttnDiluteError("activation store is incomplete", path=self.path, hint="rerun the capture")
        array = self.group[layer]
        if rows is None:
            return np.asarray(array[:], dtype=np.float32)
        return np.asarray(array.oindex[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
