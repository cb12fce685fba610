"""ORSANet (ACM MM 2025, Sec. 3): IR-50 image tokens, SPADE guidance by the parsing prior (SSGM, Sec. 3.3),
cross-interaction with landmark tokens (MCM, Sec. 3.4), SE re-weighting and a linear head.

Data flow of the released model (``prior_routing="released"``, ``token_layout="released"``), at 224 input:

    image (B,3,224,224) --nearest 112--> IR-50 (3 stages) --> (B,256,14,14)
        --raw .view--> (B,49,1024)  [not spatial tokens: each token is a 1024-value chunk of memory]
        --Linear 1024->512--> (B,49,512) --permute/view--> (B,512,7,7)
    parser_features (B,1024,7,7) --1x1 conv--> (B,512,7,7) = S
    SPADE residual block (x, S) --> (B,512,7,7) --> tokens (B,49,512)
    landmark_features (B,512,7,7) --> tokens (B,49,512)
    MCM(image tokens, landmark tokens) --> (B,512) --> SE --> head --> logits (B,C)

``prior_routing="paper"`` follows the paper's description instead: the parsing *label map* (B,S,S), one-hot
over 11 LaPa classes, is encoded by the conv stack 11->64->128->256->512 (strides 4,2,2,2; it exists unused in
the release) into S; the landmark tokens come from the 68 *coordinates* (B,68,2): one Gaussian heatmap per
landmark rendered on the token grid (sigma in grid cells), so token t holds the 68 heat values at its cell,
embedded by an MLP 68->D->D. This routing needs only the ``landmarks`` and ``parsing`` priors (what the
SynthFER oracle gives).

``token_layout="released"`` (default, also of ``orsanet_cpu``) reproduces the raw view: each token holds whole
channel maps, so the token layer and the mean over tokens of the prior-free baseline see *where* a feature is.
``"spatial"`` (``orsanet_tiny``) average-pools the backbone map to the token grid and makes one token per cell, so
the tokens line up with the priors; the baseline's mean over such tokens is a bag of local features, position lost
(docs/cpu_family.md: a spatial-token ``baseline_cpu`` stays at chance on SynthFER, the released layout learns).

Priors come as tensors from the prior cache (default) or, with ``priors_in_model=True``, from the frozen
MobileFaceNet / SegFace networks built inside the model (released end-to-end inference on raw images; with
the paper routing the in-model landmarks are MobileFaceNet's 68 coordinates and the parsing map is the argmax
of SegFace's decoder).
``prior_mode="released"`` keeps those frozen networks in train mode when the model trains, as the release
does (noisy, drifting priors); the default ``"cached"`` keeps them in eval mode. In cached mode their output is a
function of the image alone, so inside ``with model.reuse_priors():`` (the trainer's SAM step) the priors of an
image tensor are computed once and reused by the second pass.

Ablation switches (paper Table 6): ``seg_prior``, ``cross_interaction``, ``multi_scale``,
``landmark_reintegration``; ``baseline=True`` drops priors and MCM (backbone tokens -> mean -> LN -> SE -> head).
``cross_interaction=False`` follows ``cross_interaction_ablation``: ``"self-attention"`` (default, the paper's
variant) keeps the landmark tokens and their reintegration (Eq. 9) and takes the attention queries from the image
tokens; ``"no-landmarks"`` drops the landmark tokens altogether (docs/faithfulness.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model
from .ir50 import IR50_STAGES, IRBackbone, load_ir50
from .mcm import MultiScaleCrossInteraction
from .ssgm import SPADEResBlock

NUM_LANDMARKS = 68
NUM_PARSING_CLASSES = 11
FROZEN_PRIOR_MODULES: tuple[str, ...] = ("face_landback", "face_segment")
#: what ``cross_interaction=False`` removes: the landmark-query cross-attention (the paper's variant) or the
#: landmark tokens altogether
CROSS_INTERACTION_ABLATIONS: tuple[str, ...] = ("self-attention", "no-landmarks")


@dataclass
class ORSANetConfig:
    """Every size and switch of one ORSANet variant (defaults = the released ``large`` model)."""

    num_classes: int = 7  # 7 basic expressions (8 with contempt)
    img_size: int = 224  # model input side (released: 224)
    stem: int = 64  # IR stem channels
    stages: tuple = IR50_STAGES  # (channels, units) per IR stage (released: 3@64, 4@128, 14@256)
    backbone_input_size: int | None = 112  # IR input side after nearest resize (released: 112); None = no resize
    backbone_output_layer: bool = True  # build the unused IR-50 output_layer (released: yes, 12.85M params)
    token_layout: str = "released"  # "released": raw .view of the IR map; "spatial": one token per grid cell
    grid: int = 7  # token grid side (N = grid**2 tokens; released 7 -> 49)
    embed_dim: int = 512  # token width D
    depth: int = 8  # MCM stages (small 4 / base 6 / large 8)
    num_heads: int = 8  # heads at every scale
    mlp_ratio: float = 2.0
    drop_path: float = 0.1  # MCM stochastic depth (linear 0 -> drop_path)
    spade_hidden: int = 128  # SPADE shared-conv channels
    prior_routing: str = "released"  # "released" (backbone features of the prior nets) | "paper" (labels + coords)
    landmark_channels: int = 512  # channels of the landmark_features prior (MobileFaceNet: 512)
    parser_channels: int = 1024  # channels of the parser_features prior (Swin-B stage 4: 1024)
    seg_strides: tuple = (4, 2, 2, 2)  # paper routing: strides of the label-map conv stack
    seg_widths: tuple = ()  # paper routing: widths of the conv stack; () = (D/8, D/4, D/2, D) (released 64..512)
    landmark_sigma: float = 1.0  # paper routing: Gaussian heatmap sigma, in token-grid cells
    landmark_coords: bool = True  # paper routing: also embed the 136 centred coordinates (sub-cell geometry)
    seg_prior: bool = True  # Table 6: w/o segmentation prior when False
    cross_interaction: bool = True  # Table 6: w/o cross-interaction when False (see cross_interaction_ablation)
    # what w/o cross-interaction removes: "self-attention" (paper: queries from the image tokens, landmark tokens
    # kept and reintegrated) | "no-landmarks" (no landmark tokens at all)
    cross_interaction_ablation: str = "self-attention"
    multi_scale: bool = True  # Table 6: single scale when False
    landmark_reintegration: bool = True  # Table 6: w/o landmark reintegration (Eq. 9) when False
    baseline: bool = False  # backbone only: no priors, no MCM
    priors_in_model: bool = False  # build frozen MobileFaceNet/SegFace inside (released end-to-end inference)
    prior_mode: str = "cached"  # "cached": frozen nets always in eval mode; "released": follow train()
    backbone_weights: str = ""  # optional public ir50.pth, loaded by name + shape match

    def validate(self) -> ORSANetConfig:
        choices = {
            "token_layout": ("released", "spatial"),
            "prior_routing": ("released", "paper"),
            "prior_mode": ("cached", "released"),
            "cross_interaction_ablation": CROSS_INTERACTION_ABLATIONS,
        }
        for k, allowed in choices.items():
            if getattr(self, k) not in allowed:
                raise ValueError(f"ORSANet {k}={getattr(self, k)!r} is not allowed; choose one of {list(allowed)}")
        for k in ("num_classes", "img_size", "grid", "embed_dim", "depth", "num_heads", "stem"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"ORSANet {k}={v!r} must be an integer > 0")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"ORSANet embed_dim={self.embed_dim} must be divisible by num_heads={self.num_heads}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"ORSANet drop_path={self.drop_path!r} must be in [0, 1)")
        return self

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid


class SEBlock(nn.Module):
    """Squeeze-excitation on the feature vector: ``x * sigmoid(W2 relu(W1 x))`` (release: 512->512->512)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(dim, dim)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.linear2(self.relu(self.linear1(x))))


