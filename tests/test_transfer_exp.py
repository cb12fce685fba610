"""Transfer experiment loop: OA/AA/kappa, the criterion, and a tiny with/without comparison through fit()."""


import numpy as np
import pytest
import torch

from orsalib.experiments import transfer as X
from orsalib.viz import transfer as VX


def test_hsi_metrics_hand_computed():
    # 3 classes; class 2 never predicted correctly
    y = [0, 0, 0, 1, 1, 2, 2, 2]
    p = [0, 0, 1, 1, 1, 2, 0, 0]
    m = X.hsi_metrics(y, p, 4)  # class 3 absent from y_true -> NaN, excluded from AA
    # OA = 5/8; per class 2/3, 2/2, 1/3 -> AA = (2/3 + 1 + 1/3) / 3 = 2/3
    assert m["OA"] == pytest.approx(62.5)
    assert m["AA"] == pytest.approx(200 / 3)
    # kappa: po = 5/8; pred marginals (4, 3, 1, 0), true (3, 2, 3, 0) -> pe = (12 + 6 + 3) / 64
    pe = 21 / 64
    assert m["kappa"] == pytest.approx((0.625 - pe) / (1 - pe))
    assert np.isnan(m["per_class"][3]) and m["per_class"][1] == pytest.approx(100.0)
    cm = np.zeros((4, 4), dtype=int)
    for t, q in zip(y, p):
        cm[t, q] += 1
    c = X.metrics_from_confusion(cm)
    for k in ("OA", "AA", "kappa"):
        assert c[k] == pytest.approx(m[k])
    with pytest.raises(ValueError, match="0..3"):
        X.hsi_metrics([0, 4], [0, 1], 4)


def test_criterion_baseline_is_ce_and_dare_adds():
    torch.manual_seed(0)
    logits = torch.randn(6, 5, requires_grad=True)
    batch = {"label": torch.tensor([0, 1, 2, 3, 4, 0])}
    base, parts = X.TransferCriterion(0.0)({"logits": logits}, batch, 0)
    torch.testing.assert_close(base, torch.nn.functional.cross_entropy(logits, batch["label"]))
    assert "dare" not in parts
    with_dare, parts2 = X.TransferCriterion(0.1)({"logits": logits}, batch, 0)
    from orsalib.losses import dare_loss

    torch.testing.assert_close(with_dare, base + 0.1 * dare_loss(logits, batch["label"]))
    assert parts2["dare"] > 0


def test_train_configs():
    h = X.transfer_train_config("hsi", "paper")
    assert (h.optimizer, h.lr, h.scheduler, h.step_size, h.gamma, h.batch_size) == ("adam", 5e-4, "step", 30, 0.9, 64)
    assert not h.sam and h.lsce_warmup_epochs == 0
    assert X.transfer_train_config("image", "smoke", epochs=3).epochs == 3


def test_tiny_image_comparison_table(tmp_path, monkeypatch):
    task = X.image_task(None, "smoke")
    assert "not CIFAR-10" in task.dataset_label
    cfg = X.transfer_train_config("image", "smoke", max_steps_per_epoch=2)
    runs = X.run_dare_comparison(task, {"gfnet_cifar_tiny": dict(depth=1, embed_dim=32)}, [0], cfg, "t_transfer")
    assert list(runs.variant) == ["without", "with"]
    assert {"top1", "top5", "best_top1", "per_class", "minutes"} <= set(runs.columns)
    assert runs.top5.ge(runs.top1).all()
    table = X.comparison_table(runs, "image")
    for col in ("top1 without", "top1 with", "top1 Δ (with−without)", "top5 Δ (with−without)", "paper Δ top1"):
        assert col in table.columns
    assert table["paper Δ top1"].iloc[0] == pytest.approx(0.57)
    d = X.paired_differences(runs, ["top1"])
    assert d.top1.iloc[0] == pytest.approx(runs.top1.iloc[1] - runs.top1.iloc[0])
    fig = VX.per_class_figure(runs, task.class_names)
    assert len(fig.data) == 2
    summ = X.summary_numbers(runs, "image")
    assert summ["digits_standin/gfnet_cifar_tiny"]["delta"] == pytest.approx(d.top1.iloc[0], abs=1e-3)


