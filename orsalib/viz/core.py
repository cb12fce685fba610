"""Figures (plotly) and the writers every notebook ends with.

Figure functions return ``plotly.graph_objects.Figure`` and follow the conventions of :mod:`orsalib.viz.style`
(accuracy in %, whole-number epochs, best epoch marked, chance and majority lines, error bars only with >= 2 seeds).

``save_figure`` writes ``figures/<name>.html`` (``include_plotlyjs="directory"``: one ``plotly.min.js`` beside the
figures, works offline) and ``figures/<name>.png``, the static copy plotly writes itself (:mod:`orsalib.viz.export`;
skipped where plotly has no browser to draw with). ``save_table`` writes CSV + JSON. Both register the artefact with
a one-line caption in ``outputs/<run_name>/artefacts.json``, from which :func:`orsalib.viz.index.write_run_index`
builds ``index.html``. Names follow ``NN_<what>`` where ``NN`` is the number of the notebook that writes them.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..paths import run_dir as _run_dir
from ..utils import atomic_write_bytes, atomic_write_json, atomic_write_text
from .export import static_image
from .style import (
    epoch_axis,
    finish,
    is_accuracy_key,
    is_fraction,
    mark_best,
    percent_axis,
    reference_lines,
    to_percent,
)

ARTEFACTS_FILE = "artefacts.json"


def _safe_name(name: str) -> str:
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"figure/table name must be a plain file stem, got {name!r}")
    return name


def notebook_of(name: str) -> str:
    """The notebook number an artefact name starts with (``"40_confusion_best"`` -> ``"40"``), else ``""``."""
    m = re.match(r"(\d\d)_", name)
    return m.group(1) if m else ""


def _register(run_name: str, rel: str, record: dict[str, Any]) -> None:
    """Add/replace one artefact in ``outputs/<run_name>/artefacts.json`` (read-modify-write, atomic)."""
    import json

    path = _run_dir(run_name) / ARTEFACTS_FILE
    try:
        items = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        items = {}
    items[rel] = {**record, "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(path, items)


def read_artefacts(run_name: str) -> dict[str, dict]:
    """The registered artefacts of a run (``{relative path: record}``), ``{}`` when none."""
    import json

    path = _run_dir(run_name, create=False) / ARTEFACTS_FILE
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return {}


def _text_of(fragment: str) -> str:
    """A piece of plotly title HTML as plain text."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def caption_of(title_html: str | None) -> str:
    """A one-line caption from a figure title: its lines joined by " · ", without the smoke banner."""
    from .style import SMOKE_BANNER

    if not title_html:
        return ""
    parts = re.split(r"<br\s*/?>", title_html, flags=re.I)
    first_sub = next((i for i, p in enumerate(parts) if "<sup>" in p or "<span" in p), len(parts))
    head = " ".join(" ".join(_text_of(p).split()) for p in parts[:first_sub])  # a wrapped first line, re-joined
    rest = [" ".join(_text_of(p).split()) for p in parts[first_sub:]]
    return " · ".join(ln for ln in [head, *rest] if ln and SMOKE_BANNER not in ln)


def _fig_title(fig: go.Figure) -> str:
    return caption_of(fig.layout.title.text if fig.layout.title is not None else None)


def save_figure(fig: go.Figure, run_name: str, name: str, caption: str = "", profile: str | None = None,
                png: bool = True) -> Path:  # fmt: skip
    """Write ``outputs/<run_name>/figures/<name>.html`` and its static copy ``<name>.png``; returns the HTML path.

    The PNG is plotly's own export (kaleido); where plotly has no browser to draw with, the HTML stands alone.

    The figure is finished in place first (:func:`orsalib.viz.style.finish`: wrapped title; the smoke banner when
    ``profile="smoke"``), so what is shown afterwards is what was saved.

    Args:
        fig: the figure.
        run_name: ``outputs/<run_name>/``.
        name: file stem, ``NN_<what>`` (NN = the notebook's number).
        caption: one line for the run's ``index.html`` (default: the figure's title).
        profile: the run's profile (``smoke`` adds the "numbers not meaningful" banner).
        png: also write the static PNG (when plotly can export here).
    """
    stem = _safe_name(name)
    finish(fig, profile)
    out = _run_dir(run_name) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.html"
    atomic_write_text(path, fig.to_html(include_plotlyjs="directory", full_html=True))
    js = out / "plotly.min.js"
    if not js.exists():
        atomic_write_text(js, get_plotlyjs())
    files = [f"figures/{stem}.html"]
    image = static_image(fig) if png else None
    if image is not None:
        atomic_write_bytes(out / f"{stem}.png", image, fsync=False)
        files.append(f"figures/{stem}.png")
    else:
        (out / f"{stem}.png").unlink(missing_ok=True)  # no stale copy of an earlier version
    record = {"kind": "figure", "name": stem, "notebook": notebook_of(stem), "caption": caption or _fig_title(fig),
              "files": files, "profile": profile}  # fmt: skip
    _register(run_name, f"figures/{stem}.html", record)
    return path


