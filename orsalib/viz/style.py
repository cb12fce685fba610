"""One palette and one figure style for every figure of the workbook: the plot conventions live here.

- ``PARSING_COLORS`` / ``PARSING_NAMES``: the 11 LaPa classes (background, skin, brows, eyes, nose, lips, inner mouth,
  hair), used by every parsing overlay; defined once, beside the other label facts, in :mod:`orsalib.data.labels`.
- ``VARIANT_COLORS``: the colours of compared variants (with / without DARELoss, ORSANet / baseline ...).

Conventions (every figure function of :mod:`orsalib.viz` applies them; they also work on figures built elsewhere):

- accuracy is shown in % (:func:`to_percent`, :func:`percent_axis`);
- epochs are whole numbers on the axis (:func:`epoch_axis`), the best epoch is marked (:func:`mark_best`);
- chance (1 / number of classes) and majority-class lines on accuracy axes (:func:`reference_lines`);
- titles say model · dataset · split · profile (:func:`title`);
- error bars only with at least two seeds (:func:`error_bars`);
- a banner on figures of the ``smoke`` profile: its numbers are not meaningful (:func:`smoke_banner`);
- titles wrapped and left-aligned so the toolbar never hides them (:func:`finish`);
- landmark dots sized to the image they sit on (:func:`landmark_marker`, :func:`scale_landmarks`).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..data.labels import PARSING_COLORS, PARSING_NAMES

#: compared variants: the reference in grey, the variant under test in red.
VARIANT_COLORS: dict[str, str] = {"without": "#7f7f7f", "with": "#d62728"}

#: compared models (one colour each; a variant of a model is drawn paler).
MODEL_COLORS: tuple[str, ...] = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")

#: reference lines on accuracy axes.
CHANCE_COLOR = "#7f7f7f"
MAJORITY_COLOR = "#8c564b"
BEST_COLOR = "#2ca02c"

SMOKE_BANNER = "SMOKE RUN: tiny data and models, 1-2 epochs. Numbers not meaningful."
_REF_PREFIX = "orsa-ref-"


# ----------------------------------------------------------------------------- units
def is_fraction(values: Iterable[Any]) -> bool:
    """True when every finite value lies in [0, 1] (accuracies stored as fractions)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and float(np.abs(v).max()) <= 1.0


def to_percent(values: Iterable[Any], fraction: bool | None = None) -> list[float | None]:
    """Accuracy values in % (fractions are multiplied by 100; ``fraction=None`` decides from the values)."""
    vals = list(values)
    frac = is_fraction(vals) if fraction is None else fraction
    return [None if v is None else float(v) * (100.0 if frac else 1.0) for v in vals]


def pct_text(value: float | None, fraction: bool | None = None, digits: int = 1) -> str:
    """``0.8312 -> "83.1%"`` (a value above 1 is taken as already in %)."""
    if value is None or not np.isfinite(value):
        return "n/a"
    frac = (abs(value) <= 1.0) if fraction is None else fraction
    return f"{value * (100 if frac else 1):.{digits}f}%"


def is_accuracy_key(key: str) -> bool:
    """Metric names that are accuracies (``val_acc``, ``top1``, ``mean_class_acc``, ``OA``, ``AA`` ...)."""
    k = key.lower()
    return bool(re.search(r"(^|_)(acc|accuracy|top1|top5|oa|aa)($|_)", k)) or k.endswith("_acc")


# ----------------------------------------------------------------------------- titles
def title(
    what: str,
    model: str | None = None,
    dataset: str | None = None,
    split: str | None = None,
    profile: str | None = None,
    extra: str | None = None,
) -> str:
    """``"Accuracy per epoch<br><sup>orsanet_cpu · synthfer · valid · cpu profile</sup>"`` (empty parts dropped)."""
    parts = [p for p in (model, dataset, split) if p]
    if profile:
        parts.append(f"{profile} profile")
    if extra:
        parts.append(extra)
    return what + (f"<br><sup>{' · '.join(str(p) for p in parts)}</sup>" if parts else "")


def wrap_title(text: str, width_px: float, font_px: float = 17) -> str:
    """Wrap a title's first line to the figure width (plotly does not wrap; a long title runs under the toolbar)."""
    if not text:
        return text
    first, sep, rest = text.partition("<br>")
    if "<" in first:  # markup in the first line: leave it alone
        return text
    chars = max(24, int((width_px - 170) / (font_px * 0.55)))  # 170 px: the toolbar and the left offset
    wrapped = "<br>".join(textwrap.wrap(first, chars)) or first
    return wrapped + (sep + rest if sep else "")


