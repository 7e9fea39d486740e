"""Key mapping for foreign checkpoints: MONAI/NVIDIA Swin UNETR and SMIT.

Pure functions on state dicts (name -> tensor): strip wrapper prefixes, recognise the family,
rename keys into this package's layout, and read the architecture off the tensor shapes so a
checkpoint without metadata can still be rebuilt.

Layouts handled:
- MONAI ``SwinUNETR`` state dicts (``swinViT.*``, ``encoder1.*``, ...), possibly under
  ``module.`` (DDP);
- NVIDIA's self-supervised ``model_swinvit.pt``: the Swin backbone without ``swinViT.`` and with
  ``mlp.fc1/fc2`` where MONAI has ``mlp.linear1/linear2``;
- the ``encoder.*`` layout of the Disruptive Autoencoder weights, mapped with MONAI's own
  ``filter_swinunetr``;
- SMIT (``transformer.*`` or a bare backbone), under ``module.``, ``backbone.`` or
  ``module.backbone.``; its self-distillation heads are dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

_WRAPPER_PREFIXES = ("module.", "backbone.", "model.")

# Keys that belong to self-supervised heads, never to a segmentation model.
_SSL_ONLY = {
    "swin_unetr": (
        "rotation_head.",
        "rotation_pre.",
        "contrastive_head.",
        "contrastive_pre.",
        "conv.",
        "norm.",
        "mask_token",
    ),
    "smit": (
        "transformer.mask_token",
        "mask_token",
        "norm.",
        "head.",
        "head_group.",
        "head_cls.",
        "decoder1.weight",
        "decoder1.bias",
        "avgpool",
    ),
}
_SIGNATURES = {
    "swin_unetr": re.compile(r"(^|\.)(layers[1-4]c?\.0\.|encoder10\.|swinViT\.)"),
    "smit": re.compile(r"(^|\.)(layers\.\d+\.blocks\.\d+\.|norm[0-3]\.weight$)"),
    "unetr (MONAI UNETR, not supported)": re.compile(r"(^|\.)vit\.patch_embedding\."),
}
_SWIN_BACKBONE = ("patch_embed.", "layers1", "layers2", "layers3", "layers4")
_SMIT_BACKBONE = ("patch_embed.", "layers.", "norm0.", "norm1.", "norm2.", "norm3.")


def strip_prefix(key: str) -> str:
    """Remove wrapper prefixes (``module.``, ``backbone.``, ``model.``) from the front of ``key``."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def detect_family(keys: Iterable[str]) -> str | None:
    """The family whose key signature matches most keys, or None.

    Args:
        keys: state-dict keys (wrapper prefixes are stripped here).
    """
    keys = [strip_prefix(k) for k in keys]
    counts = {fam: sum(bool(sig.search(k)) for k in keys) for fam, sig in _SIGNATURES.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def map_keys(state: Mapping[str, torch.Tensor], family: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a foreign state dict into ``family``'s layout.

    Args:
        state: checkpoint tensors by name.
        family: ``"swin_unetr"`` or ``"smit"``.

    Returns:
        (mapped state dict, original names of the self-supervised keys that were dropped).
    """
    stripped = {strip_prefix(k): v for k, v in state.items()}
    mapper = {"swin_unetr": _map_swin, "smit": _map_smit}[family]
    mapped, ignored = {}, []
    ssl_layout = family == "swin_unetr" and any(k.startswith("encoder.") for k in stripped)
    for key, value in stripped.items():
        new = mapper(key, value, ssl_layout)
        if new is None:
            ignored.append(key)
        else:
            mapped[new] = value
    return mapped, ignored


def _map_swin(key: str, value: torch.Tensor, ssl_layout: bool) -> str | None:
    if ssl_layout:  # Disruptive Autoencoder weights: MONAI's own filter decides
        from monai.networks.nets.swin_unetr import filter_swinunetr

        hit = filter_swinunetr(key, value)
        if hit is None:
            return None
        key = hit[0]
    elif key.startswith(_SWIN_BACKBONE):  # NVIDIA's backbone-only layout
        key = "swinViT." + key
    elif key.startswith(_SSL_ONLY["swin_unetr"]):
        return None
    return key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")


def _map_smit(key: str, value: torch.Tensor, ssl_layout: bool) -> str | None:
    if key.startswith(_SSL_ONLY["smit"]):
        return None
    if key.startswith(_SMIT_BACKBONE):  # a bare backbone
        key = "transformer." + key
    return key


def infer_kwargs(state: Mapping[str, torch.Tensor], family: str) -> dict[str, Any]:
    """Constructor arguments readable from the tensor shapes of a mapped state dict.

    Reads channels, patch size, embedding width, depths, heads, window, qkv bias, patch norm,
    ``use_v2`` and the number of output classes where the tensors that fix them are present.

    Args:
        state: a state dict already in ``family``'s layout (see :func:`map_keys`).
        family: ``"swin_unetr"`` or ``"smit"``.
    """
    if family == "swin_unetr":
        root, width, stage = "swinViT.", "feature_size", "swinViT.layers{i}.0."
        stages = [stage.format(i=i) for i in range(1, 5)]
    else:
        root, width = "transformer.", "embed_dim"
        stages = [f"transformer.layers.{i}." for i in range(4)]
    out: dict[str, Any] = {}
    proj = state.get(root + "patch_embed.proj.weight")
    if proj is not None:  # (C, C_in, p, p, p)
        out.update(
            {width: int(proj.shape[0]), "in_channels": int(proj.shape[1]), "patch_size": int(proj.shape[2])}
        )
    depths, heads = [], []
    for prefix in stages:
        blocks = {
            int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", k))
        }
        table = state.get(prefix + "blocks.0.attn.relative_position_bias_table")
        depths.append(len(blocks))
        heads.append(None if table is None else int(table.shape[1]))
    if all(depths):
        out["depths"] = tuple(depths)
    if all(h is not None for h in heads):
        out["num_heads"] = tuple(heads)
    table = state.get(stages[0] + "blocks.0.attn.relative_position_bias_table")
    if table is not None:  # (2w-1)^3 rows for a cubic window w
        side = round(table.shape[0] ** (1 / 3))
        if side**3 == table.shape[0]:
            out["window_size"] = (side + 1) // 2
    if any(k.startswith(stages[0] + "blocks.0.attn.qkv.") for k in state):
        out["qkv_bias"] = (stages[0] + "blocks.0.attn.qkv.bias") in state
    if proj is not None:
        out["patch_norm"] = (root + "patch_embed.norm.weight") in state
    fc1 = state.get(
        stages[0] + "blocks.0.mlp." + ("linear1" if family == "swin_unetr" else "fc1") + ".weight"
    )
    if fc1 is not None:
        out["mlp_ratio"] = fc1.shape[0] / fc1.shape[1]
    if family == "swin_unetr" and any(k.startswith("swinViT.layers1c.") for k in state):
        out["use_v2"] = True
    head = state.get("out.conv.conv.weight")
    if head is not None:
        out["out_channels"] = int(head.shape[0])
    if "mlp_ratio" in out and math.isclose(out["mlp_ratio"], 4.0):
        out.pop("mlp_ratio")
    return out
