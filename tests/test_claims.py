"""A verdict for every paper claim: each table family on constructed inputs (a known difference is found, a null one
is not), "not measured" rows, and the shared verdicts.json (schema, merging, replacing)."""

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
from orsalib.experiments.verdicts import NOT_MEASURED, VERDICTS, compare_over_seeds
from orsalib.paper import TABLE2, TABLE6, table7_delta, table8_delta

FIELDS = {"claim", "table", "paper", "ours", "delta", "ci_low", "ci_high", "p", "n", "unit", "verdict", "mde",
          "paper_delta", "seeds", "note", "source", "dataset", "over_seeds"}  # fmt: skip
BASE = {"the prior-free baseline": "base"}
N_CLAIMS = 63  # every claim of Tables 2, 3, 4, 6, 7, 8 (test_expected_claims_cover_every_table)


def _run() -> str:
    return f"claims-{uuid.uuid4().hex[:8]}"


def _by_claim(vs):
    return {v.claim: v for v in vs}


def _hits(rng, n, p):
    return rng.random(n) < p


# ----------------------------------------------------------------------------- Tables 2, 3, 4 (images)
def _clean_pair(rng, n=2000, lose=0.1):
    a = _hits(rng, n, 0.8)
    b = a & ~_hits(rng, n, lose)  # B = A minus a share of A's hits: a known gap of ~ 0.8 * lose
    return a, b


def test_table2_known_difference_is_found_and_images_are_paired_by_id():
    rng = np.random.default_rng(0)
    a, b = _clean_pair(rng)
    ids = np.arange(1000, 3000)
    sa = pd.Series(a, index=ids)
    perm = rng.permutation(len(ids))
    sb = pd.Series(b[perm], index=ids[perm])  # another order: pairing goes by image id, not by position
    sb = pd.concat([sb, pd.Series([True] * 50, index=np.arange(50))])  # images only B saw: left out
    (v,) = C.table2_claims({("ORSANet", "clean"): sa, ("base", "clean"): sb}, "ORSANet", BASE, dataset="synthfer")
    assert v.table == "Table 2" and v.verdict == "holds" and v.n == 2000 and v.unit == "images"
    assert v.delta == pytest.approx(100 * (a.mean() - b.mean())) and v.ci_low > 0 and v.p < 1e-6
    assert v.paper_delta == pytest.approx(TABLE2["ORSANet"]["RAF-DB"] - TABLE2["POSTER V2"]["RAF-DB"], abs=1e-9)
    assert v.dataset == "synthfer" and "92.28" in v.paper
    (r,) = C.table2_claims({("ORSANet", "clean"): sb, ("base", "clean"): sa}, "ORSANet", BASE)
    assert r.verdict == "reversed"


def test_table2_null_is_not_resolved_and_ran_row_is_the_papers():
    rng = np.random.default_rng(1)
    n = 600
    correct = {("ORSANet", "clean"): pd.Series(_hits(rng, n, 0.7)), ("RAN", "clean"): pd.Series(_hits(rng, n, 0.7))}
    (v,) = C.table2_claims(correct, "ORSANet", {"RAN": "RAN"})
    assert v.verdict == "not resolved" and v.ci_low < 0 < v.ci_high
    assert v.paper == "92.28 vs 88.90 (RAN)" and v.paper_delta == pytest.approx(3.38)
    assert math.isfinite(v.mde) and v.mde > 0


def test_table2_not_measured_rows():
    vs = C.table2_claims({}, "ORSANet", {"the prior-free baseline": None, "RAN": "RAN"})
    assert [v.verdict for v in vs] == [NOT_MEASURED, NOT_MEASURED]
    assert "not evaluated" in vs[0].note and "no predictions" in vs[1].note
    assert all(math.isnan(v.delta) and v.n == 0 for v in vs)


