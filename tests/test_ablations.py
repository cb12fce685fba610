"""Table 6 ablations: variant overrides, resumable runs (stub trainer), summary and ordering statement."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import torch

from orsalib.config import load_profile
from orsalib.experiments import ablations as A
from orsalib.experiments import runs as R


@pytest.fixture
def cfg():
    return load_profile("smoke", run_name="t_ablate")


def test_variants_apply_and_switch_the_model(cfg):
    from orsalib.experiments.fer import build_fer_model

    A.validate_variants(cfg)
    assert list(A.TABLE6_VARIANTS)[0] == "full" and len(A.TABLE6_VARIANTS) == 6
    seen = set()
    for name, ov in A.TABLE6_VARIANTS.items():
        v = A.variant_config(cfg, ov, seed=7)
        assert v.seed == 7 and v.model.name == cfg.model.name
        for k, val in ov.items():
            sec, key = k.split(".")
            assert getattr(getattr(v, sec), key) == val
        if name == "w/o DARELoss":
            assert v.train.dare is False and v.model.seg_prior
        m = build_fer_model(v)
        sig = (m.use_seg, m.use_lm, m.cfg.cross_interaction, m.cfg.multi_scale, m.cfg.landmark_reintegration,
               v.train.dare)
        seen.add(sig)
    assert len(seen) == 6  # every variant builds a different model/loss
    assert cfg.model.seg_prior and cfg.train.dare  # the base config is untouched
    with pytest.raises(ValueError, match="unknown config key"):
        A.validate_variants(cfg, {"bad": {"model.nope": 1}})
    assert A.slug("w/o DARELoss") == "wo_dareloss"


def _fixed_frame() -> pd.DataFrame:
    rows = []
    for v, base in (("full", 0.8), ("w/o segmentation prior", 0.7), ("w/o DARELoss", 0.79)):
        for s, d in ((0, -0.02), (1, 0.02)):
            rows.append(
                {
                    "variant": v,
                    "seed": s,
                    "clean_acc": base + d,
                    "occluded_acc": base - 0.1 + d,
                    "real_occluded_acc": np.nan if v == "w/o DARELoss" else base - 0.2,
                }
            )
    return pd.DataFrame(rows)


def test_summarise_fixed_frame():
    s = A.summarise(_fixed_frame(), paper={"full": {"clean_acc": 92.28}})
    assert list(s["variant"]) == ["full", "w/o segmentation prior", "w/o DARELoss"]
    full = s.iloc[0]
    assert full["n_seeds"] == 2
    assert full["clean_acc_mean"] == pytest.approx(80.0)
    assert full["clean_acc_std"] == pytest.approx(np.std([78.0, 82.0], ddof=1))
    assert full["clean_acc"] == f"80.00 ± {np.std([78.0, 82.0], ddof=1):.2f}"
    assert full["paper_clean_acc"] == 92.28 and np.isnan(full["paper_occluded_acc"])
    assert s.iloc[2]["real_occluded_acc"] == "n/a"
    st = A.orderings_statement(s)
    assert "clean_acc: full > ablation holds for 2 of 2" in st
    assert "Beyond the seed-to-seed spread: w/o segmentation prior." in st  # 10 pts > 2.8 std; 1 pt is not
    assert "real_occluded_acc: full > ablation holds for 1 of 1" in st
    worse = _fixed_frame()
    worse.loc[worse.variant == "w/o DARELoss", "clean_acc"] = 0.9
    st2 = A.orderings_statement(A.summarise(worse))
    assert "it does not hold for w/o DARELoss" in st2
    with pytest.raises(ValueError, match="no ablation results"):
        A.summarise(pd.DataFrame(columns=["variant", "seed"]))


def _stub_study(tmp_path, n: int, n_valid: int, seed: int):
    """A smoke config and prepared-data stand-in over ``n`` random 32-px images: 4 train, ``n_valid`` valid, the rest
    valid_occluded (labels i % 7), for ablation runs with a stub trainer."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
        split = "train" if i < 4 else ("valid" if i < 4 + n_valid else "valid_occluded")
        rows.append({"path": str(p), "label": i % 7, "label_name": "x", "split": split})
    cfg = load_profile(
        "smoke", {"prior.source": "none", "data.image_size": 32, "model.name": "baseline_tiny"}, run_name="t_ablate"
    )
    return cfg, types.SimpleNamespace(manifest=pd.DataFrame(rows), loaders={}, prior_store=None, class_names=[])


