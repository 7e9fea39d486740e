"""SMIT: the self-distilled masked image transformer backbone with a UNETR-style decoder (seed §2.2).

SMIT (Jiang et al. 2022) is a hierarchical shifted-window 3D transformer: patch 2, window 4,
embedding 48, four stages each followed by a patch merging (8C -> 2C), so the bottleneck sits at
1/32 of the input with 16 x 48 = 768 channels. The encoder's module and parameter names follow the
public SMIT checkpoints (``transformer.patch_embed``, ``transformer.layers.{i}.blocks.{j}``,
``mlp.fc1``, ``transformer.norm{i}``, the merging order of the eight sub-grids), so pretrained
weights load by name. The decoder is MONAI's UNETR blocks wired as in Swin UNETR.

Every block exposes the MONAI block interface (``docs/architecture.md``): ``window_size``,
``shift_size``, ``attn.num_heads``, ``attn.softmax``; it receives x as (B, D, H, W, C) and lays
out its windows with MONAI's own ``get_window_size``, ``window_partition``, ``window_reverse`` and
``compute_mask``, so the instrumentation treats both families identically. The attention module
*is* MONAI's ``WindowAttention`` (same keys as SMIT's: ``qkv``, ``proj``,
``relative_position_bias_table``), including its flash path.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import UnetOutBlock, UnetrBasicBlock, UnetrUpBlock
from monai.networks.layers import DropPath
from monai.networks.nets.swin_unetr import (
    WindowAttention,
    compute_mask,
    get_window_size,
    window_partition,
    window_reverse,
)
from torch import nn

from attndilute.masks import per_axis
from attndilute.models._masking import check_real, padding_context
from attndilute.models.registry import check_crop

# SMIT's merging order of the 2x2x2 sub-grids (offsets along D, H, W); differs from MONAI's v1
# PatchMerging in entries 5 and 6, and the learned reduction depends on it.
_MERGE_OFFSETS = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1))


class Mlp(nn.Module):
    """Two-layer GELU MLP with SMIT's parameter names (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SMITBlock(nn.Module):
    """One (shifted-)window attention block.

    Args:
        dim: channels C.
        num_heads: attention heads.
        window_size: nominal window (3-tuple); shrinks where the feature map is smaller.
        shift_size: (0, 0, 0) for a regular block, window // 2 for a shifted one.
        mlp_ratio: hidden width of the MLP relative to C.
        qkv_bias: bias on the query/key/value projection (SMIT: False).
        drop, attn_drop, drop_path: dropout rates.
        use_flash_attention: let MONAI's attention use ``scaled_dot_product_attention`` at inference.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: tuple[int, int, int],
        shift_size: tuple[int, int, int],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        use_flash_attention: bool = False,
    ):
        super().__init__()
        self.window_size = tuple(window_size)
        self.shift_size = tuple(shift_size)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim,
            num_heads=num_heads,
            window_size=self.window_size,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=drop,
            use_flash_attention=use_flash_attention,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def _attend(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, d, h, w, c = x.shape  # x: (B, D, H, W, C)
        window, shift = get_window_size((d, h, w), self.window_size, self.shift_size)
        pad = [(ws - s % ws) % ws for s, ws in zip((d, h, w), window, strict=True)]
        x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))  # end padding to a window multiple
        dims = [b, *x.shape[1:4]]
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = window_partition(x, window)  # (B*nW, N, C)
        windows = self.attn(windows, mask=attn_mask if shifted else None)  # softmax: (B*nW, heads, N, N)
        x = window_reverse(windows.view(-1, *window, c), window, dims)  # (B, Dp, Hp, Wp, C)
        if shifted:
            x = torch.roll(x, shifts=tuple(shift), dims=(1, 2, 3))
        return x[:, :d, :h, :w, :].contiguous()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        """Args:
        x: tokens (B, D, H, W, C).
        attn_mask: the -100 region mask of shifted windows (nW, N, N), from ``compute_mask``.
        """
        x = x + self.drop_path(self._attend(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2x2x2 neighbourhood in SMIT's order, normalise, reduce 8C -> 2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(8 * dim)
        self.reduction = nn.Linear(8 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W, C) -> (B, ceil(D/2), ceil(H/2), ceil(W/2), 2C); odd sizes end-padded."""
        d, h, w = x.shape[1:4]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2, 0, d % 2))
        x = torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in _MERGE_OFFSETS], dim=-1)
        return self.reduction(self.norm(x))


