"""RAN region weights: figures of the boxes coloured by their attention, and per-region summary tables.

RAN (Wang et al., TIP 2020, Sec. III) weighs each region (region 0 = the whole face, then the crops) by a
self-attention ``alpha_i`` (paper Fig. 6 shows them on occluded and posed faces); the model returns them as
``out["alphas"]`` (B, R) with the boxes as ``out["boxes"]`` (B, R, 4) (relative x0, y0, x1, y1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from .explain import to_display


def _as_np(x: torch.Tensor | np.ndarray, name: str, ndim: int) -> np.ndarray:
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def region_weight_figure(
    images: torch.Tensor | np.ndarray,
    boxes: torch.Tensor | np.ndarray,
    alphas: torch.Tensor | np.ndarray,
    region_names: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
    colorscale: str = "Viridis",
    title: str = "RAN region weights",
    show_face: bool = False,
    side: int = 220,
) -> go.Figure:
    """One panel per face: the image with every crop's box drawn in the colour of its weight.

    Colours share one scale across all panels (0 .. the largest weight shown), so panels are comparable.
    Each box is labelled with its weight; the whole face (region 0) is listed in the panel title (its box is the
    image border) and drawn only when ``show_face``.

    Args:
        images: (N, 3, H, W) normalised tensors or (N, H, W, 3) uint8.
        boxes: (N, R, 4) relative boxes (x0, y0, x1, y1), region 0 = the whole face.
        alphas: (N, R) region weights.
        region_names: R names for the hover text (default ``region i``).
        titles: one per panel (e.g. "true happy / pred sad").
        colorscale: a plotly colour scale name.
        title: figure title.
        show_face: also draw the whole-face box.
        side: pixel side of one panel.
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
    vmax = float(al.max()) if al.size and al.max() > 0 else 1.0
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    heads = []
    for j in range(n):
        head = titles[j] if titles is not None and j < len(titles) else f"#{j}"
        heads.append(f"{head}<br>face a={al[j, 0]:.3f}")
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=heads, horizontal_spacing=0.02, vertical_spacing=0.08)
    first = 0 if show_face else 1
    for j in range(n):
        rr, cc = j // cols + 1, j % cols + 1
        h, w = imgs[j].shape[:2]
        fig.add_trace(go.Image(z=imgs[j], hoverinfo="skip"), row=rr, col=cc)
        order = sorted(range(first, r), key=lambda i: al[j, i])  # strongest drawn last (on top)
        for i in order:
            x0, y0, x1, y1 = bx[j, i] * np.array([w, h, w, h]) - np.array([0.5, 0.5, 0.5, 0.5])
            color = sample_colorscale(colorscale, [min(max(al[j, i] / vmax, 0.0), 1.0)])[0]
            fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=color, width=2.5), row=rr, col=cc)
            fig.add_trace(
                go.Scatter(
                    x=[x0 + 1],
                    y=[y0 + 1],
                    mode="text",
                    text=[f"{al[j, i]:.2f}"],
                    textposition="bottom right",
                    textfont=dict(color=color, size=10),
                    hovertext=[f"{names[i]}: alpha={al[j, i]:.4f}"],
                    hoverinfo="text",
                    showlegend=False,
                ),
                row=rr,
                col=cc,
            )
    # an invisible trace carries the shared colour bar
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            showlegend=False,
            hoverinfo="skip",
            marker=dict(
                colorscale=colorscale,
                cmin=0.0,
                cmax=vmax,
                color=[0.0],
                showscale=True,
                colorbar=dict(title="alpha", thickness=12),
            ),
        ),
        row=1,
        col=1,
    )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    fig.update_layout(
        title=title, width=side * cols + 120, height=side * rows + 90, margin=dict(l=10, r=10, t=90, b=10)
    )
    return fig


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


def region_weight_bars(table: pd.DataFrame, title: str = "Mean RAN region weight per group") -> go.Figure:
    """Grouped bars of :func:`region_weight_table` (x = region, one bar colour per group, error = std)."""
    fig = go.Figure()
    for g, sub in table.groupby("group", sort=False):
        fig.add_trace(
            go.Bar(
                x=sub["region"],
                y=sub["mean_alpha"],
                name=str(g),
                error_y=dict(type="data", array=sub["std_alpha"], visible=True),
            )
        )
    fig.update_layout(title=title, barmode="group", yaxis_title="mean alpha", width=760, height=420)
    return fig
