"""Notebook 50's like-for-like comparison: which models, which folders, which priors each model sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orsalib.config import load_profile
from orsalib.experiments import claims, compare
from orsalib.models import create_model
from orsalib.paths import run_dir
from orsalib.priors import detected as D

TINY = D.DetectorSettings(input_size=32, epochs=2, batch_size=16, landmark_width=4, parser_width=4)


def test_cpu_contenders_are_the_five_models_in_their_folders_once_per_seed():
    cfg = load_profile("cpu", run_name="cmp")
    every = compare.contenders(cfg, "cmp")
    items = [c for c in every if c.seed == cfg.seed]
    assert [(c.role, c.name) for c in items] == [
        ("main", "orsanet_cpu"), ("oracle", "orsanet_cpu-oracle"), ("twin", "baseline_cpu"),
        ("alternative", "resnet18_cpu"), ("ran", "ran_cpu"),
    ]  # fmt: skip
    # every model a claim compares once per seed of the profile (the oracle upper bound makes no claim: once)
    assert cfg.seeds == [0, 1, 2] and len(every) == 5 + 2 * 4
    later = [c for c in every if c.seed == 1]
    assert [(c.role, c.name, c.method) for c in later] == [
        ("main", "orsanet_cpu@s1", "orsanet_cpu"), ("twin", "baseline_cpu@s1", "baseline_cpu"),
        ("alternative", "resnet18_cpu@s1", "resnet18_cpu"), ("ran", "ran_cpu@s1", "ran_cpu"),
    ]  # fmt: skip
    assert later[0].train_dir == run_dir("cmp") / "train_seed1" and later[0].cfg.seed == 1
    assert later[3].train_dir == run_dir("cmp") / "80_ran_train_seed1" and later[3].cfg.seed == 1
    assert compare.methods(every)["resnet18_cpu@s1"] == ("resnet18_cpu", 1)
    assert [c.seed for c in compare.contenders(load_profile("cpu", seed=1), "cmp") if c.role == "twin"] == [1, 2, 3]
    by = {c.role: c for c in items}
    base = run_dir("cmp")
    assert by["main"].train_dir == base / "train" and by["ran"].train_dir == base / "80_ran_train"
    assert by["main"].cfg.prior.source == "synth-detected" and by["oracle"].cfg.prior.source == "oracle"
    assert [c.uses_priors for c in items] == [True, True, False, False, False]
    # same data, epochs, seed for all; the twin and resnet18 share ORSANet's recipe, RAN keeps its own loss
    for c in items:
        assert c.cfg.data == cfg.data and c.cfg.train.epochs == cfg.train.epochs and c.cfg.seed == cfg.seed
    for role in ("oracle", "twin", "alternative"):
        assert by[role].cfg.train == cfg.train and by[role].criterion_extra is None
    assert not by["ran"].cfg.train.dare and by["ran"].criterion_extra is not None
    assert {c.claim_label for c in items if c.claim_label} == {"the prior-free baseline", "resnet18", "RAN"}
    assert set(compare.CLAIM_LABELS.values()) <= set(claims.BASELINES)


def test_no_oracle_without_ground_truth_and_roles_can_be_chosen(tmp_path):
    cfg = load_profile("cpu", {"data.dataset": "fer2013", "data.data_root": str(tmp_path), "prior.source": "none"})
    assert "oracle" not in [c.role for c in compare.contenders(cfg, "x")]
    oracle_main = load_profile("smoke")
    assert [c.role for c in compare.contenders(oracle_main, "x", seeds=[0])] == ["main", "twin", "alternative", "ran"]
    assert [c.role for c in compare.contenders(oracle_main, "x", roles=["twin"], seeds=[0])] == ["main", "twin"]
    with pytest.raises(ValueError, match="unknown roles"):
        compare.contenders(oracle_main, "x", roles=["resnet50"])


def test_each_model_sees_its_own_priors_on_the_same_pixels(monkeypatch):
    from orsalib.experiments.fer import prepare_fer_data

    monkeypatch.setattr(D, "DetectorSettings", lambda: TINY)
    cfg = load_profile("smoke", {"prior.source": "synth-detected"}, run_name="cmp-test")
    data = prepare_fer_data(cfg)
    items = compare.contenders(cfg, "cmp-test", roles=["oracle", "twin"], seeds=[cfg.seed])
    assert [c.role for c in items] == ["main", "oracle", "twin"]
    torch.manual_seed(0)
    models = {c.name: create_model(c.cfg.model.name).eval() for c in items}
    built = []
    real_build = compare.build_conditions
    monkeypatch.setattr(compare, "build_conditions", lambda m, c, *a, **k: built.append(c.prior.source)
                        or real_build(m, c, *a, **k))  # fmt: skip
    res = compare.like_for_like_sweep(items, models, data.manifest, ratios=(0.0, 0.3), n_boot=0, data=data,
                                      device="cpu")  # fmt: skip
    conds = sorted(res.long["condition"].unique())
    assert len(res.long) == len(items) * len(conds)
    assert list(dict.fromkeys(res.long["model"])) == [c.name for c in items]  # table order = role order
    n = res.long.groupby("condition")["n"].nunique()
    assert (n == 1).all(), "every model is evaluated on the same images of each condition"
    for c in items:
        for cond in res.conditions:
            assert (c.name, cond.name) in res.predictions
    # the detected priors of the occluded copies are computed on the occluded pixels (they differ from the clean ones)
    by = {c.name: c for c in res.conditions}
    clean, occ = next(iter(by["clean"].loader)), next(iter(by["rectangle 30%"].loader))
    assert torch.equal(clean["label"], occ["label"]) and not torch.equal(clean["image"], occ["image"])
    assert not np.array_equal(clean["parsing"].numpy(), occ["parsing"].numpy())
    # conditions built once per prior source: the detected one (main and the prior-free twin) and the oracle's
    assert built == ["synth-detected", "oracle"]
