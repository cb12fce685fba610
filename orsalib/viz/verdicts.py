"""The verdict of every paper claim, drawn: our difference over seeds with its interval beside the paper's difference.

:func:`verdict_figure` is a forest plot, one row per claim (``orsalib.experiments.claims``): the point is our
difference (points, A - B over the seeds, positive in the claim's direction), the bar the interval that matches the
verdict (Holm within the table), the colour the verdict, the open diamond the paper's difference.
:func:`verdict_block` is what every notebook with claims runs: record, decide, write the table, draw, show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from ..experiments.verdicts import NOT_MEASURED, Verdict, adjust, verdict_table

#: one colour per verdict.
VERDICT_COLORS: dict[str, str] = {"holds": "#2ca02c", "reversed": "#d62728", "not resolved": "#7f7f7f"}


def _label(v: Verdict, width: int) -> str:
    text = f"{v.table.replace('Table ', 'T')} · {v.claim}"
    return text if len(text) <= width else text[: width - 3] + "..."


def verdict_figure(verdicts: Sequence[Verdict], title: str = "Paper claims: our difference over seeds and its interval",
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
        hi = [v.ci_high - v.delta if math.isfinite(v.ci_high) else 0.0 for _, v in rows]  # one-sided: no bar
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


def verdict_block(
    run_name: str,
    verdicts: Sequence[Verdict],
    *,
    stem: str,
    title: str,
    caption: str,
    profile: str | None = None,
    record: bool = True,
) -> tuple[list[Verdict], Any]:
    """Record ``verdicts`` in ``results/verdicts.json`` (``record``; each table decided as a family there), write
    the table ``tables/<stem>`` and the figure ``figures/<stem>``, show the figure; returns the decided rows and
    the table. With ``record=False`` the rows are decided among themselves and nothing is merged."""
    from ..experiments import claims
    from . import core, export

    if record:
        claims.record_verdicts(run_name, verdicts, profile=profile)
        keys = {(v.table, v.claim) for v in verdicts}
        decided = [v for v in claims.load_verdicts(run_name, complete=False) if (v.table, v.claim) in keys]
    else:
        decided = adjust([Verdict(**v.to_dict()) for v in verdicts])
    df = verdict_table(decided)
    core.save_table(df, run_name, stem, caption=caption)
    fig = verdict_figure(decided, title=title)
    core.save_figure(fig, run_name, stem, profile=profile)
    export.show(fig)
    return decided, df


def calibration_figure(cal: dict, title: str = "Calibration: A/A comparisons of one configuration") -> go.Figure:
    """The A/A comparisons of ``results/calibration.json``: each difference with its interval, coloured by verdict
    (every one should be "not resolved"; a false verdict is drawn in its colour)."""
    rows = [r for r in cal.get("comparisons", []) if r.get("delta") is not None]
    fig = go.Figure()
    for verdict, color in VERDICT_COLORS.items():
        sel = [r for r in rows if r["verdict"] == verdict]
        if not sel:
            continue
        hi = [(r["ci_high"] - r["delta"]) if r.get("ci_high") is not None else 0.0 for r in sel]
        lo = [(r["delta"] - r["ci_low"]) if r.get("ci_low") is not None else 0.0 for r in sel]
        fig.add_trace(go.Scatter(x=[r["comparison"] for r in sel], y=[r["delta"] for r in sel], mode="markers",
                                 name=verdict, marker=dict(color=color, size=8),
                                 error_y=dict(type="data", array=hi, arrayminus=lo, visible=True)))  # fmt: skip
    fig.add_hline(y=0, line_dash="dash", line_color="#444444")
    rate = cal.get("false_verdict_rate")
    sub = (f"{cal.get('n_false', 0)} of {cal.get('n_comparisons', 0)} false verdicts ({100 * rate:.1f} %, nominal 5 %)"
           if rate is not None else "no comparison judged")  # fmt: skip
    fig.update_layout(title=f"{title}<br><sup>{sub}</sup>", height=340, width=720, legend_title="verdict",
                      xaxis_title="A/A comparison (3 vs 3 seeds)", yaxis_title="A − B (points)")  # fmt: skip
    return fig


__all__ = ["VERDICT_COLORS", "calibration_figure", "verdict_block", "verdict_figure"]
