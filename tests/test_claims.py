"""A verdict for every paper claim: each table family on constructed inputs over seeds (a known difference is found, a
null one is not, one run is never a verdict, a model that did not learn is not measured, mispaired rows raise), and
the shared verdicts.json (schema, merging, replacing, Holm within each table)."""

import json
import math
import uuid
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from orsalib.experiments import claims as C
from orsalib.experiments.ablations import slug
from orsalib.experiments.transfer import hsi_metrics
from orsalib.experiments.verdicts import NOT_MEASURED, VERDICTS
from orsalib.paper import TABLE2, TABLE6

FIELDS = {"claim", "table", "paper", "ours", "delta", "ci_low", "ci_high", "p", "n", "unit", "verdict", "mde",
          "paper_delta", "seeds", "note", "source", "dataset", "data", "p_adjusted", "adjust_method", "n_seeds",
          "resampling", "se", "df", "alternative", "expected", "ci_level", "one_run"}  # fmt: skip
BASE = {"the prior-free baseline": "base"}
N_CLAIMS = 63  # every claim of Tables 2, 3, 4, 6, 7, 8 (test_expected_claims_cover_every_table)


def _run() -> str:
    return f"claims-{uuid.uuid4().hex[:8]}"


def _by_claim(vs):
    return {v.claim: v for v in vs}


def _hits(rng, n, p):
    return rng.random(n) < p


def _seeded(rng, n, acc, seeds=(0, 1, 2), ids=None, sd=0.01, easy=None):
    """Correctness of one method over ``seeds`` on the same ``n`` images (a frame: images x seeds). ``easy``: a
    per-image difficulty shared by every method (logit offset); each seed moves the accuracy by ``sd``."""
    ids = np.arange(n) if ids is None else ids
    easy = np.zeros(n) if easy is None else easy
    base = np.log(acc / (1 - acc))
    cols = {}
    for s in seeds:
        logit = base + easy + 4 * sd * rng.standard_normal()
        cols[s] = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(cols, index=ids)


# ----------------------------------------------------------------------------- Tables 2, 3, 4 (images x seeds)
def test_table2_known_difference_is_found_and_images_are_paired_by_id():
    rng = np.random.default_rng(0)
    easy = rng.normal(0, 1.5, 1500)
    ids = np.arange(1000, 2500)
    a = _seeded(rng, 1500, 0.85, ids=ids, easy=easy)
    b = _seeded(rng, 1500, 0.70, ids=ids, easy=easy)
    b_shuffled = b.iloc[rng.permutation(len(b))]  # another order: pairing goes by image id, not by position
    (v,) = C.table2_claims({("ORSANet", "clean"): a, ("base", "clean"): b_shuffled}, "ORSANet", BASE,
                           dataset="synthfer", majority=0.2, data="SynthFER, 7 classes")  # fmt: skip
    assert v.table == "Table 2" and v.verdict == "holds" and v.n == 1500 and v.unit == "images" and v.n_seeds == 3
    assert v.delta == pytest.approx(100 * (a.to_numpy().mean() - b.to_numpy().mean())) and v.ci_low > 0
    assert v.paper_delta == pytest.approx(TABLE2["ORSANet"]["RAF-DB"] - TABLE2["POSTER V2"]["RAF-DB"], abs=1e-9)
    assert v.dataset == "synthfer" and "92.28" in v.paper and v.data == "SynthFER, 7 classes"
    assert "seeds" in v.resampling and v.seeds == [0, 1, 2] and "3 vs 3 seeds" in v.ours
    (r,) = C.table2_claims({("ORSANet", "clean"): b, ("base", "clean"): a}, "ORSANet", BASE, majority=0.2)
    assert r.verdict == "reversed"


def test_mispaired_rows_raise_naming_them():
    rng = np.random.default_rng(1)
    a = _seeded(rng, 300, 0.8)
    b = _seeded(rng, 300, 0.8, ids=np.arange(5, 305))
    with pytest.raises(ValueError, match="mispaired rows"):
        C.table2_claims({("ORSANet", "clean"): a, ("base", "clean"): b}, "ORSANet", BASE, majority=0.2)
    holes = a.astype(float).copy()
    holes.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match="seeds \\[1\\]"):
        C.table2_claims({("ORSANet", "clean"): holes, ("base", "clean"): a}, "ORSANet", BASE, majority=0.2)


