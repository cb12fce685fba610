"""Region Attention Network (RAN): Wang, Peng, Yang, Meng, Qiao, "Region Attention Networks for Pose and
Occlusion Robust Facial Expression Recognition", IEEE TIP 2020 (arXiv 1905.04075).

The whole model, top to bottom:

1. **Region generation** (paper Sec. III-A/III-D): the face itself plus K crops. Three ways:
   ``"fixed"`` boxes as in the released code (``fixed_regions``), ``"random"`` boxes at several scales
   (``random_regions``) and ``"landmarks"`` boxes around landmark groups (``landmark_regions``, from
   ``priors["landmarks"]``). Region 0 is always the whole face. Every crop is cut with ``roi_align``
   (bilinear, no gradient to the boxes) and resized to ``crop_size`` (224 in the release).
2. **Shared backbone** ``r(.; theta)`` (ResNet-18 in the paper) -> one pooled feature ``f_i`` per region.
3. **Self-attention** (Eq. 1-2): ``alpha_i = sigmoid(q0^T f_i)``;
   ``F_m = sum_i alpha_i f_i / sum_i alpha_i``.
4. **Relation-attention** (Eq. 3-4): ``beta_i = sigmoid(q1^T [f_i; F_m])``;
   ``P = sum_i alpha_i beta_i [f_i; F_m] / sum_i alpha_i beta_i`` (2D-dimensional, 1024 for ResNet-18).
5. **Classifier**: ``Linear(2D, C)`` on ``P``.

Paper vs released code (both selectable; the default is the released code, which produced the published numbers):

- ``softmax_alpha=True`` (release): after the sigmoid, the alphas (and the betas) are additionally softmaxed across
  regions. ``softmax_alpha=False`` is the paper's sigmoid-only attention.
- Region biased loss (Eq. 5, ``orsalib.losses.region_biased_loss``): ``max(0, m - (max_{i>0} alpha_i - alpha_0))``.
  The released FERPlus code uses ``m = 0.1`` (default here, ``RELEASED_MARGIN``), its AffectNet code ``m = 0.03``.
  The paper's text gives ``m = 0.02`` (``PAPER_MARGIN``) together with the sigmoid-only attention.
  The model only records its margin (``model.margin``); the criterion reads it.
- The released FERPlus crops were pre-computed offline (not in the code), so the ``"ferplus"`` scheme takes five of
  the AffectNet code's boxes (listed in ``FIXED_SCHEMES``); ``"affectnet"`` is the AffectNet code's seven crops.

Output of ``forward(image, priors)``: ``logits`` (B, C), ``features`` (B, 2D) = ``P``, ``alphas`` (B, R),
``betas`` (B, R) and ``boxes`` (B, R, 4) (relative x0, y0, x1, y1; for the region-weight figures).
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.ops import roi_align

from ._registry import register_model

RELEASED_MARGIN: float = 0.1  # released FERPlus training code (AffectNet code: 0.03)
RELEASED_MARGIN_AFFECTNET: float = 0.03
PAPER_MARGIN: float = 0.02  # the paper's text (with sigmoid-only attention)

WHOLE_FACE: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)

# Relative boxes (x0, y0, x1, y1). The AffectNet entries are the released AffectNet code's crops.
_AFFECTNET_CROPS: tuple[tuple[str, tuple[float, float, float, float]], ...] = (
    ("lower_centre", (0.125, 0.25, 0.875, 1.0)),
    ("top_left", (0.0, 0.0, 0.75, 0.75)),
    ("top_right", (0.25, 0.0, 1.0, 0.75)),
    ("centre_90", (0.05, 0.05, 0.95, 0.95)),
    ("centre_80", (0.1, 0.1, 0.9, 0.9)),
    ("centre_75", (0.125, 0.125, 0.875, 0.875)),
    ("top_centre", (0.125, 0.0, 0.875, 0.75)),
)
FIXED_SCHEMES: dict[str, tuple[tuple[str, tuple[float, float, float, float]], ...]] = {
    # FERPlus release: 5 crops + the face (crops were made offline; these five approximate them).
    "ferplus": (("face", WHOLE_FACE),) + _AFFECTNET_CROPS[:5],
    # AffectNet release: 7 crops + the face.
    "affectnet": (("face", WHOLE_FACE),) + _AFFECTNET_CROPS,
}

# iBUG 300-W 68-point groups. "left"/"right" are the subject's (subject's left = image right), as in LaPa.
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "right_eye_brow": tuple(range(17, 22)) + tuple(range(36, 42)),
    "left_eye_brow": tuple(range(22, 27)) + tuple(range(42, 48)),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 68)),
}

REGION_MODES: tuple[str, ...] = ("fixed", "random", "landmarks")


# ----------------------------------------------------------------------------- region generation
def fixed_regions(scheme: str = "ferplus") -> torch.Tensor:
    """The fixed boxes of a released scheme, region 0 = the whole face.

    Args:
        scheme: ``"ferplus"`` (5 crops + face) or ``"affectnet"`` (7 crops + face).

    Returns:
        (R, 4) float tensor of relative boxes (x0, y0, x1, y1) in [0, 1].
    """
    if scheme not in FIXED_SCHEMES:
        raise ValueError(f"unknown RAN region scheme {scheme!r}; choose one of {sorted(FIXED_SCHEMES)}")
    return torch.tensor([box for _, box in FIXED_SCHEMES[scheme]], dtype=torch.float32)


def _fit_boxes(
    cx: torch.Tensor, cy: torch.Tensor, w: torch.Tensor, h: torch.Tensor, min_size: float = 0.0
) -> torch.Tensor:
    """Boxes of the given centre/size, clamped to [min_size, 1] and shifted (not cut) to lie inside [0, 1]."""
    w = w.clamp(min=min_size, max=1.0)
    h = h.clamp(min=min_size, max=1.0)
    x0 = (cx - w / 2).clamp(min=0.0)
    y0 = (cy - h / 2).clamp(min=0.0)
    x0 = torch.minimum(x0, 1.0 - w)
    y0 = torch.minimum(y0, 1.0 - h)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=-1).clamp(0.0, 1.0)


def _with_face(boxes: torch.Tensor) -> torch.Tensor:
    """Prepend the whole-face box as region 0: (B, K, 4) -> (B, K + 1, 4)."""
    face = boxes.new_tensor(WHOLE_FACE).expand(boxes.shape[0], 1, 4)
    return torch.cat([face, boxes], dim=1)


def random_regions(
    batch_size: int,
    num_regions: int = 5,
    scales: tuple[float, ...] = (0.6, 0.75, 0.9),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random square crops at several scales (paper Sec. III-D "random cropping"), plus the face as region 0.

    Crop ``k`` has side ``scales[k % len(scales)]`` (relative) and a uniformly drawn position inside the image.

    Args:
        batch_size: B.
        num_regions: K crops per image (the face is added on top).
        scales: relative crop sides in (0, 1].
        generator: a seeded ``torch.Generator`` (CPU) for reproducible boxes.

    Returns:
        (B, K + 1, 4) relative boxes, region 0 = the whole face.
    """
    if num_regions < 1:
        raise ValueError(f"num_regions must be >= 1, got {num_regions}")
    if not scales or any(not 0.0 < s <= 1.0 for s in scales):
        raise ValueError(f"random region scales must lie in (0, 1], got {scales}")
    side = torch.tensor([scales[k % len(scales)] for k in range(num_regions)], dtype=torch.float32)
    side = side.expand(batch_size, num_regions)  # (B, K)
    u = torch.rand(batch_size, num_regions, 2, generator=generator)  # (B, K, 2)
    x0 = u[..., 0] * (1.0 - side)
    y0 = u[..., 1] * (1.0 - side)
    boxes = torch.stack([x0, y0, x0 + side, y0 + side], dim=-1)  # (B, K, 4)
    return _with_face(boxes.clamp(0.0, 1.0))


