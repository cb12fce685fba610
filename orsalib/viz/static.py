"""A static PNG of a plotly figure, drawn with matplotlib: the copy that travels (nbconvert HTML, GitHub, files).

Plotly's own static export needs kaleido and a Chrome binary; this renderer needs neither. It draws the trace types
the workbook's figures use — bar (grouped, stacked, error bars, text), scatter (lines, markers, text, error bars,
per-point symbols and colours), heatmap (colour scale, cell text), box, image (``z`` arrays or PNG data URIs), simple
histograms — on the subplot grid of ``make_subplots`` (axis domains), with the layout's title, axis titles, ranges,
reversed axes, tick settings, shapes (``add_hline``/``add_vline``/rectangles), annotations (subplot titles, banners),
layout images, legends and colour bars. Anything else is drawn as a clear placeholder ("interactive figure: open in
JupyterLab"); rendering never raises.

- :func:`render_png`: PNG bytes of a ``go.Figure`` (or its dict);
- :func:`figure_bundle`: the mime bundle with BOTH ``application/vnd.plotly.v1+json`` (JupyterLab draws it
  interactively) and ``image/png`` (nbconvert HTML and GitHub show it);
- :class:`FigureDisplay` and :func:`show`: display figures through that bundle;
- :func:`register_renderer`: a plotly renderer ``"orsa"`` (the same bundle) for ``fig.show()`` / a bare ``fig``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import textwrap
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLACEHOLDER_NOTE = "interactive figure: open in JupyterLab"
DEFAULT_SCALE = 1.5  # pixel density of the PNG relative to the figure's plotly size

_PX_TO_PT = 0.72  # matplotlib draws at 100 dpi here: 1 plotly pixel = 0.72 pt
_DASHES = {"solid": "-", "dot": ":", "dash": "--", "dashdot": "-.", "longdash": (0, (10, 3)),
           "longdashdot": (0, (10, 3, 2, 3))}  # fmt: skip
_SYMBOLS = {"circle": "o", "square": "s", "diamond": "D", "cross": "P", "x": "X", "triangle-up": "^",
            "triangle-down": "v", "triangle-left": "<", "triangle-right": ">", "star": "*", "pentagon": "p",
            "hexagon": "h", "hexagram": "*", "line-ns": "|", "line-ew": "_", "asterisk": "*"}  # fmt: skip


# ----------------------------------------------------------------------------- small readers of the figure dict
def _arr(v: Any) -> np.ndarray | None:
    """A trace array (list, ndarray, pandas, or plotly's base64 typed array ``{"dtype", "bdata", "shape"}``)."""
    if v is None:
        return None
    if isinstance(v, Mapping) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v.get("dtype", "f8")))
        shape = v.get("shape")
        if shape:
            dims = [int(s) for s in str(shape).split(",")] if not isinstance(shape, (list, tuple)) else list(shape)
            a = a.reshape(dims)
        return a
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "to_numpy"):
        return v.to_numpy()
    if isinstance(v, (list, tuple)):
        if any(isinstance(x, Mapping) and "bdata" in x for x in v):  # rows of typed arrays (heatmap z)
            return np.array([_arr(x) for x in v])
        try:
            return np.array(v)
        except ValueError:  # ragged
            return np.array(v, dtype=object)
    return np.array([v], dtype=object)


def _floats(v: Any) -> np.ndarray:
    """Numbers as float64 (None and non-numbers -> NaN)."""
    a = _arr(v)
    if a is None:
        return np.array([], dtype=float)
    if a.dtype.kind in "biuf":
        return a.astype(float)
    out = np.full(a.shape, np.nan)
    for i, x in np.ndenumerate(a):
        try:
            out[i] = float(x) if x is not None else np.nan
        except (TypeError, ValueError):
            pass
    return out


def _is_numeric(v: np.ndarray | None) -> bool:
    if v is None or len(v) == 0:
        return True
    if v.dtype.kind in "biuf":
        return True
    return all(x is None or isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
               for x in v.ravel())  # fmt: skip


def _get(d: Mapping | None, path: str, default: Any = None) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur or cur[part] is None:
            return default
        cur = cur[part]
    return cur


def _text_of(v: Any) -> str:
    """A title/annotation text (a string or ``{"text": ...}``) without HTML tags; numbers without a spurious ".0"."""
    if isinstance(v, Mapping):
        v = v.get("text")
    if v is None:
        return ""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        f = float(v)
        return "" if not np.isfinite(f) else f"{int(f)}" if f.is_integer() else f"{f:.4g}"
    s = re.sub(r"<br\s*/?>", "\n", str(v), flags=re.I)
    s = re.sub(r"<[^>]+>", "", s)
    return html.unescape(s)


def _color(c: Any, default: Any = "#444444", alpha: float | None = None) -> Any:
    """A plotly colour (hex, CSS name, ``rgb()``/``rgba()``) as a matplotlib RGBA tuple."""
    from matplotlib.colors import to_rgba

    if c is None:
        c = default
    if isinstance(c, (tuple, list)) and len(c) in (3, 4) and all(isinstance(x, (int, float)) for x in c):
        rgba = tuple(float(x) for x in c) + ((1.0,) if len(c) == 3 else ())
        rgba = tuple(x / 255 if max(rgba[:3]) > 1 else x for x in rgba[:3]) + (rgba[3],)
    else:
        s = str(c).strip()
        m = re.fullmatch(r"rgba?\(([^)]*)\)", s.replace(" ", ""))
        try:
            if m:
                parts = [float(p) for p in m.group(1).split(",")]
                rgba = (parts[0] / 255, parts[1] / 255, parts[2] / 255, parts[3] if len(parts) > 3 else 1.0)
            else:
                rgba = to_rgba(s)
        except ValueError:
            rgba = to_rgba(default) if default is not None else (0.27, 0.27, 0.27, 1.0)
    if alpha is not None:
        rgba = (*rgba[:3], rgba[3] * alpha)
    return rgba


def _colormap(scale: Any, template: Mapping, reverse: bool = False):
    """A plotly colour scale (a name or ``[[pos, colour], ...]``) as a matplotlib colormap."""
    from matplotlib.colors import LinearSegmentedColormap
    from plotly.colors import get_colorscale

    if scale is None:
        scale = _get(template, "colorscale.sequential") or "Plasma"
    if isinstance(scale, str):
        name = scale
        rev = name.endswith("_r")
        try:
            scale = get_colorscale(name[:-2] if rev else name)
        except Exception:  # noqa: BLE001 - an unknown name falls back to the template's scale
            scale = _get(template, "colorscale.sequential") or get_colorscale("Plasma")
        reverse = reverse != rev
    stops = [(float(p), _color(c)) for p, c in scale]
    if reverse:
        stops = [(1 - p, c) for p, c in reversed(stops)]
    return LinearSegmentedColormap.from_list("plotly", stops)


