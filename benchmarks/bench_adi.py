"""Cost of online ADI against the plain forward: time and peak memory, side by side in one run.

For each case, two worker processes hold the same model and input and each runs both the plain
forward and ``measure_adi``. A round asks one of them (the two take turns) for a plain forward and
an instrumented one, back to back, in alternating order (A B, B A, ...); the time ratio is the
median over ``--repeats`` rounds of the round's instrumented over plain seconds. So both sides of
a ratio ran in the same process a moment apart: neither a slow spell of a shared machine nor a
process's own speed (two workers running the same plain forward differed by 4%, measured) moves
it. Memory is the peak RSS (the whole process: model, input, forward) of two more workers that run
only the plain forward or only ``measure_adi``. Cases:

- ``swinunetr``: MONAI SwinUNETR feature 48, 64^3, the last 24 slices padding, explicit attention
  on both sides (``use_flash_attention=False``);
- ``smit``: SMIT (``smit-paper``) at its preset crop 128^3, the last 48 slices padding;
- ``vit``: timm ViT-S/16 at 224^2, 16:9 letterbox bars; the plain forward runs timm's fused
  attention, the instrumented one the same kernel computed window-chunk by window-chunk; a
  sample times 10 forwards;
- ``cohort``: ``attndilute adi`` on the 40-case phantom (``random:swin-paper``, 96^3): total
  wall time of the command against the time spent inside the model's forwards.

    python benchmarks/bench_adi.py [--cases swinunetr vit smit cohort] [--repeats 7] [--threads 2] [--load N]

``--load N`` runs N busy-looping processes alongside for the whole measurement: a loaded machine,
reproducibly.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

CASES = ("swinunetr", "smit", "vit", "cohort")
#: forwards per timed sample: one ViT forward (~0.1 s) is too short to time alone on a shared machine
FORWARDS = {"vit": 10}


def _import_timm():
    """``import timm``, with the repository's torchvision stand-in where torchvision does not import."""
    import runpy

    stub = Path(__file__).resolve().parents[1] / "tests" / "torchvision_stub.py"
    if stub.exists():
        runpy.run_path(str(stub))["install"]()  # a no-op where a working torchvision imports
    import timm

    return timm


def _build(case: str):
    """(model, inputs (B, C, *spatial), real (B, *spatial)) of a case."""
    import torch

    from attndilute import models

    torch.manual_seed(0)
    if case == "swinunetr":
        model = models.build("swin-unetr", feature_size=48, window_size=7, use_flash_attention=False)
        size, pad = (64, 64, 64), 24
    elif case == "smit":
        model = models.build("smit-paper")
        size, pad = (128, 128, 128), 48
    elif case == "vit":
        import attndilute.instrument.adapters  # noqa: F401 - registers the timm adapter

        model = _import_timm().create_model("vit_small_patch16_224", pretrained=False)
        assert all(blk.attn.fused_attn for blk in model.blocks), "timm's default is fused attention"
        real = torch.ones(1, 224, 224, dtype=torch.bool)
        real[:, :49] = False
        real[:, -49:] = False  # 16:9 letterbox bars
        return model.eval(), torch.randn(1, 3, 224, 224) * real[:, None], real
    else:
        raise ValueError(case)
    real = torch.ones(1, *size, dtype=torch.bool)
    real[..., -pad:] = False
    return model.eval(), torch.randn(1, 1, *size) * real[:, None], real


def worker(case: str, modes: str, threads: int) -> None:
    """Serve ``plain`` and ``adi`` (``FORWARDS`` forwards, default one; prints seconds per forward)
    and ``rss`` (prints peak MB) on stdin; ``modes`` (``plain``, ``adi`` or ``both``) says which."""
    import torch

    from attndilute.instrument import measure_adi

    torch.set_num_threads(threads)
    model, x, real = _build(case)

    def plain() -> None:
        with torch.no_grad():
            model(x)

    forwards = {"plain": plain, "adi": lambda: measure_adi(model, x, real)}
    if modes != "both":
        forwards = {modes: forwards[modes]}
    for forward in forwards.values():
        forward()  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command in forwards:
            n = FORWARDS.get(case, 1)
            t = time.perf_counter()
            for _ in range(n):
                forwards[command]()
            print((time.perf_counter() - t) / n, flush=True)  # seconds per forward
        elif command == "rss":
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
        else:
            return


