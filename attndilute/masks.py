"""Padding fraction, token sources and the window layout of a Swin block (seed §2.4, Eq. 4).

Every token a windowed transformer attends over has one *source* (DESIGN §2):

- ``REAL`` (0): at least one of its voxels came from the image;
- ``INPUT_PAD`` (1): all its voxels are padding the pipeline added to the volume (the real mask is
  False there) — the padding the seed's ADI is about;
- ``LAYOUT_PAD`` (2): added by the implementation itself — end padding of odd sizes in the patch
  embedding or a patch merging, or end padding of a feature map to a multiple of the window.

Token masks follow the model's own geometry: stage-0 tokens are the max-pool of the voxel mask over
each patch, every patch merging is a max-pool 2 (a merged token is real if any constituent is),
both end-padding odd sizes. The window layout reproduces MONAI's ``SwinTransformerBlock``:
``get_window_size``, end padding to a multiple of the window, ``torch.roll`` by minus the shift,
``window_partition`` order, and for shifted blocks the -100 region mask of ``compute_mask``.

Only torch is imported here; MONAI is used in the tests as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

REAL, INPUT_PAD, LAYOUT_PAD = 0, 1, 2
SOURCES: tuple[str, str, str] = ("real", "input_pad", "layout_pad")

# Max-pool works on a priority: real wins over input padding, which wins over layout padding.
_PRIORITY_TO_SOURCE = torch.tensor([LAYOUT_PAD, INPUT_PAD, REAL], dtype=torch.uint8)


def padding_fraction(extent: float, crop: float) -> float:
    """Padding fraction of a volume along the axial axis (Eq. 4).

    ``pf = max(1 - L / C, 0)``: L is the native axial extent after resampling to 1 mm (in voxels
    = mm), C the crop size along Z. A volume at least as long as the crop is cropped: pf = 0.

    Args:
        extent: L, the axial extent in voxels after resampling (> 0).
        crop: C, the crop size along Z in voxels (> 0).

    Returns:
        The padding fraction in [0, 1).

    Raises:
        ValueError: if ``extent`` or ``crop`` is not a positive finite number.
    """
    extent, crop = float(extent), float(crop)
    if not (math.isfinite(extent) and extent > 0):
        raise ValueError(f"extent must be a positive number, got {extent}")
    if not (math.isfinite(crop) and crop > 0):
        raise ValueError(f"crop must be a positive number, got {crop}")
    return max(1.0 - extent / crop, 0.0)


def per_axis(v: int | Sequence[int], n: int) -> tuple[int, ...]:
    """``v`` as an ``n``-tuple of ints (an int is repeated); ValueError for another length."""
    t = (int(v),) * n if isinstance(v, int) else tuple(int(x) for x in v)
    if len(t) != n:
        raise ValueError(f"expected {n} values, got {t}")
    return t


def as_sources(mask: torch.Tensor) -> torch.Tensor:
    """Token sources from a bool real mask (True -> ``REAL``, False -> ``INPUT_PAD``).

    A uint8 tensor is taken as sources already and returned unchanged.
    """
    if mask.dtype == torch.bool:
        return torch.where(mask, REAL, INPUT_PAD).to(torch.uint8)
    if mask.dtype != torch.uint8:
        raise TypeError(f"expected a bool real mask or uint8 sources, got {mask.dtype}")
    return mask


def _end_pad(src: torch.Tensor, multiples: Sequence[int]) -> torch.Tensor:
    """End-pad the spatial dims (all but the first) of ``src`` with ``LAYOUT_PAD`` to multiples."""
    pads: list[int] = []
    for size, m in zip(reversed(src.shape[1:]), reversed(list(multiples)), strict=True):
        pads += [0, (m - size % m) % m]
    if not any(pads):
        return src
    return F.pad(src, pads, value=LAYOUT_PAD)


def pool_sources(sources: torch.Tensor, kernel: int | Sequence[int]) -> torch.Tensor:
    """One propagation step: max-pool of token sources (kernel = stride), end-padding odd sizes.

    Args:
        sources: (B, *spatial) uint8 sources, or a bool real mask.
        kernel: pooling kernel (= stride) per spatial axis: the patch size for the patch embedding,
            2 for a patch merging.

    Returns:
        (B, *ceil(spatial / kernel)) uint8 sources: ``REAL`` if any constituent is real, else
        ``INPUT_PAD`` if any is input padding, else ``LAYOUT_PAD``.
    """
    sources = as_sources(sources)
    nd = sources.dim() - 1
    k = per_axis(kernel, nd)
    padded = _end_pad(sources, k)
    priority = (2 - padded.to(torch.int16)).to(torch.float32)  # real 2, input_pad 1, layout_pad 0
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
    pooled = pool(priority[:, None], kernel_size=k, stride=k)[:, 0]
    return _PRIORITY_TO_SOURCE.to(sources.device)[pooled.long()]


def stage_sources(real: torch.Tensor, patch_size: int | Sequence[int], num_stages: int) -> list[torch.Tensor]:
    """Token sources at every stage of a hierarchical transformer, by max-pool propagation.

    Args:
        real: (B, X, Y, Z) bool real mask of the input volume (or uint8 sources).
        patch_size: patch size of the patch embedding (int or per axis).
        num_stages: number of token grids to return: the patch embedding's grid, then one per
            patch merging.

    Returns:
        ``num_stages`` uint8 tensors; stage i is (B, X / (p 2^i), ...) with odd sizes rounded up.
    """
    if num_stages < 1:
        raise ValueError(f"num_stages must be >= 1, got {num_stages}")
    out = [pool_sources(real, patch_size)]
    for _ in range(num_stages - 1):
        out.append(pool_sources(out[-1], 2))
    return out


def stage_token_masks(
    real: torch.Tensor, patch_size: int | Sequence[int], num_stages: int
) -> list[torch.Tensor]:
    """Bool real-token masks per stage (True = real token); see :func:`stage_sources`."""
    return [s == REAL for s in stage_sources(real, patch_size, num_stages)]


def window_geometry(
    grid: Sequence[int], window_size: Sequence[int], shift_size: Sequence[int] | None = None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """MONAI's ``get_window_size``: along an axis where the feature map is no larger than the
    window, the window shrinks to the feature size and its shift becomes 0.

    Returns:
        (window, shift) actually used for a feature map of spatial size ``grid``.
    """
    window = list(window_size)
    shift = list(shift_size) if shift_size is not None else [0] * len(window)
    for i, size in enumerate(grid):
        if size <= window[i]:
            window[i] = size
            shift[i] = 0
    return tuple(window), tuple(shift)


def partition(x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """MONAI/timm ``window_partition`` order for a tensor without channels, 1-3 spatial axes.

    Args:
        x: (B, *grid) with every spatial size a multiple of ``window``.

    Returns:
        (B * nW, N) with windows ordered (b, window index row-major over the axes) and tokens
        row-major inside a window, N = prod(window).
    """
    b, *grid = x.shape
    nd = len(grid)
    split = [b]
    for size, w in zip(grid, window, strict=True):
        split += [size // w, w]
    order = [0, *range(1, 2 * nd, 2), *range(2, 2 * nd + 1, 2)]  # b, window indices, in-window offsets
    return x.reshape(split).permute(order).reshape(-1, math.prod(window))


def region_mask(padded: Sequence[int], window: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """The additive region mask of shifted windows, as MONAI's ``compute_mask`` (timm's likewise).

    After the roll, a window can hold tokens from up to 3^d regions that were not neighbours;
    pairs from different regions get -100 (Swin's convention), pairs from the same region 0.

    Args:
        padded: spatial size after end padding to a multiple of the window (1-3 axes).
        window, shift: as returned by :func:`window_geometry`.

    Returns:
        (nW, N, N) float32 with values 0 and -100.
    """
    nd = len(padded)
    labels = torch.zeros(tuple(padded), dtype=torch.int64)
    for axis, (size, ws, ss) in enumerate(zip(padded, window, shift, strict=True)):
        region = torch.zeros(size, dtype=torch.int64)  # slices (:-ws), (-ws:-ss), (-ss:)
        region[size - ws : size - ss if ss else size] = 1
        if ss:
            region[size - ss :] = 2
        shape = [1] * nd
        shape[axis] = size
        labels = labels * 3 + region.view(shape)
    win = partition(labels[None], window)  # (nW, N)
    diff = win[:, None, :] - win[:, :, None]  # (nW, N, N)
    return torch.where(diff != 0, -100.0, 0.0).to(torch.float32)


@dataclass(frozen=True)
class WindowLayout:
    """Token layout of one Swin block's window attention.

    Attributes:
        sources: (B * nW, N) uint8 token sources in the order the block's attention sees them
            (``window_partition`` of the end-padded, rolled grid).
        window: the window actually used (after ``get_window_size``).
        shift: the shift actually used.
        padded: the spatial size after end padding to a multiple of the window.
        num_windows: nW, windows per scan.
        region_mask: (nW, N, N) -100/0 region mask for shifted blocks, else None.
    """

    sources: torch.Tensor
    window: tuple[int, ...]
    shift: tuple[int, ...]
    padded: tuple[int, ...]
    num_windows: int
    region_mask: torch.Tensor | None

    @property
    def real(self) -> torch.Tensor:
        """(B * nW, N) bool: True for real tokens."""
        return self.sources == REAL


#: The two orders real libraries use: MONAI (and Hugging Face Swin) pad then roll, timm rolls then pads.
ORDERS = ("pad-roll", "roll-pad")


def window_layout(
    tokens: torch.Tensor,
    window_size: int | Sequence[int],
    shift_size: int | Sequence[int] = 0,
    *,
    order: str = "pad-roll",
    shrink: bool = True,
    with_region_mask: bool = True,
) -> WindowLayout:
    """Lay out a token grid exactly as a windowed-attention block does (1-3 spatial axes).

    Args:
        tokens: (B, *grid) bool real-token mask or uint8 sources of the block's input grid,
            with 1, 2 or 3 spatial axes.
        window_size: nominal window (int or per axis); anisotropic windows allowed.
        shift_size: nominal shift (0 for a regular block, usually window // 2 for a shifted one).
        order: ``"pad-roll"`` (MONAI ``SwinTransformerBlock``, Hugging Face Swin: end padding to a
            window multiple, then ``torch.roll`` by minus the shift) or ``"roll-pad"`` (timm
            ``SwinTransformerBlock``: roll the unpadded grid, then end-pad).
        shrink: apply MONAI's ``get_window_size`` rule (:func:`window_geometry`); pass False
            where the model already stores the window it uses (timm, Hugging Face).
        with_region_mask: compute the -100 region mask for shifted blocks (on the padded grid).

    Returns:
        A :class:`WindowLayout`; its ``sources`` are (B * nW, N).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    sources = as_sources(tokens)
    nd = sources.dim() - 1
    if nd not in (1, 2, 3):
        raise ValueError(f"expected tokens (B, *grid) with 1-3 spatial axes, got {tuple(sources.shape)}")
    grid = tuple(sources.shape[1:])
    window, shift = per_axis(window_size, nd), per_axis(shift_size, nd)
    if shrink:
        window, shift = window_geometry(grid, window, shift)
    dims = tuple(range(1, nd + 1))
    if order == "roll-pad" and any(shift):
        sources = torch.roll(sources, shifts=tuple(-s for s in shift), dims=dims)
    padded_src = _end_pad(sources, window)  # end padding to a window multiple: layout padding
    padded = tuple(padded_src.shape[1:])
    if order == "pad-roll" and any(shift):
        padded_src = torch.roll(padded_src, shifts=tuple(-s for s in shift), dims=dims)
    windows = partition(padded_src, window)
    num_windows = math.prod(p // w for p, w in zip(padded, window, strict=True))
    mask = None
    if any(shift) and with_region_mask:
        mask = region_mask(padded, window, shift).to(sources.device)
    return WindowLayout(windows, window, shift, padded, num_windows, mask)
