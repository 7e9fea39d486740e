"""Minibatch CKA side by side: attndilute vs pytorch-cka 1.1.3 vs torch_cka 0.21.

All three see identical activations in the same process: 14 layers (channels 48..384, 8^3
pooled tokens, so features = C * 512), 64 samples in minibatches of 16, model B a drifted copy
of model A. The peers only take models and a DataLoader, so each library gets its own "replay"
model whose layer ``taps.i`` returns the stored activations of the batch (a view, no copy);
the peers hook those layers exactly as they would hook a real network, and attndilute's
``MinibatchCKA`` is fed from forward hooks on the same kind of replay model through the same
DataLoader. The error is the max abs difference to an independent float64 computation of
Eq. 9-10 on the same minibatches.

    python benchmarks/bench_cka.py [--samples 64] [--batch-size 16] [--repeats 5] [--variants]

``--variants`` also times the Gram/HSIC designs considered for ``MinibatchCKA`` (DESIGN §6:
"measure before choosing") on the same activations: one float32 Gram, centred features, a
float64 Gram, and chunked float32 Grams summed in float64 (the chosen one) at several chunks.

pytorch-cka's import name is ``cka``; torch_cka's is ``torch_cka``. Install both with
``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time
import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from attndilute.cka import MinibatchCKA, _hsic1_all, gram

CHANNELS = (48, 48, 48, 96, 96, 96, 192, 192, 192, 192, 384, 384, 384, 384)
TOKENS = (8, 8, 8)


def make_activations(n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Post-GELU activations of a pretrained-like model A and a fine-tuned-like model B.

    Returns:
        Two lists of 14 tensors ``(n, C, 8, 8, 8)`` float32: low-rank sample structure (partly
        shared across layers) plus noise and a positive offset (uncentred, like real post-GELU
        features); B adds a drift that grows with depth.
    """
    g = torch.Generator().manual_seed(seed)
    t = TOKENS[0] * TOKENS[1] * TOKENS[2]
    acts_a, acts_b = [], []
    common = torch.randn(n, 8, t, generator=g)  # (n, rank, tokens) structure shared by all layers
    for depth, c in enumerate(CHANNELS):
        latent = 0.8 * common + 0.6 * torch.randn(n, 8, t, generator=g)  # (n, rank, tokens)
        mixing = torch.randn(8, c, generator=g) / 8**0.5  # (rank, C)
        pre = torch.einsum("nrt,rc->nct", latent, mixing) + 0.5 * torch.randn(n, c, t, generator=g) + 0.5
        drifted = pre + (0.1 + 0.1 * depth) * torch.randn(n, c, t, generator=g)
        acts_a.append(nn.functional.gelu(pre).reshape(n, c, *TOKENS).contiguous())
        acts_b.append(nn.functional.gelu(drifted).reshape(n, c, *TOKENS).contiguous())
    return acts_a, acts_b


class _Index(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return i, 0  # (input, target): a tuple, as both peers unpack batches


class Replay(nn.Module):
    """A 'model' whose layer ``taps.i`` outputs the stored activations of the batch's samples."""

    def __init__(self, acts: list[torch.Tensor]):
        super().__init__()
        self.acts = acts
        self.taps = nn.ModuleList(nn.Identity() for _ in acts)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # idx (B,) consecutive sample ids
        start, stop = int(idx[0]), int(idx[-1]) + 1
        for tap, a in zip(self.taps, self.acts, strict=True):
            tap(a[start:stop])  # (B, C, 8, 8, 8) view
        return idx


def reference_float64(acts_a, acts_b, batch: int) -> torch.Tensor:
    """Eq. 9 with Eq. 10 written out per layer pair, everything in float64."""

    def hsic1(k, l):
        n = k.shape[0]
        one = torch.ones(n, dtype=torch.float64)
        return (torch.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))

    n = acts_a[0].shape[0]
    la, lb = len(acts_a), len(acts_b)
    a = torch.zeros(la, lb, dtype=torch.float64)
    b, c = torch.zeros(la, dtype=torch.float64), torch.zeros(lb, dtype=torch.float64)
    for s in range(0, n, batch):
        grams = []
        for acts in (acts_a, acts_b):
            g = []
            for x in acts:
                x64 = x[s:s + batch].reshape(min(batch, n - s), -1).double()
                k = x64 @ x64.T
                g.append(k.fill_diagonal_(0.0))
            grams.append(g)
        for i in range(la):
            b[i] += hsic1(grams[0][i], grams[0][i])
            for j in range(lb):
                a[i, j] += hsic1(grams[0][i], grams[1][j])
        for j in range(lb):
            c[j] += hsic1(grams[1][j], grams[1][j])
    return a / torch.sqrt(torch.outer(b, c))


def run_ours(model_a: Replay, model_b: Replay, loader: DataLoader) -> torch.Tensor:
    """MinibatchCKA fed by forward hooks on the replay models' taps."""
    feats_a: dict[int, torch.Tensor] = {}
    feats_b: dict[int, torch.Tensor] = {}
    handles = []
    for feats, model in ((feats_a, model_a), (feats_b, model_b)):
        for i, tap in enumerate(model.taps):
            handles.append(tap.register_forward_hook(lambda m, inp, out, f=feats, i=i: f.__setitem__(i, out)))
    metric = MinibatchCKA()
    with torch.inference_mode():
        for x, _ in loader:
            model_a(x)
            model_b(x)
            metric.update([feats_a[i] for i in range(len(feats_a))],
                          [feats_b[i] for i in range(len(feats_b))])
    for h in handles:
        h.remove()
    return metric.compute()