def test_no_verdict_against_a_model_at_chance():
    """A comparison with a model that did not learn (clean accuracy not above 1/classes) gets no verdict."""
    assert C.learned(0.30, 700, 1 / 7) and not C.learned(0.16, 700, 1 / 7) and not C.learned(0.30, 21, 1 / 7)
    rng = np.random.default_rng(3)
    good, dead = pd.Series(_hits(rng, 700, 0.8)), pd.Series(_hits(rng, 700, 1 / 7))
    correct = {("ORSANet", "clean"): good, ("base", "clean"): dead}
    for r in (0.1, 0.2, 0.3):
        correct[("ORSANet", f"rectangle {round(100 * r)}%")] = good
        correct[("base", f"rectangle {round(100 * r)}%")] = dead
    (v,) = C.table2_claims(correct, "ORSANet", BASE, num_classes=7)
    assert v.verdict == NOT_MEASURED and "not above chance" in v.note and "base" in v.note
    assert C.table2_claims(correct, "ORSANet", BASE)[0].verdict == "holds"  # without the class count: no judgement
    v3 = C.table3_claims(correct, "ORSANet", BASE, num_classes=7)
    assert all(v.verdict == NOT_MEASURED and "not above chance" in v.note for v in v3)
    alive = {**correct, ("base", "clean"): pd.Series(_hits(rng, 700, 0.5))}
    assert C.table2_claims(alive, "ORSANet", BASE, num_classes=7)[0].verdict == "holds"


def _sweep_correct(rng, n, drop_main, drop_base, ratios=(0.1, 0.2, 0.3)):
    clean = _hits(rng, n, 0.9)
    out = {("ORSANet", "clean"): pd.Series(clean), ("base", "clean"): pd.Series(clean.copy())}
    for r in ratios:
        cond = f"rectangle {round(100 * r)}%"
        out[("ORSANet", cond)] = pd.Series(clean & ~_hits(rng, n, drop_main))
        out[("base", cond)] = pd.Series(clean & ~_hits(rng, n, drop_base))
    return out


def test_table3_degradation_known_difference_is_found():
    rng = np.random.default_rng(2)
    vs = _by_claim(C.table3_claims(_sweep_correct(rng, 2000, 0.05, 0.30), "ORSANet", BASE))
    assert len(vs) == 6  # accuracy and degradation at 10/20/30 %
    d = vs["ORSANet degrades less than the prior-free baseline from 0 to 20% occlusion"]
    assert d.verdict == "holds" and d.table == "Table 3" and d.unit == "images" and d.n == 2000
    assert 18 < d.delta < 27 and d.ci_low > 0 and d.p < 1e-6  # true gap 0.9 * (0.30 - 0.05) = 22.5 points
    assert "accuracy change" in d.ours and "by the paper's own numbers" in d.paper
    a = vs["ORSANet beats the prior-free baseline under 30% occlusion"]
    assert a.verdict == "holds" and a.paper_delta == pytest.approx(84.02 - 82.53)


def test_table3_null_and_missing_ratios():
    rng = np.random.default_rng(3)
    vs = _by_claim(C.table3_claims(_sweep_correct(rng, 800, 0.2, 0.2, ratios=(0.2, 0.25)), "ORSANet", BASE))
    assert vs["ORSANet degrades less than the prior-free baseline from 0 to 20% occlusion"].verdict == "not resolved"
    assert vs["ORSANet beats the prior-free baseline under 20% occlusion"].verdict == "not resolved"
    for pct in ("10%", "30%"):  # paper ratios not evaluated here: listed, not measured
        claim = f"ORSANet degrades less than the prior-free baseline from 0 to {pct} occlusion"
        assert vs[claim].verdict == NOT_MEASURED
    extra = vs["ORSANet beats the prior-free baseline under 25% occlusion"]  # a ratio the paper has not
    assert extra.paper == "no such ratio in the paper" and extra.paper_delta is None and extra.verdict in VERDICTS


