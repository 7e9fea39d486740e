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
import math
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
from attndilute.models.importers import detect_family, infer_kwargs, map_keys
from attndilute.models.registry import build, family_class

META_KEY = "attndilute"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_MAX_HEADER = 100_000_000  # safetensors refuses larger headers
_PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")  # the byte after PROTO (0x80)
_TEXT_PROBE = 64  # bytes after the length that tell a cut safetensors header from a pickle
# constructor arguments that fix tensor shapes, compared with the tensors before building
_SIZE_KWARGS = (
    "embed_dim",
    "feature_size",
    "in_channels",
    "out_channels",
    "patch_size",
    "depths",
    "num_heads",
    "window_size",
    "mlp_ratio",
)
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


def save_half(path: str | Path) -> Path:
    """Rewrite a ``.safetensors`` checkpoint with its float32 tensors stored as float16 (half the
    bytes), header and integer buffers unchanged; :func:`load` casts them back to the model's dtype.

    Used by ``attndilute demo --fast``, whose one-epoch models are a pipeline check.

    Args:
        path: a checkpoint written by :func:`save`.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata() or {}
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**header, "stored_dtype": "float16"})
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
    state, meta = read_checkpoint(path)
    overrides = {k: kwargs.pop(k) for k in ("crop", "spacing") if k in kwargs}
    detected = detect_family(state) if meta is None else meta["family"]
    if meta is not None:
        fam, mapped, extra = meta["family"], state, {}
        if family is not None and family != fam:
            raise AttnDiluteError(f"checkpoint holds a {fam} model, not {family}", path=path)
        _check_sizes(_tuples(meta["kwargs"]), state, fam, path)
        ctor = {**_tuples(meta["kwargs"]), **kwargs}
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
    model = _build(fam, ctor, path)
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


def _check_sizes(
    claimed: Mapping[str, Any], state: Mapping[str, torch.Tensor], family: str, path: Any
) -> None:
    """Refuse stored constructor sizes that the tensors contradict, before any model is allocated.

    Metadata claiming, say, ``embed_dim=10**9`` next to 12-wide tensors would otherwise make
    :func:`load` try to allocate the claimed model.
    """
    read = infer_kwargs(state, family)
    if "depths" in read:
        read.setdefault("mlp_ratio", 4.0)  # infer_kwargs leaves the default out
    for key in _SIZE_KWARGS:
        if key in claimed and key in read and _differs(key, claimed[key], read[key]):
            raise AttnDiluteError(
                f"checkpoint metadata says {key}={_short(claimed[key])} but its tensors say {read[key]}",
                path=path,
                hint="the metadata does not describe these weights; re-save the model",
            )


def _differs(key: str, said: Any, found: Any) -> bool:
    """Whether a stored size argument contradicts the one read from the tensors.

    Values of different forms (a non-cubic window against a cubic one, a string) are left to
    the constructor, which rejects what it cannot take.
    """
    said, found = _size(key, said), _size(key, found)
    if type(said) is not type(found):
        return False
    return not math.isclose(said, found) if isinstance(said, float) else said != found


def _size(key: str, value: Any) -> Any:
    """A size argument in one comparable form (tuples, an isotropic triple as one int, floats)."""
    if isinstance(value, list | tuple):
        value = tuple(value)
        if key in ("window_size", "patch_size") and len(set(value)) == 1:
            return value[0]
    if key == "mlp_ratio" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if abs(value) < 1e300 else math.inf
    return value


def _build(family: str, ctor: dict[str, Any], path: Any) -> nn.Module:
    """``build(family, **ctor)`` with any failure (bad arguments, no memory) as one line naming the file."""
    try:
        return build(family, **ctor)
    except AttnDiluteError as err:
        raise AttnDiluteError(f"cannot build the model the checkpoint describes: {err}", path=path) from None
    except (TypeError, ValueError, OverflowError, RuntimeError, MemoryError) as err:
        raise AttnDiluteError(
            f"cannot build the model the checkpoint describes ({_line(err)})", path=path
        ) from None


def load_weights(model: nn.Module, path: str | Path) -> tuple[int, list[str], list[str]]:
    """Import pretrained weights into an existing model (the trainer's ``--init``).

    Args:
        model: a model built by :func:`attndilute.models.build`.
        path: a checkpoint in any format :func:`load` reads.

    Returns:
        (number of tensors loaded, model keys left as they were, checkpoint keys not used —
        unknown names or other shapes).
    """
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
    """The format of ``path`` read from its structure, never its suffix or one byte.

    Returns ``"safetensors"`` (an 8-byte little-endian length N with ``8 + N <= size`` and a JSON
    object in bytes ``[8, 8 + N)``, checked first), ``"torch"`` (a zip archive, or a pickle stream
    opening with protocol 2-5 that is not a safetensors file) or a phrase saying why it is neither.
    A safetensors file cut inside its header is a one-line "truncated" error.
    """
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with path.open("rb") as fh:
        head = fh.read(8 + _TEXT_PROBE)
        if _is_safetensors(fh, head, size):
            return "safetensors"
    if head[:4] == _ZIP_MAGIC:
        return "torch"
    json_like = _starts_like_json_header(head)
    if json_like and 8 + struct.unpack("<Q", head[:8])[0] > size:
        raise AttnDiluteError("safetensors header is cut short: the file is truncated", path=path)
    if head[:1] == b"\x80" and head[1:2] in _PICKLE_PROTOCOLS:
        return "torch"
    if json_like:
        raise AttnDiluteError(
            "safetensors header is not a JSON object (or over 100 MB): the file is corrupt", path=path
        )
    return "unknown format"


def _is_safetensors(fh: Any, head: bytes, size: int) -> bool:
    """Whether the file open as ``fh`` (``head``: its first bytes) is structurally safetensors.

    Strict: the header must fit in the file, start with ``{``, be UTF-8 JSON without NaN or
    Infinity, and be an object.
    """
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if 8 + n > size or n > _MAX_HEADER:
        return False
    fh.seek(8)
    raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(header, dict)


def _starts_like_json_header(head: bytes) -> bool:
    """Whether the bytes after the 8-byte length read as the start of JSON text (``{`` then text).

    A pickle stream almost never has printable text there, so this tells a cut safetensors file
    from a pickle whose first byte happens to be ``{`` at offset 8.
    """
    text = head[8:]
    if text[:1] != b"{":
        return False
    decoded = text.decode("utf-8", errors="replace").rstrip("\ufffd")  # the probe may cut a character
    return all((c.isprintable() and c != "\ufffd") or c in "\t\r\n" for c in decoded)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Tensors and checked attndilute metadata of a safetensors file; any failure is one line."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            header = (fh.metadata() or {}).get(META_KEY)
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as err:  # noqa: BLE001 (SafetensorError and whatever else the reader raises)
        raise AttnDiluteError(
            f"cannot read safetensors file, truncated or corrupt ({_line(err)})", path=path
        ) from None
    if header is None:
        return state, None
    try:
        meta = json.loads(header, parse_constant=_reject_constant)
    except ValueError as err:
        raise AttnDiluteError(f"checkpoint metadata is not valid JSON ({_line(err)})", path=path) from None
    return state, _check_meta(meta, path)


def _check_meta(meta: Any, path: str | Path) -> dict[str, Any]:
    """Check the ``attndilute`` metadata of a checkpoint against its schema and return it.

    Schema: a JSON object with ``family`` (a registered family), ``kwargs`` (an object of
    constructor arguments), optional ``crop`` (3 positive ints) and optional ``spacing``
    (3 finite positive numbers); other entries are free.

    Raises:
        AttnDiluteError: one line naming the file and the first violation.
    """
    def bad(what: str, hint: str | None = None) -> AttnDiluteError:
        return AttnDiluteError(f"checkpoint metadata {what}", path=path, hint=hint)

    if not isinstance(meta, dict):
        raise bad(f"is not a JSON object (a {type(meta).__name__})")
    if "family" not in meta:
        raise bad("has no 'family'")
    if not isinstance(meta["family"], str):
        raise bad(f"has a family that is not a name ({_short(meta['family'])})")
    try:
        family_class(meta["family"])
    except AttnDiluteError as err:
        raise bad(f"names an unknown model family {meta['family']!r}", hint=err.hint) from None
    if not isinstance(meta.get("kwargs"), dict):
        raise bad(f"kwargs must be an object of constructor arguments, not {_short(meta.get('kwargs'))}")
    if "crop" in meta and not _triple(meta["crop"], int):
        raise bad(f"crop must be 3 positive integers, not {_short(meta['crop'])}")
    if "spacing" in meta and not _triple(meta["spacing"], (int, float)):
        raise bad(f"spacing must be 3 finite positive numbers, not {_short(meta['spacing'])}")
    return meta


def _triple(value: Any, kind: type | tuple[type, ...]) -> bool:
    """Whether ``value`` is a list of 3 finite positive numbers of ``kind`` (bools excluded)."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, kind) and not isinstance(v, bool) and 0 < v < math.inf for v in value)
    )


def _short(value: Any, width: int = 60) -> str:
    """A one-line repr of ``value``, cut to ``width`` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    try:
        # an open file, not the path: recent torch hands any "*.safetensors" path to safetensors
        with torch.serialization.safe_globals(_numpy_globals()), path.open("rb") as fh:
            raw = torch.load(fh, map_location="cpu", weights_only=True)
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
    return state, None if meta is None else _check_meta(meta, path)


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


def read_checkpoint_meta(path: str | Path) -> dict:
    """The ``attndilute`` JSON header of a ``.safetensors`` checkpoint (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            text = (handle.metadata() or {}).get("attndilute")
        return json.loads(text) if text else {}
    except (SafetensorError, OSError, ValueError) as err:
        raise AttnDiluteError(f"not a readable checkpoint ({type(err).__name__})", path=path) from None
