"""Global Filter Network (GFNet; Rao et al., "Global Filter Networks for Image Classification", NeurIPS 2021).

Used by the DARELoss transfer experiment on CIFAR-10 (ORSANet paper Table 8).

Sec. 3.2 of the GFNet paper: the global filter layer replaces self-attention by
``X' = IFFT2(K * FFT2(X))`` over the token grid, with a learnable complex filter ``K`` of shape
``(h, w//2 + 1, C)`` (real-input FFT, ``norm="ortho"``, initialised ``randn * 0.02``).
A block is ``x + DropPath(MLP(LN(GF(LN(x)))))`` (no residual around the filter itself);
the network has a patch embedding, a learnable position embedding, no class token, and a final
LayerNorm + mean pool before the linear head.

Variants (224 px, patch 16, MLP ratio 4): ``gfnet_ti`` 256 x 12 (~7.5M params), ``gfnet_xs`` 384 x 12 (~16M),
``gfnet_s`` 384 x 19 (~25M). ``gfnet_cifar_tiny`` is a small 32 px variant (patch 4, 128 x 4) for CPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model


@dataclass
class GFNetConfig:
    """Size of a GFNet."""

    img_size: int = 224  # square input side
    patch_size: int = 16  # patch embedding stride/kernel
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 256  # token width C
    depth: int = 12  # number of global-filter blocks
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * C
    drop_rate: float = 0.0  # dropout after the position embedding and inside the MLP
    drop_path: float = 0.0  # stochastic depth, linearly increasing to this value over the blocks


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p`` (train mode only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, 1)
        return x * mask / keep


class GlobalFilter(nn.Module):
    """The global filter layer (GFNet Eq. 3-4): FFT2 over the token grid, complex multiply, inverse FFT2.

    Args:
        dim: channels C.
        h: token-grid height.
        w: token-grid width (the filter stores ``w // 2 + 1`` frequency columns).
    """

    def __init__(self, dim: int, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w
        # real and imaginary parts stored as a trailing axis of 2, as in the public checkpoints
        self.complex_weight = nn.Parameter(torch.randn(h, w // 2 + 1, dim, 2) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C) tokens of an h x w grid -> (B, N, C)."""
        b, n, c = x.shape
        if n != self.h * self.w:
            raise ValueError(f"GlobalFilter built for a {self.h}x{self.w} grid ({self.h * self.w} tokens), got {n}")
        dtype = x.dtype
        x = x.view(b, self.h, self.w, c).float()  # (B, h, w, C); FFT in float32 (also under autocast)
        x = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")  # (B, h, w//2+1, C) complex
        x = x * torch.view_as_complex(self.complex_weight)  # elementwise complex filter
        x = torch.fft.irfft2(x, s=(self.h, self.w), dim=(1, 2), norm="ortho")  # (B, h, w, C) real
        return x.reshape(b, n, c).to(dtype)  # (B, N, C)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """GFNet block: ``x + DropPath(MLP(LN(GF(LN(x)))))``."""

    def __init__(self, dim: int, h: int, w: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.filter = GlobalFilter(dim, h, w)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp(self.norm2(self.filter(self.norm1(x)))))


class GFNet(nn.Module):
    """GFNet classifier; ``forward(image, priors=None) -> {"logits", "features"}`` (workbook model contract)."""

    def __init__(self, cfg: GFNetConfig):
        super().__init__()
        if cfg.img_size % cfg.patch_size:
            raise ValueError(f"GFNet img_size={cfg.img_size} must be a multiple of patch_size={cfg.patch_size}")
        self.cfg = cfg
        self.grid = cfg.img_size // cfg.patch_size
        num_patches = self.grid * self.grid
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.embed_dim, cfg.patch_size, stride=cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, cfg.embed_dim))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist() if cfg.depth > 1 else [cfg.drop_path]
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, self.grid, self.grid, cfg.mlp_ratio, cfg.drop_rate, r) for r in rates
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> pooled features (B, C)."""
        size = (self.cfg.img_size, self.cfg.img_size)
        if tuple(x.shape[-2:]) != size:
            raise ValueError(f"GFNet expects {size[0]}x{size[1]} input, got {tuple(x.shape[-2:])}")
        x = self.patch_embed(x)  # (B, C, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        x = self.pos_drop(x + self.pos_embed)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x).mean(dim=1)  # (B, C): no cls token, mean over tokens

    def forward(self, image: torch.Tensor, priors: dict | None = None) -> dict[str, torch.Tensor]:
        feats = self.forward_features(image)
        return {"logits": self.head(feats), "features": feats}


def _build(base: GFNetConfig, **overrides) -> GFNet:
    unknown = set(overrides) - set(GFNetConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown GFNet option(s) {sorted(unknown)}; known: {sorted(GFNetConfig.__dataclass_fields__)}"
        )
    return GFNet(replace(base, **overrides))


@register_model(family="gfnet", task="image", uses_priors=False, paper="GFNet-Ti (Rao et al. 2021), 224 px")
def gfnet_ti(**overrides) -> GFNet:
    """GFNet-Ti: 256 x 12, patch 16 at 224 (~7.5M params with a 1000-class head)."""
    return _build(GFNetConfig(embed_dim=256, depth=12), **overrides)


@register_model(family="gfnet", task="image", uses_priors=False, paper="GFNet-XS (Rao et al. 2021), 224 px")
def gfnet_xs(**overrides) -> GFNet:
    """GFNet-XS: 384 x 12, patch 16 at 224 (~16M params)."""
    return _build(GFNetConfig(embed_dim=384, depth=12), **overrides)


@register_model(family="gfnet", task="image", uses_priors=False, paper="GFNet-S (Rao et al. 2021), 224 px")
def gfnet_s(**overrides) -> GFNet:
    """GFNet-S: 384 x 19, patch 16 at 224 (~25M params)."""
    return _build(GFNetConfig(embed_dim=384, depth=19), **overrides)


@register_model(
    family="gfnet", task="image", uses_priors=False, paper="small CIFAR variant of GFNet (not in the paper)"
)
def gfnet_cifar_tiny(**overrides) -> GFNet:
    """A CPU-sized GFNet for 32 px input: patch 4 (8x8 grid), 128 x 4, 10 classes."""
    return _build(GFNetConfig(img_size=32, patch_size=4, num_classes=10, embed_dim=128, depth=4), **overrides)


# ----------------------------------------------------------------------------- CrossViT (timm) for the same table
def _crossvit(**kwargs) -> nn.Module:
    from timm.models.crossvit import CrossVit

    from .baselines import LogitsOnly

    return LogitsOnly(CrossVit(**kwargs))


@register_model(
    family="crossvit",
    task="image",
    uses_priors=False,
    paper="CrossViT-Ti (Chen et al., ICCV 2021) architecture at 32 px",
)
def crossvit_cifar_tiny(**overrides) -> nn.Module:
    """timm's ``crossvit_tiny_240`` architecture rebuilt for 32 px CIFAR input.

    ``crossvit_tiny_240`` runs a small-patch branch (patch 12 on 240 px -> 20x20 tokens) and a large-patch branch
    (patch 16 on the input resized to 224 -> 14x14 tokens). At 32 px the same two-scale layout is kept with
    ``img_size=32``, ``img_scale=(1.0, 28/32)``, ``patch_size=(4, 7)``: 8x8 tokens of width 96 and 4x4 tokens of
    width 192 (the second branch sees the image bicubically resized to 28 px). Widths, depths ``[[1, 4, 0]] x 3``,
    heads (3, 3) and MLP ratios (4, 4, 1) are those of ``crossvit_tiny_240``. No pretrained weights.
    """
    kw = dict(
        img_size=32,
        img_scale=(1.0, 28 / 32),
        patch_size=(4, 7),
        embed_dim=(96, 192),
        depth=((1, 4, 0), (1, 4, 0), (1, 4, 0)),
        num_heads=(3, 3),
        mlp_ratio=(4.0, 4.0, 1.0),
        num_classes=10,
    )
    kw.update(overrides)
    return _crossvit(**kw)


@register_model(
    family="crossvit", task="image", uses_priors=False, paper="CrossViT-Ti (Chen et al., ICCV 2021), 240 px"
)
def crossvit_tiny_240(**overrides) -> nn.Module:
    """timm's ``crossvit_tiny_240`` (240 px input; resize CIFAR images to 240). Randomly initialised here:
    weights are never downloaded at run time; load a local checkpoint yourself for ImageNet fine-tuning."""
    import timm

    from .baselines import LogitsOnly

    overrides.pop("pretrained", None)
    return LogitsOnly(timm.create_model("crossvit_tiny_240", pretrained=False, **overrides))