def test_one_training_run_is_never_a_verdict():
    rng = np.random.default_rng(2)
    a, b = _seeded(rng, 2000, 0.9, seeds=(0,)), _seeded(rng, 2000, 0.6, seeds=(0,))
    (v,) = C.table2_claims({("ORSANet", "clean"): a[0], ("base", "clean"): b[0]}, "ORSANet", BASE, majority=0.2)
    assert v.verdict == "not resolved" and v.one_run and "one training run: not a method comparison" in v.note
    assert v.delta > 20  # the difference is reported, not judged


def test_table2_null_is_not_resolved_and_ran_row_is_the_papers():
    rng = np.random.default_rng(1)
    easy = rng.normal(0, 1.5, 600)
    correct = {("ORSANet", "clean"): _seeded(rng, 600, 0.7, easy=easy), ("RAN", "clean"): _seeded(rng, 600, 0.7,
                                                                                                  easy=easy)}
    (v,) = C.table2_claims(correct, "ORSANet", {"RAN": "RAN"}, majority=0.2)
    assert v.verdict == "not resolved" and v.ci_low < 0 < v.ci_high
    assert v.paper == "92.28 vs 88.90 (RAN)" and v.paper_delta == pytest.approx(3.38)
    assert math.isfinite(v.mde) and v.mde > 0


def test_table2_not_measured_rows():
    vs = C.table2_claims({}, "ORSANet", {"the prior-free baseline": None, "RAN": "RAN"})
    assert [v.verdict for v in vs] == [NOT_MEASURED, NOT_MEASURED]
    assert "not evaluated" in vs[0].note and "no predictions" in vs[1].note
    assert all(math.isnan(v.delta) and v.n == 0 for v in vs)


def test_no_verdict_against_a_model_that_did_not_learn():
    """'Learned' is above the majority class (one-sided binomial), not above 1/classes: a model that says the majority
    class to everything passes 1/7 on an imbalanced set, and is caught here."""
    rng = np.random.default_rng(3)
    n, majority = 700, 0.386  # e.g. RAF-DB's share of "happy"
    good = _seeded(rng, n, 0.8)
    always_happy = pd.DataFrame({s: rng.random(n) < majority for s in (0, 1, 2)})  # at the majority rate
    correct = {("ORSANet", "clean"): good, ("base", "clean"): always_happy}
    for r in (0.1, 0.2, 0.3):
        correct[("ORSANet", f"rectangle {round(100 * r)}%")] = good
        correct[("base", f"rectangle {round(100 * r)}%")] = always_happy
    (v,) = C.table2_claims(correct, "ORSANet", BASE, majority=majority)
    assert v.verdict == NOT_MEASURED and "did not learn" in v.note and "base (seed 0)" in v.note
    assert "38.6 %" in v.note
    assert C.table2_claims(correct, "ORSANet", BASE, num_classes=7)[0].verdict == "holds"  # 1/7 would let it pass
    v3 = C.table3_claims(correct, "ORSANet", BASE, majority=majority)
    assert all(v.verdict == NOT_MEASURED and "did not learn" in v.note for v in v3)


def _sweep_correct(rng, n, drop_main, drop_base, ratios=(0.1, 0.2, 0.3), seeds=(0, 1, 2)):
    clean = _seeded(rng, n, 0.9, seeds=seeds)
    out = {("ORSANet", "clean"): clean, ("base", "clean"): _seeded(rng, n, 0.9, seeds=seeds)}
    for r in ratios:
        cond = f"rectangle {round(100 * r)}%"
        for m, drop in (("ORSANet", drop_main), ("base", drop_base)):
            c = out[(m, "clean")]
            out[(m, cond)] = c & pd.DataFrame(~(rng.random(c.shape) < drop), index=c.index, columns=c.columns)
    return out


