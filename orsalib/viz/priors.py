"""Prior figures (notebooks 20 and 25): priors drawn on faces, their quality per occluder, the prior-noise study.

The numbers come from :mod:`orsalib.priors.quality` (NME, mIoU, per-class IoU, the paired occlusion effect) and
:mod:`orsalib.experiments.prior_noise`; this module only draws them. Parsing maps use the workbook's one LaPa palette
(:data:`orsalib.data.labels.PARSING_COLORS`); landmark dots are sized to the image they sit on
(:func:`orsalib.viz.style.scale_landmarks`).

- :func:`colorize_parsing`, :func:`overlay_figure` (images with parsing maps and one or two landmark sets),
  :func:`store_overlay` (manifest rows with a prior store's priors), :func:`prior_browser` (ipywidgets);
- :func:`quality_figure`: bars of one metric per occluder;
- :func:`occluder_quality_figure`: NME and mIoU per occluder, sources side by side, clean vs occluded faces with the
  95% CI of the paired occlusion effect as whiskers;
- :func:`class_iou_figure`: IoU per LaPa class and occluder (one heatmap per source);
- :func:`clean_occluded_grid`: the same faces clean and occluded, ground truth beside detected priors;
- :func:`real_face_figure`: a source's priors on real faces with MobileFaceNet-68's landmarks over them;
- :func:`prior_noise_figure`: ORSANet's accuracy against the quality of its priors, per level of the study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..data.labels import PARSING_COLORS
from .export import show as show_live
from .style import MODEL_COLORS, error_bars, landmark_marker, percent_axis, reference_lines, scale_landmarks

__all__ = [
    "METRIC_LABELS",
    "class_iou_figure",
    "clean_occluded_grid",
    "colorize_parsing",
    "occluder_quality_figure",
    "overlay_figure",
    "prior_browser",
    "prior_noise_figure",
    "quality_figure",
    "real_face_figure",
    "store_overlay",
]

METRIC_LABELS: dict[str, str] = {
    "nme": "NME (inter-ocular)", "nme_visible": "NME, visible landmarks", "nme_hidden": "NME, hidden landmarks",
    "miou": "mIoU (face classes 1-9)",
}  # fmt: skip
SPLIT_LABELS: dict[str, str] = {"valid": "clean", "valid_occluded": "occluded"}
LANDMARK_COLOR = "cyan"  # the priors' landmarks (no parsing class is cyan)
REFERENCE_COLOR = "yellow"  # a second set: the reference model's landmarks


def _source_colors(names: Sequence[str]) -> dict[str, str]:
    return {n: MODEL_COLORS[k % len(MODEL_COLORS)] for k, n in enumerate(names)}


# ----------------------------------------------------------------------------- priors on images
def colorize_parsing(parsing: np.ndarray) -> np.ndarray:
    """LaPa labels (H, W) -> RGB (H, W, 3) uint8 in the workbook's palette (labels outside 0-10 are clipped)."""
    return PARSING_COLORS[np.clip(np.asarray(parsing), 0, len(PARSING_COLORS) - 1)]


def _blend(img: np.ndarray, par: np.ndarray | None, alpha: float) -> np.ndarray:
    img = np.asarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if par is None:
        return img
    h, w = img.shape[:2]
    par = np.asarray(par)
    if par.shape != (h, w):
        par = np.asarray(Image.fromarray(par.astype(np.uint8)).resize((w, h), Image.NEAREST))
    shown = np.where((par > 0)[..., None], (1 - alpha) * img + alpha * colorize_parsing(par), img)
    return shown.clip(0, 255).astype(np.uint8)


def _landmark_trace(lm: np.ndarray, h: int, w: int, color: str, name: str, legend: bool, panel_px: float) -> go.Scatter:
    lm = np.asarray(lm, dtype=np.float64)
    return go.Scatter(
        x=lm[:, 0] * w - 0.5, y=lm[:, 1] * h - 0.5, mode="markers", name=name, legendgroup=name,
        showlegend=legend, marker=landmark_marker(max(h, w), panel_px, color=color),
        hovertext=[f"{name}: point {j}" for j in range(len(lm))], hoverinfo="text",
    )  # fmt: skip


