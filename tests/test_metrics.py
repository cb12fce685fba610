"""Metrics against scikit-learn on fixed predictions; bootstrap CI behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, top_k_accuracy_score
from sklearn.metrics import confusion_matrix as sk_cm

from orsalib import metrics as M


@pytest.fixture
def fixed() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 7, size=300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 7, size=300))
    return y, p


def test_against_sklearn(fixed):
    y, p = fixed
    assert M.accuracy(y, p) == pytest.approx(accuracy_score(y, p))
    assert M.macro_f1(y, p, 7) == pytest.approx(f1_score(y, p, average="macro"))
    assert M.mean_class_accuracy(y, p, 7) == pytest.approx(balanced_accuracy_score(y, p))
    np.testing.assert_array_equal(M.confusion_matrix(y, p, 7), sk_cm(y, p, labels=range(7)))


def test_report_fields(fixed):
    y, p = fixed
    r = M.classification_report(y, p, 7)
    assert set(r) >= {"accuracy", "macro_f1", "mean_class_acc", "per_class_recall", "confusion", "n"}
    assert r["n"] == 300
    assert len(r["per_class_recall"]) == 7 and len(r["confusion"]) == 7
    cm = np.array(r["confusion"])
    assert cm.sum() == 300
    assert r["per_class_recall"][2] == pytest.approx(cm[2, 2] / cm[2].sum())
    assert r["mean_class_acc"] == pytest.approx(np.mean(r["per_class_recall"]))


def test_hand_computed():
    r = M.classification_report([0, 1, 2, 2], [0, 2, 2, 1], 3)
    assert r["accuracy"] == 0.5
    assert r["confusion"] == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert r["per_class_recall"] == [1.0, 0.0, 0.5]


def test_absent_class_is_nan_and_ignored():
    r = M.classification_report([0, 0, 1], [0, 1, 1], 4)
    assert np.isnan(r["per_class_recall"][3])
    assert r["mean_class_acc"] == pytest.approx((0.5 + 1.0) / 2)


def test_topk_against_sklearn():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 7))
    y = rng.integers(0, 7, 50)
    for k in (1, 2, 3):
        assert M.topk_accuracy(z, y, k) == pytest.approx(top_k_accuracy_score(y, z, k=k, labels=range(7)))
    assert M.topk_accuracy(z, y, 7) == 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same length"):
        M.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="0..2"):
        M.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="k must"):
        M.topk_accuracy(np.zeros((2, 3)), [0, 1], 4)
    with pytest.raises(ValueError, match="unknown metric"):
        M.bootstrap_ci([0], [0], metric="nope")


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "mean_class_acc"])
def test_bootstrap_contains_point_and_deterministic(fixed, metric):
    y, p = fixed
    lo, hi = M.bootstrap_ci(y, p, metric=metric, n=200, seed=1)
    point = {"accuracy": M.accuracy, "macro_f1": M.macro_f1, "mean_class_acc": M.mean_class_accuracy}[metric](y, p)
    assert lo <= point <= hi
    assert 0.0 <= lo < hi <= 1.0
    assert (lo, hi) == M.bootstrap_ci(y, p, metric=metric, n=200, seed=1)


def test_bootstrap_seed_and_alpha(fixed):
    y, p = fixed
    a = M.bootstrap_ci(y, p, n=300, seed=0)
    b = M.bootstrap_ci(y, p, n=300, seed=1)
    assert a != b
    narrow = M.bootstrap_ci(y, p, n=300, seed=0, alpha=0.5)
    assert narrow[1] - narrow[0] < a[1] - a[0]
    # the 95% interval of a 300-sample accuracy near 0.65 is roughly +-0.054 (normal approximation)
    half = (a[1] - a[0]) / 2
    acc = M.accuracy(y, p)
    assert half == pytest.approx(1.96 * np.sqrt(acc * (1 - acc) / 300), rel=0.25)