def save_table(df: pd.DataFrame, run_name: str, name: str, index: bool = False, caption: str = "") -> Path:
    """Write ``outputs/<run_name>/tables/<name>.csv`` and ``.json`` (records); returns the CSV path.

    Args:
        df: the table.
        run_name: ``outputs/<run_name>/``.
        name: file stem, ``NN_<what>`` (NN = the notebook's number).
        index: write the index as the first column(s).
        caption: one line for the run's ``index.html`` (what a row is, the unit of the numbers).
    """
    out = _run_dir(run_name) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    stem = _safe_name(name)
    frame = df.reset_index() if index else df
    atomic_write_text(out / f"{stem}.csv", frame.to_csv(index=False))
    atomic_write_json(out / f"{stem}.json", frame.to_dict(orient="records"))
    record = {"kind": "table", "name": stem, "notebook": notebook_of(stem), "caption": caption,
              "files": [f"tables/{stem}.csv", f"tables/{stem}.json"], "rows": int(len(frame)),
              "columns": [str(c) for c in frame.columns]}  # fmt: skip
    _register(run_name, f"tables/{stem}.csv", record)
    return out / f"{stem}.csv"


# ----------------------------------------------------------------------------- common figures
def confusion_figure(confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str = "Confusion matrix",
                     normalize: bool = True) -> go.Figure:
    """Heat-map of a confusion matrix (rows = true class); row-normalised in % of the true class by default.

    Each cell shows the row percentage and the count; the y labels carry each class's recall.
    """
    cm = np.asarray(confusion, dtype=float)
    rows = np.clip(cm.sum(1, keepdims=True), 1, None)
    z = 100 * cm / rows if normalize else cm
    text = [[(f"{z[i, j]:.0f}%<br>({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}")
             for j in range(cm.shape[1])] for i in range(cm.shape[0])]  # fmt: skip
    acc = 100 * np.trace(cm) / max(1.0, cm.sum())
    ylab = [f"{n} ({100 * cm[i, i] / rows[i, 0]:.0f}%)" for i, n in enumerate(class_names)] if normalize else list(
        class_names)  # fmt: skip
    fig = go.Figure(go.Heatmap(z=z, x=list(class_names), y=ylab, text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=100 if normalize else None,
                               colorbar=dict(title="% of true" if normalize else "images")))  # fmt: skip
    extra = f"accuracy {acc:.1f}% over {int(cm.sum())} images"
    full = title.replace("</sup>", f" · {extra}</sup>") if "</sup>" in title else f"{title}<br><sup>{extra}</sup>"
    fig.update_layout(title=full, xaxis_title="predicted", yaxis_title="true (recall)" if normalize else "true",
                      yaxis_autorange="reversed", width=600, height=540)  # fmt: skip
    return fig


def _label(key: str) -> str:
    k = re.sub(r"_(acc|accuracy|loss)$", "", key)
    return {"val": "valid (clean)", "valid": "valid (clean)"}.get(k, k.replace("_", " "))


