"""The verdict of every paper claim, drawn: our paired difference with its 95 % CI beside the paper's difference.

:func:`verdict_figure` is a forest plot, one row per claim (``orsalib.experiments.claims``): the point is our mean
paired difference (points, A - B, positive in the claim's direction), the bar its 95 % CI, the colour the verdict,
the open diamond the paper's difference. A CI across the 0 line is a claim this budget does not resolve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from ..experiments.verdicts import NOT_MEASURED, Verdict

#: one colour per verdict.
VERDICT_COLORS: dict[str, str] = {"holds": "#2ca02c", "reversed": "#d62728", "not resolved": "#7f7f7f"}


def _label(v: Verdict, width: int) -> str:
    text = f"{v.table.replace('Table ', 'T')} · {v.claim}"
    return text if len(text) <= width else text[: width - 3] + "..."


def verdict_figure(verdicts: Sequence[Verdict], title: str = "Paper claims: our paired difference and its 95% CI",
                   width: int = 95) -> go.Figure:  # fmt: skip
    """Forest plot of ``verdicts`` (those ``not measured`` are counted in the subtitle, not drawn).

    Args:
        verdicts: :class:`orsalib.experiments.verdicts.Verdict` rows (e.g. ``claims.load_verdicts(run)``).
        title: the first title line (use :func:`orsalib.viz.style.title` for model · dataset · profile).
        width: claim labels are cut to this many characters.
    """
    shown = [v for v in verdicts if v.verdict != NOT_MEASURED and math.isfinite(v.delta)]
    missing = len(verdicts) - len(shown)
    labels = [_label(v, width) for v in shown]
    fig = go.Figure()
    for verdict, color in VERDICT_COLORS.items():
        rows = [(lab, v) for lab, v in zip(labels, shown) if v.verdict == verdict]
        if not rows:
            continue
        hi = [v.ci_high - v.delta if math.isfinite(v.ci_high) else 0.0 for _, v in rows]
        lo = [v.delta - v.ci_low if math.isfinite(v.ci_low) else 0.0 for _, v in rows]
        fig.add_trace(go.Scatter(
            x=[v.delta for _, v in rows], y=[lab for lab, _ in rows], mode="markers", name=verdict,
            marker=dict(color=color, size=9), error_x=dict(type="data", array=hi, arrayminus=lo, visible=True),
            customdata=[[v.paper, v.ours, v.n, v.unit] for _, v in rows],
            hovertemplate="%{y}<br>ours %{x:+.2f} points (%{customdata[1]}; n = %{customdata[2]} "
                          "%{customdata[3]})<br>paper: %{customdata[0]}<extra>" + verdict + "</extra>",
        ))  # fmt: skip
    paper = [(lab, v.paper_delta) for lab, v in zip(labels, shown) if v.paper_delta is not None]
    if paper:
        fig.add_trace(go.Scatter(x=[d for _, d in paper], y=[lab for lab, _ in paper], mode="markers",
                                 name="paper's difference", marker=dict(symbol="diamond-open", size=10,
                                                                        color="#1f77b4")))  # fmt: skip
    fig.add_vline(x=0, line_dash="dash", line_color="#444444")
    sub = f"{len(shown)} claims measured" + (f", {missing} not measured" if missing else "")
    full = title.replace("</sup>", f" · {sub}</sup>") if "</sup>" in title else f"{title}<br><sup>{sub}</sup>"
    fig.update_layout(
        title=full, height=max(320, 30 * len(shown) + 190), width=1150, legend_title="verdict",
        xaxis_title="difference (points): A − B, > 0 in the claim's direction", xaxis_zeroline=False,
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


__all__ = ["VERDICT_COLORS", "verdict_figure"]