def overlay_figure(
    images: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray | None] | None = None,
    parsings: Sequence[np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    alpha: float = 0.45,
    cols: int = 4,
    title: str = "Priors",
    reference_landmarks: Sequence[np.ndarray | None] | None = None,
    names: tuple[str, str] = ("priors", "reference"),
    panel_px: int = 230,
) -> go.Figure:
    """Images with their parsing map blended in (``alpha``) and landmarks as dots sized to the image.

    Args:
        images: uint8 RGB (H, W, 3) (or grey (H, W)) images.
        landmarks: per image (68, 2) in [0, 1] or None (drawn in cyan).
        parsings: per image (h, w) LaPa labels (resized to the image with nearest) or None.
        titles: subplot titles.
        alpha: opacity of the parsing colours.
        cols: subplots per row.
        title: figure title.
        reference_landmarks: a second landmark set per image (ground truth, another model; drawn in yellow). With it,
            the legend names the two sets ``names``.
        names: legend names of ``landmarks`` and ``reference_landmarks``.
        panel_px: the side of one panel on screen, in pixels.
    """
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    lines = max((str(t).count("<br>") + 1 for t in titles or () if t), default=0)
    title_px = 14 * lines + 6 if lines else 0  # room for the subplot titles above each row
    plot_h = rows * (panel_px + title_px)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.02, vertical_spacing=title_px / plot_h if rows > 1 else 0.0)  # fmt: skip
    fig.update_annotations(font=dict(size=11))
    legend = reference_landmarks is not None
    shown: set[str] = set()
    for k, img in enumerate(images):
        r, c = k // cols + 1, k % cols + 1
        z = _blend(img, parsings[k] if parsings is not None else None, alpha)
        h, w = z.shape[:2]
        fig.add_trace(go.Image(z=z, hoverinfo="skip"), row=r, col=c)
        sets = [(reference_landmarks, REFERENCE_COLOR, names[1]), (landmarks, LANDMARK_COLOR, names[0])]
        for lms, color, name in sets:
            lm = lms[k] if lms is not None else None
            if lm is None:
                continue
            fig.add_trace(_landmark_trace(lm, h, w, color, name, legend and name not in shown, panel_px), row=r, col=c)
            shown.add(name)
        fig.update_xaxes(visible=False, row=r, col=c)
        fig.update_yaxes(visible=False, row=r, col=c)
    top, bottom = 80 + title_px, 45 if legend else 10
    fig.update_layout(title=title, height=plot_h + top + bottom, width=panel_px * cols + 40, showlegend=legend,
                      margin=dict(l=10, r=10, t=top, b=bottom),
                      legend=dict(orientation="h", x=0, y=-0.01, yanchor="top"))  # fmt: skip
    return scale_landmarks(fig)


def store_overlay(
    manifest: pd.DataFrame, store: Any, rows: Sequence[int], image_size: int, title: str = "", flipped: bool = False
) -> go.Figure:
    """:func:`overlay_figure` of manifest rows with the priors of ``store`` (images resized to ``image_size``;
    ``flipped``: the mirrored images with the store's flipped priors)."""
    from ..priors.cache import load_resized

    m = manifest.reset_index(drop=True)
    imgs, lms, pars, titles = [], [], [], []
    for i in rows:
        pri = store.get(int(i), flipped=flipped) if store is not None and store.keys else {}
        img = load_resized(m.at[int(i), "path"], image_size)
        imgs.append(img[:, ::-1] if flipped else img)
        lms.append(pri.get("landmarks"))
        pars.append(pri.get("parsing"))
        occ = f" · {m.at[int(i), 'occluder']}" if "occluder" in m.columns else ""
        titles.append(f"{m.at[int(i), 'label_name']}{occ}")
    keys = list(getattr(store, "keys", ()) or ()) or ["none"]
    return overlay_figure(imgs, lms, pars, titles, title=title or "Priors (" + ", ".join(keys) + ")")