class ClassificationHead(nn.Module):
    """Linear head (key ``head.linear`` as released)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class SegDownConv(nn.Module):
    """Sec. 3.3 label-map encoder: one-hot parsing map -> (B, D, S/prod(strides), ...), conv3x3 + ReLU per step.

    Released sizes: 11->64->128->256->512 with strides 4, 2, 2, 2 (224 -> 7).
    """

    def __init__(self, in_ch: int, widths: Sequence[int], strides: Sequence[int]):
        super().__init__()
        if len(widths) != len(strides):
            raise ValueError(f"seg_widths {tuple(widths)} and seg_strides {tuple(strides)} must have the same length")
        layers: list[nn.Module] = []
        c = in_ch
        for w, s in zip(widths, strides):
            layers += [nn.Conv2d(c, w, 3, stride=s, padding=1), nn.ReLU()]
            c = w
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def landmark_heatmaps(landmarks: torch.Tensor, grid: int, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian heatmaps of landmarks on a ``grid x grid`` token grid.

    Args:
        landmarks: (B, L, 2), x, y in [0, 1] of the image; non-finite rows give all-zero maps.
        grid: token grid side.
        sigma: Gaussian sigma in grid cells.

    Returns:
        (B, L, grid, grid) heat values in [0, 1].
    """
    lm = landmarks.float()
    ok = torch.isfinite(lm).all(-1)  # (B, L)
    lm = torch.nan_to_num(lm, nan=0.0, posinf=0.0, neginf=0.0) * grid  # grid-cell units
    c = torch.arange(grid, device=lm.device, dtype=lm.dtype) + 0.5  # cell centres
    dx = lm[..., 0, None] - c  # (B, L, g) along x (columns)
    dy = lm[..., 1, None] - c  # (B, L, g) along y (rows)
    d2 = dy[..., :, None] ** 2 + dx[..., None, :] ** 2  # (B, L, g_rows, g_cols)
    heat = torch.exp(-d2 / (2.0 * sigma**2))
    return heat * ok[..., None, None]


