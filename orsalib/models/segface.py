"""SegFace (LaPa, Swin-B): the frozen face parser of ORSANet (dense prior, paper Sec. 3.2).

SegFace (Narayan et al., AAAI 2025) segments a face into the 11 LaPa classes with
- a Swin-B backbone (torchvision's ``swin_b``: ``features`` + final ``norm``), whose four stage outputs
  (strides 4/8/16/32, 128/256/512/1024 channels) are taken as multi-scale features;
- a SegFormer-style MLP fusion: one ``Linear(C_i, 256)`` per scale (``linear_c``), bilinear upsampling to
  the stride-4 grid, concatenation (deepest scale first) and a 1x1 conv 1024 -> 256 (``linear_fuse``);
- a SAM-style two-way transformer decoder with one learnable token per class (``face_decoder``): random
  Fourier-feature positional encoding of the image grid (``pe_layer``), two two-way attention blocks plus a
  final token-to-image attention, x4 transposed-conv upscaling of the image embedding, and a shared
  hypernetwork MLP that turns each class token into a 32-d dynamic filter; mask_k = filter_k . upscaled.

Attribute names follow the public ``model_299.pt`` (key ``state_dict_backbone``) exactly, so it and the
``face_segment.*`` part of an ORSANet checkpoint load with ``strict=True``.

The released ORSANet does not use the label map: it feeds the Swin-B stage-4 map (B, 1024, 7, 7) of the
224x224 ImageNet-normalised input to its SPADE block (:meth:`SegFaceSwinB.forward_features`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LAPA_CLASSES", "SegFaceSwinB"]

LAPA_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
# Names of the learnable class tokens in the public checkpoint, in LaPa label order.
_TOKEN_NAMES: tuple[str, ...] = (
    "background",
    "face",
    "leftbro",
    "rightbro",
    "lefteye",
    "righteye",
    "nose",
    "upperlip",
    "innermouth",
    "lowerlip",
    "hair",
)


# ----------------------------------------------------------------------------- building blocks
class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) grid coordinates (Tancik et al., 2020)."""

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of an (h, w) grid of cell centres -> (2 * num_pos_feats, h, w)."""
        h, w = size
        g = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, device=g.device, dtype=g.dtype) + 0.5) / h
        xs = (torch.arange(w, device=g.device, dtype=g.dtype) + 0.5) / w
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        coords = (2 * coords - 1) @ g * (2 * math.pi)  # (h, w, F)
        return torch.cat([coords.sin(), coords.cos()], dim=-1).permute(2, 0, 1)  # (2F, h, w)


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections to ``dim // downsample_rate`` channels."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1):
        super().__init__()
        inner = dim // downsample_rate
        if inner % num_heads:
            raise ValueError(f"attention inner dim {inner} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)  # (B, heads, N, c/heads)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, heads, Nq, Nk)
        out = attn.softmax(dim=-1) @ v  # (B, heads, Nq, c/heads)
        out = out.transpose(1, 2).flatten(2)  # (B, Nq, inner)
        return self.out_proj(out)


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image cross-attention, token MLP, image->token cross-attention."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, downsample_rate: int = 2, skip_first_pe: bool = False):
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate)
        self.skip_first_pe = skip_first_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int = 2, dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, 2, skip_first_pe=(i == 0)) for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image.flatten(2).transpose(1, 2)  # (B, HW, C)
        key_pe = image_pe.flatten(2).transpose(1, 2)  # (B, HW, C)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        q, k = queries + tokens, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class HyperMLP(nn.Module):
    """Three-layer MLP (ReLU between layers): class token (256) -> dynamic mask filter (32)."""

    def __init__(self, dim: int, hidden: int, out: int, num_layers: int = 3):
        super().__init__()
        sizes = [dim] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:] + [out]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class FaceDecoder(nn.Module):
    """Class-token mask decoder: two-way transformer + upscaling + hypernetwork filters."""

    def __init__(self, dim: int = 256, depth: int = 2, num_heads: int = 8, mlp_dim: int = 2048):
        super().__init__()
        self.transformer = TwoWayTransformer(depth, dim, num_heads, mlp_dim)
        for name in _TOKEN_NAMES:
            setattr(self, f"{name}_token", nn.Embedding(1, dim))
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, 2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, 2),
            nn.GELU(),
        )
        self.output_hypernetwork_mlps = HyperMLP(dim, dim, dim // 8, 3)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor) -> torch.Tensor:
        """``image`` (B, C, h, w), ``image_pe`` (1, C, h, w) -> mask logits (B, 11, 4h, 4w)."""
        b, c, h, w = image.shape
        tokens = torch.cat([getattr(self, f"{n}_token").weight for n in _TOKEN_NAMES], dim=0)  # (K, C)
        tokens = tokens.unsqueeze(0).expand(b, -1, -1)  # (B, K, C)
        hs, src = self.transformer(image, image_pe.expand(b, -1, -1, -1), tokens)
        src = src.transpose(1, 2).reshape(b, c, h, w)  # (B, C, h, w)
        up = self.output_upscaling(src)  # (B, C/8, 4h, 4w)
        filters = self.output_hypernetwork_mlps(hs)  # (B, K, C/8)
        bb, cc, hh, ww = up.shape
        masks = filters @ up.flatten(2)  # (B, K, 4h*4w)
        return masks.reshape(bb, -1, hh, ww)  # (B, K, 4h, 4w)


class SegformerMLP(nn.Module):
    """Per-scale channel projection of a (B, C, H, W) map to (B, HW, out)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(2).transpose(1, 2))  # (B, HW, out)


