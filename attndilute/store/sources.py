"""The models that ``attndilute cka`` compares: a checkpoint, or seed-fixed random weights.

Accepted forms of ``A`` and ``B``:

- a checkpoint path (``.safetensors``, or a MONAI/SMIT ``.pt``/``.pth``; ``attndilute.models.load``);
- ``random:<preset>``: the preset (e.g. ``random:swin-tiny``) with weights drawn under ``--seed``;
- ``init:A`` (only as B): A's architecture with weights drawn under ``--seed``, i.e. A's random
  initialisation; ``init:<path>`` does the same for any checkpoint's architecture.

The hash that keys an activation store is the SHA-256 of the weights (names, dtypes, shapes and
bytes), for checkpoints and random initialisations alike: the same weights reuse the same store,
however the file was written (safetensors orders its metadata differently from run to run, so a
hash of the file's bytes would not be stable).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attndilute.data import check_preprocessing
from attndilute.errors import AttnDiluteError
from attndilute.models import build, load


@dataclass(frozen=True)
class ModelSource:
    """A loaded model with what identifies it.

    Args:
        spec: the user's string (or a description for an in-memory model).
        model: the network, in eval mode.
        model_hash: SHA-256 keying its activation stores.
        name: short name for file names and figure labels.
    """

    spec: str
    model: nn.Module
    model_hash: str
    name: str

    @property
    def meta(self) -> dict:
        return dict(getattr(self.model, "attndilute_meta", {}) or {})


def weights_hash(model: nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes and bytes), in key order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def from_module(model: nn.Module, name: str = "model") -> ModelSource:
    """Wrap an in-memory model (keyed by its weights)."""
    return ModelSource(spec=name, model=model.eval(), model_hash=weights_hash(model), name=name)


def _seeded_build(name: str, seed: int, **kwargs) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(name, **kwargs)


def _load_file(spec: str) -> ModelSource:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise AttnDiluteError("model checkpoint not found", path=path,
                              hint="give a checkpoint file, random:<preset> or init:A")
    model = load(path)
    check_preprocessing(model.attndilute_meta, path)  # the data will be preprocessed as today
    return ModelSource(spec=spec, model=model.eval(), model_hash=weights_hash(model), name=path.stem)


def _random_like(model: nn.Module, seed: int, spec: str, name: str) -> ModelSource:
    meta = getattr(model, "attndilute_meta", None)
    if not meta or "family" not in meta:
        raise AttnDiluteError(f"{spec}: the model records no architecture to re-initialise")
    built = _seeded_build(meta["family"], seed, **dict(meta.get("kwargs", {})),
                          crop=tuple(meta["crop"]), spacing=tuple(meta.get("spacing", (1.0, 1.0, 1.0))))
    return ModelSource(spec=spec, model=built.eval(), model_hash=weights_hash(built), name=name)


def resolve_model(spec: str, *, seed: int = 0, first: ModelSource | None = None) -> ModelSource:
    """Load or build the model named by ``spec`` (see the module docstring).

    Args:
        spec: checkpoint path, ``random:<preset>``, ``init:A`` or ``init:<path>``.
        seed: seed of random weights.
        first: model A, for ``init:A``.
    """
    if spec.startswith("random:"):
        preset = spec.removeprefix("random:")
        model = _seeded_build(preset, seed)
        return ModelSource(spec=spec, model=model.eval(), model_hash=weights_hash(model),
                           name=f"random-{preset}-s{seed}")
    if spec.startswith("init:"):
        target = spec.removeprefix("init:")
        if target == "A":
            if first is None:
                raise AttnDiluteError("init:A is only valid as the second model (B)")
            return _random_like(first.model, seed, spec, f"init-{first.name}-s{seed}")
        base = _load_file(target)
        return _random_like(base.model, seed, spec, f"init-{base.name}-s{seed}")
    return _load_file(spec)
