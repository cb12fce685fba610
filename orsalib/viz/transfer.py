"""Figures of the DARELoss transfer experiments (paper Tables 7/8): per-class accuracy and paired gains."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..experiments.transfer import metric_names, paired_differences
from .style import VARIANT_COLORS


def per_class_figure(runs: pd.DataFrame, class_names: Sequence[str], title: str = "") -> go.Figure:
    """Per-class accuracy (last epoch, mean over seeds), with vs without DARELoss, one bar group per class."""
    fig = go.Figure()
    colors = VARIANT_COLORS
    for (task, model), g in runs.groupby(["task", "model"], sort=False):
        for v in ("without", "with"):
            pcs = np.array([np.asarray(p, dtype=float) for p in g[g.variant == v].per_class])
            if pcs.size == 0:
                continue
            mean = np.nanmean(pcs, axis=0)
            err = np.nanstd(pcs, axis=0) if len(pcs) > 1 else None
            fig.add_trace(
                go.Bar(
                    name=f"{model} ({task}) {v} DARE",
                    x=list(class_names),
                    y=mean,
                    error_y=dict(type="data", array=err) if err is not None else None,
                    marker_color=colors[v],
                    opacity=1.0 if v == "with" else 0.6,
                    legendgroup=f"{task}/{model}",
                    offsetgroup=f"{task}/{model}/{v}",
                )
            )
    dataset = runs.dataset.iloc[0] if len(runs) else ""
    fig.update_layout(
        barmode="group",
        title=title or f"Per-class accuracy, last epoch — {dataset}",
        yaxis_title="accuracy (%)",
        xaxis_tickangle=-40,
        height=480,
    )
    return fig


def delta_figure(runs: pd.DataFrame, kind: str, title: str = "") -> go.Figure:
    """Paired difference (with - without) of the headline metric per seed, one marker per seed, per model."""
    m = metric_names(kind)[0]
    d = paired_differences(runs, [m])
    fig = go.Figure()
    labels = [f"{t} / {mo}" for t, mo in zip(d.task, d.model)]
    fig.add_trace(go.Box(x=labels, y=d[m], boxpoints="all", name=f"Δ {m} (last epoch)"))
    fig.add_hline(y=0, line_dash="dot")
    dataset = runs.dataset.iloc[0] if len(runs) else ""
    fig.update_layout(title=title or f"DARELoss gain per seed (with − without) — {dataset}", yaxis_title=f"Δ {m}")
    return fig



__all__ = ["delta_figure", "per_class_figure"]