def run_pytorch_cka(model_a: Replay, model_b: Replay, loader: DataLoader, layers: list[str]) -> torch.Tensor:
    from cka import compute_cka  # pytorch-cka 1.1.3

    return compute_cka(model_a, model_b, loader, layers=layers, device="cpu", progress=False)[0]


def run_torch_cka(model_a: Replay, model_b: Replay, loader: DataLoader, layers: list[str]) -> torch.Tensor:
    from torch_cka import CKA  # torch_cka 0.21

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        warnings.simplefilter("ignore")
        cka = CKA(model_a, model_b, model1_name="A", model2_name="B", model1_layers=layers,
                  model2_layers=layers, device="cpu")
        cka.compare(loader)
    return cka.export()["CKA"]


def _gram_f32(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(x.shape[0], -1)
    return (x @ x.T).fill_diagonal_(0.0).double()


def _gram_centred(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(x.shape[0], -1)
    x = x - x.mean(0, keepdim=True)
    return (x @ x.T).fill_diagonal_(0.0).double()


def _gram_f64(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(x.shape[0], -1).double()
    return (x @ x.T).fill_diagonal_(0.0)


def variant_cka(acts_a, acts_b, batch: int, gram_fn) -> torch.Tensor:
    """Eq. 9 with a given Gram function; HSIC terms in float64 (as MinibatchCKA)."""
    n = acts_a[0].shape[0]
    ab = aa = bb = 0.0
    for s in range(0, n, batch):
        ka = torch.stack([gram_fn(x[s:s + batch]) for x in acts_a])  # (La, b, b)
        kb = torch.stack([gram_fn(y[s:s + batch]) for y in acts_b])  # (Lb, b, b)
        ab = ab + _hsic1_all(ka, kb)
        aa = aa + torch.diagonal(_hsic1_all(ka, ka))
        bb = bb + torch.diagonal(_hsic1_all(kb, kb))
    return ab / torch.sqrt(torch.outer(aa, bb))


def run_variants(acts_a, acts_b, batch: int, ref: torch.Tensor, repeats: int) -> None:
    variants = [("float32 Gram, zero diagonal first, float64 HSIC", _gram_f32),
                ("centred features, then as above", _gram_centred),
                ("float64 Gram", _gram_f64)]
    variants += [(f"float32 chunks of {c}, summed in float64", lambda x, c=c: gram(x, chunk=c))
                 for c in (2048, 8192, 24576)]
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    errors = {}
    for _ in range(repeats):  # interleaved, so machine noise hits all alike
        for name, fn in variants:
            t0 = time.perf_counter()
            out = variant_cka(acts_a, acts_b, batch, fn)
            times[name].append(time.perf_counter() - t0)
            errors[name] = (out - ref).abs().max().item()
    print(f"\n{'Gram / HSIC variant':<50}{'time (s)':>10}{'max |err|':>12}")
    for name, _ in variants:
        print(f"{name:<50}{statistics.median(times[name]):>10.3f}{errors[name]:>12.2e}")


def _timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", action="store_true", help="also time the Gram designs considered")
    args = parser.parse_args()

    acts_a, acts_b = make_activations(args.samples, args.seed)
    loader = DataLoader(_Index(args.samples), batch_size=args.batch_size, shuffle=False)
    layers = [f"taps.{i}" for i in range(len(CHANNELS))]
    features = [c * TOKENS[0] * TOKENS[1] * TOKENS[2] for c in CHANNELS]
    print(f"{len(CHANNELS)} layers, features {min(features)}..{max(features)}, {args.samples} samples, "
          f"minibatch {args.batch_size}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    ref = reference_float64(acts_a, acts_b, args.batch_size)
    rows = []
    # Interleave the fast contenders so that machine noise hits both alike.
    t_ours, t_pc, out_ours, out_pc = [], [], None, None
    for _ in range(args.repeats):
        dt, out_ours = _timed(lambda: run_ours(Replay(acts_a), Replay(acts_b), loader), 1)
        t_ours.append(dt)
        dt, out_pc = _timed(lambda: run_pytorch_cka(Replay(acts_a), Replay(acts_b), loader, layers), 1)
        t_pc.append(dt)
    t_tc, out_tc = _timed(lambda: run_torch_cka(Replay(acts_a), Replay(acts_b), loader, layers), 1)
    base = statistics.median(t_pc)
    for name, t, out in (("attndilute", statistics.median(t_ours), out_ours),
                         ("pytorch-cka 1.1.3", base, out_pc),
                         ("torch_cka 0.21", t_tc, out_tc)):
        diff = (out.double() - ref).abs()
        inside = (ref >= 0) & (ref <= 1)  # pytorch-cka clamps to [0, 1]; compare where that is moot
        rows.append((name, t, base / t, diff.max().item(), diff[inside].max().item()))
    print(f"{'library':<20}{'time (s)':>10}{'speed vs pytorch-cka':>22}{'max |err|':>12}"
          f"{'max |err|, 0<=ref<=1':>22}")
    for name, t, speed, err, err_inside in rows:
        print(f"{name:<20}{t:>10.3f}{speed:>21.2f}x{err:>12.2e}{err_inside:>22.2e}")
    print(f"(median of {args.repeats} interleaved runs for attndilute and pytorch-cka, 1 for torch_cka; "
          f"CKA range {ref.min().item():.3f}..{ref.max().item():.3f})")
    if args.variants:
        run_variants(acts_a, acts_b, args.batch_size, ref, args.repeats)


if __name__ == "__main__":
    main()
