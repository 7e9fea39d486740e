"""End to end: ``attndilute cka`` vs pytorch-cka 1.1.3 (and torch_cka 0.21) on the same models, scans, layers.

Two tiny SMIT checkpoints (``smit-tiny``, different seeds), the embedded phantom cohort (40 scans,
or ``--n`` cases of a fresh phantom), crop 64^3, the transformer-block outputs of both models,
minibatches of 8. Every contender gets the same preprocessed crops and the same minibatches
(the peers through a ``batch_sampler``), so with ``--pool 0`` all compute the same quantity.

Rows:
- ``attndilute cka --pool 0`` (cold): capture into fresh stores + CKA + figures, no pooling;
- ``attndilute cka --pool 0`` (cached): the same command again, reusing the stores;
- ``attndilute cka`` (8^3 pooling, the seed's setting): cold and cached;
- pytorch-cka ``compute_cka`` and torch_cka ``CKA.compare`` on the preloaded crops (their
  preprocessing is not timed; ours reads the same preprocessed volumes from the data cache).

    python benchmarks/bench_cka_pipeline.py [--n 24] [--batch-size 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def _layers(model) -> list[str]:
    from attndilute.store import select_layers

    return [s.name for s in select_layers(model) if s.kind == "block"]


def reference_float64(out: Path, layers: list[str], batches: list[np.ndarray]) -> np.ndarray:
    """Eq. 9-10 in float64, written out per layer pair, on the unpooled activations of the stores."""
    import zarr

    def hsic1(k, l):
        n = k.shape[0]
        one = torch.ones(n, dtype=torch.float64)
        return (torch.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))

    paths = (out / "activations").glob("*.zarr")  # a-<hash>.zarr, b-<hash>.zarr
    stores = {p.name[0]: zarr.open_group(p, mode="r", zarr_format=3) for p in paths}
    la = lb = len(layers)
    a, b, c = np.zeros((la, lb)), np.zeros(la), np.zeros(lb)
    for rows in batches:
        grams = {}
        for side in "ab":
            grams[side] = []
            for name in layers:
                x = torch.from_numpy(np.asarray(stores[side][name].oindex[rows])).double()  # (n, F)
                grams[side].append((x @ x.T).fill_diagonal_(0.0))
        for i in range(la):
            b[i] += float(hsic1(grams["a"][i], grams["a"][i]))
            for j in range(lb):
                a[i, j] += float(hsic1(grams["a"][i], grams["b"][j]))
        for j in range(lb):
            c[j] += float(hsic1(grams["b"][j], grams["b"][j]))
    return a / np.sqrt(np.outer(b, c))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=0, help="cases of a fresh phantom (0: the embedded phantom)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the fastest is reported")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = parser.parse_args()

    from attndilute.cli.main import main as cli
    from attndilute.data import discover, resolve_data, write_phantom
    from attndilute.models import build, load, save
    from attndilute.store import minibatches, scan_loader

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-cka-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.n:
        data = work / "data"
        if not data.exists():
            write_phantom(data, n=args.n, seed=0)
    else:
        data = resolve_data(None)
    for seed, name in ((7, "a"), (8, "b")):
        torch.manual_seed(seed)
        save(build("smit-tiny"), work / f"{name}.safetensors")
    cases = discover(data)
    n, crop = len(cases), (64, 64, 64)
    glob = "*.blocks.[0-9]"

    t0 = time.perf_counter()
    load_scan = scan_loader(cases, crop=crop, spacing=(1.0, 1.0, 1.0))
    images = torch.cat([load_scan(i) for i in range(n)])  # (n, 1, 64, 64, 64); warms the data cache
    t_pre = time.perf_counter() - t0
    batches = minibatches(n, args.batch_size, 1, 0)
    print(f"{n} scans from {data}, crop {crop}, batches of {[len(b) for b in batches]}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"preprocessing {t_pre:.1f}s (not timed below)")

    rows, results = [], {}

    def ours(label: str, out: Path, *extra: str, cold: bool) -> None:
        import xarray as xr

        times = []
        for _ in range(args.repeats):
            if cold:
                shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            code = cli(["cka", str(work / "a.safetensors"), str(work / "b.safetensors"), "--data", str(data),
                        "--out", str(out), "--batch-size", str(args.batch_size), "--layers", glob, *extra])
            times.append(time.perf_counter() - t)
            assert code == 0, f"attndilute cka failed ({code})"
        results[label] = xr.open_zarr(out / "cka.zarr", zarr_format=3, consolidated=False)["cka"].values
        rows.append((label, min(times)))

    with contextlib.redirect_stdout(io.StringIO()):
        ours("attndilute cka --pool 0 (cold)", work / "raw", "--pool", "0", cold=True)
        ours("attndilute cka --pool 0 (cached)", work / "raw", "--pool", "0", cold=False)
        ours("attndilute cka, 8^3 pool (cold)", work / "pooled", cold=True)
        ours("attndilute cka, 8^3 pool (cached)", work / "pooled", cold=False)

    class Crops(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int):
            return images[i], 0

    loader = torch.utils.data.DataLoader(Crops(), batch_sampler=[b.tolist() for b in batches])

    from cka import compute_cka  # pytorch-cka 1.1.3
    from torch_cka import CKA  # torch_cka 0.21

    layers = _layers(load(work / "a.safetensors"))

    def run_pytorch_cka():
        model_a, model_b = load(work / "a.safetensors").eval(), load(work / "b.safetensors").eval()
        return compute_cka(model_a, model_b, loader, layers=layers, device="cpu", progress=False)[0]

    def run_torch_cka():
        model_a, model_b = load(work / "a.safetensors").eval(), load(work / "b.safetensors").eval()
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), torch.inference_mode():
            warnings.simplefilter("ignore")
            peer = CKA(model_a, model_b, model1_name="A", model2_name="B", model1_layers=layers,
                       model2_layers=layers, device="cpu")
            peer.compare(loader)
        return peer.export()["CKA"]

    peers = (("pytorch-cka 1.1.3 compute_cka", run_pytorch_cka),
             ("torch_cka 0.21 CKA.compare", run_torch_cka))
    for label, fn in peers:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            values = fn()
            times.append(time.perf_counter() - t)
        results[label.rsplit(" ", 1)[0]] = values.double().numpy()
        rows.append((label, min(times)))

    base = next(dt for label, dt in rows if label.startswith("pytorch-cka"))
    ref = reference_float64(work / "raw", layers, batches)
    print(f"{'':<36}{'time (s)':>10}{'vs pytorch-cka':>16}{'max |err| vs float64, no pool':>32}")
    for label, dt in rows:
        key = label if label in results else label.rsplit(" ", 1)[0]
        values = results.get(key)
        diff = "" if values is None or "8^3" in label else f"{np.abs(values - ref).max():.2e}"
        print(f"{label:<36}{dt:>10.2f}{base / dt:>15.2f}x{diff:>32}")
    print(f"(fastest of {args.repeats} runs per row; load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"{len(layers)} block layers per model; peers run the full forward (decoder included), ours "
          f"stops after the last hooked block; pytorch-cka clamps to [0, 1] and sums float32 Grams.")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("ATTNDILUTE_CACHE", str(Path(tempfile.gettempdir()) / "attndilute-bench-cache"))
    main()
