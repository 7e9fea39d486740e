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

(3) With ``--layouts``: the 64^3 ``smit-tiny`` step (batch 2) in the default memory order, in
``channels_last_3d`` (what the trainer does) and with CPU bf16 autocast on top.

    OMP_NUM_THREADS=2 python benchmarks/bench_train.py [--steps 6] [--rounds 3] [--paper] [--layouts]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from attndilute.training.precision import PRECISIONS, resolve_precision


def step_fn(model, device, precision, lr=3e-4, memory_format=torch.channels_last_3d):
    """The trainer's own step (``attndilute.training.step``): Dice + CE, clip, AdamW, channels_last_3d."""
    from monai.losses import DiceCELoss

    from attndilute.training.step import make_step, to_device

    to_device(model, device, memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    step = make_step(model, optimizer, DiceCELoss(to_onehot_y=True, softmax=True), device=device,
                     precision=precision, memory_format=memory_format)  # fmt: skip

    def timed(image, label, real):
        loss = float(step(image, label, real))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return loss

    return timed


def median_step(model, crop, *, reps: int, device, precision="auto", batch=1,
                memory_format=torch.channels_last_3d) -> float:  # fmt: skip
    """Median seconds of ``reps`` training steps of ``model`` on one random batch (after a warm-up)."""
    step = step_fn(model, device, precision, memory_format=memory_format)
    x = torch.rand(batch, 1, *crop)
    y = torch.randint(0, 2, (batch, 1, *crop))
    r = torch.ones(batch, *crop, dtype=torch.bool)
    step(x, y, r)  # warm-up
    samples = []
    for _ in range(reps):
        tic = time.perf_counter()
        step(x, y, r)
        samples.append(time.perf_counter() - tic)
    return statistics.median(samples)


def pipeline_vs_random(config, data_root: Path, *, steps: int, rounds: int, device, seed=0):
    """Median seconds per step for the real loader and for pre-made random tensors; returns (real, random)."""
    from attndilute import models
    from attndilute.data import discover
    from attndilute.training.pipeline import CropDataset, load_volumes, make_loader

    torch.manual_seed(seed)
    model = models.build(config.model, crop=config.crop, spacing=config.spacing)
    step = step_fn(model, device, config.precision, lr=config.lr)
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


def act_vs_cubic(model_name: str, cubic, act, *, reps: int, device, precision="auto", batch=1):
    """Median seconds per training step at the cubic and the ACT crop (random inputs): (cubic, act)."""
    from attndilute import models

    out = {}
    for crop in (cubic, act):
        torch.manual_seed(0)
        model = models.build(model_name, crop=crop)
        out[crop] = median_step(model, crop, reps=reps, device=device, precision=precision, batch=batch)
        del model
    return out[cubic], out[act]


def layouts(model_name: str, crop, *, reps: int, device, batch=2):
    """Median seconds per training step in the default memory order, in ``channels_last_3d`` and in
    ``channels_last_3d`` with bf16 autocast: dict name -> seconds (random inputs, batch 2)."""
    from attndilute import models

    out = {}
    for name, memory_format, precision in (
        ("contiguous", torch.contiguous_format, "fp32"),
        ("channels_last_3d", torch.channels_last_3d, "fp32"),
        ("channels_last_3d + bf16", torch.channels_last_3d, "bf16"),
    ):
        torch.manual_seed(0)
        model = models.build(model_name, crop=crop)
        out[name] = median_step(model, crop, reps=reps, device=device, precision=precision, batch=batch,
                                memory_format=memory_format)  # fmt: skip
    return out


def main() -> None:
    from attndilute.data import write_phantom
    from attndilute.training.train_presets import resolve_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="steps per round and loop")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3, help="timed steps per crop in the ACT comparison")
    parser.add_argument("--paper", action="store_true", help="also time smit-paper 128^3 vs 128x128x64")
    parser.add_argument("--preset", default="tiny-act", help="training preset of the pipeline comparison")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="autocast (trainer setting)")
    parser.add_argument("--layouts", action="store_true",
                        help="also time the smit-tiny 64^3 step in three layouts")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    device = torch.device("cpu")
    config = resolve_config(args.preset, tumor_aware=True, precision=args.precision)
    print(f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}, precision {args.precision} -> "
          f"{resolve_precision(args.precision, device)}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ATTNDILUTE_CACHE", str(Path(tmp) / "cache"))
        write_phantom(Path(tmp) / "ph", n=8, seed=0, profile="small")
        real_s, random_s = pipeline_vs_random(
            config, Path(tmp) / "ph", steps=args.steps, rounds=args.rounds, device=device
        )
    print(f"(1) pipeline, preset {args.preset} ({config.model}, crop {config.crop}, "
          f"batch {config.batch_size}, TA on): real {1 / real_s:.3f} steps/s, "
          f"random tensors {1 / random_s:.3f} steps/s, "
          f"ratio {random_s / real_s:.3f} (target >= 0.9)")  # fmt: skip
    pairs = [("smit-tiny", (64, 64, 64), (64, 64, 32))]
    if args.paper:
        pairs.append(("smit-paper", (128, 128, 128), (128, 128, 64)))
    for name, cubic, act in pairs:
        c, a = act_vs_cubic(name, cubic, act, reps=args.reps, device=device, precision=args.precision)
        print(f"(2) {name} train step, batch 1: cubic {cubic} {c:.2f} s, ACT {act} {a:.2f} s, "
              f"ACT/cubic {a / c:.3f} ({100 * (a / c - 1):+.0f}%; seed: -56%)")  # fmt: skip
    if args.layouts:
        times = layouts("smit-tiny", (64, 64, 64), reps=max(args.reps, 5), device=device)
        base = times["contiguous"]
        print("(3) smit-tiny train step, 64^3, batch 2: "
              + ", ".join(f"{k} {v:.2f} s ({base / v:.2f}x)" for k, v in times.items()))  # fmt: skip


if __name__ == "__main__":
    main()
