"""Verdict statistics on constructed cases: a known difference is found, a null one is not."""

import json
import math

import numpy as np
import pytest

from orsalib.experiments import verdicts as V
from orsalib.paper import TABLE6, table7_delta, table8_delta


def test_verdict_of_signs():
    assert V.verdict_of(0.5, 2.0) == "holds"
    assert V.verdict_of(-2.0, -0.1) == "reversed"
    assert V.verdict_of(-1.0, 1.0) == "not resolved"
    assert V.verdict_of(-2.0, -0.5, expected=-1) == "holds"
    assert V.verdict_of(float("nan"), 1.0) == "not resolved"


def test_known_difference_on_images_is_found():
    rng = np.random.default_rng(0)
    n = 2000
    a = rng.random(n) < 0.80
    b = a & (rng.random(n) < 0.9)  # B = A with 10 % of A's hits lost: true gap 8 points
    v = V.compare_on_images("A beats B", "Table 2", "92.28 vs 88.90", a, b, seed=1)
    assert v.verdict == "holds" and v.ci_low > 5 and 6 < v.delta < 10 and v.p < 1e-6
    assert v.mde < v.delta and v.n == n and v.unit == "images"
    r = V.compare_on_images("B beats A", "Table 2", "", b, a, seed=1)
    assert r.verdict == "reversed"


def test_null_difference_is_not_resolved_most_of_the_time():
    rng = np.random.default_rng(3)
    outcomes = []
    for k in range(40):
        a = rng.random(400) < 0.7
        b = rng.random(400) < 0.7
        outcomes.append(V.compare_on_images("A beats B", "t", "", a, b, n_boot=500, seed=k).verdict)
    # a 95 % two-sided CI excludes 0 in ~5 % of null cases; allow up to 5 of 40
    assert outcomes.count("not resolved") >= 35


def test_mcnemar_matches_the_exact_binomial():
    a = np.array([1] * 10 + [0] * 2 + [1] * 50, dtype=bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50, dtype=bool)
    # 10 vs 2 discordant pairs: two-sided exact binomial p = 2 * P(X <= 2 | 12, 0.5)
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12
    assert V.mcnemar_p(a, b) == pytest.approx(expected)
    assert V.mcnemar_p(a, a) == 1.0


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    d = np.r_[np.ones(60), np.zeros(40)]
    m, lo, hi = V.paired_bootstrap(d, n_boot=3000, seed=0)
    assert m == 0.6 and lo < 0.6 < hi
    m2, lo2, hi2 = V.paired_bootstrap(np.tile(d, 10), n_boot=3000, seed=0)
    assert (hi2 - lo2) < (hi - lo) / 2


def test_over_seeds_t_interval():
    v = V.compare_over_seeds("full beats w/o X", "Table 6", "92.28 vs 92.15", [70.0, 71.0, 72.0], [60.0, 61.5, 61.0],
                             [0, 1, 2], paper_delta=0.13)  # fmt: skip
    assert v.verdict == "holds" and v.unit == "seeds" and v.n == 3 and v.delta == pytest.approx(10.1666, abs=1e-3)
    flat = V.compare_over_seeds("x", "t", "", [70.0, 60.0], [65.0, 66.0], [0, 1])
    assert flat.verdict == "not resolved"
    one = V.compare_over_seeds("x", "t", "", [70.0], [60.0], [0])
    assert one.verdict == "not resolved" and "one seed" in one.note


def test_verdicts_json_round_trip(tmp_path):
    v = V.compare_over_seeds("x", "Table 8", "87.91 vs 88.76", [1.0], [0.0], [0])
    path = V.write_verdicts([v], tmp_path / "verdicts.json", profile="smoke")
    raw = json.loads(path.read_text())
    assert raw["profile"] == "smoke"
    assert set(raw["verdicts"][0]) >= {"claim", "table", "paper", "ours", "delta", "ci_low", "ci_high", "p", "n",
                                       "seeds", "verdict", "mde"}  # fmt: skip
    assert raw["verdicts"][0]["ci_low"] is None  # NaN is written as null (valid JSON)
    back = V.read_verdicts(path)
    assert back[0].claim == "x" and math.isnan(back[0].ci_low)
    assert list(V.verdict_table(back)["verdict"]) == ["not resolved"]


def test_paper_numbers():
    assert TABLE6["full"]["Occlu-FER"] == 68.07
    assert table8_delta("crossvit") == 0.85 and table8_delta("gfnet") == 0.57
    assert table7_delta("pavia_u", "pixel", "kappa") == 2.68
    assert table7_delta("nowhere", "pixel") is None