# ----------------------------------------------------------------------------- the parser
class SegFaceSwinB(nn.Module):
    """SegFace with a Swin-B backbone and the 11-class LaPa decoder.

    Args:
        num_classes: must be 11 (LaPa); kept as an argument for clarity of error messages.
        decoder_dim: width of the fused features and of the decoder (256 in the public model).
        stochastic_depth_prob: Swin-B stochastic depth (torchvision default 0.5; only active in train mode,
            which is how the release runs its frozen parser).
    """

    hidden_sizes: tuple[int, ...] = (128, 256, 512, 1024)

    def __init__(self, num_classes: int = 11, decoder_dim: int = 256, stochastic_depth_prob: float = 0.5):
        super().__init__()
        if num_classes != len(_TOKEN_NAMES):
            raise ValueError(f"SegFaceSwinB num_classes={num_classes}; the LaPa decoder has {len(_TOKEN_NAMES)}")
        from torchvision.models.swin_transformer import SwinTransformer

        # torchvision ``swin_b`` configuration (Liu et al., 2021), built without downloading anything.
        swin = SwinTransformer(
            patch_size=[4, 4],
            embed_dim=128,
            depths=[2, 2, 18, 2],
            num_heads=[4, 8, 16, 32],
            window_size=[7, 7],
            stochastic_depth_prob=stochastic_depth_prob,
        )
        self.backbone = nn.Sequential(swin.features, swin.norm)  # keys backbone.0.* (features), backbone.1.* (norm)
        self.pe_layer = PositionEmbeddingRandom(decoder_dim // 2)
        self.face_decoder = FaceDecoder(decoder_dim)
        self.linear_c = nn.ModuleList(SegformerMLP(c, decoder_dim) for c in self.hidden_sizes)
        self.linear_fuse = nn.Conv2d(decoder_dim * len(self.hidden_sizes), decoder_dim, 1, bias=False)

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs of Swin-B, channels-last: (B, H/4, W/4, 128) ... (B, H/32, W/32, 1024)."""
        feats = []
        for i, layer in enumerate(self.backbone[0]):
            x = layer(x)
            if i % 2 == 1:  # features[1], [3], [5], [7] are the transformer stages
                feats.append(x)
        return feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stage-4 map, channels-first (B, 1024, H/32, W/32): the released ORSANet parsing prior."""
        return self.stage_features(x)[-1].permute(0, 3, 1, 2)  # (B, 1024, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-class mask logits (B, 11, H, W) at the input resolution (argmax over dim 1 = LaPa labels)."""
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass: mask logits (B, 11, H, W) and the stage-4 map (B, 1024, H/32, W/32)."""
        h, w = x.shape[-2:]
        feats = [f.permute(0, 3, 1, 2) for f in self.stage_features(x)]  # channels-first (B, C_i, H_i, W_i)
        size = feats[0].shape[-2:]
        fused = []
        for f, mlp in zip(feats, self.linear_c):
            b, _, hi, wi = f.shape
            y = mlp(f).transpose(1, 2).reshape(b, -1, hi, wi)  # (B, D, H_i, W_i)
            fused.append(F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        emb = self.linear_fuse(torch.cat(fused[::-1], dim=1))  # (B, D, H/4, W/4), deepest scale first
        pe = self.pe_layer(tuple(emb.shape[-2:])).unsqueeze(0)  # (1, D, H/4, W/4)
        masks = self.face_decoder(emb, pe)  # (B, 11, H, W) for inputs divisible by 32
        if masks.shape[-2:] != (h, w):
            masks = F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)
        return masks, feats[-1]
