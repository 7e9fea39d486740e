"""Attention dilution in a timm Vision Transformer whose attention is fused by default.

timm's ``Attention`` calls ``F.scaled_dot_product_attention`` when ``fused_attn`` is on (the
default), which never forms the attention weights. ``measure_adi`` switches it off for the
measurement only, reads the weights at the input of ``attn_drop`` (before any dropout), and puts
the switch back, which this example checks. A small ViT with random weights (``pretrained=False``:
nothing is downloaded) reads three letterboxed 224x224 images; the class token is a real token,
and a 16x16 patch is real if any of its pixels is. The table gives the ADI per block (mean over
heads, seed Eq. 7) and, last, the stage mean (a ViT has one stage).

timm needs torchvision at import; where no working torchvision is installed, the stand-in in
``tests/torchvision_stub.py`` is used (install timm with ``pip install --no-deps timm``).

    python examples/timm_vit.py [--seed 0]
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
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=6).eval()
    fused_before = [blk.attn.fused_attn for blk in model.blocks]

    size = 224
    bars = {"16:9": 49, "4:3": 28, "1:1": 0}  # letterbox bar height (pixels) above and below
    real = torch.ones(len(bars), size, size, dtype=torch.bool)  # (B, H, W)
    for i, bar in enumerate(bars.values()):
        real[i, :bar] = False
        real[i, size - bar :] = False
    images = torch.randn(len(bars), 3, size, size) * real[:, None]
    ds = ad.measure_adi(model, images, real, scans=list(bars))
    fused_after = [blk.attn.fused_attn for blk in model.blocks]

    print(f"timm ViT-Tiny/16 (6 blocks x 3 heads, random weights), fused_attn before: {all(fused_before)}, "
          f"after: {all(fused_after)}")
    pf = ds["padding_fraction"]
    print("ADI per block (mean over heads, seed Eq. 7); padding fraction "
          + ", ".join(f"{s}={float(pf.sel(scan=s)):.2f}" for s in bars))
    print(f"{'block':<10}" + "".join(f"{s:>9}" for s in bars))
    adi = ds["adi"].mean("head")  # (scan, layer)
    for layer in range(ds.sizes["layer"]):
        print(f"{ds['name'].values[layer]:<10}" + "".join(f"{float(v):>9.4f}" for v in adi.isel(layer=layer)))
    stages = stage_table(ds).set_index(["scan", "stage"])["adi"]
    print(f"{'stage S0':<10}" + "".join(f"{stages[(s, 0)]:>9.4f}" for s in bars))
    if fused_after != fused_before:
        raise SystemExit("fused_attn was not restored")


if __name__ == "__main__":
    main()