def test_run_ablations_resumable_with_stub_trainer(tmp_path):
    cfg, data = _stub_study(tmp_path, n=12, n_valid=4, seed=0)
    calls = []

    def fake_train(vcfg, run_dir=None, data=None, model=None, resume=False):
        calls.append((vcfg.seed, vcfg.train.dare, str(run_dir)))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * vcfg.seed)
        return types.SimpleNamespace(best={"val_acc": 0.5, "epoch": 1}, best_epoch=1, last={"epoch": 2})

    out = tmp_path / "abl"
    df = A.run_ablations(
        cfg, ["full", "w/o DARELoss"], seeds=[0, 1], out_dir=out, data=data, train_fn=fake_train, progress=False
    )
    assert len(calls) == 4 and len(df) == 4
    assert {c[1] for c in calls} == {True, False}
    assert set(df.columns) >= {"variant", "seed", *A.METRICS, "best_val_acc", "train_s"}
    assert df["clean_acc"].between(0, 1).all() and df["real_occluded_acc"].notna().all()
    assert (df["occluded_condition"] == "rectangle 20%").all()
    assert "wo_dareloss/seed1" in calls[-1][2]
    df2 = A.run_ablations(
        cfg, ["full", "w/o DARELoss"], seeds=[0, 1, 2], out_dir=out, data=data, train_fn=fake_train, progress=False
    )
    assert len(calls) == 6  # only the new seed trained
    assert len(df2) == 6
    assert len(A.read_results(out)) == 6
    with pytest.raises(ValueError, match="unknown ablation variants"):
        A.run_ablations(cfg, ["nope"], out_dir=out, data=data, train_fn=fake_train)


def test_load_or_train_missing_and_eval_config(tmp_path, cfg):
    with pytest.raises(FileNotFoundError, match="run notebooks/40_training"):
        R.load_or_train(cfg, tmp_path / "nothing")
    base = R.baseline_config(cfg)
    assert base.model.name == "baseline_tiny" and cfg.model.name == "orsanet_tiny"
    e = R.eval_config("smoke", {"data.dataset": "synthfer"}, run_name="t")
    assert e.prior.source == "oracle"
    e2 = R.eval_config("smoke", {"data.dataset": "fer2013", "data.data_root": str(tmp_path)}, prior_source="none")
    assert e2.prior.source == "none"


