"""MobileFaceNet-68: the frozen landmark network of ORSANet (sparse prior, paper Sec. 3.2).

MobileFaceNet (Chen et al., 2018) is a MobileNetV2-style network of depth-wise separable inverted
residual blocks with a global depth-wise convolution (GDC) head. The 68-landmark variant used by
ORSANet is ``MobileFaceNet([112, 112], 136)`` from the public PFLD/MobileFaceNet face-landmark project:
the GDC head regresses 136 values (68 x,y pairs interleaved, ``x0, y0, x1, y1, ...``) in [0, 1] of the
112x112 crop. The released ORSANet uses the (B, 512, 7, 7) output of the last 1x1 conv block
(``conv_6_sep``) as its landmark prior and discards the coordinates.

Attribute names follow the public checkpoint exactly, so ``load_state_dict(strict=True)`` works on
``{'state_dict': ...}`` of the public file and on the ``face_landback.*`` part of an ORSANet checkpoint.

Input convention of the pretrained weights: a 112x112 face crop, BGR channel order, scaled to [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MobileFaceNet", "mobilefacenet_68"]


class ConvBlock(nn.Module):
    """Conv (no bias) + BatchNorm + PReLU (per channel)."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """Conv (no bias) + BatchNorm, no activation (the linear bottleneck of MobileNetV2)."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """Inverted residual: 1x1 expand to ``groups`` channels, 3x3 depth-wise, 1x1 linear projection."""

    def __init__(self, in_c: int, out_c: int, groups: int, stride: int = 1, residual: bool = False):
        super().__init__()
        self.conv = ConvBlock(in_c, groups, 1)
        self.conv_dw = ConvBlock(groups, groups, 3, stride, 1, groups=groups)
        self.project = LinearBlock(groups, out_c, 1)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    """``num_block`` stride-1 inverted residual blocks with identity shortcuts."""

    def __init__(self, c: int, num_block: int, groups: int):
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(c, c, groups, 1, residual=True) for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GDC(nn.Module):
    """Global depth-wise conv head: 7x7 depth-wise conv -> flatten -> Linear (no bias) -> BatchNorm1d."""

    def __init__(self, embedding_size: int, channels: int = 512, spatial: int = 7):
        super().__init__()
        self.conv_6_dw = LinearBlock(channels, channels, spatial, 1, 0, groups=channels)
        self.linear = nn.Linear(channels, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_6_dw(x).flatten(1)  # (B, 512)
        return self.bn(self.linear(x))


class MobileFaceNet(nn.Module):
    """MobileFaceNet with a 136-value landmark head.

    Args:
        input_size: (H, W) of the input; must be a multiple of 16 (112 for the public weights).
        embedding_size: outputs of the GDC head (136 = 68 landmarks x 2).
    """

    def __init__(self, input_size: tuple[int, int] | list[int] = (112, 112), embedding_size: int = 136):
        super().__init__()
        h, w = int(input_size[0]), int(input_size[1])
        if h % 16 or w % 16:
            raise ValueError(f"MobileFaceNet input_size={input_size!r} must be a multiple of 16 (public weights: 112)")
        self.input_size = (h, w)
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, groups=128, stride=2)
        self.conv_3 = Residual(64, num_block=4, groups=128)
        self.conv_34 = DepthWise(64, 128, groups=256, stride=2)
        self.conv_4 = Residual(128, num_block=6, groups=256)
        self.conv_45 = DepthWise(128, 128, groups=512, stride=2)
        self.conv_5 = Residual(128, num_block=2, groups=256)
        self.conv_6_sep = ConvBlock(128, 512, 1)
        if (h // 16, w // 16) != (7, 7) and h != w:
            raise ValueError(f"MobileFaceNet input_size={input_size!r}: the GDC head needs a square input")
        self.output_layer = GDC(embedding_size, 512, h // 16)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, 512, H/16, W/16) output of ``conv_6_sep`` (the released ORSANet landmark prior)."""
        x = self.conv2_dw(self.conv1(x))  # (B, 64, H/2, W/2)
        x = self.conv_3(self.conv_23(x))  # (B, 64, H/4, W/4)
        x = self.conv_4(self.conv_34(x))  # (B, 128, H/8, W/8)
        x = self.conv_5(self.conv_45(x))  # (B, 128, H/16, W/16)
        return self.conv_6_sep(x)  # (B, 512, H/16, W/16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(coords (B, 136), features (B, 512, 7, 7))``; coords interleaved x,y in [0, 1] of the crop."""
        feats = self.forward_features(x)
        return self.output_layer(feats), feats


def mobilefacenet_68() -> MobileFaceNet:
    """The 68-landmark configuration of the public checkpoint: ``MobileFaceNet([112, 112], 136)``."""
    return MobileFaceNet((112, 112), 136)