def test_table4_real_columns():
    rng = np.random.default_rng(4)
    a, b = _clean_pair(rng, 1500, 0.15)
    correct = {("ORSANet", "real: valid_occluded"): pd.Series(a), ("base", "real: valid_occluded"): pd.Series(b),
               ("ORSANet", "real: valid_occluded / hand"): pd.Series(a[:10]),
               ("base", "real: valid_occluded / hand"): pd.Series(b[:10])}  # fmt: skip
    vs = _by_claim(C.table4_claims(correct, "ORSANet", BASE))
    assert len(vs) == 2
    raf = vs["ORSANet beats the prior-free baseline on real occlusion (RAF-DB (occlu) analogue)"]
    assert raf.verdict == "holds" and raf.n == 1500 and raf.paper_delta == pytest.approx(87.75 - 87.02)
    assert vs["ORSANet beats the prior-free baseline on real occlusion (Occlu-FER analogue)"].verdict == NOT_MEASURED
    assert C.real_column("real: occlu_fer") == "Occlu-FER" and C.real_column("real: valid_occluded") == "RAF-DB (occlu)"


def test_per_image_correct_lines_up_clean_and_occluded_copies():
    from orsalib.engine.evaluate import Predictions

    def pred(correct_rows, indices):
        labels = np.zeros(len(indices), dtype=np.int64)
        logits = np.zeros((len(indices), 2), dtype=np.float32)
        logits[:, 1] = [0.0 if ok else 1.0 for ok in correct_rows]  # argmax 0 = right
        return Predictions(logits=logits, labels=labels, indices=np.asarray(indices, dtype=np.int64))

    src_rows = np.array([10, 11, 12, 13])  # rows of the source manifest
    clean_m = pd.DataFrame({"source_index": src_rows}, index=src_rows)  # the reused loader yields manifest rows
    occ_m = pd.DataFrame({"source_index": src_rows})  # copies: index 0..3
    conds = [SimpleNamespace(name="clean", manifest=clean_m), SimpleNamespace(name="rectangle 20%", manifest=occ_m)]
    sweep = SimpleNamespace(conditions=conds, predictions={
        ("m", "clean"): pred([True, True, False, True], [13, 10, 11, 12]),
        ("m", "rectangle 20%"): pred([False, True, True, True], [3, 0, 1, 2]),
    })  # fmt: skip
    c = C.per_image_correct(sweep)
    assert list(c[("m", "clean")].sort_index().index) == [10, 11, 12, 13]
    assert c[("m", "clean")].loc[13] and not c[("m", "clean")].loc[11]
    assert not c[("m", "rectangle 20%")].loc[13] and c[("m", "rectangle 20%")].loc[10]


def test_few_images_bootstrap_is_overruled_by_the_exact_test():
    from orsalib.experiments.verdicts import compare_on_images

    # 21 images, 5 discordant pairs all for A: the percentile bootstrap CI excludes 0, McNemar p = 0.0625 does not
    a = np.array([1] * 5 + [0] * 16, dtype=bool)
    v = compare_on_images("A beats B", "Table 2", "", a, np.zeros(21, dtype=bool), seed=0)
    assert v.ci_low > 0 and v.p == pytest.approx(0.0625)
    assert v.verdict == "not resolved" and "paired test does not" in v.note


# ----------------------------------------------------------------------------- Tables 6, 7, 8 (seeds)
def _ablation_runs(seeds=(0, 1, 2, 3, 4)):
    rng = np.random.default_rng(5)
    rows = []
    for s in seeds:
        base = 0.70 + 0.02 * rng.standard_normal()
        for v, gap in (("full", 0.0), ("w/o segmentation prior", 0.10), ("w/o cross-interaction", None)):
            noise = 0.005 * rng.standard_normal() if gap else 0.0
            x = base - gap + noise if gap is not None else 0.70 + 0.02 * rng.standard_normal()  # null: independent
            rows.append({"variant": v, "seed": s, "clean_acc": x, "occluded_acc": x - 0.1,
                         "real_occluded_acc": float("nan"), "occluded_condition": "rectangle 20%"})  # fmt: skip
    return pd.DataFrame(rows)


