"""Checkpoints: ``.safetensors`` with a JSON header, and safe import of foreign ``.pt/.pth`` files.

Format (DESIGN §5): a safetensors file of the model's state dict whose metadata entry
``"attndilute"`` is JSON with ``family``, ``kwargs`` (constructor arguments), ``crop``,
``spacing``, ``version`` and whatever else the caller passed to :func:`save`.

Nothing is ever unpickled with arbitrary code: ``.pt/.pth`` files go through
``torch.load(weights_only=True)`` (plus numpy scalars, which old training scripts store next to
the weights); a file that needs more is refused with :class:`AttnDiluteError` before any of its
code runs.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attndilute._io import atomic_path
from attndilute.errors import AttnDiluteError

META_KEY = "attndilute"
_STATE_KEYS = ("state_dict", "student", "model")  # where foreign files keep their weights


def save(model: nn.Module, path: str | Path, **meta: Any) -> Path:
    """Write ``model`` as ``.safetensors`` with its metadata as a JSON header.

    Args:
        model: a model built by :func:`attndilute.models.build` or :func:`load`.
        path: output file (written atomically).
        **meta: extra JSON-serialisable entries (``crop=(128, 128, 64)``, ``epoch=500``, ...);
            they override the model's own ``attndilute_meta``.

    Returns:
        the path written.
    """
    from safetensors.torch import save_file

    header = {**(getattr(model, "attndilute_meta", None) or {}), **meta}
    if "family" not in header or "kwargs" not in header:
        raise AttnDiluteError(
            "model has no attndilute_meta (family, kwargs)", hint="build it with attndilute.models.build"
        )
    try:
        text = json.dumps(header, default=_to_json)
    except TypeError as err:
        raise AttnDiluteError(f"checkpoint metadata is not JSON-serialisable: {err}") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: text, "format": "pt"})
    return Path(path)


def load(path: str | Path, *, family: str | None = None, strict: bool = True, **kwargs: Any) -> nn.Module:
    """Rebuild a model from a checkpoint.

    ``.safetensors`` files written by :func:`save` rebuild exactly. Files without metadata
    (MONAI/NVIDIA Swin UNETR and SMIT ``.pt/.pth``, or a bare safetensors state dict) are mapped
    key by key (:mod:`attndilute.models.importers`); the architecture is read from the tensor
    shapes, and ``family`` / ``kwargs`` say what the shapes cannot. A backbone-only checkpoint
    (self-supervised weights) gives a model whose decoder keeps its initialisation.

    Args:
        path: ``.safetensors``, ``.pt``, ``.pth`` or ``.ckpt``.
        family: ``"smit"`` or ``"swin_unetr"`` for files without metadata (default: detected).
        strict: if False, keys that do not fit are skipped (the backbone must still load).
        **kwargs: constructor arguments overriding the stored ones (e.g. ``mask_padding=True``,
            ``use_flash_attention=True``); ``crop`` / ``spacing`` override the metadata.

    Returns:
        the model in eval mode, with ``model.attndilute_meta`` from the file.
    """
    from attndilute.models.importers import detect_family, infer_kwargs, map_keys
    from attndilute.models.registry import build

    state, meta = read_checkpoint(path)
    overrides = {k: kwargs.pop(k) for k in ("crop", "spacing") if k in kwargs}
    detected = detect_family(state) if meta is None else meta["family"]
    if meta is not None:
        fam, mapped, extra = meta["family"], state, {}
        if family is not None and family != fam:
            raise AttnDiluteError(f"checkpoint holds a {fam} model, not {family}", path=path)
        ctor = {**_tuples(meta.get("kwargs", {})), **kwargs}
    else:
        fam = family or detected
        if fam not in ("smit", "swin_unetr"):
            raise AttnDiluteError(
                f"cannot tell which model this checkpoint holds ({len(state)} tensors, "
                f"looks like {detected or 'neither'})",
                path=path,
                hint="pass family='smit' or family='swin_unetr'",
            )
        mapped, ignored = map_keys(state, fam)
        ctor = {**infer_kwargs(mapped, fam), **kwargs}
        extra = {"imported_from": str(path), "ignored_keys": len(ignored)}
    model = build(fam, **ctor)
    result = apply_state(model, mapped)
    backbone_missing = [k for k in result.missing if k.startswith(model.backbone_prefix)]
    problems = (
        result.unexpected or result.mismatched or backbone_missing or (meta is not None and result.missing)
    )
    if result.loaded == 0 or (strict and problems) or backbone_missing:
        raise AttnDiluteError(_misfit(model, result, detected), path=path)
    stored = {} if meta is None else {**meta, "crop": tuple(meta.get("crop", model.attndilute_meta["crop"]))}
    if "spacing" in stored:
        stored["spacing"] = tuple(stored["spacing"])
    model.attndilute_meta.update({**stored, **extra, "kwargs": ctor})
    if result.missing:
        model.attndilute_meta["missing_keys"] = len(result.missing)
    model.attndilute_meta.update({k: tuple(v) for k, v in overrides.items()})
    return model.eval()


def load_weights(model: nn.Module, path: str | Path) -> tuple[int, list[str], list[str]]:
    """Import pretrained weights into an existing model (the trainer's ``--init``).

    Args:
        model: a model built by :func:`attndilute.models.build`.
        path: a checkpoint in any format :func:`load` reads.

    Returns:
        (number of tensors loaded, model keys left as they were, checkpoint keys not used —
        unknown names or other shapes).
    """
    from attndilute.models.importers import detect_family, map_keys

    fam = getattr(model, "family", None) or (getattr(model, "attndilute_meta", None) or {}).get("family")
    if fam not in ("smit", "swin_unetr"):
        raise AttnDiluteError(
            f"cannot import weights into {type(model).__name__}: not a smit or swin_unetr model"
        )
    state, meta = read_checkpoint(path)
    other = meta["family"] if meta is not None else detect_family(state)
    if other is not None and other != fam:
        raise AttnDiluteError(f"checkpoint looks like {other}, the model is {fam}", path=path)
    mapped = state if meta is not None else map_keys(state, fam)[0]
    result = apply_state(model, mapped)
    if result.loaded == 0:
        raise AttnDiluteError(_misfit(model, result, other), path=path)
    return result.loaded, result.missing, result.unexpected + result.mismatched


@dataclass
class StateFit:
    """How a state dict fits a model: counts and names of what loaded and what did not."""

    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def apply_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> StateFit:
    """Copy every tensor of ``state`` whose name and shape match into ``model``.

    ``relative_position_index`` buffers are a fixed function of the window, so a checkpoint
    without them is not missing anything.
    """
    own = model.state_dict()
    fit = StateFit()
    usable = {}
    for key, value in state.items():
        if key not in own:
            fit.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            fit.mismatched.append(key)
        else:
            usable[key] = value
    fit.missing = [k for k in own if k not in usable and not k.endswith("relative_position_index")]
    model.load_state_dict(usable, strict=False)
    fit.loaded = len(usable)
    return fit


def _misfit(model: nn.Module, fit: StateFit, looks_like: str | None) -> str:
    kw = model.attndilute_meta["kwargs"]
    arch = (
        ", ".join(f"{k}={v}" for k, v in kw.items() if k not in ("in_channels", "out_channels")) or "defaults"
    )
    return (
        f"checkpoint does not fit {model.family}({arch}): {len(fit.missing)} keys missing, "
        f"{len(fit.unexpected)} unexpected, {len(fit.mismatched)} with other shapes; "
        f"it looks like {looks_like or 'neither smit nor swin_unetr'}"
    )


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read tensors and metadata from a checkpoint without executing any of its code.

    Args:
        path: ``.safetensors`` or a PyTorch file (zip or legacy pickle); the format is sniffed
            from the first bytes, not the suffix.

    Returns:
        (state dict, the attndilute metadata or None for foreign files).
    """
    path = Path(path)
    if not path.is_file():
        raise AttnDiluteError("no such checkpoint file", path=path)
    kind = _sniff(path)
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "torch":
        return _read_torch(path)
    raise AttnDiluteError(
        f"not a checkpoint: {kind}", path=path, hint="expected .safetensors or a PyTorch .pt/.pth"
    )


def _sniff(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(9)
    if size == 0:
        return "the file is empty"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # zip archive / pickle protocol >= 2
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if 8 + n > size:
            raise AttnDiluteError("safetensors header is cut short: the file is truncated", path=path)
        return "safetensors"
    return "unknown format"


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            header = (fh.metadata() or {}).get(META_KEY)
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise AttnDiluteError(
            f"cannot read safetensors file, truncated or corrupt ({_line(err)})", path=path
        ) from None
    try:
        meta = json.loads(header) if header else None
    except json.JSONDecodeError as err:
        raise AttnDiluteError(f"checkpoint metadata is not valid JSON ({err})", path=path) from None
    return state, meta


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f"it would call {found.group(1)}" if found else _line(err).split(". ")[0]
        raise AttnDiluteError(
            f"refused: unpickling this checkpoint needs arbitrary code ({what})",
            path=path,
            hint="nothing was executed; re-save it as a state_dict or .safetensors from a trusted session",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        first = _line(err).split(". ")[0]
        raise AttnDiluteError(
            f"cannot read PyTorch checkpoint, truncated or corrupt ({first})", path=path
        ) from None
    state = _find_state(raw)
    if state is None:
        raise AttnDiluteError(
            "no weights found in the checkpoint",
            path=path,
            hint=f"expected a state dict or one under {_STATE_KEYS}",
        )
    meta = raw.get("attndilute_meta") if isinstance(raw, dict) else None
    return state, meta if isinstance(meta, dict) and "family" in meta else None


def _find_state(raw: Any, depth: int = 0) -> dict[str, torch.Tensor] | None:
    if not isinstance(raw, Mapping):
        return None
    tensors = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if tensors and len(tensors) >= len(raw) / 2:
        return tensors
    if depth < 2:
        for key in _STATE_KEYS:
            found = _find_state(raw.get(key), depth + 1)
            if found:
                return found
    return None


def _numpy_globals() -> list:
    """Numpy scalars and dtypes: plain data that old training scripts pickle (``best_acc``)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "bool")]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtypes]


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (constructor sequences), recursively."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r}")


def _line(err: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # torch colours part of its message
    return " ".join(text.split()) or type(err).__name__