class SMITStage(nn.Module):
    """``depth`` blocks alternating regular and shifted windows, then a patch merging."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: tuple[int, int, int],
        drop_path: Sequence[float],
        **block_kwargs,
    ):
        super().__init__()
        self.window_size = window_size
        self.shift_size = tuple(s // 2 for s in window_size)
        no_shift = (0, 0, 0)
        self.blocks = nn.ModuleList(
            SMITBlock(
                dim,
                num_heads,
                window_size,
                self.shift_size if i % 2 else no_shift,
                drop_path=drop_path[i],
                **block_kwargs,
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D, H, W, C) -> (stage output (B, D, H, W, C), merged (B, D/2, H/2, W/2, 2C))."""
        d, h, w = x.shape[1:4]
        window, shift = get_window_size((d, h, w), self.window_size, self.shift_size)
        padded = [-(-s // ws) * ws for s, ws in zip((d, h, w), window, strict=True)]
        attn_mask = compute_mask(padded, window, shift, x.device)  # (nW, N, N), -100 across regions
        for block in self.blocks:
            x = block(x, attn_mask)
        return x, self.downsample(x)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection plus LayerNorm (SMIT: ``patch_norm=True``)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, norm: bool = True):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, X, Y, Z) -> (B, X/p, Y/p, Z/p, embed_dim)."""
        x = self.proj(x).permute(0, 2, 3, 4, 1)
        return self.norm(x) if self.norm is not None else x


class SMITEncoder(nn.Module):
    """Patch embedding, four windowed stages with merging, and a LayerNorm on each stage output."""

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        patch_size: int,
        window_size: tuple[int, int, int],
        depths: Sequence[int],
        num_heads: Sequence[int],
        patch_norm: bool,
        drop_rate: float,
        dropout_path_rate: float,
        **block_kwargs,
    ):
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size, patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, dropout_path_rate, sum(depths)).tolist()
        starts = [0, *itertools.accumulate(depths)]
        self.layers = nn.ModuleList(
            SMITStage(
                embed_dim * 2**i,
                depth,
                heads,
                window_size,
                rates[starts[i] : starts[i + 1]],
                drop=drop_rate,
                **block_kwargs,
            )
            for i, (depth, heads) in enumerate(zip(depths, num_heads, strict=True))
        )
        for i in range(len(depths)):
            self.add_module(f"norm{i}", nn.LayerNorm(embed_dim * 2**i))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C_in, X, Y, Z) -> [normed stage i output (B, C 2^i, X/2^(i+1), ..)] + [(B, 16C, X/32, ..)]."""
        x = self.pos_drop(self.patch_embed(x))  # (B, D, H, W, C)
        outs = []
        for i, stage in enumerate(self.layers):
            out, x = stage(x)
            outs.append(getattr(self, f"norm{i}")(out).permute(0, 4, 1, 2, 3).contiguous())
        outs.append(x.permute(0, 4, 1, 2, 3).contiguous())
        return outs


