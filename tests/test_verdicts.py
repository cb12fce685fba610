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
