"""Crash-safe results in parts: each batch's Dataset becomes visible only once it is complete.

A run that measures a cohort batch by batch (``attndilute adi``) commits every batch as one file
``NNNNN.npz`` in a parts folder: written under a temporary name, then renamed. The rename is the
commit, so a kill at any moment leaves either a whole part or a temporary file that is never
read. Each part records what it must hold (its run key, its scans, and the count of NaN cells of
every variable); on resume a part is reused only if it still matches, and anything else in the
folder is this run's own debris and is removed. When the run is complete the parts become one
zarr store (:func:`attndilute._io.write_zarr`).

A part is a plain ``.npz`` (numpy arrays, strings as fixed-width unicode, never pickled) with the
Dataset's structure as JSON, rather than a zarr store: one file is one rename, and it costs a few
milliseconds where a zarr store of the ~30 ADI variables costs about a second per batch.

Layout::

    PARTS/            one folder per run output (inside the run's claimed --out)
      00000.npz       arrays "v/<name>" per variable and coordinate, "meta" = JSON
      00001.npz       {key, scans, nan, dims, attrs, coords, data_vars}
      .00002.npz.tmp-PID   an uncommitted part (removed on resume)
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attndilute._io import atomic_path, fault_point, remove

_PART = re.compile(r"^(\d{5})\.npz$")


def _nan_counts(ds) -> dict[str, int]:
    """NaN cells per floating-point variable: the fingerprint a reused part must still show."""
    return {name: int(np.isnan(var.values).sum()) for name, var in ds.data_vars.items()
            if np.issubdtype(var.dtype, np.floating)}


class Parts:
    """The committed parts of one run, keyed by ``key`` (any JSON-able dict).

    Args:
        folder: the parts folder (created when the first part is committed).
        key: what the run measures; parts of another key are removed, never reused.
    """

    def __init__(self, folder: str | Path, key: dict):
        self.folder = Path(folder)
        self.key = json.loads(json.dumps(key))
        self.parts: list[tuple[Path, list[str]]] = []  # committed: (path, scans)
        if self.folder.is_dir():
            self._scan()

    def _scan(self) -> None:

        for entry in sorted(self.folder.iterdir()):
            match = _PART.match(entry.name)
            reason = None if match else "uncommitted"
            if match:
                try:
                    ds, record = read_part(entry)
                    reason = self._mismatch(ds, record)
                except Exception as err:  # noqa: BLE001 - an unreadable part is rebuilt, never trusted
                    reason = f"unreadable ({type(err).__name__})"
            if reason is None:
                self.parts.append((entry, record["scans"]))
                continue
            if reason != "uncommitted":
                print(f"note: {entry}: {reason}; it is measured again", file=sys.stderr)
            remove(entry)

    def _mismatch(self, ds, record: dict) -> str | None:
        if record.get("key") != self.key:
            return "from a run with other settings"
        scans = [str(s) for s in ds["scan"].values]
        if scans != record.get("scans"):
            return f"holds {len(scans)} scans, its record {len(record.get('scans', []))}"
        if _nan_counts(ds) != record.get("nan"):
            return "its values changed since it was written (NaN pattern differs)"
        return None

    @property
    def scans(self) -> list[str]:
        """Scans in committed parts, in commit order."""
        return [s for _, scans in self.parts for s in scans]

    def commit(self, ds) -> Path:
        """Write one batch's Dataset (dims ``scan, ...``) as the next part, atomically."""
        index = max((int(_PART.match(p.name)[1]) for p, _ in self.parts), default=-1) + 1
        path = self.folder / f"{index:05d}.npz"  # never the name of a committed part
        scans = [str(s) for s in ds["scan"].values]
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fault_point("part begin")
            write_part(ds, tmp, {"key": self.key, "scans": scans, "nan": _nan_counts(ds)})
            fault_point("part written")
        self.parts.append((path, scans))
        return path

    def combine(self, order: Sequence[str]):
        """All committed parts as one Dataset, scans in ``order``; attrs of the first part."""
        import xarray as xr

        pieces = [read_part(p)[0] for p, _ in self.parts]
        ds = xr.concat(pieces, dim="scan", combine_attrs="override") if len(pieces) > 1 else pieces[0]
        _, first = np.unique(ds["scan"].values.astype(str), return_index=True)
        return ds.isel(scan=np.sort(first)).sel(scan=list(order))  # a scan measured twice counts once

    def clear(self) -> None:
        """Remove the parts folder once its contents are in the final store."""
        remove(self.folder)


def write_part(ds, path: Path, record: dict) -> None:
    """One Dataset as ``.npz``: every variable's values, and its structure plus ``record`` as JSON."""
    arrays, layout = {}, {"coords": {}, "data_vars": {}}
    for group, items in (("coords", ds.coords.items()), ("data_vars", ds.data_vars.items())):
        for name, var in items:
            values = np.asarray(var.values)
            text = values.dtype == object
            arrays[f"v/{name}"] = values.astype(str) if text else values
            layout[group][name] = {"dims": list(var.dims), "attrs": dict(var.attrs), "text": bool(text)}
    meta = {**record, **layout, "attrs": dict(ds.attrs)}
    with open(path, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def read_part(path: Path):
    """A part written by :func:`write_part`: ``(Dataset, record)``; nothing is unpickled."""
    import xarray as xr

    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))

        def var(name, spec):
            values = npz[f"v/{name}"]
            return xr.Variable(spec["dims"], values.astype(object) if spec["text"] else values, spec["attrs"])

        coords = {n: var(n, spec) for n, spec in meta.pop("coords").items()}
        data = {n: var(n, spec) for n, spec in meta.pop("data_vars").items()}
    ds = xr.Dataset(data, coords=coords, attrs=meta.pop("attrs"))
    return ds, meta