def learning_curves(
    history: Sequence[Mapping[str, Any]],
    keys: Sequence[str] = ("train_acc", "val_acc"),
    title: str = "Learning curves",
    best_key: str | None = "val_acc",
    best_epoch: int | None = None,
    chance: float | None = None,
    majority: float | None = None,
) -> go.Figure:
    """Lines of per-epoch metrics (records of ``metrics.jsonl``) on whole-number epochs.

    Accuracies (keys like ``*_acc``) are drawn in %, with the chance and majority-class lines when given; the best
    epoch (``best_epoch``, or the epoch of the highest ``best_key``; the checkpoint the release selects) is marked
    by a dotted line, and by a star on the ``best_key`` curve when it is drawn.

    Args:
        history: per-epoch records with ``epoch`` and the metrics.
        keys: the metrics to draw.
        title: figure title (use :func:`orsalib.viz.style.title` to say model · dataset · split · profile).
        best_key: the metric that selects the best epoch (None: no marker).
        best_epoch: the best epoch when known (e.g. ``FitResult.best_epoch``).
        chance: chance rate (fraction, or the number of classes).
        majority: the majority-class share of the evaluated split (fraction).
    """
    fig = go.Figure()
    recs = [h for h in history if h.get("epoch") is not None]
    epochs = [int(h["epoch"]) for h in recs]
    present = [k for k in keys if any(h.get(k) is not None for h in recs)]
    acc = bool(present) and all(is_accuracy_key(k) for k in present)
    frac = acc and is_fraction(h.get(k) for h in recs for k in present)
    for k in present:
        ys = [h.get(k) for h in recs]
        ys = to_percent(ys, frac) if acc else ys
        fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=_label(k), marker=dict(size=5)))
    if best_key and best_epoch is None:
        vals = [(h.get(best_key), int(h["epoch"])) for h in recs if h.get(best_key) is not None]
        if vals:
            best_epoch = max(vals)[1] if not best_key.endswith("loss") else min(vals)[1]
    if best_epoch is not None and best_key:
        bv = next((h.get(best_key) for h in recs if int(h["epoch"]) == int(best_epoch)), None)
        on_plot = best_key in present and bv is not None
        value = (100 * bv if frac else bv) if on_plot else None
        mark_best(fig, best_epoch, value, label=f"best {_label(best_key)}", unit="%" if acc else "")
    if acc:
        percent_axis(fig)
        reference_lines(fig, chance=chance, majority=majority)
    else:
        loss = present and all(k.endswith("loss") for k in present)
        fig.update_yaxes(title_text="loss" if loss else ", ".join(present))
    epoch_axis(fig, epochs or [1])
    fig.update_layout(title=title, legend_title="accuracy" if acc else None, width=760, height=460)
    return fig


def bar_table(df: pd.DataFrame, x: str, y: str, color: str | None = None, error: str | None = None,
              title: str = "", n_seeds: int | None = None, y_title: str | None = None, chance: float | None = None,
              majority: float | None = None, percent: bool = False) -> go.Figure:  # fmt: skip
    """Grouped bars from a tidy frame.

    Args:
        df: one row per bar.
        x, y, color: columns for the category, the value and the bar colour (series).
        error: a column of error half-widths (drawn only with ``n_seeds >= 2``; ``n_seeds=None`` reads the frame's
            ``n_seeds`` column when present, else draws them).
        title: figure title.
        y_title: axis title (default: the column name).
        chance, majority: reference lines (fractions) on a percent axis.
        percent: ``y`` is an accuracy in % (axis labelled, chance/majority lines drawn).
    """
    if error and n_seeds is None and "n_seeds" in df.columns:
        n_seeds = int(df["n_seeds"].min())
    show_err = bool(error) and (n_seeds is None or n_seeds >= 2)
    fig = go.Figure()
    groups = [(None, df)] if color is None else list(df.groupby(color, sort=False))
    for g, sub in groups:
        fig.add_trace(go.Bar(x=sub[x], y=sub[y], name=str(g) if g is not None else y,
                             error_y=dict(type="data", array=sub[error], visible=True) if show_err else None))
    fig.update_layout(title=title, barmode="group", xaxis_title=x, yaxis_title=y_title or y,
                      legend_title=color)  # fmt: skip
    if percent:
        percent_axis(fig, label=y_title or "accuracy (%)")
        reference_lines(fig, chance=chance, majority=majority)
    return fig


__all__ = [
    "ARTEFACTS_FILE",
    "bar_table",
    "caption_of",
    "confusion_figure",
    "learning_curves",
    "notebook_of",
    "read_artefacts",
    "save_figure",
    "save_table",
]
