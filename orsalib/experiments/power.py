"""What a budget can resolve: the minimum detectable differences of a table's claims against the paper's deltas, and
what the powered ``study=True`` settings would run (notebooks 60, 70, 71)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .verdicts import NOT_MEASURED, Verdict


def _n_study_of(v: Verdict, n_study: int | Mapping[str, int] | None) -> int | None:
    if n_study is None or isinstance(n_study, int):
        return n_study
    return next((int(n) for key, n in n_study.items() if key in v.claim), None)


def power_summary(verdicts: Sequence[Verdict], *, n_study: int | Mapping[str, int] | None = None) -> dict[str, Any]:
    """The minimum detectable differences of a notebook's claims, for its ``results/NN_*.json`` (claims without an MDE,
    e.g. two models that agree on every image, are left out).

    Args:
        verdicts: one table's claims (those ``not measured`` count only for the paper's deltas).
        n_study: items x seeds per claim of the ``study=True`` settings (an int, or ``{text in the claim: n}``,
            e.g. per scene); the expected MDE there is this run's MDE scaled by ``sqrt(n / n_study)`` (the spread of
            the per-item differences seen here; a better-trained pair disagrees less, so this is conservative).

    Returns:
        ``{"unit", "n" (median items x seeds per claim), "mde_median", "mde_min", "mde_max",
        "mde_over_seeds_median", "paper_delta_min", "paper_delta_max", "paper_deltas_detectable" ("k of m": paper
        deltas at or above their claim's MDE), "study_mde_median", "mde": {claim: MDE}}`` (points; None where not
        computable).
    """
    shown = [v for v in verdicts if v.verdict != NOT_MEASURED and math.isfinite(v.mde)]
    mdes = np.array([v.mde for v in shown], dtype=np.float64)
    papers = [abs(v.paper_delta) for v in verdicts if v.paper_delta is not None]
    with_paper = [v for v in shown if v.paper_delta is not None]
    study = []
    for v in shown:
        n = _n_study_of(v, n_study)
        if n and v.n:
            study.append(v.mde * math.sqrt(v.n * max(1, v.n_seeds) / n))

    def r(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(float(x), 2)

    return {
        "unit": ", ".join(dict.fromkeys(v.unit for v in shown)),
        "n": int(np.median([v.n for v in shown])) if shown else 0,
        "mde_median": r(float(np.median(mdes))) if mdes.size else None,
        "mde_min": r(float(mdes.min())) if mdes.size else None,
        "mde_max": r(float(mdes.max())) if mdes.size else None,
        "paper_delta_min": r(min(papers)) if papers else None,
        "paper_delta_max": r(max(papers)) if papers else None,
        "paper_deltas_detectable": f"{sum(abs(v.paper_delta) >= v.mde for v in with_paper)} of {len(with_paper)}",
        "study_mde_median": r(float(np.median(study))) if study else None,
        "mde": {v.claim: r(v.mde) for v in shown},
    }


def power_statement(
    verdicts: Sequence[Verdict],
    table: str,
    *,
    study: bool,
    study_settings: str = "",
    study_minutes: float | None = None,
    n_study: int | Mapping[str, int] | None = None,
    target: float = 2.0,
) -> str:
    """What this budget can resolve for one table, in plain words: the MDE (80 % power, alpha 0.05) against the
    paper's deltas, and (quick runs) what ``study=True`` runs, how long it takes and the MDE expected there."""
    ps = power_summary(verdicts, n_study=n_study)
    if ps["mde_median"] is None:
        return f"{table}: no claim measured in this run, so no minimum detectable difference."
    pmin, pmax = ps["paper_delta_min"], ps["paper_delta_max"]
    paper = f"The paper's {table} deltas are {pmin:.2f}-{pmax:.2f} points" if pmin is not None else "The paper " \
        "gives no deltas"  # fmt: skip
    head = (f"{table}: this run detects differences >= {ps['mde_median']:.2f} points (80 % power, alpha 0.05; median "
            f"MDE of {len(ps['mde'])} claims, range {ps['mde_min']:.2f}-{ps['mde_max']:.2f}, "
            f"{ps['n']} {ps['unit']} per claim)")  # fmt: skip
    text = f"{head}. {paper}; {ps['paper_deltas_detectable']} are at or above their claim's MDE."
    if study:
        return text + " This is the powered run (study=True)."
    when = f"about {_duration(study_minutes)} on 2 CPU cores" if study_minutes else "run time: see the title cell"
    expect = (f"; expected MDE there about {ps['study_mde_median']:.2f} points at the disagreement seen here"
              if ps["study_mde_median"] is not None else "")  # fmt: skip
    settings = f"{study_settings}; {when}" if study_settings else when
    if ps["mde_median"] <= target:
        return text + f" Differences of about {target:g} points are resolvable at this budget."
    return text + f" Run with study=True ({settings}) to resolve differences of about {target:g} points{expect}."


def _duration(minutes: float) -> str:
    return f"{minutes:.0f} minutes" if minutes < 90 else f"{minutes / 60:.1f} hours"


__all__ = ["power_statement", "power_summary"]
