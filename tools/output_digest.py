"""Digest of every CLI output on a small phantom: run it before and after a refactor and compare.

    python tools/output_digest.py --work /tmp/before --digest before.json
    (change the code)
    python tools/output_digest.py --work /tmp/after --digest after.json --against before.json

It runs ``phantom``, ``padstats``, ``subtypes``, ``train`` (two presets, one epoch), ``predict``,
``evaluate``, ``compare``, ``correlate``, ``adi`` and ``cka`` through the CLI on 8 cases, then hashes
every CSV (rows as written, minus columns that record time or paths) and every zarr array (values,
dtype, shape, dims). ``--against`` lists the entries that differ and exits 1 if any do. Outputs on
CPU are deterministic for a seed, so the same code on the same machine gives the same digest;
another CPU or library version may differ in the last bits of the floats.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

#: Columns that record when, how long or where: not part of the behaviour.
VOLATILE = {"seconds", "time", "wall_seconds", "started", "finished", "path", "pred_path", "label_path",
            "image", "label", "file"}


def _cli(*args: str) -> None:
    exe = Path(sys.executable).with_name("attndilute")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"attndilute {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def run_pipeline(work: Path) -> None:
    """Every command that writes a CSV or a zarr store, on an 8-case phantom."""
    d = work / "data"
    _cli("phantom", "--out", str(d), "--n", "8", "--seed", "3")
    _cli("padstats", "--data", str(d), "--crop", "64", "64", "32", "--out", str(work / "padstats.csv"))
    _cli("subtypes", "--data", str(d), "--out", str(work / "subtypes"))
    for name, preset in (("base", "tiny"), ("act", "tiny-act")):
        run = work / "runs" / name
        _cli("train", "--data", str(d), "--out", str(run), "--preset", preset, "--epochs", "1",
             "--val-every", "1", "--device", "cpu")
        _cli("predict", "--model", str(run / "best.safetensors"), "--data", str(d),
             "--out", str(work / "preds" / name), "--device", "cpu")
        _cli("adi", "--model", str(run / "best.safetensors"), "--data", str(d), "--out",
             str(work / "adi" / name), "--device", "cpu")
        _cli("evaluate", "--pred", str(work / "preds" / name), "--data", str(d), "--out",
             str(work / "eval" / f"{name}.csv"), "--padstats", str(work / "padstats.csv"),
             "--adi", str(work / "adi" / name / "adi_stages.csv"),
             "--subtypes", str(work / "subtypes" / "features.csv"))
    _cli("compare", str(work / "eval" / "base.csv"), str(work / "eval" / "act.csv"), "--out",
         str(work / "eval" / "table.csv"))
    _cli("correlate", "--eval", str(work / "eval" / "act.csv"), "--out", str(work / "correlate"))
    runs = work / "runs"
    _cli("cka", str(runs / "base" / "best.safetensors"), str(runs / "act" / "best.safetensors"), "--data",
         str(d), "--out", str(work / "cka"), "--batch-size", "4", "--device", "cpu")


def _csv_digest(path: Path) -> str:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        return hashlib.sha256(b"").hexdigest()
    keep = [i for i, name in enumerate(rows[0]) if name not in VOLATILE]
    text = "\n".join(",".join(row[i] for i in keep if i < len(row)) for row in rows)
    return hashlib.sha256(text.encode()).hexdigest()


def _zarr_digests(path: Path) -> dict[str, str]:
    import numpy as np
    import zarr

    out = {}
    group = zarr.open_group(str(path), mode="r")
    for name, array in sorted(group.arrays()):
        values = np.asarray(array[...])
        h = hashlib.sha256(f"{values.dtype}{values.shape}{array.attrs.get('_ARRAY_DIMENSIONS', '')}".encode())
        h.update(values.tobytes() if values.dtype != object else repr(values.tolist()).encode())
        out[name] = h.hexdigest()
    return out


def digest(work: Path) -> dict[str, str]:
    """``{relative path[:array]: sha256}`` of every CSV and zarr array under ``work``.

    Activation stores are named ``<model>-<weights hash>.zarr``; the hash is an identity, not a
    result, so stores are keyed ``<model>-<n>.zarr`` in the order of their contents' digests.
    """
    entries: dict[str, str] = {}
    stores: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for path in sorted(work.rglob("*")):
        rel = path.relative_to(work).as_posix()
        if any(part.endswith(".zarr") for part in path.relative_to(work).parts[:-1]):
            continue
        if path.suffix == ".csv" and path.is_file():
            entries[rel] = _csv_digest(path)
        elif path.suffix == ".zarr" and path.is_dir():
            arrays = _zarr_digests(path)
            stem = re.sub(r"-[0-9a-f]{12}\.zarr$", "", rel)
            if stem == rel:
                entries.update({f"{rel}:{k}": v for k, v in arrays.items()})
            else:
                stores.setdefault(stem, []).append((json.dumps(arrays, sort_keys=True), arrays))
    for stem, found in stores.items():
        for n, (_, arrays) in enumerate(sorted(found, key=lambda item: item[0])):
            entries.update({f"{stem}-{n}.zarr:{k}": v for k, v in arrays.items()})
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder to run in (must not exist)")
    parser.add_argument("--digest", type=Path, required=True, help="JSON digest to write")
    parser.add_argument("--against", type=Path, help="an earlier digest to compare with")
    args = parser.parse_args(argv)
    if args.work.exists():
        raise SystemExit(f"{args.work} exists: choose a new --work folder")
    run_pipeline(args.work)
    entries = digest(args.work)
    args.digest.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    print(f"{len(entries)} outputs digested into {args.digest}")
    if args.against is None:
        return 0
    before = json.loads(args.against.read_text())
    changed = sorted(k for k in before.keys() | entries.keys() if before.get(k) != entries.get(k))
    for key in changed:
        print(f"differs: {key}")
    print("same outputs" if not changed else f"{len(changed)} of {len(before)} outputs differ")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
