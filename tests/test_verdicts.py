"""Verdict rows: built from a measured effect, decided per table family (Holm), the interval that matches the decision,
one run never a verdict, the JSON round trip (NaN as null, one-sided bounds as "inf"), the paper's numbers."""

import json
import math

import numpy as np
import pytest

from orsalib import paper, stats
from orsalib.experiments import verdicts as V


def _effect(shift, seed=0, seeds=3, n=800):
    rng = np.random.default_rng(seed)
    easy = rng.normal(0, 1.0, n)

    def runs(s):
        logit = 1.0 + easy[None, :] + s + 0.05 * rng.standard_normal((seeds, 1))
        return (rng.random((seeds, n)) < 1 / (1 + np.exp(-logit))).astype(float)

    return stats.crossed_effect(runs(shift), runs(0.0), scale=100.0)


def test_measured_row_carries_its_evidence():
    e = _effect(0.5)
    v = V.measured("A beats B", "Table 2", "92.28 vs 88.90", e, paper_delta=3.38, seeds=[0, 1, 2], data="SynthFER")
    assert v.verdict == "holds" and v.p == e.p and v.n_seeds == 3 and v.resampling == e.resampling
    assert v.ci_low > 0 and v.ci_level == pytest.approx(0.95) and v.data == "SynthFER" and v.n == 800
    assert math.isfinite(v.mde) and v.mde > 0 and v.se == pytest.approx(e.se)
    r = V.measured("B beats A", "Table 2", "", _effect(-0.5))
    assert r.verdict == "reversed" and r.ci_high < 0


def test_adjust_is_holm_within_each_table_only():
    rows = [V.measured(f"claim {k}", "Table 3", "", _effect(s, seed=k)) for k, s in enumerate((0.25, 0.0, 0.0, 0.0))]
    other = V.measured("elsewhere", "Table 6", "", _effect(0.25, seed=0))
    p_alone = rows[0].p
    V.adjust([*rows, other])
    from statsmodels.stats.multitest import multipletests

    want = multipletests([v.p for v in rows], method="holm")[1]
    assert [v.p_adjusted for v in rows] == pytest.approx(list(want))
    assert other.p_adjusted == pytest.approx(other.p) and other.adjust_method == "holm (m = 1, Table 6)"
    assert rows[0].adjust_method == "holm (m = 4, Table 3)" and rows[0].p == p_alone
    for v in [*rows, other]:  # the printed interval matches the decision
        excludes = v.ci_low > 0 or v.ci_high < 0
        assert excludes == (v.verdict in ("holds", "reversed"))


def test_one_run_and_not_measured_rows_stay_out_of_the_family():
    rng = np.random.default_rng(1)
    a, b = rng.random((1, 500)) < 0.9, rng.random((1, 500)) < 0.5
    one = V.measured("one run", "Table 2", "", stats.crossed_effect(a, b, scale=100.0))
    nm = V.not_measured("missing", "Table 2", "", "no data")
    multi = V.measured("seeds", "Table 2", "", _effect(0.5))
    V.adjust([one, nm, multi])
    assert one.verdict == "not resolved" and V.ONE_RUN in one.note and math.isnan(one.p_adjusted)
    assert nm.verdict == V.NOT_MEASURED and multi.adjust_method == "holm (m = 1, Table 2)"


def test_verdicts_json_round_trip(tmp_path):
    one_sided = V.measured("A degrades less", "Table 3", "", stats.crossed_effect(
        np.eye(1, 300).repeat(3, 0) + 0.0, np.zeros((3, 300)), alternative="greater"))  # fmt: skip
    rows = V.adjust([V.measured("x", "Table 2", "p", _effect(0.3)), one_sided, V.not_measured("y", "Table 2", "", "")])
    path = V.write_verdicts(rows, tmp_path / "v.json", profile="cpu")
    raw = json.loads(path.read_text())
    assert raw["profile"] == "cpu" and raw["verdicts"][2]["delta"] is None
    back = V.read_verdicts(path)
    assert back[0].delta == pytest.approx(rows[0].delta) and back[0].p_adjusted == pytest.approx(rows[0].p_adjusted)
    assert math.isnan(back[2].delta) and back[2].verdict == V.NOT_MEASURED
    if math.isinf(rows[1].ci_high):
        assert raw["verdicts"][1]["ci_high"] == "inf" and math.isinf(back[1].ci_high)
    table = V.verdict_table(back)
    assert list(table.columns)[:6] == ["table", "claim", "paper", "paper Δ", "ours", "delta"]
    assert "p (Holm)" in table.columns and "CI level" in table.columns


def test_paper_numbers():
    assert paper.TABLE2["ORSANet"]["RAF-DB"] == 92.28
    assert paper.TABLE6["w/o cross-interaction"]["RAF-DB"] == 91.99
    assert paper.table8_delta("crossvit") == pytest.approx(paper.TABLE8["crossvit"]["with"]["top1"]
                                                           - paper.TABLE8["crossvit"]["without"]["top1"])  # fmt: skip
