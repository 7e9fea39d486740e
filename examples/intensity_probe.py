"""How a trained model's Dice depends on the image's intensity scale, case by case.

Each labelled case is preprocessed as the model was trained (its crop and spacing), multiplied
by each factor, segmented by sliding-window inference at the crop (overlap 0.5, no TTA, windows
blended as ``--blend`` says; Gaussian by default, as in ``attndilute predict``) and scored by
Dice on the real voxels. A model that finds a tumour only after darkening it has
learnt an absolute intensity window (docs/training.md, "What hides them is their brightness").

    python examples/intensity_probe.py --model R/best.safetensors --data DIR [--factors 0.8 1.0]
        [--cases phantom_015 phantom_017] [--split val|train|test|all] [--blend gaussian|constant]

``--split val`` (default) takes the trainer's default validation cases of ``DIR``'s training
split (no ``--folds``), ``train`` the rest of that split, ``all`` the whole training split, ``test``
the test split. Prints one row per case: name, median tumour intensity, Dice per
factor.
"""

from __future__ import annotations

import argparse


def main() -> None:
    import numpy as np
    import torch

    from attndilute import models
    from attndilute.data import discover, preprocess
    from attndilute.metrics import dice
    from attndilute.training.inference import sliding_window_probs
    from attndilute.training.pipeline import pad_to_crop
    from attndilute.training.splits import split_cases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--factors", type=float, nargs="+", default=[0.8, 1.0])
    parser.add_argument("--cases", nargs="*", default=None, help="case names (default: all of --split)")
    parser.add_argument("--split", choices=("val", "train", "test", "all"), default="val")
    parser.add_argument("--blend", choices=("gaussian", "constant"), default="gaussian")
    args = parser.parse_args()

    model = models.load(args.model).eval()
    crop, spacing = model.attndilute_meta["crop"], model.attndilute_meta["spacing"]
    if args.split == "test":
        cases = discover(args.data, require_labels=True, split="test")
    else:
        cases = discover(args.data, require_labels=True, split="train")
        fit, val = split_cases(cases)
        cases = {"val": val, "train": fit, "all": cases}[args.split]
    if args.cases:
        cases = [c for c in cases if c.name in set(args.cases)]
    print("case", "tumour_median", *(f"dice_x{f:g}" for f in args.factors), sep="\t")
    for case in cases:
        vol = pad_to_crop(preprocess(case, spacing=spacing), crop)  # as the trainer validates
        label = vol.label > 0
        real = torch.from_numpy(vol.real)[None]  # (1, X, Y, Z)
        scores = []
        for factor in args.factors:
            image = torch.from_numpy(vol.image * np.float32(factor))[None, None]  # (1, 1, X, Y, Z)
            probs = sliding_window_probs(model, image, real, crop, tta=False, blend=args.blend)
            pred = (probs[0].argmax(0).numpy() == 1) & vol.real
            scores.append(dice(pred, label))
        print(case.name, f"{np.median(vol.image[label]):.3f}", *(f"{s:.3f}" for s in scores), sep="\t")


if __name__ == "__main__":
    main()