def finish(fig: Any, profile: str | None = None) -> Any:
    """Apply the layout conventions to a figure in place (idempotent) and return it.

    The title is wrapped to the figure width and left-aligned, with room above the plot (a long centred title ran
    under the toolbar at the top right); on the ``smoke`` profile the banner is added.
    """
    lay = fig.layout
    text = lay.title.text if lay.title is not None else None
    if text:
        width = lay.width or 700
        new = wrap_title(text, width)
        lines = new.count("<br>") + 1
        fig.update_layout(title=dict(text=new, x=0.01, xanchor="left", y=None, yanchor="auto"))  # centred in the margin
        top = lay.margin.t if lay.margin.t is not None else 100
        need = 34 + 22 * lines
        if top < need:
            fig.update_layout(margin=dict(t=need))
    if profile == "smoke":
        smoke_banner(fig)
    return fig


def smoke_banner(fig: Any, text: str = SMOKE_BANNER) -> Any:
    """A red line under the title: the smoke profile's numbers are not meaningful (idempotent).

    Part of the title (not a floating annotation), so it never covers a subplot title or the data.
    """
    current = fig.layout.title.text if fig.layout.title is not None and fig.layout.title.text else ""
    if text in current:
        return fig
    line = f'<span style="color:#b00020;font-size:12px">{text}</span>'
    new = f"{current}<br>{line}" if current else line
    fig.update_layout(title_text=new)
    lines = new.count("<br>") + 1
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 100
    if top < 34 + 22 * lines:
        fig.update_layout(margin=dict(t=34 + 22 * lines))
    return fig


# ----------------------------------------------------------------------------- axes
def percent_axis(fig: Any, axis: str = "y", label: str = "accuracy (%)", full_range: bool = False, **where: Any) -> Any:
    """Label an accuracy axis in % (``full_range``: 0-100 fixed)."""
    kw: dict[str, Any] = dict(title_text=label, ticksuffix="")
    if full_range:
        kw["range"] = [0, 100]
    else:
        kw["rangemode"] = "tozero"
    (fig.update_yaxes if axis == "y" else fig.update_xaxes)(**kw, **where)
    return fig


def epoch_axis(fig: Any, epochs: Sequence[int], axis: str = "x", **where: Any) -> Any:
    """Whole-number epoch ticks (at most ~12 of them) titled "epoch"."""
    ep = [int(e) for e in epochs if e is not None]
    span = (max(ep) - min(ep)) if ep else 1
    dtick = next(d for d in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, math.inf) if d >= span / 12)
    dtick = dtick if math.isfinite(dtick) else max(1, math.ceil(span / 12))
    tick0 = min(ep) if ep and dtick == 1 else 0
    kw = dict(title_text="epoch", tickmode="linear", tick0=tick0, dtick=dtick, tickformat="d")
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**kw, **where)
    return fig


def mark_best(fig: Any, epoch: int | None, value: float | None = None, label: str = "best", unit: str = "%",
              color: str = BEST_COLOR) -> Any:  # fmt: skip
    """A dotted vertical line at the best epoch (and a star at its value when given)."""
    if epoch is None:
        return fig
    text = f"{label}: epoch {int(epoch)}" + (f", {value:.1f}{unit}" if value is not None else "")
    xs = [float(x) for tr in fig.data for x in (tr.x if tr.x is not None else ()) if isinstance(x, (int, float))]
    mid = (min(xs) + max(xs)) / 2 if xs else epoch
    side = "top right" if epoch <= mid else "top left"  # the label goes towards the middle of the plot
    fig.add_vline(x=epoch, line=dict(color=color, dash="dot", width=1.5), annotation_text=text,
                  annotation_position=side, annotation_font=dict(color=color, size=11),
                  annotation_bgcolor="rgba(255,255,255,0.75)")  # fmt: skip
    if value is not None:
        import plotly.graph_objects as go

        fig.add_trace(go.Scatter(x=[epoch], y=[value], mode="markers", name=label, showlegend=False,
                                 marker=dict(symbol="star", size=14, color=color, line=dict(width=1, color="white")),
                                 hovertext=[text], hoverinfo="text"))  # fmt: skip
    return fig


