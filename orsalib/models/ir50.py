"""IR-50 face backbone (ArcFace "improved residual" units), as ORSANet uses it (paper Sec. 3.2, image branch).

The released ORSANet keeps only the first three stages of IR-50: a 3x3 stem (3->64, stride 1) and
``bottleneck_IR`` units 3 @ 64, 4 @ 128, 14 @ 256 channels. On a 112x112 input (the release resizes the
224 input with ``F.interpolate(x, size=112)``, default mode nearest) the output is (B, 256, 14, 14).
The ``output_layer`` of the full IR-50 (BN2d(512), Dropout, Flatten, Linear 25088->512, BN1d(512)) is
built as in the release, counted in the parameters, and never used in ``forward``.

Module names reproduce the keys of the public ``ir50.pth`` and of the released ``ir_back.*`` sub-dict
(``input_layer.{0,1,2}``, ``body.N.shortcut_layer.{0,1}``, ``body.N.res_layer.{0..4}``, ``output_layer.{0,3,4}``).
The same class builds the slim backbones of the CPU-sized variants (fewer channels and units).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IR50_STAGES: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 14))  # (channels, units) as released


class BottleneckIR(nn.Module):
    """One IR unit: ``shortcut(x) + BN(conv3x3_s(PReLU(conv3x3(BN(x)))))``.

    The stride sits on the second 3x3 conv; the shortcut is a 1x1 max-pool (same width) or a strided
    1x1 conv + BN (width change), as in the ArcFace IR-50.
    """

    def __init__(self, in_channel: int, depth: int, stride: int):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sc = self.shortcut_layer
        if isinstance(sc, nn.MaxPool2d):  # a 1x1 max-pool is a strided subsample (identity at stride 1): the same
            s = sc.stride if isinstance(sc.stride, int) else sc.stride[0]  # numbers and gradients, no pass over x
            return (x if s == 1 else x[:, :, ::s, ::s]) + self.res_layer(x)
        return sc(x) + self.res_layer(x)


class IRBackbone(nn.Module):
    """Truncated IR backbone: stem + stages of :class:`BottleneckIR` units, each stage halving the side.

    Args:
        stem: channels of the 3x3 stem.
        stages: ``(channels, units)`` per stage; the first unit of each stage has stride 2.
        input_size: the input is resized (nearest, as released) to this side first; ``None`` = no resize.
        output_layer: build the unused full-IR-50 ``output_layer`` (released: yes; it holds 12.85M parameters).
    """

    def __init__(
        self,
        stem: int = 64,
        stages: Sequence[Sequence[int]] = IR50_STAGES,
        input_size: int | None = 112,
        output_layer: bool = True,
    ):
        super().__init__()
        self.input_size = input_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
        if output_layer:
            # Full IR-50 head (512 channels x 7 x 7 after a 4th stage that the release drops); never called.
            self.output_layer = nn.Sequential(
                nn.BatchNorm2d(512), nn.Dropout(0.0), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)
            )
        units: list[nn.Module] = []
        cin = stem
        for depth, n in stages:
            units.append(BottleneckIR(cin, depth, 2))
            units.extend(BottleneckIR(depth, depth, 1) for _ in range(int(n) - 1))
            cin = depth
        self.body = nn.Sequential(*units)
        self.out_channels = cin
        self.stride = 2 ** len(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, s/8, s/8) with s = ``input_size`` (or H)."""
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=self.input_size)  # release: default mode = nearest
        return self.body(self.input_layer(x))


def ir50(output_layer: bool = True, input_size: int | None = 112) -> IRBackbone:
    """The released ORSANet image branch: IR-50, 3 stages, (B, 256, 14, 14) at 112 input."""
    return IRBackbone(64, IR50_STAGES, input_size=input_size, output_layer=output_layer)


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"IR-50 weights file {str(path)!r} does not exist; expected the public ir50.pth")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any load error means a wrong/corrupt file
        raise ValueError(f"{str(path)!r} is not a readable PyTorch checkpoint (expected ir50.pth): {e}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict of tensors (expected the public ir50.pth)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_ir50(module: IRBackbone, path_or_state: str | Path | dict[str, torch.Tensor]) -> dict[str, Any]:
    """Load IR-50 weights by name + shape match, as the release does.

    Keys of the public ``ir50.pth`` (full IR-50 with 4 stages) that have no counterpart of the same shape
    in ``module`` (the 4th stage, for instance) are skipped, and reported.

    Returns:
        ``{"matched": [...], "skipped": [...], "missing": [...]}`` (key lists) and counts ``n_matched`` etc.
    """
    state = _read_state_dict(path_or_state) if isinstance(path_or_state, (str, Path)) else dict(path_or_state)
    state = {k.removeprefix("module.").removeprefix("ir_back."): v for k, v in state.items()}
    own = module.state_dict()
    matched = [k for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)]
    skipped = [k for k in state if k not in matched]
    if not matched:
        where = path_or_state if isinstance(path_or_state, (str, Path)) else "the given state dict"
        raise ValueError(
            f"no key of {str(where)!r} matches the IR backbone by name and shape; expected IR-50 keys such as "
            f"'input_layer.0.weight' (found e.g. {list(state)[:5]})"
        )
    module.load_state_dict({k: state[k] for k in matched}, strict=False)
    missing = [k for k in own if k not in set(matched)]
    return {
        "matched": matched,
        "skipped": skipped,
        "missing": missing,
        "n_matched": len(matched),
        "n_skipped": len(skipped),
        "n_missing": len(missing),
    }