def test_table3_degradation_known_difference_is_found_one_sided():
    rng = np.random.default_rng(2)
    vs = _by_claim(C.table3_claims(_sweep_correct(rng, 2000, 0.05, 0.30), "ORSANet", BASE, majority=0.2))
    assert len(vs) == 6  # accuracy and degradation at 10/20/30 %
    d = vs["ORSANet degrades less than the prior-free baseline from 0 to 20% occlusion"]
    assert d.verdict == "holds" and d.table == "Table 3" and d.unit == "images" and d.n == 2000
    assert d.alternative == "greater" and math.isinf(d.ci_high) and d.ci_low > 0  # one-sided, claimed direction
    assert 18 < d.delta < 27  # true gap 0.9 * (0.30 - 0.05) = 22.5 points
    assert "accuracy change" in d.ours and "by the paper's own numbers" in d.paper
    a = vs["ORSANet beats the prior-free baseline under 30% occlusion"]
    assert a.verdict == "holds" and a.paper_delta == pytest.approx(84.02 - 82.53) and a.alternative == "two-sided"
    worse = _by_claim(C.table3_claims(_sweep_correct(rng, 2000, 0.30, 0.05), "ORSANet", BASE, majority=0.2))
    w = worse["ORSANet degrades less than the prior-free baseline from 0 to 20% occlusion"]
    assert w.verdict == "not resolved" and w.delta < 0  # a one-sided test in the claimed direction cannot "reverse"


def test_table3_null_and_missing_ratios():
    rng = np.random.default_rng(3)
    vs = _by_claim(C.table3_claims(_sweep_correct(rng, 800, 0.2, 0.2, ratios=(0.2, 0.25)), "ORSANet", BASE,
                                   majority=0.2))  # fmt: skip
    assert vs["ORSANet degrades less than the prior-free baseline from 0 to 20% occlusion"].verdict == "not resolved"
    assert vs["ORSANet beats the prior-free baseline under 20% occlusion"].verdict == "not resolved"
    for pct in ("10%", "30%"):  # paper ratios not evaluated here: listed, not measured
        claim = f"ORSANet degrades less than the prior-free baseline from 0 to {pct} occlusion"
        assert vs[claim].verdict == NOT_MEASURED
    extra = vs["ORSANet beats the prior-free baseline under 25% occlusion"]  # a ratio the paper has not
    assert extra.paper == "no such ratio in the paper" and extra.paper_delta is None and extra.verdict in VERDICTS


def test_table4_real_columns():
    rng = np.random.default_rng(4)
    a, b = _seeded(rng, 1500, 0.85), _seeded(rng, 1500, 0.7)
    correct = {("ORSANet", "real: valid_occluded"): a, ("base", "real: valid_occluded"): b,
               ("ORSANet", "real: valid_occluded / hand"): a.iloc[:10],
               ("base", "real: valid_occluded / hand"): b.iloc[:10]}  # fmt: skip
    vs = _by_claim(C.table4_claims(correct, "ORSANet", BASE))
    assert len(vs) == 2
    raf = vs["ORSANet beats the prior-free baseline on real occlusion (RAF-DB (occlu) analogue)"]
    assert raf.verdict == "holds" and raf.n == 1500 and raf.paper_delta == pytest.approx(87.75 - 87.02)
    assert vs["ORSANet beats the prior-free baseline on real occlusion (Occlu-FER analogue)"].verdict == NOT_MEASURED
    assert C.real_column("real: occlu_fer") == "Occlu-FER" and C.real_column("real: valid_occluded") == "RAF-DB (occlu)"


def _pred(correct_rows, indices):
    from orsalib.engine.evaluate import Predictions

    labels = np.zeros(len(indices), dtype=np.int64)
    logits = np.zeros((len(indices), 2), dtype=np.float32)
    logits[:, 1] = [0.0 if ok else 1.0 for ok in correct_rows]  # argmax 0 = right
    return Predictions(logits=logits, labels=labels, indices=np.asarray(indices, dtype=np.int64))


