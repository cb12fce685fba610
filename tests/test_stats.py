"""The statistics module on constructed data: calibrated under a null with shared image effects (where pooling images
across seeds is not), a planted effect found, Holm as statsmodels computes it, zero variance never certain, one run
never a verdict, clustered items, the learned guard, the confusion metrics against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from orsalib import stats
from orsalib.experiments.transfer import hsi_metrics


def _method(rng, easy, seeds=3, shift=0.0, seed_sd=0.08, interaction=None):
    """(seeds, images) correctness of one method: logit = 1 + image difficulty (shared by every method) + the
    method's own image effect + a per-seed shift (training variance) + ``shift``."""
    own = 0.0 if interaction is None else interaction
    logit = 1.0 + easy[None, :] + own + shift + seed_sd * rng.standard_normal((seeds, 1))
    return (rng.random((seeds, easy.size)) < 1 / (1 + np.exp(-logit))).astype(float)


def _pooled_mcnemar_rate(rng, sims: int) -> float:
    """The old design: images x seeds pooled as independent pairs (McNemar on pooled discordant pairs)."""
    hits = 0
    for _ in range(sims):
        easy = rng.normal(0, 1.5, 700)
        a, b = _method(rng, easy, seed_sd=0.25), _method(rng, easy, seed_sd=0.25)
        hits += stats.mcnemar_p(a.ravel() > 0.5, b.ravel() > 0.5) < 0.05
    return hits / sims


def test_null_with_shared_image_effects_is_calibrated_and_pooling_is_not():
    rng = np.random.default_rng(0)
    sims, false = 300, 0
    for k in range(sims):
        easy = rng.normal(0, 1.5, 700)  # hard images are hard for every method and every seed
        a, b = _method(rng, easy, seed_sd=0.25), _method(rng, easy, seed_sd=0.25)
        e = stats.crossed_effect(a, b, n_boot=300, seed=k)
        false += stats.decide(e.delta, e.p) != "not resolved"
    assert false / sims <= 0.05
    assert _pooled_mcnemar_rate(np.random.default_rng(1), 150) > 0.10  # the design this replaces: too many verdicts


def test_null_with_method_by_image_interaction_stays_near_nominal():
    rng = np.random.default_rng(2)
    sims, false = 300, 0
    for k in range(sims):
        easy = rng.normal(0, 1.5, 700)
        a = _method(rng, easy, seed_sd=0.2, interaction=rng.normal(0, 0.7, 700))
        b = _method(rng, easy, seed_sd=0.2, interaction=rng.normal(0, 0.7, 700))
        false += stats.crossed_effect(a, b, n_boot=300, seed=k).p < 0.05
    assert false / sims <= 0.07


def test_planted_effect_is_found_with_its_direction():
    rng = np.random.default_rng(3)
    easy = rng.normal(0, 1.5, 1000)
    a, b = _method(rng, easy, shift=0.8, seed_sd=0.03), _method(rng, easy, seed_sd=0.03)
    e = stats.crossed_effect(a, b, scale=100.0)
    assert e.delta > 5 and e.p < 0.05 and e.n_seeds == 3 and e.n_items == 1000 and not e.one_run
    assert stats.decide(e.delta, e.p) == "holds" and stats.decide(-e.delta, e.p) == "reversed"
    lo, hi = e.ci()
    assert lo > 0 and hi > e.delta > lo and e.se_seeds > 0
    assert e.delta == pytest.approx(100 * (a.mean() - b.mean()))
    one = stats.crossed_effect(a, b, alternative="greater", scale=100.0)  # same bootstrap draws: p halves
    assert one.p == pytest.approx(e.p / 2, rel=1e-6) and math.isinf(one.ci()[1]) and one.ci()[0] > lo
    assert stats.decide(-one.delta, one.p, alternative="greater") == "not resolved"  # one-sided: never "reversed"


def test_holm_equals_statsmodels_and_decision_level_matches_the_decision():
    from statsmodels.stats.multitest import multipletests

    p = [0.001, 0.04, 0.03, float("nan"), 0.2, 0.011]
    got = stats.holm(p)
    finite = [x for x in p if not math.isnan(x)]
    want = multipletests(finite, alpha=0.05, method="holm")[1]
    assert np.allclose(got[~np.isnan(got)], want) and math.isnan(got[3])
    rng = np.random.default_rng(4)
    easy = rng.normal(0, 1.0, 800)
    for shift in (0.0, 0.25, 0.5):
        e = stats.crossed_effect(_method(rng, easy, shift=shift), _method(rng, easy), scale=100.0)
        for factor in (1, 3, 10):
            p_adj = min(1.0, e.p * factor)
            lo, hi = e.ci(stats.decision_level(e.p, p_adj))
            excludes_zero = lo > 0 or hi < 0
            assert excludes_zero == (p_adj <= 0.05)