def test_per_image_records_round_trip_and_pair_on_images(tmp_path):
    import json

    from orsalib.experiments import claims as C
    from orsalib.experiments.per_image import read_per_image

    cfg, data = _stub_study(tmp_path, n=14, n_valid=5, seed=1)

    def fake_train(vcfg, run_dir=None, data=None, model=None, resume=False):
        torch.manual_seed(vcfg.seed + 10 * int(vcfg.train.dare))
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.5)
        return types.SimpleNamespace(best={}, best_epoch=1, last={"epoch": 1})

    out = tmp_path / "abl"
    df = A.run_ablations(cfg, ["full", "w/o DARELoss"], seeds=[0, 1], out_dir=out, data=data, train_fn=fake_train,
                         progress=False)  # fmt: skip
    assert (df["per_image"] == [f"{A.slug(v)}/seed{s}/per_image.npz" for v, s in zip(df.variant, df.seed)]).all()
    got = {(r.variant, r.seed): read_per_image(r.per_image_path) for r in df.itertuples()}
    for (variant, seed), cols in got.items():
        assert set(cols) == set(A.METRICS)
        rec = df[(df.variant == variant) & (df.seed == seed)].iloc[0]
        for m in A.METRICS:  # the record's accuracy is the mean of the per-image correctness
            assert rec[m] == pytest.approx(cols[m]["correct"].mean())
        # the occluded copies keep their face's id (the source manifest row); the real split has its own rows
        assert list(cols["clean_acc"].index) == list(cols["occluded_acc"].index) == [4, 5, 6, 7, 8]
        assert list(cols["real_occluded_acc"].index) == [9, 10, 11, 12, 13]
    full, wo = got[("full", 0)]["clean_acc"], got[("w/o DARELoss", 0)]["clean_acc"]
    assert full.index.equals(wo.index) and (full["label"] == wo["label"]).all()  # the same images, paired
    vs = {v.claim: v for v in C.table6_claims(df, chance_guard=False)}  # random-weight models: plumbing only
    v = vs["removing DARELoss hurts (clean images, RAF-DB analogue)"]
    assert v.unit == "images" and v.n == 5 and v.seeds == [0, 1] and v.n_seeds == 2
    # records written before per-image files were kept: not measured, the note says to run them again
    log = out / "ablations.jsonl"
    old = [{k: x for k, x in json.loads(line).items() if k != "per_image"} for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps(r) + "\n" for r in old))
    back = A.read_results(out)
    assert (back["per_image_path"] == "").all() and len(back) == 4
    vs = {v.claim: v for v in C.table6_claims(back, chance_guard=False)}
    v = vs["removing DARELoss hurts (clean images, RAF-DB analogue)"]
    assert v.verdict == "not measured" and "per-image predictions" in v.note


def test_study_config_quick_and_powered():
    cfg, seeds = A.study_config("cpu", run_name="t_study")
    assert (cfg.model.name, cfg.train.epochs, cfg.data.train_per_class, cfg.data.val_per_class) == (
        "orsanet_tiny", 4, 400, 100)  # fmt: skip
    assert (cfg.train.max_steps_per_epoch, cfg.prior.source) == (40, "oracle")  # the quick budget: a model that learns
    assert cfg.train.eval_every == 4 and seeds == [0, 1, 2]  # seeds are the replicates of a verdict
    cfg, seeds = A.study_config("cpu", study=True, seed=5, run_name="t_study")
    assert (cfg.model.name, cfg.train.epochs, cfg.data.train_per_class, cfg.data.val_per_class) == (
        "orsanet_cpu", 6, 400, A.STUDY["cpu"]["data.val_per_class"])  # fmt: skip
    assert cfg.train.eval_every == cfg.train.epochs and seeds == [5, 6, 7]
    _, seeds = A.study_config("cpu", study=True, n_seeds=2, run_name="t_study")
    assert seeds == [0, 1]  # an explicit number of seeds wins
    cfg, _ = A.study_config("cpu", study=True, epochs=3, model_name="orsanet_tiny", run_name="t_study")
    assert cfg.train.epochs == 3 and cfg.model.name == "orsanet_tiny" and cfg.train.eval_every == 3
    _, seeds = A.study_config("smoke", study=True, run_name="t_study")
    assert len(seeds) == A.STUDY["smoke"]["n_seeds"]


def test_study_plan_and_folders(tmp_path):
    assert A.ablations_dir("r_study").name == "ablations" and A.ablations_dir("r_study", True).name == "ablations_study"
    plan = A.study_plan("cpu", run_name="t_study")
    assert plan["n_study"] == 300 * 7 * 3 and plan["seeds"] == 3 and plan["minutes"] == A.STUDY_MINUTES["cpu"]
    assert plan["settings"].startswith("orsanet_cpu, 400 training / 300 validation faces per class, 6 epochs, 3 seeds")
    other = A.study_plan("cpu", dataset="fer2013", data_root=str(tmp_path), items_per_seed=500, run_name="t_study",
                         prior_source="none")  # fmt: skip
    assert other["n_study"] == 1500 and "faces per class" not in other["settings"]