def test_per_image_correct_lines_up_clean_and_occluded_copies_and_groups_seeds():
    src_rows = np.array([10, 11, 12, 13])  # rows of the source manifest
    clean_m = pd.DataFrame({"source_index": src_rows}, index=src_rows)  # the reused loader yields manifest rows
    occ_m = pd.DataFrame({"source_index": src_rows})  # copies: index 0..3
    conds = [SimpleNamespace(name="clean", manifest=clean_m), SimpleNamespace(name="rectangle 20%", manifest=occ_m)]
    sweep = SimpleNamespace(conditions=conds, predictions={
        ("m", "clean"): _pred([True, True, False, True], [13, 10, 11, 12]),
        ("m", "rectangle 20%"): _pred([False, True, True, True], [3, 0, 1, 2]),
        ("m@s1", "clean"): _pred([True, False, False, True], [10, 11, 12, 13]),
    })  # fmt: skip
    c = C.per_image_correct(sweep)
    assert list(c[("m", "clean")].sort_index().index) == [10, 11, 12, 13]
    assert c[("m", "clean")].loc[13] and not c[("m", "clean")].loc[11]
    assert not c[("m", "rectangle 20%")].loc[13] and c[("m", "rectangle 20%")].loc[10]
    g = C.by_method(c, {"m": ("m", 0), "m@s1": ("m", 1)})
    assert list(g[("m", "clean")].columns) == [0, 1] and bool(g[("m", "clean")].loc[11, 1]) is False
    # a model with its own condition copies (another prior source): its rows are looked up in its own manifests
    own_m = pd.DataFrame({"source_index": src_rows})  # rows 0..3 of the other source's clean copy
    other = SimpleNamespace(conditions=conds, model_conditions={"o": [SimpleNamespace(name="clean", manifest=own_m)]},
                            predictions={("o", "clean"): _pred([True, False, True, True], [0, 1, 2, 3])})  # fmt: skip
    assert list(C.per_image_correct(other)[("o", "clean")].index) == [10, 11, 12, 13]
    bad = SimpleNamespace(conditions=conds, predictions={("m", "rectangle 20%"): _pred([True], [7])})
    with pytest.raises(ValueError, match="rows \\[7\\]"):  # a row the condition lacks: never paired silently
        C.per_image_correct(bad)


# ----------------------------------------------------------------------------- the shared file
def test_expected_claims_cover_every_table():
    vs = C.expected_claims()
    assert {v.table for v in vs} == set(C.CLAIM_TABLES)
    # Tables 2-4: 9 claims per baseline (clean; 3 ratios x (more accurate, degrades less); 2 real columns) x 3
    # baselines (prior-free twin, resnet18, RAN) = 27; Table 6: 20; Table 7: 12; Table 8: 4
    assert len({(v.table, v.claim) for v in vs}) == len(vs) == N_CLAIMS
    assert all(v.verdict == NOT_MEASURED and v.source and "notebook" in v.note for v in vs)


