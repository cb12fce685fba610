"""A verdict for every paper claim: a method comparison with its uncertainty, decided within its table's family.

A claim "A is better than B" is measured on several independent trainings (seeds) of each method, every run
evaluated on the same items (images; pixels grouped into scene blocks): :func:`orsalib.stats.crossed_effect` gives
the difference with a standard error that carries the training-seed variance and the item sampling (items resampled
jointly across seeds, never counted once per seed). :func:`measured` turns it into a :class:`Verdict` row;
:func:`adjust` then decides every row of a table together: Holm's step-down adjustment within the table (the
family), *holds* when the adjusted p is below 0.05 and the delta points the claimed way, *reversed* when it points
the other way (two-sided tests only), *not resolved* otherwise. The printed interval is the one that matches that
decision (level ``1 - 0.05 * p / p_adjusted``, in ``ci_level``). A method trained once (one seed) is not a method
comparison: such a row never reads *holds* or *reversed*. A claim whose data this run lacks, or whose models did
not learn, is *not measured* with the reason (:func:`not_measured`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from .. import stats
from ..utils import atomic_write_text

NOT_MEASURED = "not measured"
VERDICTS: tuple[str, ...] = ("holds", "reversed", "not resolved", NOT_MEASURED)
ALPHA = stats.ALPHA
#: the note of a comparison with one training run per method
ONE_RUN = "one training run: not a method comparison"


@dataclass
class Verdict:
    """One claim, measured. Accuracies and differences in points (%)."""

    claim: str  # e.g. "ORSANet beats the prior-free baseline (clean)"
    table: str  # the paper table (the family of the multiplicity adjustment), e.g. "Table 2"
    paper: str  # the paper's numbers behind the claim, as text
    ours: str  # our two numbers, as text (means over seeds)
    delta: float  # ours, A - B (points), mean over A's seeds minus mean over B's
    ci_low: float  # the interval that matches the verdict (level ci_level; one-sided: one bound infinite)
    ci_high: float
    p: float  # unadjusted, of the t statistic (two-sided, or one-sided in the claimed direction)
    n: int  # evaluated items per run
    unit: str  # "images", "pixels (8x8 blocks)", ...
    verdict: str  # holds | reversed | not resolved | not measured
    mde: float  # minimum detectable difference at this budget (points), 80 % power, unadjusted alpha
    paper_delta: float | None = None  # the paper's A - B (points) when it gives both numbers
    seeds: list[int] = field(default_factory=list)
    note: str = ""
    source: str = ""  # the notebook that measured it, e.g. "50_evaluation_occlusion"
    dataset: str = ""  # the dataset's registry name
    data: str = ""  # the data used, in words ("digits, 10 classes (CIFAR-10 not found)")
    p_adjusted: float = float("nan")  # Holm within the table
    adjust_method: str = ""  # "holm (m = 21, Table 3)"
    n_seeds: int = 0  # training runs per method (the smaller of the two)
    resampling: str = ""  # how the uncertainty was obtained, in words
    se: float = float("nan")
    df: float = float("nan")
    alternative: str = "two-sided"
    expected: int = 1  # +1: the claim says A > B
    ci_level: float = 1 - ALPHA
    one_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def resolved(self) -> bool:
        """Takes part in its table's family: measured, finite p, more than one run per method."""
        return self.verdict != NOT_MEASURED and not self.one_run and math.isfinite(self.p)


def not_measured(
    claim: str, table: str, paper: str, note: str, *, paper_delta: float | None = None, source: str = "",
    dataset: str = "", data: str = "",
) -> Verdict:  # fmt: skip
    """The row of a claim this run has no data for (``note`` says why): no delta, no CI, verdict ``not measured``."""
    nan = float("nan")
    return Verdict(
        claim=claim, table=table, paper=paper, ours="", delta=nan, ci_low=nan, ci_high=nan, p=nan, n=0, unit="",
        verdict=NOT_MEASURED, mde=nan, paper_delta=paper_delta, note=note, source=source, dataset=dataset, data=data,
    )  # fmt: skip


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def measured(
    claim: str,
    table: str,
    paper: str,
    effect: stats.Effect,
    *,
    ours: str = "",
    expected: int = 1,
    paper_delta: float | None = None,
    seeds: Sequence[int] = (),
    note: str = "",
    unit: str = "images",
    source: str = "",
    dataset: str = "",
    data: str = "",
) -> Verdict:
    """The row of a measured claim, decided on its own (a family of one) until :func:`adjust` decides its table."""
    if expected not in (1, -1):
        raise ValueError(f"expected must be +1 or -1, got {expected!r}")
    if effect.one_run:
        note = _join(note, ONE_RUN)
    elif not math.isfinite(effect.p):
        note = _join(note, "no spread between runs or items (the two agree everywhere): no test, no verdict")
    v = Verdict(
        claim=claim, table=table, paper=paper, ours=ours or f"{effect.value_a:.2f} vs {effect.value_b:.2f}",
        delta=effect.delta, ci_low=float("nan"), ci_high=float("nan"), p=effect.p, n=effect.n_items, unit=unit,
        verdict="not resolved", mde=effect.mde(), paper_delta=paper_delta, seeds=[int(s) for s in seeds], note=note,
        source=source, dataset=dataset, data=data, n_seeds=effect.n_seeds, resampling=effect.resampling,
        se=effect.se, df=effect.df, alternative=effect.alternative, expected=expected, one_run=effect.one_run,
    )  # fmt: skip
    return _decide(v, effect.p, "none (one claim)")


