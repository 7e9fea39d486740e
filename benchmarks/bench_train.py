"""Trainer throughput on CPU: (1) does the data pipeline starve the model? (2) ACT vs cubic step cost.

(1) Steps/s of the real training step fed by the real pipeline (preprocessed phantom volumes in
memory, pos/neg crops, flips, rotations, tumour-aware augmentation, DataLoader) against the same
step fed with random tensors of the same shapes, prepared in advance. Target (DESIGN §6):
ratio >= 0.9. Rounds alternate between the two loops so machine load hits both alike; the
median step time per loop is reported.

(2) Forward + backward + AdamW step of SMIT with the ACT crop (X x Y x Z/2) against the cubic
crop, batch 1. On 2 CPU cores the seed's 128^3 SMIT (64.7 M parameters) is too slow to time
repeatedly, so by default this measures ``smit-tiny`` at 64^3 vs 64x64x32 (same patch 2,
window 4, four stages); ``--paper`` adds smit-paper at 128^3 vs 128x128x64 (seed: -56%).

    OMP_NUM_THREADS=2 python benchmarks/bench_train.py [--steps 6] [--rounds 3] [--paper]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def step_fn(model, optimizer, loss_fn, device, autocast):
    """One training step exactly as the trainer does it (Dice + CE, clip, AdamW)."""

    def step(image, label, real):
        image, label, real = image.to(device), label.to(device), real.to(device)
        with autocast():
            logits = model(image, real=real)
        loss = loss_fn(logits.float(), label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())

    return step


def pipeline_vs_random(config, data_root: Path, *, steps: int, rounds: int, device, autocast, seed=0):
    """Median seconds per step for the real loader and for pre-made random tensors; returns (real, random)."""
    from monai.losses import DiceCELoss

    from attndilute import models
    from attndilute.data import discover
    from attndilute.training.pipeline import CropDataset, load_volumes, make_loader

    torch.manual_seed(seed)
    model = models.build(config.model, crop=config.crop, spacing=config.spacing).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = step_fn(model, optimizer, DiceCELoss(to_onehot_y=True, softmax=True), device, autocast)
    volumes = load_volumes(discover(data_root, require_labels=True, split="train"), config)
    dataset = CropDataset(volumes, config, seed=seed)
    loader = make_loader(dataset, config.batch_size, seed=seed)
    b = config.batch_size
    shape = (b, 1, *config.crop)
    fake = [
        tuple(
            t.to(device)
            for t in (
                torch.rand(shape),
                torch.randint(0, 2, shape),
                torch.ones(shape[:1] + shape[2:], dtype=torch.bool),
            )
        )
        for _ in range(steps)
    ]
    step(*fake[0])  # warm-up (allocator, MONAI imports)
    times = {"real": [], "random": []}
    epoch = 0
    for _ in range(rounds):
        for kind in ("real", "random"):
            if kind == "real":
                epoch += 1
                dataset.set_epoch(epoch)
                loader.sampler.set_epoch(epoch)
                batches = iter(loader)
            done = 0
            tic = time.perf_counter()
            while done < steps:
                if kind == "real":
                    try:
                        batch = next(batches)
                    except StopIteration:
                        epoch += 1
                        dataset.set_epoch(epoch)
                        loader.sampler.set_epoch(epoch)
                        batches = iter(loader)
                        continue
                    step(batch["image"], batch["label"], batch["real"])
                else:
                    step(*fake[done])
                done += 1
            times[kind].append((time.perf_counter() - tic) / steps)
    return statistics.median(times["real"]), statistics.median(times["random"])


def act_vs_cubic(model_name: str, cubic, act, *, reps: int, device, autocast, batch=1):
    """Median seconds per training step at the cubic and the ACT crop (random inputs): (cubic, act)."""
    from monai.losses import DiceCELoss

    from attndilute import models

    out = {}
    for crop in (cubic, act):
        torch.manual_seed(0)
        model = models.build(model_name, crop=crop).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        step = step_fn(model, optimizer, DiceCELoss(to_onehot_y=True, softmax=True), device, autocast)
        x = torch.rand(batch, 1, *crop)
        y = torch.randint(0, 2, (batch, 1, *crop))
        r = torch.ones(batch, *crop, dtype=torch.bool)
        step(x, y, r)  # warm-up
        samples = []
        for _ in range(reps):
            tic = time.perf_counter()
            step(x, y, r)
            samples.append(time.perf_counter() - tic)
        out[crop] = statistics.median(samples)
        del model, optimizer
    return out[cubic], out[act]


def main() -> None:
    import contextlib

    from attndilute.data import write_phantom
    from attndilute.training.presets import resolve_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="steps per round and loop")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3, help="timed steps per crop in the ACT comparison")
    parser.add_argument("--paper", action="store_true", help="also time smit-paper 128^3 vs 128x128x64")
    parser.add_argument("--preset", default="tiny-act", help="training preset of the pipeline comparison")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    device, autocast = torch.device("cpu"), contextlib.nullcontext
    config = resolve_config(args.preset, tumor_aware=True)
    print(f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ATTNDILUTE_CACHE", str(Path(tmp) / "cache"))
        write_phantom(Path(tmp) / "ph", n=8, seed=0, profile="small")
        real_s, random_s = pipeline_vs_random(
            config, Path(tmp) / "ph", steps=args.steps, rounds=args.rounds, device=device, autocast=autocast
        )
    print(f"(1) pipeline, preset {args.preset} ({config.model}, crop {config.crop}, "
          f"batch {config.batch_size}, TA on): real {1 / real_s:.3f} steps/s, "
          f"random tensors {1 / random_s:.3f} steps/s, "
          f"ratio {random_s / real_s:.3f} (target >= 0.9)")  # fmt: skip
    pairs = [("smit-tiny", (64, 64, 64), (64, 64, 32))]
    if args.paper:
        pairs.append(("smit-paper", (128, 128, 128), (128, 128, 64)))
    for name, cubic, act in pairs:
        c, a = act_vs_cubic(name, cubic, act, reps=args.reps, device=device, autocast=autocast)
        print(f"(2) {name} train step, batch 1: cubic {cubic} {c:.2f} s, ACT {act} {a:.2f} s, "
              f"ACT/cubic {a / c:.3f} ({100 * (a / c - 1):+.0f}%; seed: -56%)")  # fmt: skip


if __name__ == "__main__":
    main()
