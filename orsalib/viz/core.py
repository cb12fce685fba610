"""Figures (plotly) and the writers every notebook ends with.

Figure functions return ``plotly.graph_objects.Figure``. ``save_figure`` writes HTML with
``include_plotlyjs="directory"`` (one ``plotly.min.js`` beside the figures: works offline) and a PNG only
when static export (kaleido) is available. ``save_table`` writes CSV + JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..paths import run_dir as _run_dir
from ..utils import atomic_write_json, atomic_write_text


def _safe_name(name: str) -> str:
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"figure/table name must be a plain file stem, got {name!r}")
    return name


def save_figure(fig: go.Figure, run_name: str, name: str, png: bool = False) -> Path:
    """Write ``outputs/<run_name>/figures/<name>.html`` (and ``.png`` if asked and kaleido is installed)."""
    out = _run_dir(run_name) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_safe_name(name)}.html"
    html = fig.to_html(include_plotlyjs="directory", full_html=True)
    atomic_write_text(path, html)
    js = out / "plotly.min.js"
    if not js.exists():
        atomic_write_text(js, get_plotlyjs())
    if png:
        try:
            fig.write_image(str(out / f"{name}.png"))
        except (ValueError, ImportError, RuntimeError):
            pass  # static export unavailable: HTML is the record
    return path


def save_table(df: pd.DataFrame, run_name: str, name: str, index: bool = False) -> Path:
    """Write ``outputs/<run_name>/tables/<name>.csv`` and ``.json`` (records); returns the CSV path."""
    out = _run_dir(run_name) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    stem = _safe_name(name)
    frame = df.reset_index() if index else df
    atomic_write_text(out / f"{stem}.csv", frame.to_csv(index=False))
    atomic_write_json(out / f"{stem}.json", frame.to_dict(orient="records"))
    return out / f"{stem}.csv"


# ----------------------------------------------------------------------------- common figures
def confusion_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str = "Confusion matrix",
                     normalize: bool = True) -> go.Figure:
    """Heat-map of a confusion matrix (rows = true class), row-normalised by default."""
    cm = np.asarray(confusion, dtype=float)
    z = cm / np.clip(cm.sum(1, keepdims=True), 1, None) if normalize else cm
    text = [[f"{z[i, j]:.2f}<br>({int(cm[i, j])})" for j in range(cm.shape[1])] for i in range(cm.shape[0])]
    fig = go.Figure(go.Heatmap(z=z, x=list(class_names), y=list(class_names), text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1 if normalize else None))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      width=520, height=480)
    return fig


def learning_curves(history: Sequence[dict], keys: Sequence[str] = ("train_acc", "val_acc"),
                    title: str = "Learning curves") -> go.Figure:
    """Lines of per-epoch metrics (records of ``metrics.jsonl``)."""
    fig = go.Figure()
    epochs = [h.get("epoch") for h in history]
    for k in keys:
        ys = [h.get(k) for h in history]
        if any(y is not None for y in ys):
            fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=k))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="value")
    return fig


def bar_table(df: pd.DataFrame, x: str, y: str, color: str | None = None, error: str | None = None,
              title: str = "") -> go.Figure:
    """Grouped bars from a tidy frame (optional error column)."""
    fig = go.Figure()
    groups = [(None, df)] if color is None else list(df.groupby(color, sort=False))
    for g, sub in groups:
        fig.add_trace(go.Bar(x=sub[x], y=sub[y], name=str(g) if g is not None else y,
                             error_y=dict(type="data", array=sub[error]) if error else None))
    fig.update_layout(title=title, barmode="group", xaxis_title=x, yaxis_title=y)
    return fig