def test_record_verdicts_schema_merge_replace_and_holm_per_table():
    run = _run()
    rng = np.random.default_rng(7)
    a, b = _seeded(rng, 800, 0.85), _seeded(rng, 800, 0.7)
    first = C.table2_claims({("O", "clean"): a, ("base", "clean"): b}, "O", BASE, majority=0.2,
                            source="50_evaluation_occlusion")  # fmt: skip
    path = C.record_verdicts(run, first, profile="smoke")
    assert path == C.verdicts_path(run) and path.name == "verdicts.json" and path.parent.name == "results"
    raw = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert raw["profile"] == "smoke" and raw["run_name"] == run and set(raw["counts"]) == set(VERDICTS)
    rows = raw["verdicts"]
    assert {r["table"] for r in rows} == set(C.CLAIM_TABLES) and len(rows) == N_CLAIMS
    for r in rows:
        assert set(r) == FIELDS and r["verdict"] in VERDICTS and isinstance(r["seeds"], list)
        if r["verdict"] != NOT_MEASURED:
            assert r["ci_low"] <= r["delta"] <= r["ci_high"] and r["n"] > 0 and r["unit"] == "images"
            assert isinstance(r["n_seeds"], int) and r["p_adjusted"] >= r["p"] and r["adjust_method"].startswith("holm")
            assert r["resampling"] and "data" in r
    measured = [r for r in rows if r["verdict"] != NOT_MEASURED]
    assert [r["claim"] for r in measured] == ["ORSANet beats the prior-free baseline (clean)"]
    # a second Table 2 row joins the family: Holm over both, p_adjusted as statsmodels gives it
    more = C.table2_claims({("O", "clean"): a, ("r", "clean"): _seeded(rng, 800, 0.84)}, "O", {"RAN": "r"},
                           majority=0.2)  # fmt: skip
    C.record_verdicts(run, more, notebook="50")
    # a rerun of the first: replaced, never duplicated
    again = C.table2_claims({("O", "clean"): b, ("base", "clean"): a}, "O", BASE, majority=0.2)
    C.record_verdicts(run, again)
    raw = json.loads(path.read_text())
    keys = [(r["table"], r["claim"]) for r in raw["verdicts"]]
    assert len(keys) == len(set(keys)) == N_CLAIMS and raw["profile"] == "smoke" and raw["notebook"] == "50"
    by = {r["claim"]: r for r in raw["verdicts"]}
    twin, ran = by["ORSANet beats the prior-free baseline (clean)"], by["ORSANet beats RAN (clean)"]
    assert twin["verdict"] == "reversed" and twin["adjust_method"] == "holm (m = 2, Table 2)"
    from statsmodels.stats.multitest import multipletests

    want = multipletests([twin["p"], ran["p"]], method="holm")[1]
    assert [twin["p_adjusted"], ran["p_adjusted"]] == pytest.approx(list(want))
    assert raw["counts"]["reversed"] == 1
    assert [r["table"] for r in raw["verdicts"]] == sorted((r["table"] for r in raw["verdicts"]),
                                                          key=C.CLAIM_TABLES.index)  # fmt: skip
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_record_verdicts_refuses_unknown_verdicts():
    v = C.expected_claims()[0]
    v.verdict = "probably"
    with pytest.raises(ValueError, match="unknown verdicts"):
        C.record_verdicts(_run(), [v])


def test_verdict_summary_and_report(tmp_path):
    run = _run()
    assert len(C.verdict_summary(run)) == N_CLAIMS  # no file yet: every claim, not measured
    C.record_verdicts(run, C.table6_claims(_ablation_files(tmp_path)))
    df = C.verdict_summary(run)
    assert list(df.columns)[-3:] == ["verdict", "data", "source"] and set(df["table"]) == set(C.CLAIM_TABLES)
    assert C.verdict_counts(df)["holds"] >= 2
    text = C.verdict_report(run)
    assert text.splitlines()[0].startswith("verdicts (") and len(text.splitlines()) == N_CLAIMS + 1 and "holds" in text


def test_verdict_figure_and_run_index_section(tmp_path):
    from orsalib.viz import write_run_index
    from orsalib.viz.verdicts import verdict_figure

    vs = C.table6_claims(_ablation_files(tmp_path))
    fig = verdict_figure(vs)
    drawn = [t for t in fig.data if t.name in ("holds", "not resolved", "reversed")]
    assert sum(len(t.x) for t in drawn) == sum(v.verdict != NOT_MEASURED for v in vs)
    assert "not measured" in fig.layout.title.text and fig.to_json()
    run = _run()
    C.record_verdicts(run, vs)
    page = write_run_index(run).read_text()
    assert "Paper claims: verdicts" in page and page.count("<tr title=") == N_CLAIMS and "v-holds" in page


# ----------------------------------------------------------------------------- Tables 6-8 on images x seeds
def _hits_pair(rng, n, gap, acc=0.8, disagree=0.15):
    """Correctness of A and B on the same n images: they disagree on ~``disagree`` at equal accuracy, then B loses
    ``gap`` of the images (gap < 0: A does)."""
    base = rng.random(n) < acc
    a = base ^ (rng.random(n) < disagree / 2)
    b = base ^ (rng.random(n) < disagree / 2)
    if gap > 0:
        b &= ~(rng.random(n) < gap / acc)
    elif gap < 0:
        a &= ~(rng.random(n) < -gap / acc)
    return a, b