def test_same_seed_same_start_and_baseline_is_reproducible():
    task = X.image_task(None, "smoke", max_train_per_class=3, max_test_per_class=2)
    cfg = X.transfer_train_config("image", "smoke", max_steps_per_epoch=1)
    spec = {"gfnet_cifar_tiny": dict(depth=1, embed_dim=16)}
    a = X.run_dare_comparison(task, spec, [3], cfg, "t_transfer_a", dare_weight=0.0)
    # dare_weight 0: both variants are the same run -> identical results
    assert a.top1.iloc[0] == pytest.approx(a.top1.iloc[1])
    assert a.per_class.iloc[0] == a.per_class.iloc[1] or np.allclose(
        a.per_class.iloc[0], a.per_class.iloc[1], equal_nan=True
    )


def test_tiny_hsi_comparison_table():
    task = X.hsi_task("pavia_u", "patch", profile="smoke")
    assert task.info["band_patches"] == 7 and task.info["patch"] == 7 and "semi-synthetic" in task.dataset_label
    cfg = X.transfer_train_config("hsi", "smoke", epochs=1, max_steps_per_epoch=2)
    runs = X.run_dare_comparison(task, {"spectralformer_patch": dict(depth=2)}, [0], cfg, "t_transfer_h", tag="patch")
    assert {"OA", "AA", "kappa", "best_OA", "best_kappa"} <= set(runs.columns)
    table = X.comparison_table(runs, "hsi")
    assert {"OA without", "OA with", "kappa Δ (with−without)", "paper baseline (OA/AA/kappa)"} <= set(table.columns)
    assert table["paper baseline (OA/AA/kappa)"].iloc[0] == "88.40 / 88.28 / 0.8586"  # paper Table 7, Pavia patch w/o
    assert table["paper Δ OA"].iloc[0] == pytest.approx(0.42)
    ip = X.hsi_task("indian_pines", "pixel", profile="smoke")
    assert ip.model_kwargs["spectralformer_pixel"]["band_patches"] == 3


def test_resize_input_wrapper_for_paper_sized_models():
    torch.manual_seed(0)
    m = X.build_transfer_model("gfnet_cifar_tiny", {"input_size": 64, "img_size": 64, "depth": 1, "embed_dim": 16})
    assert isinstance(m, X.ResizeInput)
    out = m(torch.randn(2, 3, 32, 32))  # CIFAR-sized input upsampled to the model's 64 px
    assert out["logits"].shape == (2, 10)
    kw = X.IMAGE_PROFILES["paper"]["models"]
    assert kw["gfnet_ti"]["input_size"] == 224 and kw["crossvit_tiny_240"]["input_size"] == 240


def test_runs_keep_per_item_predictions_on_the_same_items():
    from orsalib.experiments import claims as C
    from orsalib.experiments.per_image import read_per_image

    task = X.image_task(None, "smoke", max_train_per_class=3, max_test_per_class=4)
    assert task.info["n_test_all"] >= task.info["n_test"] == 40
    cfg = X.transfer_train_config("image", "smoke", max_steps_per_epoch=1)
    runs = X.run_dare_comparison(task, {"gfnet_cifar_tiny": dict(depth=1, embed_dim=16)}, [0, 1], cfg, "t_per_item")
    cols = [read_per_image(p)["test"] for p in runs.per_image]
    for (_, r), c in zip(runs.iterrows(), cols):
        assert len(c) == r.n_test == 40 and r.n_test_all == task.info["n_test_all"]
        assert r.top1 == pytest.approx(100 * c["correct"].mean()) and r.top5 == pytest.approx(100 * c["top5"].mean())
        assert c.index.equals(cols[0].index) and (c["label"] == cols[0]["label"]).all()  # the same test images
    by = {v.claim: v for v in C.table8_claims(runs, chance_guard=False)}  # one training step: plumbing only
    v = by["DARELoss improves GFNet top-5 on CIFAR-10"]
    assert v.unit == "images" and v.n == 40 and v.seeds == [0, 1] and v.n_seeds == 2
    assert v.data.startswith("digits, 10 classes (CIFAR-10 not found)")
    guarded = {v.claim: v for v in C.table8_claims(runs)}["DARELoss improves GFNet top-1 on CIFAR-10"]
    assert guarded.verdict in ("not measured", "not resolved")  # at chance after one step: no verdict either way


