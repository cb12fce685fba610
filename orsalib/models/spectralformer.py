"""SpectralFormer (Hong et al., "SpectralFormer: Rethinking Hyperspectral Image Classification with Transformers",
IEEE TGRS 2022), used by the DARELoss transfer experiment of the ORSANet paper (Table 7).

One token per spectral band. Sec. III-B (group-wise spectral embedding, GSE): the token of band ``b`` concatenates
the ``patch x patch`` pixel values of bands ``b - n .. b + n`` (``band_patches = 2n + 1``; band indices wrap around
the ends of the spectrum), then a shared Linear maps it to ``dim`` (64). A class token and a learnable position
embedding are added. Sec. III-C (cross-layer adaptive fusion, CAF): a pre-norm transformer encoder (depth 5, 4 heads
x 16, MLP hidden 8, dropout 0.1) in which, before layer ``l >= 2`` (0-based), the current tokens and the input of layer
``l - 2`` are stacked on a trailing axis and fused by ``Conv2d(N + 1, N + 1, kernel (1, 2))``. The head is LayerNorm +
Linear on the class token.

Modes: pixel-wise (``patch=1``, ``band_patches=3``) and patch-wise (``patch=7``, ``band_patches=3`` on Indian Pines,
7 on Pavia University). The model accepts ``(B, bands, p, p)`` patches, ``(B, bands)`` spectra, or tokens already
grouped as ``(B, bands, p * p * band_patches)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ._registry import register_model


@dataclass
class SpectralFormerConfig:
    """Size of a SpectralFormer (defaults: the paper's Indian Pines pixel-wise setting)."""

    num_bands: int = 200  # spectral bands = tokens N (Indian Pines 200, Pavia University 103)
    num_classes: int = 16  # Indian Pines 16, Pavia University 9
    patch: int = 1  # spatial side of the input patch (pixel-wise 1, patch-wise 7)
    band_patches: int = 3  # neighbouring bands per token (odd)
    dim: int = 64  # token width
    depth: int = 5  # encoder layers
    heads: int = 4
    dim_head: int = 16
    mlp_dim: int = 8  # MLP hidden width
    dropout: float = 0.1  # attention-output / MLP dropout
    emb_dropout: float = 0.1  # dropout after the embedding
    mode: str = "CAF"  # "CAF" (cross-layer adaptive fusion, the paper's model) | "ViT" (plain encoder)
    attn_scale: str = "dim"  # "dim": logits / sqrt(dim) (the ViT code the release builds on) | "head": / sqrt(dim_head)


def group_bands(x: torch.Tensor, band_patches: int) -> torch.Tensor:
    """Group-wise spectral embedding input: each band's token gets its neighbours' pixels (circular wrap).

    Args:
        x: (B, N, P) values of N bands at P = patch^2 pixels.
        band_patches: odd number of neighbouring bands per token (1 = none).

    Returns:
        (B, N, P * band_patches), the band offsets -n .. +n concatenated in that order.
    """
    if band_patches < 1 or band_patches % 2 == 0:
        raise ValueError(f"band_patches must be an odd number >= 1, got {band_patches}")
    n = band_patches // 2
    # torch.roll(x, s, dims=1)[:, b] = x[:, (b - s) mod N]; offset o needs s = -o
    parts = [torch.roll(x, shifts=-o, dims=1) for o in range(-n, n + 1)]
    return torch.cat(parts, dim=2)  # (B, N, P * band_patches)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, scale: float):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, scale
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.to_qkv(x).view(b, n, 3, self.heads, -1)  # (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, h, N, d)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)  # (B, h, N, N)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)  # (B, N, h*d)
        return self.to_out(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, cfg: SpectralFormerConfig, scale: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dim_head, cfg.dropout, scale)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ff = FeedForward(cfg.dim, cfg.mlp_dim, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class SpectralFormer(nn.Module):
    """SpectralFormer classifier; ``forward(image, priors=None) -> {"logits", "features"}``."""

    def __init__(self, cfg: SpectralFormerConfig):
        super().__init__()
        if cfg.mode not in ("CAF", "ViT"):
            raise ValueError(f"SpectralFormer mode={cfg.mode!r}; choose 'CAF' or 'ViT'")
        if cfg.attn_scale not in ("dim", "head"):
            raise ValueError(f"SpectralFormer attn_scale={cfg.attn_scale!r}; choose 'dim' or 'head'")
        self.cfg = cfg
        n_tok = cfg.num_bands + 1
        self.patch_dim = cfg.patch * cfg.patch * cfg.band_patches
        self.embed = nn.Linear(self.patch_dim, cfg.dim)  # group-wise spectral embedding
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, n_tok, cfg.dim))
        self.emb_drop = nn.Dropout(cfg.emb_dropout)
        scale = (cfg.dim if cfg.attn_scale == "dim" else cfg.dim_head) ** -0.5
        self.layers = nn.ModuleList(EncoderLayer(cfg, scale) for _ in range(cfg.depth))
        n_caf = max(cfg.depth - 2, 0) if cfg.mode == "CAF" else 0
        self.skipcat = nn.ModuleList(nn.Conv2d(n_tok, n_tok, kernel_size=(1, 2)) for _ in range(n_caf))
        self.head = nn.Sequential(nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, cfg.num_classes))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patches (B, N, p, p), spectra (B, N) or grouped tokens (B, N, patch_dim) -> grouped (B, N, patch_dim)."""
        cfg = self.cfg
        if x.ndim == 2:
            x = x.unsqueeze(-1)  # (B, N, 1): one pixel per band
        elif x.ndim == 4:
            if x.shape[-2:] != (cfg.patch, cfg.patch):
                raise ValueError(f"SpectralFormer built for {cfg.patch}x{cfg.patch} patches, got {tuple(x.shape)}")
            x = x.flatten(2)  # (B, N, p*p)
        if x.ndim != 3 or x.shape[1] != cfg.num_bands:
            raise ValueError(
                f"SpectralFormer expects (B, {cfg.num_bands}, {cfg.patch}, {cfg.patch}) patches, (B, {cfg.num_bands}) "
                f"spectra or (B, {cfg.num_bands}, {self.patch_dim}) tokens; got {tuple(x.shape)}"
            )
        if x.shape[2] == cfg.patch * cfg.patch and self.patch_dim != x.shape[2]:
            x = group_bands(x, cfg.band_patches)  # (B, N, p*p*band_patches)
        if x.shape[2] != self.patch_dim:
            raise ValueError(f"SpectralFormer token width {x.shape[2]} != patch^2 * band_patches = {self.patch_dim}")
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.tokens(x))  # (B, N, dim)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, dim)
        x = self.emb_drop(torch.cat([cls, x], dim=1) + self.pos_embedding)  # (B, N+1, dim)
        inputs: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            inputs.append(x)
            if i >= 2 and self.skipcat:
                both = torch.stack([x, inputs[i - 2]], dim=3)  # (B, N+1, dim, 2)
                x = self.skipcat[i - 2](both).squeeze(3)  # (B, N+1, dim): CAF, Conv2d over [x, input of l-2]
            x = layer(x)
        return x[:, 0]  # (B, dim): class token

    def forward(self, image: torch.Tensor, priors: dict | None = None) -> dict[str, torch.Tensor]:
        feats = self.forward_features(image)
        return {"logits": self.head(feats), "features": feats}


def _build(base: SpectralFormerConfig, **overrides) -> SpectralFormer:
    known = set(SpectralFormerConfig.__dataclass_fields__)
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown SpectralFormer option(s) {sorted(unknown)}; known: {sorted(known)}")
    return SpectralFormer(replace(base, **overrides))


@register_model(
    family="spectralformer", task="hsi", uses_priors=False, paper="SpectralFormer pixel-wise (Hong et al. 2022)"
)
def spectralformer_pixel(**overrides) -> SpectralFormer:
    """Pixel-wise SpectralFormer: patch 1, band_patches 3 (Indian Pines defaults: 200 bands, 16 classes)."""
    return _build(SpectralFormerConfig(patch=1, band_patches=3), **overrides)


@register_model(
    family="spectralformer", task="hsi", uses_priors=False, paper="SpectralFormer patch-wise (Hong et al. 2022)"
)
def spectralformer_patch(**overrides) -> SpectralFormer:
    """Patch-wise SpectralFormer: 7x7 patches, band_patches 3 (Indian Pines; use band_patches=7 for Pavia)."""
    return _build(SpectralFormerConfig(patch=7, band_patches=3), **overrides)
