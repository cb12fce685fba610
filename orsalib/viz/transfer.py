"""Figures of the DARELoss transfer experiments (paper Tables 7/8): per-class accuracy and paired gains.

Accuracies are in % (the transfer runs store them so); error bars only with at least two seeds; titles say the
dataset, the split (the test split, last epoch), the number of seeds and the profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..experiments.transfer import metric_names, paired_differences
from .style import MODEL_COLORS, VARIANT_COLORS, error_bars, reference_lines, seeds_phrase
from .style import title as make_title


def _context(runs: pd.DataFrame) -> tuple[str, int]:
    dataset = str(runs.dataset.iloc[0]) if len(runs) and "dataset" in runs else ""
    seeds = int(runs.seed.nunique()) if len(runs) and "seed" in runs else 0
    return dataset, seeds


def per_class_figure(runs: pd.DataFrame, class_names: Sequence[str], title: str = "",
                     profile: str | None = None) -> go.Figure:  # fmt: skip
    """Per-class accuracy (%, last epoch, test split), with vs without DARELoss, one bar group per class.

    Bars are the mean over seeds; the spread (std) is drawn only with at least two seeds. The dashed line is chance
    (1 / number of classes).
    """
    fig = go.Figure()
    dataset, n_seeds = _context(runs)
    groups = list(runs.groupby(["task", "model"], sort=False))
    for k, ((task, model), g) in enumerate(groups):
        # one model: grey (without) vs red (with); several: one colour per model, "without" paler
        colors = VARIANT_COLORS if len(groups) == 1 else {"without": MODEL_COLORS[k % len(MODEL_COLORS)],
                                                          "with": MODEL_COLORS[k % len(MODEL_COLORS)]}
        for v in ("without", "with"):
            pcs = np.array([np.asarray(p, dtype=float) for p in g[g.variant == v].per_class])
            if pcs.size == 0:
                continue
            mean = np.nanmean(pcs, axis=0)
            err = error_bars(np.nanstd(pcs, axis=0, ddof=1) if len(pcs) > 1 else None, len(pcs))
            fig.add_trace(
                go.Bar(
                    name=f"{model} ({task}) {v} DARE",
                    x=list(class_names),
                    y=mean,
                    error_y=err,
                    marker_color=colors[v],
                    opacity=1.0 if v == "with" else (0.6 if len(groups) == 1 else 0.4),
                    legendgroup=f"{task}/{model}",
                    offsetgroup=f"{task}/{model}/{v}",
                )
            )
    what = title or "Per-class accuracy, last epoch"
    fig.update_layout(
        barmode="group",
        title=make_title(what, dataset=dataset, split="test split", profile=profile,
                          extra=seeds_phrase(n_seeds) if n_seeds else None),  # fmt: skip
        yaxis_title="accuracy (%)",
        xaxis_tickangle=-40,
        height=480,
        width=max(640, 60 * len(class_names) + 260),
    )
    if len(class_names):
        reference_lines(fig, chance=1.0 / len(class_names))
    return fig


def delta_figure(runs: pd.DataFrame, kind: str, title: str = "", profile: str | None = None) -> go.Figure:
    """Paired difference (with - without, percentage points) of the headline metric, one marker per seed, per model.

    With one seed each box is a single point: the figure says so (no spread to judge the gain against).
    """
    m = metric_names(kind)[0]
    d = paired_differences(runs, [m])
    dataset, n_seeds = _context(runs)
    fig = go.Figure()
    labels = [f"{t} / {mo}" for t, mo in zip(d.task, d.model)]
    fig.add_trace(go.Box(x=labels, y=d[m], boxpoints="all", name=f"Δ {m} (last epoch)"))
    fig.add_hline(y=0, line_dash="dot")
    unit = "" if m == "kappa" else " (points)"
    what = title or f"DARELoss gain per seed (with − without), {m}"
    fig.update_layout(
        title=make_title(what, dataset=dataset, split="test split", profile=profile,
                          extra=f"{n_seeds} seed{'s' if n_seeds != 1 else ''}" if n_seeds else None),  # fmt: skip
        yaxis_title=f"Δ {m}{unit}",
        width=max(560, 120 * max(1, len(set(labels))) + 240),
        height=440,
    )
    return fig


__all__ = ["delta_figure", "per_class_figure"]