def test_hsi_per_pixel_predictions_match_the_last_evaluation():
    from orsalib.experiments import claims as C
    from orsalib.experiments.per_image import read_per_image

    task = X.hsi_task("indian_pines", "pixel", profile="smoke")
    assert task.info["n_test_all"] > task.info["n_test"] == 150
    cfg = X.transfer_train_config("hsi", "smoke", epochs=1, max_steps_per_epoch=2)
    runs = X.run_dare_comparison(task, {"spectralformer_pixel": dict(depth=1)}, [0], cfg, "t_per_pixel", tag="pixel")
    ds = task.test_ds
    width = ds.padded.shape[2] - 2 * (ds.patch // 2)
    for _, r in runs.iterrows():
        c = read_per_image(r.per_image)["test"]
        assert list(c.index) == list(ds.rows * width + ds.cols)  # flat pixel positions in the scene
        m = X.hsi_metrics(c["label"], c["pred"], task.num_classes)  # the trainer's last evaluation, per pixel
        assert (m["OA"], m["AA"], m["kappa"]) == pytest.approx((r.OA, r.AA, r.kappa))
    assert (runs["scene_width"] == width).all()
    by = {v.claim: v for v in C.table7_claims(runs, chance_guard=False)}
    for metric in ("OA", "AA", "kappa"):
        v = by[f"DARELoss improves SpectralFormer {metric} on Indian Pines (pixel-wise)"]
        assert v.unit == "pixels (8x8 blocks)" and v.n == 150 and v.one_run and v.verdict == "not resolved"
        assert v.data.startswith("procedural HSI scene (Indian Pines cube not found)")


def test_study_config_of_the_transfer_notebooks():
    quick = X.study_config("image", "cpu", profile_seeds=[0, 1], max_test_per_class=-1)
    assert quick == {"seeds": [0, 1], "max_test_per_class": -1}
    study = X.study_config("image", "cpu", study=True, seed=3, profile_seeds=[3, 1], max_test_per_class=-1)
    assert study["max_test_per_class"] == 0 and study["seeds"] == list(range(3, 3 + X.IMAGE_STUDY["cpu"]["n_seeds"]))
    assert X.study_config("hsi", "cpu", study=True, seeds=[7], max_test=500) == {"seeds": [7], "max_test": 500}
    assert X.study_config("hsi", "cpu", study=True, max_test=-1)["max_test"] == 0
    with pytest.raises(ValueError, match="image' or 'hsi"):
        X.study_config("text", "cpu")


def test_comparison_table_paper_columns():
    import pandas as pd

    runs = pd.DataFrame([{"task": "pavia_u patch", "model": "spectralformer_patch", "dataset": "d", "variant": v,
                          "seed": 0, "OA": 80.0, "AA": 70.0, "kappa": 0.7} for v in ("with", "without")])  # fmt: skip
    t = X.comparison_table(runs, "hsi").iloc[0]
    assert (t["paper OA without"], t["paper OA with"], t["paper Δ OA"]) == (88.40, 88.82, pytest.approx(0.42))
    assert t["paper kappa without"] == pytest.approx(0.8586) and t["paper Δ kappa"] == pytest.approx(0.0043)
    img = pd.DataFrame([{"task": "cifar10", "model": "crossvit_cifar_tiny", "dataset": "d", "variant": v, "seed": 0,
                         "top1": 50.0, "top5": 90.0} for v in ("with", "without")])  # fmt: skip
    t = X.comparison_table(img, "image").iloc[0]
    assert (t["paper top5 without"], t["paper top5 with"], t["paper Δ top5"]) == (98.02, 98.43, 0.41)


def test_study_plan_of_the_transfer_notebooks():
    import pandas as pd

    img = pd.DataFrame({"task": ["digits_standin"] * 2, "n_test_all": [450, 450]})
    plan = X.study_plan("image", "cpu", img)
    assert plan["n_study"] == 450 * X.IMAGE_STUDY["cpu"]["n_seeds"] and "all 450 test images" in plan["settings"]
    hsi = pd.DataFrame({"task": ["indian_pines pixel", "indian_pines patch", "pavia_u pixel"],
                        "n_test_all": [9554, 9554, 9746]})  # fmt: skip
    plan = X.study_plan("hsi", "cpu", hsi)
    k = X.HSI_STUDY["cpu"]["n_seeds"]
    assert plan["n_study"] == {"Indian Pines (pixel-wise)": 9554 * k, "Indian Pines (patch-wise)": 9554 * k,
                               "Pavia University (pixel-wise)": 9746 * k}  # fmt: skip
    assert "Indian Pines 9,554, Pavia University 9,746" in plan["settings"] and plan["minutes"] > 0
    assert X.study_plan("image", "cpu", pd.DataFrame())["n_study"] is None