def landmark_regions(
    landmarks: torch.Tensor, groups: dict[str, tuple[int, ...]] | None = None, pad: float = 0.06, min_size: float = 0.25
) -> torch.Tensor:
    """Boxes around landmark groups (eyes + brows left/right, nose, mouth), plus the face as region 0.

    Each box is the group's bounding box grown by ``pad`` on every side, at least ``min_size`` wide/high, then
    shifted to lie inside the image (landmarks on or beyond the border still give a full-size crop inside).
    Non-finite landmark coordinates are replaced by the image centre.

    Args:
        landmarks: (B, 68, 2) x, y in [0, 1] of the image.
        groups: name -> landmark ids (default ``LANDMARK_GROUPS``).
        pad: relative margin added around each group.
        min_size: smallest relative side of a box.

    Returns:
        (B, G + 1, 4) relative boxes, region 0 = the whole face.
    """
    groups = LANDMARK_GROUPS if groups is None else groups
    if landmarks.dim() != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must have shape (B, 68, 2), got {tuple(landmarks.shape)}")
    need = max(max(ids) for ids in groups.values()) + 1
    if landmarks.shape[1] < need:
        raise ValueError(f"landmark groups need {need} points, the landmarks have {landmarks.shape[1]}")
    lm = torch.nan_to_num(landmarks.detach().float(), nan=0.5, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    out = []
    for ids in groups.values():
        pts = lm[:, list(ids)]  # (B, n, 2)
        lo, hi = pts.min(dim=1).values, pts.max(dim=1).values  # (B, 2)
        centre, size = (lo + hi) / 2, (hi - lo) + 2 * pad
        out.append(_fit_boxes(centre[:, 0], centre[:, 1], size[:, 0], size[:, 1], min_size=min_size))
    return _with_face(torch.stack(out, dim=1))  # (B, G + 1, 4)


def crop_regions(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut every box out of its image and resize it to ``size`` x ``size`` (``roi_align``, bilinear).

    Args:
        image: (B, C, H, W).
        boxes: (B, R, 4) relative boxes (x0, y0, x1, y1) in [0, 1].
        size: output side.

    Returns:
        (B, R, C, size, size) crops. A whole-image box at ``size == H == W`` returns the image itself.
    """
    b, r, _ = boxes.shape
    h, w = image.shape[-2:]
    scale = boxes.new_tensor([w, h, w, h])
    pix = (boxes.detach().to(image.dtype) * scale.to(image.dtype)).reshape(b * r, 4)  # (B*R, 4) pixels
    idx = torch.arange(b, device=image.device, dtype=image.dtype).repeat_interleave(r)[:, None]  # (B*R, 1)
    rois = torch.cat([idx, pix.to(image.device)], dim=1)  # (B*R, 5)
    crops = roi_align(image, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return crops.reshape(b, r, image.shape[1], size, size)  # (B, R, C, S, S)


# ----------------------------------------------------------------------------- backbone
class _PooledBackbone(nn.Module):
    """Wrap a network that returns a feature map (B, D, h, w) or a vector (B, D) into (B, D) pooled features."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        if y.dim() == 4:
            y = y.mean(dim=(2, 3))  # (B, D)
        return y.flatten(1)


def _load_backbone_weights(net: nn.Module, path: str) -> None:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"RAN backbone weights {str(p)!r} do not exist; expected a state-dict file (.pth)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure is the user's file
        raise ValueError(f"RAN backbone weights {str(p)!r} could not be read as a torch state dict: {e}") from e
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict):
        raise ValueError(f"RAN backbone weights {str(p)!r}: expected a dict of tensors (or {{'state_dict': ...}})")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith(("fc.", "head.", "classifier."))}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing:
        raise ValueError(
            f"RAN backbone weights {str(p)!r} lack {len(missing)} keys of the backbone, "
            f"e.g. {missing[:5]}; expected a checkpoint of the same architecture"
        )
    if unexpected:
        raise ValueError(
            f"RAN backbone weights {str(p)!r} hold {len(unexpected)} keys the backbone does not have, "
            f"e.g. {unexpected[:5]}"
        )