class SMIT(nn.Module):
    """SMIT encoder + UNETR-style convolutional decoder with skips at every scale (seed §2.2).

    Args:
        in_channels: image channels.
        out_channels: output classes (background, tumour).
        patch_size: patch edge (SMIT: 2).
        window_size: window edge or 3-tuple (SMIT: 4).
        embed_dim: stage-0 channels; also the decoder's feature size (SMIT: 48).
        depths: blocks per stage (default (2, 2, 8, 2)).
        num_heads: heads per stage (default (4, 4, 8, 16)).
        mlp_ratio: MLP width relative to the channels.
        qkv_bias: bias on the qkv projection (the public SMIT config: False).
        patch_norm: LayerNorm after the patch projection (SMIT: True).
        drop_rate, attn_drop_rate, dropout_path_rate: regularisation.
        norm_name: decoder normalisation (MONAI name).
        use_flash_attention: MONAI's ``scaled_dot_product_attention`` path at inference.
        mask_padding: mask padding keys in every window attention when ``real`` is given (seed §4).
    """

    family = "smit"
    backbone_prefix = "transformer."

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        *,
        patch_size: int = 2,
        window_size: int | Sequence[int] = 4,
        embed_dim: int = 48,
        depths: Sequence[int] = (2, 2, 8, 2),
        num_heads: Sequence[int] = (4, 4, 8, 16),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        patch_norm: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        dropout_path_rate: float = 0.0,
        norm_name: str | tuple = "instance",
        use_flash_attention: bool = False,
        mask_padding: bool = False,
    ):
        """Build the encoder and MONAI's UNETR decoder (arguments: the class docstring). Its length
        is the signature, which mirrors MONAI's ``SwinUNETR``; the code is 46 lines."""
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(
                f"SMIT has 4 stages: got depths {tuple(depths)} and num_heads {tuple(num_heads)}"
            )
        for i, heads in enumerate(num_heads):
            if (embed_dim * 2**i) % heads:
                raise ValueError(f"stage {i}: {embed_dim * 2**i} channels are not divisible by {heads} heads")
        self.patch_size = int(patch_size)
        self.mask_padding = bool(mask_padding)
        self.transformer = SMITEncoder(
            in_channels,
            embed_dim,
            self.patch_size,
            per_axis(window_size, 3),
            depths,
            num_heads,
            patch_norm,
            drop_rate,
            dropout_path_rate,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            use_flash_attention=use_flash_attention,
        )
        f = embed_dim

        def basic(cin: int, cout: int) -> UnetrBasicBlock:
            return UnetrBasicBlock(3, cin, cout, kernel_size=3, stride=1, norm_name=norm_name, res_block=True)

        def up(cin: int, cout: int) -> UnetrUpBlock:
            return UnetrUpBlock(
                3, cin, cout, kernel_size=3, upsample_kernel_size=2, norm_name=norm_name, res_block=True
            )

        self.encoder1 = basic(in_channels, f)
        self.encoder2 = basic(f, f)
        self.encoder3 = basic(2 * f, 2 * f)
        self.encoder4 = basic(4 * f, 4 * f)
        self.encoder10 = basic(16 * f, 16 * f)
        self.decoder5 = up(16 * f, 8 * f)
        self.decoder4 = up(8 * f, 4 * f)
        self.decoder3 = up(4 * f, 2 * f)
        self.decoder2 = up(2 * f, f)
        self.decoder1 = up(f, f)
        self.out = UnetOutBlock(3, f, out_channels)

    @property
    def crop_divisor(self) -> int:
        """Every crop dimension must be a multiple of this: the patch times four merges."""
        return self.patch_size * 2**4

    def forward(self, x: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """Segment a batch.

        Args:
            x: images (B, C, X, Y, Z).
            real: bool (B, X, Y, Z), True where the voxel came from the image, or None.

        Returns:
            logits (B, out_channels, X, Y, Z).
        """
        check_crop(self, tuple(x.shape[2:]))
        check_real(x, real)
        with padding_context(self, real):
            h0, h1, h2, h3, h4 = self.transformer(x)  # scales 1/2 .. 1/32
        enc0 = self.encoder1(x)
        enc1 = self.encoder2(h0)
        enc2 = self.encoder3(h1)
        enc3 = self.encoder4(h2)
        dec4 = self.encoder10(h4)
        dec3 = self.decoder5(dec4, h3)
        dec2 = self.decoder4(dec3, enc3)
        dec1 = self.decoder3(dec2, enc2)
        dec0 = self.decoder2(dec1, enc1)
        return self.out(self.decoder1(dec0, enc0))
