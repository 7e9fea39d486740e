"""Trainer throughput on one GPU in bf16: pipeline starvation ratio and ACT vs cubic step cost.

Not run in the CPU sandbox (no GPU there); run it on a CUDA machine:

    python benchmarks/gpu_train.py [--steps 20] [--rounds 3] [--cases 8]

(1) The real pipeline (a ``paper``-profile phantom preprocessed at 1 mm, preset ``smit-act``:
pos/neg crops 128x128x64, flips, rotations, tumour-aware augmentation, DataLoader workers,
pinned memory) against random tensors already on the GPU, same shapes, bf16 autocast.
Target: ratio >= 0.9 (DESIGN §6).
(2) smit-paper and swin-paper training steps (batch 2, bf16) at the cubic crop (128^3 and 96^3)
against the ACT crop 128x128x64; the seed reports -56% for SMIT.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import act_vs_cubic, pipeline_vs_random  # noqa: E402


def main() -> None:
    from attndilute.data import write_phantom
    from attndilute.training.train_presets import resolve_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--cases", type=int, default=8, help="phantom cases (paper profile) for the pipeline")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers [default: auto]")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_train.py needs CUDA; on CPU run benchmarks/bench_train.py")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name()
    print(f"{time.strftime('%Y-%m-%d')}, {name}, torch {torch.__version__}, bf16 autocast")
    config = resolve_config("smit-act", workers=args.workers, precision="bf16")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ATTNDILUTE_CACHE", str(Path(tmp) / "cache"))
        write_phantom(Path(tmp) / "ph", n=args.cases, seed=0, profile="paper")
        real_s, random_s = pipeline_vs_random(
            config, Path(tmp) / "ph", steps=args.steps, rounds=args.rounds, device=device
        )
    ratio = random_s / real_s
    print(f"(1) pipeline smit-act (crop {config.crop}, batch {config.batch_size}):")
    print(f"    real {1 / real_s:.2f} steps/s, random {1 / random_s:.2f} steps/s, ratio {ratio:.3f} (>= 0.9)")
    for name, cubic in (("smit-paper", (128, 128, 128)), ("swin-paper", (96, 96, 96))):
        act = (128, 128, 64)
        c, a = act_vs_cubic(name, cubic, act, reps=args.reps, device=device, precision="bf16", batch=2)
        change = 100 * (a / c - 1)
        print(f"(2) {name} train step, batch 2: cubic {cubic} {1000 * c:.0f} ms, ACT {act} {1000 * a:.0f} ms")
        print(f"    ACT/cubic {a / c:.3f} ({change:+.0f}%; seed SMIT: -56%)")
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