def build_backbone(
    name: str = "resnet18", crop_size: int = 224, weights: str = "", **kwargs: Any
) -> tuple[nn.Module, int]:
    """The shared region backbone and its pooled feature size.

    Args:
        name: a timm model name (built with ``pretrained=False``: nothing is downloaded), or ``"ir50"`` for the
            IR-50 of ``orsalib.models.ir50`` (pooled over space).
        crop_size: crop side (used to infer the feature size of non-timm backbones).
        weights: optional local state-dict file for the backbone.
        **kwargs: passed to ``timm.create_model`` (e.g. ``channels=(32, 64, 128, 256)``).

    Returns:
        (module mapping (N, 3, S, S) -> (N, D), D)
    """
    if name == "ir50":
        try:
            mod = importlib.import_module("orsalib.models.ir50")
        except ModuleNotFoundError as e:
            raise ValueError("RAN backbone 'ir50' needs orsalib.models.ir50, which is not available") from e
        factory = next((getattr(mod, n) for n in ("IR50", "ir50", "build_ir50") if hasattr(mod, n)), None)
        if factory is None:
            raise ValueError("orsalib.models.ir50 exposes none of IR50 / ir50 / build_ir50")
        net = _PooledBackbone(factory(**kwargs))
        if weights:
            _load_backbone_weights(net.net, weights)
        with torch.no_grad():
            was = net.training
            dim = net.eval()(torch.zeros(1, 3, crop_size, crop_size)).shape[1]
            net.train(was)
        return net, int(dim)
    import timm

    if kwargs.pop("pretrained", False):
        raise ValueError("RAN does not download backbone weights; pass backbone_weights='<local .pth file>' instead")
    try:
        net = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except RuntimeError as e:
        raise ValueError(f"unknown RAN backbone {name!r} (a timm model name or 'ir50'): {e}") from e
    if weights:
        _load_backbone_weights(net, weights)
    return net, int(net.num_features)


