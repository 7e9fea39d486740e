"""Attention dilution in a timm Swin Transformer on letterboxed 2-D images.

Three photographs of different aspect ratios (16:9, 4:3, 1:1; random pixels here) are letterboxed
into the model's 224x224 input: the image fills the middle rows, zero rows above and below are
padding, and the real mask says so (``real`` False there). A small timm Swin with random weights
(built with ``pretrained=False``: nothing is downloaded) is measured with ``measure_adi``; the
table gives the ADI per stage (mean over blocks and heads, seed Eq. 7) next to each image's
padding fraction. The 224x224 grid is a multiple of the window at every stage (56, 28, 14, 7),
so all the dilution comes from the letterbox bars (input padding), none from the layout; at
S3 a 32-pixel token holds real pixels unless it lies wholly inside a bar.

timm needs torchvision at import; where no working torchvision is installed, the stand-in in
``tests/torchvision_stub.py`` is used (install timm with ``pip install --no-deps timm``).

    python examples/timm_swin_letterbox.py [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path


def import_timm():
    """``import timm``, with the repository's torchvision stand-in where torchvision does not work."""
    stub = Path(__file__).resolve().parents[1] / "tests" / "torchvision_stub.py"
    if stub.exists():
        spec = importlib.util.spec_from_file_location("torchvision_stub", stub)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.install()  # a no-op where a working torchvision imports
    import timm

    return timm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    import attndilute as ad
    import attndilute.instrument.adapters  # noqa: F401 - registers the timm adapter
    from attndilute.instrument.dataset import stage_table

    timm = import_timm()
    torch.manual_seed(args.seed)
    small = dict(embed_dim=48, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))  # swin_tiny's layout, narrower
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **small).eval()

    size = 224
    aspects = {"16:9": 16 / 9, "4:3": 4 / 3, "1:1": 1.0}
    real = torch.zeros(len(aspects), size, size, dtype=torch.bool)  # (B, H, W)
    for i, ratio in enumerate(aspects.values()):
        rows = round(size / ratio)
        top = (size - rows) // 2
        real[i, top : top + rows] = True
    images = torch.randn(len(aspects), 3, size, size) * real[:, None]  # (B, C, H, W), zero letterbox bars
    ds = ad.measure_adi(model, images, real, scans=list(aspects))

    table = stage_table(ds).set_index(["scan", "stage"])
    stages = sorted(set(int(s) for s in ds["stage"].values))
    print(f"timm Swin (depths 2-2-2-2, window 7, random weights), {size}x{size} letterboxed images")
    print("ADI per stage (mean over blocks and heads, seed Eq. 7); pf = padding fraction")
    print(f"{'image':<8}{'pf':>6}" + "".join(f"{'S' + str(s):>9}" for s in stages))
    for scan in aspects:
        pf = float(ds["padding_fraction"].sel(scan=scan))
        print(f"{scan:<8}{pf:>6.2f}" + "".join(f"{table.loc[(scan, s), 'adi']:>9.4f}" for s in stages))


if __name__ == "__main__":
    main()
