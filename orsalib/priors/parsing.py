"""Dense prior: an 11-class LaPa face-parsing map (paper Sec. 3.2).

Two ways to get it:

1. **SegFace** (LaPa, Swin-B), the parser of the paper: weights from the public ``model_299.pt``
   (``{'state_dict_backbone': {...}}``; an ORSANet checkpoint with ``face_segment.*`` keys works too). Default
   location: ``orsalib.paths.DATA_DIR / "weights" / "segface_lapa_swin_base.pt"`` (``data/weights/``). Input:
   RGB, ImageNet-normalised; the label map is the argmax of the decoder logits and the released-routing prior is
   the Swin-B stage-4 map (1024, S/32, S/32). Both come from one forward pass on the image at the model input
   side (SegFace was trained at 512x512; at 224 its label maps are coarser, its stage-4 map is what the release
   uses).
2. **Landmark rasterisation** (no weights): :func:`rasterize_parsing` draws the LaPa regions as polygons of the
   68 landmarks (brows, eyes, nose, lips, inner mouth; skin from the jaw line up to a forehead line above the
   brows). Hair cannot be inferred from landmarks and is left as background.

LaPa labels: 0 background, 1 skin, 2 left brow, 3 right brow, 4 left eye, 5 right eye, 6 nose, 7 upper lip,
8 inner mouth, 9 lower lip, 10 hair; "left" is the subject's left (image right), so in iBUG 68-point order
the left brow is points 22-26 and the left eye 42-47.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..models.segface import LAPA_CLASSES, SegFaceSwinB
from ..paths import DATA_DIR
from .landmarks import load_weights_file

__all__ = [
    "DEFAULT_PARSER_WEIGHTS",
    "LAPA_CLASSES",
    "ParserPredictor",
    "load_segface",
    "preprocess_parser_input",
    "rasterize_parsing",
    "rasterize_parsing_batch",
]

DEFAULT_PARSER_WEIGHTS: Path = DATA_DIR / "weights" / "segface_lapa_swin_base.pt"
PARSER_ORIGIN = (
    "model_299.pt of SegFace (LaPa, Swin-B; the SegFace face-segmentation release), a file "
    "{'state_dict_backbone': ...} with backbone.*, pe_layer.*, face_decoder.*, linear_c.*, linear_fuse.* keys"
)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def load_segface(path: str | Path | None = None, device: str | torch.device = "cpu") -> SegFaceSwinB:
    """The frozen SegFace parser from a public-format file (default :data:`DEFAULT_PARSER_WEIGHTS`), eval mode."""
    net = SegFaceSwinB()
    load_weights_file(
        path or DEFAULT_PARSER_WEIGHTS, net, what="SegFace LaPa Swin-B parser", origin=PARSER_ORIGIN,
        submodule_prefixes=("face_segment.",),
    )  # fmt: skip
    return net.to(device).eval().requires_grad_(False)


def preprocess_parser_input(
    images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu", size: int | None = None
) -> torch.Tensor:
    """uint8 RGB images (B, H, W, 3) -> (B, 3, H, W) float, ImageNet-normalised (optionally resized to ``size``)."""
    x = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images (B, H, W, 3), got shape {tuple(x.shape)}")
    x = x.to(device).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    if size is not None and x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


class ParserPredictor:
    """SegFace inference on uint8 RGB images: ``predict(images) -> (parsing, features)``.

    Args:
        net: a loaded :class:`SegFaceSwinB` (see :func:`load_segface`).
        device: where to run it.
    """

    def __init__(self, net: SegFaceSwinB, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @torch.no_grad()
    def predict(self, images: np.ndarray, want_parsing: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """Label maps (B, H, W) uint8 (None unless ``want_parsing``) and stage-4 maps (B, 1024, H/32, W/32) float32."""
        x = preprocess_parser_input(images, self.device)
        if not want_parsing:
            return None, self.net.forward_features(x).float().cpu().numpy()
        logits, feats = self.net.forward_with_features(x)
        parsing = logits.argmax(1).to(torch.uint8).cpu().numpy()  # (B, H, W)
        return parsing, feats.float().cpu().numpy()


# ----------------------------------------------------------------------------- landmark rasterisation
# Regions as iBUG 68-point index polygons (drawn in this order; later regions overwrite earlier ones).
_FOREHEAD_LIFT = 0.6  # forehead line: brows lifted by this x the brow-to-nose-tip distance
_UPPER_LIP = [48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]
_LOWER_LIP = [54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]
_INNER_MOUTH = [60, 61, 62, 63, 64, 65, 66, 67]
_RIGHT_EYE = [36, 37, 38, 39, 40, 41]  # subject's right = image left -> class 5
_LEFT_EYE = [42, 43, 44, 45, 46, 47]  # subject's left = image right -> class 4
_RIGHT_BROW = [17, 18, 19, 20, 21]  # class 3
_LEFT_BROW = [22, 23, 24, 25, 26]  # class 2


def _brow_polygon(lm: np.ndarray, ids: list[int], thickness: float) -> np.ndarray:
    """The iBUG brow points run along the brow; thicken them by ``thickness`` (centred) into a region."""
    mid = lm[ids]
    off = np.array([0.0, thickness / 2])
    return np.concatenate([mid - off, mid[::-1] + off], axis=0)


def _nose_polygon(lm: np.ndarray, half_width: float) -> np.ndarray:
    """Bridge (27) widened to a strip, down to the nostril base (31-35)."""
    top = lm[27]
    return np.stack([top - [half_width, 0.0], lm[31], lm[32], lm[33], lm[34], lm[35], top + [half_width, 0.0]])


def rasterize_parsing(landmarks: np.ndarray, size: int | tuple[int, int], supersample: int = 2) -> np.ndarray:
    """An 11-class LaPa-style label map drawn from 68 landmarks (PIL ImageDraw polygons).

    Skin is the polygon of the jaw line (0-16) closed by a forehead line above the brows (the brow points lifted
    by 0.6 x the brow-to-nose-tip distance); brows are the brow points thickened (centred); eyes, nose, lips
    and inner mouth are the polygons of their points. Hair (10) is never drawn.

    Args:
        landmarks: (68, 2) x, y in [0, 1] of the image (iBUG 300-W order).
        size: output side S, or (H, W).
        supersample: draw at this multiple of the size and subsample (smoother small regions).

    Returns:
        uint8 (H, W) labels.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"rasterize_parsing expects (68, 2) landmarks, got shape {lm.shape}")
    h, w = (size, size) if isinstance(size, int) else size
    s = max(1, int(supersample))
    px = lm * np.array([w * s, h * s])  # continuous convention: [0, 1] -> [0, W*s]
    img = Image.new("L", (w * s, h * s), 0)
    if not np.isfinite(px).all():
        return np.zeros((h, w), dtype=np.uint8)
    draw = ImageDraw.Draw(img)

    def poly(points: np.ndarray, label: int) -> None:
        draw.polygon([(float(x), float(y)) for x, y in points], fill=label)

    brow_y = lm[17:27, 1].mean() * h * s
    lift = _FOREHEAD_LIFT * max(px[30, 1] - brow_y, 1.0)  # forehead height relative to the brow-to-nose distance
    forehead = px[[26, 25, 24, 23, 22, 21, 20, 19, 18, 17]] - np.array([0.0, lift])
    poly(np.concatenate([px[0:17], forehead]), 1)  # skin
    eye_w = np.linalg.norm(px[39] - px[36]) + np.linalg.norm(px[45] - px[42])
    poly(_brow_polygon(px, _LEFT_BROW, 0.12 * eye_w), 2)
    poly(_brow_polygon(px, _RIGHT_BROW, 0.12 * eye_w), 3)
    poly(px[_LEFT_EYE], 4)
    poly(px[_RIGHT_EYE], 5)
    poly(_nose_polygon(px, 0.12 * eye_w), 6)
    poly(px[_UPPER_LIP], 7)
    poly(px[_LOWER_LIP], 9)
    poly(px[_INNER_MOUTH], 8)
    out = np.asarray(img, dtype=np.uint8)
    if s > 1:
        out = out[s // 2 :: s, s // 2 :: s]  # (H*s, W*s) -> (H, W): the label at each pixel centre
    return np.ascontiguousarray(out[:h, :w])


def rasterize_parsing_batch(landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """:func:`rasterize_parsing` over (B, 68, 2) -> uint8 (B, H, W)."""
    return np.stack([rasterize_parsing(lm, size) for lm in np.asarray(landmarks)], axis=0)