def prior_browser(manifest: pd.DataFrame, store: Any, image_size: int, per_page: int = 8) -> Any:
    """An ipywidgets browser of images + priors, filtered by class and occluder type (None without ipywidgets)."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None

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
        out.clear_output(wait=True)
        with out:
            if ids:
                show_live(store_overlay(manifest, store, ids, image_size, title=f"{len(sel)} matching images",
                                        flipped=w_flip.value))  # fmt: skip
            else:
                print("no image matches")

    for w in (w_cls, w_occ, w_flip):
        w.observe(show, names="value")
    # No eager render: drawing into an Output widget before any front end is attached blocked headless (papermill)
    # runs. The page fills on the first choice in JupyterLab; headless runs show the notebook's own figures.
    with out:
        print("choose a class or an occluder type to show matching images with their priors")
    return widgets.VBox([widgets.HBox([w_cls, w_occ, w_flip]), out])


# ----------------------------------------------------------------------------- quality per occluder
def quality_figure(summary: pd.DataFrame, metric: str = "miou", by: str = "occluder", title: str = "") -> go.Figure:
    """Bars of one metric per ``by`` value (one colour per ``series`` column value when present)."""
    fig = go.Figure()
    series = summary["series"].unique() if "series" in summary.columns else [None]
    for s in series:
        part = summary if s is None else summary[summary["series"] == s]
        fig.add_trace(go.Bar(x=part[by].astype(str), y=part[metric], name=str(s or metric),
                             text=[f"{v:.3f}" for v in part[metric]], textposition="outside"))  # fmt: skip
    label = METRIC_LABELS.get(metric, metric)
    fig.update_layout(title=title or f"{label} per {by}", yaxis_title=label, xaxis_title=by, barmode="group",
                      height=420)  # fmt: skip
    return fig


def _occluders(values: Any) -> list[str]:
    occ = sorted({str(v) for v in values} - {"all"})
    return occ + (["all"] if "all" in {str(v) for v in values} else [])


def occluder_quality_figure(
    quality: pd.DataFrame,
    effect: pd.DataFrame | None = None,
    metrics: Sequence[str] = ("nme", "miou"),
    sources: Sequence[str] | None = None,
    clean: str = "valid",
    occluded: str = "valid_occluded",
    title: str = "",
) -> go.Figure:
    """Grouped bars per occluder: each source's prior quality on the occluded faces and on the same faces clean.

    With ``effect`` (:func:`orsalib.priors.quality.occlusion_effect`): per source two bars per occluder, the clean
    faces (pale) and the occluded faces (full colour), the occluded bar with whiskers spanning the 95% bootstrap CI
    of the paired difference added to the clean mean: a whisker that misses the pale bar's top is a measurable
    occlusion effect. Without ``effect``: one bar per source and occluder of ``quality``'s ``occluded`` split.

    Args:
        quality: :func:`orsalib.priors.quality.occluder_quality` rows (``source``, ``split``, ``occluder``, metrics).
        effect: its occlusion effect (``source``, ``occluder``, ``metric``, ``clean``, ``occluded``, ``diff``,
            ``ci_low``, ``ci_high``, ``p``, ``n``), or None.
        metrics: one subplot each (``nme``, ``nme_visible``, ``nme_hidden``, ``miou``).
        sources: the sources drawn, in order (default: every source of ``quality``).
        clean, occluded: the two splits.
        title: the figure title.
    """
    sources = list(sources or dict.fromkeys(quality["source"]))
    metrics = [m for m in metrics if m in quality.columns]
    colors = _source_colors(sources)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[METRIC_LABELS.get(m, m) for m in metrics],
                        horizontal_spacing=0.1)  # fmt: skip
    occ_q = quality[quality["split"] == occluded]
    for c, metric in enumerate(metrics, start=1):
        for src in sources:
            if effect is not None and not effect.empty:
                e = effect[(effect["source"] == src) & (effect["metric"] == metric) & (effect["n"] > 0)]
                e = e.set_index(e["occluder"].astype(str)).reindex(_occluders(e["occluder"]))
                x = list(e.index)
                fig.add_trace(go.Bar(
                    x=x, y=e["clean"], name=f"{src}: clean faces", legendgroup=f"{src}-clean", showlegend=c == 1,
                    marker_color=colors[src], opacity=0.4, offsetgroup=f"{src}-clean",
                    hovertemplate="%{x}: %{y:.3f} (the same faces, clean)<extra>" + src + "</extra>",
                ), row=1, col=c)  # fmt: skip
                fig.add_trace(go.Bar(
                    x=x, y=e["occluded"], name=f"{src}: occluded", legendgroup=f"{src}-occluded", showlegend=c == 1,
                    marker_color=colors[src], offsetgroup=f"{src}-occluded",
                    error_y=dict(type="data", symmetric=False, array=list(e["ci_high"] - e["diff"]),
                                 arrayminus=list(e["diff"] - e["ci_low"]), visible=True),
                    customdata=np.stack([e["diff"], e["ci_low"], e["ci_high"], e["p"], e["n"]], axis=-1),
                    hovertemplate="%{x}: %{y:.3f}; occluded - clean %{customdata[0]:+.3f} [%{customdata[1]:+.3f}, "
                                  "%{customdata[2]:+.3f}], p=%{customdata[3]:.3g}, n=%{customdata[4]}<extra>"
                                  + src + "</extra>",
                ), row=1, col=c)  # fmt: skip
            else:
                q = occ_q[occ_q["source"] == src]
                q = q.set_index(q["occluder"].astype(str)).reindex(_occluders(q["occluder"]))
                fig.add_trace(go.Bar(x=list(q.index), y=q[metric], name=src, legendgroup=src, showlegend=c == 1,
                                     marker_color=colors[src], offsetgroup=src), row=1, col=c)  # fmt: skip
        fig.update_yaxes(title_text=METRIC_LABELS.get(metric, metric), rangemode="tozero", row=1, col=c)
        fig.update_xaxes(title_text="occluder", tickangle=-30, row=1, col=c)
    fig.update_layout(title=title or "Prior quality per occluder", barmode="group", height=480,
                      width=max(760, 520 * len(metrics) + 230), margin=dict(r=240, b=90))  # fmt: skip
    return fig


def class_iou_figure(
    quality: pd.DataFrame, sources: Sequence[str] | None = None, splits: Sequence[str] | None = None, title: str = ""
) -> go.Figure:
    """IoU per LaPa class (columns) and split · occluder (rows), one heatmap per source.

    Args:
        quality: :func:`orsalib.priors.quality.occluder_quality` rows with ``iou_<class>`` columns.
        sources: one panel each (default: every source of ``quality``).
        splits: the splits shown (default: all of ``quality``'s).
        title: the figure title.
    """
    sources = list(sources or dict.fromkeys(quality["source"]))
    cols = [c for c in quality.columns if c.startswith("iou_")]
    names = [c[4:].replace("_", " ") for c in cols]
    q = quality if splits is None else quality[quality["split"].isin(list(splits))]
    fig = make_subplots(rows=1, cols=len(sources), subplot_titles=sources, horizontal_spacing=0.08,
                        shared_yaxes=True)  # fmt: skip
    n_rows = 1
    for k, src in enumerate(sources, start=1):
        part = q[q["source"] == src]
        order = [(s, o) for s in dict.fromkeys(part["split"]) for o in _occluders(part[part["split"] == s]["occluder"])]
        part = part.set_index(["split", "occluder"]).reindex(order)
        z = part[cols].to_numpy(dtype=np.float64)
        ylab = [f"{SPLIT_LABELS.get(s, s)} · {o}" for s, o in order]
        text = [["" if not np.isfinite(v) else f"{v:.2f}" for v in row] for row in z]
        fig.add_trace(go.Heatmap(
            z=z, x=names, y=ylab, text=text, texttemplate="%{text}", zmin=0, zmax=1, colorscale="Blues",
            showscale=k == 1, colorbar=dict(title="IoU"), hovertemplate="%{y}, %{x}: IoU %{z:.3f}<extra>" + src
            + "</extra>",
        ), row=1, col=k)  # fmt: skip
        fig.update_xaxes(tickangle=-45, row=1, col=k)
        n_rows = max(n_rows, len(order))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title or "IoU per parsing class and occluder", height=260 + 34 * n_rows,
                      width=max(700, 560 * len(sources)), margin=dict(l=150, b=110))  # fmt: skip
    return fig


def clean_occluded_grid(
    manifest: pd.DataFrame,
    samples: pd.DataFrame,
    stores: Mapping[str, Any],
    image_size: int,
    pairs: Sequence[int],
    splits: Sequence[str] = ("valid", "valid_occluded"),
    title: str = "",
) -> go.Figure:
    """The same faces clean and occluded (rows), each with the priors of every store (columns per split).

    Args:
        manifest: the manifest ``samples`` was computed on (its row positions).
        samples: :func:`orsalib.priors.quality.sample_quality` rows (``row``, ``split``, ``pair``, and per source
            ``nme`` / ``miou`` for the panel titles).
        stores: ``{name: prior store}``, e.g. ``{"ground truth": oracle store, "synth-detected": its store}``;
            panels of a name that is a ``source`` of ``samples`` are titled with that sample's NME and mIoU.
        image_size: images are shown at this side (the model input).
        pairs: the ``pair`` ids shown (one row each).
        splits: the clean and the occluded split.
        title: the figure title.
    """
    from ..priors.cache import load_resized

    m = manifest.reset_index(drop=True)
    rows_of = samples.drop_duplicates(["split", "pair"]).set_index(["split", "pair"])["row"]
    scored = samples.set_index(["source", "row"])
    imgs, lms, pars, titles = [], [], [], []
    for p in pairs:
        for split in splits:
            i = int(rows_of.loc[(split, p)])
            img = load_resized(m.at[i, "path"], image_size)
            occ = str(m.at[i, "occluder"]) if "occluder" in m.columns else ""
            for name, store in stores.items():
                pri = store.get(i) if store is not None and store.keys else {}
                imgs.append(img)
                lms.append(pri.get("landmarks"))
                pars.append(pri.get("parsing"))
                where = SPLIT_LABELS.get(split, split) if occ in ("", "none") else occ
                if (name, i) in scored.index:
                    rec = scored.loc[(name, i)]
                    second = f"NME {rec.get('nme', np.nan):.3f} · mIoU {rec.get('miou', np.nan):.2f}"
                else:
                    second = str(m.at[i, "label_name"])
                titles.append(f"{where} · {name}<br>{second}")
    return overlay_figure(imgs, lms, pars, titles, cols=len(splits) * len(stores), panel_px=190,
                          title=title or "Priors on the same faces, clean and occluded")  # fmt: skip


def real_face_figure(
    images: Sequence[np.ndarray],
    reference_landmarks: np.ndarray,
    priors: Mapping[str, np.ndarray],
    titles: Sequence[str] | None = None,
    nme: Sequence[float] | None = None,
    source: str = "synth-detected",
    reference: str = "MobileFaceNet-68",
    title: str = "",
) -> go.Figure:
    """Real faces with a source's priors (parsing blended, landmarks in cyan) and a reference model's landmarks
    (yellow), e.g. the output of :func:`orsalib.priors.quality.real_face_comparison`; ``nme`` (their disagreement)
    goes into the panel titles."""
    n = len(images)
    heads = [str(t) for t in (titles or [""] * n)]
    if nme is not None:
        heads = [f"{h}<br>NME vs ref. {v:.3f}" if h else f"NME vs ref. {v:.3f}" for h, v in zip(heads, nme)]
    lms = priors.get("landmarks")
    pars = priors.get("parsing")
    return overlay_figure(
        list(images), None if lms is None else list(lms), None if pars is None else list(pars), heads,
        title=title or f"{source} priors on real faces beside {reference}",
        reference_landmarks=list(reference_landmarks), names=(source, reference), panel_px=200,
    )  # fmt: skip


# ----------------------------------------------------------------------------- the prior-noise study
def prior_noise_figure(
    summary: pd.DataFrame,
    splits: Sequence[str] = ("valid", "valid_occluded"),
    metrics: Sequence[str] = ("nme", "miou"),
    num_classes: int | None = None,
    title: str = "",
) -> go.Figure:
    """ORSANet's accuracy (%) against the quality of its priors, one point per level, one colour per split.

    Each split's accuracy is placed at the quality of that split's priors (``<split>_prior_<metric>``), one subplot
    per metric; error bars (std over seeds) only with at least two seeds.

    Args:
        summary: :func:`orsalib.experiments.prior_noise.summarise_prior_noise` rows (``level``, ``<split>_acc``,
            ``<split>_acc_std``, ``<split>_prior_nme`` / ``_miou``, ``seeds``).
        splits: the evaluation splits drawn.
        metrics: prior-quality axes, one subplot each.
        num_classes: draws the chance line when given.
        title: the figure title.
    """
    metrics = [m for m in metrics if any(f"{s}_prior_{m}" in summary.columns for s in splits)]
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), horizontal_spacing=0.08,
                        subplot_titles=[f"accuracy vs prior {METRIC_LABELS.get(m, m)}" for m in metrics])  # fmt: skip
    colors = {s: c for s, c in zip(splits, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd"))}
    seeds = int(summary["seeds"].min()) if "seeds" in summary.columns and len(summary) else 1
    top = 0.0
    for c, metric in enumerate(metrics, start=1):
        xs: list[float] = []
        for k, split in enumerate(splits):
            xcol, ycol = f"{split}_prior_{metric}", f"{split}_acc"
            if xcol not in summary.columns or ycol not in summary.columns:
                continue
            part = summary.sort_values(xcol)
            err = (part[f"{ycol}_std"] * 100).fillna(0).to_numpy() if f"{ycol}_std" in part.columns else None
            y = part[ycol].to_numpy(dtype=float) * 100
            top = max(top, float(np.nanmax(y + (err if err is not None and seeds >= 2 else 0))))
            xs += list(part[xcol].astype(float))
            fig.add_trace(go.Scatter(
                x=part[xcol], y=y, mode="markers+text", text=list(part["level"]),
                textposition="top center" if k % 2 == 0 else "bottom center", textfont=dict(size=10),
                name=SPLIT_LABELS.get(split, split), legendgroup=split, showlegend=c == 1,
                marker=dict(size=10, color=colors.get(split)), error_y=error_bars(err, seeds),
                hovertemplate="%{text}: prior " + metric + " %{x:.3f}, accuracy %{y:.1f}%<extra>" + split + "</extra>",
            ), row=1, col=c)  # fmt: skip
        label = METRIC_LABELS.get(metric, metric)
        lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
        pad = 0.12 * (hi - lo) if hi > lo else 0.05
        fig.update_xaxes(title_text=f"prior {label}" + ("  (worse →)" if metric.startswith("nme") else "  (← worse)"),
                         range=[lo - pad, hi + pad], row=1, col=c)  # fmt: skip
    percent_axis(fig)
    fig.update_yaxes(range=[0, min(100.0, top + 10)])  # one range on every panel, each with its tick labels
    if num_classes:
        reference_lines(fig, chance=num_classes, row="all", col="all")
    fig.update_layout(title=title or "Accuracy vs prior quality", height=460, width=max(700, 520 * len(metrics)),
                      legend=dict(orientation="h", y=-0.2), margin=dict(b=110))  # fmt: skip
    return fig
