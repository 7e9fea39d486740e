"""Online ADI on one GPU in bf16: time and peak memory against the plain forward, and a cohort.

For MONAI SwinUNETR feature 48 at 96^3, 128x128x64 and 128^3 (the last quarter of the slices
padding), the plain forward and ``measure_adi`` run alternately (A B B A ...) under
``torch.autocast(bfloat16)``; time is the median over ``--repeats`` (CUDA-synchronised), memory
the peak allocated by each (``torch.cuda.max_memory_allocated``, reset before each run; the
CPU smoke mode reports the process's peak RSS, which only grows, so its memory ratio means little). Then
``attndilute adi`` runs on a phantom cohort of ``--cohort`` scans (247 by default, the size of
the seed's cohort) and reports seconds per scan.

    python benchmarks/gpu_adi.py [--repeats 5] [--cohort 247]
    python benchmarks/gpu_adi.py --smoke     # CPU, float32, a small model and 2 scans (the tests)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adi import ratio_row  # noqa: E402 - the sibling benchmark's row builder

SIZES = {"96^3": (96, 96, 96), "128x128x64": (128, 128, 64), "128^3": (128, 128, 128)}


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device) -> float:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # CPU: the process's peak RSS


def side_by_side(model, size, device, dtype, repeats: int) -> dict:
    """Interleaved plain forward and ``measure_adi`` on one (1, 1, *size) input."""
    import torch

    from attndilute.instrument import measure_adi

    real = torch.ones(1, *size, dtype=torch.bool, device=device)
    real[..., -size[-1] // 4 :] = False
    x = torch.randn(1, 1, *size, device=device) * real[:, None]

    def plain():
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            model(x)

    def adi():
        measure_adi(model, x, real, autocast_dtype=dtype)

    times: dict[str, list[float]] = {"plain": [], "adi": []}
    peaks: dict[str, float] = {}
    for r in range(repeats + 1):  # round 0 warms up
        for name, fn in (("plain", plain), ("adi", adi)) if r % 2 else (("adi", adi), ("plain", plain)):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            if r:
                times[name].append(time.perf_counter() - t)
            peaks[name] = max(peaks.get(name, 0.0), _peak(device))
    return ratio_row(times, peaks, size="x".join(map(str, size)))


def cohort(n: int, preset: str, device, autocast: str | None, crop=None) -> dict:
    """``attndilute adi`` (the library call behind the command) on an ``n``-scan phantom."""
    from attndilute.data import write_phantom
    from attndilute.study.adi import run_adi

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_phantom(data, n=n, seed=0, profile="small")
        run = run_adi(f"random:{preset}", out=Path(tmp) / "adi", data=data, device=str(device),
                      autocast=autocast, batch_size=2, crop=crop)
    scans = len(run.dataset["scan"])
    return {"cohort_scans": scans, "cohort_s": run.seconds, "s_per_scan": run.seconds / scans,
            "forward_share": run.forward_seconds / run.seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cohort", type=int, default=247)
    parser.add_argument("--smoke", action="store_true", help="CPU, float32, small model, 2 scans")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch

    from attndilute import models

    torch.manual_seed(0)
    if args.smoke:
        device, dtype, autocast, repeats = torch.device("cpu"), None, None, 1
        model = models.build("swin-tiny").eval()
        sizes, n, preset, crop = {"64x32x32": (64, 32, 32)}, 2, "swin-tiny", (64, 32, 32)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_adi.py: no CUDA device here (use --smoke on CPU)")
        device, dtype, autocast, repeats = torch.device("cuda"), torch.bfloat16, "bf16", args.repeats
        model = models.build("swin-unetr", feature_size=48, window_size=7).to(device).eval()
        sizes, n, preset, crop = SIZES, args.cohort, "swin-paper", None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# gpu_adi on {name}, {'bf16' if dtype else 'float32'}, median of {repeats} interleaved repeats")
    print(
        f"{'input':12s} {'plain s':>8s} {'ADI s':>8s} {'time x':>7s} "
        f"{'plain MB':>9s} {'ADI MB':>8s} {'mem x':>6s}"
    )
    rows = []
    for label, size in sizes.items():
        row = side_by_side(model, size, device, dtype, repeats)
        rows.append(row)
        print(
            f"{label:12s} {row['plain_s']:8.3f} {row['adi_s']:8.3f} {row['time_ratio']:7.2f} "
            f"{row['plain_mb']:9.0f} {row['adi_mb']:8.0f} {row['memory_ratio']:6.2f}"
        )
    result = cohort(n, preset, device, autocast, crop)
    print(
        f"attndilute adi on {result['cohort_scans']} phantom scans ({preset}): "
        f"{result['s_per_scan']:.2f} s per scan, "
        f"{result['forward_share']:.0%} of the time inside the forwards"
    )
    if args.json:
        args.json.write_text(json.dumps({"device": name, "sizes": rows, "cohort": result}, indent=1))


if __name__ == "__main__":
    main()