def _decode_image(source: str) -> np.ndarray | None:
    """An ``data:image/...;base64,`` URI as an RGB(A) array (None for URLs: nothing is fetched)."""
    from PIL import Image

    if not isinstance(source, str) or not source.startswith("data:image"):
        return None
    try:
        raw = base64.b64decode(source.split(",", 1)[1])
        with Image.open(io.BytesIO(raw)) as im:
            return np.asarray(im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB"))
    except Exception:  # noqa: BLE001 - an unreadable image is skipped, never fatal
        return None


def _fmt(value: Any, spec: str | None) -> str:
    if spec:
        try:
            return format(float(value), spec.lstrip(":").replace(",", "") if "%" not in spec else spec.lstrip(":"))
        except (TypeError, ValueError):
            pass
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _template_text(template: str, values: Mapping[str, Any]) -> str:
    """Fill a plotly ``texttemplate`` (``%{text}``, ``%{y:.1f}``) from per-point values."""

    def sub(m: re.Match) -> str:
        key, spec = m.group(1), m.group(2)
        return _fmt(values.get(key, ""), spec) if key in values else ""

    return _text_of(re.sub(r"%\{(\w+)(:[^}]*)?\}", sub, template))


# ----------------------------------------------------------------------------- the renderer
class _Axes:
    """One matplotlib axes for one (xaxis, yaxis) pair, with the categories and flags its traces set."""

    def __init__(self, ax, xname: str, yname: str):
        self.ax, self.xname, self.yname = ax, xname, yname
        self.cats: dict[str, list] = {"x": [], "y": []}
        self.has_image = False
        self.bar_slots: list[str] = []
        self.stack_pos: dict[float, float] = {}
        self.stack_neg: dict[float, float] = {}
        self.image_extent: list[float] | None = None

    def positions(self, axis: str, values: np.ndarray, categorical: bool) -> np.ndarray:
        if not categorical:
            return _floats(values)
        cats = self.cats[axis]
        out = []
        for v in values.ravel():
            key = str(v)
            if key not in cats:
                cats.append(key)
            out.append(cats.index(key))
        return np.asarray(out, dtype=float)

    def add_extent(self, x0: float, x1: float, y0: float, y1: float) -> None:
        e = self.image_extent
        self.image_extent = [x0, x1, y0, y1] if e is None else [min(e[0], x0), max(e[1], x1), min(e[2], y0),
                                                                 max(e[3], y1)]  # fmt: skip


class _Renderer:
    def __init__(self, fig_dict: Mapping[str, Any], scale: float):
        from matplotlib.figure import Figure

        self.data = list(fig_dict.get("data") or [])
        self.layout = dict(fig_dict.get("layout") or {})
        self.template = _get(self.layout, "template.layout") or {}
        self.scale = scale
        self.W = float(self.layout.get("width") or 700)
        self.H = float(self.layout.get("height") or 450)
        margin = {"l": 80, "r": 80, "t": 100, "b": 80}
        margin.update({k: v for k, v in (_get(self.template, "margin") or {}).items() if k in margin and v is not None})
        margin.update({k: v for k, v in (self.layout.get("margin") or {}).items() if k in margin and v is not None})
        self.margin = margin
        self.fig = Figure(figsize=(self.W / 100, self.H / 100), dpi=100)
        self.fig.patch.set_facecolor(_color(self.layout.get("paper_bgcolor") or self.template.get("paper_bgcolor"),
                                            "white"))  # fmt: skip
        self.font_color = _color(_get(self.layout, "font.color") or _get(self.template, "font.color"), "#2a3f5f")
        self.font_px = float(_get(self.layout, "font.size") or _get(self.template, "font.size") or 12)
        self.colorway = list(self.layout.get("colorway") or self.template.get("colorway") or ["#636efa", "#EF553B",
                             "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52"])
        self.axes: dict[tuple[str, str], _Axes] = {}
        self.legend: OrderedDict[str, Any] = OrderedDict()
        self.colorbar: tuple[Any, Any, str] | None = None
        self.placeholders: list[str] = []

    # -- geometry
    def _plot_area(self) -> tuple[float, float, float, float]:
        m = self.margin
        left, bottom = m["l"] / self.W, m["b"] / self.H
        return left, bottom, max(0.05, 1 - (m["l"] + m["r"]) / self.W), max(0.05, 1 - (m["t"] + m["b"]) / self.H)

    def _axis_layout(self, name: str) -> dict:
        """``x`` -> layout.xaxis, ``x3`` -> layout.xaxis3 (with the template's axis defaults under it)."""
        key = name[0] + "axis" + name[1:]
        base = dict(self.template.get(name[0] + "axis") or {})
        base.update(self.layout.get(key) or {})
        return base

    def _get_axes(self, xname: str, yname: str) -> _Axes:
        key = (xname, yname)
        if key not in self.axes:
            left, bottom, pw, ph = self._plot_area()
            dx = self._axis_layout(xname).get("domain") or [0, 1]
            dy = self._axis_layout(yname).get("domain") or [0, 1]
            rect = [left + dx[0] * pw, bottom + dy[0] * ph, (dx[1] - dx[0]) * pw, (dy[1] - dy[0]) * ph]
            ax = self.fig.add_axes(rect)
            bg = self.layout.get("plot_bgcolor") or self.template.get("plot_bgcolor") or "white"
            ax.set_facecolor(_color(bg, "white"))
            for sp in ax.spines.values():
                sp.set_visible(False)
            ax.tick_params(colors=self.font_color, labelsize=self._pt(self.font_px), length=0)
            a = _Axes(ax, xname, yname)
            for axis, name in (("x", xname), ("y", yname)):  # an explicit category order is taken up front
                lay = self._axis_layout(name)
                if lay.get("categoryorder") == "array" and lay.get("categoryarray") is not None:
                    a.cats[axis] = [str(c) for c in _arr(lay["categoryarray"])]
            self.axes[key] = a
        return self.axes[key]

    def _pt(self, px: float) -> float:
        return float(px) * _PX_TO_PT

    def _trace_color(self, i: int, trace: Mapping) -> Any:
        c = _get(trace, "marker.color")
        if isinstance(c, str):
            return c
        c = _get(trace, "line.color")
        if isinstance(c, str):
            return c
        return self.colorway[i % len(self.colorway)]

    def _categorical(self, axname: str, values: np.ndarray | None) -> bool:
        t = self._axis_layout(axname).get("type")
        if t == "category":
            return True
        if t in ("linear", "log", "date"):
            return False
        return not _is_numeric(values)

    def _add_legend(self, trace: Mapping, handle: Any, label: str | None) -> None:
        if trace.get("showlegend") is False or not label:
            return
        self.legend.setdefault(label, handle)

    # -- traces
    def draw(self) -> None:
        barmode = self.layout.get("barmode") or "group"
        for tr in self.data:  # count bar slots per axes first (grouped bars share the category width)
            if tr.get("type") == "bar":
                a = self._get_axes(tr.get("xaxis") or "x", tr.get("yaxis") or "y")
                slot = str(tr.get("offsetgroup") or f"trace{id(tr)}")
                if slot not in a.bar_slots:
                    a.bar_slots.append(slot)
        for i, tr in enumerate(self.data):
            kind = tr.get("type") or "scatter"
            if tr.get("visible") is False:
                continue
            a = self._get_axes(tr.get("xaxis") or "x", tr.get("yaxis") or "y")
            fn = getattr(self, f"_draw_{kind}", None)
            if fn is None:
                self.placeholders.append(kind)
                continue
            try:
                fn(a, tr, i, barmode) if kind == "bar" else fn(a, tr, i)
            except Exception as e:  # noqa: BLE001 - one odd trace must not cost the whole picture
                self.placeholders.append(f"{kind} ({type(e).__name__})")
        self._shapes()
        self._layout_images()
        self._finish_axes()
        self._annotations()
        self._title()
        self._legend_and_colorbar()
        if self.placeholders:
            kinds = ", ".join(sorted(set(self.placeholders)))
            self.fig.text(0.5, 0.5, f"[{kinds} not drawn here]\n{PLACEHOLDER_NOTE}", ha="center", va="center",
                          fontsize=self._pt(13), color="#7f7f7f",
                          bbox=dict(boxstyle="round", fc="white", ec="#bbbbbb", alpha=0.9))  # fmt: skip

    def _xy(self, a: _Axes, tr: Mapping) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        y = _arr(tr.get("y"))
        x = _arr(tr.get("x"))
        if x is None and y is not None:
            x0, dx = float(tr.get("x0") or 0), float(tr.get("dx") or 1)
            x = x0 + dx * np.arange(len(y))
        if y is None and x is not None:
            y0, dy = float(tr.get("y0") or 0), float(tr.get("dy") or 1)
            y = y0 + dy * np.arange(len(x))
        x = x if x is not None else np.array([])
        y = y if y is not None else np.array([])
        cx, cy = self._categorical(a.xname, x), self._categorical(a.yname, y)
        return a.positions("x", x, cx), a.positions("y", y, cy), cx, cy

    @staticmethod
    def _errors(err: Mapping | None, values: np.ndarray) -> Any:
        if not err or err.get("visible") is False:
            return None
        etype = err.get("type") or "data"
        if etype == "percent":
            plus = np.abs(values) * float(err.get("value") or 0) / 100
            minus = np.abs(values) * float(err.get("valueminus", err.get("value")) or 0) / 100
        elif etype == "constant":
            plus = np.full(len(values), float(err.get("value") or 0))
            minus = np.full(len(values), float(err.get("valueminus", err.get("value")) or 0))
        else:
            if err.get("array") is None:
                return None
            plus = _floats(err.get("array"))
            has_minus = err.get("arrayminus") is not None and err.get("symmetric") is not True
            minus = _floats(err.get("arrayminus")) if has_minus else plus
        n = len(values)
        plus, minus = np.resize(np.nan_to_num(plus), n), np.resize(np.nan_to_num(minus), n)
        return np.vstack([minus, plus])

    def _draw_bar(self, a: _Axes, tr: Mapping, i: int, barmode: str) -> None:
        horizontal = tr.get("orientation") == "h"
        px, py, cx, cy = self._xy(a, tr)
        pos, val = (py, px) if horizontal else (px, py)
        categorical = cy if horizontal else cx
        n_slots = max(1, len(a.bar_slots)) if barmode == "group" else 1
        gap = float(self.layout.get("bargap") if self.layout.get("bargap") is not None else 0.2)
        if categorical or len(pos) < 2:
            unit = 1.0
        else:
            d = np.diff(np.unique(pos[np.isfinite(pos)]))
            unit = float(d.min()) if len(d) else 1.0
        group_w = unit * (1 - gap)
        w = float(tr["width"]) if isinstance(tr.get("width"), (int, float)) else group_w / n_slots
        slot = str(tr.get("offsetgroup") or f"trace{id(tr)}")
        k = a.bar_slots.index(slot) if barmode == "group" and slot in a.bar_slots else 0
        centers = pos - group_w / 2 + w * (k + 0.5) if barmode == "group" else pos
        color = tr.get("marker", {}).get("color") if isinstance(tr.get("marker"), Mapping) else None
        colors = [_color(c) for c in _arr(color)] if color is not None and not isinstance(color, str) else None
        base_color = _color(self._trace_color(i, tr), alpha=float(tr.get("opacity") or 1.0))
        if colors is not None:
            colors = [(*c[:3], c[3] * float(tr.get("opacity") or 1.0)) for c in colors]
        vals = np.nan_to_num(val)
        bottoms = np.zeros(len(vals))
        if barmode in ("stack", "relative"):
            for j, (p, v) in enumerate(zip(centers, vals)):
                store = a.stack_pos if v >= 0 else a.stack_neg
                bottoms[j] = store.get(round(float(p), 9), 0.0)
                store[round(float(p), 9)] = bottoms[j] + v
        err = self._errors(tr.get("error_x" if horizontal else "error_y"), vals)
        kw = dict(color=colors if colors is not None else base_color, edgecolor="white", linewidth=0.4)
        errkw = dict(ecolor=self.font_color, capsize=3 * self.scale, elinewidth=1)
        if horizontal:
            bars = a.ax.barh(centers, vals, height=w, left=bottoms, xerr=err, error_kw=errkw, **kw)
        else:
            bars = a.ax.bar(centers, vals, width=w, bottom=bottoms, yerr=err, error_kw=errkw, **kw)
        self._add_legend(tr, bars.patches[0] if bars.patches else bars, tr.get("name") or f"trace {i}")
        texts = _arr(tr.get("text"))
        if texts is not None and tr.get("textposition") != "none":
            for j, (c, v, b) in enumerate(zip(centers, vals, bottoms)):
                t = _text_of(texts[j] if len(texts) > 1 else texts[0])
                if not t:
                    continue
                top = b + v
                if horizontal:
                    a.ax.annotate(t, (top, c), xytext=(3, 0), textcoords="offset points", va="center",
                                  fontsize=self._pt(self.font_px * 0.85), color=self.font_color)  # fmt: skip
                else:
                    a.ax.annotate(t, (c, top), xytext=(0, 2), textcoords="offset points", ha="center",
                                  va="bottom" if v >= 0 else "top", fontsize=self._pt(self.font_px * 0.85),
                                  color=self.font_color)  # fmt: skip
        if categorical:
            a.ax.margins(x=0.02) if not horizontal else a.ax.margins(y=0.02)

    def _draw_scatter(self, a: _Axes, tr: Mapping, i: int) -> None:
        px, py, _, _ = self._xy(a, tr)
        n = len(px)
        if n == 0 or not np.isfinite(px).any():
            self._scatter_colorbar(tr)
            return
        mode = tr.get("mode") or ("lines+markers" if n < 20 else "lines")
        color = _color(self._trace_color(i, tr))
        opacity = float(tr.get("opacity") if tr.get("opacity") is not None else 1.0)
        label = tr.get("name") or f"trace {i}"
        handle = None
        line = tr.get("line") or {}
        m = tr.get("marker") or {}
        simple = all(isinstance(m.get(k), (str, int, float, type(None))) for k in ("size", "color", "symbol"))
        if "lines" in mode:
            ls = _DASHES.get(str(line.get("dash") or "solid"), "-")
            lw = float(line.get("width") if line.get("width") is not None else 2) * _PX_TO_PT
            kw = {}
            if "markers" in mode and simple and not str(m.get("symbol") or "").endswith("-open"):
                kw = dict(marker=_SYMBOLS.get(str(m.get("symbol") or "circle"), "o"),
                          markersize=float(m.get("size") or 6) * _PX_TO_PT,
                          markerfacecolor=_color(m.get("color"), color), markeredgewidth=0)  # fmt: skip
            handle = a.ax.plot(px, py, linestyle=ls, linewidth=lw, color=_color(line.get("color"), color),
                               alpha=opacity, zorder=3, **kw)[0]  # fmt: skip
            if tr.get("fill") in ("tozeroy", "tonexty"):
                a.ax.fill_between(px, py, 0, color=_color(tr.get("fillcolor"), color, alpha=0.3), linewidth=0)
            if kw:
                mode = mode.replace("markers", "")
        if "markers" in mode:
            handle = self._markers(a, tr, px, py, color, opacity) or handle
        err = self._errors(tr.get("error_y"), py)
        if err is not None:
            ecol = _color(_get(tr, "error_y.color"), color)
            a.ax.errorbar(px, py, yerr=err, fmt="none", ecolor=ecol, capsize=3 * self.scale, elinewidth=1,
                          alpha=opacity)  # fmt: skip
        errx = self._errors(tr.get("error_x"), px)
        if errx is not None:
            a.ax.errorbar(px, py, xerr=errx, fmt="none", ecolor=color, capsize=3 * self.scale, elinewidth=1)
        if "text" in mode:
            self._point_texts(a, tr, px, py, color)
        if handle is not None:
            self._add_legend(tr, handle, label)
        self._scatter_colorbar(tr)

    def _markers(self, a: _Axes, tr: Mapping, px: np.ndarray, py: np.ndarray, color: Any, opacity: float) -> Any:
        m = tr.get("marker") or {}
        n = len(px)
        size = m.get("size", 6)
        sizes = np.resize(_floats(size), n) if not isinstance(size, (int, float)) else np.full(n, float(size))
        s = (np.nan_to_num(sizes, nan=6.0) * _PX_TO_PT) ** 2
        mc = m.get("color")
        cmap = norm = None
        if mc is None or isinstance(mc, str):
            colors = [_color(mc, color)] * n
        else:
            arr = _arr(mc)
            if _is_numeric(arr):
                from matplotlib.colors import Normalize

                vals = _floats(arr)
                cmap = _colormap(m.get("colorscale"), self.template, bool(m.get("reversescale")))
                lo = m.get("cmin") if m.get("cmin") is not None else np.nanmin(vals)
                hi = m.get("cmax") if m.get("cmax") is not None else np.nanmax(vals)
                norm = Normalize(lo, hi if hi > lo else lo + 1)
                colors = [cmap(norm(v)) for v in np.resize(vals, n)]
            else:
                colors = [_color(c, color) for c in np.resize(arr, n)]
        sym = m.get("symbol", "circle")
        syms = [str(x) for x in np.resize(_arr(sym), n)] if not isinstance(sym, str) else [sym] * n
        edge = m.get("line") or {}
        ew = float(edge.get("width") or 0) * _PX_TO_PT
        ec = _color(edge.get("color"), "white") if ew > 0 else "none"
        alpha = float(m.get("opacity") if isinstance(m.get("opacity"), (int, float)) else 1.0) * opacity
        handle = None
        for name in dict.fromkeys(syms):
            sel = np.array([x == name for x in syms])
            base = name.replace("-open", "").replace("-dot", "")
            marker = _SYMBOLS.get(base, "o")
            cols = [colors[j] for j in np.flatnonzero(sel)]
            hollow = name.endswith("-open")
            handle = a.ax.scatter(px[sel], py[sel], s=s[sel], marker=marker, c=None if hollow else cols,
                                  facecolors="none" if hollow else None, edgecolors=cols if hollow else ec,
                                  linewidths=max(ew, 1.0) if hollow else ew, alpha=alpha, zorder=3)  # fmt: skip
        return handle

    def _point_texts(self, a: _Axes, tr: Mapping, px: np.ndarray, py: np.ndarray, color: Any) -> None:
        texts = _arr(tr.get("text"))
        if texts is None:
            return
        pos = str(tr.get("textposition") or "middle center")
        va = "top" if pos.startswith("bottom") else "bottom" if pos.startswith("top") else "center"
        ha = "left" if pos.endswith("right") else "right" if pos.endswith("left") else "center"
        if a.yname and self._axis_reversed(a):  # a reversed y axis flips what "bottom" means on screen
            va = {"top": "bottom", "bottom": "top"}.get(va, va)
        font = tr.get("textfont") or {}
        fc = _color(font.get("color"), color) if isinstance(font.get("color"), (str, type(None))) else color
        fs = self._pt(float(font.get("size") or self.font_px))
        for j in range(len(px)):
            t = _text_of(texts[j] if len(texts) > 1 else texts[0])
            if t and np.isfinite(px[j]) and np.isfinite(py[j]):
                a.ax.text(px[j], py[j], t, ha=ha, va=va, fontsize=fs, color=fc, zorder=4, clip_on=True)

    def _scatter_colorbar(self, tr: Mapping) -> None:
        m = tr.get("marker") or {}
        if m.get("showscale") and self.colorbar is None:
            from matplotlib.colors import Normalize

            cmap = _colormap(m.get("colorscale"), self.template, bool(m.get("reversescale")))
            lo, hi = float(m.get("cmin") or 0.0), float(m.get("cmax") if m.get("cmax") is not None else 1.0)
            self.colorbar = (cmap, Normalize(lo, hi if hi > lo else lo + 1), _text_of(_get(m, "colorbar.title")))

    def _draw_scattergl(self, a: _Axes, tr: Mapping, i: int) -> None:
        self._draw_scatter(a, tr, i)

    def _draw_heatmap(self, a: _Axes, tr: Mapping, i: int) -> None:
        from matplotlib.colors import Normalize

        z = _floats(tr.get("z"))
        if z.ndim != 2 or z.size == 0:
            return
        h, w = z.shape
        x, y = _arr(tr.get("x")), _arr(tr.get("y"))
        cx, cy = self._categorical(a.xname, x), self._categorical(a.yname, y)
        xs = a.positions("x", x, cx) if x is not None and len(x) == w else np.arange(w, dtype=float)
        ys = a.positions("y", y, cy) if y is not None and len(y) == h else np.arange(h, dtype=float)
        dx = float(np.median(np.diff(xs))) if w > 1 else 1.0
        dy = float(np.median(np.diff(ys))) if h > 1 else 1.0
        extent = (xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2)
        cmap = _colormap(tr.get("colorscale"), self.template, bool(tr.get("reversescale")))
        lo = tr.get("zmin") if tr.get("zmin") is not None else np.nanmin(z)
        hi = tr.get("zmax") if tr.get("zmax") is not None else np.nanmax(z)
        norm = Normalize(float(lo), float(hi) if hi > lo else float(lo) + 1)
        opacity = float(tr.get("opacity") if tr.get("opacity") is not None else 1.0)
        a.ax.imshow(np.ma.masked_invalid(z), cmap=cmap, norm=norm, origin="lower", extent=extent, aspect="auto",
                    alpha=opacity, interpolation="nearest", zorder=1)  # fmt: skip
        if a.has_image:  # an overlay on an image keeps the image's square pixels
            a.ax.set_aspect("equal")
        else:
            a.ax.set_xlim(extent[0], extent[1])
            a.ax.set_ylim(extent[2], extent[3])
        a.ax.grid(False)
        texts = _arr(tr.get("text"))
        tmpl = tr.get("texttemplate")
        if texts is not None or tmpl:
            for r in range(h):
                for c in range(w):
                    vals = {"z": z[r, c], "x": x[c] if x is not None and len(x) == w else c,
                            "y": y[r] if y is not None and len(y) == h else r}  # fmt: skip
                    if texts is not None and texts.ndim == 2:
                        vals["text"] = texts[r, c]
                    t = _template_text(tmpl, vals) if tmpl else _text_of(vals.get("text", ""))
                    if not t:
                        continue
                    lum = np.dot(cmap(norm(z[r, c]))[:3], [0.299, 0.587, 0.114]) if np.isfinite(z[r, c]) else 1
                    a.ax.text(xs[c], ys[r], t, ha="center", va="center", fontsize=self._pt(self.font_px * 0.85),
                              color="white" if lum < 0.5 else "#222222", zorder=2)  # fmt: skip
        if tr.get("showscale", True) and self.colorbar is None:
            self.colorbar = (cmap, norm, _text_of(_get(tr, "colorbar.title")))

    def _draw_image(self, a: _Axes, tr: Mapping, i: int) -> None:
        img = _decode_image(tr.get("source")) if tr.get("source") else None
        if img is None and tr.get("z") is not None:
            img = np.asarray(_arr(tr.get("z")))
            if img.dtype == object:
                img = img.astype(float)
            if img.dtype.kind == "f" and img.max() > 1.0:
                img = img.clip(0, 255).astype(np.uint8)
        if img is None:
            self.placeholders.append("image")
            return
        h, w = img.shape[:2]
        x0, y0 = float(tr.get("x0") or 0), float(tr.get("y0") or 0)
        dx, dy = float(tr.get("dx") or 1), float(tr.get("dy") or 1)
        ext = (x0 - dx / 2, x0 + (w - 0.5) * dx, y0 - dy / 2, y0 + (h - 0.5) * dy)
        a.ax.imshow(img, origin="lower", extent=ext, interpolation="nearest", zorder=0)
        a.has_image = True
        a.add_extent(*ext)
        a.ax.grid(False)

    def _draw_box(self, a: _Axes, tr: Mapping, i: int) -> None:
        horizontal = tr.get("orientation") == "h"
        vals = _floats(tr.get("x") if horizontal else tr.get("y"))
        cat_raw = _arr(tr.get("y") if horizontal else tr.get("x"))
        cat_axis = "y" if horizontal else "x"
        if cat_raw is None:
            cat_raw = np.array([tr.get("name") or f"trace {i}"] * len(vals), dtype=object)
        pos = a.positions(cat_axis, cat_raw, True)
        groups = OrderedDict()
        for p, v in zip(pos, vals):
            if np.isfinite(v):
                groups.setdefault(p, []).append(v)
        if not groups:
            return
        color = _color(self._trace_color(i, tr))
        orient = "horizontal" if horizontal else "vertical"
        bp = a.ax.boxplot(list(groups.values()), positions=list(groups.keys()), widths=0.5, orientation=orient,
                          patch_artist=True, showfliers=tr.get("boxpoints") not in ("all", False),
                          medianprops=dict(color=color, linewidth=1.5), whiskerprops=dict(color=color),
                          capprops=dict(color=color), manage_ticks=False)  # fmt: skip
        for b in bp["boxes"]:
            b.set(facecolor=(*color[:3], 0.25), edgecolor=color)
        if tr.get("boxpoints") == "all":
            rng = np.random.default_rng(0)
            for p, vs in groups.items():
                jit = p + rng.uniform(-0.12, 0.12, len(vs))
                xy = (vs, jit) if horizontal else (jit, vs)
                a.ax.scatter(*xy, s=(5 * _PX_TO_PT) ** 2, color=color, alpha=0.8, zorder=3, edgecolors="white",
                             linewidths=0.4)  # fmt: skip
        self._add_legend(tr, bp["boxes"][0], tr.get("name") or f"trace {i}")

    def _draw_histogram(self, a: _Axes, tr: Mapping, i: int) -> None:
        x = _floats(tr.get("x"))
        x = x[np.isfinite(x)]
        if not len(x):
            return
        bins = int(tr.get("nbinsx") or 0) or "auto"
        color = _color(self._trace_color(i, tr), alpha=float(tr.get("opacity") or 1.0))
        _, _, patches = a.ax.hist(x, bins=bins, color=color, edgecolor="white", linewidth=0.4)
        self._add_legend(tr, patches[0] if len(patches) else None, tr.get("name") or f"trace {i}")

    # -- layout
    def _axis_reversed(self, a: _Axes) -> bool:
        return self._axis_layout(a.yname).get("autorange") == "reversed" or a.has_image

    def _finish_axes(self) -> None:
        from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

        for a in self.axes.values():
            ax = a.ax
            if a.image_extent is not None:
                e = a.image_extent
                ax.set_xlim(e[0], e[1])
                ax.set_ylim(e[2], e[3])
            for axis_name, name in (("x", a.xname), ("y", a.yname)):
                lay = self._axis_layout(name)
                axis = ax.xaxis if axis_name == "x" else ax.yaxis
                if lay.get("type") == "log":
                    (ax.set_xscale if axis_name == "x" else ax.set_yscale)("log")
                rng = lay.get("range")
                if lay.get("rangemode") in ("tozero", "nonnegative") and not rng and not a.cats[axis_name]:
                    lo, hi = ax.get_xlim() if axis_name == "x" else ax.get_ylim()
                    if min(lo, hi) > 0:
                        (ax.set_xlim if axis_name == "x" else ax.set_ylim)(0, max(lo, hi))
                if isinstance(rng, (list, tuple)) and len(rng) == 2 and None not in rng:
                    lo, hi = (float(10 ** r) for r in rng) if lay.get("type") == "log" else (float(r) for r in rng)
                    (ax.set_xlim if axis_name == "x" else ax.set_ylim)(lo, hi)
                cats = a.cats[axis_name]
                if cats:
                    axis.set_ticks(range(len(cats)))
                    axis.set_ticklabels(cats)
                    lim = (-0.5, len(cats) - 0.5)
                    if a.image_extent is None and not rng:
                        (ax.set_xlim if axis_name == "x" else ax.set_ylim)(*lim)
                tickvals, ticktext = lay.get("tickvals"), lay.get("ticktext")
                if tickvals is not None:
                    axis.set_ticks(list(_floats(tickvals)))
                    if ticktext is not None:
                        axis.set_ticklabels([_text_of(t) for t in _arr(ticktext)])
                elif not cats and isinstance(lay.get("dtick"), (int, float)) and lay.get("tickmode") != "auto":
                    dtick = float(lay["dtick"])
                    if dtick.is_integer() and self._dense(ax, axis_name, dtick):  # keep whole numbers, fewer ticks
                        axis.set_major_locator(MaxNLocator(nbins=12, integer=True, steps=[1, 2, 5, 10]))
                    else:
                        axis.set_major_locator(MultipleLocator(dtick, offset=float(lay.get("tick0") or 0)))
                fmt, suffix = lay.get("tickformat"), lay.get("ticksuffix") or ""
                if not cats and (fmt or suffix):
                    axis.set_major_formatter(FuncFormatter(lambda v, _p, f=fmt, s=suffix: self._tick(v, f) + s))
                angle = lay.get("tickangle")
                if angle in (None, "auto") and axis_name == "x" and cats and self._crowded(ax, cats, name):
                    angle = -30  # plotly turns crowded category labels; so does the static copy
                if angle not in (None, "auto"):
                    ang = -float(angle)
                    ax.tick_params(axis=axis_name, labelrotation=ang)
                    if axis_name == "x" and ang:
                        for lab in axis.get_ticklabels():
                            lab.set_ha("right" if ang > 0 else "left")
                            lab.set_rotation_mode("anchor")
                title = _text_of(lay.get("title"))
                if title:
                    (ax.set_xlabel if axis_name == "x" else ax.set_ylabel)(
                        title, fontsize=self._pt(self.font_px * 1.05), color=self.font_color)
                visible = lay.get("visible", True) is not False
                show_labels = lay.get("showticklabels", True) is not False
                if not show_labels:
                    ax.tick_params(axis=axis_name, labelbottom=False, labelleft=False)
                if not visible:
                    axis.set_visible(False)
                    if axis_name == "x":
                        ax.set_xlabel("")
                    else:
                        ax.set_ylabel("")
            if self._axis_reversed(a) and not ax.yaxis_inverted():
                ax.invert_yaxis()
            xlay, ylay = self._axis_layout(a.xname), self._axis_layout(a.yname)
            if xlay.get("autorange") == "reversed" and not ax.xaxis_inverted():
                ax.invert_xaxis()
            grid_col = _color(xlay.get("gridcolor") or "white")
            if not a.has_image:
                ax.set_axisbelow(True)
                ax.grid(True, color=grid_col, linewidth=1)
                if xlay.get("showgrid") is False:
                    ax.xaxis.grid(False)
                if ylay.get("showgrid") is False:
                    ax.yaxis.grid(False)
            else:
                ax.set_facecolor("none")
            if xlay.get("visible") is False and ylay.get("visible") is False:
                ax.set_facecolor("none")

    def _crowded(self, ax: Any, cats: list, name: str) -> bool:
        """Would the category labels of an x axis overlap when written horizontally?"""
        dom = self._axis_layout(name).get("domain") or [0, 1]
        width_px = (self.W - self.margin["l"] - self.margin["r"]) * (dom[1] - dom[0])
        longest = max((len(str(c)) for c in cats), default=0)
        return longest * self.font_px * 0.6 > width_px / max(1, len(cats)) * 0.95

    def _dense(self, ax: Any, axis_name: str, dtick: float) -> bool:
        lo, hi = ax.get_xlim() if axis_name == "x" else ax.get_ylim()
        return abs(hi - lo) / float(dtick) > 15

    @staticmethod
    def _tick(v: float, fmt: str | None) -> str:
        if not fmt:
            return f"{v:g}"
        if fmt in ("d", ".0f", ",d"):
            return f"{round(v):d}"
        try:
            return format(v, fmt.replace(",", ""))
        except ValueError:
            return f"{v:g}"

    def _ref_transform(self, xref: str, yref: str):
        """(axes or None, transform) for a shape/annotation's references (data, ``x domain`` or paper)."""
        from matplotlib.transforms import Affine2D, blended_transform_factory

        left, bottom, pw, ph = self._plot_area()
        paper = Affine2D().scale(pw, ph).translate(left, bottom) + self.fig.transFigure

        def axes_for(ref: str, axis: str):
            name = ref.split(" ")[0]
            for a in self.axes.values():
                if (a.xname if axis == "x" else a.yname) == name:
                    return a
            return None

        ax_x = axes_for(xref, "x") if xref != "paper" else None
        ax_y = axes_for(yref, "y") if yref != "paper" else None
        a = ax_x or ax_y
        if (xref != "paper" and ax_x is None) or (yref != "paper" and ax_y is None):
            return None, None

        def tx(ref: str, axes: _Axes | None):
            if ref == "paper":
                return paper
            return axes.ax.transAxes if ref.endswith("domain") else axes.ax.transData

        return a, blended_transform_factory(tx(xref, ax_x), tx(yref, ax_y))

    def _shapes(self) -> None:
        from matplotlib.patches import Ellipse, Rectangle

        for sh in self.layout.get("shapes") or []:
            if sh.get("visible") is False:
                continue
            xref, yref = sh.get("xref") or "x", sh.get("yref") or "y"
            a, tf = self._ref_transform(xref, yref)
            if tf is None:
                continue
            line = sh.get("line") or {}
            color = _color(line.get("color"), "#444444", alpha=float(sh.get("opacity") or 1.0))
            lw = float(line.get("width") if line.get("width") is not None else 2) * _PX_TO_PT
            ls = _DASHES.get(str(line.get("dash") or "solid"), "-")
            x0, x1, y0, y1 = (float(sh.get(k) or 0) for k in ("x0", "x1", "y0", "y1"))
            target = a.ax if a is not None else self.fig
            z = 5 if sh.get("layer") != "below" else 0.5
            kind = sh.get("type") or "rect"
            if kind == "line":
                from matplotlib.lines import Line2D

                target.add_artist(Line2D([x0, x1], [y0, y1], transform=tf, color=color, linewidth=lw, linestyle=ls,
                                         zorder=z))  # fmt: skip
            elif kind in ("rect", "circle"):
                fill = sh.get("fillcolor")
                fc = _color(fill, alpha=float(sh.get("opacity") or 1.0)) if fill else "none"
                cls = Rectangle((x0, y0), x1 - x0, y1 - y0) if kind == "rect" else Ellipse(
                    ((x0 + x1) / 2, (y0 + y1) / 2), x1 - x0, y1 - y0)  # fmt: skip
                cls.set(transform=tf, edgecolor=color if lw > 0 else "none", facecolor=fc, linewidth=lw,
                        linestyle=ls, zorder=z)  # fmt: skip
                target.add_artist(cls)

    def _layout_images(self) -> None:
        for im in self.layout.get("images") or []:
            img = _decode_image(im.get("source"))
            if img is None:
                continue
            xref, yref = im.get("xref") or "paper", im.get("yref") or "paper"
            x, y = float(im.get("x") or 0), float(im.get("y") or 1)
            sx, sy = float(im.get("sizex") or 1), float(im.get("sizey") or 1)
            xa, ya = im.get("xanchor") or "left", im.get("yanchor") or "top"
            x0 = x - sx if xa == "right" else x - sx / 2 if xa == "center" else x
            y1 = y + sy if ya == "bottom" else y + sy / 2 if ya == "middle" else y
            a, tf = self._ref_transform(xref, yref)
            if tf is None:
                continue
            if a is not None and xref != "paper" and yref != "paper" and not xref.endswith("domain"):
                a.ax.imshow(img, extent=(x0, x0 + sx, y1 - sy, y1), aspect="auto", zorder=0.5)
                a.add_extent(x0, x0 + sx, y1 - sy, y1)
                continue
            # paper/domain coordinates: an inset axes over the box
            p0 = self.fig.transFigure.inverted().transform(tf.transform((x0, y1 - sy)))
            p1 = self.fig.transFigure.inverted().transform(tf.transform((x0 + sx, y1)))
            inset = self.fig.add_axes([p0[0], p0[1], max(1e-3, p1[0] - p0[0]), max(1e-3, p1[1] - p0[1])])
            inset.imshow(img, aspect="equal" if im.get("sizing", "contain") == "contain" else "auto")
            inset.set_axis_off()

    def _annotations(self) -> None:
        for an in self.layout.get("annotations") or []:
            if an.get("visible") is False:
                continue
            text = _text_of(an.get("text"))
            if not text:
                continue
            xref, yref = an.get("xref") or "x", an.get("yref") or "y"
            a, tf = self._ref_transform(xref, yref)
            if tf is None:
                continue
            x, y = an.get("x"), an.get("y")
            if a is not None and xref != "paper" and not xref.endswith("domain") and isinstance(x, str):
                x = a.cats["x"].index(x) if x in a.cats["x"] else 0
            if a is not None and yref != "paper" and not yref.endswith("domain") and isinstance(y, str):
                y = a.cats["y"].index(y) if y in a.cats["y"] else 0
            x, y = float(x or 0), float(y or 0)
            xa = an.get("xanchor") or "auto"
            if xa == "auto":
                xa = "center" if an.get("showarrow", True) or xref != "paper" else "left" if x <= 1 / 3 else (
                    "right" if x >= 2 / 3 else "center")  # fmt: skip
            ya = an.get("yanchor") or "auto"
            va = {"top": "top", "bottom": "bottom", "middle": "center"}.get(ya, "center")
            font = an.get("font") or {}
            fs = self._pt(float(font.get("size") or self.font_px))
            fc = _color(font.get("color"), self.font_color)
            bbox = None
            if an.get("bgcolor") or an.get("bordercolor"):
                bbox = dict(boxstyle="square,pad=0.25", fc=_color(an.get("bgcolor"), "white"),
                            ec=_color(an.get("bordercolor"), "none") if an.get("bordercolor") else "none",
                            alpha=float(an.get("opacity") or 1.0))  # fmt: skip
            target = a.ax if a is not None else self.fig
            kw = dict(ha=xa, va=va, fontsize=fs, color=fc, bbox=bbox, zorder=6, transform=tf)
            if an.get("showarrow", True) and a is not None:
                axo, ayo = float(an.get("ax") or -10), float(an.get("ay") or -30)
                target.annotate(text, (x, y), xycoords=tf, xytext=(axo * _PX_TO_PT, -ayo * _PX_TO_PT),
                                textcoords="offset points", ha="center", va="center", fontsize=fs, color=fc,
                                arrowprops=dict(arrowstyle="->", color=fc, lw=0.8), bbox=bbox, zorder=6)
                continue
            yshift = float(an.get("yshift") or 0) * _PX_TO_PT
            xshift = float(an.get("xshift") or 0) * _PX_TO_PT
            if xshift or yshift:
                from matplotlib.transforms import offset_copy

                kw["transform"] = offset_copy(tf, fig=self.fig, x=xshift, y=yshift, units="points")
            target.text(x, y, text, **kw)

    def _title(self) -> None:
        t = self.layout.get("title")
        raw = t.get("text") if isinstance(t, Mapping) else t
        if not raw:
            return
        tdict = t if isinstance(t, Mapping) else {}
        tmpl = self.template.get("title") or {}
        x = float(tdict.get("x") if tdict.get("x") is not None else tmpl.get("x", 0.05))
        xa = tdict.get("xanchor") or "auto"
        ha = {"left": "left", "right": "right", "center": "center"}.get(xa, "left" if x < 1 / 3 else (
            "right" if x > 2 / 3 else "center"))  # fmt: skip
        size = float(_get(tdict, "font.size") or _get(tmpl, "font.size") or 17)
        avail = self.W * (1 - x if ha == "left" else 1)
        y = 1 - 8 / self.H
        small = False
        for part in re.split(r"<br\s*/?>", str(raw), flags=re.I):  # one text per line: size and colour per line
            small = small or "<sup>" in part or "<sub>" in part or "font-size" in part
            col = re.search(r"color:\s*([#\w]+)", part)
            fpx = size * (0.72 if small else 1.0)
            text = _text_of(part)
            if "</sup>" in part or "</sub>" in part:
                small_after = False
            else:
                small_after = small
            if text.strip():
                lines = textwrap.wrap(text, max(20, int(avail / (fpx * 0.55)))) or [text]
                for line in lines:
                    self.fig.text(x, y, line, ha=ha, va="top", fontsize=self._pt(fpx),
                                  color=_color(col.group(1), self.font_color) if col else self.font_color,
                                  fontweight="bold" if col else "normal")  # fmt: skip
                    y -= fpx * 1.3 / self.H
            small = small_after

    def _legend_and_colorbar(self) -> None:
        left, bottom, pw, ph = self._plot_area()
        show = self.layout.get("showlegend")
        n_shown = len(self.legend)
        if self.legend and (show is True or (show is None and n_shown >= 2)):
            lt = _text_of(_get(self.layout, "legend.title"))
            horizontal = _get(self.layout, "legend.orientation") == "h"
            kw = dict(loc="upper left", bbox_to_anchor=(left + pw + 0.01, bottom + ph), frameon=False)
            if horizontal:
                kw = dict(loc="upper left", bbox_to_anchor=(left, max(0.0, bottom - 0.08)), ncol=min(6, n_shown),
                          frameon=False)  # fmt: skip
            leg = self.fig.legend(list(self.legend.values()), list(self.legend.keys()), title=lt or None,
                                  fontsize=self._pt(self.font_px), title_fontsize=self._pt(self.font_px), **kw)
            for t in leg.get_texts():
                t.set_color(self.font_color)
            if leg.get_title() is not None:
                leg.get_title().set_color(self.font_color)
        if self.colorbar is not None:
            from matplotlib.cm import ScalarMappable

            cmap, norm, title = self.colorbar
            x = left + pw + (0.02 if not self.legend or n_shown < 2 else 0.2)
            cax = self.fig.add_axes([min(x, 0.97), bottom + ph * 0.05, 0.018, ph * 0.9])
            cb = self.fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
            cb.outline.set_visible(False)
            cb.ax.tick_params(labelsize=self._pt(self.font_px * 0.9), colors=self.font_color, length=0)
            if title:
                cb.ax.set_title(title, fontsize=self._pt(self.font_px * 0.9), color=self.font_color, loc="left")

    def png(self) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(self.fig)
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=100 * self.scale, bbox_inches="tight", pad_inches=0.08,
                         facecolor=self.fig.get_facecolor())  # fmt: skip
        return buf.getvalue()