# ----------------------------------------------------------------------------- images x seeds
def _seed_pairs(gap, seeds=3, n=1000, acc=0.8, disagree=0.15, seed=0):
    """Per seed, correctness of A and B on the same n images: they disagree on ~``disagree`` of them at equal
    accuracy, and B then loses ``gap`` of the images (a known difference of ``100 * gap`` points)."""
    rng = np.random.default_rng(seed)
    out_a, out_b = [], []
    for _ in range(seeds):
        base = rng.random(n) < acc
        a = base ^ (rng.random(n) < disagree / 2)
        b = base ^ (rng.random(n) < disagree / 2)
        if gap > 0:
            b = b & ~(rng.random(n) < gap / acc)
        elif gap < 0:
            a = a & ~(rng.random(n) < -gap / acc)
        out_a.append(a)
        out_b.append(b)
    return out_a, out_b


def test_images_x_seeds_known_null_and_reversed():
    a, b = _seed_pairs(0.03, seed=1)
    v = V.compare_on_images_by_seed("A beats B", "Table 6", "92.28 vs 92.15", a, b, [0, 1, 2], paper_delta=0.13)
    assert v.verdict == "holds" and v.unit == "images x seeds" and v.n == 3000 and v.seeds == [0, 1, 2]
    pooled = 100 * (np.concatenate(a).mean() - np.concatenate(b).mean())
    assert v.delta == pytest.approx(pooled) and 1.5 < v.delta < 4.5 and v.ci_low > 0 and v.p < 0.01
    # the MDE of this design: (z_.975 + z_.8) sqrt(sum_s n_s var_s) / N, close to the plan at the disagreement seen
    d = [x.astype(float) - y.astype(float) for x, y in zip(a, b)]
    se = math.sqrt(sum(len(x) * x.var(ddof=1) for x in d)) / 3000
    assert v.mde == pytest.approx(100 * 2.8016 * se, rel=1e-3)
    disc = float(np.mean(np.concatenate(a) != np.concatenate(b)))
    assert v.mde == pytest.approx(V.planned_mde_points(disc, 3000), rel=0.05)
    nulls = [V.compare_on_images_by_seed("x", "t", "", *_seed_pairs(0.0, seed=k), [0, 1, 2], n_boot=500).verdict
             for k in range(10, 30)]  # fmt: skip
    assert nulls.count("not resolved") >= 18
    r = V.compare_on_images_by_seed("A beats B", "t", "", *_seed_pairs(-0.03, seed=2), [0, 1, 2])
    assert r.verdict == "reversed" and r.ci_high < 0
    one = V.compare_on_images_by_seed("x", "t", "", a[:1], b[:1], [0])  # one seed still has images to pair
    assert one.n == 1000 and math.isfinite(one.ci_low)
    assert one.mde == pytest.approx(100 * V.mde_points(d[0].std(ddof=1), 1000))
    agree = V.compare_on_images_by_seed("x", "t", "", a, a, [0, 1, 2])
    assert agree.verdict == "not resolved" and agree.p == 1.0 and math.isnan(agree.mde)
    with pytest.raises(ValueError, match="one pair of arrays per seed"):
        V.compare_on_images_by_seed("x", "t", "", a, b[:2], [0, 1, 2])


def test_stratified_bootstrap_keeps_each_seed_and_matches_item_resampling():
    rng = np.random.default_rng(0)
    groups = [rng.integers(-1, 2, 300).astype(float), rng.integers(-1, 2, 500).astype(float)]
    fast = V._stratified_boot_means(groups, 4000, np.random.default_rng(1))  # multinomial over -1/0/1
    slow = V._stratified_boot_means([g + rng.normal(0, 1e-9, g.size) for g in groups], 4000,
                                    np.random.default_rng(1))  # fmt: skip  # > 64 distinct values: items resampled
    assert fast.mean() == pytest.approx(np.concatenate(groups).mean(), abs=0.01)
    assert fast.std() == pytest.approx(slow.std(), rel=0.1)
    se = math.sqrt(sum(g.size * g.var(ddof=1) for g in groups)) / 800
    assert fast.std() == pytest.approx(se, rel=0.1)


