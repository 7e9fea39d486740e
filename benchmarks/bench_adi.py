"""Cost of online ADI versus the plain forward, and versus caching every attention map (DESIGN §6).

Same model and input for every mode: MONAI SwinUNETR (feature 48, window 7), one 64x64x64 volume
whose last 24 slices are padding, 2 CPU threads, under ``torch.no_grad``. Each mode runs in its own
subprocess so that peak memory (max RSS) is its own; time is the median of ``--repeats`` forwards
after one warm-up.

    python benchmarks/bench_adi.py [--repeats 3] [--feature 48] [--size 64 64 64] [--pad 24]

Modes: ``plain`` (the forward alone), ``online`` (``measure_adi``: hooks reduce inside the block),
``cached`` (the seed's released code: keep every block's attention map, then compute).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def _setup(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from attndilute import models

    model = models.build("swin_unetr", feature_size=args.feature, window_size=7).eval()
    x = torch.randn(1, 1, *args.size)
    real = torch.ones(1, *args.size, dtype=torch.bool)
    if args.pad:
        real[..., -args.pad :] = False
    return model, x * real[:, None], real


def _cached_adi(model, x, real):
    """The seed's approach: store every attention map during the forward, then reduce."""
    import torch

    from attndilute.entropy import adi, entropy_decomposition
    from attndilute.instrument import find_sites

    sites = find_sites(model)
    maps, inputs, handles = [], [], []
    for site in sites:
        handles.append(site.watch.register_forward_pre_hook(lambda m, a: inputs.append(a)))
        handles.append(
            site.softmax.register_forward_hook(lambda m, a, out: maps.append(out.detach().clone()))
        )
    from attndilute import masks

    sources = masks.as_sources(real)
    with torch.no_grad():
        model(x)
        out = []
        for site, args, attn in zip(sites, inputs, maps, strict=True):
            layout = site.layout(sources, args)
            sums = entropy_decomposition(
                attn, layout.query_sources[:, None] == 0, layout.key_sources[:, None] == 0
            )
            out.append(adi(sums.sum(0)))
    for h in handles:
        h.remove()
    return out


def run_mode(args) -> dict:
    import torch

    from attndilute.instrument import measure_adi

    model, x, real = _setup(args)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def once():
        if args.mode == "plain":
            with torch.no_grad():
                model(x)
        elif args.mode == "online":
            measure_adi(model, x, real)
        else:
            _cached_adi(model, x, real)

    once()  # warm-up
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": args.mode,
        "seconds": statistics.median(times),
        "peak_mb": peak / 1024,
        "forward_mb": (peak - base) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["plain", "online", "cached"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--feature", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=3, default=[64, 64, 64])
    parser.add_argument("--pad", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    rows = {}
    for mode in ("plain", "online", "cached"):
        cmd = [
            sys.executable,
            __file__,
            "--mode",
            mode,
            "--repeats",
            str(args.repeats),
            "--feature",
            str(args.feature),
            "--size",
            *map(str, args.size),
            "--pad",
            str(args.pad),
            "--threads",
            str(args.threads),
        ]
        rows[mode] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    plain = rows["plain"]
    print(
        f"SwinUNETR feature {args.feature}, input {'x'.join(map(str, args.size))}, {args.pad} padded slices, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print(
        f"{'mode':8s} {'seconds':>8s} {'x plain':>8s} {'peak MB':>9s} {'x plain':>8s} "
        f"{'fwd MB':>8s} {'x plain':>8s}"
    )
    for mode, r in rows.items():
        print(
            f"{mode:8s} {r['seconds']:8.3f} {r['seconds'] / plain['seconds']:8.2f} {r['peak_mb']:9.0f} "
            f"{r['peak_mb'] / plain['peak_mb']:8.2f} {r['forward_mb']:8.0f} "
            f"{r['forward_mb'] / plain['forward_mb']:8.2f}"
        )


if __name__ == "__main__":
    main()