def _decide(v: Verdict, p_adj: float, method: str) -> Verdict:
    v.p_adjusted, v.adjust_method = float(p_adj), method
    v.ci_level = stats.decision_level(v.p, p_adj) if math.isfinite(p_adj) else 1 - ALPHA
    v.ci_low, v.ci_high = stats.interval(v.delta, v.se, v.df, v.ci_level, v.alternative)
    if v.one_run or not math.isfinite(v.p):
        v.verdict = "not resolved"
    else:
        v.verdict = stats.decide(v.delta, p_adj, v.expected, v.alternative)
    return v


def adjust(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Decide every row within its table: Holm over the resolved rows of each table (``stats.holm``), the verdict
    from the adjusted p and the delta's direction, the CI at the matching level. Returns the rows (changed in
    place); rows that are not measured, one-run or without a p keep ``not measured`` / ``not resolved``."""
    by_table: dict[str, list[Verdict]] = {}
    for v in verdicts:
        if v.verdict == NOT_MEASURED:
            continue
        if v.resolved:
            by_table.setdefault(v.table, []).append(v)
        else:
            _decide(v, float("nan"), "")
    for table, rows in by_table.items():
        adj = stats.holm([v.p for v in rows])
        for v, pa in zip(rows, adj):
            _decide(v, float(pa), f"{stats.ADJUST_METHOD} (m = {len(rows)}, {table})")
    return list(verdicts)


def _round(x: float | None, digits: int = 2) -> float | None:
    return round(float(x), digits) if x is not None and math.isfinite(x) else None


def ci_text(v: Verdict) -> str:
    """``[+1.20, +3.40]`` (``[+1.20, inf)`` one-sided); empty when not computable."""
    lo, hi = v.ci_low, v.ci_high
    if not (math.isfinite(lo) or math.isfinite(hi)) or (math.isnan(lo) or math.isnan(hi)):
        return ""
    left = f"[{lo:+.2f}" if math.isfinite(lo) else "(-inf"
    right = f"{hi:+.2f}]" if math.isfinite(hi) else "inf)"
    return f"{left}, {right}"


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per claim, rounded for reading (the JSON keeps full precision); empty cells where not computable."""
    rows = []
    for v in verdicts:
        rows.append({
            "table": v.table, "claim": v.claim, "paper": v.paper, "paper Δ": _round(v.paper_delta), "ours": v.ours,
            "delta": _round(v.delta), "CI": ci_text(v),
            "CI level": f"{100 * v.ci_level:.2f}%" if v.verdict != NOT_MEASURED else "",
            "p": _round(v.p, 4), "p (Holm)": _round(v.p_adjusted, 4), "seeds": v.n_seeds or "",
            "n": f"{v.n} {v.unit}" if v.unit else "", "MDE": _round(v.mde), "verdict": v.verdict,
            "data": v.data,
        })  # fmt: skip
    cols = ["table", "claim", "paper", "paper Δ", "ours", "delta", "CI", "CI level", "p", "p (Holm)", "seeds", "n",
            "MDE", "verdict", "data"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _finite(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def write_verdicts(verdicts: Sequence[Verdict], path: str | Path, **context: Any) -> Path:
    """``verdicts.json``: ``{"verdicts": [...], **context}`` (NaN as null, infinite bounds as "inf"), atomically."""
    items = [{k: _finite(v) for k, v in x.to_dict().items()} for x in verdicts]
    return atomic_write_text(Path(path), json.dumps({**context, "verdicts": items}, indent=2) + "\n")


_FLOATS = ("delta", "ci_low", "ci_high", "p", "mde", "p_adjusted", "se", "df", "ci_level")


def _float(v: Any) -> float:
    if v is None:
        return float("nan")
    if v in ("inf", "-inf"):
        return float(v)
    return float(v)


def read_verdicts(path: str | Path) -> list[Verdict]:
    """The verdicts of a ``verdicts.json`` (null read back as NaN; keys this version does not know are ignored)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    known = {f.name for f in fields(Verdict)}
    out = []
    for d in raw.get("verdicts", []):
        d = {k: (_float(v) if k in _FLOATS else v) for k, v in d.items() if k in known}
        out.append(Verdict(**d))
    return out


__all__ = [
    "NOT_MEASURED",
    "ONE_RUN",
    "VERDICTS",
    "Verdict",
    "adjust",
    "ci_text",
    "measured",
    "not_measured",
    "read_verdicts",
    "verdict_table",
    "write_verdicts",
]
