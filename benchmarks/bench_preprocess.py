"""Time seed §2.1 preprocessing of one `paper`-profile phantom case, uncached and cached.

Targets (issue 3): < 10 s uncached on 2 CPU cores, < 1 s for the cached rerun. The first
timed call is preceded by a warm-up on another case so that MONAI's import is not counted.

    python benchmarks/bench_preprocess.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    from attndilute.data import discover, preprocess, write_phantom

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_phantom(root / "paper", n=2, seed=0, profile="paper")
        generate_s = time.perf_counter() - start
        warm, case = discover(root / "paper")
        preprocess(warm, cache=False)  # imports MONAI, warms torch
        start = time.perf_counter()
        vol = preprocess(case, cache_dir=root / "cache")
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        preprocess(case, cache_dir=root / "cache")
        cached_s = time.perf_counter() - start
        source_mb = case.image.stat().st_size / 1e6
    print(f"torch threads {torch.get_num_threads()}; phantom (2 paper cases) generated in {generate_s:.1f} s")
    print(f"case {case.name}: source {source_mb:.1f} MB -> resampled {vol.shape} (L = {vol.extent:.0f})")
    print(f"preprocess uncached: {first_s:.2f} s (target < 10 s)")
    print(f"preprocess cached:   {cached_s:.3f} s (target < 1 s); ratio {first_s / cached_s:.0f}x")


if __name__ == "__main__":
    main()
