"""Figures of the evaluation and of looking inside a model: the data come from ``engine/`` and ``analysis/``.

- :func:`robustness_figure`: accuracy against the occlusion ratio (``engine.evaluate.robustness_curve``);
- :func:`overlay_figure`, :func:`explain_samples`: images with attention / Grad-CAM maps overlaid
  (``analysis.explain.explain_batch``);
- :func:`tsne_figure`: the t-SNE of final features (``analysis.explain.tsne_embedding``);
- :func:`region_weight_figure`, :func:`region_weight_bars`: RAN's region weights (``analysis.regions``);
- :func:`prediction_figure`: the overlay of ``orsa predict`` (``experiments.deploy.PredictionOverlay``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..analysis.explain import explain_batch, resize_map, to_display, tsne_embedding
from ..analysis.regions import region_weight_panels
from ..engine.evaluate import robustness_curve

__all__ = [
    "explain_samples",
    "overlay_figure",
    "prediction_figure",
    "readable_captions",
    "region_weight_bars",
    "region_weight_figure",
    "robustness_figure",
    "tsne_figure",
]


# ----------------------------------------------------------------------------- occlusion sweeps
def robustness_figure(
    long: pd.DataFrame, kind: str = "rectangle", title: str = "Accuracy vs occlusion ratio"
) -> go.Figure:
    """Plotly lines: accuracy (with bootstrap 95% CI bands) against the occlusion ratio, one line per model.

    ``long`` is the tidy table of ``orsalib.engine.evaluate.occlusion_sweep``; the points are
    ``orsalib.engine.evaluate.robustness_curve(long, kind)``.
    """
    sel = robustness_curve(long, kind)
    fig = go.Figure()
    for mname, g in sel.groupby("model", sort=False):
        fig.add_trace(go.Scatter(
            x=g["x"], y=100 * g["accuracy"], mode="lines+markers", name=str(mname),
            error_y=dict(type="data", symmetric=False, array=100 * (g["acc_high"] - g["accuracy"]),
                         arrayminus=100 * (g["accuracy"] - g["acc_low"])),
        ))  # fmt: skip
    fig.update_layout(title=title, xaxis_title=f"{kind} occlusion (% of the face)", yaxis_title="accuracy (%)",
                      width=640, height=440)  # fmt: skip
    return fig


# ----------------------------------------------------------------------------- maps over images
def overlay_figure(
    images: Any,
    maps: np.ndarray | Sequence[np.ndarray | None],
    titles: Sequence[str] | None = None,
    row_names: Sequence[str] | None = None,
    opacity: float = 0.45,
    colorscale: str = "Jet",
    title: str = "",
) -> go.Figure:
    """A grid: one column per sample; row 0 the image, then one row per map set overlaid on it.

    Args:
        images: (N, 3, H, W) normalised tensors (or (N, H, W, 3) uint8).
        maps: one (N, H, W) array in [0, 1] per overlay row (a single array = one row); None rows are skipped.
        titles: one per column (e.g. "true happy / pred sad").
        row_names: one per overlay row (e.g. "attention", "Grad-CAM").
    """
    imgs = images if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[-1] == 3 else None
    if imgs is None:
        imgs = to_display(images)
    n = imgs.shape[0]
    rows_maps = [maps] if isinstance(maps, np.ndarray) else list(maps)
    names = list(row_names) if row_names is not None else [f"map {i}" for i in range(len(rows_maps))]
    kept = [(nm, m) for nm, m in zip(names, rows_maps) if m is not None]
    for nm, m in kept:
        if m.shape[0] != n:
            raise ValueError(f"overlay row {nm!r} has {m.shape[0]} maps for {n} images")
    nrows = 1 + len(kept)
    col_titles = list(titles) if titles is not None else [f"#{i}" for i in range(n)]
    fig = make_subplots(
        rows=nrows,
        cols=n,
        subplot_titles=col_titles + [""] * (n * (nrows - 1)),
        horizontal_spacing=0.01,
        vertical_spacing=0.03,
    )
    for j in range(n):
        fig.add_trace(go.Image(z=imgs[j]), row=1, col=j + 1)
        for r, (nm, m) in enumerate(kept):
            fig.add_trace(go.Image(z=imgs[j]), row=r + 2, col=j + 1)
            fig.add_trace(
                go.Heatmap(
                    z=resize_map(m[j], imgs[j].shape[:2]),
                    colorscale=colorscale,
                    opacity=opacity,
                    showscale=False,
                    zmin=0,
                    zmax=1,
                    name=nm,
                    hoverinfo="skip",
                ),
                row=r + 2,
                col=j + 1,
            )
    for r, (nm, _m) in enumerate(kept):
        fig.update_yaxes(title_text=nm, row=r + 2, col=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    side = 150
    fig.update_layout(
        title=title, width=max(400, side * n), height=side * nrows + 80, margin=dict(l=40, r=10, t=60, b=10)
    )
    return fig


def explain_samples(
    model: Any,
    batch: Mapping[str, Any],
    class_names: Sequence[str],
    target_layer: Any = None,
    title: str = "",
    forward_logits: Callable[[Any, Mapping[str, Any]], Any] | None = None,
) -> go.Figure:
    """Image / attention / Grad-CAM grid of a batch, columns titled "true X / pred Y" (attention row if available).

    The maps and captions are ``orsalib.analysis.explain.explain_batch(model, batch, class_names, ...)``.
    """
    ex = explain_batch(model, batch, class_names, target_layer=target_layer, forward_logits=forward_logits)
    return overlay_figure(
        ex.images,
        [ex.attention, ex.grad_cam],
        titles=ex.titles,
        row_names=["attention", "Grad-CAM"],
        title=title or "true / predicted",
    )


def tsne_figure(
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    preds: np.ndarray | None = None,
    seed: int = 0,
    perplexity: float = 30.0,
    max_points: int = 2000,
    title: str = "t-SNE of final features",
    max_iter: int = 1000,
) -> go.Figure:
    """Scatter of the t-SNE embedding (``orsalib.analysis.explain.tsne_embedding``), one trace per true class;
    misclassified points drawn as crosses."""
    labels = np.asarray(labels)
    emb, rows = tsne_embedding(
        features, seed=seed, perplexity=perplexity, max_points=max_points, labels=labels, max_iter=max_iter
    )
    lab = labels[rows]
    wrong = (np.asarray(preds)[rows] != lab) if preds is not None else np.zeros(len(rows), dtype=bool)
    fig = go.Figure()
    for c in np.unique(lab):
        sel = lab == c
        name = class_names[int(c)] if class_names is not None and int(c) < len(class_names) else str(int(c))
        fig.add_trace(
            go.Scatter(
                x=emb[sel, 0],
                y=emb[sel, 1],
                mode="markers",
                name=name,
                marker=dict(size=6, symbol=np.where(wrong[sel], "x", "circle").tolist(), opacity=0.8),
            )
        )
    fig.update_layout(
        title=title + (" (x = misclassified)" if preds is not None else ""),
        width=700,
        height=560,
        xaxis_title="t-SNE 1",
        yaxis_title="t-SNE 2",
    )
    return fig


# ----------------------------------------------------------------------------- RAN region weights
def region_weight_figure(
    images: Any,
    boxes: Any,
    alphas: Any,
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
    p = region_weight_panels(images, boxes, alphas, region_names)
    al, names, vmax = p.alphas, p.region_names, p.vmax
    n, r = al.shape
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
        fig.add_trace(go.Image(z=p.images[j], hoverinfo="skip"), row=rr, col=cc)
        order = sorted(range(first, r), key=lambda i: al[j, i])  # strongest drawn last (on top)
        for i in order:
            x0, y0, x1, y1 = (float(v) for v in p.boxes[j, i])
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


def region_weight_bars(table: pd.DataFrame, title: str = "Mean RAN region weight per group") -> go.Figure:
    """Grouped bars of ``orsalib.analysis.regions.region_weight_table`` (x = region, one colour per group,
    error = std)."""
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


# ----------------------------------------------------------------------------- orsa predict
def readable_captions(fig: go.Figure, font_size: int = 11) -> go.Figure:
    """Room above the first row for two-line captions (and the figure's title above them): the captions sit in the
    top margin, clear of the faces."""
    fig.update_annotations(font_size=font_size, yshift=2)
    top = 70 + 2 * (font_size + 4)
    fig.update_layout(margin={**fig.layout.margin.to_plotly_json(), "t": top}, height=(fig.layout.height or 0) + 30,
                      title={"y": 0.99, "yanchor": "top"})  # fmt: skip
    return fig


def prediction_figure(overlay: Any) -> go.Figure:
    """The figure of ``orsa predict``: the scored faces (``orsalib.experiments.deploy.PredictionOverlay``), the
    model's attention under them where it has one, each caption the predicted class and its probability."""
    rows = [overlay.attention] if overlay.attention is not None else []
    title = "Predictions (landmark-query attention over the image, where the model has it)"
    fig = overlay_figure(overlay.images, rows, titles=overlay.titles, row_names=["attention"][: len(rows)], title=title)
    return readable_captions(fig)