def _fig_dict(fig: Any) -> dict:
    if isinstance(fig, Mapping):
        return dict(fig)
    if hasattr(fig, "to_dict"):
        return fig.to_dict()
    raise TypeError(f"expected a plotly Figure or its dict, got {type(fig).__name__}")


def _placeholder_png(fig_dict: Mapping, reason: str, scale: float) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layout = fig_dict.get("layout") or {}
    W, H = float(layout.get("width") or 700), float(layout.get("height") or 450)
    f = Figure(figsize=(W / 100, min(H, 240) / 100), dpi=100)
    FigureCanvasAgg(f)
    title = _text_of(layout.get("title")) or "figure"
    f.text(0.5, 0.62, textwrap.fill(title, 70), ha="center", va="center", fontsize=11, color="#2a3f5f")
    f.text(0.5, 0.3, f"{PLACEHOLDER_NOTE}\n({reason})", ha="center", va="center", fontsize=9, color="#7f7f7f")
    buf = io.BytesIO()
    f.savefig(buf, format="png", dpi=100 * scale)
    return buf.getvalue()


def render_png(fig: Any, scale: float = DEFAULT_SCALE) -> bytes:
    """PNG bytes of a plotly figure (``go.Figure`` or its dict), drawn with matplotlib; never raises.

    A trace type the renderer does not know is named in a placeholder note on the picture; a figure that fails
    as a whole becomes a placeholder card with its title and "interactive figure: open in JupyterLab".
    """
    try:
        d = _fig_dict(fig)
    except TypeError as e:
        return _placeholder_png({}, str(e), scale)
    try:
        r = _Renderer(d, scale)
        r.draw()
        return r.png()
    except Exception as e:  # noqa: BLE001 - a static copy must never break a notebook
        return _placeholder_png(d, f"static copy failed: {type(e).__name__}: {str(e)[:80]}", scale)


