"""A verdict for every paper claim: paired differences with their uncertainty, never a bare number.

Three units of pairing:

- **images** (Tables 2-4 analogues: two models scored on the same images): the per-image difference of correctness
  (or of any per-image score, e.g. the drop from clean to occluded), a paired percentile bootstrap CI over images,
  and McNemar's exact test on the discordant pairs;
- **images x seeds** (Tables 6-8 analogues: two variants trained with the same seeds, each pair evaluated on the same
  images or pixels; :func:`compare_on_images_by_seed`): the per-image difference pooled over the seeds, a bootstrap
  CI that resamples images within each seed (stratified by seed) and McNemar's test on the pooled discordant pairs;
  for a metric that is not a mean over images (average accuracy, kappa; :func:`compare_metric_by_seed`) a paired
  bootstrap over the items of each seed that recomputes the metric, and a paired permutation test. This CI is
  conditional on the runs trained: it measures how much the evaluation images decide, not how much another seed
  would change the models;
- **seeds** (a variant trained with several seeds, paired by seed): the mean of the per-seed differences, a
  t-interval over seeds and the paired t-test; it carries the training noise, and needs many seeds to resolve
  anything. Tables 6-8 keep it beside the images x seeds verdict (:func:`with_over_seeds`), and use it alone for
  records without per-image data.

A claim "A is better than B" (``expected=+1``) *holds* when the whole 95 % CI of A - B lies above 0, is *reversed*
when it lies below 0, and is *not resolved* when it contains 0 (on images, also when the paired test says p >= 0.05:
on few images the percentile bootstrap is too narrow); a claim whose data this run lacks is *not measured*
(:func:`not_measured`). Beside it, the minimum detectable difference (MDE) at this budget: the true difference that
a paired test at alpha 0.05 would detect with 80 % power, given the spread seen here: ``(z_0.975 + z_0.8) * SE``
with SE the standard error of the mean difference under the design (:func:`mde_points`,
:func:`stratified_mde_points`, :func:`planned_mde_points` for planning). A verdict is computed, never tuned toward.
:mod:`orsalib.experiments.claims` turns the notebooks' results into one verdict per paper claim.
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
    p: float  # McNemar (images), paired permutation (AA / kappa), or paired t-test (seeds); NaN when not computable
    n: int  # images, images x seeds (every evaluated pair), or seeds
    unit: str  # "images", "images x seeds", "pixels x seeds" or "seeds"
    verdict: str  # holds | reversed | not resolved
    mde: float  # minimum detectable difference at this budget (points)
    paper_delta: float | None = None  # the paper's A - B (points) when it gives both numbers
    seeds: list[int] = field(default_factory=list)
    note: str = ""
    source: str = ""  # the notebook that measured it, e.g. "50_evaluation_occlusion"
    dataset: str = ""  # what it was measured on (our data, not the paper's)
    over_seeds: dict[str, Any] = field(default_factory=dict)  # the paired-by-seed test beside it (with_over_seeds)

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


def mde_points(sd: float, n: int, alpha: float = 0.05, df: int | None = None) -> float:
    """Minimum detectable mean difference of a paired design at 80 % power: ``(z_{1-alpha/2} + z_0.8) * sd / sqrt(n)``
    (normal approximation), or with ``df`` the t quantiles ``t_{1-alpha/2, df} + t_{0.8, df}`` of the paired t-test
    (few seeds: with 2 seeds, one degree of freedom, the MDE is about 5x the normal one)."""
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    if df is None:
        z = stats.norm.ppf(1 - alpha / 2) + _Z_POWER
    else:
        z = stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(0.8, df)
    return float(z * sd / math.sqrt(n))


def stratified_mde_points(diffs: Sequence[Sequence[float]], alpha: float = 0.05) -> float:
    """MDE of the pooled mean of per-item differences measured in several strata (seeds), items drawn within each.

    ``(z_{1-alpha/2} + z_0.8) * SE`` with ``SE = sqrt(sum_s n_s * var_s) / N``: ``var_s`` the sample variance of the
    differences of stratum ``s`` (``n_s`` items), ``N = sum_s n_s``. With one stratum it is :func:`mde_points`. NaN
    when every difference is the same (no spread to size it from: e.g. two models that agree on every image).
    """
    groups = [np.asarray(d, dtype=np.float64) for d in diffs]
    if not groups or any(g.size < 2 for g in groups) or np.ptp(np.concatenate(groups)) == 0:
        return float("nan")
    n = sum(g.size for g in groups)
    se = math.sqrt(sum(g.size * float(g.var(ddof=1)) for g in groups)) / n
    return float((stats.norm.ppf(1 - alpha / 2) + _Z_POWER) * se)


def planned_mde_points(discordance: float, n: int, alpha: float = 0.05) -> float:
    """Planning: the MDE (points) of a paired accuracy comparison on ``n`` items (images x seeds) at which the two
    models disagree on a fraction ``discordance`` (one right, the other wrong); the SD of the per-item difference
    near the null is ``sqrt(discordance)``."""
    if n < 1 or not 0 <= discordance <= 1:
        return float("nan")
    return 100.0 * float((stats.norm.ppf(1 - alpha / 2) + _Z_POWER) * math.sqrt(discordance / n))


def items_for_mde(target: float, discordance: float, alpha: float = 0.05) -> int:
    """Planning: the items (images x seeds) a paired accuracy comparison needs for an MDE of ``target`` points."""
    z = stats.norm.ppf(1 - alpha / 2) + _Z_POWER
    return int(math.ceil(z * z * discordance / (target / 100.0) ** 2))


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


def _stratified_boot_means(groups: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the pooled mean of ``groups``, items resampled within each group (sizes kept).

    A group with few distinct values (a correctness difference takes -1, 0, 1) is resampled through the multinomial
    counts of its values, which is the same distribution as resampling its items and costs O(n_boot).
    """
    total = np.zeros(int(n_boot))
    n = 0
    for d in groups:
        vals, counts = np.unique(d, return_counts=True)
        if vals.size <= 64:
            total += rng.multinomial(d.size, counts / d.size, size=int(n_boot)) @ vals
        else:
            step = max(1, 2_000_000 // d.size)
            for k in range(0, int(n_boot), step):
                m = min(step, int(n_boot) - k)
                total[k : k + m] += d[rng.integers(0, d.size, size=(m, d.size))].sum(axis=1)
        n += d.size
    return total / n


def _note(note: str, more: str) -> str:
    return (note + "; " if note else "") + more


def compare_on_images_by_seed(
    claim: str,
    table: str,
    paper: str,
    correct_a: Sequence[Sequence[bool]],
    correct_b: Sequence[Sequence[bool]],
    seeds: Sequence[int],
    *,
    expected: int = 1,
    paper_delta: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    note: str = "",
    unit: str = "images x seeds",
) -> Verdict:
    """Verdict on "A beats B" from per-image correctness of A and B, trained with the same seeds, each pair on the
    same images (``correct_a[k]`` and ``correct_b[k]``: the runs of ``seeds[k]``, aligned image by image).

    - delta: the per-image difference A - B pooled over every (image, seed) pair (points);
    - CI: percentile bootstrap that resamples images within each seed (stratified by seed; the seeds are kept);
    - p: McNemar's exact test on the discordant pairs pooled over the seeds;
    - n: images x seeds; MDE: :func:`stratified_mde_points` of the per-image differences.

    As on images, a CI that excludes 0 with ``p >= 0.05`` stays *not resolved*. The CI is conditional on the trained
    runs (what the evaluation images decide); the spread between seeds is what :func:`compare_over_seeds` measures.
    """
    a_s = [np.asarray(x, dtype=np.float64) for x in correct_a]
    b_s = [np.asarray(x, dtype=np.float64) for x in correct_b]
    if len(a_s) != len(b_s) or len(a_s) != len(seeds) or not a_s:
        raise ValueError(f"need one pair of arrays per seed, got {len(a_s)} / {len(b_s)} for seeds {list(seeds)}")
    for k, (a, b) in enumerate(zip(a_s, b_s)):
        if a.shape != b.shape or a.ndim != 1 or a.size == 0:
            raise ValueError(f"seed {seeds[k]}: correctness arrays must be 1-d, non-empty and paired, got "
                             f"{a.shape} and {b.shape}")  # fmt: skip
    d_s = [a - b for a, b in zip(a_s, b_s)]
    a_all, b_all = np.concatenate(a_s), np.concatenate(b_s)
    n = int(a_all.size)
    mean = float(np.concatenate(d_s).mean())
    boots = _stratified_boot_means(d_s, n_boot, np.random.default_rng(seed))
    lo, hi = (float(x) for x in np.quantile(boots, [ALPHA / 2, 1 - ALPHA / 2]))
    p = mcnemar_p(a_all > 0.5, b_all > 0.5)
    verdict = verdict_of(lo, hi, expected)
    if verdict != "not resolved" and not p < ALPHA:
        verdict = "not resolved"
        note = _note(note, f"the bootstrap CI excludes 0 but McNemar's test does not (p = {p:.3g})")
    return Verdict(
        claim=claim, table=table, paper=paper, ours=f"{100 * a_all.mean():.2f} vs {100 * b_all.mean():.2f}",
        delta=100 * mean, ci_low=100 * lo, ci_high=100 * hi, p=p, n=n, unit=unit, verdict=verdict,
        mde=100 * stratified_mde_points(d_s), paper_delta=paper_delta, seeds=[int(s) for s in seeds], note=note,
    )  # fmt: skip


# ----------------------------------------------------------------------------- metrics of a confusion matrix
def _confusion_metric(conf: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` (OA / AA in %, kappa x 100) of a batch of confusion matrices ``(..., C, C)`` (rows: truth).

    AA averages the recall of the classes present in the truth (as ``transfer.hsi_metrics``); kappa is Cohen's.
    """
    n = conf.sum(axis=(-2, -1))
    diag = np.diagonal(conf, axis1=-2, axis2=-1)
    if metric == "OA":
        return 100.0 * diag.sum(-1) / n
    if metric == "AA":
        support = conf.sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, diag / np.maximum(support, 1), np.nan)
        return 100.0 * np.nanmean(recall, axis=-1)
    if metric == "kappa":
        po = diag.sum(-1) / n
        pe = (conf.sum(-1) * conf.sum(-2)).sum(-1) / (n * n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * np.where(pe < 1, (po - pe) / np.where(pe < 1, 1 - pe, 1.0), 1.0)
    raise ValueError(f"metric={metric!r}; choose OA, AA or kappa")


CONFUSION_METRICS: tuple[str, ...] = ("OA", "AA", "kappa")


def _metric_of(weights: np.ndarray, cells: np.ndarray, c: int, metric: str) -> np.ndarray:
    """``metric`` of the confusion matrices of item counts ``weights`` ``(..., K)`` over ``K`` kinds of item whose
    confusion cell is one-hot in ``cells`` ``(K, c * c)``."""
    return _confusion_metric((weights @ cells).reshape(*weights.shape[:-1], c, c), metric)


def compare_metric_by_seed(
    claim: str,
    table: str,
    paper: str,
    metric: str,
    labels: Sequence[Sequence[int]],
    pred_a: Sequence[Sequence[int]],
    pred_b: Sequence[Sequence[int]],
    seeds: Sequence[int],
    num_classes: int,
    *,
    expected: int = 1,
    paper_delta: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    note: str = "",
    unit: str = "pixels x seeds",
) -> Verdict:
    """Verdict on "A beats B" for a metric of the whole confusion matrix (``OA``, ``AA`` %, ``kappa`` x 100), from
    the predicted labels of A and B on the same items (pixels) for each seed.

    - delta: the metric of A minus that of B per seed, averaged over the seeds weighted by their items;
    - CI: paired bootstrap over the items of each seed (the same resampled items for A and B), recomputing the metric
      on every resample (stratified by seed);
    - p: paired permutation test (each item's two predictions swapped with probability 1/2), two-sided;
    - MDE: ``(z_0.975 + z_0.8)`` times the bootstrap standard error of delta.

    Resampling is exact and cheap: an item is a (label, prediction of A, prediction of B) triple, so a resample is a
    multinomial draw of the counts of the distinct triples.
    """
    if metric not in CONFUSION_METRICS:
        raise ValueError(f"metric={metric!r}; choose one of {CONFUSION_METRICS}")
    if not (len(labels) == len(pred_a) == len(pred_b) == len(seeds)) or not len(seeds):
        raise ValueError("need one (labels, pred_a, pred_b) triple of arrays per seed")
    c = int(num_classes)
    rng = np.random.default_rng(seed)
    obs, boot, perm = [], [], []
    sizes = []
    for k, (y, pa, pb) in enumerate(zip(labels, pred_a, pred_b)):
        y, pa, pb = (np.asarray(x, dtype=np.int64) for x in (y, pa, pb))
        if not (y.shape == pa.shape == pb.shape) or y.ndim != 1 or y.size == 0:
            raise ValueError(f"seed {seeds[k]}: labels and predictions must be 1-d, non-empty and paired")
        if min(y.min(), pa.min(), pb.min()) < 0 or max(y.max(), pa.max(), pb.max()) >= c:
            raise ValueError(f"seed {seeds[k]}: labels must lie in 0..{c - 1}")
        keys, counts = np.unique((y * c + pa) * c + pb, return_counts=True)
        cell_a, cell_b = keys // c, (keys // (c * c)) * c + keys % c  # (label, pred_a), (label, pred_b)
        ma = np.zeros((keys.size, c * c))
        mb = np.zeros((keys.size, c * c))
        ma[np.arange(keys.size), cell_a] = 1.0
        mb[np.arange(keys.size), cell_b] = 1.0
        w = counts.astype(np.float64)
        obs.append(float(_metric_of(w, ma, c, metric) - _metric_of(w, mb, c, metric)))
        draws = rng.multinomial(y.size, counts / y.size, size=int(n_boot)).astype(np.float64)  # (B, K)
        boot.append(_metric_of(draws, ma, c, metric) - _metric_of(draws, mb, c, metric))
        swap = rng.binomial(counts, 0.5, size=(int(n_boot), keys.size)).astype(np.float64)  # (B, K)
        keep = w - swap  # items whose predictions stay; swapped items count for the other model
        perm.append(_metric_of(np.concatenate([keep, swap], -1), np.concatenate([ma, mb]), c, metric)
                    - _metric_of(np.concatenate([keep, swap], -1), np.concatenate([mb, ma]), c, metric))  # fmt: skip
        sizes.append(y.size)
    share = np.asarray(sizes, dtype=np.float64) / sum(sizes)
    delta = float(np.dot(share, obs))
    boots = np.sum([wk * b for wk, b in zip(share, boot)], axis=0)
    perms = np.sum([wk * q for wk, q in zip(share, perm)], axis=0)
    lo, hi = (float(x) for x in np.quantile(boots, [ALPHA / 2, 1 - ALPHA / 2]))
    p = float((1 + np.sum(np.abs(perms) >= abs(delta) - 1e-9)) / (perms.size + 1))
    verdict = verdict_of(lo, hi, expected)
    if verdict != "not resolved" and not p < ALPHA:
        verdict = "not resolved"
        note = _note(note, f"the bootstrap CI excludes 0 but the permutation test does not (p = {p:.3g})")
    sd = float(np.std(boots, ddof=1))
    mde = float((stats.norm.ppf(1 - ALPHA / 2) + _Z_POWER) * sd) if sd > 0 else float("nan")  # NaN: no spread seen
    return Verdict(
        claim=claim, table=table, paper=paper, ours="", delta=delta, ci_low=lo, ci_high=hi, p=p, n=int(sum(sizes)),
        unit=unit, verdict=verdict, mde=mde, paper_delta=paper_delta, seeds=[int(s) for s in seeds], note=note,
    )  # fmt: skip


def with_over_seeds(v: Verdict, over: Verdict) -> Verdict:
    """``v`` (the images x seeds verdict, which decides) with the paired-by-seed test of the same claim kept beside
    it: in ``v.over_seeds`` (delta, ci_low, ci_high, p, n, mde, verdict) and as a sentence of the note."""
    v.over_seeds = {k: getattr(over, k) for k in ("delta", "ci_low", "ci_high", "p", "n", "mde", "verdict")}
    if over.n >= 2 and math.isfinite(over.ci_low):
        text = (f"over seeds (n = {over.n}): {over.delta:+.2f} [{over.ci_low:+.2f}, {over.ci_high:+.2f}], "
                f"p = {over.p:.3g}, MDE {over.mde:.2f}, {over.verdict}")  # fmt: skip
    else:
        text = f"over seeds (n = {over.n}): {over.delta:+.2f}, no interval"
    v.note = _note(v.note, text)
    return v


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
    """Verdict on "A beats B" from one number per seed for each (same seeds, same order; points): t-interval, paired
    t-test, and the MDE of the paired t-test with ``n - 1`` degrees of freedom (with few seeds the normal
    approximation would understate it several-fold)."""
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
        mde = mde_points(float(d.std(ddof=1)), n, df=n - 1)
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
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_verdicts(verdicts: Sequence[Verdict], path: str | Path, **context: Any) -> Path:
    """``verdicts.json``: ``{"verdicts": [...], **context}`` (NaN written as null), atomically."""
    items = [{k: _finite(v) for k, v in x.to_dict().items()} for x in verdicts]
    return atomic_write_text(Path(path), json.dumps({**context, "verdicts": items}, indent=2) + "\n")


_FLOATS = ("delta", "ci_low", "ci_high", "p", "mde")


def read_verdicts(path: str | Path) -> list[Verdict]:
    """The verdicts of a ``verdicts.json`` (null read back as NaN; keys this version does not know are ignored)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    nan = float("nan")
    known = {f.name for f in fields(Verdict)}
    out = []
    for d in raw.get("verdicts", []):
        d = {k: (nan if v is None and k in _FLOATS else v) for k, v in d.items() if k in known}
        if isinstance(d.get("over_seeds"), dict):
            d["over_seeds"] = {k: (nan if v is None and k in _FLOATS else v) for k, v in d["over_seeds"].items()}
        out.append(Verdict(**d))
    return out


__all__ = [
    "CONFUSION_METRICS",
    "NOT_MEASURED",
    "VERDICTS",
    "Verdict",
    "compare_metric_by_seed",
    "compare_on_images",
    "compare_on_images_by_seed",
    "compare_over_seeds",
    "compare_scores_on_images",
    "items_for_mde",
    "mcnemar_p",
    "mde_points",
    "not_measured",
    "paired_bootstrap",
    "planned_mde_points",
    "read_verdicts",
    "stratified_mde_points",
    "verdict_of",
    "verdict_table",
    "with_over_seeds",
    "write_verdicts",
]
