"""The Swin UNETR window artifact (seed §3.2.1), measured by the tool itself.

One phantom scan is cropped to 128x128x64 (axial extent longer than 64: no input padding at all)
and measured with seed-fixed random weights for MONAI Swin UNETR (window 7) and SMIT (window 4).
Window 7 does not divide the 64x64x32 stage-0 grid, so MONAI pads every stage to a multiple of 7
and the real tokens attend to that layout padding; window 4 divides every grid, so SMIT has none.

    python examples/window_artifact.py docs/img/window_artifact.png [--data DIR]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--data", default=None)
    parser.add_argument("--case", type=int, default=0)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attndilute import models
    from attndilute.data import crop_or_pad, discover, preprocess, resolve_data
    from attndilute.instrument import measure_adi
    from attndilute.instrument.dataset import stage_table

    crop = (128, 128, 64)
    case = discover(resolve_data(args.data))[args.case]
    vol = crop_or_pad(preprocess(case), crop)
    x = torch.from_numpy(np.ascontiguousarray(vol.image))[None, None]
    real = torch.from_numpy(np.ascontiguousarray(vol.real))[None]
    configs = {
        "Swin UNETR, window 7": dict(name="swin_unetr", feature_size=12, window_size=7),
        "SMIT, window 4": dict(name="smit-tiny"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True, constrained_layout=True)
    for ax, (label, kw) in zip(axes, configs.items(), strict=True):
        torch.manual_seed(0)
        model = models.build(kw.pop("name"), **kw).eval()
        stages = stage_table(measure_adi(model, x, real, scans=[case.name]))
        names = [f"S{s}" for s in stages["stage"]]
        ax.bar(names, stages["adi_input_pad"], color="#c0392b", label="input padding")
        ax.bar(
            names,
            stages["adi_layout_pad"],
            bottom=stages["adi_input_pad"],
            color="#7f8c8d",
            label="layout padding",
        )
        ax.set_title(f"{label}\npf = {vol.padding_fraction:.2f}", fontsize=9)
        print(label, stages[["stage", "adi", "adi_input_pad", "adi_layout_pad"]].to_string(index=False))
    axes[0].set_ylabel("ADI (random weights)")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle(f"{case.name} at 128x128x64: attention to padding without any padded slice", fontsize=10)
    fig.savefig(args.out, dpi=130)


if __name__ == "__main__":
    main()
