"""Cross-Fusion Block and Multi-scale Cross-interaction Module (paper Sec. 3.4, Eq. 6-9).

Token layout (released): image tokens X_img (N of them) get their mean as a leading "cls" token and a
learnable, zero-initialised positional embedding; landmark tokens X_lm (N) get their mean as well (no
positional embedding); both are concatenated into T = 2N + 2 tokens of width D (N = 49, D = 512, T = 100).

Cross-Fusion Block (one per scale and stage), with LN over all T tokens:

* Eq. (6)  K, V = LN(X_img) W_kv;  Q = LN(X_lm)    (the landmark tokens are the queries, *without* a
  projection, as released)
* Eq. (7)  X_fuse = X_img + DropPath(Proj(softmax(Q K^T / sqrt(d_h)) V))
* Eq. (8)  X_fuse = X_fuse + DropPath(MLP(LN(X_fuse)))      (MLP hidden = mlp_ratio * D, GELU)
* Eq. (9)  X_out = Conv1d_{T->T, k=1}(Concat(X_fuse, s * X_lm))   (s: learnable scalar, init 1;
  the 1x1 Conv1d mixes *tokens*: landmark reintegration)

Multi-scale Cross-interaction Module: three "scales" made by Conv1d(T, T, k, stride=k) along the *embedding*
axis (k = 2, 4: widths D, D/2, D/4); each of ``depth`` stages runs one Cross-Fusion Block per scale, then
up-mixes ``m += ConvTranspose1d(s)``, ``l += ConvTranspose1d(m)``. Output: LayerNorm(eps 1e-6) of the
large scale, token 0 -> (B, D). All LayerNorms use eps 1e-6, as released.

Ablations (paper Table 6) are constructor switches: ``cross_attention=False`` (w/o cross-interaction, the
paper's variant: the landmark tokens are kept and reintegrated by Eq. 9, but Eq. 6 takes its queries from the
image tokens, Q = LN(X_img), so the image tokens attend to themselves), ``landmarks=False`` (no landmark tokens
at all: image self-attention on the image tokens alone; the older reading of "w/o cross-interaction"),
``multi_scale=False`` (the large scale only), ``reintegrate=False`` (Eq. 9 without the landmark tokens: the
Conv1d mixes image tokens only and the landmark tokens pass unchanged, no scale ``s``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6)


class Mlp(nn.Module):
    """Two-layer MLP with GELU (Eq. 8); key names ``fc1``/``fc2`` as released."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class CrossAttention(nn.Module):
    """Eq. (6-7): multi-head attention with K, V projected from image tokens and unprojected queries."""

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x_kv: torch.Tensor, q: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x_kv (B, N, D) image tokens, q (B, N, D) queries -> ((B, N, D), attention (B, h, N, N) or None)."""
        B, N, C = x_kv.shape
        h, d = self.num_heads, self.head_dim
        kv = self.kv(x_kv).reshape(B, N, 2, h, d).permute(2, 0, 3, 1, 4)  # (2, B, h, N, d)
        k, v = kv.unbind(0)
        q = q.reshape(B, q.shape[1], h, d).permute(0, 2, 1, 3)  # (B, h, Nq, d)
        if need_weights:
            attn = (q @ k.transpose(-2, -1)) * self.scale  # (B, h, Nq, N)
            attn = self.attn_drop(attn.softmax(dim=-1))
            out = attn @ v  # (B, h, Nq, d)
        else:
            attn = None
            p = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, h, Nq, d)
        out = out.transpose(1, 2).reshape(B, -1, C)  # (B, Nq, D)
        return self.proj_drop(self.proj(out)), attn


class CrossFusionBlock(nn.Module):
    """Eq. (6-9) on a token sequence ``[img (n_img) | lm (n_lm)]`` of width ``dim``.

    Args:
        dim: token width at this scale.
        n_img: image tokens including their mean token.
        n_lm: landmark tokens including their mean token; 0 = no landmark tokens (image self-attention).
        reintegrate: Eq. (9) landmark reintegration (concatenate ``s * X_lm`` before the token-mixing conv).
        cross_attention: Eq. (6) queries from the landmark tokens; False = from the image tokens (image
            self-attention, Q = LN(X_img), no projection either), the landmark tokens still reintegrated.
    """

    def __init__(
        self,
        dim: int,
        n_img: int,
        n_lm: int,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        reintegrate: bool = True,
        cross_attention: bool = True,
    ):
        super().__init__()
        if n_lm and n_lm != n_img:
            raise ValueError(f"cross-fusion needs as many landmark tokens as image tokens, got {n_lm} vs {n_img}")
        self.n_img, self.n_lm = n_img, n_lm
        self.cross_attention = bool(cross_attention and n_lm)  # queries from the landmark tokens
        self.reintegrate = bool(reintegrate and n_lm)
        self.norm1 = _layer_norm(dim)
        if self.reintegrate:
            self.scale = nn.Parameter(torch.ones(1))  # Eq. (9): s, init 1
        self.attn_img = CrossAttention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = _layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        n_mix = n_img + n_lm if self.reintegrate else n_img
        self.conv = nn.Conv1d(n_mix, n_mix, 1)  # token mixing: tokens are the channels

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, n_img + n_lm, dim) -> same shape, attention (B, h, n, n_img) or None."""
        x_img, x_lm = x[:, : self.n_img], x[:, self.n_img :]  # (B, n_img, D), (B, n_lm, D)
        h = self.norm1(x)
        h_img = h[:, : self.n_img]
        q = h[:, self.n_img :] if self.cross_attention else h_img  # Eq. (6): Q = LN(X_lm), no projection
        a, attn = self.attn_img(h_img, q, need_weights)
        x_img = x_img + self.drop_path(a)  # Eq. (7)
        x_img = x_img + self.drop_path(self.mlp(self.norm2(x_img)))  # Eq. (8)
        if not self.n_lm:
            return self.conv(x_img), attn
        if self.reintegrate:
            return self.conv(torch.cat((x_img, x_lm * self.scale), dim=1)), attn  # Eq. (9), (B, T, D)
        return torch.cat((self.conv(x_img), x_lm), dim=1), attn  # ablation: no reintegration


