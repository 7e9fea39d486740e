"""Seed Fig. 1: tumour-aware intensity augmentation (Eq. 1) on phantom cases of both subtypes.

Rows: two Cluster-B (bright) and two Cluster-D (dark) cases; columns: the axial slice through
the tumour centroid with its label outlined in green, then three draws of
``TumorAwareIntensityd`` (prob 1, a ~ U(0.5, 1.5), b ~ U(-0.2, 0.2)). Anatomy outside the label
is identical in every column.

    python examples/fig1_tumor_aware.py fig1.png [--data PHANTOM] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from attndilute._io import atomic_path
    from attndilute.data import discover, preprocess, resolve_data
    from attndilute.training.transforms import TumorAwareIntensityd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--data", type=Path, default=None, help="phantom folder [default: embedded phantom]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    root = resolve_data(args.data)
    cases = {c.name: c for c in discover(root, require_labels=True, split="all")}
    subtype = {}
    if (root / "phantom.csv").is_file():
        with open(root / "phantom.csv", newline="") as handle:
            subtype = {r["case"]: r["subtype"] for r in csv.DictReader(handle)}
    chosen = [n for n in cases if subtype.get(n) == "B"][:2] + [n for n in cases if subtype.get(n) == "D"][:2]
    chosen = chosen or list(cases)[:4]
    transform = TumorAwareIntensityd("image", label_key="label", real_key=None, prob=1.0)
    transform.set_random_state(seed=args.seed)
    fig, axes = plt.subplots(len(chosen), 4, figsize=(8, 2.1 * len(chosen)), squeeze=False)
    for row, name in enumerate(chosen):
        vol = preprocess(cases[name])
        z = int(np.argwhere(vol.label).mean(axis=0)[2])
        image = torch.from_numpy(vol.image[None, :, :, z : z + 1].copy())  # (1, X, Y, 1)
        label = torch.from_numpy(vol.label[None, :, :, z : z + 1].astype(np.float32))
        panels, notes = [image], [""]
        for _ in range(3):
            panels.append(transform({"image": image, "label": label})["image"])
            notes.append(f"a={transform.a:.2f} b={transform.b:+.2f}")
        for col, (panel, note) in enumerate(zip(panels, notes, strict=True)):
            ax = axes[row, col]
            ax.imshow(np.rot90(panel[0, :, :, 0].numpy()), cmap="gray", vmin=0, vmax=1)
            ax.contour(np.rot90(label[0, :, :, 0].numpy()), levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(note, fontsize=7)
            if row == 0:
                ax.set_title("original" if col == 0 else f"augmented {col}", fontsize=9)
        axes[row, 0].set_ylabel(f"{'ABCD'[row]}: {name} ({subtype.get(name, '?')})", fontsize=8)
    fig.suptitle("Tumour-aware intensity augmentation (Eq. 1)", fontsize=10)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
