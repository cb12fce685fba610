"""Small CPU-sized prior networks trained on SynthFER's ground truth (the ``synth-detected`` prior source).

- :class:`LandmarkRegressor`: a strided conv encoder and a linear head that regresses the 68 landmarks as offsets
  from a mean shape (x, y in [0, 1] of the image, the contract of the ``landmarks`` prior).
- :class:`FaceParser`: a small encoder-decoder (feature-pyramid decoder, two skips) giving per-pixel logits of
  the 11 LaPa classes at the input resolution.

Both take float images (B, 3, S, S) normalised with ImageNet statistics (:func:`normalize_images`) at the side
``S`` they were trained at (:data:`DETECTOR_INPUT`, a multiple of 16). Training, caching and the prior source
itself live in :mod:`orsalib.priors.detected`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DETECTOR_INPUT", "FaceParser", "LandmarkRegressor", "normalize_images"]

DETECTOR_INPUT: int = 64
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, S, S, 3) or float [0, 1] (B, 3, S, S) images -> normalised float (B, 3, S, S)."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class LandmarkRegressor(nn.Module):
    """68 landmarks from a face image: four stride-2 stages and a linear head on the 4x4 map.

    Args:
        width: channels of the first stage (doubled at each of the next three).
        mean_shape: (68, 2) starting shape in [0, 1]; the head predicts offsets from it (zero at initialisation).
    """

    def __init__(self, width: int = 16, mean_shape: torch.Tensor | None = None) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(3, w, 2), _conv(w, w),  # S/2
            _conv(w, 2 * w, 2), _conv(2 * w, 2 * w),  # S/4
            _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w),  # S/8
            _conv(4 * w, 8 * w, 2),  # S/16
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(8 * w * 16, 136))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        shape = torch.full((68, 2), 0.5) if mean_shape is None else torch.as_tensor(mean_shape, dtype=torch.float32)
        self.register_buffer("mean_shape", shape.reshape(68, 2).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, 68, 2) landmarks in [0, 1]."""
        off = self.head(self.pool(self.features(x))).view(-1, 68, 2)
        return self.mean_shape + off


class FaceParser(nn.Module):
    """11-class LaPa logits (B, 11, S, S) from a face image: a strided encoder (S/2 .. S/8) and a feature-pyramid
    decoder back to S/2 (upsample, add the encoder map of that scale through a 1x1 conv, one 3x3 conv); the logits
    are upsampled bilinearly to S (on CPU, full-resolution layers would cost more than the rest together).

    Args:
        width: channels at S/2 (doubled at each of the next two stride-2 stages).
        num_classes: output classes (LaPa: 11).
    """

    def __init__(self, width: int = 16, num_classes: int = 11) -> None:
        super().__init__()
        w = width
        self.enc0 = nn.Sequential(_conv(3, w, 2), _conv(w, w))  # S/2
        self.enc1 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # S/4
        self.enc2 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w), _conv(4 * w, 4 * w))  # S/8
        self.lat = nn.ModuleList([nn.Conv2d(c, c, 1) for c in (w, 2 * w)])
        self.red = nn.ModuleList([nn.Conv2d(2 * c, c, 1) for c in (w, 2 * w)])
        self.dec = nn.ModuleList([_conv(c, c) for c in (w, 2 * w)])
        self.out = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images -> (B, num_classes, S, S) logits."""
        skips = [self.enc0(x)]  # (B, w, S/2, S/2)
        skips.append(self.enc1(skips[0]))  # (B, 2w, S/4, S/4)
        y = self.enc2(skips[1])  # (B, 4w, S/8, S/8)
        for k in (1, 0):
            up = F.interpolate(self.red[k](y), size=skips[k].shape[-2:], mode="bilinear", align_corners=False)
            y = self.dec[k](up + self.lat[k](skips[k]))  # (B, c_k, S/2^(k+1), S/2^(k+1))
        return F.interpolate(self.out(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