def test_zero_or_undefined_variance_is_never_certain():
    same = np.ones((3, 50))
    e = stats.crossed_effect(same, same)
    assert e.se == 0 and math.isnan(e.p) and stats.decide(e.delta, e.p) == "not resolved"
    a = np.ones((3, 50))
    b = np.zeros((3, 50))  # every run of A right, of B wrong: no spread at all
    e = stats.crossed_effect(a, b)
    assert math.isnan(e.p) and stats.decide(e.delta, e.p) == "not resolved" and math.isnan(e.ci()[0])


def test_one_run_per_method_is_flagged():
    rng = np.random.default_rng(5)
    easy = rng.normal(0, 1, 500)
    e = stats.crossed_effect(_method(rng, easy, seeds=1, shift=1.0), _method(rng, easy, seeds=1))
    assert e.one_run and e.n_seeds == 1 and e.se_seeds == 0


def test_mispaired_inputs_raise():
    with pytest.raises(ValueError, match="same items"):
        stats.crossed_effect(np.ones((3, 10)), np.ones((3, 11)))
    with pytest.raises(ValueError, match="one entry per item"):
        stats.crossed_effect(np.ones((3, 10)), np.ones((3, 10)), clusters=np.arange(9))
    with pytest.raises(ValueError, match="needs labels"):
        stats.crossed_effect(np.ones((3, 10)), np.ones((3, 10)), statistic="kappa")


def test_clustered_items_widen_the_interval():
    rng = np.random.default_rng(6)
    blocks = np.repeat(np.arange(40), 25)  # 1,000 pixels in 40 blocks, the blocks decide
    block_effect = rng.normal(0, 1.5, 40)[blocks]
    own_a, own_b = rng.normal(0, 1.5, 40)[blocks], rng.normal(0, 1.5, 40)[blocks]
    a = _method(rng, block_effect, interaction=own_a, seed_sd=0.01)
    b = _method(rng, block_effect, interaction=own_b, seed_sd=0.01)
    flat = stats.crossed_effect(a, b)
    grouped = stats.crossed_effect(a, b, clusters=blocks)
    assert grouped.n_clusters == 40 and grouped.se_items > 2 * flat.se_items and grouped.se > flat.se


def test_confusion_metrics_match_sklearn_and_hsi_metrics():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 6, 400)
    pred = np.where(rng.random(400) < 0.7, y, rng.integers(0, 6, 400))
    conf = np.zeros((6, 6))
    np.add.at(conf, (y, pred), 1)
    ref = hsi_metrics(y, pred, 6)
    assert stats.confusion_metrics(conf, "kappa") == pytest.approx(cohen_kappa_score(y, pred))
    assert stats.confusion_metrics(conf, "AA") == pytest.approx(ref["AA"])
    assert stats.confusion_metrics(conf, "OA") == pytest.approx(ref["OA"])
    runs = np.stack([np.where(rng.random(400) < 0.7, y, rng.integers(0, 6, 400)) for _ in range(3)])
    e = stats.crossed_effect(runs, runs[::-1], statistic="kappa", labels=y, num_classes=6, n_boot=200)
    assert e.delta == pytest.approx(0.0, abs=1e-12)
    per_run = [cohen_kappa_score(y, r) for r in runs]
    e2 = stats.crossed_effect(runs, runs[:1], statistic="kappa", labels=y, num_classes=6, n_boot=200)
    assert e2.value_a == pytest.approx(np.mean(per_run)) and e2.one_run


def test_learned_guard_is_the_majority_class_by_a_binomial_test():
    assert stats.majority_rate([0, 0, 0, 1, 2]) == pytest.approx(0.6)
    ok, p = stats.above_majority(330, 700, 0.386)
    assert ok and p < 0.01
    ok, p = stats.above_majority(275, 700, 0.386)  # "happy" to everything on RAF-DB's share: not learned
    assert not ok and p > 0.01
    assert stats.above_majority(0, 0, 0.5) == (False, pytest.approx(float("nan"), nan_ok=True))


def test_bootstrap_ci_and_mde():
    x = np.r_[np.ones(80), np.zeros(20)]
    lo, hi = stats.bootstrap_ci(x, n_boot=2000, seed=0)
    assert lo < 0.8 < hi and hi - lo < 0.2
    assert stats.mde(1.0, df=4) > stats.mde(1.0) > 0 and math.isnan(stats.mde(0.0))
    n = stats.items_for_mde(2.0, 0.2)
    assert stats.planned_mde_points(0.2, n) <= 2.0 < stats.planned_mde_points(0.2, n - 50)
    assert stats.mcnemar_p([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]) == pytest.approx(0.0625)