# ----------------------------------------------------------------------------- display
_PNG_CACHE: OrderedDict[str, bytes] = OrderedDict()
_CACHE_SIZE = 32


def _fingerprint(fig_json: str, scale: float) -> str:
    return hashlib.sha1(f"{scale}|{fig_json}".encode()).hexdigest()


def cached_png(fig: Any, scale: float = DEFAULT_SCALE, fig_json: str | None = None) -> bytes:
    """:func:`render_png` memoised on the figure's content (``save_figure`` then ``show`` draw it once)."""
    if fig_json is None:
        fig_json = fig.to_json() if hasattr(fig, "to_json") else json.dumps(fig, default=str)
    key = _fingerprint(fig_json, scale)
    if key in _PNG_CACHE:
        _PNG_CACHE.move_to_end(key)
        return _PNG_CACHE[key]
    png = render_png(fig, scale)
    _PNG_CACHE[key] = png
    while len(_PNG_CACHE) > _CACHE_SIZE:
        _PNG_CACHE.popitem(last=False)
    return png


def _png_size(png: bytes) -> tuple[int, int]:
    if png[:8] == b"\x89PNG\r\n\x1a\n":
        return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    return 0, 0


def figure_bundle(fig: Any, scale: float = DEFAULT_SCALE) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(data, metadata)`` of one display: the plotly JSON (interactive in JupyterLab) and a static PNG.

    The PNG is declared at the figure's plotly size (``metadata["image/png"]["width"]``) so it is sharp but not
    larger than the interactive figure.
    """
    from plotly.io import to_json

    d = _fig_dict(fig)
    fig_json = to_json(d, validate=False, remove_uids=False)
    png = cached_png(d, scale, fig_json=fig_json)
    w, h = _png_size(png)
    data = {
        PLOTLY_MIME: {**json.loads(fig_json), "config": {"displaylogo": False}},
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": _plain_repr(d),
    }
    meta = {"image/png": {"width": int(round(w / scale)), "height": int(round(h / scale))}} if w else {}
    return data, meta


def _plain_repr(fig_dict: Mapping) -> str:
    title = _text_of(_get(fig_dict, "layout.title"))
    return f"<figure: {title.splitlines()[0] if title else 'untitled'}>"


class FigureDisplay:
    """Wraps a plotly figure so that IPython displays it with both the plotly JSON and a static PNG."""

    def __init__(self, fig: Any, scale: float = DEFAULT_SCALE):
        self.fig, self.scale = fig, scale

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        return figure_bundle(self.fig, self.scale)

    def __repr__(self) -> str:
        return _plain_repr(_fig_dict(self.fig))


def show(*figs: Any, scale: float = DEFAULT_SCALE) -> None:
    """Display figures (interactive plotly JSON + static PNG in one output each); None figures are skipped."""
    from IPython.display import display

    for fig in figs:
        if fig is not None:
            display(FigureDisplay(fig, scale))


def register_renderer(make_default: bool = False) -> None:
    """Register the plotly renderer ``"orsa"`` (plotly JSON + static PNG); optionally make it the default.

    With it as default, a bare ``fig`` at the end of a cell and ``fig.show()`` (also inside library code) carry the
    PNG as well.
    """
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class OrsaRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict: dict) -> dict:
            data, _meta = figure_bundle(fig_dict)
            data.pop("text/plain", None)
            return data

    pio.renderers["orsa"] = OrsaRenderer()
    if make_default:
        pio.renderers.default = "orsa"


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where rich display reaches a notebook)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


__all__ = [
    "PLACEHOLDER_NOTE",
    "PLOTLY_MIME",
    "FigureDisplay",
    "cached_png",
    "figure_bundle",
    "in_kernel",
    "register_renderer",
    "render_png",
    "show",
]
