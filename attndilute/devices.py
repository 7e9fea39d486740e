"""``--device``: a torch device that exists on this machine, or a one-line error saying what does."""

from __future__ import annotations

import torch

from attndilute.errors import AttnDiluteError


def check_device(name: str | torch.device) -> torch.device:
    """Parse ``name`` and check that the device exists here.

    Args:
        name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a :class:`torch.device`.

    Returns:
        the device.

    Raises:
        AttnDiluteError: an unknown device string, CUDA or MPS absent, a CUDA index out of range.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise AttnDiluteError(f"unknown --device {name!r} ({err})", hint="e.g. cpu, cuda, cuda:0") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise AttnDiluteError(f"--device {name}: this machine has no CUDA device",
                                  hint="use --device cpu")
        if device.index is not None and device.index >= count:
            raise AttnDiluteError(f"--device {name}: this machine has {count} CUDA device(s)",
                                  hint=f"use cuda:0 .. cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise AttnDiluteError(f"--device {name}: MPS is not available here", hint="use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise AttnDiluteError(f"--device {name}: unsupported device type", hint="use cpu, cuda or mps")
    return device


#: ``--device`` values that let attndilute choose: the first CUDA device if there is one, else CPU.
AUTO = ("auto", "")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``--device``: ``auto`` (or None) -> ``cuda`` when available, else ``cpu``; anything else is
    checked with :func:`check_device`.

    Raises:
        AttnDiluteError: a device that does not exist here.
    """
    if name is None or (isinstance(name, str) and name.strip().lower() in AUTO):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return check_device(name)
