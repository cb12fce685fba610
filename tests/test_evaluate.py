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