# ----------------------------------------------------------------------------- the model
@dataclass
class RANConfig:
    """One RAN variant."""

    num_classes: int = 7  # 7 basic expressions (8 with contempt)
    backbone: str = "resnet18"  # timm name or "ir50"; paper: ResNet-18 (also ResNet-34 / VGG16)
    backbone_kwargs: dict = field(default_factory=dict)  # extra timm.create_model arguments
    backbone_weights: str = ""  # optional local backbone state dict (release: MS-Celeb / ImageNet pre-training)
    crop_size: int = 224  # every region is resized to this side (release: 224)
    regions: str = "fixed"  # "fixed" (release) | "random" | "landmarks" (paper Sec. III-D)
    scheme: str = "ferplus"  # fixed boxes: "ferplus" (5 crops + face) | "affectnet" (7 crops + face)
    num_random: int = 5  # random regions: crops per image (plus the face)
    random_scales: tuple = (0.6, 0.75, 0.9)  # random regions: relative crop sides, cycled
    random_resample: bool = True  # random regions: new boxes every training step (eval uses the boxes drawn at init)
    landmark_pad: float = 0.06  # landmark regions: relative margin around each group
    landmark_min_size: float = 0.25  # landmark regions: smallest relative side
    softmax_alpha: bool = True  # release: softmax of alphas/betas across regions; False = paper (sigmoid only)
    margin: float = RELEASED_MARGIN  # region biased loss margin (release FERPlus 0.1; AffectNet 0.03; paper 0.02)
    drop_rate: float = 0.0  # dropout before the classifier (release: none)
    seed: int = 0  # seed of the random-region generator

    def validate(self) -> RANConfig:
        if self.regions not in REGION_MODES:
            raise ValueError(f"RAN regions={self.regions!r} is not allowed; choose one of {list(REGION_MODES)}")
        if self.scheme not in FIXED_SCHEMES:
            raise ValueError(f"RAN scheme={self.scheme!r} is not allowed; choose one of {sorted(FIXED_SCHEMES)}")
        if not isinstance(self.crop_size, int) or self.crop_size < 8:
            raise ValueError(f"RAN crop_size={self.crop_size!r} must be an integer >= 8")
        if self.num_classes < 2:
            raise ValueError(f"RAN num_classes={self.num_classes!r} must be >= 2")
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"RAN margin={self.margin!r} must lie in [0, 1]")
        self.random_scales = tuple(float(s) for s in self.random_scales)
        return self


