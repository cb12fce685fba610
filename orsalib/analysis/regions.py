"""RAN region weights: the boxes and weights of each face, and per-region summary tables.

RAN (Wang et al., TIP 2020, Sec. III) weighs each region (region 0 = the whole face, then the crops) by a
self-attention ``alpha_i`` (paper Fig. 6 shows them on occluded and posed faces); the model returns them as
``out["alphas"]`` (B, R) with the boxes as ``out["boxes"]`` (B, R, 4) (relative x0, y0, x1, y1).
Arrays and tables only: :mod:`orsalib.viz.analysis` draws them (``region_weight_figure``, ``region_weight_bars``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .explain import to_display


def _as_np(x: torch.Tensor | np.ndarray, name: str, ndim: int) -> np.ndarray:
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a


@dataclass
class RegionPanels:
    """The faces of a region-weight figure, checked and in pixels (:func:`region_weight_panels`).

    Attributes:
        images: (N, H, W, 3) uint8.
        boxes: (N, R, 4) boxes in pixel coordinates of each image (x0, y0, x1, y1; pixel centres at integers).
        alphas: (N, R) region weights.
        region_names: R names.
        vmax: the top of the colour scale shared by all panels (the largest weight, 1 when none is positive).
    """

    images: np.ndarray
    boxes: np.ndarray
    alphas: np.ndarray
    region_names: list[str]
    vmax: float


def region_weight_panels(
    images: torch.Tensor | np.ndarray,
    boxes: torch.Tensor | np.ndarray,
    alphas: torch.Tensor | np.ndarray,
    region_names: Sequence[str] | None = None,
) -> RegionPanels:
    """Images, pixel boxes and weights of RAN's regions, checked to describe the same faces.

    Args:
        images: (N, 3, H, W) normalised tensors or (N, H, W, 3) uint8.
        boxes: (N, R, 4) relative boxes (x0, y0, x1, y1), region 0 = the whole face.
        alphas: (N, R) region weights.
        region_names: R names (default ``region i``).
    """
    imgs = images if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[-1] == 3 else None
    if imgs is None:
        imgs = to_display(images)
    bx, al = _as_np(boxes, "boxes", 3), _as_np(alphas, "alphas", 2)
    n, r = al.shape
    if imgs.shape[0] != n or bx.shape[:2] != (n, r) or bx.shape[2] != 4:
        raise ValueError(f"images {imgs.shape}, boxes {bx.shape} and alphas {al.shape} do not describe the same faces")
    names = list(region_names) if region_names is not None else [f"region {i}" for i in range(r)]
    if len(names) != r:
        raise ValueError(f"{len(names)} region names for {r} regions")
    h, w = imgs.shape[1:3]
    px = bx * np.array([w, h, w, h], dtype=np.float32) - 0.5
    vmax = float(al.max()) if al.size and al.max() > 0 else 1.0
    return RegionPanels(images=imgs, boxes=px, alphas=al, region_names=names, vmax=vmax)


def region_weight_table(
    alphas: torch.Tensor | np.ndarray,
    region_names: Sequence[str],
    groups: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Mean (and std) weight of each region, per group of faces (e.g. clean vs occluded, or per occluder).

    Args:
        alphas: (N, R) region weights.
        region_names: R names.
        groups: group name -> (N,) boolean mask; default one group ``"all"``.

    Returns:
        One row per (group, region): ``group``, ``region``, ``n``, ``mean_alpha``, ``std_alpha``,
        ``top_share`` (fraction of the group's faces where this region has the largest weight).
    """
    al = _as_np(alphas, "alphas", 2)
    n, r = al.shape
    if len(region_names) != r:
        raise ValueError(f"{len(region_names)} region names for {r} regions")
    groups = dict(groups) if groups is not None else {"all": np.ones(n, dtype=bool)}
    top = al.argmax(axis=1)
    rows = []
    for g, mask in groups.items():
        m = np.asarray(mask, dtype=bool)
        if m.shape != (n,):
            raise ValueError(f"group {g!r}: mask of shape {m.shape}, expected ({n},)")
        k = int(m.sum())
        for i, name in enumerate(region_names):
            a = al[m, i]
            rows.append(
                {
                    "group": g,
                    "region": name,
                    "n": k,
                    "mean_alpha": float(a.mean()) if k else float("nan"),
                    "std_alpha": float(a.std()) if k else float("nan"),
                    "top_share": float((top[m] == i).mean()) if k else float("nan"),
                }
            )
    return pd.DataFrame(rows)


__all__ = ["RegionPanels", "region_weight_panels", "region_weight_table"]
