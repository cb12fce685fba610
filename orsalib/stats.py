"""The one statistics module: every comparison, resampling, test, guard and multiplicity step of the workbook.

Built on scipy.stats and statsmodels; what no library offers is written once here:

- :func:`crossed_effect`: "method A vs method B" when each method was trained several times (seeds) and every run was
  evaluated on the same items (images, or pixels grouped into scene blocks). The unit of replication is the seed:
  the standard error adds the seed-to-seed variance of each method (sample variance of the per-run values over the
  runs) to the variance that the evaluated items contribute (a bootstrap that resamples the items -- or their
  clusters -- jointly for every run of both methods, so an image is never counted once per seed). Each run's own
  item noise is already in the seed part; for a mean over items it is taken out of the item part (method of moments,
  floored at 0), for a metric of the confusion matrix (AA, kappa) it stays in both: conservative. The statistic is
  Student's t with Welch-Satterthwaite degrees of freedom bounded by Hsu's ``min(S_A, S_B) - 1`` (3 runs per method:
  2 df), so that a true null is rejected at most at the nominal rate. One run per method carries no training
  variance: flagged ``one_run`` and never a verdict.
- :func:`holm`: Holm's step-down adjustment (``statsmodels.stats.multitest.multipletests``) within a family (one
  paper table), and :func:`decide`: the verdict from the adjusted p and the direction of the delta, with the
  confidence interval at the level that matches that decision (:meth:`Effect.ci`).
- :func:`above_majority`: the "this model learned" guard, a one-sided exact binomial test against the majority-class
  rate of the evaluated items (not 1 / classes: a model that always says "happy" passes that on RAF-DB).
- :func:`confusion_metrics`: OA / AA / Cohen's kappa of batches of confusion matrices (the bootstrap recomputes them
  per resample; equal to ``sklearn.metrics.cohen_kappa_score`` on label arrays, tested).
- :func:`bootstrap_ci` (one model's accuracy CI, scipy's bootstrap), :func:`mcnemar_p` (statsmodels), minimum
  detectable differences (:func:`mde`, :func:`planned_mde_points`, :func:`items_for_mde`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

#: the nominal level of every test and interval
ALPHA = 0.05
#: the multiplicity adjustment applied within each family (one paper table)
ADJUST_METHOD = "holm"
#: a model has "learned" when it beats the majority-class rate with one-sided binomial p below this
LEARNED_ALPHA = 0.01
#: the statistics a crossed comparison computes from each run's items
STATISTICS: tuple[str, ...] = ("mean", "OA", "AA", "kappa")
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class Effect:
    """A - B with its uncertainty (units of the statistic; points when the inputs are in points)."""

    delta: float  # mean over A's runs minus mean over B's runs
    se: float  # standard error: seeds of A + seeds of B + items (clustered), see crossed_effect
    df: float  # Welch-Satterthwaite degrees of freedom of the t statistic
    p: float  # of the t statistic, for ``alternative``; NaN when the spread is zero or undefined
    alternative: str  # two-sided | greater (A > B) | less (A < B)
    n_items: int  # evaluated items per run
    n_clusters: int  # independent units of the item bootstrap (items, or item clusters)
    n_seeds_a: int
    n_seeds_b: int
    value_a: float  # mean of A's runs
    value_b: float
    se_seeds: float  # the seed part of ``se`` alone
    se_items: float  # the item part alone
    one_run: bool  # a method has one run: no training variance, not a method comparison
    resampling: str  # in words, for the record

    @property
    def n_seeds(self) -> int:
        return min(self.n_seeds_a, self.n_seeds_b)

    def ci(self, level: float = 1 - ALPHA) -> tuple[float, float]:
        """The ``level`` confidence interval of delta (one-sided for a one-sided alternative; NaN without spread)."""
        return interval(self.delta, self.se, self.df, level, self.alternative)

    def mde(self, alpha: float = ALPHA, power: float = 0.8) -> float:
        """The true difference this design detects with ``power`` at ``alpha``: ``(t_{1-a/2} + t_power) * se``."""
        return mde(self.se, self.df, alpha=alpha, power=power, sided=1 if self.alternative != "two-sided" else 2)

    def to_dict(self) -> dict:
        return asdict(self)


def interval(delta: float, se: float, df: float, level: float = 1 - ALPHA,
             alternative: str = "two-sided") -> tuple[float, float]:  # fmt: skip
    """The ``level`` t interval ``delta +- t_df * se`` (one-sided: one bound infinite); NaN without spread."""
    if not (se > 0 and math.isfinite(se) and math.isfinite(df)):
        return float("nan"), float("nan")
    if alternative == "two-sided":
        h = float(_st.t.ppf(1 - (1 - level) / 2, df)) * se
        return delta - h, delta + h
    h = float(_st.t.ppf(level, df)) * se
    return (delta - h, math.inf) if alternative == "greater" else (-math.inf, delta + h)


def _as_runs(x: np.ndarray | Sequence, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be (runs, items) with at least one run and one item, got shape {a.shape}")
    return a


def confusion_metrics(conf: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of a batch of confusion matrices ``(..., C, C)`` (rows: truth): ``OA`` / ``AA`` in %, ``kappa``
    as a fraction (Cohen's). AA averages the recall of the classes present in the truth."""
    conf = np.asarray(conf, dtype=np.float64)
    n = conf.sum(axis=(-2, -1))
    diag = np.diagonal(conf, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "OA":
            return 100.0 * diag.sum(-1) / n
        if metric == "AA":
            support = conf.sum(-1)
            recall = np.where(support > 0, diag / np.maximum(support, 1), np.nan)
            return 100.0 * np.nanmean(recall, axis=-1)
        if metric == "kappa":
            po = diag.sum(-1) / n
            pe = (conf.sum(-1) * conf.sum(-2)).sum(-1) / (n * n)
            return np.where(pe < 1, (po - pe) / np.where(pe < 1, 1 - pe, 1.0), 1.0)
    raise ValueError(f"metric={metric!r}; choose OA, AA or kappa")


def _sufficient(runs: np.ndarray, statistic: str, labels: np.ndarray | None, num_classes: int | None,
                cluster: np.ndarray, n_clusters: int) -> np.ndarray:  # fmt: skip
    """Per run and cluster, the sums the statistic is a function of: ``(S, G, K)`` (mean: sum and count; confusion
    metrics: the C x C confusion counts)."""
    s = runs.shape[0]
    if statistic == "mean":
        out = np.zeros((s, n_clusters, 2))
        for r in range(s):
            out[r, :, 0] = np.bincount(cluster, weights=runs[r].astype(np.float64), minlength=n_clusters)
        out[:, :, 1] = np.bincount(cluster, minlength=n_clusters)[None, :]
        return out
    c = int(num_classes)
    out = np.zeros((s, n_clusters, c * c))
    for r in range(s):
        cell = cluster * (c * c) + labels * c + runs[r].astype(np.int64)
        out[r] = np.bincount(cell, minlength=n_clusters * c * c).reshape(n_clusters, c * c)
    return out


def _finish(t: np.ndarray, statistic: str, num_classes: int | None) -> np.ndarray:
    """The statistic of summed sufficient statistics ``(..., K)``."""
    if statistic == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return t[..., 0] / t[..., 1]
    c = int(num_classes)
    return confusion_metrics(t.reshape(*t.shape[:-1], c, c), statistic)


def crossed_effect(
    a: np.ndarray | Sequence,
    b: np.ndarray | Sequence,
    *,
    statistic: str = "mean",
    labels: np.ndarray | Sequence | None = None,
    num_classes: int | None = None,
    clusters: np.ndarray | Sequence | None = None,
    alternative: str = "two-sided",
    n_boot: int = 2000,
    seed: int = 0,
    scale: float = 1.0,
) -> Effect:
    """Method A minus method B, every run of both evaluated on the same items; seeds and items as random effects.

    Args:
        a, b: ``(runs, items)``: per-item values of each run (``statistic="mean"``: e.g. correctness 0/1 or a
            per-image change), or predicted classes (``OA`` / ``AA`` / ``kappa``). Column ``j`` is the same item
            in every run of both (align them first; :func:`orsalib.experiments.claims` raises on mispaired rows).
        labels, num_classes: the true class of each item (confusion metrics only).
        clusters: ``(items,)`` group of each item (e.g. the scene block of a pixel); the bootstrap resamples whole
            groups. None: every item is its own group.
        alternative: ``two-sided``, ``greater`` (A > B) or ``less``.
        scale: multiplies the statistic (100: fractions -> points).

    The standard error: ``se^2 = var_runs(A) / S_A + var_runs(B) / S_B + var_items`` with ``var_items`` the
    bootstrap variance of the difference when item clusters are resampled (the same draw for every run of A and B),
    less the runs' own item noise (mean statistic: the bootstrap variance of each run's deviation from its method's
    per-item mean, ``* S / (S - 1)``, over ``S``; floored at 0); the t statistic has
    Welch-Satterthwaite degrees of freedom (``S_A - 1``, ``S_B - 1``, clusters - 1), at most ``min(S_A, S_B) - 1``
    (Hsu's conservative bound). A method with one run has no
    seed variance: the effect is marked ``one_run`` (its p and CI cover the items only).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r}; choose one of {STATISTICS}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r}; choose one of {ALTERNATIVES}")
    ra, rb = _as_runs(a, "a"), _as_runs(b, "b")
    n = ra.shape[1]
    if rb.shape[1] != n:
        raise ValueError(f"a and b must be scored on the same items: a has {n} per run, b {rb.shape[1]}")
    lab = None
    if statistic != "mean":
        if labels is None or num_classes is None:
            raise ValueError(f"statistic={statistic!r} needs labels and num_classes")
        lab = np.asarray(labels, dtype=np.int64)
        if lab.shape != (n,):
            raise ValueError(f"labels must have one entry per item ({n}), got shape {lab.shape}")
        lo, hi = min(lab.min(), ra.min(), rb.min()), max(lab.max(), ra.max(), rb.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"labels and predictions must lie in 0..{num_classes - 1}, got {lo}..{hi}")
    if clusters is None:
        cl, g = np.arange(n), n
    else:
        cl_raw = np.asarray(clusters)
        if cl_raw.shape != (n,):
            raise ValueError(f"clusters must have one entry per item ({n}), got shape {cl_raw.shape}")
        _, cl = np.unique(cl_raw, return_inverse=True)
        g = int(cl.max()) + 1
    ta = _sufficient(ra, statistic, lab, num_classes, cl, g)  # (S_A, G, K)
    tb = _sufficient(rb, statistic, lab, num_classes, cl, g)
    va = scale * _finish(ta.sum(1), statistic, num_classes)  # (S_A,) per-run values
    vb = scale * _finish(tb.sum(1), statistic, num_classes)
    delta = float(va.mean() - vb.mean())
    sa, sb = len(va), len(vb)
    # the item part: resample clusters, the same draw for every run of A and B
    var_items, boots = 0.0, np.empty(0)
    within = {"a": [], "b": []}  # mean statistic: each run's deviation from its method's per-item mean, resampled
    dev = {k: t[..., 0] - t[..., 0].mean(0, keepdims=True) for k, t in (("a", ta), ("b", tb))} \
        if statistic == "mean" else {}  # fmt: skip
    if g > 1 and n_boot > 0:
        rng = np.random.default_rng(seed)
        chunks = []
        step = max(1, int(4e7 // max(1, g * ta.shape[2] * (sa + sb))))
        for k in range(0, int(n_boot), step):
            m = min(step, int(n_boot) - k)
            w = rng.multinomial(g, np.full(g, 1.0 / g), size=m).astype(np.float64)  # (m, G) cluster counts
            ba = scale * _finish(np.einsum("mg,sgk->msk", w, ta), statistic, num_classes).mean(1)
            bb = scale * _finish(np.einsum("mg,sgk->msk", w, tb), statistic, num_classes).mean(1)
            chunks.append(ba - bb)
            if dev:
                count = w @ ta[0, :, 1]  # (m,) items drawn
                for key in dev:
                    within[key].append(scale * (w @ dev[key].T) / count[:, None])  # (m, S)
        boots = np.concatenate(chunks)
        boots = boots[np.isfinite(boots)]
        var_items = float(boots.var(ddof=1)) if boots.size > 1 else 0.0
        # The seed part already holds each run's own item noise (the seed x item interaction): take it out of the
        # item part, which then carries what the evaluated images decide beyond it (method x image interaction).
        # Method of moments, floored at 0; only for a mean over items (confusion metrics keep the conservative sum).
        for key, s_n in (("a", sa), ("b", sb)):
            if dev and s_n > 1:
                noise = float(np.concatenate(within[key]).var(axis=0, ddof=1).mean()) * s_n / (s_n - 1)
                var_items -= noise / s_n
        var_items = max(var_items, 0.0)
    var_a = float(va.var(ddof=1)) / sa if sa > 1 else 0.0
    var_b = float(vb.var(ddof=1)) / sb if sb > 1 else 0.0
    one_run = sa < 2 or sb < 2
    parts = [(var_items, g - 1)] + [(v, s - 1) for v, s in ((var_a, sa), (var_b, sb)) if s > 1]
    var = sum(v for v, _ in parts)
    se = math.sqrt(var) if var > 0 else 0.0
    den = sum(v * v / d for v, d in parts if d > 0 and v > 0)
    df = var * var / den if den > 0 else float("nan")
    if not one_run and math.isfinite(df):
        # Hsu's conservative bound: with 3 runs per method Welch-Satterthwaite alone rejects a true null 5-7 % of
        # the time (tests/test_stats.py); at most min(S_A, S_B) - 1 degrees of freedom keeps it below the nominal 5 %
        df = min(df, float(min(sa, sb) - 1))
    p = float("nan")
    if se > 0 and math.isfinite(df):
        t = delta / se
        p = float({"two-sided": 2 * _st.t.sf(abs(t), df), "greater": _st.t.sf(t, df),
                   "less": _st.t.cdf(t, df)}[alternative])  # fmt: skip
    unit = "clusters of items" if clusters is not None else "items"
    resampling = (f"crossed: seeds as replicates ({sa} vs {sb} runs, variance over runs) + bootstrap of {g} {unit} "
                  f"shared by every run ({int(n_boot)} resamples); t, {df:.1f} df (Satterthwaite, Hsu bound)")
    return Effect(
        delta=delta, se=se, df=float(df), p=p, alternative=alternative, n_items=int(n), n_clusters=int(g),
        n_seeds_a=sa, n_seeds_b=sb, value_a=float(va.mean()), value_b=float(vb.mean()),
        se_seeds=math.sqrt(var_a + var_b), se_items=math.sqrt(var_items), one_run=one_run, resampling=resampling,
    )  # fmt: skip


# ----------------------------------------------------------------------------- multiplicity and decisions
def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels' ``multipletests``); NaN entries stay NaN and do not count."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method=ADJUST_METHOD)[1]
    return out


def decide(delta: float, p_adjusted: float, expected: int = 1, alternative: str = "two-sided",
           alpha: float = ALPHA) -> str:  # fmt: skip
    """``holds`` / ``reversed`` / ``not resolved`` from the adjusted p and the direction of delta.

    ``expected``: +1 when the claim is A > B, -1 when A < B. A one-sided test (in the claimed direction) can
    only say ``holds`` or ``not resolved``.
    """
    if expected not in (1, -1):
        raise ValueError(f"expected must be +1 or -1, got {expected!r}")
    if not (math.isfinite(p_adjusted) and math.isfinite(delta)) or p_adjusted > alpha or delta == 0:
        return "not resolved"
    along = delta * expected > 0
    if alternative != "two-sided":
        return "holds" if along else "not resolved"
    return "holds" if along else "reversed"


def decision_level(p: float, p_adjusted: float, alpha: float = ALPHA) -> float:
    """The confidence level whose interval excludes 0 exactly when the adjusted p is below ``alpha``:
    ``1 - alpha * p / p_adjusted`` (``1 - alpha`` without adjustment)."""
    if not (math.isfinite(p) and math.isfinite(p_adjusted)) or p_adjusted <= 0:
        return 1 - alpha
    return 1 - alpha * min(1.0, p / p_adjusted)


# ----------------------------------------------------------------------------- guards
def above_majority(n_correct: int, n: int, majority_rate: float, alpha: float = LEARNED_ALPHA) -> tuple[bool, float]:
    """Whether ``n_correct`` of ``n`` beats the majority-class rate (one-sided exact binomial test); and its p."""
    if n <= 0:
        return False, float("nan")
    if not 0.0 < majority_rate < 1.0:
        return True, 0.0  # one class only: nothing to beat
    p = float(_st.binomtest(int(n_correct), int(n), float(majority_rate), alternative="greater").pvalue)
    return p < alpha, p


def majority_rate(labels: np.ndarray | Sequence) -> float:
    """The share of the most frequent class among ``labels``."""
    lab = np.asarray(labels)
    if lab.size == 0:
        return float("nan")
    return float(np.unique(lab, return_counts=True)[1].max() / lab.size)


# ----------------------------------------------------------------------------- one model, one pair
def bootstrap_ci(correct: np.ndarray | Sequence, n_boot: int = 1000, seed: int = 0,
                 alpha: float = ALPHA) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap CI of a mean (e.g. accuracy from per-item correctness), ``scipy.stats.bootstrap``."""
    x = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1 or np.ptp(x) == 0:
        return float(x.mean()), float(x.mean())
    res = _st.bootstrap((x,), np.mean, n_resamples=int(n_boot), confidence_level=1 - alpha, method="percentile",
                        random_state=np.random.default_rng(seed), vectorized=True)  # fmt: skip
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    m = float(x.mean())
    return min(lo, m), max(hi, m)


def mcnemar_p(correct_a: np.ndarray | Sequence, correct_b: np.ndarray | Sequence) -> float:
    """Two-sided exact McNemar test of two classifiers on the same items (statsmodels)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must have the same shape, got {a.shape} and {b.shape}")
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    if table[0][1] + table[1][0] == 0:
        return 1.0
    return float(mcnemar(table, exact=True).pvalue)


# ----------------------------------------------------------------------------- power
def mde(se: float, df: float = math.inf, alpha: float = ALPHA, power: float = 0.8, sided: int = 2) -> float:
    """Minimum detectable difference: ``(t_{1-alpha/sided, df} + t_{power, df}) * se`` (normal when df is inf)."""
    if not (se > 0 and math.isfinite(se)) or not df > 0:
        return float("nan")
    dist = _st.norm if not math.isfinite(df) else _st.t(df)
    return float((dist.ppf(1 - alpha / sided) + dist.ppf(power)) * se)


def planned_mde_points(discordance: float, n: int, alpha: float = ALPHA) -> float:
    """Planning: MDE (points) of a paired accuracy comparison on ``n`` items at which two models disagree on a
    fraction ``discordance`` (the SD of a per-item difference near the null is ``sqrt(discordance)``)."""
    if n < 1 or not 0 <= discordance <= 1:
        return float("nan")
    return 100.0 * mde(math.sqrt(discordance / n), alpha=alpha) if discordance > 0 else 0.0


def items_for_mde(target: float, discordance: float, alpha: float = ALPHA) -> int:
    """Planning: the items a paired accuracy comparison needs for an MDE of ``target`` points."""
    z = _st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(0.8)
    return int(math.ceil(z * z * discordance / (target / 100.0) ** 2))


__all__ = [
    "ADJUST_METHOD",
    "ALPHA",
    "Effect",
    "above_majority",
    "bootstrap_ci",
    "confusion_metrics",
    "crossed_effect",
    "decide",
    "decision_level",
    "holm",
    "interval",
    "items_for_mde",
    "majority_rate",
    "mcnemar_p",
    "mde",
    "planned_mde_points",
]
