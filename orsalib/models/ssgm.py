"""Spatial-Semantic Guidance Module (paper Sec. 3.3, Eq. 5): SPADE conditioning on the parsing prior.

Eq. (5) modulates the normalised image features with a scale and a shift predicted from the dense
semantic prior S:

    SPADE(X, S) = IN(X) * (1 + gamma(S)) + beta(S)

with IN an instance norm without affine parameters, S resized (nearest) to the size of X, and
gamma, beta = conv3x3(ReLU(conv3x3(S))). The released model applies one SPADE residual block
(Park et al. 2019), fin = fout = 512, spectral-norm convolutions, no learned shortcut:

    out = x + conv_1(lrelu(SPADE_1(conv_0(lrelu(SPADE_0(x, S))), S)))

Key names reproduce the released ``seg_fusion.*`` sub-dict (``conv_0.weight_orig/_u/_v``,
``norm_0.mlp_shared.0``, ``norm_0.mlp_gamma``, ``norm_0.mlp_beta``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class SPADE(nn.Module):
    """Eq. (5): ``IN(x) * (1 + gamma(s)) + beta(s)``.

    Args:
        norm_nc: channels of the normalised features x.
        label_nc: channels of the prior map s.
        hidden: channels of the shared conv (release: 128).
        kernel_size: kernel of the three convs (release: 3).
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")  # (B, label_nc, H, W)
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResBlock(nn.Module):
    """SPADE residual block (Eq. 5 applied twice), spectral-norm 3x3 convs, leaky ReLU 0.2.

    Args:
        fin: input channels.
        fout: output channels; a learned 1x1 shortcut (with its own SPADE) is built when ``fin != fout``.
        label_nc: channels of the prior map.
        hidden: SPADE hidden channels (release: 128).
        spectral: wrap the convs in ``torch.nn.utils.spectral_norm`` (release: yes, ``norm_G='spectralinstance'``).
    """

    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int = 128, spectral: bool = True):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        sn = spectral_norm if spectral else (lambda m: m)
        self.conv_0 = sn(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = sn(nn.Conv2d(fmiddle, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = sn(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmiddle, label_nc, hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, hidden)

    @staticmethod
    def actvn(x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 2e-1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """x (B, fin, H, W), seg (B, label_nc, h, w) -> (B, fout, H, W)."""
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(self.actvn(self.norm_0(x, seg)))
        dx = self.conv_1(self.actvn(self.norm_1(dx, seg)))
        return x_s + dx