class MCMStage(nn.Module):
    """One stage: a Cross-Fusion Block per scale, then ``m += up(s)``, ``l += up(m)``."""

    def __init__(self, dim: int, n_img: int, n_lm: int, multi_scale: bool = True, **block_kw):
        super().__init__()
        self.multi_scale = multi_scale
        self.block_l = CrossFusionBlock(dim, n_img, n_lm, **block_kw)
        if multi_scale:
            t = n_img + n_lm
            self.block_m = CrossFusionBlock(dim // 2, n_img, n_lm, **block_kw)
            self.block_s = CrossFusionBlock(dim // 4, n_img, n_lm, **block_kw)
            self.upsample_m = nn.ConvTranspose1d(t, t, kernel_size=2, stride=2)  # D/2 -> D
            self.upsample_s = nn.ConvTranspose1d(t, t, kernel_size=2, stride=2)  # D/4 -> D/2

    def forward(
        self, xs: list[torch.Tensor], need_weights: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        x_l, attn = self.block_l(xs[0], need_weights)
        if not self.multi_scale:
            return [x_l], attn
        x_m, _ = self.block_m(xs[1])
        x_s, _ = self.block_s(xs[2])
        x_m = self.upsample_s(x_s) + x_m  # (B, T, D/2)
        x_l = x_l + self.upsample_m(x_m)  # (B, T, D)
        return [x_l, x_m, x_s], attn


class MultiScaleCrossInteraction(nn.Module):
    """Sec. 3.4: the MCM. ``forward(x_img (B,N,D), x_lm (B,N,D) | None) -> (B, D)``.

    Args:
        embed_dim: token width D (release: 512); must be divisible by 4 * num_heads when multi-scale.
        num_tokens: image tokens N (release: 49); landmark tokens must be as many.
        depth: stages (release: 4 / 6 / 8 for small / base / large).
        num_heads: heads at every scale (release: 8).
        mlp_ratio: MLP hidden ratio (release: 2).
        drop_path_rate: stochastic depth, linearly 0 -> rate over the stages (release: 0.1).
        landmarks: build the landmark token half (False = no landmark tokens: image self-attention only).
        multi_scale: three scales (False = large scale only).
        reintegrate: Eq. (9) landmark reintegration.
        cross_attention: Eq. (6) queries from the landmark tokens (False = the "w/o cross-interaction" ablation:
            queries from the image tokens, the landmark tokens kept and reintegrated).
    """

    def __init__(
        self,
        embed_dim: int = 512,
        num_tokens: int = 49,
        depth: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        landmarks: bool = True,
        multi_scale: bool = True,
        reintegrate: bool = True,
        cross_attention: bool = True,
    ):
        super().__init__()
        if multi_scale and (embed_dim % 4 or (embed_dim // 4) % num_heads):
            raise ValueError(f"multi-scale MCM needs embed_dim={embed_dim} divisible by 4 * num_heads={num_heads}")
        n_img = num_tokens + 1
        n_lm = num_tokens + 1 if landmarks else 0
        self.n_img, self.n_lm, self.multi_scale = n_img, n_lm, multi_scale
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))  # exists in the release, unused
        self.pos_embed = nn.Parameter(torch.zeros(1, n_img, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        t = n_img + n_lm
        if multi_scale:
            self.downsample_m = nn.Conv1d(t, t, kernel_size=2, stride=2)  # along the embedding axis: D -> D/2
            self.downsample_s = nn.Conv1d(t, t, kernel_size=4, stride=4)  # D -> D/4
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        block_kw = dict(
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop=drop_rate,
            attn_drop=attn_drop_rate,
            reintegrate=reintegrate,
            cross_attention=cross_attention,
        )
        self.blocks = nn.ModuleList(
            MCMStage(embed_dim, n_img, n_lm, multi_scale, drop_path=dpr[i], **block_kw) for i in range(depth)
        )
        self.norm = _layer_norm(embed_dim)

    def forward(
        self, x: torch.Tensor, x_lm: torch.Tensor | None = None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, N, D) image tokens, x_lm (B, N, D) landmark tokens -> ((B, D), last large-scale attention)."""
        x = torch.cat((x.mean(1, keepdim=True), x), dim=1)  # (B, N+1, D): mean as the "cls" token
        x = self.pos_drop(x + self.pos_embed)
        if self.n_lm:
            if x_lm is None:
                raise ValueError("this MCM was built with landmark tokens; pass x_lm (B, N, D)")
            x_lm = torch.cat((x_lm.mean(1, keepdim=True), x_lm), dim=1)  # (B, N+1, D), no pos-embed
            x = torch.cat((x, x_lm), dim=1)  # (B, T, D)
        xs = [x, self.downsample_m(x), self.downsample_s(x)] if self.multi_scale else [x]  # widths D, D/2, D/4
        attn = None
        for i, stage in enumerate(self.blocks):
            xs, attn = stage(xs, need_weights and i == len(self.blocks) - 1)
        out = self.norm(xs[0])  # (B, T, D)
        return out[:, 0], attn