class RAN(nn.Module):
    """Region Attention Network (paper Fig. 2): regions -> shared backbone -> self- and relation-attention -> FC."""

    def __init__(self, cfg: RANConfig | None = None):
        super().__init__()
        self.cfg = (cfg or RANConfig()).validate()
        c = self.cfg
        self.margin = float(c.margin)  # read by the region biased loss criterion
        self.backbone, d = build_backbone(
            c.backbone, crop_size=c.crop_size, weights=c.backbone_weights, **copy.deepcopy(c.backbone_kwargs)
        )
        self.feature_dim = d
        self.alpha = nn.Linear(d, 1)  # Eq. (1): self-attention q0
        self.beta = nn.Linear(2 * d, 1)  # Eq. (3): relation-attention q1
        self.drop = nn.Dropout(c.drop_rate)
        self.fc = nn.Linear(2 * d, c.num_classes)
        self.register_buffer("fixed_boxes", fixed_regions(c.scheme), persistent=False)  # (R, 4)
        self._gen = torch.Generator().manual_seed(int(c.seed))
        eval_boxes = random_regions(1, c.num_random, c.random_scales, generator=self._gen)[0]  # (K + 1, 4)
        self.register_buffer("random_eval_boxes", eval_boxes, persistent=False)

    # -- regions
    @property
    def num_regions(self) -> int:
        c = self.cfg
        if c.regions == "fixed":
            return len(FIXED_SCHEMES[c.scheme])
        if c.regions == "random":
            return c.num_random + 1
        return len(LANDMARK_GROUPS) + 1

    @property
    def region_names(self) -> list[str]:
        c = self.cfg
        if c.regions == "fixed":
            return [n for n, _ in FIXED_SCHEMES[c.scheme]]
        if c.regions == "random":
            return ["face"] + [f"random_{k}@{c.random_scales[k % len(c.random_scales)]:g}" for k in range(c.num_random)]
        return ["face"] + list(LANDMARK_GROUPS)

    def region_boxes(self, image: torch.Tensor, priors: dict | None = None) -> torch.Tensor:
        """(B, R, 4) relative boxes for this batch; region 0 is the whole face."""
        b, c = image.shape[0], self.cfg
        if c.regions == "fixed":
            return self.fixed_boxes.to(image.device).expand(b, -1, -1)
        if c.regions == "random":
            if self.training and c.random_resample:
                return random_regions(b, c.num_random, c.random_scales, generator=self._gen).to(image.device)
            return self.random_eval_boxes.to(image.device).expand(b, -1, -1)
        if not priors or "landmarks" not in priors:
            have = sorted(priors) if priors else []
            raise ValueError(
                f"RAN regions='landmarks' needs priors['landmarks'] (B, 68, 2); the batch holds {have}. "
                "Use a prior source that gives landmarks (oracle, mobilefacenet) or regions='fixed'."
            )
        lm = priors["landmarks"]
        if lm.shape[0] != b:
            raise ValueError(f"priors['landmarks'] has batch {lm.shape[0]}, the image batch is {b}")
        boxes = landmark_regions(lm, pad=c.landmark_pad, min_size=c.landmark_min_size)
        return boxes.to(image.device)

    # -- forward
    def forward(self, image: torch.Tensor, priors: dict | None = None) -> dict[str, torch.Tensor]:
        b = image.shape[0]
        boxes = self.region_boxes(image, priors)  # (B, R, 4)
        r = boxes.shape[1]
        crops = crop_regions(image, boxes, self.cfg.crop_size)  # (B, R, 3, S, S)
        f = self.backbone(crops.flatten(0, 1))  # (B*R, D)
        f = f.reshape(b, r, -1)  # (B, R, D)

        # Eq. (1)-(2): self-attention weights and the aggregated content F_m.
        alpha = torch.sigmoid(self.alpha(f))  # (B, R, 1)
        if self.cfg.softmax_alpha:
            alpha = alpha.softmax(dim=1)  # release: softmax across regions
        f_m = (alpha * f).sum(dim=1) / alpha.sum(dim=1)  # (B, D)

        # Eq. (3)-(4): relation-attention on [f_i; F_m] and the final representation P.
        fr = torch.cat([f, f_m[:, None].expand(-1, r, -1)], dim=-1)  # (B, R, 2D)
        beta = torch.sigmoid(self.beta(fr))  # (B, R, 1)
        if self.cfg.softmax_alpha:
            beta = beta.softmax(dim=1)
        w = alpha * beta  # (B, R, 1)
        p = (w * fr).sum(dim=1) / w.sum(dim=1)  # (B, 2D)

        logits = self.fc(self.drop(p))  # (B, C)
        return {"logits": logits, "features": p, "alphas": alpha.squeeze(-1), "betas": beta.squeeze(-1), "boxes": boxes}


