"""DDP plumbing for ``torchrun``: process group, rank helpers, all-reduced sums.

``torchrun --nproc_per_node N attndilute train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU). Without
those variables everything runs as a single process and these helpers are no-ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from attndilute.devices import AUTO, check_device


@dataclass(frozen=True)
class Dist:
    """The process's place in the job.

    Args:
        rank: global rank (0 writes every file).
        world: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: the device this process trains on.
        owned: True when :func:`setup` created the process group (and :func:`teardown` ends it).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owned: bool = False

    @property
    def main(self) -> bool:
        """True on the rank that writes outputs."""
        return self.rank == 0


def setup(device: str | torch.device | None = None) -> Dist:
    """Join the ``torchrun`` process group if the environment describes one.

    Args:
        device: ``--device``; None or ``auto``: this rank's CUDA device when there is one, else CPU.
            Explicit ``cpu``/``cuda:N`` is checked (:func:`attndilute.devices.check_device`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device is None or (isinstance(device, str) and device.strip().lower() in AUTO):
        cuda = torch.cuda.is_available()
        device = (
            torch.device(f"cuda:{local % max(1, torch.cuda.device_count())}") if cuda else torch.device("cpu")
        )
    else:
        device = check_device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device(f"cuda:{local % max(1, torch.cuda.device_count())}")
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    if world <= 1:
        return Dist(0, 1, 0, device, False)
    owned = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world)
        owned = True
    return Dist(dist.get_rank(), dist.get_world_size(), local, device, owned)


def teardown(ctx: Dist) -> None:
    """Leave the process group if :func:`setup` created it."""
    if ctx.owned and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], ctx: Dist) -> list[float]:
    """Sum ``values`` over ranks (float64); identity on one process."""
    if ctx.world <= 1:
        return [float(v) for v in values]
    buf = torch.tensor(values, dtype=torch.float64, device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.cpu().tolist()


def barrier(ctx: Dist) -> None:
    """Wait for every rank (no-op on one process)."""
    if ctx.world > 1:
        dist.barrier()


def broadcast_flag(flag: bool, ctx: Dist) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if ctx.world <= 1:
        return flag
    buf = torch.tensor([1.0 if flag else 0.0], device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.broadcast(buf, src=0)
    return bool(buf.item() > 0.5)


def broadcast_object(obj, ctx: Dist):
    """Rank 0's picklable ``obj`` on every rank (identity on one process)."""
    if ctx.world <= 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj, ctx: Dist) -> list:
    """On rank 0 the list of every rank's ``obj`` in rank order; ``[]`` on the other ranks."""
    if ctx.world <= 1:
        return [obj]
    out = [None] * ctx.world if ctx.main else None
    dist.gather_object(obj, out, dst=0)
    return out if ctx.main else []