def test_aa_and_kappa_paired_bootstrap_over_pixels():
    from orsalib.experiments.transfer import hsi_metrics

    rng = np.random.default_rng(4)
    c, n = 9, 2000
    ys = [rng.integers(0, c, n) for _ in range(2)]
    good = [np.where(rng.random(n) < 0.85, y, rng.integers(0, c, n)) for y in ys]
    bad = [np.where(rng.random(n) < 0.82, g, rng.integers(0, c, n)) for g in good]  # ~3 points worse, correlated
    for m in V.CONFUSION_METRICS:
        v = V.compare_metric_by_seed("A beats B", "Table 7", "", m, ys, good, bad, [0, 1], c, paper_delta=1.0)
        k = 100.0 if m == "kappa" else 1.0
        want = np.mean([k * (hsi_metrics(y, g, c)[m] - hsi_metrics(y, b, c)[m]) for y, g, b in zip(ys, good, bad)])
        assert v.delta == pytest.approx(want) and v.verdict == "holds" and v.unit == "pixels x seeds" and v.n == 2 * n
        assert v.ci_low > 0 and v.p < 0.01 and 0 < v.mde < v.delta
        assert V.compare_metric_by_seed("x", "t", "", m, ys, bad, good, [0, 1], c).verdict == "reversed"
        same = V.compare_metric_by_seed("x", "t", "", m, ys, good, good, [0, 1], c)
        assert same.verdict == "not resolved" and same.delta == 0 and same.p == 1.0
        assert math.isnan(same.mde)  # no item on which they differ: no spread to size an MDE from
    nulls = []
    for k in range(12):
        y = rng.integers(0, c, 800)
        a, b = (np.where(rng.random(800) < 0.7, y, rng.integers(0, c, 800)) for _ in range(2))
        nulls.append(V.compare_metric_by_seed("x", "t", "", "kappa", [y], [a], [b], [0], c, n_boot=400, seed=k))
    assert sum(v.verdict == "not resolved" for v in nulls) >= 10
    with pytest.raises(ValueError, match="OA, AA or kappa|choose one of"):
        V.compare_metric_by_seed("x", "t", "", "F1", ys, good, bad, [0, 1], c)


def test_over_seeds_kept_beside_and_round_trip(tmp_path):
    a, b = _seed_pairs(0.03, seed=5)
    v = V.compare_on_images_by_seed("x", "Table 6", "", a, b, [0, 1, 2])
    over = V.compare_over_seeds("x", "Table 6", "", [100 * x.mean() for x in a], [100 * y.mean() for y in b], [0, 1, 2])
    V.with_over_seeds(v, over)
    assert v.over_seeds["n"] == 3 and v.over_seeds["delta"] == pytest.approx(over.delta) and "over seeds" in v.note
    lone = V.with_over_seeds(V.compare_on_images_by_seed("y", "Table 6", "", a[:1], b[:1], [0]),
                             V.compare_over_seeds("y", "Table 6", "", [1.0], [0.0], [0]))  # fmt: skip
    assert math.isnan(lone.over_seeds["ci_low"]) and "no interval" in lone.note
    path = V.write_verdicts([v, lone], tmp_path / "verdicts.json")
    raw = json.loads(path.read_text())  # strict JSON: NaN inside over_seeds is null too
    assert raw["verdicts"][1]["over_seeds"]["ci_low"] is None
    back = V.read_verdicts(path)
    assert back[0].over_seeds["verdict"] == over.verdict and math.isnan(back[1].over_seeds["ci_low"])
    assert back[0].unit == "images x seeds" and back[0].n == 3000


def test_planning_helpers():
    assert V.planned_mde_points(0.2, 6300) == pytest.approx(100 * 2.8016 * math.sqrt(0.2 / 6300), rel=1e-3)
    n = V.items_for_mde(2.0, 0.2)
    assert V.planned_mde_points(0.2, n) <= 2.0 < V.planned_mde_points(0.2, n - 50)
    one = V.mde_points(np.std([1, 0, 1, 0], ddof=1), 4)
    assert V.stratified_mde_points([[1.0, 0.0, 1.0, 0.0]]) == pytest.approx(one)


def test_over_seeds_mde_uses_the_t_quantiles():
    v = V.compare_over_seeds("x", "t", "", [70.0, 71.0], [69.0, 69.0], [0, 1])
    sd = np.std([1.0, 2.0], ddof=1)
    t = V.stats.t.ppf(0.975, 1) + V.stats.t.ppf(0.8, 1)
    assert v.mde == pytest.approx(t * sd / math.sqrt(2)) and v.mde > 4 * V.mde_points(sd, 2)