class ORSANet(nn.Module):
    """ORSANet; build through the registry (``create_model("orsanet_large", prior_routing="paper")``).

    ``forward(image, priors=None, return_attn=False, return_intermediates=False) -> dict`` with ``logits``
    (B, C), ``features`` (B, D) (the SE output fed to the head), ``attn`` (B, h, N+1, N+1) of the last
    large-scale cross-fusion block when asked, and with ``return_intermediates`` the tensors on the way
    (``ir_features``, ``landmark_features``, ``parser_features``, ``landmark_coords`` when computed).
    """

    def __init__(self, cfg: ORSANetConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = _apply_overrides(cfg or ORSANetConfig(), overrides)
        self.cfg = cfg
        D, N = cfg.embed_dim, cfg.num_tokens
        use_seg = cfg.seg_prior and not cfg.baseline
        # landmark tokens: kept by w/o cross-interaction unless cross_interaction_ablation="no-landmarks"
        use_lm = not cfg.baseline and (cfg.cross_interaction or cfg.cross_interaction_ablation == "self-attention")
        self.use_seg, self.use_lm = use_seg, use_lm

        # --- image branch (trainable)
        self.ir_back = IRBackbone(cfg.stem, cfg.stages, cfg.backbone_input_size, cfg.backbone_output_layer)
        side = (cfg.backbone_input_size or cfg.img_size) // self.ir_back.stride
        c_ir = self.ir_back.out_channels
        if cfg.token_layout == "released":
            total = c_ir * side * side
            if total % N:
                raise ValueError(
                    f"token_layout='released' needs the IR map ({c_ir}x{side}x{side}) to split into {N} equal chunks"
                )
            self.ir_layer = nn.Linear(total // N, D)
        else:
            self.ir_layer = nn.Linear(c_ir, D)

        # --- frozen prior networks (released end-to-end path)
        if cfg.priors_in_model and not cfg.baseline:
            self._build_prior_nets(use_seg, use_lm)

        # --- SSGM (Sec. 3.3)
        if use_seg:
            if cfg.prior_routing == "released":
                self.seg_sample = nn.Conv2d(cfg.parser_channels, D, 1)
            else:
                widths = tuple(cfg.seg_widths) or (D // 8, D // 4, D // 2, D)
                if widths[-1] != D:
                    raise ValueError(f"seg_widths {widths} must end with embed_dim={D}")
                self.seg_encoder = SegDownConv(NUM_PARSING_CLASSES, widths, cfg.seg_strides)
            self.seg_fusion = SPADEResBlock(D, D, D, hidden=cfg.spade_hidden)

        # --- landmark tokens
        if use_lm:
            if cfg.prior_routing == "released":
                if cfg.landmark_channels != D:
                    self.lm_proj = nn.Linear(cfg.landmark_channels, D)
            else:
                self.lm_embed = nn.Sequential(nn.Linear(NUM_LANDMARKS, D), nn.GELU(), nn.Linear(D, D))
                if cfg.landmark_coords:
                    # The heatmaps on an 8x8 grid blur sub-cell geometry (a lip corner moving 2 px at 64 px is a
                    # quarter cell); a linear code of the centred coordinates, added to every token, keeps it.
                    self.lm_coords = nn.Linear(2 * NUM_LANDMARKS, D)

        # --- MCM (Sec. 3.4), SE, head
        if cfg.baseline:
            self.norm = nn.LayerNorm(D, eps=1e-6)
        else:
            self.pyramid_fuse = MultiScaleCrossInteraction(
                embed_dim=D,
                num_tokens=N,
                depth=cfg.depth,
                num_heads=cfg.num_heads,
                mlp_ratio=cfg.mlp_ratio,
                drop_path_rate=cfg.drop_path,
                landmarks=use_lm,
                multi_scale=cfg.multi_scale,
                reintegrate=cfg.landmark_reintegration,
                cross_attention=cfg.cross_interaction,
            )
        self.se_block = SEBlock(D)
        self.head = ClassificationHead(D, cfg.num_classes)

        self._prior_memo: dict[str, Any] | None = None  # see reuse_priors()
        self.backbone_load_report: dict | None = None
        if cfg.backbone_weights:
            self.backbone_load_report = load_ir50(self.ir_back, cfg.backbone_weights)

    # ------------------------------------------------------------------ construction helpers
    def _build_prior_nets(self, use_seg: bool, use_lm: bool) -> None:
        if use_lm:
            from .mobilefacenet import MobileFaceNet

            self.face_landback = MobileFaceNet((112, 112), 136)
        if use_seg:
            from .segface import SegFaceSwinB

            self.face_segment = SegFaceSwinB()
        for name in FROZEN_PRIOR_MODULES:
            if hasattr(self, name):
                getattr(self, name).requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ORSANet:
        super().train(mode)
        if self.cfg.prior_mode != "released":
            for name in FROZEN_PRIOR_MODULES:
                if hasattr(self, name):
                    getattr(self, name).eval()
        return self

    @property
    def required_priors(self) -> tuple[str, ...]:
        """The prior keys ``forward`` needs in ``priors`` (empty when computed in the model)."""
        if self.cfg.baseline or self.cfg.priors_in_model:
            return ()
        keys = []
        if self.cfg.prior_routing == "released":
            keys += ["landmark_features"] if self.use_lm else []
            keys += ["parser_features"] if self.use_seg else []
        else:
            keys += ["landmarks"] if self.use_lm else []
            keys += ["parsing"] if self.use_seg else []
        return tuple(keys)

    @contextmanager
    def reuse_priors(self) -> Iterator[None]:
        """Within this context the in-model priors of an image tensor are computed once and reused.

        Only with ``priors_in_model=True, prior_mode="cached"`` (the frozen networks in eval mode: their output
        depends on the pixels only) and only for the very same tensor object, unmodified, under the same autocast
        state: e.g. the two passes of a SAM step on one batch. Elsewhere (``prior_mode="released"``: train-mode
        networks, recomputed in every pass as released) it changes nothing.
        """
        active = self.cfg.priors_in_model and self.cfg.prior_mode == "cached" and not self.cfg.baseline
        outer, self._prior_memo = self._prior_memo, ({} if active else None)
        try:
            yield
        finally:
            self._prior_memo = outer

    def _priors_of(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`_prior_nets`, through the memo of :meth:`reuse_priors` when one is active."""
        memo = self._prior_memo
        if memo is None:
            return self._prior_nets(image)
        dev = image.device.type
        key = (image._version, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
        if memo.get("image") is image and memo.get("key") == key:
            return memo["priors"]
        out = self._prior_nets(image)
        memo.update(image=image, key=key, priors=out)  # holds the image: its id cannot be reused meanwhile
        return out

    # ------------------------------------------------------------------ forward pieces
    def _prior_nets(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            if hasattr(self, "face_landback"):
                coords, feats = self.face_landback(F.interpolate(image, size=112))  # release: nearest 112
                out["landmark_coords"] = coords
                out["landmark_features"] = feats  # (B, 512, 7, 7)
                out["landmarks"] = coords.reshape(coords.shape[0], -1, 2)  # (B, 68, 2)
            if hasattr(self, "face_segment"):
                if self.cfg.prior_routing == "released":
                    out["parser_features"] = self.face_segment.forward_features(image)  # (B, 1024, 7, 7)
                else:
                    out["parsing"] = self.face_segment(image).argmax(1)  # (B, H, W) LaPa labels
        return out

    def _image_map(self, x_ir: torch.Tensor) -> torch.Tensor:
        """IR map (B, C, H, W) -> token map (B, D, g, g)."""
        B, g, D = x_ir.shape[0], self.cfg.grid, self.cfg.embed_dim
        if self.cfg.token_layout == "released":
            t = x_ir.reshape(B, g * g, -1)  # (B, N, C*H*W/N): raw memory chunks, as the release's .view
        else:
            t = F.adaptive_avg_pool2d(x_ir, g).flatten(2).transpose(1, 2)  # (B, N, C)
        t = self.ir_layer(t)  # (B, N, D)
        return t.permute(0, 2, 1).reshape(B, D, g, g)  # (B, D, g, g)

    def _seg_map(self, priors: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cfg.prior_routing == "released":
            return self.seg_sample(_need(priors, "parser_features", self).float())  # (B, D, 7, 7)
        p = _need(priors, "parsing", self)
        if p.dim() == 4 and p.shape[1] == NUM_PARSING_CLASSES and p.is_floating_point():
            onehot = p  # already one-hot / soft (B, 11, S, S)
        else:
            p = p.squeeze(1) if p.dim() == 4 else p  # (B, S, S)
            onehot = F.one_hot(p.long().clamp(0, NUM_PARSING_CLASSES - 1), NUM_PARSING_CLASSES)  # (B, S, S, 11)
            onehot = onehot.permute(0, 3, 1, 2).to(self.head.linear.weight.dtype)  # (B, 11, S, S)
        return self.seg_encoder(onehot)  # (B, D, S/32, S/32) at the released strides

    def _landmark_tokens(self, priors: dict[str, torch.Tensor]) -> torch.Tensor:
        B, g = None, self.cfg.grid
        if self.cfg.prior_routing == "released":
            f = _need(priors, "landmark_features", self).float()  # (B, 512, h, w)
            B = f.shape[0]
            if f.shape[-2:] != (g, g):
                f = F.adaptive_avg_pool2d(f, g)
            t = f.reshape(B, f.shape[1], -1).transpose(1, 2)  # (B, N, C), as the release's .view(B,-1,49).T
            return self.lm_proj(t) if hasattr(self, "lm_proj") else t
        lm = _need(priors, "landmarks", self)  # (B, 68, 2)
        heat = landmark_heatmaps(lm, g, self.cfg.landmark_sigma)  # (B, 68, g, g)
        heat = heat.flatten(2).transpose(1, 2).to(self.head.linear.weight.dtype)  # (B, N, 68)
        tokens = self.lm_embed(heat)  # (B, N, D)
        if hasattr(self, "lm_coords"):
            centred = (lm - lm.mean(1, keepdim=True)).flatten(1).to(tokens.dtype)  # (B, 136), pose-shift free
            tokens = tokens + self.lm_coords(4.0 * centred).unsqueeze(1)  # (B, 1, D) broadcast over tokens
        return tokens

    def forward(
        self,
        image: torch.Tensor,
        priors: dict[str, torch.Tensor] | None = None,
        return_attn: bool = False,
        return_intermediates: bool = False,
    ) -> dict[str, torch.Tensor]:
        priors = dict(priors or {})
        if self.cfg.priors_in_model and not self.cfg.baseline:
            priors.update(self._priors_of(image))
        x_ir = self.ir_back(image)  # (B, 256, 14, 14) released
        fmap = self._image_map(x_ir)  # (B, D, g, g)
        if self.use_seg:
            fmap = self.seg_fusion(fmap, self._seg_map(priors))  # Eq. (5)
        tokens = fmap.flatten(2).transpose(1, 2)  # (B, N, D)
        attn = None
        if self.cfg.baseline:
            feat = self.norm(tokens.mean(1))  # (B, D)
        else:
            lm = self._landmark_tokens(priors) if self.use_lm else None  # (B, N, D)
            feat, attn = self.pyramid_fuse(tokens, lm, need_weights=return_attn)  # (B, D)
        feat = self.se_block(feat)
        out = {"logits": self.head(feat), "features": feat}
        if return_attn and attn is not None:
            out["attn"] = attn
        if return_intermediates:
            out["ir_features"] = x_ir
            for k in ("landmark_coords", "landmark_features", "parser_features"):
                if k in priors:
                    out[k] = priors[k]
        return out


def _need(priors: dict[str, torch.Tensor], key: str, model: ORSANet) -> torch.Tensor:
    if key not in priors or priors[key] is None:
        raise ValueError(
            f"ORSANet (prior_routing={model.cfg.prior_routing!r}) needs the prior {key!r}; got {sorted(priors)}. "
            f"It needs {list(model.required_priors)}: compute them with the prior cache, build the model with "
            "priors_in_model=True (released routing), or switch the prior off (seg_prior=False; "
            "cross_interaction=False with cross_interaction_ablation='no-landmarks')"
        )
    return priors[key]


_ALIASES = {"image_size": "img_size", "drop_path_rate": "drop_path"}


def _apply_overrides(cfg: ORSANetConfig, overrides: dict[str, Any]) -> ORSANetConfig:
    known = {f.name for f in fields(ORSANetConfig)}
    kw = {}
    for k, v in overrides.items():
        k = _ALIASES.get(k, k)
        if k not in known:
            raise ValueError(f"unknown ORSANet option {k!r}; known options: {sorted(known)}")
        kw[k] = tuple(tuple(s) if isinstance(s, (list, tuple)) else s for s in v) if k == "stages" else v
    for k in ("seg_strides", "seg_widths"):
        if k in kw:
            kw[k] = tuple(kw[k])
    return replace(cfg, **kw).validate()


# ---------------------------------------------------------------------- variants
def _released(depth: int) -> ORSANetConfig:
    return ORSANetConfig(depth=depth)


# The CPU family (docs/cpu_family.md). Its image branch (IR stem + 3 stages -> (B, 96, 8, 8) at 64 px -> raw view
# into 64 tokens of 96 values -> Linear 96->96) is shared with the prior-free twin ``baseline_cpu``, which learns
# SynthFER on its own with the released token layout (80 % clean at the cpu budget) and not with one token per cell
# (chance: the mean over cell tokens drops where each feature is). 0.13 GFLOPs per 64-px image: sized so that the
# cpu-profile suite fits 2 cores.
CPU_CONFIG = ORSANetConfig(
    img_size=64, stem=16, stages=((24, 1), (48, 1), (96, 2)), backbone_input_size=None, backbone_output_layer=False,
    token_layout="released", grid=8, embed_dim=96, depth=2, num_heads=4, drop_path=0.05, spade_hidden=48,
    prior_routing="paper", seg_strides=(2, 2, 2, 1),
)  # fmt: skip
# Smoke tests only; keeps the one-token-per-cell layout it was pinned with.
TINY_CONFIG = replace(
    CPU_CONFIG, stem=16, stages=((16, 1), (32, 1), (64, 1)), token_layout="spatial", embed_dim=64, depth=1,
    num_heads=2, drop_path=0.0, spade_hidden=32,
)  # fmt: skip


@register_model(family="orsanet", task="fer", uses_priors=True, image_size=224, paper_params_m=None)
def orsanet_small(**overrides: Any) -> ORSANet:
    """Released ``small`` (MCM depth 4): 50,337,931 trainable parameters."""
    return ORSANet(_released(4), **overrides)


@register_model(family="orsanet", task="fer", uses_priors=True, image_size=224, paper_params_m=None)
def orsanet_base(**overrides: Any) -> ORSANet:
    """Released ``base`` (MCM depth 6): 55,313,753 trainable parameters."""
    return ORSANet(_released(6), **overrides)


@register_model(family="orsanet", task="fer", uses_priors=True, image_size=224, paper_params_m=60.2)
def orsanet_large(**overrides: Any) -> ORSANet:
    """Released ``large`` (MCM depth 8): 60,289,575 trainable parameters (paper Table 5: 60.2M)."""
    return ORSANet(_released(8), **overrides)


@register_model(family="orsanet", task="fer", uses_priors=True, image_size=64)
def orsanet_cpu(**overrides: Any) -> ORSANet:
    """CPU-sized ORSANet (every component kept): slim IR at 64 px, raw-view tokens, D=96, depth 2, 4 heads, 8x8."""
    return ORSANet(CPU_CONFIG, **overrides)


@register_model(family="orsanet", task="fer", uses_priors=True, image_size=64)
def orsanet_tiny(**overrides: Any) -> ORSANet:
    """Smoke-test ORSANet (every component kept, minimal widths): D=64, depth 1, 2 heads, 8x8 tokens."""
    return ORSANet(TINY_CONFIG, **overrides)
