"""Prior quality and prior figures (notebook 20): how good are the priors, per occluder type?

- :func:`landmark_nme`: normalised mean error of 68 landmarks (inter-ocular distance, outer eye corners 36/45,
  the 300-W convention).
- :func:`parsing_iou`: per-class IoU of two LaPa label maps; :func:`mean_iou` averages the face classes
  (skin .. lower lip, 1-9; background and hair excluded, hair cannot come from landmarks).
- :func:`prior_quality_table`: per-sample metrics of a prior store (or of landmark rasterisation applied to the
  ground-truth landmarks) against SynthFER's ground truth, with the occluder type of each sample;
  :func:`summarize_quality` gives the per-occluder means.
- Figures: :func:`overlay_figure` (images with parsing maps and landmarks), :func:`quality_figure`.
- :func:`prior_browser`: an ipywidgets browser by class and occluder type (None when ipywidgets is absent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageOps
from plotly.subplots import make_subplots

from .parsing import rasterize_parsing
from .sources import OracleSource

__all__ = [
    "LAPA_PALETTE",
    "cache_report",
    "colorize_parsing",
    "has_ground_truth",
    "landmark_nme",
    "mean_iou",
    "overlay_figure",
    "parsing_iou",
    "prior_browser",
    "prior_quality_table",
    "quality_figure",
    "real_face_landmarks",
    "sample_rows",
    "store_overlay",
    "summarize_quality",
]

FACE_CLASSES: tuple[int, ...] = tuple(range(1, 10))
LAPA_PALETTE: np.ndarray = np.array(
    [
        [0, 0, 0], [230, 180, 150], [0, 200, 0], [0, 110, 0], [40, 80, 255], [0, 20, 140],
        [255, 220, 0], [230, 30, 30], [140, 0, 140], [130, 0, 0], [110, 70, 30],
    ],
    dtype=np.uint8,
)  # fmt: skip


# ----------------------------------------------------------------------------- metrics
def landmark_nme(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-sample NME: mean point distance / inter-ocular distance (outer eye corners 36, 45). (B, 68, 2) -> (B,)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-2:] != (68, 2):
        raise ValueError(f"landmark_nme needs two (..., 68, 2) arrays of one shape, got {pred.shape} and {gt.shape}")
    iod = np.linalg.norm(gt[..., 36, :] - gt[..., 45, :], axis=-1)
    return np.linalg.norm(pred - gt, axis=-1).mean(-1) / np.maximum(iod, 1e-8)


def parsing_iou(pred: np.ndarray, gt: np.ndarray, num_classes: int = 11) -> np.ndarray:
    """Per-class IoU (num_classes,) of two label maps; NaN for a class absent from both."""
    pred, gt = np.asarray(pred).ravel(), np.asarray(gt).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"parsing_iou needs label maps of one size, got {pred.size} and {gt.size} pixels")
    inter = np.bincount(gt[pred == gt].astype(np.int64), minlength=num_classes)[:num_classes]
    area_p = np.bincount(pred.astype(np.int64), minlength=num_classes)[:num_classes]
    area_g = np.bincount(gt.astype(np.int64), minlength=num_classes)[:num_classes]
    union = area_p + area_g - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def mean_iou(pred: np.ndarray, gt: np.ndarray, classes: Sequence[int] = FACE_CLASSES) -> float:
    """Mean IoU over the face classes present in either map (NaN when none is)."""
    iou = parsing_iou(pred, gt)[list(classes)]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


# ----------------------------------------------------------------------------- quality tables
def prior_quality_table(
    manifest: pd.DataFrame,
    image_size: int,
    store: Any = None,
    rows: Sequence[int] | None = None,
    rasterize_gt: bool = False,
) -> pd.DataFrame:
    """Per-sample prior quality against SynthFER ground truth.

    Args:
        manifest: a SynthFER manifest (``landmarks_index``, ``parsing_path``, ``occluder``).
        image_size: side at which parsing maps are compared (the model input side).
        store: a prior store; its ``landmarks`` (NME) and ``parsing`` (mIoU) are scored when present.
        rows: manifest rows to score (default all).
        rasterize_gt: instead of a store, score :func:`~orsalib.priors.parsing.rasterize_parsing` applied to the
            ground-truth landmarks (the rasteriser's own error; occluded pixels are background in the ground truth,
            so occluders lower it).

    Returns:
        a DataFrame with ``row``, ``split``, ``occluder``, ``label_name`` and ``nme`` and/or ``miou`` columns.
    """
    oracle = OracleSource()
    manifest = manifest.reset_index(drop=True)
    ids = range(len(manifest)) if rows is None else rows
    keys = set(getattr(store, "keys", ()) or ())
    out = []
    for i in ids:
        row = manifest.iloc[int(i)]
        lm_gt, par_gt = oracle.read_row(row)
        if par_gt.shape != (image_size, image_size):
            par_gt = np.asarray(Image.fromarray(par_gt).resize((image_size, image_size), Image.NEAREST))
        rec: dict[str, Any] = {
            "row": int(i), "split": row.get("split", ""), "occluder": row.get("occluder", "none"),
            "label_name": row.get("label_name", ""),
        }  # fmt: skip
        if rasterize_gt:
            rec["miou"] = mean_iou(rasterize_parsing(lm_gt, image_size), par_gt)
        else:
            pri = store.get(int(i))
            if "landmarks" in keys:
                rec["nme"] = float(landmark_nme(np.asarray(pri["landmarks"]), lm_gt))
            if "parsing" in keys:
                rec["miou"] = mean_iou(np.asarray(pri["parsing"]), par_gt)
        out.append(rec)
    return pd.DataFrame(out)


def summarize_quality(df: pd.DataFrame, by: str = "occluder") -> pd.DataFrame:
    """Means (and counts) of the metric columns per ``by`` value, plus an ``all`` row."""
    metrics = [c for c in ("nme", "miou") if c in df.columns]
    g = df.groupby(by)[metrics].mean()
    g["n"] = df.groupby(by).size()
    total = pd.DataFrame({**{m: [df[m].mean()] for m in metrics}, "n": [len(df)]}, index=["all"])
    return pd.concat([g, total]).rename_axis(by).reset_index()


def has_ground_truth(manifest: pd.DataFrame) -> bool:
    """Whether the manifest carries SynthFER ground truth (``landmarks_index`` and ``parsing_path``)."""
    cols = ("landmarks_index", "parsing_path")
    return all(c in manifest.columns for c in cols) and bool(manifest[list(cols)].notna().all(axis=None))


def sample_rows(
    manifest: pd.DataFrame,
    by: str = "occluder",
    per_group: int = 1,
    limit: int = 8,
    seed: int = 0,
    splits: Sequence[str] | None = None,
) -> list[int]:
    """Row positions: ``per_group`` random rows per ``by`` value (or per class), at most ``limit`` in all."""
    m = manifest.reset_index(drop=True)
    if splits is not None:
        m = m[m["split"].isin(list(splits))]
    col = by if by in m.columns else "label_name"
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for _, g in m.groupby(col, sort=True):
        out += [int(i) for i in rng.choice(g.index.to_numpy(), size=min(per_group, len(g)), replace=False)]
    return out[:limit]


def cache_report(store: Any, build_seconds: float, reopen_seconds: float | None = None) -> pd.DataFrame:
    """One-row table: rows, unique samples computed/reused, keys, size on disk, build (and reopen) time."""
    s = getattr(store, "stats", {}) or {}
    rec = {
        "rows": len(store), "keys": " ".join(store.keys) or "-", "computed": s.get("computed", 0),
        "reused": s.get("reused", 0), "flipped_too": bool(getattr(store, "has_flip", False)),
        "size_mb": round(store.nbytes() / 1e6, 3), "build_s": round(build_seconds, 2),
        "path": str(store.path or ""),
    }  # fmt: skip
    if reopen_seconds is not None:
        rec["reopen_s"] = round(reopen_seconds, 3)
    return pd.DataFrame([rec])


# ----------------------------------------------------------------------------- figures
def store_overlay(
    manifest: pd.DataFrame, store: Any, rows: Sequence[int], image_size: int, title: str = ""
) -> go.Figure:
    """:func:`overlay_figure` of manifest rows with the priors of ``store`` (images resized to ``image_size``)."""
    from .cache import load_resized

    m = manifest.reset_index(drop=True)
    imgs, lms, pars, titles = [], [], [], []
    for i in rows:
        pri = store.get(int(i)) if store is not None and store.keys else {}
        imgs.append(load_resized(m.at[int(i), "path"], image_size))
        lms.append(pri.get("landmarks"))
        pars.append(pri.get("parsing"))
        titles.append(f"{m.at[int(i), 'label_name']} · {m.at[int(i), 'occluder']}" if "occluder" in m.columns
                      else str(m.at[int(i), "label_name"]))  # fmt: skip
    return overlay_figure(imgs, lms, pars, titles, title=title or "Priors (" + ", ".join(store.keys or ["none"]) + ")")


def colorize_parsing(parsing: np.ndarray) -> np.ndarray:
    """LaPa labels (H, W) -> RGB (H, W, 3) with :data:`LAPA_PALETTE`."""
    return LAPA_PALETTE[np.clip(np.asarray(parsing), 0, len(LAPA_PALETTE) - 1)]


def overlay_figure(
    images: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray | None] | None = None,
    parsings: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    alpha: float = 0.45,
    cols: int = 4,
    title: str = "Priors",
) -> go.Figure:
    """Images with their parsing map blended in (``alpha``) and landmarks as points.

    Args:
        images: uint8 RGB (H, W, 3) images.
        landmarks: per image (68, 2) in [0, 1] or None.
        parsings: per image (h, w) LaPa labels (resized to the image with nearest) or None.
        titles: subplot titles.
        alpha: opacity of the parsing colours.
        cols: subplots per row.
        title: figure title.
    """
    n = len(images)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles or [""] * n),
                        horizontal_spacing=0.02, vertical_spacing=0.06)  # fmt: skip
    for k, img in enumerate(images):
        r, c = k // cols + 1, k % cols + 1
        img = np.asarray(img, dtype=np.uint8)
        h, w = img.shape[:2]
        shown = img.astype(np.float64)
        par = parsings[k] if parsings is not None else None
        if par is not None:
            par = np.asarray(par)
            if par.shape != (h, w):
                par = np.asarray(Image.fromarray(par.astype(np.uint8)).resize((w, h), Image.NEAREST))
            col = colorize_parsing(par).astype(np.float64)
            m = (par > 0)[..., None]
            shown = np.where(m, (1 - alpha) * shown + alpha * col, shown)
        fig.add_trace(go.Image(z=shown.clip(0, 255).astype(np.uint8)), row=r, col=c)
        lm = landmarks[k] if landmarks is not None else None
        if lm is not None:
            lm = np.asarray(lm)
            fig.add_trace(
                go.Scatter(x=lm[:, 0] * w - 0.5, y=lm[:, 1] * h - 0.5, mode="markers", showlegend=False,
                           marker=dict(size=4, color="magenta", line=dict(width=0.5, color="white")),
                           hovertext=[f"point {j}" for j in range(len(lm))]),
                row=r, col=c,
            )  # fmt: skip
        fig.update_xaxes(visible=False, row=r, col=c)
        fig.update_yaxes(visible=False, row=r, col=c)
    fig.update_layout(title=title, height=230 * rows + 80, width=230 * cols + 40, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def quality_figure(summary: pd.DataFrame, metric: str = "miou", by: str = "occluder", title: str = "") -> go.Figure:
    """Bars of one metric per ``by`` value (one colour per ``series`` column value when present)."""
    fig = go.Figure()
    series = summary["series"].unique() if "series" in summary.columns else [None]
    for s in series:
        part = summary if s is None else summary[summary["series"] == s]
        fig.add_trace(go.Bar(x=part[by].astype(str), y=part[metric], name=str(s or metric),
                             text=[f"{v:.3f}" for v in part[metric]], textposition="outside"))  # fmt: skip
    label = {"miou": "mIoU (face classes 1-9)", "nme": "NME (inter-ocular)"}.get(metric, metric)
    fig.update_layout(title=title or f"{label} per {by}", yaxis_title=label, xaxis_title=by, barmode="group",
                      height=420)  # fmt: skip
    return fig


# ----------------------------------------------------------------------------- real faces
def real_face_landmarks(
    files: Sequence[str | Path], weights: str | Path, margin: int = 8, device: str = "cpu"
) -> tuple[list[np.ndarray], np.ndarray]:
    """MobileFaceNet-68 landmarks of real face crops (e.g. FER2013's 48x48), each padded by ``margin`` grey pixels.

    Tight crops (FER2013) lack the margin of a face-detector box the landmark model was trained on; a grey border
    of ``margin`` pixels restores it. Returns the padded RGB images (upsampled to 112) and landmarks (B, 68, 2) in
    [0, 1] of them.
    """
    from .landmarks import LandmarkPredictor, load_mobilefacenet

    ims = []
    for f in files:
        with Image.open(f) as im:
            im = (
                ImageOps.expand(im.convert("RGB"), border=margin, fill=(128, 128, 128)) if margin else im.convert("RGB")
            )
            ims.append(np.asarray(im.resize((112, 112), Image.BILINEAR)))
    pred = LandmarkPredictor(load_mobilefacenet(weights, device), device)
    lm, _ = pred.predict(np.stack(ims))
    return ims, lm


# ----------------------------------------------------------------------------- interactive browser
def prior_browser(manifest: pd.DataFrame, store: Any, image_size: int, per_page: int = 8) -> Any:
    """An ipywidgets browser of images + priors, filtered by class and occluder type (None without ipywidgets)."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    from .cache import load_resized

    manifest = manifest.reset_index(drop=True)
    classes = ["all"] + sorted(manifest["label_name"].astype(str).unique())
    occl = ["all"] + (sorted(manifest["occluder"].astype(str).unique()) if "occluder" in manifest.columns else [])
    w_cls = widgets.Dropdown(options=classes, description="class")
    w_occ = widgets.Dropdown(options=occl, description="occluder")
    w_flip = widgets.Checkbox(value=False, description="flipped priors")
    out = widgets.Output()

    def show(*_: Any) -> None:
        sel = manifest
        if w_cls.value != "all":
            sel = sel[sel["label_name"].astype(str) == w_cls.value]
        if w_occ.value != "all":
            sel = sel[sel["occluder"].astype(str) == w_occ.value]
        ids = list(sel.index[:per_page])
        imgs, lms, pars = [], [], []
        for i in ids:
            img = load_resized(manifest.at[i, "path"], image_size)
            pri = store.get(int(i), flipped=w_flip.value) if store is not None and store.keys else {}
            imgs.append(img[:, ::-1] if w_flip.value else img)
            lms.append(pri.get("landmarks"))
            pars.append(pri.get("parsing"))
        out.clear_output(wait=True)
        with out:
            if ids:
                titles = [f"{manifest.at[i, 'label_name']} / {manifest.get('occluder', pd.Series()).get(i, '')}"
                          for i in ids]  # fmt: skip
                overlay_figure(imgs, lms, pars, titles, title=f"{len(sel)} matching images").show()
            else:
                print("no image matches")

    for w in (w_cls, w_occ, w_flip):
        w.observe(show, names="value")
    # No eager render: drawing into an Output widget before any front end is attached blocked headless (papermill)
    # runs. The page fills on the first choice in JupyterLab; the static grid above covers headless runs.
    with out:
        print("choose a class or an occluder type to show matching images with their priors")
    return widgets.VBox([widgets.HBox([w_cls, w_occ, w_flip]), out])