# ----------------------------------------------------------------------------- registry
# ModelConfig fields that other models use and RAN accepts without effect (so one config can build either model).
_ACCEPTED_NO_EFFECT: frozenset[str] = frozenset(
    {
        "prior_routing",
        "seg_prior",
        "cross_interaction",
        "multi_scale",
        "landmark_reintegration",
        "drop_path",
        "image_size",
        "in_chans",
        "pretrained_cfg",
    }
)


def _create(defaults: dict[str, Any], overrides: dict[str, Any]) -> RAN:
    known = {f.name for f in fields(RANConfig)}
    kw = {**defaults}
    for k, v in overrides.items():
        if k in known:
            kw[k] = v
        elif k not in _ACCEPTED_NO_EFFECT:
            raise ValueError(f"unknown RAN option {k!r}; known options: {sorted(known)}")
    if "backbone" in overrides and "backbone_kwargs" not in overrides and overrides["backbone"] != defaults["backbone"]:
        kw["backbone_kwargs"] = {}  # the variant's width settings belong to its own backbone
    return RAN(RANConfig(**kw))


@register_model(
    family="ran",
    task="fer",
    uses_priors=False,
    paper="RAN (TIP 2020), ResNet-18, 224 crops, released fixed crops",
    profile="paper",
)
def ran_resnet18(**kwargs: Any) -> RAN:
    """The paper setting: ResNet-18 backbone, 224-pixel crops, fixed FERPlus crops + face, release attention."""
    return _create(dict(backbone="resnet18", crop_size=224), kwargs)


@register_model(
    family="ran", task="fer", uses_priors=False, paper="RAN (TIP 2020), ResNet-34, 224 crops", profile="paper"
)
def ran_resnet34(**kwargs: Any) -> RAN:
    """ResNet-34 backbone (the paper's other ResNet), 224-pixel crops."""
    return _create(dict(backbone="resnet34", crop_size=224), kwargs)


# Half-width resnet10t on 48-pixel crops: 57.6 % clean on SynthFER at the cpu budget, where the quarter width on
# 40-pixel crops (the first ran_cpu) reached 42.9 % (docs/cpu_family.md).
_CPU_BACKBONE: dict[str, Any] = {"channels": (32, 64, 128, 256), "stem_type": "", "stem_width": 32}
_TINY_BACKBONE: dict[str, Any] = {"channels": (8, 16, 32, 64), "stem_type": "", "stem_width": 16}


@register_model(
    family="ran",
    task="fer",
    uses_priors=False,
    paper="RAN, reduced for CPU: resnet10t at half width, 48 px crops",
    profile="cpu",
)
def ran_cpu(**kwargs: Any) -> RAN:
    """CPU profile: timm ``resnet10t`` with channels (32, 64, 128, 256) and a plain 32-wide stem (256-d region
    features, 512-d ``P``), 48-pixel crops (the cpu profile's faces are 64 px: a 0.75 crop keeps its pixels)."""
    return _create(dict(backbone="resnet10t", backbone_kwargs=dict(_CPU_BACKBONE), crop_size=48), kwargs)


@register_model(family="ran", task="fer", uses_priors=False, paper="RAN, smoke-test size", profile="smoke")
def ran_tiny(**kwargs: Any) -> RAN:
    """Smoke tests: ``resnet10t`` with channels (8, 16, 32, 64) and a plain 16-wide stem, 32-pixel crops."""
    return _create(dict(backbone="resnet10t", backbone_kwargs=dict(_TINY_BACKBONE), crop_size=32), kwargs)


def ran_summary(model: RAN) -> dict[str, Any]:
    """A small JSON-able description of a RAN model (for tables and run records)."""
    c = asdict(model.cfg)
    return {
        "backbone": c["backbone"],
        "crop_size": c["crop_size"],
        "regions": c["regions"],
        "scheme": c["scheme"],
        "num_regions": model.num_regions,
        "region_names": model.region_names,
        "softmax_alpha": c["softmax_alpha"],
        "margin": model.margin,
        "feature_dim": 2 * model.feature_dim,
        "params": sum(p.numel() for p in model.parameters()),
    }
