"""Attention dilution in a 2-D MONAI Swin UNETR on letterboxed slices (random weights).

Two 96x128 slices are letterboxed into a 128x128 input: one padded top and bottom, one left and
right. ``real`` marks the image pixels. The table gives the per-stage ADI (seed Eq. 7, mean over
blocks and heads) split into input padding (the letterbox bars) and layout padding (added by the
model to fill its windows), with windows pooled and averaged (``windows="mean"``).

    python examples/monai_2d.py [--seed 0]
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from monai.networks.nets import SwinUNETR

    import attndilute as ad

    torch.manual_seed(args.seed)
    model = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2, use_v2=True).eval()
    images = torch.zeros(2, 1, 128, 128)
    real = torch.zeros(2, 128, 128, dtype=torch.bool)
    real[0, 16:112, :] = True  # bars top and bottom
    real[1, :, 16:112] = True  # bars left and right
    images[real[:, None]] = torch.rand(int(real.sum()))
    pooled = ad.measure_adi(model, images, real, scans=["top-bottom", "left-right"])
    mean = ad.measure_adi(model, images, real, scans=["top-bottom", "left-right"], windows="mean")

    def stage(ds, var):
        return ds[var].groupby("stage").mean(("layer", "head")).values  # (scan, stage)

    print(
        "MONAI SwinUNETR 2-D (feature 12, random weights), padding fraction "
        + ", ".join(
            f"{s}={v:.2f}" for s, v in zip(pooled.scan.values, pooled.padding_fraction.values, strict=True)
        )
    )
    print(
        f"{'scan':<11} {'stage':>5} {'ADI':>7} {'input pad':>9} {'layout pad':>10} "
        f"{'ADI (mean of windows)':>21}"
    )
    for i, scan in enumerate(pooled.scan.values):
        rows = zip(
            stage(pooled, "adi")[i],
            stage(pooled, "adi_input_pad")[i],
            stage(pooled, "adi_layout_pad")[i],
            stage(mean, "adi")[i],
            strict=True,
        )
        for s, (adi, inp, lay, win) in enumerate(rows):
            print(f"{scan:<11} {'S' + str(s):>5} {adi:7.4f} {inp:9.4f} {lay:10.4f} {win:21.4f}")


if __name__ == "__main__":
    main()
