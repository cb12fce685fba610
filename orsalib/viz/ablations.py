"""Figure of the ablation study (paper Table 6): accuracy per variant and evaluation set."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from .style import error_bars, percent_axis, reference_lines, seeds_phrase

_SET_NAMES = {"clean_acc": "clean", "occluded_acc": "artificial occlusion", "real_occluded_acc": "real occlusion"}


def ablation_figure(summary: pd.DataFrame, metrics: Sequence[str], title: str = "Ablations (last epoch)",
                    num_classes: int | None = None, majority: float | None = None) -> go.Figure:  # fmt: skip
    """Grouped bars: one group per variant, one bar per evaluation set (accuracy %, mean over seeds).

    The std over seeds is drawn only with at least two seeds (the title says how many); the dashed lines are chance
    (1 / ``num_classes``) and the majority-class share when given.

    Args:
        summary: :func:`orsalib.experiments.ablations.summarise` (``variant``, ``n_seeds``, ``<m>_mean``, ``<m>_std``).
        metrics: the metric names (``clean_acc``, ``occluded_acc``, ``real_occluded_acc``).
        title: the first title line (use :func:`orsalib.viz.style.title` for model · dataset · split · profile).
        num_classes: for the chance line.
        majority: majority-class share (fraction) of the evaluated split.
    """
    n_seeds = int(summary["n_seeds"].min()) if len(summary) else 0
    fig = go.Figure()
    for m in metrics:
        if f"{m}_mean" not in summary:
            continue
        fig.add_trace(go.Bar(name=_SET_NAMES.get(m, m), x=summary["variant"], y=summary[f"{m}_mean"],
                             error_y=error_bars(summary[f"{m}_std"], n_seeds)))  # fmt: skip
    phrase = seeds_phrase(n_seeds)
    full = title.replace("</sup>", f" · {phrase}</sup>") if "</sup>" in title else f"{title}<br><sup>{phrase}</sup>"
    fig.update_layout(barmode="group", title=full, legend_title="evaluated on", xaxis_tickangle=-20,
                      width=max(700, 110 * len(summary) + 260), height=480)  # fmt: skip
    percent_axis(fig)
    reference_lines(fig, chance=(1.0 / num_classes) if num_classes else None, majority=majority)
    return fig


__all__ = ["ablation_figure"]