def _derived(rng, ref, gap, disagree=0.15):
    """Correctness of a model that disagrees with ``ref`` on ~``disagree`` of the images at equal accuracy, then is
    ``100 * gap`` points worse (gap > 0) or better (gap < 0)."""
    acc = ref.mean()
    r_hit, r_miss = disagree / 2 / acc, disagree / 2 / (1 - acc)  # as many hits lost as misses gained
    u = rng.random(ref.size)
    x = np.where(ref, u >= r_hit, u < r_miss)
    v = rng.random(ref.size)
    if gap > 0:
        x &= ~(v < gap / x.mean())
    elif gap < 0:
        x |= v < -gap / (1 - x.mean())
    return x


def _write(path, columns):
    from orsalib.experiments.per_image import write_per_image

    return str(write_per_image(path, columns))


def _cols(correct, ids, top5=None, num_classes=7):
    labels = ids % num_classes
    pred = np.where(correct, labels, (labels + 1) % num_classes)
    out = {"ids": ids, "label": labels, "pred": pred}
    if top5 is not None:
        out["top5"] = top5
    return out


def _ablation_files(tmp_path, seeds=(0, 1, 2, 3, 4), n=2000, gaps=None):
    """Per seed, a full model and three ablations derived from it (7 points worse, as good, 7 points better), each
    run's per-image predictions in a file."""
    rng = np.random.default_rng(3)
    gaps = gaps or {"w/o segmentation prior": 0.07, "w/o cross-interaction": 0.0, "w/o DARELoss": -0.07}
    rows = []
    ids = rng.permutation(np.arange(n))
    for s in seeds:
        full = {m: rng.random(n) < acc + 0.005 * rng.standard_normal()
                for m, acc in (("clean_acc", 0.8), ("occluded_acc", 0.6), ("real_occluded_acc", 0.7))}  # fmt: skip
        variants = {"full": full}
        for v, gap in gaps.items():
            variants[v] = {m: _derived(rng, f, gap) for m, f in full.items()}
        for v, cols in variants.items():
            path = _write(tmp_path / f"{slug(v)}_{s}.npz", {m: _cols(c, ids) for m, c in cols.items()})
            rows.append({"variant": v, "seed": s, **{m: c.mean() for m, c in cols.items()},
                         "occluded_condition": "rectangle 20%", "per_image_path": path})  # fmt: skip
    return pd.DataFrame(rows)


