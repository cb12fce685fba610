"""predict() with stub models; occlusion sweep determinism (same masks for every model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from orsalib.engine import evaluate as EV


class Stub(nn.Module):
    """Predicts class = (sum of the image's pixels > 0) + 1, records the prior keys it saw."""

    def __init__(self, with_features: bool = True):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.with_features = with_features
        self.seen_priors: set[str] = set()
        self.modes: list[bool] = []

    def forward(self, image, priors=None):
        self.seen_priors |= set(priors or {})
        self.modes.append(self.training)
        s = image.flatten(1).sum(1)
        logits = torch.stack([torch.zeros_like(s), (s <= 0).float(), (s > 0).float()], 1) + self.w
        out = {"logits": logits}
        if self.with_features:
            out["features"] = image.flatten(1)[:, :4]
        return out


def _loader(n: int = 10, bs: int = 4):
    g = torch.Generator().manual_seed(0)
    img = torch.randn(n, 3, 4, 4, generator=g)
    lab = torch.randint(0, 3, (n,), generator=g)
    lm = torch.rand(n, 68, 2, generator=g)
    return (
        [
            {
                "image": img[i : i + bs],
                "label": lab[i : i + bs],
                "index": torch.arange(i, min(n, i + bs)) + 100,
                "landmarks": lm[i : i + bs],
                "other": torch.zeros(min(bs, n - i)),
            }
            for i in range(0, n, bs)
        ],
        img,
        lab,
    )


def test_predict_stub():
    loader, img, lab = _loader()
    m = Stub()
    m.train()
    p = EV.predict(m, loader, device="cpu")
    assert p.logits.shape == (10, 3) and p.logits.dtype == np.float32
    np.testing.assert_array_equal(p.labels, lab.numpy())
    np.testing.assert_array_equal(p.indices, np.arange(10) + 100)
    assert p.features.shape == (10, 4)
    expected = np.where(img.flatten(1).sum(1).numpy() > 0, 2, 1)
    np.testing.assert_array_equal(p.preds, expected)
    assert m.seen_priors == {"landmarks"}  # only PRIOR_KEYS reach the model
    assert m.modes and not any(m.modes)  # eval mode inside
    assert m.training  # restored
    r = p.report(3)
    assert r["accuracy"] == pytest.approx((expected == lab.numpy()).mean())
    assert len(p) == 10
    sub = p.subset(p.correct)
    assert len(sub) == int(p.correct.sum()) and sub.features.shape[0] == len(sub)
    lo, hi = p.accuracy_ci(n=100)
    assert lo <= r["accuracy"] <= hi


def test_predict_without_features_and_custom_forward():
    loader, _, _ = _loader()
    p = EV.predict(Stub(with_features=False), loader, device="cpu")
    assert p.features is None
    calls = []

    def fwd(model, batch):
        calls.append(1)
        return model(batch["image"] * 0 + 1)

    p2 = EV.predict(Stub(), loader, device="cpu", forward=fwd)
    assert len(calls) == 3 and (p2.preds == 2).all()


def test_predict_errors():
    with pytest.raises(ValueError, match="empty loader"):
        EV.predict(Stub(), [], device="cpu")
    with pytest.raises(ValueError, match="dicts with 'image'"):
        EV.predict(Stub(), [(torch.zeros(1, 3, 2, 2), torch.zeros(1))], device="cpu")


# ----------------------------------------------------------------------------- occlusion sweep
class Hasher(nn.Module):
    """Stub model that records a hash and the pixels of every input image, in call order."""

    def __init__(self, cls: int = 0):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.cls = cls
        self.hashes: list[str] = []
        self.images: list[torch.Tensor] = []

    def forward(self, image, priors=None):
        import hashlib

        for x in image:
            self.hashes.append(hashlib.sha1(x.detach().cpu().numpy().tobytes()).hexdigest())
            self.images.append(x.detach().cpu().clone())
        logits = torch.zeros(image.shape[0], 7) + self.w
        logits[:, self.cls] = 1.0
        return {"logits": logits}


@pytest.fixture
def tiny_manifest(tmp_path):
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(14):
        split = "train" if i < 4 else ("valid" if i < 10 else "valid_occluded")
        p = tmp_path / "img" / f"{i:03d}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(40, 220, (32, 32, 3), dtype=np.uint8)).save(p)
        rows.append(
            {
                "path": str(p),
                "label": i % 3,
                "label_name": "x",
                "split": split,
                "occluded": int(split == "valid_occluded"),
                "occluder": ("hand" if i % 2 else "mask") if split == "valid_occluded" else "none",
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def tiny_cfg():
    from orsalib.config import load_profile

    return load_profile(
        "smoke", {"prior.source": "none", "data.image_size": 32, "data.num_workers": 0}, run_name="t_sweep"
    )


def _by_condition(model: Hasher, conds, what="hashes"):
    out, k = {}, 0
    seq = getattr(model, what)
    for c in conds:
        n = len(c.manifest)
        out[c.name] = seq[k : k + n]
        k += n
    return out


def test_occlusion_sweep_same_masks_for_every_model(tiny_manifest, tiny_cfg, tmp_path):
    a, b = Hasher(0), Hasher(1)
    res = EV.occlusion_sweep(
        {"a": a, "b": b},
        tiny_manifest,
        tiny_cfg,
        ratios=(0, 0.1, 0.3),
        seed=0,
        n_boot=50,
        device="cpu",
        out_dir=tmp_path / "occ",
        return_details=True,
    )
    names = [c.name for c in res.conditions]
    assert names == ["clean", "rectangle 10%", "rectangle 30%", "real: valid_occluded"]
    ha, hb = _by_condition(a, res.conditions), _by_condition(b, res.conditions)
    assert ha == hb  # identical pixels for both models
    assert ha["clean"] != ha["rectangle 10%"] != ha["rectangle 30%"]
    # the occluded fraction of the pixels grows with the ratio and is close to it
    ia = _by_condition(a, res.conditions, "images")
    for name, r in (("rectangle 10%", 0.1), ("rectangle 30%", 0.3)):
        frac = np.mean([(x != c).any(0).float().mean().item() for x, c in zip(ia[name], ia["clean"])])
        assert abs(frac - r) < 0.06, (name, frac)
    # a fresh sweep (new model, rebuilt conditions from the cached copies) sees the same pixels
    c2 = Hasher(2)
    res2 = EV.occlusion_sweep(
        {"c": c2},
        tiny_manifest,
        tiny_cfg,
        ratios=(0, 0.1, 0.3),
        seed=0,
        n_boot=0,
        device="cpu",
        out_dir=tmp_path / "occ2",
        return_details=True,
    )
    assert _by_condition(c2, res2.conditions) == ha
    # another seed gives other masks
    d = Hasher(0)
    res3 = EV.occlusion_sweep(
        {"d": d},
        tiny_manifest,
        tiny_cfg,
        ratios=(0.1,),
        seed=5,
        real=False,
        n_boot=0,
        device="cpu",
        out_dir=tmp_path / "occ",
        return_details=True,
    )
    assert _by_condition(d, res3.conditions)["rectangle 10%"] != ha["rectangle 10%"]


def test_sweep_long_and_table(tiny_manifest, tiny_cfg, tmp_path):
    long = EV.occlusion_sweep(
        {"a": Hasher(0), "b": Hasher(1)},
        tiny_manifest,
        tiny_cfg,
        ratios=(0, 0.2),
        n_boot=100,
        device="cpu",
        out_dir=tmp_path / "occ",
    )
    # 2 models x (clean, rect 20%, real, real/hand, real/mask)
    assert len(long) == 10
    labels = tiny_manifest.set_index("split")["label"]
    clean_a = long[(long.model == "a") & (long.condition == "clean")].iloc[0]
    assert clean_a["n"] == 6 and clean_a["accuracy"] == pytest.approx((labels.loc["valid"] == 0).mean())
    assert clean_a["acc_low"] <= clean_a["accuracy"] <= clean_a["acc_high"]
    hand = long[(long.model == "b") & (long.condition == "real: valid_occluded / hand")].iloc[0]
    occ = tiny_manifest[(tiny_manifest.split == "valid_occluded") & (tiny_manifest.occluder == "hand")]
    assert hand["n"] == len(occ) and hand["accuracy"] == pytest.approx((occ.label == 1).mean())
    t = EV.sweep_table(long)
    assert list(t.index) == ["a", "b"] and list(t.columns)[:2] == ["clean", "rectangle 20%"]
    assert t.loc["a", "clean"].startswith(f"{100 * clean_a['accuracy']:.2f} [")
    num = EV.sweep_table(long, ci=False)
    assert num.loc["a", "clean"] == pytest.approx(round(100 * clean_a["accuracy"], 2))
    curve = EV.robustness_curve(long)
    assert list(curve[curve.model == "a"]["x"]) == [0.0, 20.0]
    from orsalib.viz.analysis import robustness_figure

    fig = robustness_figure(long)
    assert len(fig.data) == 2 and list(fig.data[0].x) == [0.0, 20.0]


def test_best_vs_last():
    h = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}, {"epoch": 3, "val_acc": 0.6}]
    r = EV.best_vs_last(h)
    assert (r["best_epoch"], r["last_epoch"]) == (2, 3) and r["gap"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="holds no"):
        EV.best_vs_last([{"epoch": 1}])
