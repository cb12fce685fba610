"""A verdict for every paper claim: paired differences with their uncertainty, never a bare number.

Two units of pairing:

- **images** (Tables 2-4 analogues: two models scored on the same images): the per-image difference of correctness
  (or of any per-image score, e.g. the drop from clean to occluded), a paired percentile bootstrap CI over images,
  and McNemar's exact test on the discordant pairs;
- **seeds** (Tables 6-8 analogues: a variant trained with several seeds, paired by seed): the mean of the per-seed
  differences, a t-interval over seeds and the paired t-test.

A claim "A is better than B" (``expected=+1``) *holds* when the whole 95 % CI of A - B lies above 0, is *reversed*
when it lies below 0, and is *not resolved* when it contains 0 (on images, also when the paired test says p >= 0.05:
on few images the percentile bootstrap is too narrow); a claim whose data this run lacks is *not measured*
(:func:`not_measured`). Beside it, the minimum detectable difference (MDE) at this budget: the true difference that
a paired test at alpha 0.05 would detect with 80 % power, given the spread seen here. A verdict is computed, never
tuned toward. :mod:`orsalib.experiments.claims` turns the notebooks' results into one verdict per paper claim.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..utils import atomic_write_text

NOT_MEASURED = "not measured"
VERDICTS: tuple[str, ...] = ("holds", "reversed", "not resolved", NOT_MEASURED)
_Z_POWER = 0.8416212335729143  # z of 80 % power
ALPHA = 0.05  # the CIs are 1 - ALPHA; on images a verdict also needs the paired test's p < ALPHA


@dataclass
class Verdict:
    """One claim, measured. Accuracies and differences in points (%)."""

    claim: str  # e.g. "ORSANet beats the prior-free baseline (clean)"
    table: str  # the paper table, e.g. "Table 2"
    paper: str  # the paper's numbers behind the claim, as text
    ours: str  # our two numbers, as text
    delta: float  # ours, A - B (points), in the claim's direction when expected=+1
    ci_low: float
    ci_high: float
    p: float  # McNemar (images) or paired t-test (seeds); NaN when not computable
    n: int  # images, or seeds
    unit: str  # "images" or "seeds"
    verdict: str  # holds | reversed | not resolved
    mde: float  # minimum detectable difference at this budget (points)
    paper_delta: float | None = None  # the paper's A - B (points) when it gives both numbers
    seeds: list[int] = field(default_factory=list)
    note: str = ""
    source: str = ""  # the notebook that measured it, e.g. "50_evaluation_occlusion"
    dataset: str = ""  # what it was measured on (our data, not the paper's)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def not_measured(
    claim: str, table: str, paper: str, note: str, *, paper_delta: float | None = None, source: str = "",
    dataset: str = "",
) -> Verdict:  # fmt: skip
    """The row of a claim this run has no data for (``note`` says why): no delta, no CI, verdict ``not measured``."""
    nan = float("nan")
    return Verdict(
        claim=claim, table=table, paper=paper, ours="", delta=nan, ci_low=nan, ci_high=nan, p=nan, n=0, unit="",
        verdict=NOT_MEASURED, mde=nan, paper_delta=paper_delta, note=note, source=source, dataset=dataset,
    )  # fmt: skip


def verdict_of(low: float, high: float, expected: int = 1) -> str:
    """``holds`` / ``reversed`` / ``not resolved`` for a CI of A - B and the claimed sign (+1: A > B)."""
    if expected not in (1, -1):
        raise ValueError(f"expected must be +1 or -1, got {expected!r}")
    lo, hi = (low, high) if expected == 1 else (-high, -low)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "not resolved"
    if lo > 0:
        return "holds"
    if hi < 0:
        return "reversed"
    return "not resolved"


def paired_bootstrap(diff: Sequence[float], n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple:
    """Mean of per-item paired differences and its percentile bootstrap ``(1 - alpha)`` CI.

    Args:
        diff: per-image differences (e.g. correct_A - correct_B, in 0/±1).
    Returns:
        ``(mean, low, high)`` in the units of ``diff``.
    """
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"diff must be a non-empty 1-d array, got shape {d.shape}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(int(n_boot), d.size))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(lo), float(hi)


def mcnemar_p(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> float:
    """Two-sided exact McNemar test: are the discordant pairs (A right / B wrong vs the reverse) balanced?"""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must have the same shape, got {a.shape} and {b.shape}")
    n01, n10 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if n01 + n10 == 0:
        return 1.0
    return float(stats.binomtest(n01, n01 + n10, 0.5).pvalue)


def mde_points(sd: float, n: int, alpha: float = 0.05) -> float:
    """Minimum detectable mean difference of a paired design (normal approximation, 80 % power)."""
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    return float((stats.norm.ppf(1 - alpha / 2) + _Z_POWER) * sd / math.sqrt(n))


def compare_scores_on_images(
    claim: str,
    table: str,
    paper: str,
    diff: Sequence[float],
    ours: str,
    *,
    expected: int = 1,
    paper_delta: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    note: str = "",
    p: float | None = None,
) -> Verdict:
    """Verdict from any per-image paired score difference (e.g. drop of B minus drop of A, Table 3).

    ``p`` defaults to the Wilcoxon signed-rank test of ``diff`` (1.0 when every difference is 0). The verdict is that
    of the bootstrap CI, except that a CI excluding 0 with ``p >= 0.05`` stays *not resolved* (on few images the
    percentile bootstrap is too narrow; the note says so).
    """
    d = np.asarray(diff, dtype=np.float64)
    mean, lo, hi = paired_bootstrap(d, n_boot=n_boot, seed=seed)
    if p is None:
        p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) and d.size > 1 else 1.0
    verdict = verdict_of(lo, hi, expected)
    if verdict != "not resolved" and not p < ALPHA:
        # few images: the percentile bootstrap is too narrow; the exact test has the last word
        verdict = "not resolved"
        note = (note + "; " if note else "") + f"the bootstrap CI excludes 0 but the paired test does not (p = {p:.3g})"
    return Verdict(
        claim=claim, table=table, paper=paper, ours=ours, delta=100 * mean, ci_low=100 * lo, ci_high=100 * hi,
        p=p, n=int(d.size), unit="images", verdict=verdict, mde=100 * mde_points(float(d.std(ddof=1)), d.size),
        paper_delta=paper_delta, note=note,
    )  # fmt: skip


def compare_on_images(
    claim: str,
    table: str,
    paper: str,
    correct_a: Sequence[bool],
    correct_b: Sequence[bool],
    *,
    expected: int = 1,
    paper_delta: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    note: str = "",
) -> Verdict:
    """Verdict on "A beats B" from per-image correctness of both models on the same images (p: McNemar)."""
    a = np.asarray(correct_a, dtype=np.float64)
    b = np.asarray(correct_b, dtype=np.float64)
    return compare_scores_on_images(
        claim, table, paper, a - b, f"{100 * a.mean():.2f} vs {100 * b.mean():.2f}", expected=expected,
        paper_delta=paper_delta, n_boot=n_boot, seed=seed, note=note, p=mcnemar_p(a > 0.5, b > 0.5),
    )  # fmt: skip


def compare_over_seeds(
    claim: str,
    table: str,
    paper: str,
    values_a: Sequence[float],
    values_b: Sequence[float],
    seeds: Sequence[int],
    *,
    expected: int = 1,
    paper_delta: float | None = None,
    note: str = "",
) -> Verdict:
    """Verdict on "A beats B" from one number per seed for each (same seeds, same order; points)."""
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"values_a and values_b must be 1-d, non-empty and paired, got {a.shape} and {b.shape}")
    d = a - b
    n = int(d.size)
    if n >= 2:
        se = float(d.std(ddof=1)) / math.sqrt(n)
        t = float(stats.t.ppf(0.975, n - 1))
        lo, hi = float(d.mean() - t * se), float(d.mean() + t * se)
        p = float(stats.ttest_1samp(d, 0.0).pvalue) if se > 0 else (0.0 if d.mean() != 0 else 1.0)
        mde = mde_points(float(d.std(ddof=1)), n)
    else:
        lo, hi, p, mde = float("nan"), float("nan"), float("nan"), float("nan")
        note = (note + "; " if note else "") + "one seed: no uncertainty, no verdict"
    return Verdict(
        claim=claim, table=table, paper=paper, ours=f"{a.mean():.2f} vs {b.mean():.2f}", delta=float(d.mean()),
        ci_low=lo, ci_high=hi, p=p, n=n, unit="seeds", verdict=verdict_of(lo, hi, expected), mde=mde,
        paper_delta=paper_delta, seeds=[int(s) for s in seeds], note=note,
    )  # fmt: skip


def _round(x: float | None, digits: int = 2) -> float | None:
    return round(float(x), digits) if x is not None and math.isfinite(x) else None


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """One row per claim, rounded for reading (the JSON keeps full precision); empty cells where not computable."""
    rows = []
    for v in verdicts:
        ci = f"[{v.ci_low:+.2f}, {v.ci_high:+.2f}]" if math.isfinite(v.ci_low) and math.isfinite(v.ci_high) else ""
        rows.append({
            "table": v.table, "claim": v.claim, "paper": v.paper, "paper Δ": _round(v.paper_delta), "ours": v.ours,
            "delta": _round(v.delta), "95% CI": ci, "p": _round(v.p, 4),
            "n": f"{v.n} {v.unit}" if v.unit else "", "MDE": _round(v.mde), "verdict": v.verdict,
        })  # fmt: skip
    cols = ["table", "claim", "paper", "paper Δ", "ours", "delta", "95% CI", "p", "n", "MDE", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_verdicts(verdicts: Sequence[Verdict], path: str | Path, **context: Any) -> Path:
    """``verdicts.json``: ``{"verdicts": [...], **context}`` (NaN written as null), atomically."""
    items = [{k: _finite(v) for k, v in x.to_dict().items()} for x in verdicts]
    return atomic_write_text(Path(path), json.dumps({**context, "verdicts": items}, indent=2) + "\n")


def read_verdicts(path: str | Path) -> list[Verdict]:
    """The verdicts of a ``verdicts.json`` (null read back as NaN; keys this version does not know are ignored)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    nan = float("nan")
    known = {f.name for f in fields(Verdict)}
    out = []
    for d in raw.get("verdicts", []):
        d = {k: (nan if v is None and k in ("delta", "ci_low", "ci_high", "p", "mde") else v)
             for k, v in d.items() if k in known}  # fmt: skip
        out.append(Verdict(**d))
    return out


__all__ = [
    "NOT_MEASURED",
    "VERDICTS",
    "Verdict",
    "compare_on_images",
    "compare_over_seeds",
    "compare_scores_on_images",
    "mcnemar_p",
    "mde_points",
    "not_measured",
    "paired_bootstrap",
    "read_verdicts",
    "verdict_of",
    "verdict_table",
    "write_verdicts",
]