def test_table6_over_seeds_known_null_reversed(tmp_path):
    runs = _ablation_files(tmp_path)
    by = _by_claim(C.table6_claims(runs, dataset="synthfer", data="SynthFER"))
    assert len(by) == 5 * 4
    seg = by["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert seg.verdict == "holds" and seg.unit == "images" and seg.n == 2000 and seg.seeds == [0, 1, 2, 3, 4]
    assert seg.n_seeds == 5 and 5 < seg.delta < 9 and seg.data == "SynthFER"
    assert seg.paper_delta == pytest.approx(TABLE6["full"]["RAF-DB"] - 92.15)
    assert by["removing segmentation prior hurts (real occlusion, RAF-DB (occlu) analogue)"].verdict == "holds"
    assert by["removing cross-interaction hurts (clean images, RAF-DB analogue)"].verdict == "not resolved"
    assert by["removing DARELoss hurts (artificial occlusion; not a column of the paper)"].verdict == "reversed"
    assert by["removing multi-scale hurts (clean images, RAF-DB analogue)"].verdict == NOT_MEASURED
    assert by["removing segmentation prior hurts (Occlu-FER analogue)"].verdict == NOT_MEASURED
    # a seed whose file is gone is left out and named in the note
    part = runs.copy()
    part.loc[(part.seed == 2) & (part.variant == "full"), "per_image_path"] = ""
    seg2 = _by_claim(C.table6_claims(part))["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert "4 vs 5 seeds" in seg2.ours and "seeds [2] kept no per-image" in seg2.note
    # records without any per-image file: not measured, and the note says to run them again
    old = runs.assign(per_image_path="")
    seg3 = _by_claim(C.table6_claims(old))["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert seg3.verdict == NOT_MEASURED and "per-image predictions" in seg3.note


def test_table6_ablation_at_chance_is_not_measured(tmp_path):
    runs = _ablation_files(tmp_path, gaps={"w/o cross-interaction": 0.0})
    dead_rows = []
    for _, r in runs[runs.variant == "w/o cross-interaction"].iterrows():  # overwrite its files with chance guesses
        ids = np.arange(2000)
        rng = np.random.default_rng(int(r.seed))
        cols = {m: _cols(rng.random(2000) < 1 / 7, ids) for m in ("clean_acc", "occluded_acc", "real_occluded_acc")}
        dead_rows.append(_write(tmp_path / f"dead{r.seed}.npz", cols))
    runs.loc[runs.variant == "w/o cross-interaction", "per_image_path"] = dead_rows
    runs["per_image_path"] = runs["per_image_path"].astype(str)
    by = _by_claim(C.table6_claims(runs))
    v = by["removing cross-interaction hurts (clean images, RAF-DB analogue)"]
    assert v.verdict == NOT_MEASURED and "did not learn" in v.note and "w/o cross-interaction" in v.note


def _dare_runs_per_image(tmp_path, kind, gap, seeds=(0, 1, 2), n=4000):
    rng = np.random.default_rng(21)
    rows = []
    ids = np.arange(n) * 3 + 7  # e.g. flat pixel positions (scene width 100)
    c = 9
    labels = {scene: rng.integers(0, c, n) for scene in ("indian_pines", "pavia_u")}  # the same test pixels every seed
    for s in seeds:
        if kind == "hsi":
            for scene, mode in (("indian_pines", "pixel"), ("pavia_u", "patch")):
                y = labels[scene]
                wo_ok = rng.random(n) < 0.8
                w_ok = _derived(rng, wo_ok, -gap / 100)  # "with" is gap points better
                wo = np.where(wo_ok, y, (y + rng.integers(1, c, n)) % c)  # a wrong label is never y
                w = np.where(w_ok, y, (y + rng.integers(1, c, n)) % c)
                for var, pred in (("without", wo), ("with", w)):
                    path = _write(tmp_path / f"{scene}{mode}{var}{s}.npz", {"test": {"ids": ids, "label": y,
                                                                                      "pred": pred}})  # fmt: skip
                    m = hsi_metrics(y, pred, c)
                    rows.append({"task": f"{scene} {mode}", "model": f"spectralformer_{mode}", "variant": var,
                                 "seed": s, "OA": m["OA"], "AA": m["AA"], "kappa": m["kappa"], "scene_width": 100,
                                 "dataset": f"semi-synthetic {scene} (real class map, 145x145, 200 bands; not the "
                                            "real cube)", "per_image": path})  # fmt: skip
        else:
            c1_wo = rng.random(n) < 0.8
            c1_w = _derived(rng, c1_wo, -gap / 100)  # "with" is gap points better
            t5_w, t5_wo = _hits_pair(rng, n, 0.0, acc=0.97, disagree=0.03)
            for var, c1, t5 in (("with", c1_w, t5_w), ("without", c1_wo, t5_wo)):
                t5 = t5 | c1  # top-1 correct -> top-5 correct
                path = _write(tmp_path / f"img{var}{s}.npz", {"test": _cols(c1, ids, top5=t5, num_classes=10)})
                rows.append({"model": "crossvit_tiny", "family": "crossvit", "variant": var, "seed": s,
                             "top1": 100 * c1.mean(), "top5": 100 * t5.mean(),
                             "dataset": "digits stand-in (not CIFAR-10)", "per_image": path})  # fmt: skip
    return pd.DataFrame(rows)


def test_table7_on_pixels_x_seeds(tmp_path):
    by = _by_claim(C.table7_claims(_dare_runs_per_image(tmp_path, "hsi", 7.0)))
    oa = by["DARELoss improves SpectralFormer OA on Indian Pines (pixel-wise)"]
    assert oa.verdict == "holds" and oa.unit == "pixels (8x8 blocks)" and oa.n == 4000 and oa.n_seeds == 3
    assert oa.data.startswith("procedural HSI scene (Indian Pines cube not found)")
    for m in ("AA", "kappa"):
        v = by[f"DARELoss improves SpectralFormer {m} on Pavia University (patch-wise)"]
        assert v.verdict == "holds" and v.unit.startswith("pixels") and "recomputed" in v.note and v.ours
    assert by["DARELoss improves SpectralFormer OA on Pavia University (pixel-wise)"].verdict == NOT_MEASURED
    flip = _by_claim(C.table7_claims(_dare_runs_per_image(tmp_path, "hsi", -7.0)))
    assert flip["DARELoss improves SpectralFormer kappa on Indian Pines (pixel-wise)"].verdict == "reversed"
    null = _by_claim(C.table7_claims(_dare_runs_per_image(tmp_path, "hsi", 0.0)))
    assert null["DARELoss improves SpectralFormer AA on Indian Pines (pixel-wise)"].verdict == "not resolved"


def test_table8_on_images_x_seeds_top1_top5(tmp_path):
    by = _by_claim(C.table8_claims(_dare_runs_per_image(tmp_path, "image", 7.0)))
    t1 = by["DARELoss improves CrossViT top-1 on CIFAR-10"]
    assert t1.verdict == "holds" and t1.unit == "images" and t1.n == 4000 and t1.dataset.startswith("digits")
    assert t1.data.startswith("digits, 10 classes (CIFAR-10 not found)")
    t5 = by["DARELoss improves CrossViT top-5 on CIFAR-10"]
    assert t5.unit == "images" and "top-5 correctness" in t5.note and t5.mde < t1.mde
    rev = _by_claim(C.table8_claims(_dare_runs_per_image(tmp_path, "image", -7.0)))
    assert rev["DARELoss improves CrossViT top-1 on CIFAR-10"].verdict == "reversed"
    null = _by_claim(C.table8_claims(_dare_runs_per_image(tmp_path, "image", 0.0)))
    assert null["DARELoss improves CrossViT top-1 on CIFAR-10"].verdict == "not resolved"
    assert by["DARELoss improves GFNet top-1 on CIFAR-10"].verdict == NOT_MEASURED


def test_per_image_file_round_trip(tmp_path):
    from orsalib.experiments.per_image import column_arrays, read_per_image, write_per_image

    logits = np.array([[0.1, 2.0, 0.3, 0, 0, 0], [3.0, 0.0, 0.1, 0, 0, 0.2], [0, 0, 0, 0, 0, 1.0]])
    cols = column_arrays(np.array([9, 4, 9]), np.array([1, 2, 3]), logits, top5=True)
    path = write_per_image(tmp_path / "run" / "per_image.npz", {"test": cols})
    back = read_per_image(path)["test"]
    assert list(back.index) == [9, 4]  # a repeated id keeps its first row
    assert list(back["pred"]) == [1, 0] and list(back["correct"]) == [True, False]
    assert list(back["top5"]) == [True, True]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable per-image file"):
        read_per_image(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="must not contain"):
        write_per_image(tmp_path / "x.npz", {"a__b": cols})


def test_power_statement_and_summary(tmp_path):
    vs = C.table8_claims(_dare_runs_per_image(tmp_path, "image", 7.0))
    ps = C.power_summary(vs, n_study=12000 * 4)
    measured = [v for v in vs if v.verdict != NOT_MEASURED]
    assert set(ps["mde"]) == {v.claim for v in measured} and ps["unit"] == "images" and ps["n"] == 4000
    assert ps["paper_delta_min"] == 0.19 and ps["paper_delta_max"] == 0.85
    assert ps["study_mde_median"] == pytest.approx(ps["mde_median"] / 2, abs=0.02)  # 4x the items: half the MDE
    text = C.power_statement(vs, "Table 8", study=False, study_settings="8 seeds", study_minutes=150, target=0.1)
    assert "detects differences >=" in text and "0.19-0.85 points" in text and "study=True (8 seeds; about" in text
    assert "2.5 hours" in text
    assert "powered run" in C.power_statement(vs, "Table 8", study=True)
    assert "no claim measured" in C.power_statement(C.table8_claims(None), "Table 8", study=False)