def test_table6_known_null_and_not_measured():
    vs = C.table6_claims(_ablation_runs(), dataset="synthfer")
    assert len(vs) == 5 * 4 and all(v.table == "Table 6" for v in vs)
    by = _by_claim(vs)
    seg = by["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert seg.verdict == "holds" and seg.unit == "seeds" and seg.n == 5 and seg.seeds == [0, 1, 2, 3, 4]
    assert seg.delta == pytest.approx(10.0, abs=1.0)
    assert seg.paper_delta == pytest.approx(TABLE6["full"]["RAF-DB"] - 92.15)
    assert by["removing segmentation prior hurts (artificial occlusion; not a column of the paper)"].verdict == "holds"
    assert by["removing cross-interaction hurts (clean images, RAF-DB analogue)"].verdict != "holds"
    assert by["removing segmentation prior hurts (real occlusion, RAF-DB (occlu) analogue)"].verdict == NOT_MEASURED
    assert by["removing segmentation prior hurts (Occlu-FER analogue)"].verdict == NOT_MEASURED
    assert by["removing DARELoss hurts (clean images, RAF-DB analogue)"].note == "variant 'w/o DARELoss' not run"
    one = _by_claim(C.table6_claims(_ablation_runs(seeds=(0,))))
    assert "one seed" in one["removing segmentation prior hurts (clean images, RAF-DB analogue)"].note


def _dare_runs(kind, gap, seeds=(0, 1, 2, 3)):
    rng = np.random.default_rng(6)
    rows = []
    for s in seeds:
        if kind == "hsi":
            for scene, mode in (("indian_pines", "pixel"), ("pavia_u", "patch")):
                oa = 70 + rng.standard_normal()
                for var, g in (("without", 0.0), ("with", gap)):
                    rows.append({"task": f"{scene} {mode}", "model": f"spectralformer_{mode}", "variant": var,
                                 "seed": s, "OA": oa + g, "AA": oa + g, "kappa": (oa + g) / 100,
                                 "dataset": "semi-synthetic"})  # fmt: skip
        else:
            top1 = 60 + rng.standard_normal()
            for var, g in (("without", 0.0), ("with", gap)):
                rows.append({"model": "crossvit_tiny", "family": "crossvit", "variant": var, "seed": s,
                             "top1": top1 + g, "top5": 95.0 + rng.standard_normal(), "dataset": "digits"})  # fmt: skip
    return pd.DataFrame(rows)


def test_table7_known_difference_and_missing_scenes():
    vs = C.table7_claims(_dare_runs("hsi", 2.0))
    assert len(vs) == 12 and all(v.table == "Table 7" for v in vs)
    by = _by_claim(vs)
    oa = by["DARELoss improves SpectralFormer OA on Indian Pines (pixel-wise)"]
    assert oa.verdict == "holds" and oa.delta == pytest.approx(2.0) and oa.n == 4 and oa.dataset == "semi-synthetic"
    assert oa.paper_delta == table7_delta("indian_pines", "pixel", "OA")
    k = by["DARELoss improves SpectralFormer kappa on Pavia University (patch-wise)"]
    assert k.delta == pytest.approx(2.0)  # kappa x 100, the paper's unit
    assert by["DARELoss improves SpectralFormer OA on Pavia University (pixel-wise)"].verdict == NOT_MEASURED
    flip = _by_claim(C.table7_claims(_dare_runs("hsi", -2.0)))
    assert flip["DARELoss improves SpectralFormer AA on Indian Pines (pixel-wise)"].verdict == "reversed"


def test_table8_known_and_null():
    by = _by_claim(C.table8_claims(_dare_runs("image", 1.5)))
    assert len(by) == 4
    t1 = by["DARELoss improves CrossViT top-1 on CIFAR-10"]
    assert t1.verdict == "holds" and t1.paper_delta == table8_delta("crossvit") and t1.dataset == "digits"
    assert by["DARELoss improves CrossViT top-5 on CIFAR-10"].verdict != "holds"  # top-5: independent draws
    assert by["DARELoss improves GFNet top-1 on CIFAR-10"].verdict == NOT_MEASURED


# ----------------------------------------------------------------------------- the shared file
def test_expected_claims_cover_every_table():
    vs = C.expected_claims()
    assert {v.table for v in vs} == set(C.CLAIM_TABLES)
    # Tables 2-4: 9 claims per baseline (clean; 3 ratios x (more accurate, degrades less); 2 real columns) x 3
    # baselines (prior-free twin, resnet18, RAN) = 27; Table 6: 20; Table 7: 12; Table 8: 4
    assert len({(v.table, v.claim) for v in vs}) == len(vs) == N_CLAIMS
    assert all(v.verdict == NOT_MEASURED and v.source and "notebook" in v.note for v in vs)


def test_record_verdicts_schema_merge_and_replace():
    run = _run()
    rng = np.random.default_rng(7)
    a, b = _clean_pair(rng, 500)
    first = C.table2_claims({("O", "clean"): pd.Series(a), ("base", "clean"): pd.Series(b)}, "O", BASE,
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
            assert r["ci_low"] <= r["delta"] <= r["ci_high"] and r["n"] > 0 and r["unit"] in ("images", "seeds")
    measured = [r for r in rows if r["verdict"] != NOT_MEASURED]
    assert [r["claim"] for r in measured] == ["ORSANet beats the prior-free baseline (clean)"]
    # another notebook: its rows join, the first one's stay
    seeds = compare_over_seeds("DARELoss improves CrossViT top-1 on CIFAR-10", "Table 8", "88.76 vs 87.91",
                               [61.0, 62.0, 63.0], [60.0, 60.5, 61.0], [0, 1, 2])  # fmt: skip
    C.record_verdicts(run, [seeds], notebook="70")
    # a rerun of the first: replaced, never duplicated
    again = C.table2_claims({("O", "clean"): pd.Series(b), ("base", "clean"): pd.Series(a)}, "O", BASE)
    C.record_verdicts(run, again)
    raw = json.loads(path.read_text())
    keys = [(r["table"], r["claim"]) for r in raw["verdicts"]]
    assert len(keys) == len(set(keys)) == N_CLAIMS and raw["profile"] == "smoke" and raw["notebook"] == "70"
    by = {r["claim"]: r for r in raw["verdicts"]}
    assert by["ORSANet beats the prior-free baseline (clean)"]["verdict"] == "reversed"
    assert by["DARELoss improves CrossViT top-1 on CIFAR-10"]["verdict"] == "holds"
    assert raw["counts"]["reversed"] == 1 and raw["counts"]["holds"] == 1
    assert [r["table"] for r in raw["verdicts"]] == sorted((r["table"] for r in raw["verdicts"]),
                                                          key=C.CLAIM_TABLES.index)  # fmt: skip
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_record_verdicts_refuses_unknown_verdicts():
    v = C.expected_claims()[0]
    v.verdict = "probably"
    with pytest.raises(ValueError, match="unknown verdicts"):
        C.record_verdicts(_run(), [v])


def test_verdict_summary_and_report():
    run = _run()
    assert len(C.verdict_summary(run)) == N_CLAIMS  # no file yet: every claim, not measured
    C.record_verdicts(run, C.table6_claims(_ablation_runs()))
    df = C.verdict_summary(run)
    assert list(df.columns)[-2:] == ["verdict", "source"] and set(df["table"]) == set(C.CLAIM_TABLES)
    assert C.verdict_counts(df)["holds"] >= 2
    text = C.verdict_report(run)
    assert text.splitlines()[0].startswith("verdicts (") and len(text.splitlines()) == N_CLAIMS + 1 and "holds" in text


def test_verdict_figure_and_run_index_section():
    from orsalib.viz import write_run_index
    from orsalib.viz.verdicts import verdict_figure

    vs = C.table6_claims(_ablation_runs())
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


def test_table6_on_images_x_seeds_known_null_reversed(tmp_path):
    # per seed one full model and three ablations derived from it: 3 points worse, as good, 3 points better
    rng = np.random.default_rng(3)
    rows = []
    for s in (0, 1, 2):
        ids = rng.permutation(np.arange(1000))
        full = {m: rng.random(1000) < acc for m, acc in (("clean_acc", 0.8), ("occluded_acc", 0.6),
                                                          ("real_occluded_acc", 0.7))}  # fmt: skip
        variants = {"full": full}
        for v, gap in (("w/o segmentation prior", 0.03), ("w/o cross-interaction", 0.0), ("w/o DARELoss", -0.03)):
            out = {}
            for m, f in full.items():
                out[m] = _derived(rng, f, gap)
            variants[v] = out
        for v, cols in variants.items():
            path = _write(tmp_path / f"{slug(v)}_{s}.npz", {m: _cols(c, ids) for m, c in cols.items()})
            rows.append({"variant": v, "seed": s, **{m: c.mean() for m, c in cols.items()},
                         "occluded_condition": "rectangle 20%", "per_image_path": path})  # fmt: skip
    runs = pd.DataFrame(rows)
    by = _by_claim(C.table6_claims(runs, dataset="synthfer"))
    seg = by["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert seg.verdict == "holds" and seg.unit == "images x seeds" and seg.n == 3000 and seg.seeds == [0, 1, 2]
    assert 1.5 < seg.delta < 4.5 and seg.mde < 3.0 and "McNemar" in seg.note
    assert seg.over_seeds["n"] == 3 and "over seeds (n = 3)" in seg.note  # the over-seeds test kept beside it
    assert seg.delta == pytest.approx(seg.over_seeds["delta"])  # equal images per seed: the same mean difference
    assert by["removing segmentation prior hurts (real occlusion, RAF-DB (occlu) analogue)"].verdict == "holds"
    assert by["removing cross-interaction hurts (clean images, RAF-DB analogue)"].verdict == "not resolved"
    assert by["removing DARELoss hurts (artificial occlusion; not a column of the paper)"].verdict == "reversed"
    assert by["removing multi-scale hurts (clean images, RAF-DB analogue)"].verdict == NOT_MEASURED
    # a seed whose files are gone is left out of the images x seeds test and named in the note
    part = runs.copy()
    part.loc[part.seed == 2, "per_image_path"] = ""
    seg2 = _by_claim(C.table6_claims(part))["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert seg2.n == 2000 and seg2.seeds == [0, 1] and "seeds [2] have no per-image" in seg2.note
    assert seg2.over_seeds["n"] == 3


def test_table6_old_records_without_per_image_fall_back_to_seeds():
    runs = _ablation_runs()  # records as written before per-image files were kept
    seg = _by_claim(C.table6_claims(runs))["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert seg.unit == "seeds" and seg.verdict == "holds" and "paired over seeds only" in seg.note
    assert seg.over_seeds == {}
    missing = runs.assign(per_image_path="/nowhere/per_image.npz")
    seg = _by_claim(C.table6_claims(missing))["removing segmentation prior hurts (clean images, RAF-DB analogue)"]
    assert seg.unit == "seeds" and "paired over seeds only" in seg.note


def _dare_runs_per_image(tmp_path, kind, gap, seeds=(0, 1, 2), n=1200):
    rng = np.random.default_rng(21)
    rows = []
    for s in seeds:
        ids = np.arange(n) * 3 + 7  # e.g. flat pixel positions
        if kind == "hsi":
            for scene, mode in (("indian_pines", "pixel"), ("pavia_u", "patch")):
                c = 9
                y = rng.integers(0, c, n)
                wo_ok = rng.random(n) < 0.8
                w_ok = _derived(rng, wo_ok, -gap / 100)  # "with" is gap points better
                wo = np.where(wo_ok, y, (y + rng.integers(1, c, n)) % c)  # a wrong label is never y
                w = np.where(w_ok, y, (y + rng.integers(1, c, n)) % c)
                for var, pred in (("without", wo), ("with", w)):
                    path = _write(tmp_path / f"{scene}{mode}{var}{s}.npz", {"test": {"ids": ids, "label": y,
                                                                                      "pred": pred}})  # fmt: skip
                    m = hsi_metrics(y, pred, c)
                    rows.append({"task": f"{scene} {mode}", "model": f"spectralformer_{mode}", "variant": var,
                                 "seed": s, "OA": m["OA"], "AA": m["AA"], "kappa": m["kappa"],
                                 "dataset": "semi-synthetic", "per_image": path})  # fmt: skip
        else:
            c1_wo = rng.random(n) < 0.8
            c1_w = _derived(rng, c1_wo, -gap / 100)  # "with" is gap points better
            t5_w, t5_wo = _hits_pair(rng, n, 0.0, acc=0.97, disagree=0.03)
            for var, c1, t5 in (("with", c1_w, t5_w), ("without", c1_wo, t5_wo)):
                t5 = t5 | c1  # top-1 correct -> top-5 correct
                path = _write(tmp_path / f"img{var}{s}.npz", {"test": _cols(c1, ids, top5=t5, num_classes=10)})
                rows.append({"model": "crossvit_tiny", "family": "crossvit", "variant": var, "seed": s,
                             "top1": 100 * c1.mean(), "top5": 100 * t5.mean(), "dataset": "digits",
                             "per_image": path})  # fmt: skip
    return pd.DataFrame(rows)


def test_table7_on_pixels_x_seeds(tmp_path):
    by = _by_claim(C.table7_claims(_dare_runs_per_image(tmp_path, "hsi", 3.0)))
    oa = by["DARELoss improves SpectralFormer OA on Indian Pines (pixel-wise)"]
    assert oa.verdict == "holds" and oa.unit == "pixels x seeds" and oa.n == 3600 and "McNemar" in oa.note
    for m in ("AA", "kappa"):
        v = by[f"DARELoss improves SpectralFormer {m} on Pavia University (patch-wise)"]
        assert v.verdict == "holds" and v.unit == "pixels x seeds" and "permutation" in v.note and v.ours
        assert v.delta == pytest.approx(v.over_seeds["delta"])  # mean of the per-seed metric differences
    assert by["DARELoss improves SpectralFormer OA on Pavia University (pixel-wise)"].verdict == NOT_MEASURED
    flip = _by_claim(C.table7_claims(_dare_runs_per_image(tmp_path, "hsi", -3.0)))
    assert flip["DARELoss improves SpectralFormer kappa on Indian Pines (pixel-wise)"].verdict == "reversed"
    null = _by_claim(C.table7_claims(_dare_runs_per_image(tmp_path, "hsi", 0.0)))
    assert null["DARELoss improves SpectralFormer AA on Indian Pines (pixel-wise)"].verdict == "not resolved"


def test_table8_on_images_x_seeds_top1_top5(tmp_path):
    by = _by_claim(C.table8_claims(_dare_runs_per_image(tmp_path, "image", 3.0)))
    t1 = by["DARELoss improves CrossViT top-1 on CIFAR-10"]
    assert t1.verdict == "holds" and t1.unit == "images x seeds" and t1.n == 3600 and t1.dataset == "digits"
    t5 = by["DARELoss improves CrossViT top-5 on CIFAR-10"]
    assert t5.unit == "images x seeds" and "top-5 correctness" in t5.note and t5.mde < t1.mde
    rev = _by_claim(C.table8_claims(_dare_runs_per_image(tmp_path, "image", -3.0)))
    assert rev["DARELoss improves CrossViT top-1 on CIFAR-10"].verdict == "reversed"
    null = _by_claim(C.table8_claims(_dare_runs_per_image(tmp_path, "image", 0.0)))
    assert null["DARELoss improves CrossViT top-1 on CIFAR-10"].verdict == "not resolved"
    old = _by_claim(C.table8_claims(_dare_runs("image", 1.5)))  # runs without per-image files: over seeds
    assert old["DARELoss improves CrossViT top-1 on CIFAR-10"].unit == "seeds"


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
    vs = C.table8_claims(_dare_runs_per_image(tmp_path, "image", 3.0))
    ps = C.power_summary(vs, n_study=3600 * 4)
    measured = [v for v in vs if v.verdict != NOT_MEASURED]
    assert set(ps["mde"]) == {v.claim for v in measured} and ps["unit"] == "images x seeds" and ps["n"] == 3600
    assert ps["paper_delta_min"] == 0.19 and ps["paper_delta_max"] == 0.85
    assert ps["study_mde_median"] == pytest.approx(ps["mde_median"] / 2, abs=0.02)  # 4x the items: half the MDE
    text = C.power_statement(vs, "Table 8", study=False, study_settings="8 seeds", study_minutes=150, target=0.1)
    assert "detects differences >=" in text and "0.19-0.85 points" in text and "study=True (8 seeds; about" in text
    assert "2.5 hours" in text
    assert "powered run" in C.power_statement(vs, "Table 8", study=True)
    assert "no claim measured" in C.power_statement(C.table8_claims(None), "Table 8", study=False)
