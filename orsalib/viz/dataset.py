"""Data figures (plotly): sample grids with landmark/parsing overlays, class histograms, occluder statistics.

Every function returns a ``plotly.graph_objects.Figure``; images are embedded as PNG data URIs (small HTML).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..data.labels import EMOTIONS
from ..data.occlusion import occlude_image
from ..data.transforms import read_rgb
from .style import PARSING_COLORS, landmark_marker


def _data_uri(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def blend_parsing(image: np.ndarray, parsing: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Colour an (H, W, 3) uint8 image with an (h, w) parsing map (resized nearest to the image)."""
    h, w = image.shape[:2]
    if parsing.shape != (h, w):
        parsing = np.asarray(Image.fromarray(parsing.astype(np.uint8)).resize((w, h), Image.NEAREST))
    colours = PARSING_COLORS[np.clip(parsing, 0, len(PARSING_COLORS) - 1)]  # (H, W, 3)
    mask = (parsing > 0)[..., None]
    out = np.where(mask, (1 - alpha) * image + alpha * colours, image)
    return out.clip(0, 255).astype(np.uint8)


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    cols: int = 6,
    landmarks: Sequence[np.ndarray | None] | None = None,
    title: str = "",
    cell_px: int = 140,
) -> go.Figure:
    """A grid of RGB uint8 images, optionally with (68, 2) landmarks in [0, 1] drawn as dots.

    Dots are sized to the image (:func:`orsalib.viz.style.landmark_marker`): about one image pixel on screen, so the
    landmarks of a 64-px face do not swamp it.
    """
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=list(titles) if titles else None,
        horizontal_spacing=0.01,
        vertical_spacing=0.06 if titles else 0.01,
    )
    for k, img in enumerate(images):
        r, c = k // cols + 1, k % cols + 1
        fig.add_trace(go.Image(source=_data_uri(img)), row=r, col=c)
        lm = landmarks[k] if landmarks is not None else None
        if lm is not None:
            h, w = img.shape[:2]
            fig.add_trace(
                go.Scatter(
                    x=lm[:, 0] * w - 0.5,
                    y=lm[:, 1] * h - 0.5,
                    mode="markers",
                    marker=landmark_marker(max(h, w), cell_px),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=r,
                col=c,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(
        title=title, height=rows * cell_px + 60, width=cols * cell_px + 40, margin=dict(l=10, r=10, t=60, b=10)
    )
    return fig


def sample_grid(
    manifest: pd.DataFrame,
    n_per_class: int = 4,
    split: str = "train",
    oracle: Callable[[int], tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    seed: int = 0,
    parsing_overlay: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Random samples per class of one split; with ``oracle(row) -> (landmarks, parsing)`` the overlays are drawn.

    Args:
        manifest: the manifest (index = row id).
        n_per_class: images per class.
        split: which split to sample.
        oracle: returns the ground-truth (68, 2) landmarks and parsing map of a row (SynthFER), or Nones.
        seed: sampling seed.
        parsing_overlay: tint the image with the parsing classes when available.
        title: figure title (default: the split and what is drawn).
    """
    part = manifest[manifest["split"] == split]
    rng = np.random.default_rng(seed)
    images, titles, lms = [], [], []
    for lab in sorted(part["label"].unique()):
        rows = part.index[part["label"] == lab].to_numpy()
        for i in rng.choice(rows, size=min(n_per_class, len(rows)), replace=False):
            img = read_rgb(manifest.at[i, "path"])
            lm = None
            if oracle is not None:
                lm, par = oracle(int(i))
                if par is not None and parsing_overlay:
                    img = blend_parsing(img, par)
            occ = manifest.at[i, "occluder"] if "occluder" in manifest.columns else None
            tag = f" ({occ})" if isinstance(occ, str) and occ not in ("none", "") else ""
            images.append(img)
            titles.append(f"{EMOTIONS[int(lab)]}{tag}")
            lms.append(lm)
    if title is None:
        title = f"{split}: {n_per_class} samples per class" + (
            " with ground-truth landmarks and parsing" if oracle else "")  # fmt: skip
    return image_grid(images, titles, cols=n_per_class, landmarks=lms, title=title)


def class_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per (split, class) as a long table with the class name."""
    t = manifest.groupby(["split", "label"]).size().rename("images").reset_index()
    t["class"] = [EMOTIONS[int(k)] if 0 <= int(k) < len(EMOTIONS) else str(k) for k in t["label"]]
    return t[["split", "label", "class", "images"]]


def class_histogram(manifest: pd.DataFrame, title: str = "Images per class and split") -> go.Figure:
    """Grouped bars: images per class, one colour per split."""
    t = class_counts(manifest)
    fig = go.Figure()
    order = [EMOTIONS[k] for k in sorted(t["label"].unique()) if 0 <= k < len(EMOTIONS)]
    for split, g in t.groupby("split", sort=False):
        fig.add_trace(go.Bar(x=g["class"], y=g["images"], name=str(split), text=g["images"], textposition="outside"))
    fig.update_layout(
        barmode="group",
        title=title,
        xaxis=dict(categoryorder="array", categoryarray=order),
        yaxis_title="images",
        legend_title="split",
    )
    return fig


def occluder_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per (split, occluder) (empty table when the manifest has no ``occluder`` column)."""
    if "occluder" not in manifest.columns:
        return pd.DataFrame(columns=["split", "occluder", "images", "fraction"])
    t = manifest.groupby(["split", "occluder"]).size().rename("images").reset_index()
    t["fraction"] = t["images"] / t.groupby("split")["images"].transform("sum")
    return t


def occluder_histogram(manifest: pd.DataFrame, title: str = "Occluders per split") -> go.Figure:
    """Stacked bars of the occluder kinds per split."""
    t = occluder_counts(manifest)
    fig = go.Figure()
    for occ, g in t.groupby("occluder"):
        fig.add_trace(go.Bar(x=g["split"], y=g["images"], name=str(occ)))
    fig.update_layout(barmode="stack", title=title, yaxis_title="images", legend_title="occluder")
    return fig


def prior_overlay(
    image: np.ndarray, landmarks: np.ndarray | None, parsing: np.ndarray | None, title: str = ""
) -> go.Figure:
    """One image three ways: plain, with landmarks (ids on hover), with the parsing classes."""
    panels = [image, image, blend_parsing(image, parsing, alpha=0.6) if parsing is not None else image]
    fig = image_grid(
        panels,
        ["image", "68 landmarks", "parsing (11 classes)"],
        cols=3,
        landmarks=[None, landmarks, None],
        title=title,
        cell_px=260,
    )
    return fig


def occlusion_examples(
    manifest: pd.DataFrame,
    rows: Sequence[int],
    ratios: Sequence[float] = (0.1, 0.2, 0.3),
    semantic: Sequence[str] = ("hand", "sunglasses"),
    semantic_ratio: float = 0.2,
    seed: int = 0,
    title: str = "Artificial occlusion (paper Table 3 protocol)",
) -> tuple[go.Figure, pd.DataFrame]:
    """Artificial occlusion of a few manifest images: rectangles at ``ratios`` (paper Table 3) and semantic occluders.

    Returns:
        (a grid figure, one row per image: clean, rectangle@r for each ratio, each semantic kind;
        a table of the covered fraction actually obtained per example).
    """

    images, titles, recs = [], [], []
    settings = [("rectangle", r) for r in ratios] + [(k, semantic_ratio) for k in semantic]
    for i in rows:
        img = read_rgb(manifest.at[i, "path"])
        images.append(img)
        titles.append(f"#{i} {manifest.at[i, 'label_name']}")
        for kind, ratio in settings:
            out, mask = occlude_image(img, ratio, kind=kind, key=int(i), seed=seed)
            images.append(out)
            titles.append(f"{kind} {ratio:.0%}")
            recs.append({"row": int(i), "kind": kind, "ratio": ratio, "covered": float(mask.mean())})
    fig = image_grid(images, titles, cols=len(settings) + 1, title=title)
    return fig, pd.DataFrame(recs)
