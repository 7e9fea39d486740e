"""Mixed precision for training and sliding-window inference (seed §2.5: bf16 on CUDA).

``precision="auto"`` autocasts to bf16 on CUDA and stays float32 on the CPU; ``"bf16"`` forces
bf16 autocast (also on a CPU), ``"fp32"`` switches it off. The loss always runs in float32 (the
step casts the logits). Inside the model PyTorch's policies differ by device: CUDA autocast runs
softmax, layer norm and group norm in float32 (PyTorch's documented op lists); CPU autocast leaves
softmax and every normalisation in the dtype of their input, i.e. bf16 after a convolution or
linear layer (checked on torch 2.13, CPU).

CPU bf16 is opt-in: on a CPU with native bf16 (AVX512-BF16 or AMX) it makes a ``smit-tiny``
step 1.6-1.8x faster (``benchmarks/bench_train.py --layouts``, two runs), but at the tiny presets'
learning rate a CPU bf16 run had a NaN loss within 48 steps where float32 did not
(docs/training.md), and CPU bf16 steps are not bitwise reproducible (the trainer's determinism
is for float32); on CPUs without native bf16 it is emulated and slower than float32.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"bf16"`` or ``"fp32"`` for ``precision`` (one of :data:`PRECISIONS`) on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cuda" else "fp32"


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """A fresh bf16 autocast context for ``device``, or a null context for float32."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
