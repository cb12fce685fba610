"""Classification metrics for FER evaluation (scikit-learn where it fits).

The ORSANet paper (Sec. 4, Tables 2-4) reports overall accuracy; the workbook adds macro-F1 and mean class
accuracy (mean per-class recall, the usual number on imbalanced FER test sets such as RAF-DB), confusion
matrices, top-k accuracy and percentile-bootstrap confidence intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

ArrayLike = Sequence[int] | np.ndarray


def _as_labels(y: ArrayLike, name: str) -> np.ndarray:
    """A 1-d integer array, or a ValueError naming the argument."""
    try:
        import torch

        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of class ids, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"{name} must hold integer class ids, got dtype {a.dtype}")
        a = a.astype(np.int64)
    return a.astype(np.int64, copy=False)


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}")
    return t, p


def _labels(num_classes: int | None, *arrays: np.ndarray) -> np.ndarray:
    if num_classes is None:
        hi = max((int(a.max()) for a in arrays if a.size), default=-1)
        return np.arange(hi + 1)
    if num_classes <= 0:
        raise ValueError(f"num_classes must be > 0, got {num_classes}")
    for a in arrays:
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"class ids must lie in 0..{num_classes - 1}, got range {a.min()}..{a.max()}")
    return np.arange(num_classes)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of correct predictions (0..1); NaN for an empty set."""
    t, p = _pair(y_true, y_pred)
    return float(accuracy_score(t, p)) if t.size else float("nan")


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` = samples of true class ``i`` predicted as ``j`` (rows true, columns predicted)."""
    t, p = _pair(y_true, y_pred)
    labels = _labels(num_classes, t, p)
    if not t.size:
        return np.zeros((labels.size, labels.size), dtype=np.int64)
    return _sk_confusion_matrix(t, p, labels=labels).astype(np.int64)


def per_class_recall(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """Recall of every class (NaN for a class absent from ``y_true``)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (a.k.a. balanced accuracy)."""
    r = per_class_recall(y_true, y_pred, num_classes)
    r = r[~np.isnan(r)]
    return float(r.mean()) if r.size else float("nan")


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``."""
    t, p = _pair(y_true, y_pred)
    if not t.size:
        return float("nan")
    _labels(num_classes, t, p)  # range check only
    present = np.union1d(t, p)
    return float(f1_score(t, p, labels=present, average="macro", zero_division=0))


def topk_accuracy(logits: np.ndarray, y: ArrayLike, k: int = 1) -> float:
    """Fraction of samples whose true class is among the ``k`` highest logits."""
    try:
        import torch

        if isinstance(logits, torch.Tensor):
            logits = logits.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    z = np.asarray(logits)
    t = _as_labels(y, "y")
    if z.ndim != 2 or z.shape[0] != t.shape[0]:
        raise ValueError(f"logits must be (N, C) with N = len(y) = {t.shape[0]}, got shape {z.shape}")
    if not 1 <= k <= z.shape[1]:
        raise ValueError(f"k must lie in 1..{z.shape[1]} (the number of classes), got {k}")
    if not t.size:
        return float("nan")
    topk = np.argsort(-z, axis=1, kind="stable")[:, :k]  # (N, k)
    return float((topk == t[:, None]).any(axis=1).mean())


def classification_report(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> dict:
    """All headline metrics of one prediction set (plain python types, JSON-ready).

    Returns:
        ``{"n", "accuracy", "macro_f1", "mean_class_acc", "per_class_recall" (list, NaN for absent classes),
        "confusion" (list of lists, rows true / columns predicted)}``.
    """
    t, p = _pair(y_true, y_pred)
    cm = confusion_matrix(t, p, num_classes)
    rec = per_class_recall(t, p, cm.shape[0])
    return {
        "n": int(t.size),
        "accuracy": accuracy(t, p),
        "macro_f1": macro_f1(t, p, num_classes),
        "mean_class_acc": mean_class_accuracy(t, p, cm.shape[0]),
        "per_class_recall": [float(x) for x in rec],
        "confusion": cm.tolist(),
    }


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "mean_class_acc": mean_class_accuracy,
    "mean_class_accuracy": mean_class_accuracy,
}


def bootstrap_ci(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "accuracy",
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` confidence interval of a metric (resampling samples with replacement).

    Deterministic for a given ``seed``. Accuracy uses a vectorised fast path; other metrics are recomputed per
    resample. The interval always contains the point estimate for accuracy-like metrics on non-degenerate data;
    to guarantee it, the bounds are widened to include the point estimate if resampling noise misses it.

    Args:
        metric: ``"accuracy"``, ``"macro_f1"``, ``"mean_class_acc"`` or a callable ``f(y_true, y_pred) -> float``.
        n: number of bootstrap resamples.
        alpha: 1 - confidence level (0.05 -> 95% interval).
    """
    t, p = _pair(y_true, y_pred)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if n < 1:
        raise ValueError(f"n (bootstrap resamples) must be >= 1, got {n}")
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(_METRICS)} or pass a callable")
        fn = _METRICS[metric]
    else:
        fn = metric
    if not t.size:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, t.size, size=(n, t.size))  # (n, N) resample indices
    if fn is accuracy:
        correct = (t == p).astype(np.float64)
        stats = correct[idx].mean(axis=1)  # (n,)
    else:
        stats = np.array([fn(t[i], p[i]) for i in idx], dtype=np.float64)
    stats = stats[~np.isnan(stats)]
    if not stats.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    point = fn(t, p)
    if not np.isnan(point):
        lo, hi = min(lo, point), max(hi, point)
    return float(lo), float(hi)


__all__ = [
    "accuracy",
    "bootstrap_ci",
    "classification_report",
    "confusion_matrix",
    "macro_f1",
    "mean_class_accuracy",
    "per_class_recall",
    "topk_accuracy",
]