class _Worker:
    """A worker process (:func:`worker`) and its line protocol."""

    def __init__(self, case: str, modes: str, threads: int):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", case, modes, "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{case} worker ({modes}) failed to start")

    def ask(self, command: str) -> float:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


def side_by_side(case: str, repeats: int, threads: int) -> dict:
    """Paired time ratios from two workers running both forwards; peak RSS from one-mode workers."""
    memory = {}
    for mode in ("plain", "adi"):  # one at a time: a worker's forwards would slow the other's
        w = _Worker(case, mode, threads)
        memory[mode] = w.ask("rss")
        w.close()
    timers = [_Worker(case, "both", threads) for _ in range(2)]
    times: dict[str, list[float]] = {"plain": [], "adi": []}
    for r in range(repeats):
        for mode in ("plain", "adi") if r // 2 % 2 == 0 else ("adi", "plain"):
            times[mode].append(timers[r % 2].ask(mode))
    for w in timers:
        w.close()
    return ratio_row(times, memory, case=case, repeats=repeats)


def ratio_row(times: dict[str, list[float]], memory: dict[str, float], **label) -> dict:
    """One table row: median seconds and peak MB of ``plain`` and ``adi``, and their ratios.

    ``times[mode][i]`` of the two modes are a pair (one round, run back to back): the time ratio
    is the median of the pairs' ratios; ``ratio_of_medians`` is the ratio of the two medians.
    """
    sec = {mode: statistics.median(v) for mode, v in times.items()}
    pairs = [adi / plain for plain, adi in zip(times["plain"], times["adi"], strict=True)]
    return {**label, "plain_s": sec["plain"], "adi_s": sec["adi"], "time_ratio": statistics.median(pairs),
            "ratio_of_medians": sec["adi"] / sec["plain"], "pair_ratios": pairs,
            "plain_mb": memory["plain"], "adi_mb": memory["adi"],
            "memory_ratio": memory["adi"] / memory["plain"]}


def cohort(threads: int) -> dict:
    """``attndilute adi`` on the 40-case phantom: total time over time inside the forwards."""
    import torch

    from attndilute.study.adi import run_adi

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = run_adi("random:swin-paper", out=Path(tmp) / "adi", batch_size=1)
    scans = len(run.dataset["scan"])
    return {"case": "cohort", "scans": scans, "total_s": run.seconds, "forward_s": run.forward_seconds,
            "ratio": run.seconds / run.forward_seconds, "s_per_scan": run.seconds / scans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=["swinunetr", "vit", "smit", "cohort"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="load the machine: N busy-looping processes run throughout")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.threads)
        return
    load = f", {args.load} busy-looping process{'es' if args.load > 1 else ''} alongside" if args.load else ""
    print(
        f"# bench_adi {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}), "
        f"{args.threads} threads, median of {args.repeats} paired repeats{load}"
    )
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        rows = run_cases(args)
    finally:
        for process in busy:
            process.kill()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def run_cases(args: argparse.Namespace) -> list[dict]:
    """Measure every case of ``args.cases`` and print its row."""
    print(
        f"{'case':10s} {'plain s':>8s} {'ADI s':>8s} {'time x':>7s} {'pairs min-max':>14s} "
        f"{'plain MB':>9s} {'ADI MB':>8s} {'mem x':>6s}"
    )
    rows = []
    for case in args.cases:
        if case == "cohort":
            row = cohort(args.threads)
            print(
                f"{'cohort':10s} {row['scans']} scans: {row['total_s']:.1f} s in total, "
                f"{row['forward_s']:.1f} s in forwards: {row['ratio']:.2f}x "
                f"({row['s_per_scan']:.2f} s per scan)"
            )
        else:
            row = side_by_side(case, args.repeats, args.threads)
            print(
                f"{case:10s} {row['plain_s']:8.3f} {row['adi_s']:8.3f} {row['time_ratio']:7.2f} "
                f"{min(row['pair_ratios']):6.2f}-{max(row['pair_ratios']):<7.2f} "
                f"{row['plain_mb']:9.0f} {row['adi_mb']:8.0f} {row['memory_ratio']:6.2f}"
            )
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