def reference_lines(fig: Any, chance: float | None = None, majority: float | None = None,
                    percent: bool = True, **where: Any) -> Any:  # fmt: skip
    """Dashed horizontal lines: chance (1 / classes) and the majority-class rate, labelled with their values.

    Args:
        chance: the chance rate as a fraction (e.g. ``1 / 7``); or a number of classes when > 1 and integral.
        majority: the majority-class share of the evaluated split, as a fraction.
        percent: the axis is in % (values are multiplied by 100).
    """
    lines = []
    c = None
    if chance is not None:
        c = 1.0 / chance if chance > 1 and float(chance).is_integer() else float(chance)
    if c is not None and majority is not None and abs(float(majority) - c) < 0.005:  # balanced classes: one line
        lines.append(("chance = majority class", c, CHANCE_COLOR, "dot"))
    else:
        if c is not None:
            lines.append(("chance", c, CHANCE_COLOR, "dot"))
        if majority is not None:
            lines.append(("majority class", float(majority), MAJORITY_COLOR, "dash"))
    names = {getattr(s, "name", None) for s in fig.layout.shapes or ()}
    for label, v, color, dash in lines:
        if f"{_REF_PREFIX}{label}" in names:
            continue
        y = 100 * v if percent else v
        fig.add_hline(y=y, name=f"{_REF_PREFIX}{label}", line=dict(color=color, dash=dash, width=1.2),
                      annotation_text=f"{label} {y:.1f}{'%' if percent else ''}", annotation_position="bottom right",
                      annotation_font=dict(color=color, size=10), annotation_bgcolor="rgba(255,255,255,0.75)",
                      **where)  # fmt: skip
    return fig


def error_bars(err: Sequence[float] | np.ndarray | None, n_seeds: int | None) -> dict | None:
    """``error_y`` for a trace: the spread over seeds, only when there are at least two seeds."""
    if err is None or n_seeds is None or n_seeds < 2:
        return None
    return dict(type="data", array=list(np.asarray(err, dtype=float)), visible=True)


def seeds_phrase(n_seeds: int) -> str:
    """``"mean ± std over 3 seeds"`` or ``"1 seed (no spread)"``."""
    return f"mean ± std over {n_seeds} seeds" if n_seeds >= 2 else "1 seed (no spread)"


# ----------------------------------------------------------------------------- landmarks on images
def landmark_marker(image_px: int, panel_px: float, color: str = "lime") -> dict:
    """Marker style of 68 landmarks on an image of ``image_px`` pixels shown ``panel_px`` screen pixels wide.

    The dot diameter follows the on-screen size of one image pixel (2-6 px): on a 64-px face in a 140-px panel a dot
    covers about one image pixel, so the mouth's 20 points stay apart.
    """
    per_px = panel_px / max(1, image_px)
    size = float(np.clip(0.9 * per_px, 2.0, 6.0))
    return dict(size=round(size, 1), color=color, opacity=0.9, line=dict(width=0))


def scale_landmarks(fig: Any) -> Any:
    """Resize marker dots drawn over image panels (any figure, e.g. from :mod:`orsalib.viz.priors`) in place."""
    import plotly.graph_objects as go

    panels: dict[tuple[str, str], int] = {}
    for tr in fig.data:
        if isinstance(tr, go.Image):
            z = tr.z
            side = None
            if z is not None:
                side = int(np.asarray(z).shape[1])
            elif tr.source:
                side = _data_uri_width(tr.source)
            if side:
                panels[(tr.xaxis or "x", tr.yaxis or "y")] = side
    if not panels:
        return fig
    width = fig.layout.width or 700
    margin = (fig.layout.margin.l or 80) + (fig.layout.margin.r or 80)
    for tr in fig.data:
        if not isinstance(tr, go.Scatter) or "markers" not in (tr.mode or "") or tr.x is None or len(tr.x) < 10:
            continue
        key = (tr.xaxis or "x", tr.yaxis or "y")
        if key not in panels:
            continue
        dom = fig.layout[("xaxis" + key[0][1:])].domain or (0, 1)
        panel_px = (width - margin) * (dom[1] - dom[0])
        m = landmark_marker(panels[key], panel_px)
        tr.marker.size = m["size"]
        tr.marker.line.width = 0
    return fig


def _data_uri_width(uri: str) -> int | None:
    import base64
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
            return int(im.width)
    except Exception:  # noqa: BLE001 - not an inline image
        return None


__all__ = [
    "BEST_COLOR",
    "CHANCE_COLOR",
    "MAJORITY_COLOR",
    "MODEL_COLORS",
    "PARSING_COLORS",
    "PARSING_NAMES",
    "SMOKE_BANNER",
    "VARIANT_COLORS",
    "epoch_axis",
    "error_bars",
    "finish",
    "is_accuracy_key",
    "is_fraction",
    "landmark_marker",
    "mark_best",
    "pct_text",
    "percent_axis",
    "reference_lines",
    "scale_landmarks",
    "seeds_phrase",
    "smoke_banner",
    "title",
    "to_percent",
    "wrap_title",
]
